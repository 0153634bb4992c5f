//! A Once under `kill -9` of `konductor server` in the middle of a run, with real
//! processes: five SDK runs of one key are claimed (one executing, four waiting) when
//! the server is killed; after it comes back every run returns, the work has run once
//! per key, and a key whose outcome was recorded before the kill never runs again.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connection, kill_9_and_restart, start_server};
use konductor_api::once::{AttemptOutcome, Once, OncePhase};
use konductor_sdk::once::{Onces, Ran};
use kube::Api;
use kube::runtime::wait::await_condition;

/// The longest the test may wait for anything before calling it a hang.
const HANG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recorded_outcomes_hold_across_kill_9_of_the_server_mid_run() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_server(dir.path(), &[]);
    let connection = connection(dir.path()).await;
    let onces = Onces::new(&connection);
    // Every execution of the work: (key, token).
    let ran: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let work = |key: &'static str, pause: Duration| {
        let ran = ran.clone();
        move |token: i64| async move {
            tokio::time::sleep(pause).await;
            ran.lock().unwrap().push((key.to_owned(), token));
            Ok::<_, String>(())
        }
    };

    let done = onces
        .run("m", Some("v1"), "before", work("v1", Duration::ZERO))
        .await
        .unwrap();
    assert!(matches!(done, Ran::Executed { token: 1, .. }), "{done:?}");

    let runs: Vec<_> = (0..5)
        .map(|i| {
            let (onces, work) = (onces.clone(), work("v2", Duration::from_millis(1500)));
            tokio::spawn(async move { onces.run("m", Some("v2"), &format!("r{i}"), work).await })
        })
        .collect();
    let api: Api<Once> = Api::namespaced(connection.client.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(api.clone(), "m", |o: Option<&Once>| {
            o.and_then(|o| o.status.as_ref()).is_some_and(|s| {
                s.key == "v2" && s.executor.is_some() && s.claims.waiting_count == 4
            })
        }),
    )
    .await
    .unwrap()
    .unwrap();

    let server = kill_9_and_restart(first, dir.path()).await;

    for run in runs {
        let outcome = tokio::time::timeout(HANG, run).await.unwrap().unwrap();
        assert!(outcome.is_ok(), "a run failed: {outcome:?}");
    }
    let late = onces
        .run("m", Some("v1"), "after", work("v1", Duration::ZERO))
        .await
        .unwrap();
    assert!(matches!(late, Ran::AlreadyDone(_)), "{late:?}");

    let ran = ran.lock().unwrap().clone();
    let keys: Vec<&str> = ran.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["v1", "v2"], "each key ran once: {ran:?}");
    let status = api.get("m").await.unwrap().status.unwrap();
    assert_eq!(
        (status.phase, status.key.as_str()),
        (OncePhase::Succeeded, "v2")
    );
    let succeeded: Vec<_> = status
        .history
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Succeeded)
        .map(|a| (a.key.as_str(), a.fencing_token))
        .collect();
    assert_eq!(succeeded, [("v1", 1), ("v2", 2)]);
    drop(server);
}
