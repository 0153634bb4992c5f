//! koncli end to end: `cargo bench -p koncli --bench cli` prints the wall time of
//! `koncli barrier status` and the delay from a barrier opening to 100 concurrent
//! `koncli barrier wait` processes exiting (p50/p99), against an in-process
//! `konductor server` with its controller.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, arrival_name};
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const WAITERS: usize = 100;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The koncli binary next to this bench's build.
fn koncli() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("koncli");
    assert!(
        path.is_file(),
        "build koncli first: cargo build --release --bin koncli ({})",
        path.display()
    );
    path
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let test = konductor_testing::TestServer::start().await;
        let (server, client) = (&test.server, test.client.clone());
        let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
        let arrivals: Api<Arrival> = Api::namespaced(client.clone(), "default");
        let koncli = koncli();

        barriers.create(&PostParams::default(), &Barrier::new("status", BarrierSpec::new(3))).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let output = Command::new(&koncli)
                .arg("--kubeconfig").arg(&server.kubeconfig)
                .args(["barrier", "status", "status"])
                .output().await.unwrap();
            times.push(started.elapsed());
            assert!(output.status.success());
        }
        times.sort();
        println!("koncli barrier status, 50 runs: p50 {}, p99 {}", millis(quantile(&times, 0.5)), millis(quantile(&times, 0.99)));

        let created = barriers.create(&PostParams::default(), &Barrier::new("gate", BarrierSpec::new(1))).await.unwrap();
        let mut waiters = Vec::new();
        for _ in 0..WAITERS {
            let mut child = Command::new(&koncli)
                .arg("--kubeconfig").arg(&server.kubeconfig)
                .args(["barrier", "wait", "gate", "--quiet"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn().unwrap();
            // The first progress line means the waiter's watch is established.
            let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
            stderr.next_line().await.unwrap();
            waiters.push(child);
        }
        let params = WatchParams::default().fields("metadata.name=gate");
        let mut stream = barriers.watch(&params, &created.resource_version().unwrap()).await.unwrap().boxed();
        let arrived = Instant::now();
        arrivals.create(&PostParams::default(), &Arrival::new(&arrival_name("gate", "p"), ArrivalSpec::succeeded("gate", "p"))).await.unwrap();
        let exits: Vec<_> = waiters.into_iter().map(|mut c| tokio::spawn(async move {
            let status = c.wait().await.unwrap();
            assert!(status.success());
            Instant::now()
        })).collect();
        let opened = loop {
            if let WatchEvent::Modified(b) = stream.next().await.unwrap().unwrap() && b.phase() == BarrierPhase::Open {
                break Instant::now();
            }
        };
        let mut delays = Vec::new();
        for exit in exits {
            delays.push(exit.await.unwrap().saturating_duration_since(arrived));
        }
        delays.sort();
        println!(
            "last arrival sent -> Open seen by a watcher {}; -> {WAITERS} concurrent `koncli barrier wait` exit: p50 {}, p99 {}",
            millis(opened.saturating_duration_since(arrived)),
            millis(quantile(&delays, 0.5)),
            millis(quantile(&delays, 0.99))
        );
    });
}
