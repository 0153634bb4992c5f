//! Release latency: from the acknowledgement of the arrival that opens a barrier to each
//! waiter returning — real `koncli barrier wait` processes, or in-process SDK waiters —
//! and, on the same barriers in the same rounds, pollers that follow the original Go
//! Konductor SDK's published wait algorithm.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use konductor_api::{Barrier, BarrierPhase, BarrierSpec, Outcome};
use konductor_sdk::{Barriers, Connection, Progress};
use kube::Api;
use kube::api::PostParams;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::python::PythonWorker;
use crate::server::ServerProcess;

/// The server metric counting open watch streams (absent on older servers).
pub const WATCHES_METRIC: &str = "konductor_server_watches";

/// How long any one waiter may take before the round is called broken.
const ROUND_LIMIT: Duration = Duration::from_secs(120);

/// Who waits at the barrier.
#[derive(Debug, Clone, Copy)]
pub enum Waiter<'a> {
    /// A `koncli barrier wait` process each (this `koncli`).
    Koncli(&'a Path),
    /// A `Barriers::wait` future each, in this process.
    Sdk,
    /// A Python process each, waiting with the Python SDK (`bench.py wait`).
    Python(&'a PythonWorker),
}

impl Waiter<'_> {
    /// The waiter's name in figures.
    pub fn label(&self) -> &'static str {
        match self {
            Waiter::Koncli(_) => "koncli",
            Waiter::Sdk => "sdk",
            Waiter::Python(_) => "python",
        }
    }
}

/// Tells one round's barrier from every other's in a run.
static ROUNDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The latencies of one scenario, in milliseconds (negative would mean a waiter
/// returned before the opening arrival's acknowledgement reached the bench).
#[derive(Debug, Default)]
pub struct Latencies {
    /// Our waiters.
    pub ours: Vec<f64>,
    /// The Go SDK's polling waiters.
    pub theirs: Vec<f64>,
}

/// The original Go SDK's wait loop: a fixed 2 s "operator delay", then GETs with a
/// backoff from 1 s, ×1.5 per try, capped at 5 s, with 10 % jitter.
pub async fn poll_like_the_go_sdk(api: Api<Barrier>, name: String) -> Instant {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut backoff = Duration::from_secs(1);
    loop {
        if let Ok(barrier) = api.get(&name).await
            && barrier.phase() == BarrierPhase::Open
        {
            return Instant::now();
        }
        tokio::time::sleep(backoff.mul_f64(0.9 + 0.2 * unit_random())).await;
        backoff = backoff.mul_f64(1.5).min(Duration::from_secs(5));
    }
}

/// A uniform number in [0, 1).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// `at − origin` in milliseconds, negative when `at` is earlier.
fn signed_ms(at: Instant, origin: Instant) -> f64 {
    match at.checked_duration_since(origin) {
        Some(after) => crate::report::ms(after),
        None => -crate::report::ms(origin - at),
    }
}

/// Starts a `koncli barrier wait` process; it says `ready` once it sees the barrier
/// waiting, and the task returns when it exits (with 0).
fn spawn_koncli(
    koncli: &Path,
    kubeconfig: &Path,
    name: &str,
    ready: mpsc::Sender<()>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Instant>>> {
    let mut child = Command::new(koncli)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["barrier", "wait", name, "--timeout", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", koncli.display()))?;
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    Ok(tokio::spawn(async move {
        tokio::spawn(async move {
            let mut told = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if !told && line.contains("waiting for barrier") {
                    told = ready.send(()).await.is_ok();
                }
            }
        });
        let status = child.wait().await?;
        let exited = Instant::now();
        if !status.success() {
            bail!("koncli barrier wait exited with {status}");
        }
        Ok(exited)
    }))
}

/// Starts an in-process SDK waiter, saying `ready` once it sees the barrier waiting.
fn spawn_sdk(
    barriers: Barriers,
    name: String,
    ready: mpsc::Sender<()>,
) -> JoinHandle<anyhow::Result<Instant>> {
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let outcome = barriers
            .wait(&name, Some(ROUND_LIMIT), |progress| {
                if let Progress::Waiting(_) = progress
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.try_send(());
                }
            })
            .await?;
        let returned = Instant::now();
        match outcome {
            konductor_sdk::WaitOutcome::Open(_) => Ok(returned),
            other => bail!("the barrier did not open: {other:?}"),
        }
    })
}

/// Starts a Python process waiting with the Python SDK; it is ready at once (the
/// server's count of open watches says when it watches), and the task returns when it
/// says the barrier opened. The process then lingers until `linger` turns true, so the
/// interpreters' exits do not take the CPU from waiters still being released.
fn spawn_python(
    worker: &PythonWorker,
    server: &ServerProcess,
    name: &str,
    ready: mpsc::Sender<()>,
    mut linger: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Instant>>> {
    let mut child = worker
        .command(server, &["wait", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting bench.py wait")?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    Ok(tokio::spawn(async move {
        let _ = ready.send(()).await;
        while let Some(line) = lines.next_line().await? {
            if line == "open" {
                let returned = Instant::now();
                tokio::spawn(async move {
                    let _ = linger.wait_for(|over| *over).await;
                    drop(stdin);
                    match child.wait().await {
                        Ok(status) if status.success() => {}
                        other => eprintln!("warning: bench.py wait ended with {other:?}"),
                    }
                });
                return Ok(returned);
            }
        }
        bail!(
            "bench.py wait exited with {} before the barrier opened",
            child.wait().await?
        )
    }))
}

/// Why a round's waiters could not all start: the first one that ended with an error.
async fn first_failure(waiters: Vec<JoinHandle<anyhow::Result<Instant>>>) -> anyhow::Error {
    for waiter in waiters.into_iter().filter(JoinHandle::is_finished) {
        match waiter.await {
            Ok(Err(error)) => return error.context("a waiter ended before it started watching"),
            Err(panicked) => return anyhow::Error::new(panicked).context("a waiter panicked"),
            Ok(Ok(_)) => {}
        }
    }
    anyhow::anyhow!("a waiter ended before it started watching")
}

/// Waits until the server has `count` watches open (all waiters connected), when it
/// reports them; otherwise gives the waiters a moment.
async fn until_watching(server: &ServerProcess, client: &kube::Client, count: f64) {
    let settle = async {
        while server
            .metric(client, WATCHES_METRIC)
            .await
            .is_some_and(|open| open < count)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    if server.metric(client, WATCHES_METRIC).await.is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    } else if tokio::time::timeout(Duration::from_secs(30), settle)
        .await
        .is_err()
    {
        eprintln!("warning: the waiters' watches did not all show up in the server's metrics");
    }
}

/// Runs `rounds` rounds of `n` waiters at a fresh barrier each (expected 1); the first
/// `poller_rounds` rounds also have `n` Go-SDK pollers.
pub async fn measure(
    server: &ServerProcess,
    waiter: Waiter<'_>,
    n: usize,
    rounds: usize,
    poller_rounds: usize,
) -> anyhow::Result<Latencies> {
    let client = server.client().await?;
    let connection = Connection {
        client: client.clone(),
        namespace: "default".into(),
        url: String::new(),
    };
    let barriers = Barriers::new(&connection);
    let api: Api<Barrier> = Api::namespaced(client.clone(), "default");
    let mut latencies = Latencies::default();
    for round in 0..rounds {
        let name = format!(
            "release-{}-{n}-{}",
            waiter.label(),
            ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        api.create(
            &PostParams::default(),
            &Barrier::new(&name, BarrierSpec::new(1)),
        )
        .await
        .with_context(|| format!("creating barrier {name}"))?;
        let before = server.metric(&client, WATCHES_METRIC).await.unwrap_or(0.0);
        let (ready, mut readied) = mpsc::channel(n.max(1));
        let (lingering_over, linger) = tokio::sync::watch::channel(false);
        let mut waiters = Vec::with_capacity(n);
        for _ in 0..n {
            waiters.push(match waiter {
                Waiter::Koncli(koncli) => {
                    spawn_koncli(koncli, &server.kubeconfig, &name, ready.clone())?
                }
                Waiter::Sdk => spawn_sdk(barriers.clone(), name.clone(), ready.clone()),
                Waiter::Python(worker) => {
                    spawn_python(worker, server, &name, ready.clone(), linger.clone())?
                }
            });
        }
        drop(ready);
        let pollers: Vec<_> = if round < poller_rounds {
            (0..n)
                .map(|_| tokio::spawn(poll_like_the_go_sdk(api.clone(), name.clone())))
                .collect()
        } else {
            Vec::new()
        };
        for _ in 0..n {
            let started = tokio::time::timeout(ROUND_LIMIT, readied.recv())
                .await
                .context("waiters did not start watching")?;
            if started.is_none() {
                return Err(first_failure(waiters).await);
            }
        }
        until_watching(server, &client, before + n as f64).await;

        barriers
            .arrive(&name, "opener", Outcome::Succeeded, None)
            .await
            .context("arriving")?;
        let acknowledged = Instant::now();
        for waiter in waiters {
            let returned = tokio::time::timeout(ROUND_LIMIT, waiter)
                .await
                .context("a waiter did not return")???;
            latencies.ours.push(signed_ms(returned, acknowledged));
        }
        let _ = lingering_over.send(true);
        for poller in pollers {
            let returned = tokio::time::timeout(ROUND_LIMIT, poller)
                .await
                .context("a poller did not return")??;
            latencies.theirs.push(signed_ms(returned, acknowledged));
        }
    }
    Ok(latencies)
}
