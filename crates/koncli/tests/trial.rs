//! What a new user hit in the lock family (field trial 2), each reproduced with real
//! processes: waiters that give up withdraw their claim, `lock` answers within a bound
//! without a controller, invalid ttls are refused where they are made, lock identities
//! are explicit, missing locks are errors, a zero timeout takes a free lock, negative
//! priorities parse, bad kubeconfigs are one line, a closed pipe is quiet, a command
//! that cannot run takes no token, and lock errors read like barrier errors.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Env, TestServer, assert_exit, assert_said, koncli_with, stderr, stdout};
use konductor_api::locks::{Mutex, Permit};
use kube::Api;
use kube::runtime::wait::await_condition;
use tokio::io::AsyncBufReadExt;

/// The longest any awaited outcome may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(120);

async fn ended(child: tokio::process::Child) -> Output {
    tokio::time::timeout(HANG, child.wait_with_output())
        .await
        .expect("the process ends")
        .unwrap()
}

/// Waits (bounded) until the mutex's status satisfies `check`.
async fn until_mutex(
    env: &Env,
    name: &str,
    check: impl Fn(&konductor_api::locks::MutexStatus) -> bool + Send + 'static,
) {
    let mutexes: Api<Mutex> = Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(mutexes, name, |m: Option<&Mutex>| {
        m.and_then(|m| m.status.as_ref()).is_some_and(&check)
    })
    .await;
}

/// The holders of every Permit in the default namespace.
async fn claimants(client: &kube::Client) -> Vec<String> {
    let permits: Api<Permit> = Api::namespaced(client.clone(), "default");
    permits
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.spec.holder)
        .collect()
}

fn signal(child: &tokio::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[tokio::test]
async fn a_waiter_stopped_by_a_signal_withdraws_its_claim() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "q2", "--ttl", "15s"]).await;
    env.ok(&["mutex", "lock", "q2", "--holder", "X"]).await;
    let runner = env.spawn(&["mutex", "run", "q2", "--holder", "R2", "--", "true"]);
    let locker = env.spawn(&["mutex", "lock", "q2", "--wait", "--holder", "L2"]);
    until_mutex(&env, "q2", |s| s.claims.waiting.len() == 2).await;
    signal(&runner, rustix::process::Signal::INT);
    signal(&locker, rustix::process::Signal::TERM);
    let (runner, locker) = (ended(runner).await, ended(locker).await);
    assert_exit(&runner, 130);
    assert_exit(&locker, 143);
    // Both claims are gone at once: nobody is queued behind X, no ghost waits a ttl.
    until_mutex(&env, "q2", |s| s.claims.waiting.is_empty()).await;
    let left = claimants(&env.client).await;
    assert_eq!(left, ["X"]);
}

#[tokio::test]
async fn without_a_controller_lock_says_so_within_a_bound() {
    let server = TestServer::without_controller().await;
    let created = koncli_with(server.kubeconfig(), &["mutex", "create", "noctl"])
        .output()
        .await
        .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    let output = ended(
        koncli_with(
            server.kubeconfig(),
            &["mutex", "lock", "noctl", "--holder", "a"],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(said.contains("no answer from a lock controller"), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
}

#[tokio::test]
async fn an_invalid_ttl_is_refused_where_it_is_made_and_an_invalid_lock_says_so() {
    let server = TestServer::without_controller().await;
    let run = |args: &[&str]| {
        let mut command = koncli_with(server.kubeconfig(), args);
        async move { ended(command.spawn().unwrap()).await }
    };
    for ttl in ["0s", "1ms", "1.5s"] {
        let refused = run(&["mutex", "create", "ttlbad", "--ttl", ttl]).await;
        assert_eq!(refused.status.code(), Some(2), "{ttl}");
        let said = stderr(&refused);
        assert!(
            said.contains("--ttl") && said.contains("at least 2s"),
            "{said}"
        );
    }
    // A lock whose spec the controller refused (as an API server without the CRD's
    // validation would let one in): status says so, and taking it fails at once.
    assert!(run(&["mutex", "create", "refused"]).await.status.success());
    let mutexes: Api<Mutex> = Api::namespaced(server.client.clone(), "default");
    let status = serde_json::json!({"status": {"phase": "Unlocked", "conditions": [{
        "type": "Ready", "status": "False", "reason": "InvalidSpec",
        "message": "spec.ttl \"1s\" is shorter than the minimum of 2s",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    mutexes
        .patch_status(
            "refused",
            &Default::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();
    let shown = stdout(&run(&["mutex", "status", "refused"]).await);
    assert!(shown.contains("InvalidSpec: spec.ttl"), "{shown}");
    for args in [
        &["mutex", "lock", "refused", "--holder", "a"][..],
        &["mutex", "run", "refused", "--", "true"],
    ] {
        let output = run(args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_said(&output, "invalid spec");
    }
}

#[tokio::test]
async fn taking_a_lock_needs_an_explicit_identity_and_says_when_it_re_enters() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "deploy"]).await;
    let anonymous = env.run(&["mutex", "lock", "deploy"]).await;
    assert_eq!(anonymous.status.code(), Some(2));
    let said = stderr(&anonymous);
    assert!(
        said.contains("--holder") && said.contains("KONDUCTOR_HOLDER"),
        "{said}"
    );
    let first = env
        .koncli(&["mutex", "lock", "deploy"])
        .env("KONDUCTOR_HOLDER", "s1")
        .output()
        .await
        .unwrap();
    assert_eq!(stdout(&first).trim(), "1", "{}", stderr(&first));
    let again = env
        .koncli(&["mutex", "lock", "deploy"])
        .env("KONDUCTOR_HOLDER", "s1")
        .output()
        .await
        .unwrap();
    assert_eq!(stdout(&again).trim(), "1");
    assert_said(&again, "already had a claim");
    let other = env
        .run(&["mutex", "lock", "deploy", "--holder", "s2"])
        .await;
    assert_eq!(other.status.code(), Some(6));
    assert_said(&other, "held by s1");
    let anonymous = env.run(&["mutex", "unlock", "deploy"]).await;
    assert_eq!(anonymous.status.code(), Some(2));
    env.ok(&["mutex", "unlock", "deploy", "--holder", "s1"])
        .await;
}

#[tokio::test]
async fn unlocking_a_missing_lock_is_an_error_and_a_missing_claim_is_not() {
    let env = Env::start().await;
    let missing = env
        .run(&["mutex", "unlock", "nosuch", "--holder", "a"])
        .await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing).trim(),
        "koncli: mutex default/nosuch not found"
    );
    env.ok(&["mutex", "create", "there"]).await;
    let unclaimed = env.ok(&["mutex", "unlock", "there", "--holder", "a"]).await;
    assert!(
        unclaimed.contains("a held no claim on mutex default/there"),
        "{unclaimed}"
    );
}

#[tokio::test]
async fn a_zero_timeout_takes_a_free_lock_and_gives_up_on_a_busy_one_and_priorities_may_be_negative()
 {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "z"]).await;
    let free = env
        .run(&[
            "mutex",
            "lock",
            "z",
            "--holder",
            "a",
            "--wait",
            "--timeout",
            "0s",
            "--priority",
            "-3",
        ])
        .await;
    assert!(free.status.success(), "{}", stderr(&free));
    assert_eq!(stdout(&free).trim(), "1");
    let busy = env
        .run(&[
            "mutex",
            "lock",
            "z",
            "--holder",
            "b",
            "--wait",
            "--timeout",
            "0s",
        ])
        .await;
    assert_exit(&busy, 5);
    assert_said(&busy, "held by a");
    env.ok(&["mutex", "unlock", "z", "--holder", "a"]).await;
    env.ok(&["mutex", "run", "z", "--priority", "-3", "--", "true"])
        .await;
}

#[tokio::test]
async fn a_command_that_cannot_run_takes_no_token() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "c"]).await;
    let missing = env
        .run(&["mutex", "run", "c", "--", "/nonexistent/cmd"])
        .await;
    assert_exit(&missing, 127);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "echo hi\n").unwrap();
    let not_executable = env
        .run(&["mutex", "run", "c", "--", plain.to_str().unwrap()])
        .await;
    assert_exit(&not_executable, 126);
    let status = env.ok(&["mutex", "status", "c", "-o", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["status"]["fencingToken"].as_i64().unwrap_or(0),
        0,
        "{status}"
    );
}

#[tokio::test]
async fn a_waiting_run_shows_where_it_stands() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "p"]).await;
    env.ok(&["mutex", "lock", "p", "--holder", "X"]).await;
    let mut waiting = env.spawn(&["mutex", "run", "p", "--", "true"]);
    let mut lines = tokio::io::BufReader::new(waiting.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(HANG, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a progress line");
            if line.contains("held by") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        line,
        "waiting for mutex default/p: position 1 of 1 · held by X"
    );
    env.ok(&["mutex", "unlock", "p", "--holder", "X"]).await;
    assert!(ended(waiting).await.status.success());
}

#[tokio::test]
async fn lock_errors_read_like_barrier_errors() {
    let env = Env::start().await;
    let namespace = env
        .run(&["-n", "team-a", "mutex", "create", "shared"])
        .await;
    assert_eq!(
        stderr(&namespace).trim(),
        "koncli: mutex team-a/shared: namespace team-a not found"
    );
    let barrier = env
        .run(&[
            "-n",
            "team-a",
            "barrier",
            "create",
            "shared",
            "--expected",
            "1",
        ])
        .await;
    assert_eq!(
        stderr(&barrier).trim(),
        "koncli: barrier team-a/shared: namespace team-a not found"
    );
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    config["users"][0]["user"]["token"] = serde_yaml::Value::from("not-the-token");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, serde_yaml::to_string(&config).unwrap()).unwrap();
    let refused = koncli_with(&wrong, &["mutex", "lock", "m", "--holder", "a"])
        .output()
        .await
        .unwrap();
    assert!(
        stderr(&refused)
            .contains("mutex default/m: unauthorized: the API server refused the credentials"),
        "{}",
        stderr(&refused)
    );
    config["clusters"][0]["cluster"]["server"] = serde_yaml::Value::from("https://127.0.0.1:1");
    std::fs::write(&wrong, serde_yaml::to_string(&config).unwrap()).unwrap();
    let unreachable = koncli_with(&wrong, &["mutex", "status", "m"])
        .output()
        .await
        .unwrap();
    assert_said(
        &unreachable,
        "koncli: cannot reach the API server at https://127.0.0.1:1",
    );
}

#[tokio::test]
async fn a_bad_kubeconfig_is_one_line_that_never_shows_the_file() {
    let binary = env!("CARGO_BIN_EXE_koncli");
    for (file, says) in [
        ("/etc/passwd", "is not a kubeconfig"),
        ("/nonexistent", "no such file"),
    ] {
        let output = tokio::process::Command::new(binary)
            .args(["barrier", "list"])
            .env("KUBECONFIG", file)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{file}");
        let said = stderr(&output);
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(said.contains(file) && said.contains(says), "{said}");
        assert!(!said.contains("root:"), "{said}");
    }
}

#[tokio::test]
async fn a_closed_pipe_ends_koncli_quietly() {
    let mut completion = tokio::process::Command::new(env!("CARGO_BIN_EXE_koncli"))
        .args(["completion", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(completion.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next_line().await.unwrap();
    }
    drop(lines);
    let output = ended(completion).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}

#[tokio::test]
async fn arriving_at_a_barrier_that_never_existed_says_so() {
    let env = Env::start().await;
    let output = env
        .run(&[
            "barrier",
            "arrive",
            "late1",
            "w",
            "--wait-for-barrier",
            "--timeout",
            "2s",
        ])
        .await;
    assert_eq!(output.status.code(), Some(5));
    let said = stderr(&output);
    assert!(
        said.contains("barrier default/late1 does not exist"),
        "{said}"
    );
}

#[tokio::test]
async fn an_unlocked_rwmutex_has_no_holders_and_lists_count_waiters() {
    let env = Env::start().await;
    env.ok(&["rwmutex", "create", "cache"]).await;
    let status = env.ok(&["rwmutex", "status", "cache"]).await;
    assert!(status.contains("Holders:       none\n"), "{status}");
    env.ok(&["rwmutex", "lock", "cache", "--holder", "w"]).await;
    let _reader = env.spawn(&["rwmutex", "rlock", "cache", "--wait", "--holder", "r"]);
    let rwmutexes: Api<konductor_api::locks::RWMutex> =
        Api::namespaced(env.client.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(
            rwmutexes,
            "cache",
            |m: Option<&konductor_api::locks::RWMutex>| {
                m.and_then(|m| m.status.as_ref())
                    .is_some_and(|s| s.claims.waiting_count == 1)
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let listed = env.ok(&["rwmutex", "list"]).await;
    let row = listed.lines().nth(1).unwrap();
    assert!(
        row.contains("WriteLocked") && row.contains(" w ") && row.contains(" 1 "),
        "{listed}"
    );
}

#[tokio::test]
async fn a_wait_that_times_out_while_the_server_is_down_withdraws_its_claim_once_it_is_back() {
    let server = TestServer::start().await;
    let kubeconfig = server.kubeconfig().to_owned();
    let run = |args: &[&str]| {
        let mut command = koncli_with(&kubeconfig, args);
        async move { ended(command.spawn().unwrap()).await }
    };
    assert!(
        run(&["mutex", "create", "q", "--ttl", "15s"])
            .await
            .status
            .success()
    );
    assert!(
        run(&["mutex", "lock", "q", "--holder", "X"])
            .await
            .status
            .success()
    );
    let waiter = koncli_with(
        &kubeconfig,
        &[
            "mutex",
            "lock",
            "q",
            "--holder",
            "L",
            "--wait",
            "--timeout",
            "3s",
        ],
    )
    .spawn()
    .unwrap();
    let mutexes: Api<Mutex> = Api::namespaced(server.client.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(mutexes, "q", |m: Option<&Mutex>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.claims.waiting.iter().any(|w| w == "L"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    // The server goes away; the waiter's timeout runs out while it is gone.
    let stopped = server.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await; // an outage longer than the timeout
    let server = stopped.start(false).await;
    let output = ended(waiter).await;
    assert_exit(&output, 5);
    let left = claimants(&server.client).await;
    assert_eq!(
        left,
        ["X"],
        "the timed-out claim was withdrawn once the server was back"
    );
}
