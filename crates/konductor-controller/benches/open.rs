//! How fast barriers open, end to end through `konductor server` and the controller.
//!
//! `cargo bench -p konductor-controller --bench open` prints, for barriers of 10, 100
//! and 1,000 arrivals: the time from the create of the arrival that completes a barrier
//! to the barrier being seen Open (p50/p99), and the status writes per arrival during
//! the burst of arrivals before it (coalescing keeps this well below 1).

use std::time::{Duration, Instant};

use futures::StreamExt;
use konductor_api::{Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec};
use konductor_controller::metrics::Metrics;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, ResourceExt};

const WORKERS: usize = 16;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// An arrival as koncli writes it: owned by its barrier.
fn arrival(barrier: &Barrier, holder: &str) -> Arrival {
    Arrival::at_barrier(
        ArrivalSpec::succeeded(barrier.name_any(), holder),
        &barrier.uid().unwrap(),
    )
}

async fn arrive_many(arrivals: &Api<Arrival>, barrier: &Barrier, holders: std::ops::Range<usize>) {
    let holders: Vec<usize> = holders.collect();
    let chunks: Vec<Vec<usize>> = holders
        .chunks(holders.len().div_ceil(WORKERS).max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let arrivals = arrivals.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                let arrival = arrival(&barrier, &format!("p{i}"));
                arrivals
                    .create(&PostParams::default(), &arrival)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn measure(client: &kube::Client, metrics: &Metrics, size: usize, rounds: usize) {
    let barriers: Api<Barrier> = Api::namespaced(client.clone(), "default");
    let arrivals: Api<Arrival> = Api::namespaced(client.clone(), "default");
    let mut delays = Vec::new();
    let mut writes = 0u64;
    let mut burst_arrivals = 0usize;
    for round in 0..rounds {
        let name = format!("b{size}-{round}");
        let created = barriers
            .create(
                &PostParams::default(),
                &Barrier::new(&name, BarrierSpec::new(size as i32)),
            )
            .await
            .unwrap();
        let writes_before = metrics.status_writes("barrier");
        arrive_many(&arrivals, &created, 0..size - 1).await;
        let expected = (size - 1) as i32;
        let seen = await_condition(barriers.clone(), &name, move |b: Option<&Barrier>| {
            b.is_some_and(|b| b.status.as_ref().is_some_and(|s| s.arrived == expected))
        })
        .await
        .unwrap()
        .unwrap();
        writes += metrics.status_writes("barrier") - writes_before;
        burst_arrivals += size - 1;

        let params = WatchParams::default().fields(&format!("metadata.name={name}"));
        let mut stream = barriers
            .watch(&params, &seen.resource_version().unwrap())
            .await
            .unwrap()
            .boxed();
        let last = format!("p{}", size - 1);
        let started = Instant::now();
        arrivals
            .create(&PostParams::default(), &arrival(&created, &last))
            .await
            .unwrap();
        loop {
            match stream.next().await.unwrap().unwrap() {
                WatchEvent::Modified(b) if b.phase() == BarrierPhase::Open => break,
                _ => {}
            }
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    println!(
        "barrier of {size:>4} arrivals, {rounds} rounds: last arrival -> Open p50 {}, p99 {}; status writes per arrival during the burst {:.3}",
        millis(quantile(&delays, 0.5)),
        millis(quantile(&delays, 0.99)),
        writes as f64 / burst_arrivals as f64
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let test = konductor_testing::TestServer::start().await;
        let (client, controller) = (&test.client, test.controller().expect("controllers"));
        measure(client, controller.metrics(), 10, 30).await;
        measure(client, controller.metrics(), 100, 10).await;
        measure(client, controller.metrics(), 1000, 5).await;
    });
}
