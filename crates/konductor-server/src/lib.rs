//! `konductor server`: a Kubernetes-style API server for Konductor's resources, backed
//! by an embedded SQLite database, so koncli, the controller, kube-rs programs and
//! kubectl work without a cluster.
//!
//! # Layout
//! - [`registry`]: the resources served, each described once (from the CRDs for
//!   `konductor.io`; built-in namespaces, events, leases, Jobs, Deployments and
//!   ConfigMaps), plus the kinds of the CRDs applied to the server ([`crds`]).
//! - [`store`]: SQLite in WAL mode — transactions, the global resourceVersion,
//!   durability. No HTTP types.
//! - [`watch`]: the in-memory hub that fans committed writes out to watchers. No SQL.
//! - [`key`]: [`key::ObjectKey`], the address both of them use (a leaf module).
//! - [`objects`], [`validation`], [`patch`], [`selectors`], [`views`]: the API's rules
//!   (metadata lifecycle, schema and CEL validation, patch formats, selectors, the
//!   events.k8s.io view), pure functions; [`protobuf`] decodes the one protobuf body
//!   kubectl sends (`kubectl create namespace`).
//! - [`service`]: the API verbs, combining the above ([`scale`]: the `/scale`
//!   subresource of custom resources).
//! - [`http`]: axum handlers that translate requests to service calls (plus discovery
//!   and OpenAPI documents generated from the registry). No SQL.
//! - [`table`]: `kubectl get` tables from the printer columns.
//! - [`gc`]: the garbage collector (ownerReferences, namespace deletion), working
//!   through the queue the store fills.
//! - [`metrics`]: `GET /metrics`.
//! - [`fuzzing`]: request handling on arbitrary bytes, for fuzzers and property tests.
//! - [`security`]: token, TLS certificates, kubeconfig.
//!
//! [`Server::start`] wires them together (the `konductor server` binary adds the
//! controller beside it).

pub mod access;
pub mod crds;
pub mod error;
pub mod fuzzing;
pub mod gc;
pub mod http;
pub mod key;
pub mod metrics;
pub mod objects;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod scale;
pub mod security;
pub mod selectors;
pub mod service;
pub mod store;
pub mod table;
pub mod validation;
pub mod views;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::registry::Registry;
use crate::service::Service;
use crate::store::Store;
use crate::watch::WatchHub;

/// The default listen address: loopback only, the usual API server port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6443";

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".konductor";

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database, token, certificates and kubeconfig live.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed CA (the default). Plain HTTP is allowed only on
    /// loopback, and only kube-rs clients will authenticate over it: kubectl (client-go)
    /// never sends a bearer token over plain HTTP.
    pub tls: bool,
    /// Recent events kept for resuming watches (and the lag a watcher may build up).
    pub watch_window: usize,
    /// Bounds on requests and watches in flight and on request time.
    pub limits: http::limits::Limits,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            tls: true,
            watch_window: 10_000,
            limits: http::limits::Limits::default(),
            bookmark_interval: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Defaults, but on a free loopback port and in `data_dir`: how tests, benchmarks and
    /// examples run a throwaway server.
    pub fn on_free_port(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            listen: "127.0.0.1:0".parse().expect("valid address"),
            ..Self::default()
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Another server holds the data directory's lock.
    #[error(
        "another konductor server is already using {0} (lock file held); stop it or use another --data-dir"
    )]
    Locked(PathBuf),
    /// A non-loopback address without TLS.
    #[error(
        "refusing to listen on {0} without --expose: the API would be reachable from the network; pass --expose to allow it (served over HTTPS with the token), or listen on a loopback address such as 127.0.0.1"
    )]
    InsecureListen(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Storage(#[from] store::StoreError),
    /// Credentials could not be created.
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    /// Bootstrapping the default namespaces failed.
    #[error("initialising the database: {0}")]
    Bootstrap(#[from] error::ApiError),
}

/// A started server before the data directory's lock is handed to it.
struct Unlocked {
    address: SocketAddr,
    url: String,
    kubeconfig: PathBuf,
    service: Service,
    extra_metrics: metrics::ExtraMetrics,
    access: access::AccessLog,
    handle: axum_server::Handle<SocketAddr>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    gc_stop: tokio::sync::oneshot::Sender<()>,
}

impl Unlocked {
    fn with_lock(self, lock: std::fs::File) -> Server {
        Server {
            address: self.address,
            url: self.url,
            kubeconfig: self.kubeconfig,
            service: self.service,
            extra_metrics: self.extra_metrics,
            access: self.access,
            handle: self.handle,
            serving: self.serving,
            gc_stop: Some(self.gc_stop),
            _lock: lock,
        }
    }
}

/// Why a client for the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or used.
    #[error("reading the server's kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The client could not be built from it.
    #[error("building a client: {0}")]
    Client(#[from] kube::Error),
}

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when 0 was asked for).
    pub address: SocketAddr,
    /// `http(s)://address`.
    pub url: String,
    /// The kubeconfig written for clients.
    pub kubeconfig: PathBuf,
    service: Service,
    extra_metrics: metrics::ExtraMetrics,
    access: access::AccessLog,
    handle: axum_server::Handle<SocketAddr>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    gc_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Held for the server's lifetime; dropping it releases the data directory.
    _lock: std::fs::File,
}

fn data_dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    }
}

/// The data directory, private to this user (0700, every file in it 0600) and locked
/// for this server's lifetime.
struct DataDir {
    /// Absolute, so the printed `export KUBECONFIG=...` works from any directory.
    path: PathBuf,
    lock: std::fs::File,
    /// Whether this start created it (and so may remove it when the start fails).
    created: bool,
}

impl DataDir {
    fn open(path: &Path) -> Result<Self, ServerError> {
        let created = !path.exists();
        std::fs::create_dir_all(path).map_err(data_dir_error(path))?;
        let absolute = std::path::absolute(path).map_err(data_dir_error(path))?;
        security::make_private_dir(&absolute)?;
        let lock = security::open_private(&absolute.join("konductor.lock"))?;
        if lock.try_lock().is_err() {
            return Err(ServerError::Locked(absolute));
        }
        Ok(Self {
            path: absolute,
            lock,
            created,
        })
    }

    /// Undoes a start that failed half-way: nothing half-made is left behind.
    fn discard_if_new(self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Binds the listening socket (first, so a port in use leaves nothing behind).
fn bind(listen: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), ServerError> {
    let failed = |source| ServerError::Bind {
        address: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let address = listener.local_addr().map_err(failed)?;
    Ok((listener, address))
}

impl Server {
    /// Binds the address, opens the data directory, writes the kubeconfig and starts
    /// serving in the background. A start that fails leaves no half-made data
    /// directory behind.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        if !config.listen.ip().is_loopback() && !config.tls {
            return Err(ServerError::InsecureListen(config.listen));
        }
        let (listener, address) = bind(config.listen)?;
        let data = DataDir::open(&config.data_dir)?;
        let dir = data.path.clone();
        match Self::start_in(&config, listener, address, &dir).await {
            Ok(parts) => Ok(parts.with_lock(data.lock)),
            Err(error) => {
                data.discard_if_new();
                Err(error)
            }
        }
    }

    /// Everything after the socket and the data directory.
    async fn start_in(
        config: &Config,
        listener: std::net::TcpListener,
        address: SocketAddr,
        dir: &Path,
    ) -> Result<Unlocked, ServerError> {
        let hub = WatchHub::new(config.watch_window);
        let db_path = dir.join("konductor.db");
        security::prepare_private_database(&db_path)?;
        let store = tokio::task::spawn_blocking(move || Store::open(&db_path, hub))
            .await
            .expect("opening the store does not panic")?;
        // Konductor's CRDs, generated once for the registry and the bootstrap, and
        // dropped after them.
        let built_in_crds = registry::built_in_crds();
        let service = Service::new(store, Arc::new(Registry::standard()));
        {
            let service = service.clone();
            tokio::task::spawn_blocking(move || service.bootstrap())
                .await
                .expect("bootstrap does not panic")?;
        }
        drop(built_in_crds);
        let token = security::load_or_create_token(dir)?;

        let extra_metrics = metrics::ExtraMetrics::default();
        let access = access::AccessLog::default();
        let state = http::AppState {
            service: service.clone(),
            token: Arc::new(token.clone()),
            admission: Arc::new(http::limits::Admission::new(config.limits.clone())),
            bookmark_interval: config.bookmark_interval,
            extra_metrics: extra_metrics.clone(),
            access: access.clone(),
            traffic: crate::metrics::Traffic::default(),
        };
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let kubeconfig = dir.join("kubeconfig");
        // TCP_NODELAY: watch events are small writes that must not wait for delayed
        // ACKs (Nagle's algorithm would add ~40 ms per event).
        let mut plain = axum_server::from_tcp(listener)
            .map_err(|source| ServerError::Bind { address, source })?
            .handle(handle.clone());
        // An HTTP/2 client (the SDK is one) multiplexes all its requests and watches on
        // one connection: allow as many streams on it as one client may hold watches,
        // plus its requests (hyper's default of 200 would stall a process watching
        // more). kube-apiserver allows 1,000 by default.
        let streams = config.limits.max_watches_per_client
            + config.limits.max_requests_inflight
            + config.limits.max_mutating_requests_inflight;
        plain
            .http_builder()
            .http2()
            .max_concurrent_streams(u32::try_from(streams).unwrap_or(u32::MAX));
        let (url, ca, serving) = if config.tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let material = security::tls_material(dir, address)?;
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
                material.cert_pem.into_bytes(),
                material.key_pem.into_bytes(),
            )
            .await
            .map_err(|source| ServerError::Bind { address, source })?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let serving = tokio::spawn(plain.acceptor(acceptor).serve(app));
            (format!("https://{address}"), Some(material.ca_pem), serving)
        } else {
            let acceptor = axum_server::accept::NoDelayAcceptor::new();
            let serving = tokio::spawn(plain.acceptor(acceptor).serve(app));
            (format!("http://{address}"), None, serving)
        };
        security::write_kubeconfig(&kubeconfig, &url, &token, ca.as_deref())?;

        let (gc_stop, gc_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gc::run(service.clone(), async move {
            let _ = gc_stopped.await;
        }));

        Ok(Unlocked {
            address,
            url,
            kubeconfig,
            service,
            extra_metrics,
            access,
            handle,
            serving,
            gc_stop,
        })
    }

    /// The API verbs, for in-process use (tests, benchmarks).
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Which clients (by User-Agent) used which verbs on which resources so far.
    pub fn accesses(&self) -> Vec<access::Access> {
        self.access.entries()
    }

    /// Adds metrics text to the server's `/metrics` (e.g. the in-process controller's).
    pub fn add_metrics(&self, source: metrics::MetricsSource) {
        self.extra_metrics.add(source);
    }

    /// A kube client configured from the kubeconfig this server wrote, exactly as an
    /// outside client would be (the in-process controller uses one).
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops accepting connections, closes open ones (watches end) and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.gc_stop.take() {
            let _ = stop.send(());
        }
        self.handle
            .graceful_shutdown(Some(Duration::from_millis(500)));
        if let Err(error) = (&mut self.serving).await {
            tracing::error!(%error, "server task failed");
        }
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::shutdown`] still stops serving (the garbage
    /// collector stops with its channel).
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
