//! `koncli ratelimit` as real processes against a fresh `konductor server`: nine runs
//! against a limit of 3 per 2-second window all run, with rising tokens, and no window
//! holds more than 3 of the grant times the controller recorded; `take` counts a slot
//! and gives it back, busy without `--wait`; made on first use with `--limit/--window`;
//! `--if-busy skip`; status and `kubectl get` columns.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{Env, assert_exit, assert_said, stderr, stdout};
use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use konductor_api::ratelimit::RateLimit;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// Every grant any version of the RateLimit's status listed: token → when.
type Recorded = Arc<Mutex<BTreeMap<i64, Timestamp>>>;

fn record_grants(
    api: Api<RateLimit>,
    name: &str,
    recorded: Recorded,
) -> tokio::task::JoinHandle<()> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut events = watcher(api, config).applied_objects().boxed();
        while let Some(Ok(limit)) = events.next().await {
            let grants = limit
                .status
                .and_then(|s| s.claims.grants)
                .unwrap_or_default();
            let mut recorded = recorded.lock().unwrap();
            for grant in grants {
                recorded.insert(grant.token, grant.granted_at.0);
            }
        }
    })
}

#[tokio::test]
async fn nine_runs_against_three_per_two_seconds_all_run_and_no_window_holds_more_than_three() {
    let env = Env::start().await;
    let api: Api<RateLimit> = Api::namespaced(env.client.clone(), "default");
    let recorded: Recorded = Arc::default();
    let recorder = record_grants(api.clone(), "deploys", recorded.clone());
    // Made on first use by whichever run comes first.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ran.log");
    let script = format!("echo $KONDUCTOR_FENCING_TOKEN >> {}", log.display());
    let runs: Vec<_> = (0..9)
        .map(|_| {
            env.spawn(&[
                "ratelimit",
                "run",
                "deploys",
                "--limit",
                "3",
                "--window",
                "2s",
                "--",
                "sh",
                "-c",
                &script,
            ])
        })
        .collect();
    for run in runs {
        let output = tokio::time::timeout(common::HANG, run.wait_with_output())
            .await
            .expect("every run runs")
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let written = std::fs::read_to_string(&log).unwrap();
    let mut tokens: Vec<i64> = written.lines().map(|l| l.parse().unwrap()).collect();
    tokens.sort();
    assert_eq!(
        tokens,
        (1..=9).collect::<Vec<_>>(),
        "all nine ran once each"
    );
    recorder.abort();
    let recorded = recorded.lock().unwrap().clone();
    assert_eq!(
        recorded.len(),
        9,
        "every grant was in a status: {recorded:?}"
    );
    let times: Vec<Timestamp> = recorded.values().copied().collect();
    assert!(
        times.windows(2).all(|p| p[0] <= p[1]),
        "tokens rise with time: {recorded:?}"
    );
    let window = SignedDuration::from_secs(2);
    let most = konductor_testing::most_in_any_window(&times, |t| t.checked_add(window).unwrap());
    assert!(most <= 3, "{most} grants within 2s: {recorded:?}");
}

#[tokio::test]
async fn take_counts_a_slot_skip_and_busy_do_not_run_and_status_says_where_it_stands() {
    let env = Env::start().await;
    // Without a size, a missing RateLimit cannot be made.
    let sizeless = env.run(&["ratelimit", "take", "calls"]).await;
    assert_exit(&sizeless, 1);
    assert_said(&sizeless, "--limit N --window D");
    let first = env
        .run(&[
            "ratelimit",
            "take",
            "calls",
            "--limit",
            "2",
            "--window",
            "1h",
        ])
        .await;
    assert_exit(&first, 0);
    assert_said(&first, "created ratelimit default/calls (first use)");
    assert_eq!(stdout(&first).trim(), "1", "the slot's fencing token");
    assert_eq!(env.ok(&["ratelimit", "take", "calls"]).await.trim(), "2");
    // The window is full: busy without --wait, a skip for run --if-busy skip.
    let busy = env.run(&["ratelimit", "take", "calls"]).await;
    assert_exit(&busy, 6);
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let skipped = env
        .run(&[
            "ratelimit",
            "run",
            "calls",
            "--if-busy",
            "skip",
            "--",
            "touch",
            ran.to_str().unwrap(),
        ])
        .await;
    assert_exit(&skipped, 10);
    assert!(!ran.exists());
    let timed_out = env
        .run(&["ratelimit", "take", "calls", "--wait", "--timeout", "1s"])
        .await;
    assert_exit(&timed_out, 5);
    // A size that differs from the stored one is a warning; the stored one is kept.
    let differs = env
        .run(&[
            "ratelimit",
            "take",
            "calls",
            "--limit",
            "5",
            "--window",
            "1h",
        ])
        .await;
    assert_said(&differs, "exists with spec.limit 2");

    let status = env.ok(&["ratelimit", "status", "calls"]).await;
    assert!(
        status.contains("Phase:         Limited") && status.contains("2 of 2 used in the last 1h"),
        "{status}"
    );
    let table = stdout(
        &tokio::process::Command::new("kubectl")
            .args(["get", "ratelimits", "--kubeconfig"])
            .arg(env.kubeconfig())
            .output()
            .await
            .unwrap(),
    );
    for needle in ["USED", "LIMIT", "WINDOW", "NEXT SLOT", "calls", "1h"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    let created = env
        .run(&["ratelimit", "create", "other", "--limit", "1"])
        .await;
    assert_exit(&created, 2);
    env.ok(&[
        "ratelimit",
        "create",
        "other",
        "--limit",
        "1",
        "--window",
        "1m",
    ])
    .await;
    let listed = env.ok(&["ratelimit", "list"]).await;
    assert!(
        listed.contains("calls") && listed.contains("other"),
        "{listed}"
    );
    env.ok(&["ratelimit", "delete", "other"]).await;
}
