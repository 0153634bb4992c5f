//! Shared by the SDK tests: an in-process `konductor server` with its controller.

#![allow(dead_code)]

use konductor_controller::controller::Background;
use konductor_sdk::{ConnectOptions, Connection, connect};
use konductor_server::{Config, Server};

/// The longest any wait in these tests may take before the test fails.
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What keeps a test's server and controller alive.
pub type Running = (Server, tempfile::TempDir, Background);

/// A server with its controller, and an SDK connection to its default namespace.
pub async fn start() -> (Running, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::on_free_port(dir.path()))
        .await
        .unwrap();
    let connection = connect(&ConnectOptions {
        kubeconfig: Some(server.kubeconfig.clone()),
        ..ConnectOptions::default()
    })
    .await
    .unwrap();
    let controller = Background::spawn(connection.client.clone(), "sdk-test");
    ((server, dir, controller), connection)
}
