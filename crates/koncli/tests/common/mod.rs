//! Shared by the koncli process tests: a fresh `konductor server` with its controller,
//! and `koncli` processes pointed at it.

#![allow(dead_code, unused_imports)]

pub mod proxy;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use konductor_api::Barrier;
pub use konductor_testing::{HANG, TestServer};
use kube::Api;
use kube::runtime::wait::await_condition;
use tokio::process::{Child, Command};

/// A server with its controllers, as `konductor server` runs it (the workspace's
/// [`TestServer`]), and koncli processes pointed at it.
pub struct Env(pub TestServer);

impl std::ops::Deref for Env {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Env {
    /// Runs `examples/SCRIPT` with this server as $KUBECONFIG and this build's
    /// `koncli` first on the PATH, as a user following the README would; asserts it
    /// succeeded and returns what it printed.
    pub async fn play_example(&self, script: &str) -> String {
        let koncli_dir = std::path::Path::new(env!("CARGO_BIN_EXE_koncli"))
            .parent()
            .unwrap()
            .to_owned();
        let path = format!(
            "{}:{}",
            koncli_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let home = tempfile::tempdir().unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(script);
        let output = Command::new("bash")
            .arg(&script)
            .env("PATH", path)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", home.path())
            .env_remove("KONDUCTOR_HOLDER")
            .env_remove("POD_NAME")
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}:\n{}\n{}",
            script.display(),
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    pub async fn start() -> Self {
        Self(TestServer::start().await)
    }

    /// A server with no controllers: nothing opens barriers or grants locks.
    pub async fn without_controller() -> Self {
        Self(TestServer::without_controller().await)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    /// `koncli --kubeconfig <server> ARGS`, with holder variables cleared.
    pub fn koncli(&self, args: &[&str]) -> Command {
        koncli_with(&self.kubeconfig(), args)
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.koncli(args).output().await.unwrap()
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "koncli {args:?} failed: {}",
            stderr(&output)
        );
        stdout(&output)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.koncli(args).spawn().unwrap()
    }

    /// Waits (bounded) until the barrier's status satisfies `condition`.
    pub async fn until(&self, name: &str, condition: impl Fn(&Barrier) -> bool) {
        let api: Api<Barrier> = Api::namespaced(self.client.clone(), "default");
        konductor_testing::until(api, name, |b| b.is_some_and(&condition)).await;
    }
}

pub fn koncli_with(kubeconfig: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koncli"));
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KONDUCTOR_HOLDER")
        .env_remove("POD_NAME")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What a finished process printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a finished process said on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails the test, showing stdout, unless the process printed `text` there.
#[track_caller]
pub fn assert_printed(output: &Output, text: &str) {
    let printed = stdout(output);
    assert!(
        printed.contains(text),
        "wanted {text:?} on stdout: {printed}"
    );
}

/// Fails the test, showing stderr, unless the process exited with `code`.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "wanted exit code {code}: {}",
        stderr(output)
    );
}

/// Fails the test, showing stderr, unless the process said `text` there.
#[track_caller]
pub fn assert_said(output: &Output, text: &str) {
    let said = stderr(output);
    assert!(said.contains(text), "wanted {text:?} on stderr: {said}");
}

/// The most critical sections open at once in a log of `start …` and `end[ …]` lines.
pub fn max_overlap(log: &str) -> usize {
    let (mut open, mut most) = (0usize, 0usize);
    for line in log.lines() {
        if line.starts_with("start ") {
            open += 1;
            most = most.max(open);
        } else if line == "end" || line.starts_with("end ") {
            open -= 1;
        }
    }
    most
}
