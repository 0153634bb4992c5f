//! `WaitGroups` against an in-process `konductor server` with its controller: the
//! `run` recipe records each worker's outcome, a finished member runs nothing again,
//! and a held member renewed past its ttl stays alive.

mod common;

use common::LIMIT;
use konductor_api::waitgroup::{WaitGroupPhase, WaitGroupSpec};
use konductor_sdk::waitgroup::{Ran, WaitGroups};

#[tokio::test]
async fn run_records_each_workers_outcome_and_a_finished_member_runs_nothing() {
    let (_running, connection) = common::start().await;
    let groups = WaitGroups::new(&connection);
    let spec = WaitGroupSpec {
        expected: Some(3),
        max_failed: 1,
        // Renewed every ~0.33 s; the work below outlives several ttls.
        member_ttl: Some("2s".to_owned()),
        ..WaitGroupSpec::default()
    };
    groups.create("batch", spec).await.unwrap();
    let long = groups
        .run("batch", "slow", "worker-0", || async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            Ok::<_, String>(0)
        })
        .await
        .unwrap();
    assert!(matches!(long, Ran::Finished(Ok(0))), "{long:?}");
    let failed = groups
        .run("batch", "bad", "worker-1", || async {
            Err::<(), _>("no input".to_owned())
        })
        .await
        .unwrap();
    assert!(matches!(failed, Ran::Finished(Err(_))), "{failed:?}");
    let again = groups
        .run("batch", "bad", "worker-2", || async { Ok::<_, String>(()) })
        .await
        .unwrap();
    // Failed for good (memberAttempts 1): a retry runs nothing, and says so.
    assert!(
        matches!(&again, Ran::FailedForGood(f) if f.message.as_deref() == Some("no input")),
        "{again:?}"
    );
    groups
        .run("batch", "last", "worker-3", || async {
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let group = tokio::time::timeout(LIMIT, groups.wait("batch", None, |_| {}))
        .await
        .unwrap()
        .unwrap();
    let status = group.status.clone().unwrap();
    assert_eq!(group.phase(), WaitGroupPhase::Done, "{status:?}");
    assert_eq!((status.done, status.failed), (2, 1));
    assert_eq!(status.failures[0].message.as_deref(), Some("no input"));
}
