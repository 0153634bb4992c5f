//! `koncli waitgroup` as real processes against a fresh `konductor server`: retried
//! dones count once, a waiter started before anything was added waits for the members,
//! one failure too many ends every wait at once with its message, a worker killed
//! without a word fails its member after the memberTTL, and kubectl sees the group as
//! a user would.

mod common;

use common::{Env, assert_exit, assert_said, stderr, stdout};
use konductor_api::waitgroup::{WaitGroup, WaitGroupMember, WaitGroupPhase, member_name};
use konductor_testing::HANG;
use kube::Api;
use kube::runtime::wait::await_condition;

async fn group(env: &Env, name: &str) -> WaitGroup {
    let groups: Api<WaitGroup> = Api::namespaced(env.client.clone(), "default");
    groups.get(name).await.unwrap()
}

/// Waits (bounded) until the group's status satisfies `condition`.
async fn until(env: &Env, name: &str, condition: impl Fn(&WaitGroup) -> bool) {
    let groups: Api<WaitGroup> = Api::namespaced(env.client.clone(), "default");
    konductor_testing::until(groups, name, |g| g.is_some_and(&condition)).await;
}

#[tokio::test]
async fn the_same_done_retried_ten_times_counts_once() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "fan"]).await;
    let added = env
        .ok(&["waitgroup", "add", "fan", "--member", "a", "--member", "b"])
        .await;
    assert!(added.contains("added 2 member(s)"), "{added}");
    let again = env
        .ok(&["waitgroup", "add", "fan", "--member", "a,b"])
        .await;
    assert!(
        again.contains("added 0 member(s); 2 already there"),
        "{again}"
    );
    for attempt in 0..10 {
        let line = env.ok(&["waitgroup", "done", "fan", "--member", "a"]).await;
        assert!(line.contains("member a done"), "attempt {attempt}: {line}");
    }
    // A different result for a member already done is refused: an outcome is final.
    let refused = env
        .run(&["waitgroup", "done", "fan", "--member", "a", "--failed"])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    assert_said(&refused, "already done as Succeeded");
    until(&env, "fan", |g| {
        g.status.as_ref().is_some_and(|s| s.done == 1)
    })
    .await;
    let status = group(&env, "fan").await.status.unwrap();
    assert_eq!(
        (status.added, status.done, status.failed, status.counter),
        (2, 1, 0, 1)
    );
    assert_eq!(
        status.phase,
        WaitGroupPhase::Waiting,
        "not sealed, b pending"
    );
    env.ok(&["waitgroup", "done", "fan", "--member", "b"]).await;
    env.ok(&["waitgroup", "seal", "fan"]).await;
    let waited = env.ok(&["waitgroup", "wait", "fan", "--quiet"]).await;
    assert!(
        waited.contains("all 2 members finished: 2 done, 0 failed"),
        "{waited}"
    );
    // Done latches: a member added afterwards is refused.
    let late = env.run(&["waitgroup", "add", "fan", "--member", "c"]).await;
    assert_eq!(late.status.code(), Some(1));
    assert_said(&late, "already Done");
    // A worker run again for its finished member runs nothing, even now.
    let rerun = env
        .run(&["waitgroup", "run", "fan", "--member", "a", "--", "false"])
        .await;
    assert_exit(&rerun, 0);
    assert_said(
        &rerun,
        "waitgroup default/fan member a already done; nothing to run",
    );
}

#[tokio::test]
async fn a_waiter_started_before_any_add_waits_for_the_members() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "late"]).await;
    let waiter = env.spawn(&["waitgroup", "wait", "late"]);
    let mut waiter = waiter;
    env.ok(&["waitgroup", "add", "late", "--member", "x,y,z"])
        .await;
    until(&env, "late", |g| {
        g.status.as_ref().is_some_and(|s| s.added == 3)
    })
    .await;
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "a group with members pending is not Done"
    );
    for member in ["x", "y", "z"] {
        env.ok(&["waitgroup", "done", "late", "--member", member])
            .await;
    }
    until(&env, "late", |g| {
        g.status.as_ref().is_some_and(|s| s.done == 3)
    })
    .await;
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "every member done, but not sealed: more may come"
    );
    env.ok(&["waitgroup", "seal", "late"]).await;
    let output = tokio::time::timeout(HANG, waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("is done"), "{}", stdout(&output));
    // Progress went to stderr as the members came.
    assert_said(&output, "3 of 3 members pending");
}

#[tokio::test]
async fn one_failure_more_than_max_failed_ends_every_wait_at_once_with_its_message() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "etl", "--max-failed", "2"])
        .await;
    env.ok(&["waitgroup", "add", "etl", "--member", "f1,f2,f3,ok1,slow"])
        .await;
    let waiters: Vec<_> = (0..3)
        .map(|_| env.spawn(&["waitgroup", "wait", "etl"]))
        .collect();
    let ok = env
        .run(&["waitgroup", "run", "etl", "--member", "ok1", "--", "true"])
        .await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    for member in ["f1", "f2", "f3"] {
        let failed = env
            .run(&[
                "waitgroup",
                "run",
                "etl",
                "--member",
                member,
                "--",
                "sh",
                "-c",
                "exit 3",
            ])
            .await;
        assert_eq!(
            failed.status.code(),
            Some(3),
            "run exits with the command's code"
        );
    }
    // `slow` never finishes: the group fails anyway, and every waiter says why.
    for waiter in waiters {
        let output = tokio::time::timeout(HANG, waiter.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_exit(&output, 4);
        let said = stderr(&output);
        assert!(
            said.contains("3 members failed, more than maxFailed 2")
                && said.contains("f3: sh exited with code 3"),
            "{said}"
        );
    }
    let status = group(&env, "etl").await.status.unwrap();
    assert_eq!(status.phase, WaitGroupPhase::Failed);
    assert_eq!(status.failures[0].exit_code, Some(3));
    assert_eq!(status.pending, ["slow"]);
}

#[tokio::test]
async fn a_worker_killed_without_a_word_fails_its_member_after_the_member_ttl() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "jobs", "--member-ttl", "2s"])
        .await;
    env.ok(&["waitgroup", "add", "jobs", "--member", "w1,w2"])
        .await;
    let waiter = env.spawn(&["waitgroup", "wait", "jobs"]);
    let mut worker = env.spawn(&[
        "waitgroup",
        "run",
        "jobs",
        "--member",
        "w1",
        "--holder",
        "pod-1",
        "--",
        "sleep",
        "600",
    ]);
    let members: Api<WaitGroupMember> = Api::namespaced(env.client.clone(), "default");
    let name = member_name("jobs", "w1");
    tokio::time::timeout(
        HANG,
        await_condition(members.clone(), &name, |m: Option<&WaitGroupMember>| {
            m.is_some_and(|m| m.spec.holder.as_deref() == Some("pod-1"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    worker.start_kill().unwrap(); // SIGKILL: no done is ever sent
    worker.wait().await.unwrap();
    let output = tokio::time::timeout(HANG, waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_exit(&output, 4);
    assert_said(&output, "w1: expired");
    let member = members.get(&name).await.unwrap();
    let expired = member.status.unwrap();
    assert!(expired.expired);
    // Expired on the controller's clock, no sooner than a ttl after the last renewal.
    let last_renewal = member.spec.renew_time.unwrap().0;
    let after = expired.expired_at.unwrap().0.duration_since(last_renewal);
    assert!(
        after >= jiff::SignedDuration::from_secs(2),
        "expired {after:?} after the last renewal"
    );
    let status = group(&env, "jobs").await.status.unwrap();
    assert!(status.failures[0].expired);
}

#[tokio::test]
async fn kubectl_gets_describes_and_waits_for_a_waitgroup() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "shards", "--expected", "2"])
        .await;
    let kubectl = |args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command.arg("--kubeconfig").arg(env.kubeconfig()).args(args);
        command
    };
    let waiting = tokio::spawn(
        kubectl(&[
            "wait",
            "--for=condition=Done",
            "waitgroup/shards",
            "--timeout=60s",
        ])
        .output(),
    );
    env.ok(&["waitgroup", "done", "shards", "--member", "s1"])
        .await;
    env.ok(&["waitgroup", "done", "shards", "--member", "s2"])
        .await;
    let waited = waiting.await.unwrap().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let table = kubectl(&["get", "wg"]).output().await.unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    for needle in ["ADDED", "DONE", "FAILED", "PHASE", "shards", "Done"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    let members = kubectl(&[
        "get",
        "waitgroupmembers",
        "-l",
        "konductor.io/waitgroup=shards",
    ])
    .output()
    .await
    .unwrap();
    let members = String::from_utf8_lossy(&members.stdout).to_string();
    assert!(
        members.contains("s1") && members.contains("Succeeded"),
        "{members}"
    );
    let described = kubectl(&["describe", "waitgroup", "shards"])
        .output()
        .await
        .unwrap();
    let described = String::from_utf8_lossy(&described.stdout).to_string();
    assert!(
        described.contains("Max Failed") && described.contains("Counter"),
        "{described}"
    );
    let listed = env.ok(&["waitgroup", "list"]).await;
    assert!(
        listed.contains("shards") && listed.contains("Done"),
        "{listed}"
    );
    let yaml = env.ok(&["wg", "status", "shards", "-o", "yaml"]).await;
    assert!(yaml.contains("phase: Done"), "{yaml}");
    // --delta: generated IDs, with a warning that a retry adds more.
    env.ok(&["waitgroup", "create", "legacy"]).await;
    let output = env
        .run(&["waitgroup", "add", "legacy", "--delta", "3"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_said(&output, "retrying this command adds 3 more");
    until(&env, "legacy", |g| {
        g.status.as_ref().is_some_and(|s| s.added == 3)
    })
    .await;
}

#[tokio::test]
async fn a_sealed_group_refuses_a_member_it_does_not_have_naming_the_pending_ones() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "add", "sealed", "--member", "file-01,file-02"])
        .await;
    env.ok(&["waitgroup", "seal", "sealed"]).await;
    until(&env, "sealed", |g| {
        g.status.as_ref().is_some_and(|s| s.pending.len() == 2)
    })
    .await;
    let typo = env
        .run(&[
            "waitgroup",
            "run",
            "sealed",
            "--member",
            "file-1",
            "--",
            "true",
        ])
        .await;
    assert_exit(&typo, 1);
    // (Both are named; in the order they were created, which `add` does not fix.)
    let said = stderr(&typo);
    assert!(
        said.contains("is sealed and has no member \"file-1\"")
            && said.contains("its pending members: ")
            && said.contains("file-01")
            && said.contains("file-02"),
        "{said}"
    );
    assert_eq!(group(&env, "sealed").await.status.unwrap().added, 2);
}

#[tokio::test]
async fn a_retried_member_runs_again_until_member_attempts_then_exits_8() {
    let env = Env::start().await;
    env.ok(&[
        "waitgroup",
        "create",
        "retried",
        "--expected",
        "1",
        "--member-attempts",
        "2",
    ])
    .await;
    let first = env
        .run(&[
            "waitgroup",
            "run",
            "retried",
            "--member",
            "a",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .await;
    assert_exit(&first, 3);
    until(&env, "retried", |g| {
        g.status.as_ref().is_some_and(|s| s.pending == ["a"])
    })
    .await;
    assert_eq!(group(&env, "retried").await.status.unwrap().failed, 0);
    let second = env
        .run(&[
            "waitgroup",
            "run",
            "retried",
            "--member",
            "a",
            "--",
            "sh",
            "-c",
            "exit 4",
        ])
        .await;
    assert_exit(&second, 4);
    until(&env, "retried", |g| g.phase() == WaitGroupPhase::Failed).await;
    let third = env
        .run(&["waitgroup", "run", "retried", "--member", "a", "--", "true"])
        .await;
    assert_exit(&third, 8);
    assert_said(
        &third,
        "failed for good after 2 failed attempt(s): sh exited with code 4",
    );
}

#[tokio::test]
async fn the_fanout_example_plays_to_completion() {
    let env = Env::start().await;
    let out = env.play_example("waitgroup-fanout.sh").await;
    assert!(
        out.contains("a third failure ended the wait at once"),
        "{out}"
    );
}

#[tokio::test]
async fn a_group_past_its_timeout_ends_the_wait_with_exit_3_and_a_client_timeout_with_5() {
    let env = Env::start().await;
    env.ok(&["waitgroup", "create", "slow", "--group-timeout", "3s"])
        .await;
    env.ok(&["waitgroup", "add", "slow", "--member", "never"])
        .await;
    // The client gives up first: exit 5, saying where the group stood.
    let impatient = env
        .run(&["waitgroup", "wait", "slow", "--timeout", "100ms"])
        .await;
    assert_exit(&impatient, 5);
    assert_said(&impatient, "still Waiting");
    let output = env.run(&["waitgroup", "wait", "slow"]).await;
    assert_exit(&output, 3);
    assert!(
        stderr(&output)
            .contains("timed out: the deadline passed with 1 of 1 members pending (never)"),
        "{}",
        stderr(&output)
    );
}
