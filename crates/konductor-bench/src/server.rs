//! A fresh `konductor server` process on a free loopback port and a temporary data
//! directory, as a user would start it, plus what the suite reads off it: clients, its
//! memory (`/proc`), and its `/metrics`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A running `konductor server` in a temporary data directory; killed when dropped.
pub struct ServerProcess {
    process: konductor_testing::process::ServerProcess,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    _data_dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `konductor server` from `binary` and waits until it serves.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("creating a data directory")?;
        let (binary, dir) = (binary.to_owned(), data_dir.path().to_owned());
        let process = tokio::task::spawn_blocking(move || {
            konductor_testing::process::ServerProcess::start(&binary, &dir, "127.0.0.1:0", &[])
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        Ok(Self {
            kubeconfig: process.kubeconfig.clone(),
            process,
            _data_dir: data_dir,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// A kube client from the server's kubeconfig, as koncli connects.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = konductor_sdk::ConnectOptions {
            kubeconfig: Some(self.kubeconfig.clone()),
            ..konductor_sdk::ConnectOptions::default()
        };
        Ok(konductor_sdk::connect(&options).await?.client)
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmRSS:") / 1024.0
    }

    /// The most resident memory the process ever had (its high-water mark), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmHWM:") / 1024.0
    }

    /// A value of the server's Prometheus `/metrics` — `name` summed over its label
    /// sets, or one series when `name` has labels (`konductor_barriers{phase="Open"}`)
    /// — or `None` when the server does not serve it (older builds).
    pub async fn metric(&self, client: &kube::Client, name: &str) -> Option<f64> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a valid request");
        let text = client.request_text(request).await.ok()?;
        let mut found = None;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = if name.contains('{') {
                series
            } else {
                series.split('{').next().unwrap_or(series)
            };
            if metric == name {
                *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
            }
        }
        found
    }
}

/// A `kB` field of `/proc/PID/status` (NaN when unreadable).
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}
