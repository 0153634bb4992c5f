//! `konductor operator`: the controller for a real cluster (or any API server), with
//! leader election, graceful shutdown, and `/healthz`, `/readyz` and `/metrics` on a
//! probe port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::events::Reporter;

use crate::barrier::CONTROLLER_NAME;
use crate::leader::{LeaderElection, LeaseConfig};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The lease competed for.
    pub lease: LeaseConfig,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub probe_address: SocketAddr,
    /// What the controllers are told (the kinds Gates may name).
    pub settings: crate::Settings,
}

/// Shared state of the probe server.
#[derive(Clone)]
struct Probes {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics.encode(),
    )
}

/// Serves the probe endpoints on `listener` until `shutdown` resolves.
async fn serve_probes(
    listener: tokio::net::TcpListener,
    probes: Probes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "probe server failed");
    }
}

/// Runs the operator until `shutdown` resolves: probes at once, the controller only
/// while this replica holds the lease; on shutdown the lease is released.
pub async fn run(
    client: kube::Client,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let probes = Probes {
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
    };
    let listener = tokio::net::TcpListener::bind(config.probe_address)
        .await
        .map_err(|source| Error::Bind {
            address: config.probe_address,
            source,
        })?;
    tracing::info!(address = %listener.local_addr().map_err(|source| Error::Bind { address: config.probe_address, source })?, "serving /healthz, /readyz and /metrics");
    let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
    let probe_server = tokio::spawn(serve_probes(listener, probes.clone(), async move {
        let _ = probes_stopped.await;
    }));

    let election = LeaderElection::new(client.clone(), config.lease.clone());
    let reporter = Reporter {
        controller: CONTROLLER_NAME.to_owned(),
        instance: Some(config.lease.identity.clone()),
    };
    probes.ready.store(true, Ordering::Relaxed);
    let leader_metrics = metrics.clone();
    let result = election
        .run(
            |stopped| {
                let client = client.clone();
                let reporter = reporter.clone();
                let metrics = metrics.clone();
                let settings = config.settings.clone();
                async move {
                    let stop = async move {
                        let _ = stopped.await;
                    };
                    if let Err(error) = crate::run(client, reporter, metrics, settings, stop).await
                    {
                        tracing::error!(%error, "controller stopped");
                    }
                }
            },
            move |leading| {
                leader_metrics.leader.set(i64::from(leading));
            },
            shutdown,
        )
        .await;
    let _ = stop_probes.send(());
    let _ = probe_server.await;
    result
}
