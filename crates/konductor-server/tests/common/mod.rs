//! Shared fixtures: an in-process `konductor server` on a free loopback port, and a
//! kube client configured from the kubeconfig it writes.

#![allow(dead_code)]

pub mod json;

use std::time::Duration;

use konductor_server::{Config, Server};

/// A server running in this process with its own data directory.
pub struct TestServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
    pub client: kube::Client,
}

/// The config tests start servers with: a free port, a fresh directory.
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        bookmark_interval: Duration::from_millis(200),
        ..Config::on_free_port(dir)
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        let server = Server::start(config).await.unwrap();
        let client = server.client().await.unwrap();
        Self {
            server,
            dir,
            client,
        }
    }

    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), "default")
    }
}
