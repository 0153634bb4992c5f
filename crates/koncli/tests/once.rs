//! `koncli once` as real processes against a fresh `konductor server`: racing runs
//! execute once, a failure is followed by the next run, a killed executor is taken over
//! after the ttl (not before), a restart of the server keeps every recorded outcome,
//! and kubectl sees the Once as a user would.

mod common;

use common::{Env, assert_exit, assert_said, koncli_with, stderr};
use konductor_api::once::{AttemptOutcome, Once, OncePhase};
use konductor_testing::HANG;
use kube::Api;
use kube::runtime::wait::await_condition;

/// A shell command appending a line with the fencing token to `log`, after a pause
/// (the work).
fn work(log: &std::path::Path) -> String {
    format!(
        "sleep 0.2; echo ran $KONDUCTOR_FENCING_TOKEN >> {}",
        log.display()
    )
}

async fn status_of(env: &Env, name: &str) -> konductor_api::once::OnceStatus {
    let onces: Api<Once> = Api::namespaced(env.client.clone(), "default");
    onces.get(name).await.unwrap().status.unwrap()
}

#[tokio::test]
async fn twenty_racing_runs_execute_the_command_exactly_once() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("work.log");
    let script = work(&log);
    let runs: Vec<_> = (0..20)
        .map(|_| {
            env.spawn(&[
                "once", "run", "migrate", "--key", "v1", "--", "sh", "-c", &script,
            ])
        })
        .collect();
    for run in runs {
        let output = tokio::time::timeout(HANG, run.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(written, "ran 1\n", "exactly one run executed");
    let status = status_of(&env, "migrate").await;
    assert_eq!((status.phase, status.attempts), (OncePhase::Succeeded, 1));
    // `check` says so, with an exit code scripts can use; a new key is not done.
    assert_eq!(
        env.run(&["once", "check", "migrate", "--key", "v1"])
            .await
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        env.run(&["once", "check", "migrate", "--key", "v2"])
            .await
            .status
            .code(),
        Some(9)
    );
}

#[tokio::test]
async fn a_failed_executor_is_followed_by_the_next_and_success_stops_everyone() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (marker, log) = (dir.path().join("failed-once"), dir.path().join("work.log"));
    // Fails the first time it runs, succeeds the second.
    let script = format!(
        "if [ ! -e {m} ]; then touch {m}; exit 3; fi; echo ran $KONDUCTOR_FENCING_TOKEN >> {l}",
        m = marker.display(),
        l = log.display()
    );
    let runs: Vec<_> = (0..5)
        .map(|_| env.spawn(&["once", "run", "job", "--", "sh", "-c", &script]))
        .collect();
    let mut codes = Vec::new();
    for run in runs {
        let output = tokio::time::timeout(HANG, run.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        codes.push(output.status.code().unwrap());
    }
    codes.sort_unstable();
    assert_eq!(
        codes,
        [0, 0, 0, 0, 3],
        "the failed executor exits with its command's code"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran 2\n");
    let status = status_of(&env, "job").await;
    let outcomes: Vec<_> = status.history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [AttemptOutcome::Failed, AttemptOutcome::Succeeded]
    );
    assert_eq!(status.history[0].exit_code, Some(3));
}

#[tokio::test]
async fn every_attempt_failing_ends_in_a_distinct_exit_code_and_reset_allows_a_new_try() {
    let env = Env::start().await;
    for _ in 0..2 {
        let output = env
            .run(&[
                "once",
                "run",
                "flaky",
                "--max-attempts",
                "2",
                "--",
                "sh",
                "-c",
                "exit 4",
            ])
            .await;
        assert_exit(&output, 4);
    }
    let output = env.run(&["once", "run", "flaky", "--", "true"]).await;
    assert_exit(&output, 8);
    assert_said(&output, "failed for good");
    assert_eq!(
        env.run(&["once", "wait", "flaky"]).await.status.code(),
        Some(8)
    );
    env.ok(&["once", "reset", "flaky"]).await;
    let output = env.run(&["once", "run", "flaky", "--", "true"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(status_of(&env, "flaky").await.claims.fencing_token, 3);
}

#[tokio::test]
async fn reset_re_arms_exactly_the_key_named_and_a_succeeded_one_only_with_force() {
    let env = Env::start().await;
    let failed = env
        .run(&[
            "once",
            "run",
            "keys",
            "--key",
            "v1",
            "--max-attempts",
            "1",
            "--",
            "false",
        ])
        .await;
    assert_exit(&failed, 1);
    env.ok(&["once", "run", "keys", "--key", "v2", "--", "true"])
        .await;
    // The current key (v2) succeeded: resetting it needs --force, and nothing changed.
    let refused = env.run(&["once", "reset", "keys"]).await;
    assert_exit(&refused, 1);
    assert_said(&refused, "add --force");
    let rerun = env
        .run(&["once", "run", "keys", "--key", "v2", "--", "false"])
        .await;
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "v2 stays done: {}",
        stderr(&rerun)
    );
    // The failed key, named: re-armed, and runs again.
    env.ok(&["once", "reset", "keys", "--key", "v1"]).await;
    let retried = env
        .run(&["once", "run", "keys", "--key", "v1", "--", "true"])
        .await;
    assert_exit(&retried, 0);
    assert!(
        !stderr(&retried).contains("already done"),
        "v1 ran: {}",
        stderr(&retried)
    );
    // --force re-arms a succeeded key: it runs again.
    env.ok(&["once", "reset", "keys", "--key", "v2", "--force"])
        .await;
    let again = env
        .run(&[
            "once", "run", "keys", "--key", "v2", "--", "sh", "-c", "exit 6",
        ])
        .await;
    assert_eq!(
        again.status.code(),
        Some(6),
        "v2 ran again: {}",
        stderr(&again)
    );
}

#[tokio::test]
async fn a_killed_executor_is_taken_over_after_the_ttl_not_before() {
    let env = Env::start().await;
    let onces: Api<Once> = Api::namespaced(env.client.clone(), "default");
    let mut doomed = env.spawn(&[
        "once", "run", "seed", "--ttl", "3s", "--holder", "doomed", "--", "sleep", "600",
    ]);
    tokio::time::timeout(
        HANG,
        await_condition(onces.clone(), "seed", |o: Option<&Once>| {
            o.and_then(|o| o.status.as_ref())
                .is_some_and(|s| s.executor.as_deref() == Some("doomed"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    doomed.start_kill().unwrap(); // SIGKILL
    doomed.wait().await.unwrap();
    let next = tokio::time::timeout(
        HANG,
        env.run(&["once", "run", "seed", "--holder", "next", "--", "true"]),
    )
    .await
    .unwrap();
    assert!(next.status.success(), "{}", stderr(&next));
    let status = status_of(&env, "seed").await;
    let lost = &status.history[0];
    assert_eq!(
        (lost.holder.as_str(), lost.outcome),
        ("doomed", AttemptOutcome::Lost)
    );
    // Taken over no earlier than a ttl after the last renewal the executor sent (its
    // Permit keeps it; the controller counts from when it saw it, later still).
    let permits: Api<konductor_api::locks::Permit> = Api::namespaced(env.client.clone(), "default");
    let name =
        konductor_api::locks::permit_name(konductor_api::locks::LockKind::Once, "seed", "doomed");
    let last_renewal = permits.get(&name).await.unwrap().spec.renew_time.unwrap().0;
    let after = lost.finished_at.0.duration_since(last_renewal);
    assert!(
        after >= jiff::SignedDuration::from_secs(3),
        "taken over {after:?} after the last renewal"
    );
    let taken = &status.history[1];
    assert_eq!((taken.holder.as_str(), taken.fencing_token), ("next", 2));
}

#[tokio::test]
async fn recorded_outcomes_survive_a_server_restart() {
    let server = common::TestServer::start().await;
    let kubeconfig = server.kubeconfig().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("work.log");
    let script = work(&log);
    let run = |key: &str| {
        koncli_with(
            &kubeconfig,
            &["once", "run", "m", "--key", key, "--", "sh", "-c", &script],
        )
        .spawn()
        .unwrap()
    };
    let first = run("v1").wait_with_output().await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    // v2 runs while the server goes down and comes back; waiters ride it out.
    let during: Vec<_> = (0..5).map(|_| run("v2")).collect();
    let onces: Api<Once> = Api::namespaced(server.client.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(onces, "m", |o: Option<&Once>| {
            o.and_then(|o| o.status.as_ref()).is_some_and(|s| {
                s.key == "v2" && s.claims.waiting_count + i32::from(s.executor.is_some()) == 5
            })
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let server = server.restart(true).await;
    for mut waiter in during {
        if tokio::time::timeout(std::time::Duration::from_secs(20), waiter.wait())
            .await
            .is_err()
        {
            waiter.start_kill().unwrap();
        }
        let output = waiter.wait_with_output().await.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let again = run("v1").wait_with_output().await.unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        written.lines().filter(|l| l.starts_with("ran ")).count(),
        2,
        "v1 and v2 once each:\n{written}"
    );
    drop(server);
}

#[tokio::test]
async fn a_finished_key_returns_at_once_whatever_key_runs_and_leaves_no_claim() {
    let env = Env::start().await;
    env.ok(&["once", "run", "rolling", "--key", "v1", "--", "true"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("v2-started");
    // v2 runs, and keeps running while a replica of the old version asks for v1.
    let mut v2 = env.spawn(&[
        "once",
        "run",
        "rolling",
        "--key",
        "v2",
        "--",
        "sh",
        "-c",
        &format!("touch {}; sleep 600", started.display()),
    ]);
    tokio::time::timeout(HANG, async {
        while !started.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("v2 starts");
    let old = env
        .run(&["once", "run", "rolling", "--key", "v1", "--", "false"])
        .await;
    assert_exit(&old, 0);
    assert_said(&old, "once default/rolling (key \"v1\") already done");
    assert!(v2.try_wait().unwrap().is_none(), "v2 still runs");
    // The old replica's claim is gone: only v2's executor holds one.
    let permits: Api<konductor_api::locks::Permit> = Api::namespaced(env.client.clone(), "default");
    let left = permits
        .list(&kube::api::ListParams::default().labels("konductor.io/once=rolling"))
        .await
        .unwrap();
    assert_eq!(
        left.items
            .iter()
            .map(|p| p.spec.key.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["v2"]
    );
    v2.kill().await.unwrap();
}

#[tokio::test]
async fn a_hundred_successive_keys_are_each_run_once_and_none_waits() {
    let env = Env::start().await;
    for key in 1..=100 {
        let key = key.to_string();
        let output = env
            .run(&[
                "once",
                "run",
                "soak",
                "--key",
                &key,
                "--timeout",
                "60s",
                "--",
                "true",
            ])
            .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "key {key}: {}",
            stderr(&output)
        );
    }
    let status = status_of(&env, "soak").await;
    assert_eq!(
        (status.key.as_str(), status.phase),
        ("100", OncePhase::Succeeded)
    );
    assert_eq!(
        status.claims.fencing_token, 100,
        "each key ran exactly once"
    );
    let onces: Api<Once> = Api::namespaced(env.client.clone(), "default");
    assert_eq!(
        onces.get("soak").await.unwrap().spec.key,
        None,
        "first use sets no spec.key"
    );
}

#[tokio::test]
async fn kubectl_gets_describes_and_waits_for_a_once() {
    let env = Env::start().await;
    env.ok(&["once", "create", "warmup", "--key", "v7"]).await;
    let kubectl = |args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command.arg("--kubeconfig").arg(env.kubeconfig()).args(args);
        command
    };
    let waiting = kubectl(&[
        "wait",
        "--for=condition=Done",
        "once/warmup",
        "--timeout=60s",
    ])
    .output();
    let waiting = tokio::spawn(waiting);
    let output = env.run(&["once", "run", "warmup", "--", "true"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let waited = waiting.await.unwrap().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let table = kubectl(&["get", "onces"]).output().await.unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("KEY") && table.contains("EXECUTOR") && table.contains("ATTEMPTS"),
        "{table}"
    );
    assert!(
        table.contains("warmup") && table.contains("v7") && table.contains("Succeeded"),
        "{table}"
    );
    let described = kubectl(&["describe", "once", "warmup"])
        .output()
        .await
        .unwrap();
    let described = String::from_utf8_lossy(&described.stdout).to_string();
    assert!(
        described.contains("Completed Keys") && described.contains("Fencing Token"),
        "{described}"
    );
    let listed = env.ok(&["once", "list"]).await;
    assert!(
        listed.contains("warmup") && listed.contains("Succeeded"),
        "{listed}"
    );
    let yaml = env.ok(&["once", "status", "warmup", "-o", "yaml"]).await;
    assert!(yaml.contains("phase: Succeeded"), "{yaml}");
}
