//! Shared by the process tests: starting `konductor server` as a child process and
//! connecting to it.

#![allow(dead_code)]

pub mod kubectl;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use konductor_testing::process::ServerProcess;

/// The `konductor` binary under test.
pub fn konductor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_konductor"))
}

/// Starts `konductor server` on a free port in `data_dir` (plus `extra` flags) and
/// waits for the two lines it prints.
pub fn start_server(data_dir: &Path, extra: &[&str]) -> ServerProcess {
    start_server_at(data_dir, "127.0.0.1:0", extra)
}

/// [`start_server`] on the address `listen` (a restarted server keeps its address).
pub fn start_server_at(data_dir: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
    ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_konductor")),
        data_dir,
        listen,
        extra,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Kills `server` with SIGKILL (no shutdown path runs) and starts a new one on the same
/// data directory and address.
pub async fn kill_9_and_restart(mut server: ServerProcess, data_dir: &Path) -> ServerProcess {
    let address = server.url.trim_start_matches("https://").to_owned();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let data_dir = data_dir.to_owned();
    tokio::task::spawn_blocking(move || start_server_at(&data_dir, &address, &[]))
        .await
        .unwrap()
}

/// An SDK connection to the server whose data directory is `data_dir` (its kubeconfig),
/// in namespace `default`.
pub async fn connection(data_dir: &Path) -> konductor_sdk::Connection {
    konductor_sdk::connect(&konductor_sdk::ConnectOptions {
        kubeconfig: Some(data_dir.join("kubeconfig")),
        context: None,
        namespace: Some("default".to_owned()),
    })
    .await
    .unwrap()
}

/// A kube client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `konductor operator` against `kubeconfig` with `args` (plus a loopback probe
/// address, info logs, no colour) and returns it with the first log line that
/// `wanted` picks something out of (within 30 s), e.g. the probe address.
pub fn start_operator_until<T: Send + 'static>(
    kubeconfig: &Path,
    args: &[&str],
    wanted: impl Fn(&str) -> Option<T> + Send + 'static,
) -> (Process, Option<T>) {
    let mut child = konductor()
        .arg("operator")
        .args(args)
        .args(["--probe-address", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end (the pipe must not fill up), sending the first match.
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(found) = wanted(&line) {
                sent = sender.send(found).is_ok();
            }
        }
    });
    let found = receiver.recv_timeout(Duration::from_secs(30)).ok();
    (Process(child), found)
}

/// Starts `konductor operator` with a lease of `lease_duration` and returns it with
/// the address of its probe server, read from its log.
pub fn start_operator_for(
    kubeconfig: &Path,
    identity: &str,
    lease_duration: &str,
) -> (Process, String) {
    let (process, address) = start_operator_until(
        kubeconfig,
        &["--lease-duration", lease_duration, "--identity", identity],
        |line| {
            let rest = line.split("address=").nth(1)?;
            Some(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        },
    );
    (
        process,
        address.expect("the operator logs its probe address"),
    )
}
