//! A RateLimit under `kill -9` of `konductor server` in the middle: nine claims on a
//! limit of 3 per 2 s window (SDK clients against a real server process), the server
//! killed once the first window's grants are made and started again. Every claim is
//! granted once, with rising fencing tokens, and no 2-second window ever holds more
//! than 3 of the grant times the controller recorded (each run reads its own Permit's
//! `grantedAt` while it holds the grant) — before and after the restart.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{connection, kill_9_and_restart, start_server};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use konductor_api::locks::{LockKind, Permit, PermitMode};
use konductor_sdk::locks::{Claim, Locks, Wait};
use kube::Api;

/// The longest the test may wait for anything before calling it a hang.
const HANG: Duration = Duration::from_secs(120);

const LIMIT: usize = 3;
const WINDOW: Duration = Duration::from_secs(2);
const RUNS: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_its_window_across_kill_9_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_server(dir.path(), &[]);
    let connection = connection(dir.path()).await;
    let locks = Locks::new(&connection);
    locks
        .create(
            LockKind::RateLimit,
            "r",
            &serde_json::json!({"limit": LIMIT, "window": "2s", "ttl": "10s"}),
        )
        .await
        .unwrap();
    let permits: Api<Permit> = Api::namespaced(connection.client.clone(), "default");
    let granted = Arc::new(AtomicUsize::new(0));

    // Nine claims at once; each holds its grant for a moment, as a short command would,
    // and reads when the controller says it was granted.
    let runs: Vec<_> = (0..RUNS)
        .map(|i| {
            let (locks, permits, granted) = (locks.clone(), permits.clone(), granted.clone());
            tokio::spawn(async move {
                let holder = format!("run-{i}");
                let claim = Claim::new(LockKind::RateLimit, "r", &holder, PermitMode::Exclusive);
                let guard = locks.acquire(&claim, Wait::Forever).await.unwrap();
                granted.fetch_add(1, Ordering::SeqCst);
                // (Read across the kill -9: the server may be down for a moment.)
                let permit = tokio::time::timeout(HANG, async {
                    loop {
                        match permits.get(guard.permit()).await {
                            Ok(permit) => return permit,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                })
                .await
                .expect("the Permit is read once the server is back");
                let at = permit
                    .status
                    .and_then(|s| s.granted_at)
                    .expect("a granted Permit says when")
                    .0;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let token = guard.token();
                guard.release().await.unwrap();
                (token, at)
            })
        })
        .collect();

    // The first window's grants are made: kill -9 in the middle of the run.
    tokio::time::timeout(HANG, async {
        while granted.load(Ordering::SeqCst) < LIMIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first window's grants are made");
    let server = kill_9_and_restart(first, dir.path()).await;

    let mut grants: Vec<(i64, Timestamp)> = Vec::new();
    for run in runs {
        let grant = tokio::time::timeout(HANG, run)
            .await
            .expect("every run is granted")
            .expect("a run failed");
        grants.push(grant);
    }
    grants.sort();
    let tokens: Vec<i64> = grants.iter().map(|g| g.0).collect();
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "each run got a token of its own: {grants:?}"
    );
    // Rising tokens: ordered by token, the grant times never go back.
    let times: Vec<Timestamp> = grants.iter().map(|g| g.1).collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "tokens rise with time: {grants:?}"
    );
    let window = SignedDuration::try_from(WINDOW).unwrap();
    let most = konductor_testing::most_in_any_window(&times, |t| t.checked_add(window).unwrap());
    assert!(most <= LIMIT, "{most} grants within {WINDOW:?}: {grants:?}");
    drop(server);
}
