//! `konductor server` as a child process, started as a user starts it: for the tests
//! that kill -9 it or drive it with kubectl, and for the benchmark suite.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a server may take to print the lines it starts with.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A `konductor server` child process (killed when dropped) and what it announced.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// The kubeconfig from its `export KUBECONFIG=` line.
    pub kubeconfig: PathBuf,
    /// The URL from its `listening on` line.
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts `binary server --listen LISTEN --data-dir DATA_DIR EXTRA…` and waits for
    /// the two lines it prints first (its URL, its kubeconfig); the rest of its stdout
    /// is drained so that it never blocks on a full pipe. Its stderr (logs) is dropped.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let next_line = |what: &str| {
            receiver
                .recv_timeout(START_LIMIT)
                .map_err(|_| format!("konductor server printed no {what} line"))
        };
        let first = next_line("first")?;
        let url = first
            .strip_prefix("konductor server listening on ")
            .ok_or_else(|| format!("unexpected first line {first:?}"))?
            .to_owned();
        let second = next_line("second")?;
        let kubeconfig = PathBuf::from(
            second
                .strip_prefix("export KUBECONFIG=")
                .ok_or_else(|| format!("unexpected second line {second:?}"))?,
        );
        Ok(Self {
            child,
            kubeconfig,
            url,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
