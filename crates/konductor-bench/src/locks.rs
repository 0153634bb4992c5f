//! Locks: how fast a grant comes on an idle server, how fast a release hands the lock
//! to the next waiter, and how many handovers a Mutex passed around many holders makes
//! per second — all through the SDK's guards, as a program would use them.

use std::time::Instant;

use anyhow::Context as _;
use konductor_api::locks::{LockKind, Mutex, MutexSpec, Permit, permit_name};
use konductor_sdk::locks::{Claim, Locks, Wait};
use konductor_sdk::{ConnectOptions, connect};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;

use crate::report::ms;
use crate::server::ServerProcess;

/// The SDK's locks on `server`, with a fresh Mutex named `mutex`, and the connection.
async fn connected(
    server: &ServerProcess,
    mutex: &str,
) -> anyhow::Result<(Locks, konductor_sdk::Connection)> {
    let connection = connection_to(server).await?;
    Api::<Mutex>::namespaced(connection.client.clone(), "default")
        .create(
            &PostParams::default(),
            &Mutex::new(mutex, MutexSpec { ttl: "5m".into() }),
        )
        .await
        .with_context(|| format!("creating mutex {mutex}"))?;
    Ok((Locks::new(&connection), connection))
}

/// An SDK connection to `server`, in namespace `default`.
pub async fn connection_to(server: &ServerProcess) -> anyhow::Result<konductor_sdk::Connection> {
    Ok(connect(&ConnectOptions {
        kubeconfig: Some(server.kubeconfig.clone()),
        ..ConnectOptions::default()
    })
    .await?)
}

/// [`connected`], with the client.
async fn locks_on(server: &ServerProcess, mutex: &str) -> anyhow::Result<(Locks, kube::Client)> {
    let (locks, connection) = connected(server, mutex).await?;
    Ok((locks, connection.client))
}

/// Milliseconds from asking for a free Mutex to holding it, `samples` times.
pub async fn acquire_ms(server: &ServerProcess, samples: usize) -> anyhow::Result<Vec<f64>> {
    let (locks, _) = locks_on(server, "acquire").await?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let claim = Claim::mutex("acquire", &format!("holder-{i}"));
        let started = Instant::now();
        let guard = locks.acquire(&claim, Wait::Forever).await?;
        times.push(ms(started.elapsed()));
        guard.release().await?;
    }
    Ok(times)
}

/// Milliseconds from asking for three free Mutexes at once (`Locks::hold_all`: taken one
/// by one in the global order) to holding all three, `samples` times.
pub async fn hold_three_ms(server: &ServerProcess, samples: usize) -> anyhow::Result<Vec<f64>> {
    let (locks, _) = locks_on(server, "three-a").await?;
    for name in ["three-b", "three-c"] {
        locks
            .create(LockKind::Mutex, name, &serde_json::json!({"ttl": "5m"}))
            .await?;
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let holder = format!("holder-{i}");
        let claims: Vec<Claim> = ["three-c", "three-a", "three-b"]
            .iter()
            .map(|name| Claim::mutex(name, &holder))
            .collect();
        let started = Instant::now();
        let held = locks.hold_all(&claims, Wait::Forever).await?;
        times.push(ms(started.elapsed()));
        held.release().await?;
    }
    Ok(times)
}

/// Wall times (ms) of `runs` `koncli` processes each running `true` under `args`
/// (`mutex run a`, `run --hold mutex/a --hold …`), start to exit, alternating between
/// the two command lines: `(first's, second's)`. The locks are made on first use by a
/// run before the clock starts.
pub async fn koncli_runs_ms(
    server: &ServerProcess,
    koncli: &std::path::Path,
    first: &[&str],
    second: &[&str],
    runs: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let once = |args: &[&str]| {
        let mut command = tokio::process::Command::new(koncli);
        command
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(args)
            .args(["--", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let what = args.join(" ");
        async move {
            let started = Instant::now();
            let status = command
                .status()
                .await
                .with_context(|| format!("running {}", koncli.display()))?;
            anyhow::ensure!(status.success(), "koncli {what} exited with {status}");
            Ok::<f64, anyhow::Error>(ms(started.elapsed()))
        }
    };
    once(first).await?;
    once(second).await?;
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        a.push(once(first).await?);
        b.push(once(second).await?);
    }
    Ok((a, b))
}

/// Milliseconds from a holder starting to release to the waiting holder holding it.
pub async fn handover_ms(server: &ServerProcess, samples: usize) -> anyhow::Result<Vec<f64>> {
    let (locks, client) = locks_on(server, "handover").await?;
    let permits: Api<Permit> = Api::namespaced(client, "default");
    let mut held = locks
        .acquire(&Claim::mutex("handover", "holder-0"), Wait::Forever)
        .await?;
    let mut times = Vec::with_capacity(samples);
    for i in 1..=samples {
        let waiter = {
            let locks = locks.clone();
            let claim = Claim::mutex("handover", &format!("holder-{i}"));
            tokio::spawn(async move {
                let guard = locks.acquire(&claim, Wait::Forever).await;
                (Instant::now(), guard)
            })
        };
        // The waiter's claim is queued before the release is timed.
        let queued = permit_name(LockKind::Mutex, "handover", &format!("holder-{i}"));
        await_condition(permits.clone(), &queued, |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.position.is_some())
        })
        .await?;
        let released = Instant::now();
        held.release().await?;
        let (granted, guard) = waiter.await?;
        times.push(ms(granted.duration_since(released)));
        held = guard?;
    }
    held.release().await?;
    Ok(times)
}

/// What a relay of handovers measured.
pub struct Relay {
    /// Handovers per second.
    pub per_s: f64,
    /// Durable writes (API writes) per handover, from the server's `/metrics`.
    pub writes: f64,
    /// Commits (fsyncs: concurrent writes share one) per handover.
    pub commits: f64,
}

/// Handovers per second of one Mutex `name` passed among `holders` holders, each taking it
/// `rounds` times, with the writes and commits each handover cost.
pub async fn handovers_per_s(
    server: &ServerProcess,
    name: &str,
    holders: usize,
    rounds: usize,
) -> anyhow::Result<Relay> {
    let (locks, client) = locks_on(server, name).await?;
    relay(
        server,
        &locks,
        &client,
        LockKind::Mutex,
        name,
        holders,
        rounds,
    )
    .await
}

/// Grants per second of a RateLimit named `name` whose limit is far above demand
/// (10,000 per second), taken and given back by `holders` holders `rounds` times
/// each, as [`handovers_per_s`] passes a Mutex around; with `max_concurrent` 1 it is
/// passed around one holder at a time, as a Mutex is.
pub async fn rate_limit_grants_per_s(
    server: &ServerProcess,
    name: &str,
    max_concurrent: Option<i32>,
    holders: usize,
    rounds: usize,
) -> anyhow::Result<Relay> {
    let connection = connection_to(server).await?;
    let locks = Locks::new(&connection);
    locks
        .create(
            LockKind::RateLimit,
            name,
            &serde_json::json!({
                "limit": konductor_api::ratelimit::MAX_LIMIT,
                "window": "1s",
                "maxConcurrent": max_concurrent,
            }),
        )
        .await
        .with_context(|| format!("creating ratelimit {name}"))?;
    relay(
        server,
        &locks,
        &connection.client,
        LockKind::RateLimit,
        name,
        holders,
        rounds,
    )
    .await
}

/// `holders` holders each taking the `kind` lock `name` and giving it back `rounds`
/// times: grants per second, and the writes and commits each cost.
async fn relay(
    server: &ServerProcess,
    locks: &Locks,
    client: &kube::Client,
    kind: LockKind,
    name: &str,
    holders: usize,
    rounds: usize,
) -> anyhow::Result<Relay> {
    let counts = || async {
        (
            server
                .metric(client, "konductor_server_writes_total")
                .await
                .unwrap_or(0.0),
            server
                .metric(client, "konductor_server_commits_total")
                .await
                .unwrap_or(0.0),
        )
    };
    let (writes_before, commits_before) = counts().await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..holders)
        .map(|h| {
            let locks = locks.clone();
            let claim = Claim::new(
                kind,
                name,
                &format!("runner-{h}"),
                konductor_api::locks::PermitMode::Exclusive,
            );
            tokio::spawn(async move {
                for _ in 0..rounds {
                    let guard = locks.acquire(&claim, Wait::Forever).await?;
                    guard.release().await?;
                }
                Ok::<_, konductor_sdk::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the permit statuses written after the fact land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (writes_after, commits_after) = counts().await;
    let handovers = (holders * rounds) as f64;
    Ok(Relay {
        per_s: handovers / elapsed,
        writes: (writes_after - writes_before) / handovers,
        commits: (commits_after - commits_before) / handovers,
    })
}

/// What a handover cost the server's watches.
pub struct FanOut {
    /// Watch events sent per handover (to every watcher: the controller's and the
    /// clients').
    pub events: f64,
    /// Durable writes per handover: each is sent to every watcher it matches, so
    /// events per write is the fan-out itself.
    pub writes: f64,
    /// Handovers per second while they were counted.
    pub per_s: f64,
}

/// How many Permits the controller has answered (written a status on): every claim
/// looked at, before a measurement starts.
pub async fn answered_permits(permits: &Api<Permit>) -> kube::Result<usize> {
    Ok(permits
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|p| p.status.is_some())
        .count())
}

/// Watch events the server sent per handover of a Mutex with `waiters` clients queued
/// on it, each with its own watches (as separate processes have: `koncli mutex run`),
/// over `handovers` handovers with the queue kept full (a holder queues again after
/// its release): what one handover costs in fan-out, from the server's `/metrics`.
/// `None` from a server that does not count the events it sends.
pub async fn events_per_handover(
    server: &ServerProcess,
    waiters: usize,
    handovers: usize,
) -> anyhow::Result<Option<FanOut>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (locks, connection) = connected(server, "fanout").await?;
    let held = locks
        .acquire(&Claim::mutex("fanout", "first"), Wait::Forever)
        .await?;
    let granted = Arc::new(AtomicUsize::new(0));
    let (reached, mut enough) = tokio::sync::watch::channel(false);
    let reached = Arc::new(reached);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..waiters {
        // A client of its own: its own watches of the lock and its permits.
        let locks = Locks::new(&connection);
        let (granted, reached) = (granted.clone(), reached.clone());
        tasks.spawn(async move {
            let claim = Claim::mutex("fanout", &format!("waiter-{w}"));
            while !*reached.borrow() {
                let guard = locks.acquire(&claim, Wait::Forever).await?;
                if granted.fetch_add(1, Ordering::SeqCst) + 1 >= handovers {
                    reached.send_replace(true);
                }
                guard.release().await?;
            }
            Ok::<_, konductor_sdk::Error>(())
        });
    }
    // Every waiter queued, and every claim's first status written, before counting.
    let permits: Api<Permit> = Api::namespaced(connection.client.clone(), "default");
    let mutexes: Api<Mutex> = Api::namespaced(connection.client.clone(), "default");
    loop {
        let answered = answered_permits(&permits).await?;
        let queued = mutexes
            .get("fanout")
            .await?
            .status
            .map_or(0, |s| s.claims.waiting.len());
        if answered == waiters + 1 && queued == waiters {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events_sent = || {
        server.metric(
            &connection.client,
            "konductor_server_watch_events_sent_total",
        )
    };
    let writes = || server.metric(&connection.client, "konductor_server_writes_total");
    let Some(before) = events_sent().await else {
        return Ok(None);
    };
    let writes_before = writes().await.unwrap_or(f64::NAN);
    let started = Instant::now();
    held.release().await?;
    tokio::select! {
        reached = enough.wait_for(|reached| *reached) => {
            reached?;
        }
        Some(ended) = tasks.join_next() => {
            anyhow::bail!("a waiter stopped before {handovers} handovers: {ended:?}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = events_sent().await.unwrap_or(f64::NAN);
    let writes_after = writes().await.unwrap_or(f64::NAN);
    let counted = granted.load(Ordering::SeqCst) as f64;
    tasks.abort_all();
    Ok(Some(FanOut {
        events: (after - before) / counted,
        writes: (writes_after - writes_before) / counted,
        per_s: counted / elapsed,
    }))
}
