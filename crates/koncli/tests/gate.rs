//! `koncli gate` and `koncli wait` as real processes against a fresh `konductor server`
//! (Jobs, Deployments and CRDs stored by it; their status set by the test as their
//! controllers would): each test type, presets, a Job completed then deleted keeps its
//! condition met, a Deployment behind its generation never counts, a CRD applied at run
//! time, `--any`, fail-fast, overrides, timeouts, and the watches the controller stops.

mod common;

use std::process::Output;

use common::{Env, assert_said, stderr, stdout};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use konductor_api::gate::{Gate, GatePhase};
use konductor_controller::gate::watches::GateKinds;
use konductor_controller::kinds::Settings;
use konductor_testing::{HANG, TestServer};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

/// A kind defined at run time by a CRD: status fields free-form.
const MIGRATION_CRD: &str = include_str!("../../konductor/tests/fixtures/migration-crd.yaml");

async fn create_job(env: &Env, name: &str) {
    create_job_in(&env.api(), name).await;
}

/// Creates the Job `name` through `jobs` (any namespace).
async fn create_job_in(jobs: &Api<Job>, name: &str) {
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
}

/// Sets a Job's status condition, as the Job controller would.
async fn finish_job(env: &Env, name: &str, condition: &str) {
    finish_job_in(&env.api(), name, condition).await;
}

/// [`finish_job`] through `jobs` (any namespace).
async fn finish_job_in(jobs: &Api<Job>, name: &str, condition: &str) {
    let status = json!({"status": {"conditions": [{"type": condition, "status": "True"}]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Waits (bounded) until the Gate's status satisfies `condition`.
async fn until(env: &Env, name: &str, condition: impl Fn(&Gate) -> bool) -> Gate {
    konductor_testing::until(env.api(), name, |g| g.is_some_and(&condition))
        .await
        .expect("it is there")
}

fn message(gate: &Gate) -> String {
    gate.status.clone().unwrap_or_default().summary()
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Waits for a spawned koncli and returns its output.
async fn finished(child: tokio::process::Child) -> Output {
    tokio::time::timeout(HANG, child.wait_with_output())
        .await
        .expect("koncli finishes")
        .unwrap()
}

fn spawn(env: &Env, args: &[&str]) -> tokio::process::Child {
    env.koncli(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_gate_on_jobs_and_a_barrier_opens_when_all_hold_even_after_a_job_was_deleted() {
    let env = Env::start().await;
    create_job(&env, "extract").await;
    env.ok(&[
        "gate",
        "create",
        "load",
        "--for",
        "job/extract",
        "--for",
        "job/transform",
        "--for",
        "barrier/etl-done",
    ])
    .await;
    let waiter = spawn(&env, &["gate", "wait", "load"]);
    let gate = until(&env, "load", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.results.len() == 3
                && s.results[1]
                    .message
                    .contains("waiting for job/transform to be created")
        })
    })
    .await;
    assert_eq!(gate.phase(), GatePhase::Waiting);

    // extract completes, then its TTL deletes it: its condition stays met.
    finish_job(&env, "extract", "Complete").await;
    until(&env, "load", |g| {
        g.status.as_ref().is_some_and(|s| s.met == 1)
    })
    .await;
    env.api::<Job>()
        .delete("extract", &DeleteParams::default())
        .await
        .unwrap();
    let gate = until(&env, "load", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.results[0].message.contains("deleted since"))
    })
    .await;
    assert_eq!(gate.status.as_ref().unwrap().met, 1);

    create_job(&env, "transform").await;
    finish_job(&env, "transform", "Complete").await;
    env.ok(&["barrier", "create", "etl-done", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "etl-done", "--holder", "w"])
        .await;
    let waited = finished(waiter).await;
    assert_eq!(code(&waited), Some(0), "{}", stderr(&waited));
    assert!(
        stdout(&waited).contains("Open: 3 of 3"),
        "{}",
        stdout(&waited)
    );

    // Open latches: the other Job going away changes nothing.
    env.api::<Job>()
        .delete("transform", &DeleteParams::default())
        .await
        .unwrap();
    let status = env.ok(&["gate", "status", "load"]).await;
    assert!(status.contains("Open · 3 of 3 met"), "{status}");
    assert!(
        status.contains("job/transform") && status.contains("condition Complete=True"),
        "{status}"
    );
}

#[tokio::test]
async fn a_failed_job_fails_the_gate_and_every_wait_at_once() {
    let env = Env::start().await;
    create_job(&env, "migrate").await;
    create_job(&env, "seed").await;
    env.ok(&[
        "gate",
        "create",
        "deploy",
        "--for",
        "job/migrate",
        "--for",
        "job/seed",
    ])
    .await;
    let gate_waiter = spawn(&env, &["gate", "wait", "deploy"]);
    let plain_waiter = spawn(&env, &["wait", "--for", "job/migrate", "--for", "job/seed"]);
    until(&env, "deploy", |g| g.status.is_some()).await;
    finish_job(&env, "migrate", "Failed").await;
    for waiter in [gate_waiter, plain_waiter] {
        let waited = finished(waiter).await;
        assert_eq!(code(&waited), Some(4), "{}", stderr(&waited));
        assert_said(&waited, "job/migrate failed: Failed=True");
    }
    let gate = until(&env, "deploy", |g| g.phase() == GatePhase::Failed).await;
    assert!(gate.status.unwrap().results[1].met.eq(&false));
}

#[tokio::test]
async fn a_deployment_whose_status_is_behind_its_generation_does_not_count() {
    let env = Env::start().await;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}
    }))
    .unwrap();
    let deployments = env.api::<Deployment>();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    // A new image: generation 2; the status still describes generation 1.
    let bump = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    let bumped = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&bump))
        .await
        .unwrap();
    assert_eq!(bumped.metadata.generation, Some(2));
    let status = |observed: i64| {
        json!({"status": {"observedGeneration": observed,
            "conditions": [{"type": "Available", "status": "True"}]}})
    };
    deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status(1)))
        .await
        .unwrap();
    env.ok(&["gate", "create", "rollout", "--for", "deployment/web"])
        .await;
    let gate = until(&env, "rollout", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.results
                .first()
                .is_some_and(|r| r.message.contains("behind its spec"))
        })
    })
    .await;
    assert_eq!(gate.phase(), GatePhase::Waiting);
    let stale = env
        .run(&["wait", "--for", "deploy/web", "--timeout", "1s"])
        .await;
    assert_eq!(code(&stale), Some(5), "{}", stderr(&stale));
    assert_said(&stale, "behind its spec");

    deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status(2)))
        .await
        .unwrap();
    until(&env, "rollout", |g| g.phase() == GatePhase::Open).await;
    env.ok(&["wait", "--for", "deployments.apps/web"]).await;
    env.ok(&["wait", "--for", "deployments.v1.apps/web"]).await;
}

/// Applies the Migration CRD and returns the resource of its kind.
async fn apply_migration_crd(env: &TestServer) -> ApiResource {
    let crd: CustomResourceDefinition = serde_yaml::from_str(MIGRATION_CRD).unwrap();
    Api::<CustomResourceDefinition>::all(env.client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    ApiResource {
        group: "ops.example.com".into(),
        version: "v1".into(),
        api_version: "ops.example.com/v1".into(),
        kind: "Migration".into(),
        plural: "migrations".into(),
    }
}

fn gate_on_migration(name: &str) -> Gate {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Gate",
        "metadata": {"name": name},
        "spec": {"conditions": [
            {"ref": {"apiVersion": "ops.example.com/v1", "kind": "Migration", "name": "schema"},
             "jsonPath": "{.status.phase}", "value": "Done"},
            {"ref": {"apiVersion": "ops.example.com/v1", "kind": "Migration", "name": "schema"},
             "condition": {"type": "Verified"}},
            {"ref": {"apiVersion": "ops.example.com/v1", "kind": "Migration", "name": "schema"},
             "jsonPath": ".status.checksum"}
        ]}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_gate_on_a_kind_whose_crd_is_applied_later_opens_on_its_json_path_and_condition_tests() {
    let env = Env(TestServer::start_with_settings(Settings {
        gate_kinds: GateKinds::with(&["migrations.ops.example.com".to_owned()], &[]).unwrap(),
    })
    .await);
    env.api::<Gate>()
        .create(&PostParams::default(), &gate_on_migration("schema-ready"))
        .await
        .unwrap();
    let gate = until(&env, "schema-ready", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.results.iter().all(|r| r.message.contains("not served")))
    })
    .await;
    assert_eq!(gate.phase(), GatePhase::Waiting, "{}", message(&gate));

    let resource = apply_migration_crd(&env).await;
    let migrations: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &resource);
    let mut migration = DynamicObject::new("schema", &resource);
    migration.data = json!({"spec": {"to": 42}});
    migrations
        .create(&PostParams::default(), &migration)
        .await
        .unwrap();
    let set_status = |status: Value| {
        let migrations = migrations.clone();
        async move {
            migrations
                .patch_status(
                    "schema",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "status": status })),
                )
                .await
                .unwrap();
        }
    };
    // Discovery is asked again a few seconds after a kind was not found.
    until(&env, "schema-ready", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.results[0].message.contains("selects nothing"))
    })
    .await;
    set_status(json!({"phase": "Done"})).await;
    let gate = until(&env, "schema-ready", |g| {
        g.status.as_ref().is_some_and(|s| s.met == 1)
    })
    .await;
    assert!(gate.status.unwrap().results[0].met);
    set_status(json!({"conditions": [{"type": "Verified", "status": "True"}], "checksum": "abc"}))
        .await;
    until(&env, "schema-ready", |g| g.phase() == GatePhase::Open).await;

    // The same tests with no Gate object.
    let waited = env
        .ok(&[
            "wait",
            "--for",
            "migrations.ops.example.com/schema=jsonpath={.status.phase}=Done",
            "--for",
            "migration/schema=condition=Verified",
        ])
        .await;
    assert!(waited.contains("Open: 2 of 2"), "{waited}");
    env.ok(&[
        "wait",
        "--for",
        "migrations.v1.ops.example.com/schema=jsonpath={.status.phase}=Done",
    ])
    .await;
    let unserved = env
        .run(&[
            "wait",
            "--for",
            "migrations.v9.ops.example.com/schema=jsonpath={.status.phase}=Done",
        ])
        .await;
    assert_eq!(code(&unserved), Some(1), "{}", stderr(&unserved));
    assert_said(&unserved, "no resource type");
}

#[tokio::test]
async fn a_kind_the_controller_may_not_read_is_a_condition_message_not_a_hang() {
    let env = Env::start().await;
    apply_migration_crd(&env).await;
    env.api::<Gate>()
        .create(&PostParams::default(), &gate_on_migration("unreadable"))
        .await
        .unwrap();
    let gate = until(&env, "unreadable", |g| {
        g.status.as_ref().is_some_and(|s| !s.results.is_empty())
    })
    .await;
    assert_eq!(gate.phase(), GatePhase::Waiting);
    assert!(
        message(&gate).contains("the operator may not read migrations.ops.example.com"),
        "{}",
        message(&gate)
    );
    // From koncli: a warning at once, and the reason as the waiter's progress line.
    let created = env
        .run(&[
            "gate",
            "create",
            "warned",
            "--for",
            "migrations.v1.ops.example.com/schema=jsonpath={.status.phase}=Done",
        ])
        .await;
    assert_eq!(code(&created), Some(0), "{}", stderr(&created));
    assert!(
        stderr(&created).contains(
            "warning: gate default/warned: migration/schema: the operator may not read migrations.ops.example.com"
        ),
        "{}",
        stderr(&created)
    );
    let waited = env
        .run(&["gate", "wait", "warned", "--timeout", "1s"])
        .await;
    assert_eq!(code(&waited), Some(5), "{}", stderr(&waited));
    let progress = stderr(&waited);
    assert!(
        progress
            .lines()
            .next()
            .is_some_and(|l| l.contains("the operator may not read migrations.ops.example.com")),
        "{progress}"
    );
}

#[tokio::test]
async fn koncli_wait_any_returns_on_the_first_and_fail_on_ends_it_at_once() {
    let env = Env::start().await;
    create_job(&env, "a").await;
    let any = spawn(&env, &["wait", "--for", "job/a", "--for", "job/b", "--any"]);
    let all = spawn(&env, &["wait", "--for", "job/a", "--for", "job/b"]);
    // b does not exist yet: waited for.
    create_job(&env, "b").await;
    finish_job(&env, "b", "Complete").await;
    let waited = finished(any).await;
    assert_eq!(code(&waited), Some(0), "{}", stderr(&waited));
    assert!(
        stdout(&waited).contains("Open: 1 of 2"),
        "{}",
        stdout(&waited)
    );

    let failing = spawn(
        &env,
        &[
            "wait",
            "--for",
            "job/a",
            "--fail-on",
            "barrier/guard=jsonpath={.status.phase}=Open",
        ],
    );
    env.ok(&["barrier", "create", "guard", "--expected", "1"])
        .await;
    env.ok(&["barrier", "arrive", "guard", "--holder", "w"])
        .await;
    let waited = finished(failing).await;
    assert_eq!(code(&waited), Some(4), "{}", stderr(&waited));
    assert_said(&waited, "failWhen matched");

    // `all` still waits for a: finish it.
    finish_job(&env, "a", "Complete").await;
    let waited = finished(all).await;
    assert_eq!(code(&waited), Some(0), "{}", stderr(&waited));

    // Options applied to every --for: an object that must exist, a test that must hold
    // for a while.
    let missing = env
        .run(&[
            "wait",
            "--for",
            "job/a",
            "--for",
            "job/ghost",
            "--fail-if-missing",
        ])
        .await;
    assert_eq!(code(&missing), Some(4), "{}", stderr(&missing));
    assert_said(&missing, "job/ghost does not exist (whenMissing: Fail)");
    let stable = env
        .run(&["wait", "--for", "job/a", "--stable-for", "300ms"])
        .await;
    assert_eq!(code(&stable), Some(0), "{}", stderr(&stable));
    assert_said(&stable, "met once it holds for 300ms");
}

#[tokio::test]
async fn overrides_timeouts_and_refused_specs() {
    let env = Env::start().await;
    env.ok(&["gate", "create", "manual", "--for", "job/never"])
        .await;
    let waiter = spawn(&env, &["gate", "wait", "manual"]);
    env.ok(&["gate", "open", "manual"]).await;
    let waited = finished(waiter).await;
    assert_eq!(code(&waited), Some(0), "{}", stderr(&waited));
    assert!(
        stdout(&waited).contains("opened by spec.override"),
        "{}",
        stdout(&waited)
    );
    env.ok(&["gate", "close", "manual"]).await;
    let gate = until(&env, "manual", |g| g.phase() == GatePhase::Waiting).await;
    assert!(message(&gate).contains("held closed"), "{}", message(&gate));
    env.ok(&["gate", "auto", "manual"]).await;
    let gate = until(&env, "manual", |g| {
        g.status.as_ref().is_some_and(|s| !s.overridden)
    })
    .await;
    assert_eq!(gate.phase(), GatePhase::Waiting);

    env.ok(&[
        "gate",
        "create",
        "late",
        "--for",
        "job/never",
        "--timeout",
        "1s",
    ])
    .await;
    let timed_out = env.run(&["gate", "wait", "late"]).await;
    assert_eq!(code(&timed_out), Some(3), "{}", stderr(&timed_out));
    let client_timeout = env
        .run(&["wait", "--for", "job/never", "--timeout", "500ms"])
        .await;
    assert_eq!(
        code(&client_timeout),
        Some(5),
        "{}",
        stderr(&client_timeout)
    );
    assert_said(&client_timeout, "waiting for job/never to be created");

    let usage = env.run(&["wait", "--for", "migrate"]).await;
    assert_eq!(code(&usage), Some(2));
    assert_said(&usage, "expected KIND/NAME");
    let unknown = env.run(&["wait", "--for", "frobnicators/x"]).await;
    assert_eq!(code(&unknown), Some(1));
    assert_said(&unknown, "no resource type \"frobnicators\"");

    let cluster_scoped = env.run(&["wait", "--for", "namespace/default"]).await;
    assert_eq!(code(&cluster_scoped), Some(1));
    assert_said(&cluster_scoped, "namespaces is cluster-scoped");
    let on_a_namespace: Gate = serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Gate",
        "metadata": {"name": "on-a-namespace"},
        "spec": {"conditions": [{"ref": {"apiVersion": "v1", "kind": "Namespace", "name": "default"},
            "jsonPath": ".status.phase", "value": "Active"}]}
    }))
    .unwrap();
    env.api::<Gate>()
        .create(&PostParams::default(), &on_a_namespace)
        .await
        .unwrap();
    let gate = until(&env, "on-a-namespace", |g| {
        g.status.as_ref().is_some_and(|s| !s.results.is_empty())
    })
    .await;
    assert!(
        message(&gate).contains("cluster-scoped"),
        "{}",
        message(&gate)
    );

    let mut both: Gate = gate_on_migration("both");
    both.spec.conditions[0].condition = Some(konductor_api::gate::ConditionTest {
        type_: "Ready".into(),
        ..Default::default()
    });
    let refused = env
        .api::<Gate>()
        .create(&PostParams::default(), &both)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("at most one test"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn the_controller_watches_a_kind_only_while_a_waiting_gate_names_it() {
    let env = Env::start().await;
    assert_eq!(gate_watches(&env), 0);
    create_job(&env, "only").await;
    env.ok(&["gate", "create", "g", "--for", "job/only"]).await;
    until(&env, "g", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.results[0].message.contains("no Complete condition"))
    })
    .await;
    assert_eq!(
        gate_watches(&env),
        1,
        "the Job watch serves the waiting Gate"
    );
    // A Gate in another namespace naming a Job of the same name: a watch of Jobs there.
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-b"}})).unwrap();
    Api::all(env.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    env.ok(&["-n", "team-b", "gate", "create", "g", "--for", "job/only"])
        .await;
    let team_b: Api<Gate> = Api::namespaced(env.client.clone(), "team-b");
    let waiting_there = |g: Option<&Gate>| {
        g.and_then(|g| g.status.as_ref())
            .is_some_and(|s| s.results[0].message.contains("to be created"))
    };
    tokio::time::timeout(HANG, await_condition(team_b.clone(), "g", waiting_there))
        .await
        .expect("the other namespace's Gate waits")
        .unwrap();
    assert_eq!(gate_watches(&env), 2, "a watch per kind and namespace");

    finish_job(&env, "only", "Complete").await;
    until(&env, "g", |g| g.phase() == GatePhase::Open).await;
    // Stopped in the reconcile that opened the Gate, before its status write.
    assert_eq!(gate_watches(&env), 1, "nobody here waits on a Job any more");
    let there = team_b.get("g").await.unwrap();
    assert_eq!(there.phase(), GatePhase::Waiting, "{}", message(&there));
    let jobs_there: Api<Job> = Api::namespaced(env.client.clone(), "team-b");
    create_job_in(&jobs_there, "only").await;
    finish_job_in(&jobs_there, "only", "Complete").await;
    tokio::time::timeout(
        HANG,
        await_condition(team_b, "g", |g: Option<&Gate>| {
            g.is_some_and(|g| g.phase() == GatePhase::Open)
        }),
    )
    .await
    .expect("the other namespace's Gate opens on its own Job")
    .unwrap();
    assert_eq!(gate_watches(&env), 0, "nobody waits on a Job any more");
    // A new Gate naming a Job starts the watch again: it sees the new Job's progress
    // (and it is counted while the Gate waits), then its completion.
    create_job(&env, "later").await;
    env.ok(&["gate", "create", "again", "--for", "job/later"])
        .await;
    until(&env, "again", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.results[0].message.contains("no Complete condition"))
    })
    .await;
    assert_eq!(gate_watches(&env), 1, "the watch runs again");
    finish_job(&env, "later", "Complete").await;
    until(&env, "again", |g| g.phase() == GatePhase::Open).await;
    assert_eq!(gate_watches(&env), 0);
    let metrics = env.controller().unwrap().metrics().encode();
    assert!(metrics.contains("konductor_gate_watches 0"), "{metrics}");
    let gates = env.ok(&["gate", "list"]).await;
    assert!(gates.contains("again") && gates.contains("Open"), "{gates}");
}

/// How many watches (a kind in a namespace) the controller runs for waiting Gates.
fn gate_watches(env: &Env) -> i64 {
    env.controller().unwrap().metrics().gate_watches.get()
}

#[tokio::test]
async fn kubectl_applies_gets_and_waits_for_a_gate() {
    let env = Env::start().await;
    let kubectl = |args: &[&str]| {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(env.kubeconfig())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let manifest = "\
apiVersion: konductor.io/v1
kind: Gate
metadata: {name: release}
spec:
  match: Any
  conditions:
  - ref: {apiVersion: batch/v1, kind: Job, name: canary}
  - ref: {apiVersion: batch/v1, kind: Job, name: smoke}
    condition: {type: Complete}
    stableFor: 1s
";
    let mut apply = kubectl(&["apply", "-f", "-"]).spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = apply.stdin.take().unwrap();
        stdin.write_all(manifest.as_bytes()).await.unwrap();
    }
    let applied = apply.wait_with_output().await.unwrap();
    assert!(applied.status.success(), "{}", stderr(&applied));
    let waiting = tokio::spawn(
        kubectl(&[
            "wait",
            "--for=condition=Open",
            "gate/release",
            "--timeout=60s",
        ])
        .output(),
    );
    create_job(&env, "smoke").await;
    finish_job(&env, "smoke", "Complete").await;
    let waited = waiting.await.unwrap().unwrap();
    assert!(waited.status.success(), "{}", stderr(&waited));
    let gate = until(&env, "release", |g| g.phase() == GatePhase::Open).await;
    let result = &gate.status.unwrap().results[1];
    assert!(result.met && result.since.is_some(), "{result:?}");
    let table = stdout(&kubectl(&["get", "gates"]).output().await.unwrap());
    for needle in ["MET", "TOTAL", "PHASE", "release", "Open"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
    let described = stdout(
        &kubectl(&["describe", "gate", "release"])
            .output()
            .await
            .unwrap(),
    );
    assert!(described.contains("Opened"), "{described}");
}

#[tokio::test]
async fn the_gate_pipeline_example_plays_to_completion() {
    let env = Env::start().await;
    let out = env.play_example("gate-pipeline.sh").await;
    assert!(
        out.contains("a failed Job failed the other Gate at once"),
        "{out}"
    );
}

#[tokio::test]
async fn gate_create_resume_names_what_it_resumes_and_status_shows_where_each_stands() {
    let env = Env::start().await;
    create_job(&env, "a").await;
    let jobs: Api<Job> = env.api();
    let suspended: Job = serde_json::from_value(json!({
        "metadata": {"name": "b", "annotations": {"konductor.io/resume-by": "b-may-start"}},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &suspended)
        .await
        .unwrap();

    // A test on an object to resume, or a kind the server lacks, is refused up front.
    for (resume, exit, said) in [
        ("job/b=condition=Complete", 2, "--resume"),
        ("nosuchkind/b", 1, "nosuchkind"),
    ] {
        let refused = env
            .run(&["gate", "create", "g", "--for", "job/a", "--resume", resume])
            .await;
        assert_eq!(code(&refused), Some(exit), "{}", stderr(&refused));
        assert_said(&refused, said);
    }

    env.ok(&[
        "gate",
        "create",
        "b-may-start",
        "--for",
        "job/a",
        "--resume",
        "job/b",
    ])
    .await;
    let gate = until(&env, "b-may-start", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.resume.first().is_some_and(|r| r.uid.is_some()))
    })
    .await;
    assert_eq!(gate.spec.resume[0].to_string(), "job/b");
    let waiting = env.ok(&["gate", "status", "b-may-start"]).await;
    assert!(
        waiting.contains("RESUME") && waiting.contains("waiting for the Gate to open"),
        "{waiting}"
    );
    finish_job(&env, "a", "Complete").await;
    until(&env, "b-may-start", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.resume
                .first()
                .is_some_and(|r| r.state == konductor_api::gate::resume::ResumeState::Resumed)
        })
    })
    .await;
    let resumed = env.ok(&["gate", "status", "b-may-start"]).await;
    assert!(resumed.contains("Resumed"), "{resumed}");
    let b = jobs.get("b").await.unwrap();
    assert_eq!(b.spec.unwrap().suspend, Some(false));

    // `gate create` warns at once about a target that will not be resumed as it stands.
    let loose: Job = serde_json::from_value(json!({
        "metadata": {"name": "loose"},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &loose).await.unwrap();
    let warned = env
        .run(&[
            "gate",
            "create",
            "late",
            "--for",
            "job/a",
            "--resume",
            "job/loose",
            "--resume",
            "job/b",
            "--resume",
            "job/not-yet",
        ])
        .await;
    assert_eq!(code(&warned), Some(0), "{}", stderr(&warned));
    let said = stderr(&warned);
    assert!(
        said.contains("job/loose has no konductor.io/resume-by: late annotation"),
        "{said}"
    );
    assert!(
        said.contains("job/b has no konductor.io/resume-by: late"),
        "{said}"
    );
    assert!(
        !said.contains("not-yet"),
        "a target not created yet is no warning: {said}"
    );
    let eager: Job = serde_json::from_value(json!({
        "metadata": {"name": "eager", "annotations": {"konductor.io/resume-by": "late-2"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &eager).await.unwrap();
    let unordered = env
        .run(&[
            "gate",
            "create",
            "late-2",
            "--for",
            "job/a",
            "--resume",
            "job/eager",
        ])
        .await;
    assert!(
        stderr(&unordered).contains("job/eager is not suspended"),
        "{}",
        stderr(&unordered)
    );

    // The SDK's builder makes the same spec.
    let connection = env.connection().await;
    let built = konductor_sdk::gate::Gates::new(&connection)
        .build("c-may-start")
        .target("job/b")
        .await
        .unwrap()
        .resume("jobs.batch/c")
        .await
        .unwrap()
        .create()
        .await
        .unwrap();
    assert_eq!(built.spec.conditions[0].target.to_string(), "job/b");
    assert_eq!(built.spec.resume[0].api_version, "batch/v1");
    assert_eq!(built.spec.resume[0].to_string(), "job/c");
}

#[tokio::test]
async fn the_gate_resume_example_plays_its_chain_in_order() {
    let env = Env::start().await;
    let out = env.play_example("gate-resume.sh").await;
    assert!(
        out.contains("ok: b and c started only after the Job before them completed"),
        "{out}"
    );
}
