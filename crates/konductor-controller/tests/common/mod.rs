//! Shared by the controller tests: the workspace's [`TestServer`] (an in-process
//! `konductor server` with the controllers against it), under a name these tests give
//! their own helpers.

#![allow(dead_code, unused_imports)]

pub use konductor_testing::{HANG, TestServer};

/// A server with the controllers running against it.
pub struct Harness(pub TestServer);

impl Harness {
    pub async fn start() -> Self {
        Self(TestServer::start().await)
    }
}

impl std::ops::Deref for Harness {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.0
    }
}
