//! `koncli semaphore|mutex|rwmutex` as real processes against a fresh `konductor
//! server`: mutual exclusion with `run`, a semaphore's limit, busy and release, and
//! what `run` does with its command's exit code and a lost grant.

mod common;

use std::path::Path;

use common::{Env, assert_exit, assert_said, max_overlap, stderr, stdout};

/// The critical sections a `run` log file records, as (token, start line, end line).
fn sections(log: &str) -> Vec<(i64, usize, usize)> {
    let lines: Vec<&str> = log.lines().collect();
    let mut sections = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(token) = line.strip_prefix("start ") {
            let end = lines
                .iter()
                .position(|l| *l == format!("end {token}"))
                .unwrap_or_else(|| panic!("no end for {token} in:\n{log}"));
            sections.push((token.parse().unwrap(), i, end));
        }
    }
    sections
}

/// A shell command appending start/end lines with the fencing token to `log`, with a
/// pause of `pause` (as `sleep` takes it) in between: the work the lock protects.
fn section(log: &Path, pause: &str) -> String {
    let log = log.display();
    format!(
        "echo start $KONDUCTOR_FENCING_TOKEN >> {log}; sleep {pause}; echo end $KONDUCTOR_FENCING_TOKEN >> {log}"
    )
}

/// Two hundred `mutex run`s queued behind a held lock (each a process of its own, with
/// its own watch of its claim), then drained: each runs once, no two overlap, and the
/// tokens rise in the order they ran.
#[tokio::test]
async fn two_hundred_queued_runs_of_a_mutex_drain_one_at_a_time_with_rising_tokens() {
    const RUNS: usize = 200;
    let env = Env::start().await;
    env.ok(&["mutex", "create", "m"]).await;
    env.ok(&["mutex", "lock", "m", "--holder", "gatekeeper"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("critical.log");
    let script = section(&log, "0.01");
    let runs: Vec<_> = (0..RUNS)
        .map(|i| {
            let holder = format!("worker-{i}");
            env.spawn(&[
                "mutex", "run", "m", "--holder", &holder, "--", "sh", "-c", &script,
            ])
        })
        .collect();
    // Every run queued before the lock is let go.
    let mutexes: kube::Api<konductor_api::locks::Mutex> =
        kube::Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(mutexes, "m", |m| {
        m.and_then(|m| m.status.as_ref())
            .is_some_and(|s| s.claims.waiting.len() == RUNS)
    })
    .await;
    env.ok(&["mutex", "unlock", "m", "--holder", "gatekeeper"])
        .await;
    for run in runs {
        let output = tokio::time::timeout(common::HANG, run.wait_with_output())
            .await
            .expect("every queued run finishes")
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let written = std::fs::read_to_string(&log).unwrap();
    let sections = sections(&written);
    assert_eq!(sections.len(), RUNS, "every run ran once:\n{written}");
    assert_eq!(
        max_overlap(&written),
        1,
        "two critical sections overlapped:\n{written}"
    );
    for pair in sections.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "tokens rise in file order:\n{written}"
        );
    }
}

#[tokio::test]
async fn a_semaphore_of_three_runs_exactly_three_at_once() {
    let env = Env::start().await;
    env.ok(&["semaphore", "create", "pool", "--permits", "3"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pool.log");
    // Long enough that the three granted together are still running when the rest queue.
    let script = section(&log, "0.5");
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let holder = format!("job-{i}");
            env.spawn(&[
                "semaphore",
                "run",
                "pool",
                "--holder",
                &holder,
                "--",
                "sh",
                "-c",
                &script,
            ])
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().await.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(sections(&written).len(), 20);
    assert_eq!(max_overlap(&written), 3, "{written}");
}

#[tokio::test]
async fn lock_busy_unlock_and_status_work_from_a_script() {
    let env = Env::start().await;
    env.ok(&["mutex", "create", "deploy", "--ttl", "10m"]).await;
    let token = env.ok(&["mutex", "lock", "deploy", "--holder", "a"]).await;
    assert_eq!(token.trim(), "1");
    let busy = env.run(&["mutex", "lock", "deploy", "--holder", "b"]).await;
    assert_exit(&busy, 6);
    assert_said(&busy, "busy");
    let status = env.ok(&["mutex", "status", "deploy"]).await;
    assert!(status.contains("Phase:         Locked"), "{status}");
    assert!(status.contains("Holders:       a"), "{status}");
    env.ok(&["mutex", "unlock", "deploy", "--holder", "a"])
        .await;
    let next = env
        .ok(&[
            "mutex",
            "acquire",
            "deploy",
            "--holder",
            "b",
            "--wait",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(next.trim(), "2");
    let listed = env.ok(&["mutex", "list"]).await;
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("deploy") && l.contains("Locked") && l.contains(" b ")),
        "{listed}"
    );
    let everywhere = env.ok(&["mutex", "list", "-A"]).await;
    assert!(everywhere.starts_with("NAMESPACE   NAME"), "{everywhere}");
    assert!(
        everywhere
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("default ")),
        "{everywhere}"
    );
    let none = env.run(&["semaphore", "list"]).await;
    assert_eq!(none.status.code(), Some(0));
    assert_said(&none, "No semaphores found in default namespace.");
    let json = env.ok(&["mutex", "status", "deploy", "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["status"]["holder"], "b");
}

#[tokio::test]
async fn run_exits_with_the_command_code_and_7_when_the_grant_is_lost() {
    let env = Env::start().await;
    env.ok(&["rwmutex", "create", "cache"]).await;
    let failing = env
        .run(&[
            "rwmutex", "run", "cache", "--read", "--", "sh", "-c", "exit 3",
        ])
        .await;
    assert_eq!(failing.status.code(), Some(3));
    // The Permit is gone when run exits; the controller records that on the lock next.
    let rwmutexes: kube::Api<konductor_api::locks::RWMutex> =
        kube::Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(rwmutexes, "cache", |lock| {
        lock.and_then(|l| l.status.as_ref())
            .is_some_and(|s| s.read_holders.is_empty() && s.write_holder.is_none())
    })
    .await;
    let released = env.ok(&["rwmutex", "status", "cache"]).await;
    assert!(
        released.contains("Phase:         Unlocked"),
        "released after the command: {released}"
    );

    // The grant is taken away (its permit deleted) while the command runs: the command
    // is stopped and koncli says so with exit 7.
    let run = env.spawn(&[
        "rwmutex", "run", "cache", "--holder", "victim", "--", "sleep", "60",
    ]);
    let permits: kube::Api<konductor_api::locks::Permit> =
        kube::Api::namespaced(env.client.clone(), "default");
    let name = konductor_api::locks::permit_name(
        konductor_api::locks::LockKind::RWMutex,
        "cache",
        "victim",
    );
    let granted = move |p: Option<&konductor_api::locks::Permit>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.phase == konductor_api::locks::PermitPhase::Granted)
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        kube::runtime::wait::await_condition(permits.clone(), &name, granted),
    )
    .await
    .unwrap()
    .unwrap();
    permits.delete(&name, &Default::default()).await.unwrap();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run.wait_with_output())
        .await
        .expect("run ends when the grant is lost")
        .unwrap();
    assert_exit(&output, 7);
    assert_said(&output, "lost");
    assert!(stdout(&output).is_empty());

    // A mutex has no read side: its help does not offer one and asking is a usage error.
    let wrong = env.run(&["mutex", "rlock", "cache"]).await;
    assert_eq!(wrong.status.code(), Some(2));
    assert_said(&wrong, "rlock");
    let help = env.ok(&["mutex", "--help"]).await;
    assert!(
        !help.contains("rlock") && !help.contains("--read"),
        "{help}"
    );
}

#[tokio::test]
async fn the_lock_examples_play_to_completion() {
    let env = Env::start().await;
    for (script, says) in [
        ("db-migration-mutex.sh", "ran one at a time"),
        ("semaphore-jobs.sh", "(limit 3)"),
        ("rwmutex-cache.sh", "the writer held it alone"),
        ("multi-lock.sh", "never deadlocked or overlapped"),
        ("ratelimit.sh", "three per window, in order"),
    ] {
        let out = env.play_example(script).await;
        assert!(out.contains(says), "{script}: {out}");
    }
}

#[tokio::test]
async fn a_killed_holder_is_succeeded_a_ttl_after_its_last_renewal_and_not_before() {
    use konductor_api::locks::{LockKind, Permit, PermitPhase, permit_name};
    let env = Env::start().await;
    env.ok(&["mutex", "create", "short", "--ttl", "2s"]).await;
    let permits: kube::Api<Permit> = kube::Api::namespaced(env.client.clone(), "default");
    let in_phase = |phase: PermitPhase| {
        move |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.phase == phase)
        }
    };
    let until = |name: String, phase: PermitPhase| {
        let permits = permits.clone();
        async move {
            // A hang guard, generous for a loaded machine (it measures nothing).
            tokio::time::timeout(
                std::time::Duration::from_secs(120),
                kube::runtime::wait::await_condition(permits, &name, in_phase(phase)),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} never became {phase:?}"))
            .unwrap()
            .unwrap()
        }
    };
    let first = permit_name(LockKind::Mutex, "short", "doomed");
    let mut doomed = env.spawn(&[
        "mutex", "run", "short", "--holder", "doomed", "--", "sleep", "30",
    ]);
    until(first.clone(), PermitPhase::Granted).await;
    let second = permit_name(LockKind::Mutex, "short", "next");
    let next = env.spawn(&["mutex", "run", "short", "--holder", "next", "--", "true"]);
    until(second.clone(), PermitPhase::Pending).await;
    // Watched from now on: once granted, `next` runs `true` and releases at once, and a
    // watch started after that would find no grant at all. A grant is made in the
    // lock's status; the permit's own status may never show it, so brief is the hold.
    let mutexes: kube::Api<konductor_api::locks::Mutex> =
        kube::Api::namespaced(env.client.clone(), "default");
    let successor = tokio::spawn(async move {
        let granted_to_next = |m: Option<&konductor_api::locks::Mutex>| {
            m.and_then(|m| m.status.as_ref())
                .and_then(|s| s.claims.grants.as_ref())
                .is_some_and(|grants| grants.iter().any(|g| g.holder == "next"))
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(120),
            kube::runtime::wait::await_condition(mutexes, "short", granted_to_next),
        )
        .await
        .expect("next is granted the mutex")
        .unwrap()
        .unwrap()
    });
    let _ = second;
    doomed.start_kill().unwrap(); // SIGKILL: no release, no more renewals
    doomed.wait().await.unwrap();

    let expired = until(first, PermitPhase::Expired).await;
    let last_renewal = expired.spec.renew_time.unwrap().0;
    let locked = successor.await.unwrap();
    let granted_at = locked.status.unwrap().claims.grants.unwrap()[0]
        .granted_at
        .0;
    assert!(
        granted_at.duration_since(last_renewal) >= k8s_openapi::jiff::SignedDuration::from_secs(2),
        "granted at {granted_at}, {} after the killed holder's last renewal at {last_renewal}",
        granted_at.duration_since(last_renewal)
    );
    let output = next.wait_with_output().await.unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}
