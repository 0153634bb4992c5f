//! `konductor server`: the embedded API server with the barrier controller running
//! inside it, talking to the server through a kube client like any other client.

use std::future::Future;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context as _;
use konductor_controller::kinds::{Background, Settings};

/// Runs the server (and the controllers with `controller`'s settings, if given) until
/// `shutdown` resolves.
pub async fn run(
    config: konductor_server::Config,
    controller: Option<Settings>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let server = konductor_server::Server::start(config).await?;
    println!("konductor server listening on {}", server.url);
    println!("export KUBECONFIG={}", server.kubeconfig.display());
    if std::io::stdout().is_terminal() {
        print!("{}", next_steps(&server.kubeconfig));
    }
    tracing::info!(
        url = %server.url,
        data_dir = %data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        controller = controller.is_some(),
        "konductor server started"
    );
    let controller = if let Some(settings) = controller {
        let client = server
            .client()
            .await
            .context("connecting the controller to the server")?;
        let controller = Background::spawn_with(client, "konductor-server", settings);
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

/// What to do next, for a person who just started the server in a terminal (scripts
/// read only the two lines above it).
fn next_steps(kubeconfig: &Path) -> String {
    format!(
        "
Next, in another terminal:
  export KUBECONFIG={}
  koncli barrier create demo --expected 2
  koncli barrier wait demo &              # waits for two arrivals
  koncli barrier arrive demo job-1; koncli barrier arrive demo job-2
  kubectl get barriers                    # kubectl works too
  koncli dashboard                        # see it live in a browser: open the URL it prints
Examples: examples/*.sh. Ctrl-C stops the server (its data stays in the data dir).
",
        kubeconfig.display()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_steps_name_the_kubeconfig_and_a_first_command() {
        let text = super::next_steps(std::path::Path::new("/data/kubeconfig"));
        assert!(text.contains("export KUBECONFIG=/data/kubeconfig"));
        assert!(text.contains("koncli barrier create demo --expected 2"));
        assert!(text.contains("koncli dashboard"));
    }
}
