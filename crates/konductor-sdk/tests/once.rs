//! `Onces::run` against an in-process `konductor server` with its controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::LIMIT;
use konductor_api::once::{AttemptOutcome, OncePhase};
use konductor_sdk::Error;
use konductor_sdk::once::{Onces, Ran};

#[tokio::test]
async fn racing_runs_execute_the_work_once_and_the_others_see_it_done() {
    let (_running, connection) = common::start().await;
    let onces = Onces::new(&connection);
    let executed = Arc::new(AtomicUsize::new(0));
    let runs = (0..8).map(|i| {
        let (onces, executed) = (onces.clone(), executed.clone());
        tokio::spawn(async move {
            onces
                .run(
                    "migrate",
                    Some("v1"),
                    &format!("replica-{i}"),
                    |token| async move {
                        executed.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(token)
                    },
                )
                .await
        })
    });
    let results = tokio::time::timeout(LIMIT, futures::future::join_all(runs))
        .await
        .unwrap();
    let ran: Vec<_> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(executed.load(Ordering::SeqCst), 1);
    let executors = ran
        .iter()
        .filter(|r| matches!(r, Ran::Executed { .. }))
        .count();
    assert_eq!(executors, 1, "{ran:?}");
    let once = onces.get("migrate").await.unwrap();
    let status = once.status.unwrap();
    assert_eq!(
        (status.phase, status.key.as_str(), status.attempts),
        (OncePhase::Succeeded, "v1", 1)
    );
    // Later, the same key does not run again; a new key does.
    let again = onces
        .run("migrate", Some("v1"), "late", |_| async {
            Ok::<_, String>(0)
        })
        .await
        .unwrap();
    assert!(matches!(again, Ran::AlreadyDone(_)), "{again:?}");
    let next = onces
        .run("migrate", Some("v2"), "late", |t| async move {
            Ok::<_, String>(t)
        })
        .await
        .unwrap();
    assert_eq!(next, Ran::Executed { token: 2, value: 2 });
}

#[tokio::test]
async fn a_failed_attempt_is_recorded_and_the_next_run_tries_again() {
    let (_running, connection) = common::start().await;
    let onces = Onces::new(&connection);
    let failed = onces
        .run("job", None, "first", |_| async {
            Err::<(), _>("exit 3".to_owned())
        })
        .await;
    assert!(
        matches!(failed, Err(Error::WorkFailed { .. })),
        "{failed:?}"
    );
    let ran = onces
        .run("job", None, "second", |t| async move { Ok::<_, String>(t) })
        .await
        .unwrap();
    assert_eq!(ran, Ran::Executed { token: 2, value: 2 });
    let status = onces.get("job").await.unwrap().status.unwrap();
    let outcomes: Vec<_> = status.history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
    assert_eq!(status.history[0].message.as_deref(), Some("exit 3"));
}
