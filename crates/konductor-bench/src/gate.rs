//! Gates: many Gates each on its own Job, every Job completed at once (status written
//! as the Job controller would) until a watcher has seen every Gate Open; and the
//! latency from one Job's completion (acknowledged) to its Gate seen Open.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use konductor_api::gate::{Gate, GateCondition, GatePhase, GateSpec, TargetRef};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::oneshot;

use crate::server::ServerProcess;

/// How long any one wait of the benchmark may take before it is called a hang.
const HANG: Duration = Duration::from_secs(300);

/// What the many-Gates run measured.
#[derive(Debug, Clone)]
pub struct ManyResult {
    /// Milliseconds from the last Job's completion (acknowledged) until every Gate was
    /// seen Open.
    pub all_open_after_last_ms: f64,
    /// Milliseconds from the first Job's completion until every Gate was seen Open.
    pub all_open_after_first_ms: f64,
    /// Gate status writes per Gate while the Jobs completed (MODIFIED events seen).
    pub status_writes_per_gate: f64,
    /// The server's peak resident memory so far, MiB.
    pub peak_rss_mib: f64,
}

fn job(name: &str) -> anyhow::Result<Job> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))?)
}

fn gate_on(name: &str, job: &str) -> Gate {
    Gate::new(
        name,
        GateSpec {
            conditions: vec![GateCondition {
                target: TargetRef {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: job.into(),
                },
                ..GateCondition::default()
            }],
            ..GateSpec::default()
        },
    )
}

/// What the Job controller writes when a Job completes.
async fn complete(jobs: &Api<Job>, name: &str) -> anyhow::Result<Instant> {
    let status = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("completing job {name}"))?;
    Ok(Instant::now())
}

/// Whether the controller has looked at the Gate (it reports on its Job).
fn looked_at(gate: &Gate) -> bool {
    gate.status.as_ref().is_some_and(|s| {
        s.results
            .first()
            .is_some_and(|r| r.message.contains("Complete"))
    })
}

/// Watches every Gate in the namespace: says `ready` once all `count` of them have
/// been looked at, then counts status writes until all are Open.
async fn watch_gates(
    api: Api<Gate>,
    count: usize,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<(Instant, usize)> {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut ready = Some(ready);
    let mut looked = HashSet::new();
    let mut open = HashSet::new();
    let mut writes = 0usize;
    while let Some(event) = events.next().await {
        if let watcher::Event::Apply(gate) | watcher::Event::InitApply(gate) =
            event.context("watching the gates")?
        {
            let name = kube::ResourceExt::name_any(&gate);
            if ready.is_none() {
                writes += 1;
            }
            if looked_at(&gate) {
                looked.insert(name.clone());
            }
            if gate.phase() == GatePhase::Open {
                open.insert(name);
                if open.len() == count {
                    return Ok((Instant::now(), writes));
                }
            }
            if looked.len() == count
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    }
    anyhow::bail!("the gate watch ended")
}

/// `count` Gates each on its own Job; every Job completed from `clients` clients.
pub async fn many(
    server: &ServerProcess,
    count: usize,
    clients: usize,
) -> anyhow::Result<ManyResult> {
    let client = server.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let gates: Api<Gate> = Api::namespaced(client.clone(), "default");
    for i in 0..count {
        jobs.create(&PostParams::default(), &job(&format!("j{i}"))?)
            .await
            .context("creating a job")?;
        gates
            .create(
                &PostParams::default(),
                &gate_on(&format!("g{i}"), &format!("j{i}")),
            )
            .await
            .context("creating a gate")?;
    }
    let (ready, looked) = oneshot::channel();
    let watching = tokio::spawn(watch_gates(gates, count, ready));
    tokio::time::timeout(HANG, looked)
        .await
        .context("the controller did not look at every gate")??;

    let mut workers = Vec::new();
    for c in 0..clients {
        let jobs: Api<Job> = Api::namespaced(server.client().await?, "default");
        workers.push(async move {
            let mut first = None;
            let mut last = None;
            for i in (c..count).step_by(clients) {
                let at = complete(&jobs, &format!("j{i}")).await?;
                first.get_or_insert(at);
                last = Some(at);
            }
            anyhow::Ok((first, last))
        });
    }
    let started = Instant::now();
    let mut last_ack = started;
    for result in futures::future::join_all(workers).await {
        if let (_, Some(last)) = result? {
            last_ack = last_ack.max(last);
        }
    }
    let (all_open, writes) = tokio::time::timeout(HANG, watching)
        .await
        .context("not every gate opened")???;
    Ok(ManyResult {
        all_open_after_last_ms: crate::report::ms(all_open.saturating_duration_since(last_ack)),
        all_open_after_first_ms: crate::report::ms(all_open.saturating_duration_since(started)),
        status_writes_per_gate: writes as f64 / count as f64,
        peak_rss_mib: server.peak_rss_mib(),
    })
}

/// Watches the Gate `name` until it is Open; says `ready` once the controller has
/// looked at it.
async fn until_open(
    api: Api<Gate>,
    name: String,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<Instant> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).boxed();
    let mut ready = Some(ready);
    while let Some(event) = events.next().await {
        if let watcher::Event::Apply(gate) | watcher::Event::InitApply(gate) =
            event.context("watching the gate")?
        {
            if gate.phase() == GatePhase::Open {
                return Ok(Instant::now());
            }
            if looked_at(&gate)
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    }
    anyhow::bail!("the gate watch ended")
}

/// `samples` times: a Gate on a fresh Job; the Job completed; milliseconds from the
/// completion's acknowledgement until a watcher sees the Gate Open.
pub async fn latency_ms(server: &ServerProcess, samples: usize) -> anyhow::Result<Vec<f64>> {
    let client = server.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let gates: Api<Gate> = Api::namespaced(client.clone(), "default");
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let (job_name, gate_name) = (format!("l{i}"), format!("lg{i}"));
        jobs.create(&PostParams::default(), &job(&job_name)?)
            .await?;
        gates
            .create(&PostParams::default(), &gate_on(&gate_name, &job_name))
            .await?;
        let (ready, looked) = oneshot::channel();
        let opened = tokio::spawn(until_open(gates.clone(), gate_name, ready));
        tokio::time::timeout(HANG, looked)
            .await
            .context("the controller did not look at the gate")??;
        let acknowledged = complete(&jobs, &job_name).await?;
        let open = tokio::time::timeout(HANG, opened)
            .await
            .context("the gate did not open")???;
        times.push(crate::report::ms(
            open.saturating_duration_since(acknowledged),
        ));
    }
    Ok(times)
}
