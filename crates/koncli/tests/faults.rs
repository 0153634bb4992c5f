//! The lock family's promise under faults, tested from outside with real processes: a
//! holder cut off by a partition (a proxy that blackholes its traffic) stops its
//! command before anyone else is granted the lock; answers delayed by most of the ttl
//! cause no false alarm, answers later than that do; `kill -9` of `koncli … run` leaves
//! no command or grandchild behind; waiters ride out server restarts and all run; a
//! dead waiter is never granted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::proxy::{Mode, Proxy};
use common::{Env, assert_exit, assert_said, koncli_with, stderr};
use konductor_api::locks::Mutex;
use kube::Api;
use kube::runtime::wait::await_condition;

/// The longest any awaited outcome may take before the test calls it a hang (it
/// measures nothing).
const HANG: Duration = Duration::from_secs(120);

/// Waits (bounded) until `path` has a line equal to `line`.
async fn until_line(path: &Path, line: &str) {
    tokio::time::timeout(HANG, async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never had the line {line:?}", path.display()));
}

/// Waits (bounded) for a process to end, returning its output.
async fn ended(child: tokio::process::Child) -> Output {
    tokio::time::timeout(HANG, child.wait_with_output())
        .await
        .expect("the process ends")
        .unwrap()
}

/// Whether the process `pid` is still running (a zombie is not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z')
}

/// A shell script for the second holder: logs whether any process whose pid is in the
/// `pids` files still runs, then that it started.
fn second_holder(dir: &Path, pids: &[&str]) -> String {
    let files: Vec<String> = pids
        .iter()
        .map(|p| dir.join(p).display().to_string())
        .collect();
    format!(
        "for p in $(cat {files}); do if [ -e /proc/$p ] && [ \"$(sed 's/.*) //' /proc/$p/stat | cut -c1)\" != Z ]; then echo OVERLAP $p >> {log}; fi; done; echo B-start >> {log}",
        files = files.join(" "),
        log = dir.join("log").display()
    )
}

#[tokio::test]
async fn a_partitioned_holder_stops_its_command_before_anyone_else_is_granted() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "m", "--ttl", "3s"]).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(env.server.address).await;
    let cut_off = proxy.kubeconfig(&env.kubeconfig(), dir.path());
    let log = dir.path().join("log");
    // A's command (a shell and a grandchild) notes SIGTERM but does not stop for it:
    // only the SIGKILL after the grace ends it.
    let script = format!(
        "sleep 1000 & echo $! > {dir}/child.pid; echo $$ > {dir}/shell.pid; trap 'echo A-term >> {log}' TERM; echo A-start >> {log}; while :; do sleep 0.1; done",
        dir = dir.path().display(),
        log = log.display()
    );
    let a = koncli_with(
        &cut_off,
        &[
            "mutex", "run", "m", "--holder", "A", "--", "sh", "-c", &script,
        ],
    )
    .spawn()
    .unwrap();
    until_line(&log, "A-start").await;

    proxy.set(Mode::Blackhole);
    let b = env.spawn(&[
        "mutex",
        "run",
        "m",
        "--holder",
        "B",
        "--",
        "sh",
        "-c",
        &second_holder(dir.path(), &["shell.pid", "child.pid"]),
    ]);
    // A's command is stopped (SIGTERM, then SIGKILL after the grace) while the
    // partition holds; A then exits at once — it does not linger on the server it lost.
    until_line(&log, "A-term").await;
    let shell = std::fs::read_to_string(dir.path().join("shell.pid")).unwrap();
    let stopped = tokio::time::timeout(HANG, async {
        while running(&shell) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::time::Instant::now()
    })
    .await
    .expect("A's command is stopped");
    let a = ended(a).await;
    eprintln!(
        "a cut-off holder exited {:?} after its command was stopped",
        stopped.elapsed()
    );
    let b = ended(b).await;
    assert!(b.status.success(), "B: {}", stderr(&b));
    assert_eq!(a.status.code(), Some(7), "A: {}", stderr(&a));
    assert!(
        stderr(&a).contains("acknowledged no renewal in time"),
        "A says why: {}",
        stderr(&a)
    );
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        !written.contains("OVERLAP"),
        "A was still running when B started:\n{written}"
    );
    let order: Vec<&str> = written.lines().collect();
    assert_eq!(order, ["A-start", "A-term", "B-start"], "{written}");
    for pid in ["shell.pid", "child.pid"] {
        let pid = std::fs::read_to_string(dir.path().join(pid)).unwrap();
        assert!(!running(&pid), "{pid} outlived the grant");
    }
}

#[tokio::test]
async fn late_answers_within_the_margin_keep_the_grant_and_later_ones_stop_the_command() {
    let env = Env::start().await;
    // ttl 6s: renewals every 1 s, trusted 4.8 s after the last acknowledged one was
    // sent — so answers 3.8 s late still keep the grant, 4.8 s late ones cannot. Half
    // the ttl leaves room for a loaded machine; more than the ttl leaves none.
    env.ok(&["mutex", "create", "d", "--ttl", "6s"]).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(env.server.address).await;
    let slow = proxy.kubeconfig(&env.kubeconfig(), dir.path());
    let log = dir.path().join("log");
    let script = format!(
        "echo start >> {log}; sleep 13; echo end >> {log}",
        log = log.display()
    );
    let patient = koncli_with(&slow, &["mutex", "run", "d", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    until_line(&log, "start").await;
    proxy.set(Mode::DelayAnswers(Duration::from_secs(3)));
    let patient = ended(patient).await;
    assert!(
        patient.status.success(),
        "answers 3 s late made a false alarm: {}",
        stderr(&patient)
    );
    until_line(&log, "end").await;

    proxy.set(Mode::Pass);
    let script = format!("echo again >> {log}; sleep 60", log = log.display());
    let doomed = koncli_with(&slow, &["mutex", "run", "d", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    until_line(&log, "again").await;
    proxy.set(Mode::DelayAnswers(Duration::from_secs(7)));
    let doomed = ended(doomed).await;
    assert_exit(&doomed, 7);
    assert_said(&doomed, "acknowledged no renewal in time");
}

#[tokio::test]
async fn kill_9_of_run_leaves_no_command_or_grandchild_behind() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "k"]).await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "sleep 1000 & echo $! > {dir}/child.pid; echo $$ > {dir}/shell.pid; echo up >> {dir}/log; wait",
        dir = dir.path().display()
    );
    let mut run = env.spawn(&["mutex", "run", "k", "--", "sh", "-c", &script]);
    until_line(&dir.path().join("log"), "up").await;
    let pids: Vec<String> = ["shell.pid", "child.pid"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap())
        .collect();
    assert!(pids.iter().all(|p| running(p)));
    run.start_kill().unwrap(); // SIGKILL
    run.wait().await.unwrap();
    tokio::time::timeout(HANG, async {
        while pids.iter().any(|p| running(p)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the command or its child outlived koncli: {pids:?}"));
}

#[tokio::test]
async fn a_command_outlives_any_thread_pool_timeout_while_koncli_lives() {
    // Tokio's blocking threads idle out after 10 s; a parent-death signal tied to one
    // of them would kill the command then.
    let env = Env::start().await;
    env.ok(&["mutex", "create", "long"]).await;
    let run = env.spawn(&["mutex", "run", "long", "--", "sleep", "12"]);
    let output = ended(run).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn waiters_ride_out_server_restarts_and_all_run() {
    let mut server = common::TestServer::start().await;
    let kubeconfig: PathBuf = server.kubeconfig().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let create = koncli_with(&kubeconfig, &["mutex", "create", "relay", "--ttl", "3s"])
        .output()
        .await
        .unwrap();
    assert!(create.status.success(), "{}", stderr(&create));
    let log = dir.path().join("relay.log");
    let script = format!(
        "echo start $KONDUCTOR_FENCING_TOKEN >> {log}; sleep 0.3; echo end $KONDUCTOR_FENCING_TOKEN >> {log}",
        log = log.display()
    );
    let runs: Vec<_> = (0..30)
        .map(|i| {
            koncli_with(
                &kubeconfig,
                &[
                    "mutex",
                    "run",
                    "relay",
                    "--holder",
                    &format!("w{i}"),
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for restart in 1..=3 {
        let done = restart * 4;
        tokio::time::timeout(HANG, async {
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.lines().filter(|l| l.starts_with("end ")).count() >= done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the relay goes on");
        server = server.restart(true).await;
    }
    for run in runs {
        let output = ended(run).await;
        assert!(
            output.status.success(),
            "a waiter did not run: {}",
            stderr(&output)
        );
    }
    let written = std::fs::read_to_string(&log).unwrap();
    let mut open = 0;
    let mut tokens = Vec::new();
    for line in written.lines() {
        if let Some(token) = line.strip_prefix("start ") {
            open += 1;
            assert_eq!(open, 1, "two inside at once:\n{written}");
            tokens.push(token.parse::<i64>().unwrap());
        } else {
            open -= 1;
        }
    }
    assert_eq!(tokens.len(), 30, "{written}");
    assert!(
        tokens.windows(2).all(|t| t[0] < t[1]),
        "tokens rise: {tokens:?}"
    );
    drop(server);
}

#[tokio::test]
async fn a_dead_waiter_is_never_granted() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "w", "--ttl", "2s"]).await;
    let mutexes: Api<Mutex> = Api::namespaced(env.client.clone(), "default");
    // Every holder the lock's status ever lists, from before anyone asks.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let watcher = {
        let (mutexes, seen) = (mutexes.clone(), seen.clone());
        tokio::spawn(async move {
            await_condition(mutexes, "w", move |m: Option<&Mutex>| {
                for grant in m
                    .and_then(|m| m.status.as_ref())
                    .and_then(|s| s.claims.grants.as_ref())
                    .into_iter()
                    .flatten()
                {
                    seen.lock().unwrap().insert(grant.holder.clone());
                }
                false
            })
            .await
        })
    };
    let in_status = |check: fn(&konductor_api::locks::MutexStatus) -> bool| {
        let mutexes = mutexes.clone();
        async move {
            tokio::time::timeout(
                HANG,
                await_condition(mutexes, "w", move |m: Option<&Mutex>| {
                    m.and_then(|m| m.status.as_ref()).is_some_and(check)
                }),
            )
            .await
            .expect("the lock gets there")
            .unwrap();
        }
    };
    let holder = env.spawn(&["mutex", "run", "w", "--holder", "H", "--", "sleep", "5"]);
    in_status(|s| s.holder.as_deref() == Some("H")).await;
    let mut dead = env.spawn(&["mutex", "run", "w", "--holder", "D", "--", "true"]);
    in_status(|s| s.claims.waiting.iter().any(|w| w == "D")).await;
    dead.start_kill().unwrap(); // SIGKILL while queued: no withdrawal, no more renewals
    dead.wait().await.unwrap();
    let live = env.spawn(&["mutex", "run", "w", "--holder", "L", "--", "true"]);
    in_status(|s| s.claims.waiting.iter().any(|w| w == "L")).await;
    assert!(ended(holder).await.status.success());
    let live = ended(live).await;
    assert!(live.status.success(), "{}", stderr(&live));
    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains("L"), "{seen:?}");
    assert!(!seen.contains("D"), "the dead waiter was granted: {seen:?}");
}

#[tokio::test]
async fn a_barrier_wait_notices_a_blackholed_server_and_reconnects() {
    use tokio::io::AsyncBufReadExt;
    let env = Env::start().await;
    env.ok(&["barrier", "create", "far", "--expected", "1"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(env.server.address).await;
    let cut_off = proxy.kubeconfig(&env.kubeconfig(), dir.path());
    let mut waiter = koncli_with(&cut_off, &["barrier", "wait", "far"])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(waiter.stderr.take().unwrap()).lines();
    next_saying(&mut lines, "waiting for barrier").await;
    // A partition: no answers, no resets. The wait must notice, not wait forever.
    proxy.set(Mode::Blackhole);
    next_saying(&mut lines, "reconnecting").await;
    proxy.set(Mode::Pass);
    env.ok(&["barrier", "arrive", "far", "someone"]).await;
    let output = ended(waiter).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Reads `lines` (bounded) until one contains `what`.
async fn next_saying(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    what: &str,
) {
    tokio::time::timeout(HANG, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(what) {
                return;
            }
        }
        panic!("the process ended without saying {what:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("never said {what:?}"));
}

#[tokio::test]
async fn a_partitioned_waitgroup_worker_stops_its_command_before_its_member_fails() {
    use konductor_api::waitgroup::{WaitGroupMember, member_name};
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "cut", "--member-ttl", "3s"])
        .await;
    env.ok(&["waitgroup", "add", "cut", "--member", "w"]).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(env.server.address).await;
    let cut_off = proxy.kubeconfig(&env.kubeconfig(), dir.path());
    let log = dir.path().join("log");
    // The command notes (in µs since the epoch) when it is told to stop.
    let script = format!(
        "trap 'echo term $(date +%s%6N) >> {log}; exit 143' TERM; echo started >> {log}; while :; do sleep 0.1; done",
        log = log.display()
    );
    let worker = koncli_with(
        &cut_off,
        &[
            "waitgroup",
            "run",
            "cut",
            "--member",
            "w",
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .spawn()
    .unwrap();
    until_line(&log, "started").await;
    let waiter = env.spawn(&["waitgroup", "wait", "cut"]);
    proxy.set(Mode::Blackhole);

    let worker = ended(worker).await;
    assert_exit(&worker, 7);
    assert!(
        stderr(&worker).contains("acknowledged no renewal in time"),
        "the worker says why: {}",
        stderr(&worker)
    );
    let waiter = ended(waiter).await;
    assert_exit(&waiter, 4);
    assert_said(&waiter, "w: expired");

    // The command was stopped before the controller counted its member as failed.
    let written = std::fs::read_to_string(&log).unwrap();
    let stopped: i64 = written
        .lines()
        .find_map(|l| l.strip_prefix("term "))
        .unwrap_or_else(|| panic!("the command was not stopped: {written}"))
        .trim()
        .parse()
        .unwrap();
    let members: kube::Api<WaitGroupMember> = kube::Api::namespaced(env.client.clone(), "default");
    let expired = members
        .get(&member_name("cut", "w"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(expired.expired);
    let expired_at = expired.expired_at.unwrap().0.as_microsecond();
    assert!(
        stopped < expired_at,
        "stopped at {stopped} µs, expired at {expired_at} µs"
    );
}
