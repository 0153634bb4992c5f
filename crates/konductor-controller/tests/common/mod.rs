//! Shared by the controller tests: a real `konductor server` (in-process, HTTPS on
//! loopback) with the controller running against it.

#![allow(dead_code)]

use konductor_controller::controller::Background;
use konductor_server::{Config, Server};

/// A server with the controller running against it.
pub struct Harness {
    pub server: Server,
    pub _dir: tempfile::TempDir,
    pub client: kube::Client,
    pub controller: Option<Background>,
}

impl Harness {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(Config::on_free_port(dir.path()))
            .await
            .unwrap();
        let client = server.client().await.unwrap();
        let controller = Some(Background::spawn(client.clone(), "test"));
        Self {
            server,
            _dir: dir,
            client,
            controller,
        }
    }
}
