//! `konductor-dashboard`: a live, read-only web page of every Konductor object in a
//! namespace — who waits, who holds, what blocks what — served by `koncli dashboard`
//! on loopback with the user's own Kubernetes credentials, like `kubectl proxy`: it
//! works the same against any cluster and against `konductor server`, and adds no
//! server-side access of its own.
//!
//! # Layout
//! - [`access`]: who may read the page (token → cookie, Host/Origin checks, headers).
//! - [`live`]: one watch per kind, the objects they deliver, the panels made from them
//!   and the changes each page is sent.
//! - [`panels`]: what the page draws for each object, from its typed status (pure).
//! - [`http`]: the routes — the page, its assets, the live feed (server-sent events)
//!   and each object's YAML.
//! - this file: **the list of kinds watched** ([`WATCHED`]) and [`start`].
//!
//! The page itself (`assets/`) is plain JavaScript and CSS embedded in the binary: no
//! framework, no build step, no network access beyond the dashboard.

pub mod access;
pub mod http;
pub mod live;
pub mod panels;

use std::net::SocketAddr;
use std::path::PathBuf;

use kube::api::ApiResource;

/// What the dashboard does with a watched kind's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Each object gets a panel ([`panels::panel`]).
    Subject,
    /// Each object counts for another's panel ([`panels::claim_of`]).
    Claim,
    /// Core Events: the recent ones about Konductor objects are listed.
    Events,
}

/// One kind the dashboard watches.
#[derive(Debug)]
pub struct Watched {
    /// The kind, as panel keys spell it.
    pub kind: &'static str,
    /// Its API resource.
    pub resource: fn() -> ApiResource,
    /// What becomes of its objects.
    pub role: Role,
}

fn erased<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// **The list of kinds watched**, in the order the page shows them. A new kind adds a
/// line here, its panel in [`panels`] and its drawing in `assets/app.js`.
pub const WATCHED: &[Watched] = &[
    Watched {
        kind: "Barrier",
        resource: erased::<konductor_api::Barrier>,
        role: Role::Subject,
    },
    Watched {
        kind: "Semaphore",
        resource: erased::<konductor_api::locks::Semaphore>,
        role: Role::Subject,
    },
    Watched {
        kind: "Mutex",
        resource: erased::<konductor_api::locks::Mutex>,
        role: Role::Subject,
    },
    Watched {
        kind: "RWMutex",
        resource: erased::<konductor_api::locks::RWMutex>,
        role: Role::Subject,
    },
    Watched {
        kind: "RateLimit",
        resource: erased::<konductor_api::ratelimit::RateLimit>,
        role: Role::Subject,
    },
    Watched {
        kind: "Once",
        resource: erased::<konductor_api::once::Once>,
        role: Role::Subject,
    },
    Watched {
        kind: "WaitGroup",
        resource: erased::<konductor_api::waitgroup::WaitGroup>,
        role: Role::Subject,
    },
    Watched {
        kind: "Gate",
        resource: erased::<konductor_api::gate::Gate>,
        role: Role::Subject,
    },
    Watched {
        kind: "Permit",
        resource: erased::<konductor_api::locks::Permit>,
        role: Role::Claim,
    },
    Watched {
        kind: "WaitGroupMember",
        resource: erased::<konductor_api::waitgroup::WaitGroupMember>,
        role: Role::Claim,
    },
    Watched {
        kind: "Event",
        resource: erased::<k8s_openapi::api::core::v1::Event>,
        role: Role::Events,
    },
];

/// How a dashboard is served.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen (loopback unless [`Options::allow_remote`]).
    pub listen: SocketAddr,
    /// The namespace shown; `None` for all.
    pub namespace: Option<String>,
    /// A certificate and key (PEM) to serve over TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Listening beyond loopback was asked for explicitly.
    pub allow_remote: bool,
    /// More host names the browser may reach it by (besides the listen address and,
    /// on loopback, `localhost`).
    pub hosts: Vec<String>,
}

/// Why a dashboard cannot start.
#[derive(Debug)]
pub enum Error {
    /// The options contradict each other.
    Usage {
        /// The flag at fault (`--listen`).
        argument: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The address cannot be listened on, or the TLS files cannot be read.
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage { argument, message } => write!(f, "{argument}: {message}"),
            Error::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A dashboard being served.
pub struct Dashboard {
    /// The URL to open, with its token.
    pub url: String,
    /// The address it listens on.
    pub address: SocketAddr,
    /// Its live picture.
    pub live: live::Live,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Dashboard {
    /// Serves until the listener fails.
    pub async fn serve(self) -> Result<(), Error> {
        match self.serving.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Io(format!("serving failed: {e}"))),
            Err(e) => Err(Error::Io(format!("serving stopped: {e}"))),
        }
    }
}

/// Starts watching with `client` and serving the page as `options` say.
pub async fn start(client: kube::Client, options: Options) -> Result<Dashboard, Error> {
    let loopback = options.listen.ip().is_loopback();
    if !loopback && !options.allow_remote {
        return Err(Error::Usage {
            argument: "--listen",
            message: format!(
                "{} is beyond loopback: anyone who can reach it and has the URL reads every \
                 Konductor object your credentials can list; add --allow-remote (with \
                 --tls-cert and --tls-key) to mean it",
                options.listen
            ),
        });
    }
    if !loopback && options.tls.is_none() {
        return Err(Error::Usage {
            argument: "--allow-remote",
            message: "needs --tls-cert and --tls-key: the token and the session cookie must \
                      not cross a network in the clear"
                .to_owned(),
        });
    }
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", options.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Io(e.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Io(e.to_string()))?;
    let port = address.port();
    let mut hosts = vec![address.to_string()];
    if loopback {
        hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    hosts.extend(options.hosts.iter().map(|h| format!("{h}:{port}")));
    let secure = options.tls.is_some();
    let access = access::Access::new(port, hosts, secure);
    let scheme = if secure { "https" } else { "http" };
    let shown_host = options.hosts.first().cloned().unwrap_or_else(|| {
        if loopback {
            "127.0.0.1".to_owned()
        } else {
            address.ip().to_string()
        }
    });
    let url = format!(
        "{scheme}://{shown_host}:{port}/?{}={}",
        access::TOKEN_PARAMETER,
        access.token()
    );
    let live = live::Live::start(client, options.namespace.clone());
    let app = http::router(http::Served {
        access,
        live: live.clone(),
        scope: options.namespace.clone(),
    });
    let server = axum_server::from_tcp(listener).map_err(|e| Error::Io(e.to_string()))?;
    let serving = match &options.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    Error::Io(format!(
                        "--tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls);
            tokio::spawn(server.acceptor(acceptor).serve(app.into_make_service()))
        }
        None => tokio::spawn(server.serve(app.into_make_service())),
    };
    Ok(Dashboard {
        url,
        address,
        live,
        serving,
    })
}
