//! Side by side with etcd's lock — the tool a user would otherwise pick as "flock for a
//! cluster": N concurrent `koncli mutex run m -- true` against a `konductor server`,
//! and N concurrent `etcdctl lock m -- true` against an `etcd`, both on loopback on
//! this machine, in alternating rounds. Each round is timed from the first process
//! spawned to the last one exited: runs per second, every process's start, connection
//! and wait included, as a user's CI fleet would see it.
//!
//! `etcd` and `etcdctl` come from Debian's `etcd-server` and `etcd-client` packages
//! (`scripts/bench-etcd.sh` installs them and runs this group).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::server::ServerProcess;

/// A running single-member etcd on loopback with a temporary data directory; killed
/// when dropped.
pub struct Etcd {
    process: std::process::Child,
    /// The client URL (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    _data_dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `program` on the PATH, or an error saying how to get it.
pub fn on_path(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "{program} not found on the PATH: install Debian's etcd-server and etcd-client (scripts/bench-etcd.sh does)"
            )
        })
}

impl Etcd {
    /// Starts `etcd` and waits until it answers.
    pub async fn start(etcd: &Path, etcdctl: &Path) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("creating etcd's data directory")?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let process = std::process::Command::new(etcd)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", etcd.display()))?;
        let etcd = Self {
            process,
            endpoint,
            _data_dir: data_dir,
        };
        let started = Instant::now();
        loop {
            let health = tokio::process::Command::new(etcdctl)
                .args(["--endpoints", &etcd.endpoint, "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await?;
            if health.success() {
                return Ok(etcd);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("etcd did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Spawns `n` commands at once and waits for all; runs per second over the whole.
/// Fails if any command failed.
async fn runs_per_s(
    n: usize,
    command: impl Fn(usize) -> tokio::process::Command,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            command(i)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()
        .context("spawning the runs")?;
    for child in children {
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "a run failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One round of `n` concurrent `koncli mutex run m -- true`, each a holder of its own.
pub async fn koncli_round(koncli: &Path, server: &ServerProcess, n: usize) -> anyhow::Result<f64> {
    runs_per_s(n, |i| {
        let mut command = tokio::process::Command::new(koncli);
        command.arg("--kubeconfig").arg(&server.kubeconfig).args([
            "mutex",
            "run",
            "m",
            "--holder",
            &format!("run-{i}"),
            "--",
            "true",
        ]);
        command
    })
    .await
}

/// One round of `n` concurrent `etcdctl lock m -- true`.
pub async fn etcd_round(etcdctl: &Path, etcd: &Etcd, n: usize) -> anyhow::Result<f64> {
    runs_per_s(n, |_| {
        let mut command = tokio::process::Command::new(etcdctl);
        command.args(["--endpoints", &etcd.endpoint, "lock", "m", "--", "true"]);
        command
    })
    .await
}
