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
    let data_dir = config.data_dir.clone();
    let server = konductor_server::Server::start(config).await?;
    println!("konductor server listening on {}", server.url);
    println!("export KUBECONFIG={}", server.kubeconfig.display());
    tracing::info!(
        url = %server.url,
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        controller = with_controller,
        "konductor server started"
    );
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
    tracing::info!("konductor server stopped");
    Ok(())
}
