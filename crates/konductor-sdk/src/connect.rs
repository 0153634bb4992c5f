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
                Some(earlier) => earlier
                    .merge(next)
                    .map_err(|e| Error::Config(format!("merging the files KUBECONFIG names: {e}")))?,
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
    let client = kube::Client::try_from(config).map_err(|e| Error::Config(one_line(&e.to_string())))?;
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
