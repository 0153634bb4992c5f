//! Throughput: many clients creating barriers and then arriving at them, as Jobs do,
//! until a watcher has seen every barrier Open.
//!
//! Each arrival goes through the SDK exactly as `koncli barrier arrive` does (a GET of
//! the barrier for its uid, then the create). Status writes are counted from the same
//! watch that sees the barriers open: every MODIFIED event of a barrier is one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use konductor_api::{Barrier, BarrierPhase, BarrierSpec, Outcome};
use konductor_sdk::{Barriers, Connection};
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::sync::oneshot;

use crate::server::ServerProcess;

/// One workload.
#[derive(Debug, Clone)]
pub struct Load {
    /// Barrier names start with this (distinct per load on one server).
    pub prefix: String,
    /// How many barriers.
    pub barriers: usize,
    /// Arrivals per barrier (each barrier expects exactly these).
    pub arrivals: usize,
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
}

/// What a workload measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Arrivals per second, from the first arrival sent to every barrier seen Open.
    pub arrivals_per_s: f64,
    /// Seconds from the first barrier create to every barrier seen Open.
    pub time_to_all_open_s: f64,
    /// Milliseconds from the last arrival's acknowledgement to every barrier seen Open.
    pub open_after_last_arrival_ms: f64,
    /// The same, as the server's controller sees it (its `/metrics`; NaN when the
    /// server does not report it): the difference is the watching client's lag.
    pub server_open_after_last_arrival_ms: f64,
    /// Barrier status writes per arrival.
    pub status_writes_per_arrival: f64,
    /// The server's durable writes per arrival, everything included (barriers,
    /// arrivals, statuses, Events; NaN when the server does not report them).
    pub store_writes_per_arrival: f64,
    /// The server's commits (fsyncs) per arrival.
    pub commits_per_arrival: f64,
    /// The server's peak resident memory so far, MiB.
    pub peak_rss_mib: f64,
}

/// What the watcher reports when every barrier of the load is Open.
struct AllOpen {
    at: Instant,
    modifications: usize,
}

/// Watches the load's barriers; says `ready` once watching, and returns when all are
/// Open with the number of barrier writes it saw after the creates.
async fn watch_until_open(
    api: Api<Barrier>,
    load: Load,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<AllOpen> {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut ready = Some(ready);
    let mut open = HashSet::new();
    let mut writes = 0usize;
    while let Some(event) = events.next().await {
        let barrier = match event.context("watching barriers")? {
            watcher::Event::InitDone => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                continue;
            }
            watcher::Event::Apply(b) | watcher::Event::InitApply(b) => b,
            watcher::Event::Delete(_) | watcher::Event::Init => continue,
        };
        let name = barrier.name_any();
        if !name.starts_with(&load.prefix) {
            continue;
        }
        writes += 1;
        if barrier.phase() == BarrierPhase::Open && open.insert(name) && open.len() == load.barriers
        {
            return Ok(AllOpen {
                at: Instant::now(),
                // Every barrier's create is one event; the rest are status writes.
                modifications: writes.saturating_sub(load.barriers),
            });
        }
    }
    anyhow::bail!("the barrier watch ended")
}

/// The server's durable writes and commits so far (NaN when it does not report them).
async fn store_counts(server: &ServerProcess, client: &kube::Client) -> (f64, f64) {
    let writes = server.metric(client, "konductor_server_writes_total").await;
    let commits = server
        .metric(client, "konductor_server_commits_total")
        .await;
    (writes.unwrap_or(f64::NAN), commits.unwrap_or(f64::NAN))
}

/// When the server's controller counts every barrier of the load Open (polling its
/// `/metrics`; `None` if it does not report phases). Assumes the load's barriers are
/// the only ones on the server besides earlier loads that are all Open.
async fn server_sees_all_open(server: &ServerProcess, load: &Load) -> Option<Instant> {
    let client = server.client().await.ok()?;
    const OPEN: &str = "konductor_barriers{phase=\"Open\"}";
    let others = server.metric(&client, "konductor_barriers").await? - load.barriers as f64;
    let wait = async {
        loop {
            let open = server.metric(&client, OPEN).await?;
            let all = server.metric(&client, "konductor_barriers").await?;
            if open >= all - 0.5 && all >= others + load.barriers as f64 {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .ok()
        .flatten()
}

fn barrier_name(load: &Load, index: usize) -> String {
    format!("{}-{index}", load.prefix)
}

/// Runs `load` against `server`.
pub async fn run(server: &ServerProcess, load: &Load) -> anyhow::Result<LoadResult> {
    let mut clients = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        let client = server.client().await?;
        let barriers = Barriers::new(&Connection {
            client: client.clone(),
            namespace: "default".into(),
            url: String::new(),
        });
        clients.push((client, barriers));
    }
    let probe = server.client().await?;
    let store_before = store_counts(server, &probe).await;
    let api: Api<Barrier> = Api::namespaced(server.client().await?, "default");
    let (ready, watching) = oneshot::channel();
    let all_open = tokio::spawn(watch_until_open(api, load.clone(), ready));
    watching.await.context("the barrier watch did not start")?;

    let started = Instant::now();
    let creates = clients.iter().enumerate().map(|(c, (client, _))| {
        let api: Api<Barrier> = Api::namespaced(client.clone(), "default");
        let names: Vec<String> = (c..load.barriers)
            .step_by(load.clients)
            .map(|i| barrier_name(load, i))
            .collect();
        let expected = i32::try_from(load.arrivals).expect("arrivals fit in i32");
        async move {
            for name in names {
                api.create(
                    &PostParams::default(),
                    &Barrier::new(&name, BarrierSpec::new(expected)),
                )
                .await
                .with_context(|| format!("creating barrier {name}"))?;
            }
            anyhow::Ok(())
        }
    });
    for result in futures::future::join_all(creates).await {
        result?;
    }

    // Arrivals dealt round-robin: each barrier's arrivals come from several clients at
    // once, as from several Jobs.
    let arrivals_started = Instant::now();
    let total = load.barriers * load.arrivals;
    let arrivals = clients.iter().enumerate().map(|(c, (_, barriers))| {
        let work: Vec<(String, String)> = (c..total)
            .step_by(load.clients)
            .map(|k| {
                (
                    barrier_name(load, k / load.arrivals),
                    format!("h{}", k % load.arrivals),
                )
            })
            .collect();
        async move {
            for (barrier, holder) in work {
                barriers
                    .arrive(&barrier, &holder, Outcome::Succeeded, None)
                    .await
                    .with_context(|| format!("arriving at {barrier}"))?;
            }
            anyhow::Ok(Instant::now())
        }
    });
    let mut last_ack = arrivals_started;
    for result in futures::future::join_all(arrivals).await {
        last_ack = last_ack.max(result?);
    }
    let server_open = server_sees_all_open(server, load).await;
    let limit = Duration::from_secs(600);
    let opened = tokio::time::timeout(limit, all_open)
        .await
        .context("not every barrier opened within 10 minutes")???;
    let arrivals = total as f64;
    let store_after = store_counts(server, &probe).await;
    let per_arrival = |before: f64, after: f64| (after - before) / arrivals;
    Ok(LoadResult {
        store_writes_per_arrival: per_arrival(store_before.0, store_after.0),
        commits_per_arrival: per_arrival(store_before.1, store_after.1),
        arrivals_per_s: arrivals / (opened.at - arrivals_started).as_secs_f64(),
        time_to_all_open_s: (opened.at - started).as_secs_f64(),
        open_after_last_arrival_ms: crate::report::ms(
            opened.at.saturating_duration_since(last_ack),
        ),
        server_open_after_last_arrival_ms: server_open.map_or(f64::NAN, |at| {
            crate::report::ms(at.saturating_duration_since(last_ack))
        }),
        status_writes_per_arrival: opened.modifications as f64 / arrivals,
        peak_rss_mib: server.peak_rss_mib(),
    })
}
