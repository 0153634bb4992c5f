//! Benchmarks of the embedded API server through kube-rs, over real HTTPS on loopback.
//!
//! `cargo bench -p konductor-server --bench api` prints:
//! - create-Arrival latency p50/p99 and creates/s with 16 concurrent clients;
//! - the delay from a write to its watch event at 1,000 concurrent watchers.
//!
//! Sizes can be changed with `BENCH_CREATES` (total creates) and `BENCH_WATCHERS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierSpec};
use konductor_server::Server;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use tokio::sync::Barrier as StartLine;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at quantile `q` of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn create_arrivals(server: &Server) {
    const CLIENTS: usize = 16;
    let total = env_usize("BENCH_CREATES", 4000);
    let per_client = total / CLIENTS;
    let start_line = Arc::new(StartLine::new(CLIENTS));
    let mut tasks = Vec::new();
    let began = Instant::now();
    for c in 0..CLIENTS {
        let api: Api<Arrival> = Api::namespaced(server.client().await.unwrap(), "default");
        let start_line = start_line.clone();
        tasks.push(tokio::spawn(async move {
            start_line.wait().await;
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let holder = format!("c{c}-h{i}");
                let arrival = Arrival::new(
                    &konductor_api::arrival_name("bench", &holder),
                    ArrivalSpec::succeeded("bench", &holder),
                );
                let t = Instant::now();
                api.create(&PostParams::default(), &arrival).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = began.elapsed();
    latencies.sort();
    println!(
        "create Arrival, {CLIENTS} concurrent clients, {} creates: p50 {}, p99 {}, {:.0} creates/s",
        latencies.len(),
        millis(quantile(&latencies, 0.5)),
        millis(quantile(&latencies, 0.99)),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
}

async fn watch_fan_out(server: &Server) {
    let watchers = env_usize("BENCH_WATCHERS", 1000);
    const WRITES: usize = 20;
    let api: Api<Barrier> = Api::namespaced(server.client().await.unwrap(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &Barrier::new("fanout", BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    let from = created.resource_version().unwrap();
    // A few clients share the watches, as many processes would share a server.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.client().await.unwrap());
    }
    let ready = Arc::new(StartLine::new(watchers + 1));
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let api: Api<Barrier> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let ready = ready.clone();
        let from = from.clone();
        tasks.push(tokio::spawn(async move {
            let params = WatchParams::default()
                .fields("metadata.name=fanout")
                .disable_bookmarks();
            let mut stream = api.watch(&params, &from).await.unwrap().boxed();
            ready.wait().await;
            let mut arrivals = Vec::with_capacity(WRITES);
            while arrivals.len() < WRITES {
                match stream.next().await {
                    Some(Ok(WatchEvent::Modified(_))) => arrivals.push(Instant::now()),
                    Some(Ok(_)) => {}
                    other => panic!("watch ended: {other:?}"),
                }
            }
            arrivals
        }));
    }
    // Every watch has its response (the server subscribed before answering).
    ready.wait().await;
    let mut written = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let patch = serde_json::json!({"metadata": {"labels": {"write": i.to_string()}}});
        written.push(Instant::now());
        api.patch("fanout", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut delays = Vec::new();
    for task in tasks {
        for (i, seen) in task.await.unwrap().into_iter().enumerate() {
            delays.push(seen.saturating_duration_since(written[i]));
        }
    }
    delays.sort();
    println!(
        "write -> watch event, {watchers} concurrent watchers, {WRITES} writes: p50 {}, p99 {}, max {}",
        millis(quantile(&delays, 0.5)),
        millis(quantile(&delays, 0.99)),
        millis(*delays.last().unwrap())
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let test = konductor_testing::TestServer::without_controller().await;
        create_arrivals(&test.server).await;
        watch_fan_out(&test.server).await;
    });
}
