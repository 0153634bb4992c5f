//! The SDK against an in-process `konductor server` with its controller.

mod common;

use common::{LIMIT, Running};
use konductor_api::{BarrierPhase, BarrierSpec, Outcome};
use konductor_sdk::{Arrived, Barriers, Error, WaitOutcome};

/// A server with its controller, and the SDK's barriers in its default namespace.
async fn start() -> (Running, Barriers) {
    let (running, connection) = common::start().await;
    (running, Barriers::new(&connection))
}

/// Two one-process stages: extract, then transform.
async fn create_pipeline(barriers: &Barriers) {
    for stage in ["extract", "transform"] {
        barriers.create(stage, BarrierSpec::new(1)).await.unwrap();
    }
}

#[tokio::test]
async fn a_stage_waits_works_and_arrives_at_the_next_barrier() {
    let (_running, barriers) = start().await;
    create_pipeline(&barriers).await;
    let stage = {
        let barriers = barriers.clone();
        tokio::spawn(async move {
            barriers
                .stage("extract", "transform", "t1", Some(LIMIT), || async {
                    Ok::<_, String>(42)
                })
                .await
        })
    };
    assert_eq!(
        barriers
            .arrive("extract", "e1", Outcome::Succeeded, None)
            .await
            .unwrap(),
        Arrived::Recorded
    );
    assert_eq!(stage.await.unwrap().unwrap(), Ok(42));
    match barriers
        .wait("transform", Some(LIMIT), |_| {})
        .await
        .unwrap()
    {
        WaitOutcome::Open(b) => assert_eq!(b.status.unwrap().arrivals, ["t1"]),
        other => panic!("transform should be open: {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_stage_reports_failure_so_the_next_barrier_fails_fast() {
    let (_running, barriers) = start().await;
    create_pipeline(&barriers).await;
    barriers
        .arrive("extract", "e1", Outcome::Succeeded, None)
        .await
        .unwrap();
    let result = barriers
        .stage("extract", "transform", "t1", Some(LIMIT), || async {
            Err::<(), _>("disk full")
        })
        .await
        .unwrap();
    assert_eq!(result, Err("disk full"));
    match barriers
        .wait("transform", Some(LIMIT), |_| {})
        .await
        .unwrap()
    {
        WaitOutcome::Failed(b) => {
            assert_eq!(b.phase(), BarrierPhase::Failed);
            let status = b.status.unwrap();
            assert_eq!(status.failures[0].message.as_deref(), Some("disk full"));
        }
        other => panic!("transform should have failed: {other:?}"),
    }
}

#[tokio::test]
async fn errors_name_the_barrier_and_the_cause() {
    let (_running, barriers) = start().await;
    let missing = barriers.get("nope").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }));
    assert_eq!(missing.to_string(), "barrier default/nope not found");
    barriers.create("dup", BarrierSpec::new(1)).await.unwrap();
    let taken = barriers
        .create("dup", BarrierSpec::new(1))
        .await
        .unwrap_err();
    assert_eq!(taken.to_string(), "barrier default/dup already exists");
    let invalid = barriers
        .create("bad", BarrierSpec::new(2).with_quorum(3))
        .await
        .unwrap_err();
    assert!(invalid.to_string().contains("spec.quorum"), "{invalid}");
}

#[tokio::test]
async fn three_hundred_waiters_in_one_process_are_all_released() {
    // The SDK speaks HTTP/2: every wait is a stream of one connection, and a server
    // allowing fewer streams than that would stall the rest (hyper's default is 200).
    let (running, barriers) = start().await;
    barriers.create("crowd", BarrierSpec::new(1)).await.unwrap();
    let waits: Vec<_> = (0..300)
        .map(|_| {
            let barriers = barriers.clone();
            tokio::spawn(async move { barriers.wait("crowd", Some(LIMIT), |_| {}).await })
        })
        .collect();
    // Every wait holds its watch open before the barrier opens.
    let watches = || async {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = running.client.request_text(request).await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("konductor_server_watches "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    tokio::time::timeout(LIMIT, async {
        while watches().await < 300 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("all 300 watches open at once");
    barriers
        .arrive("crowd", "last", Outcome::Succeeded, None)
        .await
        .unwrap();
    for wait in waits {
        let outcome = wait.await.unwrap().unwrap();
        assert!(matches!(outcome, WaitOutcome::Open(_)), "{outcome:?}");
    }
}
