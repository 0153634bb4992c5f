//! Gates: many Gates each on its own Job, every Job completed at once (status written
//! as the Job controller would) until a watcher has seen every Gate Open; and the
//! latency from one Job's completion (acknowledged) to its Gate seen Open. With
//! [`Resume::Yes`], each Gate also resumes its own suspended Job, and what is timed is
//! that Job seen resumed.

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

/// Whether each Gate resumes a suspended Job of its own, and the time taken is until
/// that Job is seen resumed (rather than the Gate seen Open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Gates only.
    No,
    /// Each Gate `gN` resumes the suspended Job `rN`, which opted in.
    Yes,
}

/// The label on the Jobs Gates resume, for the watch that sees them resumed.
const RESUMED_LABEL: &str = "bench.konductor.io/resumed";

/// A suspended Job `name` that opted in to be resumed by `gate`.
fn suspended_job(name: &str, gate: &str) -> anyhow::Result<Job> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {RESUMED_LABEL: "yes"},
            "annotations": {konductor_api::gate::resume::RESUME_BY: gate}},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))?)
}

fn job_ref(name: &str) -> TargetRef {
    TargetRef {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: name.into(),
    }
}

/// The Gate `name` on Job `job`, resuming the Job `resume` if given.
fn gate_on(name: &str, job: &str, resume: Option<&str>) -> Gate {
    Gate::new(
        name,
        GateSpec {
            conditions: vec![GateCondition {
                target: job_ref(job),
                ..GateCondition::default()
            }],
            resume: resume.map(job_ref).into_iter().collect(),
            ..GateSpec::default()
        },
    )
}

/// Creates Job `jN` and the Gate `gN` on it; with [`Resume::Yes`], the suspended Job
/// `rN` too, which the Gate resumes. Returns the name of the Job whose resume is timed.
async fn create_pair(
    jobs: &Api<Job>,
    gates: &Api<Gate>,
    prefix: &str,
    i: usize,
    resume: Resume,
) -> anyhow::Result<String> {
    let (job_name, gate_name, resumed) = (
        format!("{prefix}j{i}"),
        format!("{prefix}g{i}"),
        format!("{prefix}r{i}"),
    );
    jobs.create(&PostParams::default(), &job(&job_name)?)
        .await
        .context("creating a job")?;
    if resume == Resume::Yes {
        jobs.create(
            &PostParams::default(),
            &suspended_job(&resumed, &gate_name)?,
        )
        .await
        .context("creating a suspended job")?;
    }
    let target = (resume == Resume::Yes).then_some(resumed.as_str());
    gates
        .create(
            &PostParams::default(),
            &gate_on(&gate_name, &job_name, target),
        )
        .await
        .context("creating a gate")?;
    Ok(resumed)
}

fn resumed(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|s| s.suspend == Some(false))
}

/// Watches the Jobs Gates resume until `count` of them (all) are seen resumed.
async fn watch_resumed(api: Api<Job>, count: usize) -> anyhow::Result<Instant> {
    let config = watcher::Config::default().labels(&format!("{RESUMED_LABEL}=yes"));
    let mut events = watcher(api, config).boxed();
    let mut done = HashSet::new();
    while let Some(event) = events.next().await {
        if let watcher::Event::Apply(job) | watcher::Event::InitApply(job) =
            event.context("watching the resumed jobs")?
            && resumed(&job)
        {
            done.insert(kube::ResourceExt::name_any(&job));
            if done.len() == count {
                return Ok(Instant::now());
            }
        }
    }
    anyhow::bail!("the job watch ended")
}

/// Watches the Job `name` until it is seen resumed.
async fn until_resumed(api: Api<Job>, name: String) -> anyhow::Result<Instant> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).boxed();
    while let Some(event) = events.next().await {
        if let watcher::Event::Apply(job) | watcher::Event::InitApply(job) =
            event.context("watching the job")?
            && resumed(&job)
        {
            return Ok(Instant::now());
        }
    }
    anyhow::bail!("the job watch ended")
}

/// What the Job controller writes when a Job completes.
async fn complete(jobs: &Api<Job>, name: &str) -> anyhow::Result<Instant> {
    let status = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("completing job {name}"))?;
    Ok(Instant::now())
}

/// Whether the controller has looked at the Gate (it reports on its Job, and has seen
/// the Job it resumes).
fn looked_at(gate: &Gate) -> bool {
    gate.status.as_ref().is_some_and(|s| {
        s.results
            .first()
            .is_some_and(|r| r.message.contains("Complete"))
            && (gate.spec.resume.is_empty() || s.resume.first().is_some_and(|r| r.uid.is_some()))
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

/// `count` Gates each on its own Job (each resuming a suspended Job of its own with
/// [`Resume::Yes`]); every Job completed from `clients` clients.
pub async fn many(
    server: &ServerProcess,
    count: usize,
    clients: usize,
    resume: Resume,
) -> anyhow::Result<ManyResult> {
    let client = server.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let gates: Api<Gate> = Api::namespaced(client.clone(), "default");
    for i in 0..count {
        create_pair(&jobs, &gates, "", i, resume).await?;
    }
    let (ready, looked) = oneshot::channel();
    let watching = tokio::spawn(watch_gates(gates, count, ready));
    let resuming =
        (resume == Resume::Yes).then(|| tokio::spawn(watch_resumed(jobs.clone(), count)));
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
    let (mut all_open, writes) = tokio::time::timeout(HANG, watching)
        .await
        .context("not every gate opened")???;
    if let Some(resuming) = resuming {
        all_open = tokio::time::timeout(HANG, resuming)
            .await
            .context("not every job was resumed")???;
    }
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
/// completion's acknowledgement until a watcher sees the Gate Open — or, with
/// [`Resume::Yes`], the Job the Gate resumes seen resumed.
pub async fn latency_ms(
    server: &ServerProcess,
    samples: usize,
    resume: Resume,
) -> anyhow::Result<Vec<f64>> {
    let client = server.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let gates: Api<Gate> = Api::namespaced(client.clone(), "default");
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let resumed = create_pair(&jobs, &gates, "l", i, resume).await?;
        let (ready, looked) = oneshot::channel();
        let opened = tokio::spawn(until_open(gates.clone(), format!("lg{i}"), ready));
        let resuming =
            (resume == Resume::Yes).then(|| tokio::spawn(until_resumed(jobs.clone(), resumed)));
        tokio::time::timeout(HANG, looked)
            .await
            .context("the controller did not look at the gate")??;
        let acknowledged = complete(&jobs, &format!("lj{i}")).await?;
        let mut open = tokio::time::timeout(HANG, opened)
            .await
            .context("the gate did not open")???;
        if let Some(resuming) = resuming {
            open = tokio::time::timeout(HANG, resuming)
                .await
                .context("the job was not resumed")???;
        }
        times.push(crate::report::ms(
            open.saturating_duration_since(acknowledged),
        ));
    }
    Ok(times)
}
