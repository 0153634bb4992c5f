//! The SDK against an in-process `konductor server` with its controller.

mod common;

use common::{LIMIT, Running};
use konductor_api::{BarrierPhase, BarrierSpec, Outcome};
use konductor_sdk::{Arrived, Barriers, Error, WaitOutcome};
use konductor_testing::TestServer;

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
    tokio::time::timeout(LIMIT, async {
        while running.metric("konductor_server_watches").await < 300.0 {
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

/// Starts a create whose body never finishes arriving, so that it holds a mutating
/// slot of the server until the rest comes; the rest is returned.
async fn stalled_create(server: &TestServer) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncWriteExt;
    let token = std::fs::read_to_string(server.dir.path().join("token")).unwrap();
    let body = serde_json::json!({
        "apiVersion": "konductor.io/v1",
        "kind": "Barrier",
        "metadata": {"name": "stalled"},
        "spec": {"expected": 1},
    })
    .to_string();
    let head = format!(
        "POST /apis/konductor.io/v1/namespaces/default/barriers?dryRun=All HTTP/1.1\r\n\
         Host: konductor\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        token.trim(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.server.address)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..1]).await.unwrap();
    (stream, body[1..].to_owned())
}

#[tokio::test]
async fn a_busy_server_is_waited_out_not_reported() {
    // At its bound the server answers 429 with Retry-After; the SDK retries (as kube's
    // own client does) instead of failing the caller's request.
    let server = TestServer::start_with(
        |config| {
            config.tls = false;
            config.limits.max_mutating_requests_inflight = 1;
        },
        false,
    )
    .await;
    let barriers = Barriers::new(&server.connection().await);
    let (mut stalled, rest) = stalled_create(&server).await;
    // The stalled create holds the only slot once the server has read its head; until
    // then a create gets through, so creates are tried until one is refused.
    let mut attempt = 0;
    let refused_create = loop {
        attempt += 1;
        let create = {
            let barriers = barriers.clone();
            tokio::spawn(async move {
                barriers
                    .create(&format!("busy-{attempt}"), BarrierSpec::new(1))
                    .await
            })
        };
        let refused = tokio::time::timeout(LIMIT, async {
            loop {
                if server
                    .metric("konductor_server_requests_refused_total")
                    .await
                    > 0.0
                {
                    return true;
                }
                if create.is_finished() {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the create ends or is refused");
        if refused {
            break create;
        }
        create.await.unwrap().unwrap();
    };
    assert!(
        !refused_create.is_finished(),
        "the refused create is retried"
    );
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stalled.write_all(rest.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stalled.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    tokio::time::timeout(LIMIT, refused_create)
        .await
        .expect("the retried create ends")
        .unwrap()
        .expect("the retried create succeeds");
    let name = format!("busy-{attempt}");
    assert!(barriers.get(&name).await.is_ok(), "{name} was created");
}
