//! What lock users ask for next, as real `koncli` processes against a fresh `konductor
//! server`: several locks held around one command (`run --hold`) without deadlock
//! whatever order or spelling the flags came in, a lost lock stopping the command,
//! claims withdrawn on an interrupt, duplicates and token-name collisions refused; locks
//! made on first use (and `--no-create`); `--if-busy skip|fail` and `--skip-exit`.

mod common;

use std::path::Path;

use common::{Env, assert_exit, assert_said, max_overlap, stderr, stdout};
use konductor_api::locks::{LockKind, Permit, PermitPhase, permit_name};
use kube::Api;

/// The longest any awaited outcome may take before the test calls it a hang.
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// A command appending start/end lines with the fencing tokens of mutexes a and b to
/// `log`, pausing in between.
fn section(log: &Path) -> String {
    let log = log.display();
    format!(
        "echo start $KONDUCTOR_FENCING_TOKEN_MUTEX_DEFAULT_A $KONDUCTOR_FENCING_TOKEN_MUTEX_DEFAULT_B >> {log}; sleep 0.01; echo end >> {log}"
    )
}

/// Waits (bounded) until the Permit of `holder` on the `kind` lock `lock` is granted.
async fn until_granted(env: &Env, kind: LockKind, lock: &str, holder: &str) {
    let permits: Api<Permit> = Api::namespaced(env.client.clone(), "default");
    let name = permit_name(kind, lock, holder);
    tokio::time::timeout(
        HANG,
        kube::runtime::wait::await_condition(permits, &name, |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.phase == PermitPhase::Granted)
        }),
    )
    .await
    .expect("granted")
    .unwrap();
}

#[tokio::test]
async fn twenty_pairs_taking_two_locks_in_opposite_orders_never_deadlock_or_overlap() {
    const PAIRS: usize = 20;
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("both.log");
    let script = section(&log);
    let mut runs = Vec::new();
    for _ in 0..PAIRS {
        // The locks are made on first use by whichever run comes first.
        runs.push(env.spawn(&[
            "run", "--hold", "mutex/a", "--hold", "mutex/b", "--", "sh", "-c", &script,
        ]));
        runs.push(env.spawn(&[
            "-n",
            "default",
            "run",
            "--hold",
            "mutexes/b",
            "--hold",
            "Mutex/a",
            "--",
            "sh",
            "-c",
            &script,
        ]));
    }
    for run in runs {
        let output = tokio::time::timeout(HANG, run.wait_with_output())
            .await
            .expect("no run deadlocks")
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let written = std::fs::read_to_string(&log).unwrap();
    let starts: Vec<&str> = written
        .lines()
        .filter(|l| l.starts_with("start "))
        .collect();
    assert_eq!(starts.len(), 2 * PAIRS, "every run ran once:\n{written}");
    assert_eq!(max_overlap(&written), 1, "two runs overlapped:\n{written}");
    // Each run saw both tokens, rising from run to run.
    let tokens: Vec<(i64, i64)> = starts
        .iter()
        .map(|l| {
            let mut parts = l.split_whitespace().skip(1).map(|t| t.parse().unwrap());
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    for pair in tokens.windows(2) {
        assert!(pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1, "{written}");
    }
}

#[tokio::test]
async fn each_token_reaches_the_command_and_a_lost_second_lock_stops_it() {
    let env = Env::start().await;
    let printed = env
        .ok(&[
            "run",
            "--hold",
            "semaphore/gpus=2",
            "--hold",
            "rwmutex/cfg=read",
            "--",
            "sh",
            "-c",
            "echo $KONDUCTOR_FENCING_TOKEN $KONDUCTOR_FENCING_TOKEN_RWMUTEX_DEFAULT_CFG $KONDUCTOR_FENCING_TOKEN_SEMAPHORE_DEFAULT_GPUS",
        ])
        .await;
    let tokens: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(tokens.len(), 3, "{printed}");
    // rwmutex comes before semaphore in the global order: its token is the first.
    assert_eq!(tokens[0], tokens[1], "{printed}");

    let run = env.spawn(&[
        "run", "--holder", "victim", "--hold", "mutex/x", "--hold", "mutex/y", "--", "sleep", "60",
    ]);
    until_granted(&env, LockKind::Mutex, "y", "victim").await;
    let permits: Api<Permit> = Api::namespaced(env.client.clone(), "default");
    permits
        .delete(
            &permit_name(LockKind::Mutex, "y", "victim"),
            &Default::default(),
        )
        .await
        .unwrap();
    let output = tokio::time::timeout(HANG, run.wait_with_output())
        .await
        .expect("run ends when a grant is lost")
        .unwrap();
    assert_exit(&output, 7);
    assert_said(&output, "lost mutex default/y");
    // Both claims are given back.
    let x = permits
        .get_opt(&permit_name(LockKind::Mutex, "x", "victim"))
        .await
        .unwrap();
    assert!(x.is_none(), "the first lock was released too");
}

#[tokio::test]
async fn interrupted_while_waiting_for_a_later_lock_every_claim_is_withdrawn() {
    let env = Env::start().await;
    env.ok(&["mutex", "lock", "p2", "--holder", "gatekeeper"])
        .await;
    let run = env.spawn(&[
        "run", "--holder", "waiter", "--hold", "mutex/p2", "--hold", "mutex/p1", "--", "true",
    ]);
    // It holds p1 and queues for p2.
    until_granted(&env, LockKind::Mutex, "p1", "waiter").await;
    let mutexes: Api<konductor_api::locks::Mutex> = Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(mutexes, "p2", |m| {
        m.and_then(|m| m.status.as_ref())
            .is_some_and(|s| s.claims.waiting.len() == 1)
    })
    .await;
    let pid = run.id().unwrap() as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let output = tokio::time::timeout(HANG, run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_exit(&output, 143);
    assert_said(&output, "claim withdrawn");
    let permits: Api<Permit> = Api::namespaced(env.client.clone(), "default");
    for lock in ["p1", "p2"] {
        let left = permits
            .get_opt(&permit_name(LockKind::Mutex, lock, "waiter"))
            .await
            .unwrap();
        assert!(left.is_none(), "the claim on {lock} was withdrawn");
    }
}

#[tokio::test]
async fn a_lock_named_twice_and_tokens_that_would_collide_are_usage_errors() {
    let env = Env::start().await;
    for holds in [
        &["mutex/a", "mutexes/a"][..],
        &["rwmutex/c=read", "rwmutex/c=write"],
        &["mutex/a-b", "mutex/a.b"],
    ] {
        let mut args = vec!["run"];
        for hold in holds {
            args.extend(["--hold", hold]);
        }
        args.extend(["--", "true"]);
        let output = env.run(&args).await;
        assert_exit(&output, 2);
    }
    let output = env
        .run(&[
            "run",
            "--hold",
            "mutex/a-b",
            "--hold",
            "mutex/a.b",
            "--",
            "true",
        ])
        .await;
    assert_said(&output, "KONDUCTOR_FENCING_TOKEN_MUTEX_DEFAULT_A_B");
    let output = env
        .run(&["run", "--hold", "mutex/a=read", "--", "true"])
        .await;
    assert_exit(&output, 2);
}

#[tokio::test]
async fn locks_are_made_on_first_use_unless_no_create_and_a_semaphore_needs_its_permits() {
    let env = Env::start().await;
    for (args, said) in [
        (
            &["mutex", "run", "m1", "--", "true"][..],
            "created mutex default/m1 (first use)",
        ),
        (
            &[
                "rwmutex", "run", "r1", "--read", "--ttl", "30s", "--", "true",
            ],
            "created rwmutex default/r1 (first use)",
        ),
        (
            &["semaphore", "run", "s1", "--permits", "2", "--", "true"],
            "created semaphore default/s1 (first use)",
        ),
        (
            &["mutex", "lock", "m2", "--holder", "h"],
            "created mutex default/m2 (first use)",
        ),
    ] {
        let output = env.run(args).await;
        assert_exit(&output, 0);
        assert_said(&output, said);
    }
    let rwmutexes: Api<konductor_api::locks::RWMutex> =
        Api::namespaced(env.client.clone(), "default");
    assert_eq!(rwmutexes.get("r1").await.unwrap().spec.ttl, "30s");
    // A second use creates nothing; a flag that differs is a warning, the spec kept.
    let again = env
        .run(&["semaphore", "run", "s1", "--permits", "5", "--", "true"])
        .await;
    assert_exit(&again, 0);
    assert!(!stderr(&again).contains("created"), "{}", stderr(&again));
    assert_said(&again, "exists with spec.permits 2");
    // A semaphore cannot be made without its size; --no-create refuses.
    let sizeless = env.run(&["semaphore", "run", "s2", "--", "true"]).await;
    assert_exit(&sizeless, 1);
    assert_said(&sizeless, "--permits");
    let refused = env
        .run(&["mutex", "run", "m3", "--no-create", "--", "true"])
        .await;
    assert_exit(&refused, 1);
    assert_said(&refused, "not found");
    let mutexes: Api<konductor_api::locks::Mutex> = Api::namespaced(env.client.clone(), "default");
    assert!(mutexes.get_opt("m3").await.unwrap().is_none());
}

#[tokio::test]
async fn if_busy_skip_and_fail_do_not_run_the_command() {
    let env = Env::start().await;
    env.ok(&["mutex", "lock", "busy", "--holder", "gatekeeper"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let touch = format!("touch {}", ran.display());
    let skipped = env
        .run(&[
            "mutex",
            "run",
            "busy",
            "--if-busy",
            "skip",
            "--",
            "sh",
            "-c",
            &touch,
        ])
        .await;
    assert_exit(&skipped, 10);
    assert_said(&skipped, "skipped: held by gatekeeper");
    let green = env
        .run(&[
            "mutex",
            "run",
            "busy",
            "--if-busy",
            "skip",
            "--skip-exit",
            "0",
            "--",
            "sh",
            "-c",
            &touch,
        ])
        .await;
    assert_exit(&green, 0);
    let failed = env
        .run(&[
            "mutex",
            "run",
            "busy",
            "--if-busy",
            "fail",
            "--",
            "sh",
            "-c",
            &touch,
        ])
        .await;
    assert_exit(&failed, 6);
    // Several locks: one busy skips the run, and the free one is given back.
    let several = env
        .run(&[
            "run",
            "--holder",
            "skipper",
            "--hold",
            "mutex/free",
            "--hold",
            "mutex/busy",
            "--if-busy",
            "skip",
            "--",
            "sh",
            "-c",
            &touch,
        ])
        .await;
    assert_exit(&several, 10);
    assert!(
        !ran.exists(),
        "a skipped or failed run never runs its command"
    );
    let permits: Api<Permit> = Api::namespaced(env.client.clone(), "default");
    let left = permits
        .get_opt(&permit_name(LockKind::Mutex, "free", "skipper"))
        .await
        .unwrap();
    assert!(left.is_none(), "the free lock was given back");
    // Waiting is the default; a timeout with a policy that does not wait is a usage error.
    let confused = env
        .run(&[
            "mutex",
            "run",
            "busy",
            "--if-busy",
            "skip",
            "--timeout",
            "1s",
            "--",
            "true",
        ])
        .await;
    assert_exit(&confused, 2);
    let free = env
        .run(&[
            "mutex",
            "run",
            "free",
            "--if-busy",
            "skip",
            "--",
            "sh",
            "-c",
            &touch,
        ])
        .await;
    assert_exit(&free, 0);
    assert!(ran.exists());
    assert!(stdout(&free).is_empty());
}
