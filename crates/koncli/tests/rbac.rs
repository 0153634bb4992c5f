//! The roles in `config/rbac/` allow what is really asked for: every verb on every
//! resource that koncli (the workloads' role, `koncli-role.yaml`) and the controllers
//! (the operator's role, `operator.yaml`) used against a server while doing their work —
//! recorded by the server, by User-Agent — is allowed by the role. `konductor server`
//! itself does not enforce RBAC, so this is where a missing rule shows up before a
//! cluster refuses it.

mod common;

use std::time::Duration;

use common::{Env, assert_exit, stderr};
use konductor_api::locks::{Mutex, Permit, PermitSpec};
use konductor_api::waitgroup::{WaitGroup, WaitGroupMember, WaitGroupMemberSpec};
use konductor_server::access::Access;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;

/// The longest any awaited outcome may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(120);

/// One rule of a role: groups, resources, verbs.
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

/// The rules of every ClusterRole and Role in a file of `config/rbac/`.
fn rules(file: &str) -> Vec<Rule> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/rbac")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let strings = |value: &serde_yaml::Value| -> Vec<String> {
        value
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut rules = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let document = serde_yaml::Value::deserialize(document).unwrap();
        if !matches!(document["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in document["rules"].as_sequence().into_iter().flatten() {
            rules.push(Rule {
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
            });
        }
    }
    assert!(!rules.is_empty(), "no rules in {}", path.display());
    rules
}

fn allowed(rules: &[Rule], access: &Access) -> bool {
    rules.iter().any(|rule| {
        rule.groups.contains(&access.group)
            && rule.resources.contains(&access.resource)
            && rule.verbs.iter().any(|v| v == access.verb)
    })
}

use serde::Deserialize as _;

#[tokio::test]
async fn the_roles_allow_what_koncli_and_the_controllers_ask_for() {
    let env = Env::start().await;
    // Set-up (not the workloads' job, nor the operator's) under a name of its own.
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(env.kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("rbac-test-set-up"),
    ));
    let setup = kube::Client::try_from(config).unwrap();
    let create = |kind: &str, name: &str, spec: serde_json::Value| {
        let setup = setup.clone();
        let (kind, name) = (kind.to_owned(), name.to_owned());
        async move {
            let resource = match kind.as_str() {
                "Barrier" => kube::core::ApiResource::erase::<konductor_api::Barrier>(&()),
                "Mutex" => kube::core::ApiResource::erase::<Mutex>(&()),
                "WaitGroup" => kube::core::ApiResource::erase::<WaitGroup>(&()),
                "Job" => kube::core::ApiResource::erase::<k8s_openapi::api::batch::v1::Job>(&()),
                "Semaphore" => {
                    kube::core::ApiResource::erase::<konductor_api::locks::Semaphore>(&())
                }
                _ => kube::core::ApiResource::erase::<konductor_api::locks::RWMutex>(&()),
            };
            let api: Api<kube::api::DynamicObject> =
                Api::namespaced_with(setup, "default", &resource);
            let object: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
                "apiVersion": resource.api_version, "kind": kind,
                "metadata": {"name": name}, "spec": spec,
            }))
            .unwrap();
            api.create(&PostParams::default(), &object).await.unwrap();
        }
    };
    create("Barrier", "b", serde_json::json!({"expected": 2})).await;
    create(
        "Barrier",
        "brief",
        serde_json::json!({"expected": 1, "ttlAfterFinished": "1s"}),
    )
    .await;
    create("Mutex", "m", serde_json::json!({"ttl": "2s"})).await;
    create("Semaphore", "s", serde_json::json!({"permits": 1})).await;
    create("RWMutex", "r", serde_json::json!({})).await;
    create(
        "WaitGroup",
        "held",
        serde_json::json!({"memberTTL": "2s", "ttlAfterFinished": "1s"}),
    )
    .await;

    create(
        "Job",
        "j",
        serde_json::json!({"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}),
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(setup.clone(), "default");
    // A suspended Job that opted in to be resumed by the Gate `resumer`.
    let held_back: k8s_openapi::api::batch::v1::Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "held-back", "annotations": {"konductor.io/resume-by": "resumer"}},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}},
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &held_back)
        .await
        .unwrap();
    jobs.patch_status(
        "j",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        })),
    )
    .await
    .unwrap();

    // The workloads' work, through koncli.
    for args in [
        &["barrier", "arrive", "b", "w1", "--failed"][..],
        &["barrier", "arrive", "b", "w1"],
        &["barrier", "arrive", "b", "w2"],
        &["barrier", "wait", "b"],
        &["barrier", "status", "b"],
        &["barrier", "arrive", "brief", "w1"],
        &["mutex", "run", "m", "--", "true"],
        &["mutex", "lock", "m", "--holder", "h"],
        &["mutex", "unlock", "m", "--holder", "h"],
        &["semaphore", "run", "s", "--", "true"],
        &["rwmutex", "run", "r", "--read", "--", "true"],
        &["rwmutex", "status", "r"],
        // A RateLimit made on first use, a slot taken, a run, its status.
        &["ratelimit", "take", "rl", "--limit", "5", "--window", "1m"],
        &["ratelimit", "run", "rl", "--", "true"],
        &["ratelimit", "status", "rl"],
        &["ratelimit", "list"],
        // Locks made on first use, and several held at once.
        &["mutex", "run", "first-use", "--", "true"],
        &[
            "run",
            "--hold",
            "mutex/m",
            "--hold",
            "semaphore/fresh=2",
            "--",
            "true",
        ],
        // `once run` creates the Once it runs, claims it and reports on its claim.
        &["once", "run", "o", "--key", "v1", "--", "true"],
        &["once", "check", "o", "--key", "v1"],
        &["once", "wait", "o", "--key", "v1"],
        &["once", "status", "o"],
        &["once", "list"],
        &["once", "reset", "o", "--key", "v1", "--force"],
        // `waitgroup add` and `run` create the group they use.
        &[
            "waitgroup",
            "add",
            "wg",
            "--member",
            "a,b",
            "--member-ttl",
            "2s",
            "--max-failed",
            "1",
        ],
        &["waitgroup", "done", "wg", "--member", "a"],
        &["waitgroup", "done", "wg", "--member", "c", "--failed"],
        &["waitgroup", "run", "wg", "--member", "b", "--", "true"],
        &["waitgroup", "status", "wg"],
        &["waitgroup", "list"],
        &["waitgroup", "seal", "wg"],
        &["waitgroup", "wait", "wg"],
        // Gates: created, waited on, overridden; and waits with no Gate object.
        &[
            "gate",
            "create",
            "gt",
            "--for",
            "job/j",
            "--for",
            "barrier/b",
        ],
        &["gate", "wait", "gt"],
        // A Gate that resumes a suspended Job when it opens.
        &[
            "gate",
            "create",
            "resumer",
            "--for",
            "job/j",
            "--resume",
            "job/held-back",
        ],
        &["gate", "wait", "resumer"],
        &["gate", "status", "gt"],
        &["gate", "list"],
        &["gate", "close", "gt"],
        &["gate", "open", "gt"],
        &["gate", "auto", "gt"],
        &["wait", "--for", "job/j", "--for", "barrier/b"],
    ] {
        let output = env.run(args).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let busy = env.run(&["mutex", "lock", "m", "--holder", "h2"]).await;
    assert!(busy.status.success(), "{}", stderr(&busy));
    let other = env.run(&["mutex", "lock", "m", "--holder", "h3"]).await;
    assert_exit(&other, 6);

    // The controllers' work beyond that: a grant nobody renews expires (h2's, ttl 2s),
    // and a Permit made without an owner is adopted.
    let permits: Api<Permit> = Api::namespaced(setup.clone(), "default");
    permits
        .create(
            &PostParams::default(),
            &Permit::new(
                "stray",
                PermitSpec::new(konductor_api::locks::LockKind::Mutex, "m", "stray"),
            ),
        )
        .await
        .unwrap();
    // A live waiter renews (one that does not leaves the queue after the ttl, 2s).
    let renewing = konductor_testing::keep_renewing(permits.clone(), "stray");
    let mutexes: Api<Mutex> = Api::namespaced(setup.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(mutexes, "m", |m: Option<&Mutex>| {
            m.and_then(|m| m.status.as_ref())
                .and_then(|s| s.claims.grants.as_ref())
                .is_some_and(|grants| grants.iter().any(|g| g.holder == "stray"))
        }),
    )
    .await
    .expect("h2's grant expires and the stray permit is granted")
    .unwrap();
    renewing.abort();
    tokio::time::timeout(
        HANG,
        await_condition(permits, "stray", |p: Option<&Permit>| {
            p.is_some_and(|p| {
                !p.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty()
            })
        }),
    )
    .await
    .expect("the stray permit is adopted")
    .unwrap();

    // The Gate resumes its Job (the controller patches it).
    tokio::time::timeout(
        HANG,
        await_condition(
            jobs,
            "held-back",
            |j: Option<&k8s_openapi::api::batch::v1::Job>| {
                j.and_then(|j| j.spec.as_ref())
                    .is_some_and(|s| s.suspend == Some(false))
            },
        ),
    )
    .await
    .expect("the Gate resumes its Job")
    .unwrap();

    // A finished barrier with a ttlAfterFinished is deleted by the controller.
    let barriers: Api<konductor_api::Barrier> = Api::namespaced(setup.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(barriers, "brief", |b: Option<&konductor_api::Barrier>| {
            b.is_none()
        }),
    )
    .await
    .expect("the finished barrier is deleted")
    .unwrap();

    // A held member nobody renews expires (and, made without an owner, is adopted);
    // its group fails and, finished, is deleted after its ttlAfterFinished.
    let members: Api<WaitGroupMember> = Api::namespaced(setup.clone(), "default");
    let mut stray = WaitGroupMemberSpec::new("held", "stray");
    stray.holder = Some("gone".to_owned());
    members
        .create(
            &PostParams::default(),
            &WaitGroupMember::new("held-stray", stray),
        )
        .await
        .unwrap();
    let groups: Api<WaitGroup> = Api::namespaced(setup.clone(), "default");
    tokio::time::timeout(
        HANG,
        await_condition(groups, "held", |g: Option<&WaitGroup>| g.is_none()),
    )
    .await
    .expect("the member expires, the group fails and is deleted")
    .unwrap();

    let workloads = rules("koncli-role.yaml");
    let operator = rules("operator.yaml");
    let accesses = env.server.accesses();
    let mut refused = Vec::new();
    let (mut koncli, mut controllers) = (0, 0);
    for access in &accesses {
        let role = if access.agent.starts_with("konductor-sdk/") {
            koncli += 1;
            &workloads
        } else if access.agent.is_empty() {
            controllers += 1;
            &operator
        } else {
            continue;
        };
        // After a not-found, koncli asks whether the namespace itself exists, as far
        // as it may: a 403 keeps the not-found (a RoleBinding cannot grant it anyway).
        let namespace_probe = access.resource == "namespaces" && access.verb == "get";
        if !allowed(role, access) && !namespace_probe {
            refused.push(access.clone());
        }
    }
    assert!(koncli > 5 && controllers > 5, "{accesses:?}");
    assert!(
        refused.is_empty(),
        "not allowed by their role: {refused:#?}"
    );
}
