//! The contract (docs/contract.md) as one table: for each situation, every verb of every
//! kind that the situation applies to, run as a real `koncli` process against a fresh
//! server, must exit with the contract's code and end stderr with the contract's last
//! line. A new kind adds its verbs to [`KINDS`]; a new situation adds a function and
//! its rows.
//!
//! Also checked here, for every row: a non-zero exit ends with exactly one line saying
//! why, and nothing anywhere — stderr, a status condition, an Event — carries Rust
//! debug formatting.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Env, HANG, assert_exit, koncli_with, stderr};
use futures::future::join_all;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use tokio::io::AsyncBufReadExt;

/// One kind's verbs, by family: what the contract's rows run. `{}` is the object's name.
struct Kind {
    /// As koncli and messages name it.
    word: &'static str,
    /// Makes the object (unfinished: a wait on it waits).
    create: &'static [&'static str],
    /// The wait verb, if the kind has one (`--timeout` and such are added by rows).
    wait: Option<&'static [&'static str]>,
    /// The run verb, if the kind has one (the command is added by rows).
    run: Option<&'static [&'static str]>,
    /// Whether `run` makes the object on first use.
    made_on_first_use: bool,
    /// Act verbs that read or write the object.
    acts: &'static [&'static [&'static str]],
}

/// Every kind, with its verbs.
const KINDS: &[Kind] = &[
    Kind {
        word: "barrier",
        create: &["barrier", "create", "{}", "--expected", "2"],
        wait: Some(&["barrier", "wait", "{}"]),
        run: None,
        made_on_first_use: false,
        acts: &[&["barrier", "status", "{}"], &["barrier", "delete", "{}"]],
    },
    Kind {
        word: "mutex",
        create: &["mutex", "create", "{}"],
        wait: None,
        run: Some(&["mutex", "run", "{}"]),
        made_on_first_use: true,
        acts: &[&["mutex", "status", "{}"], &["mutex", "delete", "{}"]],
    },
    Kind {
        word: "semaphore",
        create: &["semaphore", "create", "{}", "--permits", "1"],
        wait: None,
        run: Some(&["semaphore", "run", "{}"]),
        made_on_first_use: false,
        acts: &[
            &["semaphore", "status", "{}"],
            &["semaphore", "delete", "{}"],
        ],
    },
    Kind {
        word: "rwmutex",
        create: &["rwmutex", "create", "{}"],
        wait: None,
        run: Some(&["rwmutex", "run", "{}", "--write"]),
        made_on_first_use: true,
        acts: &[&["rwmutex", "status", "{}"], &["rwmutex", "delete", "{}"]],
    },
    Kind {
        word: "ratelimit",
        create: &[
            "ratelimit",
            "create",
            "{}",
            "--limit",
            "100",
            "--window",
            "1h",
            "--max-concurrent",
            "1",
        ],
        wait: None,
        run: Some(&["ratelimit", "run", "{}"]),
        // Made on first use only with its size (--limit, --window); one holder at a
        // time, so that a holder makes the others queue, as for the locks.
        made_on_first_use: false,
        acts: &[
            &["ratelimit", "status", "{}"],
            &["ratelimit", "delete", "{}"],
        ],
    },
    Kind {
        word: "once",
        create: &["once", "create", "{}"],
        wait: Some(&["once", "wait", "{}"]),
        run: Some(&["once", "run", "{}"]),
        made_on_first_use: true,
        acts: &[
            &["once", "status", "{}"],
            &["once", "check", "{}"],
            &["once", "delete", "{}"],
        ],
    },
    Kind {
        word: "waitgroup",
        create: &["waitgroup", "create", "{}", "--expected", "2"],
        wait: Some(&["waitgroup", "wait", "{}"]),
        run: Some(&["waitgroup", "run", "{}", "--member", "m"]),
        made_on_first_use: true,
        acts: &[
            &["waitgroup", "status", "{}"],
            &["waitgroup", "seal", "{}"],
            &["waitgroup", "delete", "{}"],
        ],
    },
    Kind {
        word: "gate",
        create: &["gate", "create", "{}", "--for", "barrier/never-{}"],
        wait: Some(&["gate", "wait", "{}"]),
        run: None,
        made_on_first_use: false,
        acts: &[
            &["gate", "status", "{}"],
            &["gate", "open", "{}"],
            &["gate", "delete", "{}"],
        ],
    },
];

/// What the last line of stderr must be.
#[derive(Clone, Debug)]
enum Last {
    /// koncli's own line (`koncli: …`) containing this.
    Says(String),
    /// An informational line (no `koncli:` prefix) containing this.
    Informs(String),
    /// Nothing on stderr need be said (a success).
    Anything,
}

/// One cell of the table: a command line and what it must come to.
struct Row {
    situation: &'static str,
    args: Vec<String>,
    code: i32,
    last: Last,
    /// Lines that must appear on stderr before the last.
    also: Vec<String>,
}

impl Row {
    fn new(situation: &'static str, args: Vec<String>, code: i32, last: Last) -> Self {
        Self {
            situation,
            args,
            code,
            last,
            also: Vec::new(),
        }
    }

    fn also(mut self, line: impl Into<String>) -> Self {
        self.also.push(line.into());
        self
    }
}

/// `template` with `{}` replaced by `name`, then `extra`.
fn command(template: &[&str], name: &str, extra: &[&str]) -> Vec<String> {
    template
        .iter()
        .map(|part| part.replace("{}", name))
        .chain(extra.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// A name for `situation` and `kind`, unique in the namespace.
fn name_for(situation: &str, kind: &Kind) -> String {
    format!("{situation}-{}", kind.word)
}

fn says(text: impl Into<String>) -> Last {
    Last::Says(text.into())
}

/// Checks one finished row: its code, its last line, its other lines, no debug dumps.
fn check(row: &Row, output: &Output) {
    let said = stderr(output);
    let context = format!(
        "[{}] koncli {}\nstderr:\n{said}",
        row.situation,
        row.args.join(" ")
    );
    assert_eq!(output.status.code(), Some(row.code), "{context}");
    let last = said.lines().last().unwrap_or_default();
    match &row.last {
        Last::Says(text) => assert!(
            last.starts_with("koncli: ") && last.contains(text.as_str()),
            "the last line should be koncli's, saying {text:?}: {context}"
        ),
        Last::Informs(text) => assert!(
            !last.starts_with("koncli: ") && last.contains(text.as_str()),
            "the last line should inform (no koncli: prefix), saying {text:?}: {context}"
        ),
        Last::Anything => {}
    }
    if row.code != 0 {
        assert!(
            last.starts_with("koncli: "),
            "a non-zero exit ends with koncli's line saying why: {context}"
        );
    }
    for line in &row.also {
        assert!(said.contains(line.as_str()), "wanted {line:?}: {context}");
    }
    assert_no_debug_formatting(&said, &context);
}

/// Fails if `text` looks like Rust debug formatting.
fn assert_no_debug_formatting(text: &str, context: &str) {
    for dump in ["Some(", "Status {", "ApiError", "{ field:", "Error {"] {
        assert!(!text.contains(dump), "{dump:?} in {context}");
    }
    let bare_none = text
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| word == "None");
    assert!(!bare_none, "a bare None in {context}");
}

/// Runs every row at once (each names its own objects) and checks each.
async fn play(env: &Env, rows: Vec<Row>) {
    let outputs = join_all(rows.iter().map(|row| async {
        let args: Vec<&str> = row.args.iter().map(String::as_str).collect();
        tokio::time::timeout(HANG, env.run(&args))
            .await
            .unwrap_or_else(|_| panic!("[{}] koncli {args:?} hangs", row.situation))
    }))
    .await;
    for (row, output) in rows.iter().zip(&outputs) {
        check(row, output);
    }
}

/// Creates `kind`'s object `name` (unfinished).
async fn create(env: &Env, kind: &Kind, name: &str) {
    let args = command(kind.create, name, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&args).await;
}

#[tokio::test]
async fn missing_objects_are_waited_for_made_on_first_use_or_not_found() {
    let env = Env::start().await;
    let mut rows = Vec::new();
    for kind in KINDS {
        let name = name_for("missing", kind);
        let qualified = format!("{} default/{name}", kind.word);
        if let Some(wait) = kind.wait {
            rows.push(
                Row::new(
                    "missing/wait",
                    command(wait, &name, &["--timeout", "1s"]),
                    5,
                    says(name.clone()),
                )
                .also(format!("waiting for {qualified} to be created")),
            );
        }
        if let Some(run) = kind.run {
            let run_name = format!("{name}-run");
            let row = if kind.made_on_first_use {
                Row::new(
                    "missing/run",
                    command(run, &run_name, &["--", "true"]),
                    0,
                    Last::Anything,
                )
                .also(format!(
                    "created {} default/{run_name} (first use)",
                    kind.word
                ))
            } else {
                // (A Semaphore is made on first use only with its size: --permits.)
                Row::new(
                    "missing/run",
                    command(run, &run_name, &["--", "true"]),
                    1,
                    says(format!("{} default/{run_name}", kind.word)),
                )
                .also("not found")
            };
            rows.push(row);
        }
        for act in kind.acts {
            rows.push(Row::new(
                "missing/act",
                command(act, &name, &[]),
                1,
                says(format!("{qualified} not found")),
            ));
        }
    }
    rows.push(
        Row::new(
            "missing/wait",
            command(
                &["wait", "--for", "barrier/missing-for"],
                "",
                &["--timeout", "1s"],
            ),
            5,
            says("barrier/missing-for"),
        )
        .also("waiting for barrier/missing-for to be created"),
    );
    play(&env, rows).await;
}

#[tokio::test]
async fn an_unreachable_server_is_one_line_for_every_verb() {
    let env = Env::start().await;
    // A kubeconfig naming a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    config["clusters"][0]["cluster"]["server"] = serde_yaml::Value::from(url.clone());
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
    let mut rows = Vec::new();
    for kind in KINDS {
        let name = name_for("unreachable", kind);
        let verbs = kind
            .wait
            .iter()
            .map(|w| command(w, &name, &["--timeout", "30s"]))
            .chain(kind.run.iter().map(|r| command(r, &name, &["--", "true"])))
            .chain(kind.acts.iter().map(|a| command(a, &name, &[])));
        for args in verbs {
            rows.push(Row::new(
                "unreachable",
                args,
                1,
                says(format!("cannot reach the API server at {url}")),
            ));
        }
    }
    rows.push(Row::new(
        "unreachable",
        command(&["wait", "--for", "job/j"], "", &[]),
        1,
        says(format!("cannot reach the API server at {url}")),
    ));
    let outputs = join_all(rows.iter().map(|row| async {
        let mut koncli = koncli_with(&kubeconfig, &[]);
        koncli.args(&row.args);
        tokio::time::timeout(HANG, koncli.output())
            .await
            .expect("koncli finishes")
            .unwrap()
    }))
    .await;
    for (row, output) in rows.iter().zip(&outputs) {
        check(row, output);
    }
}

#[tokio::test]
async fn usage_errors_exit_2_naming_the_argument() {
    let env = Env::start().await;
    let mut rows = Vec::new();
    for kind in KINDS {
        let name = name_for("usage", kind);
        let verbs = kind
            .wait
            .iter()
            .chain(kind.run.iter())
            .chain(kind.acts.iter());
        for verb in verbs {
            rows.push(Row::new(
                "usage",
                command(verb, &name, &["--no-such-flag"]),
                2,
                says("--no-such-flag"),
            ));
        }
    }
    for (args, names) in [
        (
            vec!["wait", "--for", "configmaps/cm1", "--timeout", "5s"],
            "configmaps/cm1",
        ),
        (
            vec!["once", "run", "usage-ttl", "--ttl", "1s", "--", "true"],
            "--ttl",
        ),
        (
            vec!["wait", "--for", "job/x=nonsense=1"],
            "job/x=nonsense=1",
        ),
        (vec!["barrier", "wait", "Bad_Name"], "Bad_Name"),
    ] {
        rows.push(Row::new(
            "usage",
            args.iter().map(|s| (*s).to_owned()).collect(),
            2,
            says(names),
        ));
    }
    play(&env, rows).await;
}

#[tokio::test]
async fn the_own_timeout_gives_5_and_nothing_runs() {
    let env = Env::start().await;
    let mut rows = Vec::new();
    for kind in KINDS.iter().filter(|k| k.wait.is_some()) {
        let name = name_for("timeout", kind);
        create(&env, kind, &name).await;
        rows.push(Row::new(
            "timeout/wait",
            command(kind.wait.unwrap(), &name, &["--timeout", "1s"]),
            5,
            says(name.clone()),
        ));
    }
    // Runs queued behind a holder that stays.
    let marker = tempfile::tempdir().unwrap();
    let mut holders = Vec::new();
    for kind in KINDS.iter().filter(|k| k.run.is_some()) {
        let name = name_for("timeout", kind);
        holders.push(hold(&env, kind, &name, marker.path()).await);
        let ran = marker.path().join(format!("{name}-ran"));
        let mut queued = command(kind.run.unwrap(), &name, &["--timeout", "1s"]);
        if kind.word == "waitgroup" {
            // Another member's run is not queued; the group's wait is what waits.
            continue;
        }
        queued.extend([
            "--".to_owned(),
            "touch".to_owned(),
            ran.display().to_string(),
        ]);
        rows.push(Row::new("timeout/run", queued, 5, says(name.clone())));
    }
    play(&env, rows).await;
    let ran = std::fs::read_dir(marker.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("-ran"))
        .count();
    assert_eq!(ran, 0, "a run that timed out while queued ran its command");
    for mut holder in holders {
        holder.kill().await.unwrap();
    }
}

/// Starts a `run` of `kind`'s `name` (made first if the kind is not made on first use)
/// whose command holds it until killed; returns once the command runs (a marker in
/// `dir`).
async fn hold(env: &Env, kind: &Kind, name: &str, dir: &std::path::Path) -> tokio::process::Child {
    if !kind.made_on_first_use {
        create(env, kind, name).await;
    }
    let started = dir.join(name);
    let script = format!("touch {}; sleep 600", started.display());
    let args = command(kind.run.unwrap(), name, &["--", "sh", "-c", &script]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let holder = env.spawn(&args);
    wait_for_file(&started).await;
    holder
}

/// Waits (bounded) until `path` exists: the command under a run has started.
async fn wait_for_file(path: &std::path::Path) {
    tokio::time::timeout(HANG, async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never appeared", path.display()));
}

/// Starts `args`, reads its stderr until a line contains `ready`, sends it `signal`,
/// and returns how it ended.
async fn signalled(
    env: &Env,
    args: &[String],
    ready: &str,
    signal: rustix::process::Signal,
) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = env.spawn(&args);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    tokio::time::timeout(HANG, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let seen = line.contains(ready);
            said.push(line);
            if seen {
                return;
            }
        }
        panic!("koncli {args:?} ended without saying {ready:?}: {said:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("koncli {args:?} never said {ready:?}"));
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        said.push(line);
    }
    let status = tokio::time::timeout(HANG, child.wait())
        .await
        .expect("koncli ends after the signal")
        .unwrap();
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_end(&mut out, &mut stdout)
            .await
            .unwrap();
    }
    Output {
        status,
        stdout,
        stderr: said.join("\n").into_bytes(),
    }
}

#[tokio::test]
async fn a_signal_while_waiting_exits_130_or_143_and_withdraws_a_queued_claim() {
    use rustix::process::Signal;
    let env = Env::start().await;
    let mut cases = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        let signal = if i % 2 == 0 {
            (Signal::INT, 130)
        } else {
            (Signal::TERM, 143)
        };
        if let Some(wait) = kind.wait {
            let name = name_for("signal", kind);
            cases.push((
                Row::new(
                    "signal/wait",
                    command(wait, &name, &[]),
                    signal.1,
                    says("interrupted"),
                ),
                format!("waiting for {} default/{name} to be created", kind.word),
                signal.0,
            ));
        }
    }
    cases.push((
        Row::new(
            "signal/wait",
            command(&["wait", "--for", "barrier/signal-for"], "", &[]),
            130,
            says("interrupted"),
        ),
        "waiting for barrier/signal-for to be created".to_owned(),
        Signal::INT,
    ));
    // A queued run: behind a holder.
    let marker = tempfile::tempdir().unwrap();
    let mut holders = Vec::new();
    for kind in KINDS
        .iter()
        .filter(|k| k.run.is_some() && k.word != "waitgroup")
    {
        let name = name_for("signal-queued", kind);
        holders.push(hold(&env, kind, &name, marker.path()).await);
        cases.push((
            Row::new(
                "signal/queued-run",
                command(kind.run.unwrap(), &name, &["--", "true"]),
                143,
                says("interrupted; claim withdrawn"),
            ),
            "waiting for".to_owned(),
            Signal::TERM,
        ));
    }
    let outputs = join_all(
        cases
            .iter()
            .map(|(row, ready, signal)| signalled(&env, &row.args, ready, *signal)),
    )
    .await;
    for ((row, _, _), output) in cases.iter().zip(&outputs) {
        check(row, output);
    }
    for mut holder in holders {
        holder.kill().await.unwrap();
    }
}

#[tokio::test]
async fn a_signal_while_the_command_runs_is_an_interruption_not_a_failure() {
    use rustix::process::Signal;
    let env = Env::start().await;
    let marker = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for kind in KINDS.iter().filter(|k| k.run.is_some()) {
        let name = name_for("interrupted", kind);
        if !kind.made_on_first_use {
            create(&env, kind, &name).await;
        }
        let started = marker.path().join(&name);
        // The command says it started on stderr (the ready line), then sleeps.
        let script = format!(
            "touch {}; echo started >&2; exec sleep 600",
            started.display()
        );
        cases.push(Row::new(
            "signal/running",
            command(kind.run.unwrap(), &name, &["--", "sh", "-c", &script]),
            143,
            says("was interrupted (exit code 143, passed through)"),
        ));
    }
    let outputs = join_all(
        cases
            .iter()
            .map(|row| signalled(&env, &row.args, "started", Signal::TERM)),
    )
    .await;
    for (row, output) in cases.iter().zip(&outputs) {
        check(row, output);
    }
    // What the interruption left: a retry runs again (the member is pending, the Once
    // key not failed — maxAttempts 1 would have failed it — and the locks free).
    let mut retries = Vec::new();
    for kind in KINDS.iter().filter(|k| k.run.is_some()) {
        let name = name_for("interrupted", kind);
        // (A member's run does not queue: it has no --timeout.)
        let timeout: &[&str] = if kind.word == "waitgroup" {
            &[]
        } else {
            &["--timeout", "60s"]
        };
        let mut retry = command(kind.run.unwrap(), &name, timeout);
        retry.extend(["--".to_owned(), "true".to_owned()]);
        retries.push(Row::new("signal/retry", retry, 0, Last::Anything));
    }
    play(&env, retries).await;
}

#[tokio::test]
async fn retries_of_finished_work_exit_0_without_running_or_8_never_0_after_a_failure() {
    let env = Env::start().await;
    // Made by this first run, with one attempt per key.
    let failed = env
        .run(&[
            "once",
            "run",
            "retry-once",
            "--key",
            "bad",
            "--max-attempts",
            "1",
            "--",
            "false",
        ])
        .await;
    assert_exit(&failed, 1);
    env.ok(&["once", "run", "retry-once", "--key", "ok", "--", "true"])
        .await;
    env.ok(&[
        "waitgroup",
        "run",
        "retry-wg",
        "--member",
        "ok",
        "--",
        "true",
    ])
    .await;
    let failed = env
        .run(&[
            "waitgroup",
            "run",
            "retry-wg",
            "--member",
            "bad",
            "--",
            "sh",
            "-c",
            "exit 2",
        ])
        .await;
    assert_exit(&failed, 2);
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    let touch = ran.display().to_string();
    let rows = vec![
        Row::new(
            "retry/succeeded",
            command(
                &[
                    "once",
                    "run",
                    "retry-once",
                    "--key",
                    "ok",
                    "--",
                    "touch",
                    &touch,
                ],
                "",
                &[],
            ),
            0,
            Last::Informs("once default/retry-once (key \"ok\") already done".to_owned()),
        ),
        Row::new(
            "retry/succeeded",
            command(
                &[
                    "waitgroup",
                    "run",
                    "retry-wg",
                    "--member",
                    "ok",
                    "--",
                    "touch",
                    &touch,
                ],
                "",
                &[],
            ),
            0,
            Last::Informs(
                "waitgroup default/retry-wg member ok already done; nothing to run".to_owned(),
            ),
        ),
        Row::new(
            "retry/failed",
            command(
                &[
                    "once",
                    "run",
                    "retry-once",
                    "--key",
                    "bad",
                    "--",
                    "touch",
                    &touch,
                ],
                "",
                &[],
            ),
            8,
            says("once reset retry-once --key bad"),
        ),
        Row::new(
            "retry/failed",
            command(
                &[
                    "waitgroup",
                    "run",
                    "retry-wg",
                    "--member",
                    "bad",
                    "--",
                    "touch",
                    &touch,
                ],
                "",
                &[],
            ),
            8,
            says("failed for good after 1 failed attempt(s): sh exited with code 2"),
        ),
        Row::new(
            "retry/wait-failed",
            command(&["once", "wait", "retry-once", "--key", "bad"], "", &[]),
            8,
            says("failed for good"),
        ),
        Row::new(
            "retry/flags-differ",
            command(
                &[
                    "once",
                    "run",
                    "retry-once",
                    "--key",
                    "ok",
                    "--max-attempts",
                    "5",
                    "--",
                    "true",
                ],
                "",
                &[],
            ),
            0,
            Last::Anything,
        )
        .also("spec.maxAttempts 1: --max-attempts 5 is ignored")
        .also("kubectl patch once retry-once -n default --type=merge"),
        Row::new(
            "retry/flags-differ",
            command(
                &[
                    "waitgroup",
                    "add",
                    "retry-wg",
                    "--member",
                    "x",
                    "--max-failed",
                    "4",
                ],
                "",
                &[],
            ),
            0,
            Last::Anything,
        )
        .also("spec.maxFailed 0: --max-failed 4 is ignored"),
    ];
    play(&env, rows).await;
    assert!(!ran.exists(), "a retry of finished work ran its command");
}

#[tokio::test]
async fn final_outcomes_give_the_same_codes_for_every_kind() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "open", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "open", "a"]).await;
    env.ok(&["barrier", "create", "failed", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "failed", "a", "--failed"])
        .await;
    env.ok(&[
        "barrier",
        "create",
        "late",
        "--expected",
        "1",
        "--timeout",
        "1s",
    ])
    .await;
    env.ok(&["waitgroup", "create", "wg-done", "--sealed"])
        .await;
    env.ok(&["waitgroup", "create", "wg-failed", "--expected", "1"])
        .await;
    env.ok(&[
        "waitgroup",
        "done",
        "wg-failed",
        "--member",
        "a",
        "--failed",
    ])
    .await;
    env.ok(&[
        "waitgroup",
        "create",
        "wg-late",
        "--expected",
        "1",
        "--group-timeout",
        "1s",
    ])
    .await;
    env.ok(&["once", "run", "once-done", "--", "true"]).await;
    env.ok(&["gate", "create", "gate-open", "--for", "barrier/open"])
        .await;
    env.ok(&["gate", "create", "gate-failed", "--for", "barrier/failed"])
        .await;
    env.ok(&[
        "gate",
        "create",
        "gate-late",
        "--for",
        "barrier/never",
        "--timeout",
        "1s",
    ])
    .await;
    let table: &[(&[&str], i32, Option<&str>)] = &[
        (&["barrier", "wait", "open"], 0, None),
        (&["barrier", "wait", "failed"], 4, Some("failed")),
        (&["barrier", "wait", "late"], 3, Some("timed out")),
        (&["waitgroup", "wait", "wg-done"], 0, None),
        (&["waitgroup", "wait", "wg-failed"], 4, Some("failed")),
        (&["waitgroup", "wait", "wg-late"], 3, Some("timed out")),
        (&["once", "wait", "once-done"], 0, None),
        (&["gate", "wait", "gate-open"], 0, None),
        (&["gate", "wait", "gate-failed"], 4, Some("Failed")),
        (&["gate", "wait", "gate-late"], 3, Some("Timeout")),
        (&["wait", "--for", "barrier/open"], 0, None),
        (&["wait", "--for", "barrier/failed"], 4, Some("Failed")),
    ];
    let rows = table
        .iter()
        .map(|(args, code, last)| {
            Row::new(
                "final",
                command(args, "", &[]),
                *code,
                last.map_or(Last::Anything, says),
            )
        })
        .collect();
    play(&env, rows).await;
}

#[tokio::test]
async fn a_waited_object_deleted_is_waited_for_again() {
    use rustix::process::Signal;
    let env = Env::start().await;
    let mut children = Vec::new();
    for kind in KINDS.iter().filter(|k| k.wait.is_some()) {
        let name = name_for("deleted", kind);
        create(&env, kind, &name).await;
        let args = command(kind.wait.unwrap(), &name, &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = env.spawn(&args);
        let lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        children.push((kind, name, child, lines));
    }
    for (kind, name, child, lines) in &mut children {
        read_until(lines, &format!("{} default/{name}", kind.word)).await;
        env.ok(&[kind.word, "delete", name]).await;
        read_until(
            lines,
            &format!(
                "{} default/{name} was deleted; waiting for it to be created again",
                kind.word
            ),
        )
        .await;
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
        rustix::process::kill_process(pid, Signal::INT).unwrap();
        let mut rest = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push(line);
        }
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(130), "{rest:?}");
        assert_eq!(rest.last().map(String::as_str), Some("koncli: interrupted"));
    }
}

/// Reads `lines` (bounded) until one contains `what`.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    what: &str,
) {
    let mut said = Vec::new();
    tokio::time::timeout(HANG, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(what) {
                return;
            }
            said.push(line);
        }
        panic!("ended without saying {what:?}: {said:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("never said {what:?}"));
}

#[tokio::test]
async fn statuses_and_events_carry_no_debug_formatting() {
    let env = Env::start().await;
    // A spread of situations that write conditions and Events: invalid specs refused,
    // a Gate on a kind not served and on a CRD deleted, failures, expiries.
    let _ = env
        .run(&[
            "gate",
            "create",
            "g-unserved",
            "--for",
            "databases.v1.acme.example.com/x",
        ])
        .await;
    env.ok(&[
        "gate",
        "create",
        "g-missing",
        "--for",
        "job/nope",
        "--timeout",
        "1s",
    ])
    .await;
    let _ = env
        .run(&[
            "once",
            "run",
            "o-fail",
            "--max-attempts",
            "1",
            "--",
            "false",
        ])
        .await;
    let _ = env
        .run(&["waitgroup", "run", "w-fail", "--member", "a", "--", "false"])
        .await;
    env.ok(&["barrier", "create", "b-fail", "--expected", "1"])
        .await;
    env.ok(&[
        "barrier",
        "arrive",
        "b-fail",
        "x",
        "--failed",
        "--message",
        "broke",
    ])
    .await;
    // A Gate on a kind whose CRD is deleted after the Gate looked at it.
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(include_str!("../../konductor/tests/fixtures/migration-crd.yaml")).unwrap();
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(env.client.clone());
    crds.create(&Default::default(), &crd).await.unwrap();
    env.ok(&[
        "gate",
        "create",
        "g-crd",
        "--for",
        "migrations.v1.ops.example.com/schema=jsonpath={.status.phase}=Done",
    ])
    .await;
    crds.delete("migrations.ops.example.com", &Default::default())
        .await
        .unwrap();
    let gates: Api<konductor_api::gate::Gate> = Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(gates, "g-crd", |gate| {
        gate.and_then(|g| g.status.as_ref())
            .is_some_and(|s| s.results.iter().any(|r| r.unreadable))
    })
    .await;
    let waited = env.run(&["gate", "wait", "g-missing"]).await;
    assert_exit(&waited, 3);
    let mut texts = Vec::new();
    for (group, version, kind, plural) in [
        ("konductor.io", "v1", "Gate", "gates"),
        ("konductor.io", "v1", "Once", "onces"),
        ("konductor.io", "v1", "WaitGroup", "waitgroups"),
        ("konductor.io", "v1", "Barrier", "barriers"),
        ("", "v1", "Event", "events"),
    ] {
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), "default", &resource);
        for object in api.list(&ListParams::default()).await.unwrap().items {
            let data = &object.data;
            if kind == "Event" {
                texts.push(data["message"].as_str().unwrap_or_default().to_owned());
                // Each kind's Events name its own controller.
                let about = data["involvedObject"]["kind"].as_str().unwrap_or_default();
                let from = data["reportingComponent"]
                    .as_str()
                    .or_else(|| data["source"]["component"].as_str())
                    .unwrap_or_default();
                let expected = match about {
                    "Gate" => Some("konductor.io/gate-controller"),
                    "WaitGroup" => Some("konductor.io/waitgroup-controller"),
                    "Barrier" => Some("konductor.io/barrier-controller"),
                    "Once" => Some("konductor.io/lock-controller"),
                    _ => None,
                };
                if let Some(expected) = expected {
                    assert_eq!(from, expected, "an Event on a {about}: {data}");
                }
            } else {
                for condition in data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    texts.push(condition["message"].as_str().unwrap_or_default().to_owned());
                }
                for result in data["status"]["results"].as_array().into_iter().flatten() {
                    texts.push(result["message"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    assert!(texts.len() > 10, "{texts:?}");
    for text in &texts {
        assert_no_debug_formatting(text, text);
    }
}

#[tokio::test]
async fn every_list_prints_the_crds_printer_columns_as_kubectl_prints_them() {
    let env = Env::start().await;
    for kind in KINDS {
        create(&env, kind, &name_for("listed", kind)).await;
    }
    env.ok(&["once", "run", "listed-ran", "--", "true"]).await;
    let plurals = [
        ("barrier", "barriers"),
        ("mutex", "mutexes"),
        ("semaphore", "semaphores"),
        ("rwmutex", "rwmutexes"),
        ("once", "onces"),
        ("waitgroup", "waitgroups"),
        ("gate", "gates"),
    ];
    // Ages may tick between the two reads: compared without the last column.
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|line| {
                let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                words.pop();
                words
            })
            .collect()
    };
    for (word, plural) in plurals {
        for wide in [false, true] {
            let mut ours = vec![word, "list"];
            let mut theirs = vec!["get", plural];
            if wide {
                ours.extend(["-o", "wide"]);
                theirs.extend(["-o", "wide"]);
            }
            let koncli = env.ok(&ours).await;
            let kubectl = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(env.kubeconfig())
                .args(&theirs)
                .output()
                .await
                .expect("kubectl runs");
            assert!(kubectl.status.success(), "{}", stderr(&kubectl));
            let kubectl = String::from_utf8_lossy(&kubectl.stdout).into_owned();
            assert_eq!(
                rows(&koncli),
                rows(&kubectl),
                "{word} list:\n{koncli}\nkubectl:\n{kubectl}"
            );
            assert!(!koncli.contains("<none>"), "{koncli}");
        }
    }
}

#[tokio::test]
async fn a_missing_namespace_is_named_and_waited_for_by_waits() {
    let env = Env::start().await;
    let mut rows = Vec::new();
    for kind in KINDS {
        let name = name_for("nsless", kind);
        if let Some(wait) = kind.wait {
            let mut args = vec!["-n".to_owned(), "nowhere".to_owned()];
            args.extend(command(wait, &name, &["--timeout", "1s"]));
            rows.push(
                Row::new("no-namespace/wait", args, 5, says(name.clone())).also(format!(
                    "namespace nowhere does not exist; waiting for it and {} nowhere/{name} to be created",
                    kind.word
                )),
            );
        }
        let verbs = kind
            .run
            .iter()
            .map(|r| command(r, &name, &["--", "true"]))
            .chain(kind.acts.iter().map(|a| command(a, &name, &[])));
        for verb in verbs {
            let mut args = vec!["-n".to_owned(), "nowhere".to_owned()];
            args.extend(verb);
            rows.push(Row::new(
                "no-namespace/act",
                args,
                1,
                says("namespace nowhere not found"),
            ));
        }
    }
    play(&env, rows).await;
}

#[tokio::test]
async fn run_hold_follows_the_rows_of_run() {
    let env = Env::start().await;
    env.ok(&["mutex", "lock", "held-hold", "--holder", "gatekeeper"])
        .await;
    let args = |extra: &[&str]| -> Vec<String> {
        ["run"]
            .iter()
            .chain(extra)
            .chain(["--", "true"].iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let rows = vec![
        Row::new(
            "missing/run",
            args(&[
                "--hold",
                "mutex/missing-hold",
                "--hold",
                "rwmutex/missing-hold=read",
            ]),
            0,
            Last::Anything,
        )
        .also("created mutex default/missing-hold (first use)")
        .also("created rwmutex default/missing-hold (first use)"),
        Row::new(
            "missing/run",
            args(&["--hold", "mutex/nothing-hold", "--no-create"]),
            1,
            says("mutex default/nothing-hold not found"),
        ),
        Row::new(
            "usage",
            args(&["--hold", "queue/x"]),
            2,
            says("not a lock kind"),
        ),
        Row::new(
            "timeout",
            args(&["--hold", "mutex/held-hold", "--timeout", "1s"]),
            5,
            says("not granted within the timeout"),
        ),
        Row::new(
            "busy",
            args(&["--hold", "mutex/held-hold", "--if-busy", "skip"]),
            10,
            says("skipped: held by gatekeeper"),
        ),
    ];
    play(&env, rows).await;
}
