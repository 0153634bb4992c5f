//! The kinds the controllers serve, joined: [`run`] starts every kind's controller on
//! one client, and [`Background`] runs them in this process (inside `konductor server`,
//! in tests). The operator runs [`run`] while it leads.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::Result;
use crate::barrier::CONTROLLER_NAME;
use crate::metrics::Metrics;

/// A controller running in the background of this process (as inside
/// `konductor server`, and in tests); dropping it stops the controller.
pub struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
    metrics: Arc<Metrics>,
}

impl Background {
    /// Starts the controller on `client`, reporting events as `instance`.
    pub fn spawn(client: Client, instance: &str) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(instance.to_owned()),
        };
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(run(client, reporter, metrics.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task: Some(task),
            metrics,
        }
    }

    /// The running controller's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A shared handle on the metrics, to serve them elsewhere (e.g. the embedded
    /// server's `/metrics`).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops the controller and waits for it to finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs every kind's controller for all namespaces until `shutdown` resolves: the
/// barriers' ([`crate::barrier`]), the locks' ([`crate::locks`]) and the wait
/// groups' ([`crate::waitgroup`]). A new kind is one more line here.
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let shutdown = futures::FutureExt::shared(shutdown);
    let locks = crate::locks::run(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let wait_groups = crate::waitgroup::run(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let barriers = crate::barrier::run(client, reporter, metrics, shutdown);
    let (barriers, (), wait_groups) = futures::join!(barriers, locks, wait_groups);
    barriers.and(wait_groups)
}
