//! The real kubectl (from PATH) against `konductor server`: every kubectl command of the
//! seed's Barrier page, plus apply, wait, describe, explain, patch, watch and errors.
//! If kubectl is not installed these tests fail with a message saying so.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kubectl::{Cluster, kubectl_binary, text};

fn arrival(barrier: &str, holder: &str) -> String {
    format!(
        "apiVersion: konductor.io/v1\nkind: Arrival\nmetadata:\n  name: {barrier}-{holder}\n  labels:\n    konductor.io/barrier: {barrier}\nspec:\n  barrier: {barrier}\n  holder: {holder}\n"
    )
}

const ETL: &str = "\
# Stage 1: Extract jobs signal completion
apiVersion: konductor.io/v1
kind: Barrier
metadata:
  name: extract-complete
spec:
  expected: 5 # 5 extract jobs
---
# Transform stage barrier
apiVersion: konductor.io/v1
kind: Barrier
metadata:
  name: transform-complete
spec:
  expected: 3 # 3 transform jobs
";

#[test]
fn apply_get_describe_and_delete_the_seed_examples() {
    let c = Cluster::start();
    let file = c.write("etl.yaml", ETL);
    let path = file.to_str().unwrap();
    let expect = |output: &str, lines: &[&str]| {
        for line in lines {
            assert!(output.contains(line), "{line:?} missing from {output}");
        }
    };
    expect(
        &c.ok(&["apply", "-f", path]),
        &[
            "barrier.konductor.io/extract-complete created",
            "barrier.konductor.io/transform-complete created",
        ],
    );
    expect(
        &c.ok(&["apply", "-f", path]),
        &["barrier.konductor.io/extract-complete unchanged"],
    );
    c.write("etl.yaml", &ETL.replace("expected: 3", "expected: 4"));
    expect(
        &c.ok(&["apply", "-f", path]),
        &[
            "barrier.konductor.io/transform-complete configured",
            "barrier.konductor.io/extract-complete unchanged",
        ],
    );

    let table = c.ok(&["get", "barriers"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "EXPECTED", "QUORUM", "ARRIVED", "PHASE", "AGE"]
    );
    assert!(table.contains("transform-complete   4"), "{table}");
    let wide = c.ok(&["get", "barrier", "extract-complete", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("TIMEOUT"), "{wide}");
    assert_eq!(c.ok(&["get", "bar", "-o", "name"]).lines().count(), 2);
    let yaml = c.ok(&["get", "barrier", "extract-complete", "-o", "yaml"]);
    assert!(yaml.contains("expected: 5"), "{yaml}");
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "barrier", "extract-complete", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "Barrier");
    assert!(c.ok(&["get", "barriers", "-A"]).starts_with("NAMESPACE"));
    assert!(
        c.ok(&["get", "barriers", "--show-labels"])
            .lines()
            .next()
            .unwrap()
            .ends_with("LABELS")
    );

    for holder in ["e1", "e2", "e3", "e4", "e5"] {
        c.apply(&arrival("extract-complete", holder));
    }
    c.ok(&[
        "wait",
        "--for=condition=Open",
        "barrier/extract-complete",
        "--timeout=60s",
    ]);
    let arrivals = c.ok(&[
        "get",
        "barrier",
        "extract-complete",
        "-o",
        "jsonpath={.status.arrivals}",
    ]);
    assert_eq!(arrivals, r#"["e1","e2","e3","e4","e5"]"#);
    let listed = c.ok(&[
        "get",
        "arrivals",
        "-l",
        "konductor.io/barrier=extract-complete",
    ]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
    c.until_event("default", "extract-complete", "Opened");
    let described = c.ok(&["describe", "barrier", "extract-complete"]);
    assert!(
        described
            .lines()
            .any(|l| l.trim() == "Phase:                  Open"
                || (l.trim_start().starts_with("Phase:") && l.trim_end().ends_with("Open"))),
        "{described}"
    );
    assert!(described.contains("Events:"), "{described}");
    assert!(
        described.contains("Opened"),
        "no Opened event in: {described}"
    );
    let events = c.ok(&["get", "events"]);
    assert!(events.contains("barrier/extract-complete"), "{events}");

    let deleted = c.ok(&["delete", "-f", path]);
    assert!(
        deleted.contains("\"extract-complete\" deleted"),
        "{deleted}"
    );
    assert!(text(&c.run(&["get", "barriers"]).stderr).contains("No resources found"));
}

#[test]
fn patching_the_timeout_revives_a_timed_out_barrier() {
    let c = Cluster::start();
    c.apply("apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: my-barrier\nspec:\n  expected: 2\n  timeout: 1s\n");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Timeout",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    c.until_event("default", "my-barrier", "TimedOut");
    let described = c.ok(&["describe", "barrier", "my-barrier"]);
    assert!(described.contains("TimedOut"), "{described}");
    let patched = c.ok(&[
        "patch",
        "barrier",
        "my-barrier",
        "--type=merge",
        "-p",
        r#"{"spec":{"timeout":"1h"}}"#,
    ]);
    assert!(patched.contains("patched"), "{patched}");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Waiting",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    c.ok(&[
        "patch",
        "barrier",
        "my-barrier",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/expected","value":1}]"#,
    ]);
    c.apply(&arrival("my-barrier", "only"));
    c.ok(&[
        "wait",
        "--for=condition=Open",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    c.ok(&[
        "patch",
        "barrier",
        "my-barrier",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"failed":0}}"#,
    ]);
    let strategic = c.run(&[
        "patch",
        "barrier",
        "my-barrier",
        "-p",
        r#"{"spec":{"expected":2}}"#,
    ]);
    assert!(
        !strategic.status.success(),
        "strategic merge must be refused as for CRDs"
    );
}

#[test]
fn delete_and_reapply_resets_a_barrier() {
    let c = Cluster::start();
    let barrier = c.write("barrier.yaml", "apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: my-barrier\nspec:\n  expected: 2\n");
    let path = barrier.to_str().unwrap();
    c.ok(&["apply", "-f", path]);
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Waiting",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    c.apply(&arrival("my-barrier", "a"));
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.arrived}=1",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    c.ok(&["delete", "barrier", "my-barrier"]);
    c.ok(&[
        "wait",
        "--for=delete",
        "arrival/my-barrier-a",
        "--timeout=60s",
    ]);
    c.ok(&["apply", "-f", path]);
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Waiting",
        "barrier/my-barrier",
        "--timeout=60s",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "barrier",
            "my-barrier",
            "-o",
            "jsonpath={.status.arrived}"
        ]),
        "0"
    );
    assert!(text(&c.run(&["get", "arrivals"]).stderr).contains("No resources found"));
}

#[test]
fn discovery_explain_and_raw_requests_work() {
    let c = Cluster::start();
    let resources = c.ok(&["api-resources"]);
    for line in ["barriers", "arrivals", "leases", "namespaces"] {
        assert!(resources.contains(line), "{resources}");
    }
    assert!(
        resources.contains("bar ") || resources.contains(" bar"),
        "short name missing: {resources}"
    );
    let versions = c.ok(&["api-versions"]);
    assert!(
        versions.lines().any(|l| l == "konductor.io/v1"),
        "{versions}"
    );
    let explained = c.ok(&["explain", "barrier.spec"]);
    assert!(explained.contains("expected"), "{explained}");
    assert!(
        explained.contains("Number of processes expected to arrive"),
        "{explained}"
    );
    let raw: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/apis/konductor.io/v1"])).unwrap();
    assert_eq!(raw["kind"], "APIResourceList");
    c.refused(
        &["get", "--raw", "/apis/nothing.example.com/v1/things"],
        "NotFound",
    );
}

#[test]
fn namespaces_scope_barriers() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team-x"]);
    c.apply("apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: scoped\n  namespace: team-x\nspec:\n  expected: 1\n");
    assert!(
        c.ok(&["get", "barriers", "-n", "team-x"])
            .contains("scoped")
    );
    assert!(
        text(&c.run(&["get", "barriers"]).stderr)
            .contains("No resources found in default namespace")
    );
    c.apply(&arrival("scoped", "x").replace("metadata:\n", "metadata:\n  namespace: team-x\n"));
    c.ok(&[
        "wait",
        "-n",
        "team-x",
        "--for=condition=Open",
        "barrier/scoped",
        "--timeout=60s",
    ]);
    c.until_event("team-x", "scoped", "Opened");
}

#[test]
fn invalid_barriers_are_refused_naming_the_field_and_nothing_is_stored() {
    let c = Cluster::start();
    let cases = [
        ("expected: 0", "spec.expected"),
        ("expected: 3\n  quorum: 4", "spec.quorum"),
        ("expected: 3\n  timeout: soon", "spec.timeout"),
        (
            "expected: 3\n  colour: red",
            "unknown field \"spec.colour\"",
        ),
        ("expected: five", "spec.expected"),
    ];
    for (spec, message) in cases {
        let yaml = format!(
            "apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: bad\nspec:\n  {spec}\n"
        );
        let output = c.run_with_input(&["apply", "-f", "-"], &yaml);
        assert!(!output.status.success(), "{spec} was accepted");
        assert!(
            text(&output.stderr).contains(message),
            "{spec}: {}",
            text(&output.stderr)
        );
    }
    c.refused(&["get", "barrier", "bad"], "NotFound");
}

#[test]
fn get_watch_streams_changes() {
    let c = Cluster::start();
    c.apply("apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: watched\nspec:\n  expected: 2\n  quorum: 2\n");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Waiting",
        "barrier/watched",
        "--timeout=60s",
    ]);
    let (mut watch, received) = c.watch_lines(&["get", "barriers", "-w"]);
    let next = || {
        received
            .recv_timeout(Duration::from_secs(30))
            .expect("kubectl get -w output")
    };
    assert!(next().starts_with("NAME"));
    assert!(next().contains("watched"));
    c.apply(&arrival("watched", "a"));
    loop {
        let line = next();
        // NAME EXPECTED QUORUM ARRIVED PHASE AGE
        if line.split_whitespace().collect::<Vec<_>>()[..4] == ["watched", "2", "2", "1"] {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
}

/// kubectl's discovery cache lives under the test's HOME, not the user's.
#[test]
fn kubectl_is_found() {
    assert!(Path::new(&kubectl_binary()).is_file());
}

/// The repository's `examples/` directory.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_manifest_applies() {
    let c = Cluster::start();
    let mut applied = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml");
        // Jobs need a real cluster; everything else must apply here.
        if !is_yaml
            || std::fs::read_to_string(&path)
                .unwrap()
                .contains("kind: Job")
        {
            continue;
        }
        let output = c.run(&["apply", "-f", path.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            text(&output.stderr)
        );
        applied += 1;
    }
    assert!(applied >= 7, "only {applied} example manifests found");
}

#[test]
fn the_deployment_kustomization_renders() {
    let c = Cluster::start();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let rendered = c.ok(&["kustomize", config.to_str().unwrap()]);
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: Deployment",
        "kind: ClusterRole",
        "kind: ServiceAccount",
        "kind: Namespace",
    ] {
        assert!(
            rendered.contains(kind),
            "{kind} missing from the kustomization"
        );
    }
}

#[test]
fn the_flow_control_config_is_valid_and_kept_out_of_the_default_kustomization() {
    use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};

    let c = Cluster::start();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let rendered = c.ok(&["kustomize", config.join("apf").to_str().unwrap()]);
    let mut schemas = Vec::new();
    let mut levels = Vec::new();
    for document in rendered.split("\n---\n") {
        let value: serde_json::Value = serde_yaml::from_str(document).unwrap();
        // Read as the API's types and written back, a document must come out the same:
        // a field the API does not know (a typo) would be dropped, and differ.
        let round_trip = match value["kind"].as_str() {
            Some("FlowSchema") => {
                let schema: FlowSchema = serde_json::from_value(value.clone()).unwrap();
                schemas.push(schema.clone());
                serde_json::to_value(schema).unwrap()
            }
            Some("PriorityLevelConfiguration") => {
                let level: PriorityLevelConfiguration =
                    serde_json::from_value(value.clone()).unwrap();
                levels.push(level.clone());
                serde_json::to_value(level).unwrap()
            }
            other => panic!("unexpected kind {other:?} in config/apf"),
        };
        assert_eq!(round_trip, value, "a field the API does not know");
    }
    assert_eq!((schemas.len(), levels.len()), (2, 2));
    let level_names: Vec<_> = levels
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    for schema in &schemas {
        let spec = &schema.spec;
        assert!(
            level_names.contains(&spec.priority_level_configuration.name),
            "{:?} names a priority level not defined beside it",
            schema.metadata.name
        );
    }
    // The operator's schema names the ServiceAccount config/rbac binds the operator's role to.
    let operator = schemas
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("konductor-operator"))
        .unwrap();
    let subject = &operator.spec.rules.as_ref().unwrap()[0].subjects[0];
    let account = subject.service_account.as_ref().unwrap();
    let rbac = std::fs::read_to_string(config.join("rbac/operator.yaml")).unwrap();
    assert!(
        rbac.contains(&format!(
            "- kind: ServiceAccount\n  name: {}\n  namespace: {}\n",
            account.name, account.namespace
        )),
        "config/rbac/operator.yaml binds no ServiceAccount {}/{}",
        account.namespace,
        account.name
    );
    // `konductor server` does not serve flowcontrol: `kubectl apply -k config/` must not
    // carry it.
    let default = c.ok(&["kustomize", config.to_str().unwrap()]);
    assert!(!default.contains("flowcontrol.apiserver.k8s.io"));
}

#[test]
fn server_side_dry_run_and_diff_work() {
    let c = Cluster::start();
    let file = c.write(
        "b.yaml",
        "apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: planned\nspec:\n  expected: 2\n",
    );
    let path = file.to_str().unwrap();
    let dry = c.ok(&["apply", "--dry-run=server", "-f", path]);
    assert!(dry.contains("created (server dry run)"), "{dry}");
    c.refused(&["get", "barrier", "planned"], "NotFound");
    c.ok(&["apply", "-f", path]);
    c.write(
        "b.yaml",
        "apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: planned\nspec:\n  expected: 3\n",
    );
    let diff = c.run(&["diff", "-f", path]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "kubectl diff exits 1 when there are differences: {}",
        text(&diff.stderr)
    );
    assert!(
        text(&diff.stdout).contains("+  expected: 3"),
        "{}",
        text(&diff.stdout)
    );
    assert_eq!(
        c.ok(&[
            "get",
            "barrier",
            "planned",
            "-o",
            "jsonpath={.spec.expected}"
        ]),
        "2"
    );
}

#[test]
fn sort_by_a_field_of_the_object_works() {
    let c = Cluster::start();
    for (name, expected) in [("b-three", 3), ("a-five", 5), ("c-one", 1)] {
        c.apply(&format!(
            "apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: {name}\nspec:\n  expected: {expected}\n"
        ));
    }
    let sorted = c.ok(&[
        "get",
        "barriers",
        "--sort-by=.spec.expected",
        "--no-headers",
    ]);
    let names: Vec<&str> = sorted
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["c-one", "b-three", "a-five"], "{sorted}");
    c.apply(&arrival("a-five", "zed"));
    c.apply(&arrival("a-five", "amy"));
    let holders = c.ok(&[
        "get",
        "arrivals",
        "--sort-by=.spec.holder",
        "-o",
        "custom-columns=HOLDER:.spec.holder",
        "--no-headers",
    ]);
    assert_eq!(
        holders.lines().collect::<Vec<_>>(),
        ["amy", "zed"],
        "{holders}"
    );
}

#[test]
fn auth_can_i_and_get_all_work() {
    let c = Cluster::start();
    assert_eq!(c.ok(&["auth", "can-i", "create", "barriers"]).trim(), "yes");
    assert_eq!(
        c.ok(&["auth", "can-i", "delete", "arrivals", "-n", "default"])
            .trim(),
        "yes"
    );
    c.apply("apiVersion: konductor.io/v1\nkind: Barrier\nmetadata:\n  name: in-all\nspec:\n  expected: 1\n");
    c.apply(&arrival("in-all", "x"));
    let all = c.ok(&["get", "all"]);
    assert!(all.lines().any(|l| l.starts_with("in-all ")), "{all}");
    let ours = c.ok(&["get", "konductor"]);
    assert!(ours.contains("barrier.konductor.io/in-all"), "{ours}");
    assert!(ours.contains("arrival.konductor.io/in-all-x"), "{ours}");
}

#[test]
fn kubectl_works_on_the_lock_kinds() {
    let c = Cluster::start();
    c.ok(&[
        "apply",
        "-f",
        examples().join("locks.yaml").to_str().unwrap(),
    ]);
    c.apply("apiVersion: konductor.io/v1\nkind: Permit\nmetadata:\n  name: first\nspec:\n  lockRef: {kind: Mutex, name: db-migrate}\n  holder: job-a\n");
    c.ok(&[
        "wait",
        "--for=condition=Granted",
        "permit/first",
        "--timeout=60s",
    ]);
    c.apply("apiVersion: konductor.io/v1\nkind: Permit\nmetadata:\n  name: second\nspec:\n  lockRef: {kind: Mutex, name: db-migrate}\n  holder: job-b\n  priority: 1\n");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.position}=1",
        "permit/second",
        "--timeout=60s",
    ]);
    let mutexes = c.ok(&["get", "mutexes"]);
    for column in ["HOLDER", "PHASE", "WAITING", "job-a", "Locked"] {
        assert!(mutexes.contains(column), "{column} missing:\n{mutexes}");
    }
    // WAITING is a count, not a list in brackets.
    let row = mutexes
        .lines()
        .find(|l| l.starts_with("db-migrate"))
        .unwrap();
    assert!(
        row.split_whitespace().any(|cell| cell == "1") && !row.contains('['),
        "{mutexes}"
    );
    let semaphores = c.ok(&["get", "semaphores"]);
    for column in [
        "PERMITS",
        "IN USE",
        "AVAILABLE",
        "db-connections",
        "Available",
    ] {
        assert!(
            semaphores.contains(column),
            "{column} missing:\n{semaphores}"
        );
    }
    let all = c.ok(&["get", "permits", "--sort-by=.spec.holder"]);
    assert!(
        all.find("first").unwrap() < all.find("second").unwrap(),
        "{all}"
    );
    c.ok(&["delete", "permit", "first"]);
    c.ok(&[
        "wait",
        "--for=condition=Granted",
        "permit/second",
        "--timeout=60s",
    ]);
    c.until_event("default", "db-migrate", "Released");
    c.ok(&[
        "wait",
        "--for=condition=Locked",
        "mutex/db-migrate",
        "--timeout=60s",
    ]);
    let described = c.ok(&["describe", "mutex", "db-migrate"]);
    // Each grant is an event of its own (not folded into one series), from the lock
    // controller.
    for said in [
        "granted to job-a with fencing token 1",
        "granted to job-b with fencing token 2",
        "job-a released it",
        "lock-controller",
    ] {
        assert!(described.contains(said), "{said} missing:\n{described}");
    }
    c.ok(&["delete", "permit", "second"]);
    c.ok(&[
        "wait",
        "--for=condition=Locked=false",
        "mutex/db-migrate",
        "--timeout=60s",
    ]);
    let patched = c.ok(&[
        "patch",
        "semaphore",
        "db-connections",
        "--type=merge",
        "-p",
        r#"{"spec":{"permits":5}}"#,
    ]);
    assert!(patched.contains("patched"), "{patched}");
    let explained = c.ok(&["explain", "permit.spec.lockRef"]);
    assert!(explained.contains("kind"), "{explained}");
    c.apply("apiVersion: konductor.io/v1\nkind: Permit\nmetadata:\n  name: third\nspec:\n  lockRef: {kind: Mutex, name: db-migrate}\n  holder: job-c\n");
    let refused = c.run(&[
        "patch",
        "permit",
        "third",
        "--type=merge",
        "-p",
        r#"{"spec":{"holder":"thief"}}"#,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("holder is immutable"),
        "{}",
        text(&refused.stderr)
    );
}
