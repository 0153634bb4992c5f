//! Two `konductor operator` processes against one `konductor server --no-controller`:
//! only the leader reconciles; when it is killed the standby takes over; SIGTERM
//! releases the lease.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Process, client, start_operator_for, start_operator_until, start_server};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, arrival_name};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};

/// Starts an operator and returns it with the address of its probe server, read from
/// its log.
fn start_operator(kubeconfig: &Path, identity: &str) -> (Process, String) {
    start_operator_for(kubeconfig, identity, "2s")
}

/// Reads one metric's value from an operator's /metrics.
fn metric(address: &str, name: &str) -> f64 {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from {body}"))
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("konductor-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Waits (bounded) until the lease is held by one of `candidates`, returning who.
async fn wait_for_holder(leases: &Api<Lease>, candidates: &[&str]) -> String {
    let candidates: Vec<String> = candidates.iter().map(|c| (*c).to_owned()).collect();
    let lease = tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            leases.clone(),
            "konductor-operator",
            move |l: Option<&Lease>| {
                l.and_then(|l| l.spec.as_ref())
                    .and_then(|s| s.holder_identity.as_ref())
                    .is_some_and(|h| candidates.contains(h))
            },
        ),
    )
    .await
    .expect("a leader is elected")
    .unwrap();
    lease.unwrap().spec.unwrap().holder_identity.unwrap()
}

/// Creates a one-arrival barrier, arrives, and returns who reported its opening.
async fn open_one(client: &kube::Client, name: &str) -> String {
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    let arrivals: Api<Arrival> = Api::namespaced(client.clone(), "default");
    barriers
        .create(
            &PostParams::default(),
            &Barrier::new(name, BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    arrivals
        .create(
            &PostParams::default(),
            &Arrival::new(&arrival_name(name, "p"), ArrivalSpec::succeeded(name, "p")),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(barriers, name, |b: Option<&Barrier>| {
            b.is_some_and(|b| b.phase() == BarrierPhase::Open)
        }),
    )
    .await
    .expect("the barrier opens")
    .unwrap();
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let selector = format!("involvedObject.name={name},reason=Opened");
    let mut opened = watcher(events, watcher::Config::default().fields(&selector))
        .applied_objects()
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(30), opened.next())
        .await
        .expect("an Opened event is recorded")
        .unwrap()
        .unwrap();
    event.reporting_instance.unwrap_or_default()
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--no-controller"]);
    let kubeconfig = server.kubeconfig.clone();
    let client = client(&kubeconfig).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");

    let (a, a_probes) = start_operator(&kubeconfig, "op-a");
    let (b, b_probes) = start_operator(&kubeconfig, "op-b");
    let leader = wait_for_holder(&leases, &["op-a", "op-b"]).await;
    let (mut leader_process, leader_probes, mut standby_process, standby_probes, standby) =
        if leader == "op-a" {
            (a, a_probes, b, b_probes, "op-b")
        } else {
            (b, b_probes, a, a_probes, "op-a")
        };

    assert_eq!(
        open_one(&client, "first").await,
        leader,
        "the leader reports"
    );
    assert!(
        metric(
            &leader_probes,
            "konductor_status_writes_total{kind=\"barrier\"}"
        ) >= 1.0
    );
    assert_eq!(metric(&leader_probes, "konductor_leader") as i64, 1);
    assert_eq!(
        metric(
            &standby_probes,
            "konductor_status_writes_total{kind=\"barrier\"}"
        ) as i64,
        0,
        "the standby never writes"
    );
    assert_eq!(metric(&standby_probes, "konductor_leader") as i64, 0);

    leader_process.0.kill().unwrap(); // SIGKILL: the lease is not released
    leader_process.0.wait().unwrap();
    assert_eq!(wait_for_holder(&leases, &[standby]).await, standby);
    assert_eq!(
        open_one(&client, "second").await,
        standby,
        "the new leader keeps barriers moving"
    );

    // SIGTERM: the leader shuts down gracefully and releases the lease.
    let status = Command::new("kill")
        .args(["-TERM", &standby_process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let pid = standby_process.0.id();
    let child = std::mem::replace(
        &mut standby_process.0,
        Command::new("true").spawn().unwrap(),
    );
    let exited = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut child = child;
            child.wait()
        }),
    )
    .await;
    let Ok(status) = exited else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the operator did not exit within 30 s of SIGTERM");
    };
    let status = status.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(holder(&leases).await, None, "the lease was released");
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--no-controller"]);
    let client = client(&server.kubeconfig).await;
    let leases: Api<Lease> = Api::namespaced(client, "default");
    // A long lease: its renew period (a third, 40 s) is longer than this test may wait,
    // so only the standby's watch on the Lease can explain a takeover in time.
    let (mut first, _) = start_operator_for(&server.kubeconfig, "first", "120s");
    assert_eq!(wait_for_holder(&leases, &["first"]).await, "first");
    let (_second, _) = start_operator_for(&server.kubeconfig, "second", "120s");
    let status = Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = tokio::task::spawn_blocking(move || first.0.wait()).await;
    assert_eq!(wait_for_holder(&leases, &["second"]).await, "second");
}

#[test]
fn a_missing_lease_namespace_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &["--no-controller"]);
    let (process, said) = start_operator_until(
        &server.kubeconfig,
        &["--lease-duration", "300ms", "--lease-namespace", "nowhere"],
        |line| line.contains("lease namespace").then(|| line.to_owned()),
    );
    drop(process);
    let said = said.expect("the operator says the lease namespace is missing");
    assert!(said.contains("kubectl create namespace nowhere"), "{said}");
}
