//! kubectl (the real one, from PATH) against a `konductor server` process.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `konductor server` process and a kubectl configured for it.
pub struct Cluster {
    /// The kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
    /// The test's directory: the server's data, kubectl's cache, written files.
    pub dir: tempfile::TempDir,
    server: super::ServerProcess,
    /// The server's flags beyond data dir and address (kept for restarts).
    flags: Vec<String>,
}

/// The kubectl on PATH (these tests need it).
pub fn kubectl_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    found.expect(
        "kubectl is not on PATH: these end-to-end tests drive the real kubectl (v1.32) and cannot run without it",
    )
}

impl Cluster {
    /// Starts a server in a fresh directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server in a fresh directory with `flags`.
    pub fn start_with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = super::start_server(&dir.path().join("data"), flags);
        Self {
            kubeconfig: server.kubeconfig.clone(),
            dir,
            server,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// kubectl with `args`, configured for this server.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // Keep kubectl's discovery cache inside the test's directory.
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs kubectl.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs kubectl with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self.command(args).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl, asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs kubectl, asserts that it fails, and that stderr says `message`.
    pub fn refused(&self, args: &[&str], message: &str) {
        let output = self.run(args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "kubectl {args:?} succeeded");
        assert!(stderr.contains(message), "kubectl {args:?}: {stderr}");
    }

    /// `kubectl apply -f -` of `yaml`, asserting success.
    pub fn apply(&self, yaml: &str) -> String {
        let output = self.run_with_input(&["apply", "-f", "-"], yaml);
        assert!(
            output.status.success(),
            "apply failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Waits (bounded, with `kubectl get events -w`) until the barrier has an Event with
    /// this reason: the controller records it beside the status write, not before it.
    pub fn until_event(&self, namespace: &str, barrier: &str, reason: &str) {
        let selector = format!("involvedObject.name={barrier},reason={reason}");
        let (mut watch, lines) = self.watch_lines(&[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            &selector,
            "--no-headers",
            "-w",
        ]);
        let seen = lines.recv_timeout(Duration::from_secs(30));
        let _ = watch.kill();
        let _ = watch.wait();
        let line = seen.unwrap_or_else(|_| panic!("no {reason} event for barrier {barrier}"));
        assert!(line.contains(reason), "{line}");
    }

    /// Starts a long-running kubectl (`get -w`) whose output lines arrive on the
    /// receiver as they are printed.
    pub fn watch_lines(&self, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
        let mut watch = self.command(args).spawn().unwrap();
        let (lines, received) = mpsc::channel();
        let stdout = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        (watch, received)
    }

    /// Stops the server (SIGKILL) and starts it again on the same data and address.
    pub fn restart(&mut self) {
        let flags = self.flags.clone();
        self.restart_with(&flags);
    }

    /// [`Cluster::restart`], the new server with `flags` (kept for later restarts).
    pub fn restart_with(&mut self, flags: &[String]) {
        self.flags = flags.to_vec();
        let address = self.server.url.trim_start_matches("https://").to_owned();
        self.server.child.kill().unwrap();
        self.server.child.wait().unwrap();
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.server = super::start_server_at(&self.dir.path().join("data"), &address, &flags);
    }

    /// Sets Job `job`'s status condition `type_` (`Complete`, `Failed`) to True, as the
    /// Job controller would.
    pub fn finish_job(&self, job: &str, type_: &str) {
        self.ok(&[
            "patch",
            "job",
            job,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status":{{"conditions":[{{"type":"{type_}","status":"True"}}]}}}}"#),
        ]);
    }

    /// Writes a file into the test's directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
