//! Once: how long 100 concurrent `koncli once run` processes on a fresh key take until
//! every one has exited (one runs the no-op command; the others see it done).

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use tokio::process::Command;

use crate::server::ServerProcess;

/// Wall time (ms) from starting `runs` concurrent `koncli once run NAME --key KEY --
/// true` processes until the last has exited; fails unless every one exited 0.
pub async fn concurrent_run_ms(
    server: &ServerProcess,
    koncli: &Path,
    name: &str,
    runs: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let children: Vec<_> = (0..runs)
        .map(|_| {
            Command::new(koncli)
                .arg("--kubeconfig")
                .arg(&server.kubeconfig)
                .args(["once", "run", name, "--key", "bench", "--", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting koncli once run")
        })
        .collect::<anyhow::Result<_>>()?;
    for mut child in children {
        let status = child.wait().await?;
        if !status.success() {
            bail!("a `koncli once run` exited with {status}");
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
