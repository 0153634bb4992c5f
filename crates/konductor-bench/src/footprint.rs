//! Footprint: idle memory of a fresh server, wall time of a `koncli barrier status`,
//! and the size of the binaries.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use konductor_api::{Barrier, BarrierSpec};
use kube::Api;
use kube::api::PostParams;
use tokio::process::Command;

use crate::release::WATCHES_METRIC;
use crate::server::ServerProcess;

/// Resident memory of `server` once its controller is watching and it has settled.
pub async fn idle_rss_mib(server: &ServerProcess) -> anyhow::Result<f64> {
    let client = server.client().await?;
    // The in-process controller watches barriers and arrivals once it runs.
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while server
            .metric(&client, WATCHES_METRIC)
            .await
            .is_some_and(|open| open < 2.0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if started.is_err() {
        bail!("the server's controller did not start watching");
    }
    drop(client);
    // Idle means after start-up work has finished, so give it a moment of nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(server.rss_mib())
}

/// Wall times (ms) of `runs` runs of `koncli barrier status`, process start to exit.
pub async fn koncli_status_ms(
    server: &ServerProcess,
    koncli: &Path,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let api: Api<Barrier> = Api::namespaced(server.client().await?, "default");
    api.create(
        &PostParams::default(),
        &Barrier::new("status-probe", BarrierSpec::new(3)),
    )
    .await
    .context("creating the status-probe barrier")?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(koncli)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["barrier", "status", "status-probe"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .with_context(|| format!("running {}", koncli.display()))?;
        times.push(crate::report::ms(started.elapsed()));
        if !status.success() {
            bail!("koncli barrier status exited with {status}");
        }
    }
    Ok(times)
}

/// A file's size in MiB.
pub fn size_mib(path: &Path) -> anyhow::Result<f64> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(bytes as f64 / (1024.0 * 1024.0))
}
