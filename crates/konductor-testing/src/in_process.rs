//! An in-process `konductor server`, with or without its controllers.

use std::path::Path;

use konductor_controller::kinds::{Background, Settings};
use konductor_server::{Config, Server};

/// A server running in this process with its own data directory.
pub struct TestServer {
    /// The server.
    pub server: Server,
    /// Its data directory (removed when dropped).
    pub dir: tempfile::TempDir,
    /// A client configured from the kubeconfig it wrote, as an outside client would be.
    pub client: kube::Client,
    /// The controllers, when running.
    controller: Option<Background>,
    /// How the server was configured (kept for restarts).
    adjust: Adjust,
}

/// A change to a server's configuration, kept for restarts.
type Adjust = std::sync::Arc<dyn Fn(&mut Config) + Send + Sync>;

impl TestServer {
    /// A server with the controllers running against it.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, true).await
    }

    /// A server with nothing granting locks or opening barriers.
    pub async fn without_controller() -> Self {
        Self::start_with(|_| {}, false).await
    }

    /// A server configured by `adjust` (from a free port in a fresh directory), with the
    /// controllers if `controller`.
    pub async fn start_with(
        adjust: impl Fn(&mut Config) + Send + Sync + 'static,
        controller: bool,
    ) -> Self {
        Self::start_configured(adjust, controller.then(Settings::default)).await
    }

    /// A server with the controllers running with `settings` (the kinds Gates may
    /// name).
    pub async fn start_with_settings(settings: Settings) -> Self {
        Self::start_configured(|_| {}, Some(settings)).await
    }

    /// A server configured by `adjust`, with the controllers if `controller` gives
    /// their settings.
    async fn start_configured(
        adjust: impl Fn(&mut Config) + Send + Sync + 'static,
        controller: Option<Settings>,
    ) -> Self {
        let adjust: Adjust = std::sync::Arc::new(adjust);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::on_free_port(dir.path());
        adjust(&mut config);
        let server = Server::start(config).await.expect("the server starts");
        let client = server.client().await.expect("a client for the server");
        let controller =
            controller.map(|settings| Background::spawn_with(client.clone(), "test", settings));
        Self {
            server,
            dir,
            client,
            controller,
            adjust,
        }
    }

    /// One figure of the server's `/metrics` (a series without labels, as
    /// `konductor_server_watches`), or 0 when it is not there.
    pub async fn metric(&self, name: &str) -> f64 {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a valid request");
        let text = self
            .client
            .request_text(request)
            .await
            .expect("the server serves /metrics");
        text.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The kubeconfig the server wrote (its URL, CA and token).
    pub fn kubeconfig(&self) -> &Path {
        &self.server.kubeconfig
    }

    /// An SDK connection to the server's `default` namespace.
    pub async fn connection(&self) -> konductor_sdk::Connection {
        konductor_sdk::connect(&konductor_sdk::ConnectOptions {
            kubeconfig: Some(self.server.kubeconfig.clone()),
            ..konductor_sdk::ConnectOptions::default()
        })
        .await
        .expect("an SDK connection")
    }

    /// The controllers' metrics, when they run.
    pub fn controller(&self) -> Option<&Background> {
        self.controller.as_ref()
    }

    /// `K`s in the `default` namespace.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), "default")
    }

    /// Stops the controllers (they stay stopped until [`TestServer::restart`]).
    pub async fn stop_controller(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.stop().await.expect("the controllers stop");
        }
    }

    /// Stops the server (and the controllers), then starts it again on the same
    /// address and data directory — with the controllers if `controller`.
    pub async fn restart(self, controller: bool) -> Self {
        self.stop().await.start(controller).await
    }

    /// Stops the server and the controllers, keeping what it needs to start again (an
    /// outage, for as long as the caller likes).
    pub async fn stop(self) -> Stopped {
        let Self {
            server,
            dir,
            controller,
            adjust,
            ..
        } = self;
        if let Some(controller) = controller {
            controller.stop().await.expect("the controllers stop");
        }
        let address = server.address;
        server.shutdown().await;
        Stopped {
            dir,
            address,
            adjust,
        }
    }
}

/// A stopped [`TestServer`]: its data directory and address, to start it again.
pub struct Stopped {
    dir: tempfile::TempDir,
    address: std::net::SocketAddr,
    adjust: Adjust,
}

impl Stopped {
    /// Starts the server again on its address and data — with the controllers if
    /// `controller`.
    pub async fn start(self, controller: bool) -> TestServer {
        let Self {
            dir,
            address,
            adjust,
        } = self;
        let mut config = Config {
            listen: address,
            ..Config::on_free_port(dir.path())
        };
        adjust(&mut config);
        let server = Server::start(config)
            .await
            .expect("the server starts again");
        let client = server.client().await.expect("a client for the server");
        let controller = controller.then(|| Background::spawn(client.clone(), "test"));
        TestServer {
            server,
            dir,
            client,
            controller,
            adjust,
        }
    }
}
