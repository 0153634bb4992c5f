//! `konductor server`: the embedded API server with the barrier controller running
//! inside it, talking to the server through a kube client like any other client.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use konductor_controller::controller::{self, CONTROLLER_NAME};
use konductor_controller::metrics::Metrics;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;

/// Runs the server (and, unless `with_controller` is false, the controller) until
/// `shutdown` resolves.
pub async fn run(
    config: konductor_server::Config,
    with_controller: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = konductor_server::Server::start(config).await?;
    println!("konductor server listening on {}", server.url);
    println!("export KUBECONFIG={}", server.kubeconfig.display());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = if with_controller {
        let kubeconfig = Kubeconfig::read_from(&server.kubeconfig)?;
        let client_config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("reading the kubeconfig the server wrote")?;
        let client = kube::Client::try_from(client_config)?;
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some("konductor-server".to_owned()),
        };
        Some(tokio::spawn(controller::run(
            client,
            reporter,
            Arc::new(Metrics::default()),
            async move {
                let _ = stopped.await;
            },
        )))
    } else {
        None
    };
    shutdown.await;
    let _ = stop.send(());
    if let Some(controller) = controller
        && let Ok(Err(error)) = controller.await
    {
        tracing::error!(%error, "controller stopped with an error");
    }
    server.shutdown().await;
    Ok(())
}
