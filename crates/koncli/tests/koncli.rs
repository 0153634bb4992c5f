//! `koncli` as real processes against a fresh `konductor server` (with its controller),
//! checking what a user sees: output, messages and exit codes.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::{
    Env, TestServer, assert_exit, assert_printed, assert_said, koncli_with, stderr, stdout,
};
use konductor_api::{Barrier, BarrierPhase};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

fn arrived(n: i32) -> impl Fn(&Barrier) -> bool {
    move |b| b.status.as_ref().is_some_and(|s| s.arrived == n)
}

#[tokio::test]
async fn the_seed_etl_pipeline_runs_stage_by_stage() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "extract-complete", "--expected", "5"])
        .await;
    env.ok(&["barrier", "create", "transform-complete", "--expected", "3"])
        .await;
    let transforms: Vec<Child> = (0..3)
        .map(|_| env.spawn(&["barrier", "wait", "extract-complete", "--timeout=2m"]))
        .collect();
    for i in 0..4 {
        env.ok(&[
            "barrier",
            "arrive",
            "extract-complete",
            "--holder",
            &format!("extract-{i}"),
        ])
        .await;
    }
    env.until("extract-complete", arrived(4)).await;
    let mut transforms = transforms;
    for t in &mut transforms {
        assert!(
            t.try_wait().unwrap().is_none(),
            "a transform was released before the fifth extract"
        );
    }
    env.ok(&[
        "barrier",
        "arrive",
        "extract-complete",
        "--holder",
        "extract-4",
    ])
    .await;
    for (i, t) in transforms.into_iter().enumerate() {
        let output = t.wait_with_output().await.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("barrier default/extract-complete is open"));
        env.ok(&[
            "barrier",
            "arrive",
            "transform-complete",
            "--holder",
            &format!("transform-{i}"),
        ])
        .await;
    }
    let load = env
        .run(&["barrier", "wait", "transform-complete", "--timeout=1m"])
        .await;
    assert_exit(&load, 0);
}

#[tokio::test]
async fn a_quorum_of_seven_out_of_ten_opens_the_barrier() {
    let env = Env::start().await;
    env.ok(&[
        "barrier",
        "create",
        "consensus",
        "--expected",
        "10",
        "--quorum",
        "7",
        "--timeout",
        "15m",
    ])
    .await;
    let waiter = env.spawn(&["barrier", "wait", "consensus", "--timeout=2m"]);
    for i in 0..7 {
        env.ok(&["barrier", "arrive", "consensus", &format!("voter-{i}")])
            .await;
    }
    let output = waiter.wait_with_output().await.unwrap();
    assert_exit(&output, 0);
    assert_printed(&output, "7/7 arrived (quorum of 10 expected)");
}

#[tokio::test]
async fn a_timed_out_barrier_exits_with_code_3() {
    let env = Env::start().await;
    env.ok(&[
        "barrier",
        "create",
        "slow",
        "--expected",
        "2",
        "--timeout",
        "1s",
    ])
    .await;
    env.ok(&["barrier", "arrive", "slow", "only-one"]).await;
    let output = env.run(&["barrier", "wait", "slow"]).await;
    assert_exit(&output, 3);
    assert_said(&output, "barrier default/slow timed out");
}

#[tokio::test]
async fn a_failed_barrier_exits_with_code_4() {
    let env = Env::start().await;
    env.ok(&[
        "barrier",
        "create",
        "map-complete",
        "--expected",
        "3",
        "--quorum",
        "3",
    ])
    .await;
    let waiter = env.spawn(&["barrier", "wait", "map-complete", "--timeout=2m"]);
    let reported = env
        .ok(&[
            "barrier",
            "arrive",
            "map-complete",
            "--holder",
            "mapper-2",
            "--failed",
            "--message",
            "disk full",
        ])
        .await;
    assert!(
        reported.contains("reported failure of mapper-2"),
        "{reported}"
    );
    let output = waiter.wait_with_output().await.unwrap();
    assert_exit(&output, 4);
    assert_said(&output, "failed");
    let status = env.ok(&["barrier", "status", "map-complete"]).await;
    assert!(
        status.contains("Failures:    1: mapper-2 (disk full)"),
        "{status}"
    );
}

#[tokio::test]
async fn completion_scripts_offer_no_internal_command() {
    for shell in ["bash", "zsh", "fish"] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_koncli"))
            .args(["completion", shell])
            .output()
            .await
            .unwrap();
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains("waitgroup"), "{shell}: {script}");
        assert!(!script.contains("supervise"), "{shell} offers __supervise");
    }
}

#[tokio::test]
async fn wait_started_before_create_waits_for_the_barrier() {
    let env = Env::start().await;
    let waiter = env.spawn(&["barrier", "wait", "later", "--timeout=2m"]);
    // The waiter says it is waiting for the barrier to exist before anything is created.
    let mut waiter = waiter;
    let mut stderr_pipe = tokio::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut first_line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stderr_pipe, &mut first_line)
        .await
        .unwrap();
    assert!(
        first_line.contains("waiting for barrier default/later to be created"),
        "{first_line}"
    );
    env.ok(&["barrier", "create", "later", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "later", "w"]).await;
    let status = waiter.wait().await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn prune_deletes_finished_barriers_only_and_dry_run_deletes_nothing() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "done", "--expected", "1"])
        .await;
    env.ok(&["barrier", "create", "running", "--expected", "2"])
        .await;
    env.ok(&["barrier", "arrive", "done", "--holder", "a"])
        .await;
    env.ok(&["barrier", "arrive", "running", "--holder", "a"])
        .await;
    env.until("done", |b| b.phase() == BarrierPhase::Open).await;
    env.until("running", arrived(1)).await;

    let young = env
        .ok(&["barrier", "prune", "--older-than", "1h", "--dry-run"])
        .await;
    assert!(young.is_empty(), "nothing finished an hour ago: {young}");
    let dry = env
        .ok(&["barrier", "prune", "--older-than", "0s", "--dry-run"])
        .await;
    assert_eq!(
        dry.trim(),
        "barrier default/done (Open) would be deleted (dry run)"
    );
    let listed = env.ok(&["barrier", "list"]).await;
    assert!(
        listed.contains("done") && listed.contains("running"),
        "{listed}"
    );

    let pruned = env
        .ok(&["barrier", "prune", "--older-than", "0s", "-A"])
        .await;
    assert_eq!(pruned.trim(), "barrier default/done (Open) deleted");
    let listed = env.ok(&["barrier", "list"]).await;
    assert!(!listed.contains("done"), "{listed}");
    assert!(
        listed.contains("running"),
        "a waiting barrier is never pruned"
    );

    let bad = env.run(&["barrier", "prune", "--older-than", "soon"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert_said(&bad, "--older-than");
}

#[tokio::test]
async fn arriving_twice_counts_once() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "dup", "--expected", "2"])
        .await;
    env.ok(&["barrier", "arrive", "dup", "same"]).await;
    let again = env.ok(&["barrier", "arrive", "dup", "same"]).await;
    assert!(again.contains("already arrived"), "{again}");
    env.until("dup", arrived(1)).await;
    let json = env.ok(&["barrier", "status", "dup", "-o", "json"]).await;
    let barrier: Barrier = serde_json::from_str(&json).unwrap();
    assert_eq!(barrier.phase(), BarrierPhase::Waiting);
    assert_eq!(barrier.status.unwrap().arrivals, ["same"]);
}

#[tokio::test]
async fn the_holder_comes_from_flag_then_environment() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "who", "--expected", "9"])
        .await;
    let out = env
        .koncli(&["barrier", "arrive", "who"])
        .env("POD_NAME", "pod-x")
        .output()
        .await
        .unwrap();
    assert!(
        stdout(&out).starts_with("pod-x arrived"),
        "{}",
        stdout(&out)
    );
    let out = env
        .koncli(&["barrier", "arrive", "who"])
        .env("POD_NAME", "pod-y")
        .env("KONDUCTOR_HOLDER", "explicit")
        .output()
        .await
        .unwrap();
    assert!(
        stdout(&out).starts_with("explicit arrived"),
        "{}",
        stdout(&out)
    );
    let out = env
        .koncli(&["barrier", "arrive", "who", "--holder", "flag"])
        .env("KONDUCTOR_HOLDER", "env")
        .output()
        .await
        .unwrap();
    assert!(stdout(&out).starts_with("flag arrived"), "{}", stdout(&out));
    let out = env.ok(&["barrier", "arrive", "who"]).await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        out.starts_with(&format!("{} arrived", hostname.trim())),
        "{out}"
    );
}

#[tokio::test]
async fn the_client_timeout_exits_with_code_5() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "never", "--expected", "2"])
        .await;
    let output = env.run(&["barrier", "wait", "never", "--timeout=1s"]).await;
    assert_exit(&output, 5);
    assert_said(&output, "still not open after");
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_the_documented_code() {
    let env = Env::start().await;
    let cases: &[(&[&str], i32, &str)] = &[
        (&["barrier", "wait", "x", "--timeout=abc"], 2, "--timeout"),
        (
            &["barrier", "create", "x", "--expected", "0"],
            2,
            "--expected",
        ),
        (&["barrier", "wait"], 2, "<NAME>"),
        (
            &["barrier", "status", "unknown"],
            1,
            "barrier default/unknown not found",
        ),
        (
            &["barrier", "arrive", "unknown", "h"],
            1,
            "barrier default/unknown not found",
        ),
        (
            &["barrier", "create", "Bad_Name", "--expected", "1"],
            2,
            "<NAME>",
        ),
        (
            &["barrier", "create", "q", "--expected", "2", "--quorum", "3"],
            2,
            "--quorum 3 is more than --expected 2",
        ),
    ];
    for (args, code, message) in cases {
        let output = env.run(args).await;
        assert_eq!(
            output.status.code(),
            Some(*code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{args:?}");
    }
}

/// Every argument koncli takes, given a bad value: exit 2 with one line naming the
/// argument, before anything is sent (no kubeconfig is even read).
#[test]
fn every_bad_argument_is_one_usage_line_naming_it() {
    let long_name = "a".repeat(64);
    let long_holder = "h".repeat(254);
    let long_message = "m".repeat(1025);
    let cases: &[(&[&str], &str)] = &[
        (&["barrier", "wait"], "<NAME>"),
        (&["barrier", "wait", "B_AD"], "<NAME>"),
        (&["barrier", "wait", "../etc"], "<NAME>"),
        (&["barrier", "wait", "-b"], "'-b'"),
        (&["barrier", "wait", &long_name], "at most 63"),
        (&["barrier", "wait", "b", "--timeout", "abc"], "--timeout"),
        (&["barrier", "wait", "b", "--timeout", "5"], "--timeout"),
        (&["barrier", "wait", "b", "--timeout", "1e9h"], "--timeout"),
        (
            &["barrier", "wait", "b", "--timeout", "9999999999h"],
            "--timeout",
        ),
        (&["barrier", "wait", "b", "--bogus"], "--bogus"),
        (&["barrier", "wait", "b", "-n", ""], "--namespace"),
        (&["barrier", "wait", "b", "-n", "Bad_NS"], "--namespace"),
        (&["barrier", "wait", "b", "--kubeconfig"], "--kubeconfig"),
        (&["barrier", "wait", "b", "--context"], "--context"),
        (&["barrier", "arrive"], "<NAME>"),
        (&["barrier", "arrive", "b", ""], "[HOLDER]"),
        (&["barrier", "arrive", "b", "--holder", ""], "--holder"),
        (&["barrier", "arrive", "b", &long_holder], "at most 253"),
        (
            &["barrier", "arrive", "b", "h", "--holder", "h2"],
            "--holder",
        ),
        (
            &["barrier", "arrive", "b", "h", "--message", "why"],
            "--failed",
        ),
        (
            &[
                "barrier",
                "arrive",
                "b",
                "h",
                "--failed",
                "--message",
                &long_message,
            ],
            "--message",
        ),
        (
            &["barrier", "arrive", "b", "h", "--timeout", "5s"],
            "--wait-for-barrier",
        ),
        (
            &[
                "barrier",
                "arrive",
                "b",
                "h",
                "--wait-for-barrier",
                "--timeout",
                "x",
            ],
            "--timeout",
        ),
        (&["barrier", "status", "B"], "<NAME>"),
        (&["barrier", "status", "b", "-o", "xml"], "--output"),
        (&["barrier", "create", "b"], "--expected"),
        (&["barrier", "create", "b", "--expected", "0"], "--expected"),
        (&["barrier", "create", "b", "--expected", "-1"], "'-1'"),
        (
            &["barrier", "create", "b", "--expected", "ten"],
            "--expected",
        ),
        (
            &["barrier", "create", "b", "--expected", "99999999999"],
            "--expected",
        ),
        (
            &["barrier", "create", "b", "--expected", "3", "--quorum", "0"],
            "--quorum",
        ),
        (
            &["barrier", "create", "b", "--expected", "3", "--quorum", "4"],
            "--quorum 4",
        ),
        (
            &[
                "barrier",
                "create",
                "b",
                "--expected",
                "3",
                "--timeout",
                "soon",
            ],
            "--timeout",
        ),
        (
            &["barrier", "create", "b", "--expected", "3", "-o", "wide"],
            "--output",
        ),
        (&["barrier", "create", "B", "--expected", "3"], "<NAME>"),
        (&["barrier", "delete"], "<NAME>"),
        (&["barrier", "delete", "b.."], "<NAME>"),
        (&["barrier", "list", "-o", "table"], "--output"),
        (&["barrier", "list", "-A", "-n", "x"], "--all-namespaces"),
        (&["barrier", "bogus"], "bogus"),
        (&["completion", "zsh2"], "<SHELL>"),
        (&["bogus"], "bogus"),
    ];
    for (args, names) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_koncli"))
            .args(*args)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
        assert_eq!(said.lines().count(), 1, "{args:?}: one line, got {said}");
        assert!(said.starts_with("koncli: "), "{args:?}: {said}");
        assert!(said.contains(names), "{args:?} should name {names}: {said}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let output = koncli_with(&kubeconfig, &["barrier", "status", "b"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "cannot reach the API server at https://127.0.0.1:{port}"
        )),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one line: {message}");
}

#[tokio::test]
async fn status_and_list_speak_json_yaml_and_wide() {
    let env = Env::start().await;
    env.ok(&[
        "barrier",
        "create",
        "fmt",
        "--expected",
        "3",
        "--timeout",
        "30m",
    ])
    .await;
    env.until("fmt", |b| b.status.is_some()).await;
    let yaml = env.ok(&["barrier", "status", "fmt", "-o", "yaml"]).await;
    let parsed: Barrier = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(parsed.spec.timeout.as_deref(), Some("30m"));
    let wide = env.ok(&["barrier", "list", "-o", "wide"]).await;
    assert!(wide.starts_with("NAME"), "{wide}");
    // The CRD's printer columns, as kubectl prints them (-o wide adds Timeout, Failed).
    assert!(
        wide.contains("TIMEOUT") && wide.contains("FAILED"),
        "{wide}"
    );
    assert!(wide.lines().nth(1).unwrap().starts_with("fmt"), "{wide}");
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["barrier", "list", "-o", "json"]).await).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "fmt");
    let all = env.ok(&["barrier", "list", "-A"]).await;
    assert!(all.starts_with("NAMESPACE"), "{all}");
    let summary = env.ok(&["barrier", "status", "fmt"]).await;
    assert!(summary.contains("Phase:       Waiting"), "{summary}");
    assert!(summary.contains("left)"), "{summary}");
    env.ok(&["barrier", "delete", "fmt"]).await;
    assert_eq!(
        env.run(&["barrier", "status", "fmt"]).await.status.code(),
        Some(1)
    );
}

#[tokio::test]
async fn completion_and_version_work_without_a_server() {
    let output = Command::new(env!("CARGO_BIN_EXE_koncli"))
        .args(["completion", "bash"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(stdout(&output).contains("koncli"));
    let output = Command::new(env!("CARGO_BIN_EXE_koncli"))
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(stdout(&output).starts_with("koncli "));
    let help = Command::new(env!("CARGO_BIN_EXE_koncli"))
        .args(["barrier", "wait", "--help"])
        .output()
        .await
        .unwrap();
    assert!(stdout(&help).contains("Exit codes"), "{}", stdout(&help));
}

#[tokio::test]
async fn the_etl_example_script_runs_to_completion() {
    let env = Env::start().await;
    let out = env.play_example("etl-pipeline.sh").await;
    assert!(out.contains("load: all transforms done"), "{out}");
    assert!(out.contains("Phase:       Open"), "{out}");
}

#[tokio::test]
async fn arrive_can_wait_for_the_barrier_to_exist() {
    let env = Env::start().await;
    let mut arriving = env.spawn(&[
        "barrier",
        "arrive",
        "soon",
        "early-bird",
        "--wait-for-barrier",
        "--timeout",
        "1m",
    ]);
    let mut lines = tokio::io::BufReader::new(arriving.stderr.take().unwrap());
    let mut first = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first)
        .await
        .unwrap();
    assert!(first.contains("does not exist yet"), "{first}");
    env.ok(&["barrier", "create", "soon", "--expected", "1"])
        .await;
    let output = arriving.wait_with_output().await.unwrap();
    assert!(output.status.success());
    assert_printed(&output, "early-bird arrived");
    env.until("soon", |b| b.phase() == BarrierPhase::Open).await;
}

#[tokio::test]
async fn on_a_terminal_wait_shows_a_live_progress_line() {
    let env = Env::start().await;
    env.ok(&[
        "barrier",
        "create",
        "tty",
        "--expected",
        "2",
        "--timeout",
        "10m",
    ])
    .await;
    env.ok(&["barrier", "arrive", "tty", "first"]).await;
    env.until("tty", arrived(1)).await;
    // `script` runs koncli on a pseudo-terminal and records what the terminal shows.
    let command = format!(
        "{} --kubeconfig {} barrier wait tty --timeout 1s",
        env!("CARGO_BIN_EXE_koncli"),
        env.kubeconfig().display()
    );
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .await
        .expect("`script` (util-linux) runs koncli on a terminal");
    let screen = stdout(&output);
    assert!(
        screen.contains("waiting for barrier default/tty: 1/2 arrived"),
        "{screen}"
    );
    assert!(screen.contains("waited"), "{screen}");
    assert!(screen.contains("barrier deadline in"), "{screen}");
    assert!(screen.contains("--timeout in"), "{screen}");
    assert!(
        screen.contains('\r'),
        "the progress line is redrawn in place: {screen:?}"
    );
}

#[tokio::test]
async fn wait_survives_an_api_server_restart() {
    let first = TestServer::start().await;
    let kubeconfig = first.kubeconfig().to_owned();
    let create = koncli_with(
        &kubeconfig,
        &["barrier", "create", "durable", "--expected", "1"],
    )
    .output()
    .await
    .unwrap();
    assert!(create.status.success(), "{}", stderr(&create));
    let mut waiter = koncli_with(&kubeconfig, &["barrier", "wait", "durable", "--timeout=2m"])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(waiter.stderr.take().unwrap()).lines();
    let first_line = lines.next_line().await.unwrap().unwrap();
    assert!(
        first_line.contains("waiting for barrier default/durable"),
        "{first_line}"
    );

    let stopped = first.stop().await;
    // The waiter notices the server is gone (its watch cannot be re-established)
    // before the server comes back.
    let mut said = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let reconnecting = line.contains("reconnecting");
            said.push(line);
            if reconnecting {
                break;
            }
        }
    })
    .await
    .expect("the waiter says it is reconnecting");
    let _second = stopped.start(true).await;
    let arrive = koncli_with(&kubeconfig, &["barrier", "arrive", "durable", "late"])
        .output()
        .await
        .unwrap();
    assert!(arrive.status.success(), "{}", stderr(&arrive));

    while let Some(line) = lines.next_line().await.unwrap() {
        said.push(line);
    }
    let status = waiter.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{said:?}");
}

/// A copy of `kubeconfig` whose token the server does not know.
fn with_wrong_token(kubeconfig: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    config["users"][0]["user"]["token"] = serde_yaml::Value::from("not-the-token");
    let path = dir.join("wrong-token-kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// Runs koncli with a bound on how long it may take (a hang fails the test).
async fn run_bounded(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("koncli finishes")
        .unwrap()
}

#[tokio::test]
async fn refused_credentials_end_a_wait_at_once() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "locked", "--expected", "1"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = with_wrong_token(&env.kubeconfig(), dir.path());
    let output = run_bounded(&mut koncli_with(&wrong, &["barrier", "wait", "locked"])).await;
    assert_exit(&output, 1);
    let said = stderr(&output);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("unauthorized"), "{said}");
}

#[tokio::test]
async fn a_holder_that_reported_failure_can_arrive_after_all() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "retry", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "retry", "job-1", "--failed"])
        .await;
    env.until("retry", |b| b.phase() == BarrierPhase::Failed)
        .await;
    let arrived = env.ok(&["barrier", "arrive", "retry", "job-1"]).await;
    assert!(
        arrived.contains("replacing its earlier failure report"),
        "{arrived}"
    );
    let waited = run_bounded(&mut env.koncli(&["barrier", "wait", "retry", "--timeout=30s"])).await;
    assert_exit(&waited, 0);
    // A failure after arriving is not recorded, and the exit code says so.
    let late = env
        .run(&["barrier", "arrive", "retry", "job-1", "--failed"])
        .await;
    assert_eq!(late.status.code(), Some(1));
    assert_said(&late, "its arrival stands");
    let again = env.ok(&["barrier", "arrive", "retry", "job-1"]).await;
    assert!(again.contains("counted once"), "{again}");
}

#[tokio::test]
async fn a_wait_reads_the_barrier_before_its_timeout_applies() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "done", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "done", "w"]).await;
    env.until("done", |b| b.phase() == BarrierPhase::Open).await;
    let open = env
        .run(&["barrier", "wait", "done", "--timeout", "0s"])
        .await;
    assert_exit(&open, 0);
    env.ok(&[
        "barrier",
        "create",
        "late",
        "--expected",
        "2",
        "--timeout",
        "1ms",
    ])
    .await;
    env.until("late", |b| b.phase() == BarrierPhase::Timeout)
        .await;
    let timed_out = env
        .run(&["barrier", "wait", "late", "--timeout", "0s"])
        .await;
    assert_exit(&timed_out, 3);
    let gave_up = env
        .run(&[
            "barrier",
            "arrive",
            "nowhere",
            "--wait-for-barrier",
            "--timeout",
            "1ms",
        ])
        .await;
    assert_eq!(gave_up.status.code(), Some(5));
    assert!(
        stderr(&gave_up).lines().any(|l| l.starts_with("koncli: ")),
        "every failing exit says why: {}",
        stderr(&gave_up)
    );
}

#[tokio::test]
async fn status_without_a_controller_says_there_is_none_yet() {
    let server = TestServer::without_controller().await;
    let run = |args: &'static [&'static str]| {
        let mut command = koncli_with(server.kubeconfig(), args);
        async move { run_bounded(&mut command).await }
    };
    let created = run(&[
        "barrier",
        "create",
        "idle",
        "--expected",
        "2",
        "--timeout",
        "1h",
    ])
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let arrived = run(&["barrier", "arrive", "idle", "a"]).await;
    assert!(arrived.status.success(), "{}", stderr(&arrived));
    let status = stdout(&run(&["barrier", "status", "idle"]).await);
    assert!(status.contains("none reported yet"), "{status}");
    assert!(status.contains("is a controller running?"), "{status}");
    assert!(status.contains("2 expected, timeout 1h"), "{status}");
    for contradiction in ["Phase:", "Deadline:", "none yet"] {
        assert!(
            !status.contains(contradiction),
            "{contradiction} in {status}"
        );
    }
}

#[tokio::test]
async fn machine_output_keeps_timestamps_as_stored() {
    let env = Env::start().await;
    let created = env
        .ok(&[
            "barrier",
            "create",
            "precise",
            "--expected",
            "1",
            "-o",
            "json",
        ])
        .await;
    let object: serde_json::Value = serde_json::from_str(&created).unwrap();
    let stamp = object["metadata"]["creationTimestamp"].as_str().unwrap();
    let fraction = stamp.split('.').nth(1).unwrap_or_default();
    assert_eq!(
        fraction.len(),
        "123456Z".len(),
        "microseconds kept: {stamp}"
    );
    let yaml = env
        .ok(&["barrier", "status", "precise", "-o", "yaml"])
        .await;
    assert!(yaml.contains(stamp), "{yaml}");
    let listed = env.ok(&["barrier", "list", "-o", "json"]).await;
    assert!(listed.contains(stamp), "{listed}");
}

#[tokio::test]
async fn arriving_at_a_settled_barrier_says_so() {
    let env = Env::start().await;
    env.ok(&["barrier", "create", "full", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "full", "first"]).await;
    env.until("full", |b| b.phase() == BarrierPhase::Open).await;
    let late = env.ok(&["barrier", "arrive", "full", "second"]).await;
    assert!(late.contains("already open"), "{late}");
}

#[tokio::test]
async fn a_wait_says_why_the_barrier_is_not_there() {
    let env = Env::start().await;
    let mut nowhere = env.spawn(&["-n", "nowhere", "barrier", "wait", "b", "--timeout", "2s"]);
    let mut lines = tokio::io::BufReader::new(nowhere.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(
        first.contains("namespace nowhere does not exist"),
        "{first}"
    );
    assert_eq!(nowhere.wait().await.unwrap().code(), Some(5));

    env.ok(&["barrier", "create", "reset", "--expected", "2"])
        .await;
    let mut waiter = env.spawn(&["barrier", "wait", "reset", "--timeout", "30s"]);
    let mut lines = tokio::io::BufReader::new(waiter.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(
        first.contains("waiting for barrier default/reset"),
        "{first}"
    );
    env.ok(&["barrier", "delete", "reset"]).await;
    let next = lines.next_line().await.unwrap().unwrap();
    assert!(next.contains("was deleted"), "{next}");
    let _ = waiter.kill().await;
}

#[tokio::test]
async fn installed_as_kubectl_konductor_it_runs_as_a_kubectl_plugin() {
    let env = Env::start().await;
    let plugins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_koncli"),
        plugins.path().join("kubectl-konductor"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        plugins.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", env.kubeconfig())
            .env("HOME", plugins.path())
            .output()
    };
    let listed = kubectl(&["plugin", "list"]).await.unwrap();
    assert_printed(&listed, "kubectl-konductor");
    let created = kubectl(&[
        "konductor",
        "barrier",
        "create",
        "via-kubectl",
        "--expected",
        "1",
    ])
    .await
    .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("barrier default/via-kubectl created"));
    let help = kubectl(&["konductor", "--help"]).await.unwrap();
    assert_printed(&help, "Usage: kubectl konductor");
    // Errors name the plugin as the user called it.
    let missing = kubectl(&["konductor", "mutex", "status", "nowhere"])
        .await
        .unwrap();
    assert_eq!(
        stderr(&missing).trim(),
        "kubectl konductor: mutex default/nowhere not found"
    );
}
