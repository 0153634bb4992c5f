//! Connecting as kubectl does: `--kubeconfig`, `--context`, `--namespace`, else
//! `$KUBECONFIG` / `~/.kube/config`, else the in-cluster service account.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// Where to connect and in which namespace, as kubectl's global flags say it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A kubeconfig file (else `$KUBECONFIG`, `~/.kube/config`, or in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (else its current context).
    pub context: Option<String>,
    /// The namespace (else the context's, or the pod's when in a cluster).
    pub namespace: Option<String>,
}

/// A client with the namespace it works in.
#[derive(Clone)]
pub struct Connection {
    /// The kube client.
    pub client: kube::Client,
    /// The namespace barriers are looked up in.
    pub namespace: String,
    /// The API server's URL, for error messages.
    pub url: String,
}

/// Reads the kubeconfig at `path`, with an error that names the file and what is wrong
/// with it — never its contents (a wrong `KUBECONFIG` may point at a secret).
fn read_kubeconfig(path: &std::path::Path, named_by: &str) -> Result<Kubeconfig> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.kind().to_string(),
        };
        Error::Config(format!("{named_by} {shown}: {why}"))
    })?;
    Kubeconfig::from_yaml(&text).map_err(|_| {
        Error::Config(format!(
            "{named_by} {shown} is not a kubeconfig (YAML with `apiVersion: v1` and `kind: Config`)"
        ))
    })
}

/// The kubeconfig kubectl would use: the files `$KUBECONFIG` lists (merged, missing
/// ones skipped as kubectl does, but at least one must exist), else `~/.kube/config`;
/// `None` when there is none (then the in-cluster configuration is tried).
fn default_kubeconfig() -> Result<Option<Kubeconfig>> {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let mut merged: Option<Kubeconfig> = None;
        for path in paths.iter().filter(|p| p.exists()) {
            let next = read_kubeconfig(path, "KUBECONFIG names")?;
            merged = Some(match merged {
                None => next,
                Some(earlier) => earlier.merge(next).map_err(|e| {
                    Error::Config(format!("merging the files KUBECONFIG names: {e}"))
                })?,
            });
        }
        return match merged {
            Some(config) => Ok(Some(config)),
            None => Err(Error::Config(format!(
                "KUBECONFIG={}: no such file",
                std::env::join_paths(&paths)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))),
        };
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.map(|h| h.join(".kube").join("config")) {
        Some(path) if path.exists() => read_kubeconfig(&path, "the kubeconfig").map(Some),
        _ => Ok(None),
    }
}

/// Loads the configuration and builds a client. Does not contact the server.
pub async fn connect(options: &ConnectOptions) -> Result<Connection> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig = match &options.kubeconfig {
        Some(path) => Some(read_kubeconfig(path, "--kubeconfig")?),
        None => default_kubeconfig()?,
    };
    let config = match kubeconfig {
        Some(kubeconfig) => kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
            .await
            .map_err(|e| Error::Config(one_line(&e.to_string())))?,
        None => kube::Config::incluster().map_err(|_| {
            Error::Config(
                "no kubeconfig (set KUBECONFIG or --kubeconfig; ~/.kube/config does not exist) and not running in a pod".to_owned(),
            )
        })?,
    };
    let namespace = options
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let url = config.cluster_url.to_string();
    let client = client_of(config).map_err(|e| Error::Config(one_line(&e.to_string())))?;
    Ok(Connection {
        client,
        namespace,
        url,
    })
}

/// An error message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The User-Agent of the SDK's requests (koncli's too).
pub const USER_AGENT: &str = concat!("konductor-sdk/", env!("CARGO_PKG_VERSION"));

/// How often an idle HTTP/2 connection is pinged, so that a connection into a
/// partition (no resets, no answers) is found dead and replaced.
const KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a ping may go unanswered before the connection counts as dead.
const KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A kube client speaking HTTP/2 when the server offers it (kube's own client speaks
/// HTTP/1.1 only): every request shares one connection, so a renewal never waits for a
/// new TLS handshake behind slow answers — with HTTP/1.1 each request in flight needs
/// its own connection, and a new one costs a round trip more. Otherwise as kube's
/// client: the kubeconfig's TLS settings, credentials, extra headers and retries.
fn client_of(mut config: kube::Config) -> kube::Result<kube::Client> {
    use kube::client::ConfigExt;
    use tower::ServiceExt;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    http.set_nodelay(true);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let resolver =
            hyper_rustls::FixedServerNameResolver::new(name.clone().try_into().map_err(|e| {
                kube::Error::Service(format!("tls-server-name {name:?}: {e}").into())
            })?);
        tls = tls.with_server_name_resolver(resolver);
    }
    let connector = tls.enable_http1().enable_http2().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .build(connector);
    // Named in the API server's audit log (and in `konductor server`'s record of who
    // used which verb, which the RBAC tests read).
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        // As kube's own client: 429, 503 and 504 are retried, after the server's
        // Retry-After when it gives one (a busy server is not an error to report).
        .option_layer(config.default_retry.then(|| {
            tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())
        }))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(hyper.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>));
    Ok(kube::Client::new(service, config.default_namespace))
}
