//! Shared by the SDK tests: the workspace's [`TestServer`] with the controllers, and an
//! SDK connection to it.

#![allow(dead_code)]

use konductor_sdk::Connection;
pub use konductor_testing::TestServer;

/// The longest any wait in these tests may take before the test fails.
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What keeps a test's server and controllers alive.
pub type Running = TestServer;

/// A server with the controllers, and an SDK connection to its default namespace.
pub async fn start() -> (Running, Connection) {
    let server = TestServer::start().await;
    let connection = server.connection().await;
    (server, connection)
}
