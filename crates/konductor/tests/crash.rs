//! Crash and failover under load, with real processes: `konductor server` killed with
//! SIGKILL at random points during 1,000 concurrent arrivals, and the leading
//! `konductor operator` killed mid-storm. Nothing acknowledged is lost or doubled,
//! resourceVersions never go back, the barrier opens with the exact count, and a
//! watcher that lived through it all sees it open.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Process, ServerProcess, client, start_operator_for, start_server, start_server_at};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, arrival_name};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

const ARRIVALS: usize = 1_000;
const WRITERS: usize = 16;
/// The longest the whole storm may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(120);

/// `count` distinct random points in `1..ARRIVALS`, in order.
fn random_points(count: usize) -> Vec<usize> {
    let mut points = BTreeSet::new();
    while points.len() < count {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        points.insert(1 + (random as usize) % (ARRIVALS - 50));
    }
    points.into_iter().collect()
}

/// What the writers have had acknowledged.
#[derive(Default)]
struct Acknowledged {
    /// Arrival names whose create returned 201.
    created: Vec<String>,
    /// The resourceVersion each 201 carried.
    versions: Vec<u64>,
    /// Creates that found their arrival already there: an earlier attempt was
    /// committed but its answer was lost to a kill.
    found_on_retry: usize,
}

/// 1,000 arrivals for `barrier` from 16 concurrent writers, each retried through
/// outages until it is acknowledged; `progress` counts them.
async fn storm(
    client: kube::Client,
    barrier: &'static str,
    progress: tokio::sync::watch::Sender<usize>,
) -> Acknowledged {
    let arrivals: Api<Arrival> = Api::namespaced(client, "default");
    let next = Arc::new(Mutex::new(0usize));
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let progress = Arc::new(progress);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (arrivals, next, acknowledged, progress) = (
                arrivals.clone(),
                next.clone(),
                acknowledged.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let index = {
                        let mut next = next.lock().unwrap();
                        if *next == ARRIVALS {
                            return;
                        }
                        *next += 1;
                        *next - 1
                    };
                    let holder = format!("worker-{index}");
                    let name = arrival_name(barrier, &holder);
                    let arrival = Arrival::new(&name, ArrivalSpec::succeeded(barrier, &holder));
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match arrivals.create(&PostParams::default(), &arrival).await {
                            Ok(created) => {
                                let version = created.metadata.resource_version.unwrap();
                                let mut acknowledged = acknowledged.lock().unwrap();
                                acknowledged.created.push(name);
                                acknowledged.versions.push(version.parse().unwrap());
                                break;
                            }
                            Err(kube::Error::Api(status)) if status.code == 409 && attempts > 1 => {
                                acknowledged.lock().unwrap().found_on_retry += 1;
                                break;
                            }
                            // The server is down or restarting: back off and retry.
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    progress.send_modify(|done| *done += 1);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    Arc::into_inner(acknowledged).unwrap().into_inner().unwrap()
}

/// A watcher on one barrier that reconnects through outages; checks its
/// resourceVersion never goes back and returns it once Open.
async fn watch_until_open(client: kube::Client, name: &str) -> Barrier {
    let barriers: Api<Barrier> = Api::namespaced(client, "default");
    let selector = format!("metadata.name={name}");
    let mut changes = watcher(barriers, watcher::Config::default().fields(&selector))
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut last_version = 0u64;
    while let Some(change) = changes.next().await {
        let Ok(barrier) = change else { continue };
        let version: u64 = barrier
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            version >= last_version,
            "the watcher saw resourceVersion {version} after {last_version}"
        );
        last_version = version;
        if barrier.phase() == BarrierPhase::Open {
            return barrier;
        }
    }
    panic!("the watch ended");
}

/// The resourceVersion the server reports now, retried through outages.
async fn current_version(client: &kube::Client) -> u64 {
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    loop {
        if let Ok(list) = barriers.list(&ListParams::default().limit(1)).await {
            return list.metadata.resource_version.unwrap().parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_barrier(client: &kube::Client, name: &str) {
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    barriers
        .create(
            &PostParams::default(),
            &Barrier::new(name, BarrierSpec::new(ARRIVALS as i32)),
        )
        .await
        .unwrap();
}

/// Checks what the storm left behind: every acknowledged arrival stored once, the
/// exact count, no resourceVersion handed out twice.
async fn check_outcome(client: &kube::Client, acknowledged: &Acknowledged, opened: &Barrier) {
    let stored: Vec<Arrival> = Api::<Arrival>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let names: HashSet<String> = stored
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(stored.len(), ARRIVALS, "arrivals stored");
    assert_eq!(names.len(), ARRIVALS, "no arrival stored twice");
    for name in &acknowledged.created {
        assert!(names.contains(name), "acknowledged arrival {name} was lost");
    }
    assert_eq!(
        acknowledged.created.len() + acknowledged.found_on_retry,
        ARRIVALS
    );
    let distinct: HashSet<u64> = acknowledged.versions.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        acknowledged.versions.len(),
        "a resourceVersion was handed out twice"
    );
    let status = opened.status.as_ref().unwrap();
    assert_eq!(status.arrived, ARRIVALS as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn arrivals_survive_the_server_killed_ten_times_mid_storm() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_server(dir.path(), &[]);
    let address = first.url.trim_start_matches("https://").to_owned();
    let server = Arc::new(Mutex::new(Some(first)));
    let client = client(&dir.path().join("kubeconfig")).await;
    create_barrier(&client, "storm").await;

    let watcher = tokio::spawn(watch_until_open(client.clone(), "storm"));
    let (progress, mut done) = tokio::sync::watch::channel(0usize);
    let writers = tokio::spawn(storm(client.clone(), "storm", progress));

    let kill_points = random_points(12);
    let mut kills = 0;
    for point in &kill_points {
        done.wait_for(|n| *n >= *point).await.unwrap();
        let before = current_version(&client).await;
        let (server, dir, address) = (server.clone(), dir.path().to_owned(), address.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = server.lock().unwrap();
            let mut old: ServerProcess = slot.take().unwrap();
            old.child.kill().unwrap(); // SIGKILL: no shutdown path runs
            old.child.wait().unwrap();
            drop(old);
            *slot = Some(start_server_at(&dir, &address, &[]));
        })
        .await
        .unwrap();
        kills += 1;
        let after = current_version(&client).await;
        assert!(
            after >= before,
            "resourceVersion went back from {before} to {after} over a restart"
        );
    }
    let acknowledged = tokio::time::timeout(HANG, writers)
        .await
        .expect("the storm ends")
        .unwrap();
    let opened = match tokio::time::timeout(HANG, watcher).await {
        Ok(opened) => opened.unwrap(),
        Err(_) => panic!(
            "the watcher did not see the barrier open; it is {:?}",
            Api::<Barrier>::namespaced(client.clone(), "default")
                .get("storm")
                .await
                .map(|b| b.status)
        ),
    };
    assert!(kills >= 10, "{kills} kills");
    check_outcome(&client, &acknowledged, &opened).await;
    eprintln!(
        "{kills} kills at arrivals {kill_points:?}; {} acknowledged, {} found committed on retry",
        acknowledged.created.len(),
        acknowledged.found_on_retry
    );
}

/// Who holds the operator lease, once one of `candidates` does (watched, bounded).
async fn leader_among(client: &kube::Client, candidates: &[String]) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder_of = |lease: Option<&Lease>| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone())
            .filter(|h| candidates.contains(h))
    };
    let lease = konductor_testing::until(leases, "konductor-operator", |lease| {
        holder_of(lease).is_some()
    })
    .await;
    holder_of(lease.as_ref()).expect("a candidate holds the lease")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn arrivals_survive_the_leading_operator_killed_mid_storm() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--no-controller"]);
    let client = client(&server.kubeconfig).await;
    let mut operators: Vec<(String, Process)> = ["op-0", "op-1"]
        .into_iter()
        .map(|id| {
            (
                id.to_owned(),
                start_operator_for(&server.kubeconfig, id, "2s").0,
            )
        })
        .collect();
    create_barrier(&client, "failover").await;

    let watcher = tokio::spawn(watch_until_open(client.clone(), "failover"));
    let (progress, mut done) = tokio::sync::watch::channel(0usize);
    let writers = tokio::spawn(storm(client.clone(), "failover", progress));

    let mut killed = Vec::new();
    for (round, point) in [ARRIVALS / 3, 2 * ARRIVALS / 3].into_iter().enumerate() {
        done.wait_for(|n| *n >= point).await.unwrap();
        let running: Vec<String> = operators.iter().map(|(id, _)| id.clone()).collect();
        let leading = leader_among(&client, &running).await;
        let position = operators
            .iter()
            .position(|(id, _)| *id == leading)
            .expect("the leader is one of ours");
        let (id, mut process) = operators.remove(position);
        process.0.kill().unwrap(); // SIGKILL: the lease is not released
        process.0.wait().unwrap();
        killed.push(id);
        let replacement = format!("op-{}", round + 2);
        let started = start_operator_for(&server.kubeconfig, &replacement, "2s").0;
        operators.push((replacement, started));
    }
    let acknowledged = tokio::time::timeout(HANG, writers)
        .await
        .expect("the storm ends")
        .unwrap();
    let opened = tokio::time::timeout(HANG, watcher)
        .await
        .expect("the watcher sees the barrier open")
        .unwrap();
    check_outcome(&client, &acknowledged, &opened).await;
    let running: Vec<String> = operators.iter().map(|(id, _)| id.clone()).collect();
    let final_leader = leader_among(&client, &running).await;
    eprintln!("killed leaders {killed:?}; {final_leader} finished the storm");
}

/// What the lock holders saw, in order: (token, entering) — `true` on entering the
/// critical section, `false` on leaving it.
type Sections = Arc<Mutex<Vec<(i64, bool)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutex_survives_the_server_killed_mid_run_without_a_double_grant() {
    use konductor_api::locks::{Mutex as LockMutex, MutexSpec};
    use konductor_sdk::locks::{Claim, Locks, Wait};
    use konductor_sdk::{ConnectOptions, connect};

    const HOLDERS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let first = start_server(dir.path(), &[]);
    let address = first.url.trim_start_matches("https://").to_owned();
    let server = Arc::new(Mutex::new(Some(first)));
    let kubeconfig = dir.path().join("kubeconfig");
    let connection = connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig.clone()),
        ..ConnectOptions::default()
    })
    .await
    .unwrap();
    Api::<LockMutex>::namespaced(connection.client.clone(), "default")
        .create(
            &PostParams::default(),
            &LockMutex::new("relay", MutexSpec { ttl: "2s".into() }),
        )
        .await
        .unwrap();
    let locks = Locks::new(&connection);
    let sections: Sections = Arc::default();
    let (progress, mut done) = tokio::sync::watch::channel(0usize);
    let progress = Arc::new(progress);
    let holders: Vec<_> = (0..HOLDERS)
        .map(|h| {
            let (locks, sections, progress) = (locks.clone(), sections.clone(), progress.clone());
            tokio::spawn(async move {
                let claim = Claim::mutex("relay", &format!("holder-{h}"));
                // Asking is retried through outages (a create may fail while the server
                // is down; asking again finds the claim if it was made).
                let guard = loop {
                    match locks.acquire(&claim, Wait::Forever).await {
                        Ok(guard) => break guard,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                sections.lock().unwrap().push((guard.token(), true));
                tokio::time::sleep(Duration::from_millis(20)).await;
                sections.lock().unwrap().push((guard.token(), false));
                // A release lost to an outage leaves the grant to expire after the ttl.
                let _ = guard.release().await;
                progress.send_modify(|n| *n += 1);
            })
        })
        .collect();
    for point in [HOLDERS / 4, HOLDERS / 2] {
        done.wait_for(|n| *n >= point).await.unwrap();
        let (server, dir, address) = (server.clone(), dir.path().to_owned(), address.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = server.lock().unwrap();
            let mut old: ServerProcess = slot.take().unwrap();
            old.child.kill().unwrap(); // SIGKILL
            old.child.wait().unwrap();
            drop(old);
            *slot = Some(start_server_at(&dir, &address, &[]));
        })
        .await
        .unwrap();
    }
    for holder in holders {
        tokio::time::timeout(HANG, holder)
            .await
            .expect("every holder got its turn")
            .unwrap();
    }
    let sections = sections.lock().unwrap().clone();
    assert_eq!(sections.len(), 2 * HOLDERS);
    let mut last_token = 0;
    for pair in sections.chunks(2) {
        let [(entered, true), (left, false)] = pair else {
            panic!("two holders were inside at once: {sections:?}");
        };
        assert_eq!(entered, left, "{sections:?}");
        assert!(*entered > last_token, "tokens went back: {sections:?}");
        last_token = *entered;
    }
}
