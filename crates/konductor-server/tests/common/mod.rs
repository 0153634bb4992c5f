//! Shared fixtures: an in-process `konductor server` on a free loopback port, and a
//! kube client configured from the kubeconfig it writes.

#![allow(dead_code)]

use std::time::Duration;

use konductor_server::{Config, Server};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A server running in this process with its own data directory.
pub struct TestServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
    pub client: kube::Client,
}

/// The config tests start servers with: a free port, a fresh directory.
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        bookmark_interval: Duration::from_millis(200),
        ..Config::default()
    }
}

/// A kube client from a kubeconfig file, as kubectl would read it.
pub async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
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
        let client = client_for(&server.kubeconfig).await;
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
