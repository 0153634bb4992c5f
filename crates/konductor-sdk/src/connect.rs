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

/// Loads the configuration and builds a client. Does not contact the server.
pub async fn connect(options: &ConnectOptions) -> Result<Connection> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                .await
                .map_err(|e| e.to_string())
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| e.to_string()),
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
    .map_err(Error::Config)?;
    let namespace = options
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
    Ok(Connection {
        client,
        namespace,
        url,
    })
}
