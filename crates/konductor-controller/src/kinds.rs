//! The kinds the controllers serve, joined: [`run`] starts every kind's controller on
//! one client, and [`Background`] runs them in this process (inside `konductor server`,
//! in tests). The operator runs [`run`] while it leads.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::Result;
use crate::barrier::CONTROLLER_NAME;
use crate::gate::watches::GateKinds;
use crate::metrics::Metrics;

/// What the controllers are told beyond their client.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The kinds Gates may name (the presets' kinds unless more are given).
    pub gate_kinds: GateKinds,
}

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

/// Runs every kind's controller for all namespaces until `shutdown` resolves: the
/// barriers' ([`crate::barrier`]), the locks' ([`crate::locks`]), the wait
/// groups' ([`crate::waitgroup`]) and the gates' ([`crate::gate`]). A new kind is one
/// more line here.
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let shutdown = futures::FutureExt::shared(shutdown);
    // Each kind's Events name their own controller (`kubectl describe` shows "From").
    let reporting = |controller: &str| Reporter {
        controller: controller.to_owned(),
        instance: reporter.instance.clone(),
    };
    let locks = crate::locks::run(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let wait_groups = crate::waitgroup::run(
        client.clone(),
        reporting(crate::waitgroup::CONTROLLER_NAME),
        metrics.clone(),
        shutdown.clone(),
    );
    let gates = crate::gate::run(
        client.clone(),
        reporting(crate::gate::CONTROLLER_NAME),
        metrics.clone(),
        settings.gate_kinds,
        shutdown.clone(),
    );
    let barriers = crate::barrier::run(client, reporter, metrics, shutdown);
    let (barriers, (), wait_groups, gates) = futures::join!(barriers, locks, wait_groups, gates);
    barriers.and(wait_groups).and(gates)
}
