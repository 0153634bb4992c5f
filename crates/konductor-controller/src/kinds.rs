//! Every kind's controller, in this process: [`Background`] runs [`crate::run`] (the
//! list of kinds the controllers serve) inside `konductor server` and in tests, as the
//! operator does while it leads.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

pub use crate::{Settings, run};

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
        Self::spawn_with(client, instance, Settings::default())
    }

    /// Starts the controller on `client` with `settings`, reporting events as
    /// `instance`.
    pub fn spawn_with(client: Client, instance: &str, settings: Settings) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(instance.to_owned()),
        };
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(run(
            client,
            reporter,
            metrics.clone(),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
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
