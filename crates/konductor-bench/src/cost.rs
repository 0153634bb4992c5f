//! What clients cost an API server, read off the embedded server's `/metrics`:
//! requests per second and watch events sent per second while many clients wait at a
//! barrier, wait in a lock's queue or hold a Semaphore (at the default ttl: each claim
//! renewed every 50 s), beside as many pollers following the original Go SDK's
//! published wait — a window of steady state each, on a fresh server.

use std::time::Duration;

use anyhow::{Context as _, bail};
use konductor_api::locks::{CommonLockSpec, LockKind};
use konductor_api::{Barrier, BarrierSpec};
use konductor_sdk::locks::{Claim, Locks, Wait};
use konductor_sdk::{Barriers, ConnectOptions, Connection, connect};
use kube::Api;

use crate::server::ServerProcess;

/// Who the clients are.
#[derive(Debug, Clone, Copy)]
pub enum Clients {
    /// `Barriers::wait` on a barrier that does not open.
    BarrierWaiters,
    /// The original Go SDK's wait loop on the same barrier (GETs: 2 s, then 1 s × 1.5
    /// up to 5 s).
    Pollers,
    /// `acquire` queued behind the holder of a Mutex, each with its own watches.
    LockWaiters,
    /// Holders of a Semaphore with a permit for each, each with its own watches.
    Holders,
}

impl Clients {
    /// The figure's name.
    pub fn name(self) -> &'static str {
        match self {
            Clients::BarrierWaiters => "barrier_waiters",
            Clients::Pollers => "go_sdk_pollers",
            Clients::LockWaiters => "lock_waiters",
            Clients::Holders => "semaphore_holders",
        }
    }
}

/// What the clients cost the server over the window.
pub struct Rates {
    /// API requests served per second.
    pub requests_per_s: f64,
    /// Watch events sent per second (to all watchers together).
    pub events_per_s: f64,
}

/// `n` clients of the kind given, measured over `window` once they are all in place.
pub async fn measure(
    server: &ServerProcess,
    clients: Clients,
    n: usize,
    window: Duration,
) -> anyhow::Result<Rates> {
    let connection = connect(&ConnectOptions {
        kubeconfig: Some(server.kubeconfig.clone()),
        ..ConnectOptions::default()
    })
    .await?;
    let mut tasks = tokio::task::JoinSet::new();
    let (ready, mut readiness) = tokio::sync::mpsc::channel::<()>(n.max(1));
    match clients {
        Clients::BarrierWaiters | Clients::Pollers => {
            let barriers = Barriers::new(&connection);
            let spec = BarrierSpec::new(i32::try_from(n + 1)?);
            barriers.create("cost", spec).await?;
            for _ in 0..n {
                let ready = ready.clone();
                match clients {
                    Clients::Pollers => {
                        let api: Api<Barrier> =
                            Api::namespaced(connection.client.clone(), "default");
                        tasks.spawn(async move {
                            let _ = ready.send(()).await;
                            crate::release::poll_like_the_go_sdk(api, "cost".into()).await;
                            Ok(())
                        });
                    }
                    _ => {
                        let barriers = barriers.clone();
                        tasks.spawn(async move {
                            let mut ready = Some(ready);
                            barriers
                                .wait("cost", None, |_| {
                                    if let Some(ready) = ready.take() {
                                        let _ = ready.try_send(());
                                    }
                                })
                                .await?;
                            Ok(())
                        });
                    }
                }
            }
        }
        Clients::LockWaiters | Clients::Holders => {
            let (kind, permits) = match clients {
                Clients::Holders => (LockKind::Semaphore, Some(i32::try_from(n)?)),
                _ => (LockKind::Mutex, None),
            };
            let spec = CommonLockSpec {
                permits,
                ..CommonLockSpec::default()
            };
            Locks::new(&connection).create(kind, "cost", &spec).await?;
            let first = match clients {
                Clients::LockWaiters => Some(hold(&connection, kind, "first").await?),
                _ => None,
            };
            for c in 0..n {
                let (ready, connection) = (ready.clone(), connection.clone());
                tasks.spawn(async move {
                    let locks = Locks::new(&connection);
                    let claim = claim(kind, &format!("client-{c}"));
                    let _guard = locks.acquire(&claim, Wait::Forever).await?;
                    let _ = ready.send(()).await;
                    std::future::pending::<()>().await;
                    Ok(())
                });
            }
            tasks.spawn(async move {
                let _first = first;
                std::future::pending::<()>().await;
                Ok::<_, konductor_sdk::Error>(())
            });
        }
    }
    drop(ready);
    if let Clients::LockWaiters = clients {
        // Queued claims say nothing: every one's Permit (and the holder's) is there.
        let permits: Api<konductor_api::locks::Permit> =
            Api::namespaced(connection.client.clone(), "default");
        while permits.list(&Default::default()).await?.items.len() < n + 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        for _ in 0..n {
            tokio::select! {
                _ = readiness.recv() => {}
                Some(ended) = tasks.join_next() => bail!("a client ended before the window: {ended:?}"),
            }
        }
    }
    // A moment for the last watches and status writes to settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rates = rates_over(server, &connection, window).await;
    tasks.abort_all();
    rates
}

/// A claim on `kind` lock `cost` by `holder`, held.
async fn hold(
    connection: &Connection,
    kind: LockKind,
    holder: &str,
) -> anyhow::Result<konductor_sdk::locks::Guard> {
    Ok(Locks::new(connection)
        .acquire(&claim(kind, holder), Wait::Forever)
        .await?)
}

/// `holder`'s claim on the `kind` lock `cost`.
fn claim(kind: LockKind, holder: &str) -> Claim {
    match kind {
        LockKind::Semaphore => Claim::semaphore("cost", holder),
        _ => Claim::mutex("cost", holder),
    }
}

/// Requests and watch events per second over `window`, from the server's counters.
async fn rates_over(
    server: &ServerProcess,
    connection: &Connection,
    window: Duration,
) -> anyhow::Result<Rates> {
    let read = || async {
        let client = &connection.client;
        Some((
            server
                .metric(client, "konductor_server_requests_total")
                .await?,
            server
                .metric(client, "konductor_server_watch_events_sent_total")
                .await
                .unwrap_or(0.0),
        ))
    };
    let (requests, events) = read()
        .await
        .context("the server does not count the requests it serves")?;
    tokio::time::sleep(window).await;
    let (requests_after, events_after) = read().await.context("the server went away")?;
    let seconds = window.as_secs_f64();
    Ok(Rates {
        requests_per_s: (requests_after - requests) / seconds,
        events_per_s: (events_after - events) / seconds,
    })
}
