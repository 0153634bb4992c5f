//! The Python SDK beside the Rust SDK and `koncli`, on one server in one run: a free
//! Mutex acquired, a Mutex handed over between two processes, and waiters released by
//! one arrival. The Python side is `python/bench/bench.py` under an interpreter with
//! `konductor-sdk` installed (`scripts/bench-python.sh` makes one); what crosses
//! processes is timed here, from the lines the processes print.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use konductor_api::locks::{LockKind, Permit, permit_name};
use kube::Api;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::report::ms;
use crate::server::ServerProcess;

/// How long one step of a process may take before the measurement is called broken.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// A Python interpreter with `konductor_sdk` importable, and the bench's script.
#[derive(Clone, Debug)]
pub struct PythonWorker {
    interpreter: PathBuf,
    script: PathBuf,
}

impl PythonWorker {
    /// `interpreter`, or the Python SDK test virtualenv's (`$KONDUCTOR_SDK_VENV`, default
    /// `/tmp/konductor-sdk-venv`), checked to import the SDK.
    pub async fn locate(interpreter: Option<PathBuf>) -> anyhow::Result<Self> {
        let interpreter = interpreter.unwrap_or_else(|| {
            let venv = std::env::var_os("KONDUCTOR_SDK_VENV")
                .map_or_else(|| PathBuf::from("/tmp/konductor-sdk-venv"), PathBuf::from);
            venv.join("bin/python")
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/bench/bench.py");
        let imports = Command::new(&interpreter)
            .args(["-c", "import konductor_sdk"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map(|status| status.success())
            .unwrap_or(false);
        if !imports || !script.is_file() {
            bail!(
                "{} cannot import konductor_sdk (or {} is missing): run scripts/bench-python.sh, \
                 or pass --python with an interpreter that has python/ installed",
                interpreter.display(),
                script.display()
            );
        }
        Ok(Self {
            interpreter,
            script,
        })
    }

    /// `bench.py ARGS` against `server`.
    pub fn command(&self, server: &ServerProcess, args: &[&str]) -> Command {
        let mut command = Command::new(&self.interpreter);
        command
            .arg(&self.script)
            .args(args)
            .env("KUBECONFIG", &server.kubeconfig)
            .kill_on_drop(true);
        command
    }

    /// Milliseconds from asking for a free Mutex to holding it, `samples` times, timed
    /// inside one Python process.
    pub async fn acquire_ms(
        &self,
        server: &ServerProcess,
        samples: usize,
    ) -> anyhow::Result<Vec<f64>> {
        let output = self
            .command(server, &["acquire", "python-acquire", &samples.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .await
            .context("running bench.py acquire")?;
        if !output.status.success() {
            bail!("bench.py acquire exited with {}", output.status);
        }
        #[derive(serde::Deserialize)]
        struct Acquired {
            acquire_ms: Vec<f64>,
        }
        let acquired: Acquired =
            serde_json::from_slice(&output.stdout).context("reading bench.py acquire's figures")?;
        Ok(acquired.acquire_ms)
    }
}

/// Watch events the server sent per handover while `waiters` Python processes take
/// turns on one Mutex (each a `bench.py relay`, the queue kept full), over `handovers`
/// handovers; `None` when the server does not count its watch events.
pub async fn events_per_handover(
    worker: &PythonWorker,
    server: &ServerProcess,
    waiters: usize,
    handovers: usize,
) -> anyhow::Result<Option<f64>> {
    const EVENTS: &str = "konductor_server_watch_events_sent_total";
    let connection = crate::locks::connection_to(server).await?;
    let client = connection.client.clone();
    let locks = konductor_sdk::locks::Locks::new(&connection);
    locks
        .create(LockKind::Mutex, "relay", &serde_json::json!({"ttl": "5m"}))
        .await?;
    let first = konductor_sdk::locks::Claim::mutex("relay", "first");
    let held = locks
        .acquire(&first, konductor_sdk::locks::Wait::Forever)
        .await?;
    let (said, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let mut relays = Vec::with_capacity(waiters);
    for _ in 0..waiters {
        let mut relay = worker
            .command(server, &["relay", "relay"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bench.py relay")?;
        let mut lines = BufReader::new(relay.stdout.take().expect("stdout is piped")).lines();
        let said = said.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "held" && said.send(()).is_err() {
                    break;
                }
            }
        });
        relays.push(relay);
    }
    let permits: Api<Permit> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    loop {
        if crate::locks::answered_permits(&permits).await? == waiters + 1 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < STEP_LIMIT,
            "the relays' claims were not all queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(before) = server.metric(&client, EVENTS).await else {
        return Ok(None);
    };
    held.release().await?;
    for _ in 0..handovers {
        tokio::time::timeout(STEP_LIMIT, heard.recv())
            .await
            .context("the relay stalled")?
            .context("every relay exited")?;
    }
    let after = server.metric(&client, EVENTS).await.unwrap_or(f64::NAN);
    drop(relays);
    Ok(Some((after - before) / handovers as f64))
}

/// Who contends for the Mutex in a handover between processes.
#[derive(Clone, Copy)]
pub enum Contender<'a> {
    /// Two long-lived `bench.py holder` processes, each told to acquire and release.
    Python(&'a PythonWorker),
    /// A `koncli mutex run NAME --holder H -- sh -c 'echo held; read line'` process
    /// per claim: its command says it holds, and ends on a line from the bench.
    Koncli(&'a Path),
}

/// A process the bench talks to in lines.
struct Driven {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Driven {
    fn spawn(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a contender")?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Reads lines until one starts with `word`.
    async fn expect(&mut self, word: &str) -> anyhow::Result<()> {
        let reading = async {
            while let Some(line) = self.lines.next_line().await? {
                if line.starts_with(word) {
                    return Ok(());
                }
            }
            bail!("the contender exited before saying {word:?}")
        };
        tokio::time::timeout(STEP_LIMIT, reading)
            .await
            .with_context(|| format!("waiting for {word:?}"))?
    }
}

impl Contender<'_> {
    /// A process claiming Mutex `name` as `holder`: `idle`'s next Python process, told
    /// to, or a new `koncli mutex run`.
    async fn claim(
        &self,
        server: &ServerProcess,
        idle: &mut Vec<Driven>,
        name: &str,
        holder: &str,
    ) -> anyhow::Result<Driven> {
        match self {
            Contender::Python(worker) => {
                let mut process = match idle.pop() {
                    Some(process) => process,
                    None => Driven::spawn(worker.command(server, &["holder", name]))?,
                };
                process.say(&format!("acquire {holder}")).await?;
                Ok(process)
            }
            Contender::Koncli(koncli) => {
                let mut command = Command::new(koncli);
                command
                    .arg("--kubeconfig")
                    .arg(&server.kubeconfig)
                    .args(["mutex", "run", name, "--holder", holder, "--"])
                    .args(["sh", "-c", "echo held; read line"]);
                Driven::spawn(command)
            }
        }
    }

    /// After a release was asked of `process`: waits until it is done, keeping a Python
    /// process for the next claim.
    async fn released(&self, mut process: Driven, idle: &mut Vec<Driven>) -> anyhow::Result<()> {
        match self {
            Contender::Python(_) => {
                process.expect("released").await?;
                idle.push(process);
            }
            Contender::Koncli(_) => {
                let status = tokio::time::timeout(STEP_LIMIT, process.child.wait())
                    .await
                    .context("koncli mutex run did not exit")??;
                if !status.success() {
                    bail!("koncli mutex run exited with {status}");
                }
            }
        }
        Ok(())
    }

    /// Milliseconds from asking the holding process to give Mutex `name` back to the
    /// queued process saying it holds it, `samples` times, the two taking turns.
    pub async fn handover_ms(
        &self,
        server: &ServerProcess,
        name: &str,
        samples: usize,
    ) -> anyhow::Result<Vec<f64>> {
        let permits: Api<Permit> = Api::namespaced(server.client().await?, "default");
        let mut idle = Vec::new();
        let mut holding = self.claim(server, &mut idle, name, "h-0").await?;
        holding.expect("held").await?;
        let mut times = Vec::with_capacity(samples);
        for i in 1..=samples {
            let holder = format!("h-{i}");
            let mut waiting = self.claim(server, &mut idle, name, &holder).await?;
            // The waiter's claim is queued before the release is timed.
            let queued = permit_name(LockKind::Mutex, name, &holder);
            tokio::time::timeout(
                STEP_LIMIT,
                kube::runtime::wait::await_condition(
                    permits.clone(),
                    &queued,
                    |p: Option<&Permit>| {
                        p.and_then(|p| p.status.as_ref())
                            .is_some_and(|s| s.position.is_some())
                    },
                ),
            )
            .await
            .context("the waiter's claim was not queued")??;
            let released = Instant::now();
            holding.say("release").await?;
            waiting.expect("held").await?;
            times.push(ms(released.elapsed()));
            self.released(holding, &mut idle).await?;
            holding = waiting;
        }
        holding.say("release").await?;
        self.released(holding, &mut idle).await?;
        for mut process in idle {
            process.say("exit").await?;
            process.child.wait().await?;
        }
        Ok(times)
    }
}
