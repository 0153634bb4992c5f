//! `konductor server`: the embedded API server with the barrier controller running
//! inside it, talking to the server through a kube client like any other client.

use std::future::Future;

use anyhow::Context as _;
use konductor_controller::controller::Background;

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
    let controller = if with_controller {
        let client = server
            .client()
            .await
            .context("connecting the controller to the server")?;
        let controller = Background::spawn(client, "konductor-server");
        let metrics = controller.metrics_handle();
        server.add_metrics(Box::new(move || metrics.encode()));
        Some(controller)
    } else {
        None
    };
    shutdown.await;
    if let Some(controller) = controller
        && let Err(error) = controller.stop().await
    {
        tracing::error!(%error, "controller stopped with an error");
    }
    server.shutdown().await;
    Ok(())
}
