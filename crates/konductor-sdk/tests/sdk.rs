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
