//! CRDs written elsewhere, applied to `konductor server` with the real kubectl: served at
//! once (discovery, OpenAPI, schema, CEL, defaults, pruning, columns, short names,
//! categories, status and scale), kept across a restart, gone with their objects when
//! the CRD is deleted. And the built-in stored kinds: Jobs, Deployments and ConfigMaps,
//! whose status a script sets as their controllers would.

mod common;

use std::time::Duration;

use common::kubectl::{Cluster, text};

/// The fixture CRDs: `databases.acme.example.com` (namespaced, nested schema, CEL,
/// int-or-string, preserve-unknown-fields, defaults, status and scale) and
/// `clusterpolicies.acme.example.com` (cluster-scoped, two served versions).
const CRDS: &str = include_str!("fixtures/acme-crds.yaml");

const DATABASE: &str = "\
apiVersion: acme.example.com/v1
kind: Database
metadata:
  name: main
spec:
  engine: postgres
  storage:
    size: 10Gi
    volumes:
    - name: data
      source:
        claim:
          claimName: pvc-1
  config:
    shared_buffers: 128MB
    nested: {deep: [1, 2]}
";

fn contains_all(output: &str, expected: &[&str]) {
    for line in expected {
        assert!(output.contains(line), "{line:?} missing from:\n{output}");
    }
}

/// A cluster with the fixture CRDs applied and established.
fn with_crds() -> Cluster {
    let c = Cluster::start();
    contains_all(
        &c.apply(CRDS),
        &[
            "customresourcedefinition.apiextensions.k8s.io/databases.acme.example.com created",
            "customresourcedefinition.apiextensions.k8s.io/clusterpolicies.acme.example.com created",
        ],
    );
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/databases.acme.example.com",
        "crd/clusterpolicies.acme.example.com",
        "--timeout=30s",
    ]);
    c
}

#[test]
fn an_applied_crd_is_served_at_once_with_its_schema_columns_and_names() {
    let c = with_crds();
    let resources = c.ok(&["api-resources", "--api-group=acme.example.com"]);
    contains_all(
        &resources,
        &["databases", "db", "Database", "clusterpolicies"],
    );
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("clusterpolicies") && l.contains("false")),
        "cluster-scoped: {resources}"
    );

    contains_all(
        &c.apply(DATABASE),
        &["database.acme.example.com/main created"],
    );
    // Defaults filled in, the preserve-unknown-fields island kept as sent.
    let stored = c.ok(&[
        "get",
        "db",
        "main",
        "-o",
        "jsonpath={.spec.replicas} {.spec.maxReplicas} {.spec.config.nested.deep[1]}",
    ]);
    assert_eq!(stored, "1 5 2");
    let table = c.ok(&["get", "db", "-o", "wide"]);
    contains_all(
        &table,
        &["ENGINE", "REPLICAS", "STORAGE", "main", "postgres", "10Gi"],
    );
    contains_all(&c.ok(&["get", "acme"]), &["database.acme.example.com/main"]);
    contains_all(
        &c.ok(&["explain", "db.spec.storage"]),
        &["Where the data lives.", "volumes", "<[]Object>"],
    );
    contains_all(
        &c.ok(&["describe", "db", "main"]),
        &["Engine:", "postgres", "Claim Name:", "pvc-1"],
    );

    // Invalid objects are refused naming the field, and nothing is stored.
    let bad = DATABASE
        .replace("name: main", "name: bad")
        .replace("engine: postgres", "engine: oracle\n  replicas: -1")
        .replace("size: 10Gi", "size: ten");
    let output = c.run_with_input(&["apply", "--validate=false", "-f", "-"], &bad);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    contains_all(
        &stderr,
        &[
            "spec.engine: Unsupported value: \"oracle\"",
            "spec.replicas: Invalid value: -1",
            "spec.storage.size",
        ],
    );
    let over = DATABASE
        .replace("name: main", "name: over")
        .replace("engine: postgres", "engine: mysql\n  replicas: 9");
    let output = c.run_with_input(&["apply", "-f", "-"], &over);
    assert!(text(&output.stderr).contains("replicas may not exceed maxReplicas"));
    let unknown = DATABASE
        .replace("name: main", "name: colour")
        .replace("engine: postgres", "engine: mysql\n  colour: red");
    let output = c.run_with_input(&["apply", "-f", "-"], &unknown);
    assert!(text(&output.stderr).contains("unknown field \"spec.colour\""));
    c.refused(&["get", "db", "bad"], "not found");
    c.refused(&["get", "db", "over"], "not found");

    // Patches, the transition rule, status, wait and scale.
    c.ok(&[
        "patch",
        "db",
        "main",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    c.refused(
        &[
            "patch",
            "db",
            "main",
            "--type=merge",
            "-p",
            r#"{"spec":{"engine":"mysql"}}"#,
        ],
        "engine is immutable",
    );
    let (mut waiter, _) =
        c.watch_lines(&["wait", "--for=condition=Ready", "db/main", "--timeout=60s"]);
    c.ok(&[
        "patch",
        "db",
        "main",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"readyReplicas":2,"selector":"app=main","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert!(waiter.wait().unwrap().success(), "kubectl wait returns");
    // The most common printer column in the wild, a filter, filled as kube-apiserver
    // fills it (the first match).
    let wide = c.ok(&["get", "db", "main", "-o", "wide"]);
    let header = wide.lines().next().unwrap_or_default();
    let row = wide.lines().nth(1).unwrap_or_default();
    let cell = |name: &str| {
        let at = header
            .find(name)
            .unwrap_or_else(|| panic!("no {name} column: {wide}"));
        row[at..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(cell("CONDITION"), "True", "{wide}");
    contains_all(&c.ok(&["scale", "db", "main", "--replicas=3"]), &["scaled"]);
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/acme.example.com/v1/namespaces/default/databases/main/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=main");
    c.refused(
        &["scale", "db", "main", "--replicas=9"],
        "replicas may not exceed maxReplicas",
    );

    // Cluster-scoped, and the same object under its second served version.
    c.apply(
        "apiVersion: acme.example.com/v1\nkind: ClusterPolicy\nmetadata:\n  name: require-labels\nspec:\n  action: Enforce\n  rules: [{match: {kinds: [Pod]}}]\n",
    );
    assert_eq!(
        c.ok(&[
            "get",
            "clusterpolicies.v1beta1.acme.example.com",
            "require-labels",
            "-o",
            "jsonpath={.apiVersion} {.spec.rules[0].match.kinds[0]}",
        ]),
        "acme.example.com/v1beta1 Pod"
    );
}

#[test]
fn crds_and_their_objects_survive_a_restart_and_go_with_the_crd() {
    let mut c = with_crds();
    c.apply(DATABASE);
    c.restart();
    assert_eq!(
        c.ok(&["get", "db", "main", "-o", "jsonpath={.spec.engine}"]),
        "postgres"
    );

    let (mut watch, events) =
        c.watch_lines(&["get", "db", "-w", "--output-watch-events", "--no-headers"]);
    let added = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(added.starts_with("ADDED"), "{added}");
    c.ok(&["delete", "crd", "databases.acme.example.com"]);
    let deleted = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        deleted.starts_with("DELETED") && deleted.contains("main"),
        "{deleted}"
    );
    let _ = watch.kill();
    let gone = c.run(&["get", "db"]);
    let stderr = text(&gone.stderr);
    assert!(
        !gone.status.success()
            && (stderr.contains("could not find the requested resource")
                || stderr.contains("doesn't have a resource type")),
        "the kind is no longer served: {stderr}"
    );
    c.apply(CRDS);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/databases.acme.example.com",
    ]);
    let listed = c.run(&["get", "db"]);
    assert!(
        text(&listed.stderr).contains("No resources found"),
        "the recreated kind starts empty: {}",
        text(&listed.stdout)
    );
}

#[test]
fn konductors_own_crds_apply_unchanged_and_a_changed_one_is_refused() {
    let c = Cluster::start();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let applied = c.ok(&["apply", "-k", root.to_str().unwrap()]);
    contains_all(
        &applied,
        &[
            "customresourcedefinition.apiextensions.k8s.io/barriers.konductor.io",
            "clusterrole.rbac.authorization.k8s.io/konductor-operator created",
            "deployment.apps/konductor-operator created",
        ],
    );
    let again = c.ok(&["apply", "-k", root.to_str().unwrap()]);
    contains_all(
        &again,
        &["customresourcedefinition.apiextensions.k8s.io/barriers.konductor.io unchanged"],
    );
    let barriers = std::fs::read_to_string(root.join("crd/barriers.konductor.io.yaml")).unwrap();
    let changed = barriers.replacen("    - bar\n", "    - bx\n", 1);
    assert_ne!(changed, barriers, "the fixture edit applies");
    let output = c.run_with_input(&["apply", "-f", "-"], &changed);
    contains_all(
        &text(&output.stderr),
        &["spec.names.shortNames[0]", "built into this server"],
    );
    c.refused(
        &["delete", "crd", "barriers.konductor.io"],
        "built into this server",
    );
    assert_eq!(
        c.ok(&[
            "get",
            "crd",
            "barriers.konductor.io",
            "-o",
            "jsonpath={.spec.names.shortNames[0]}"
        ]),
        "bar"
    );
}

#[test]
fn crds_that_cannot_be_served_are_refused_naming_the_field() {
    let c = Cluster::start();
    let refused = |yaml: String, expected: &[&str]| {
        let output = c.run_with_input(&["apply", "-f", "-"], &yaml);
        assert!(!output.status.success(), "accepted: {yaml}");
        contains_all(&text(&output.stderr), expected);
    };
    let database = CRDS.split("\n---\n").next().unwrap().to_owned();
    refused(
        database.replace(
            "name: databases.acme.example.com",
            "name: dbs.acme.example.com",
        ),
        &["metadata.name", "spec.names.plural+\".\"+spec.group"],
    );
    refused(
        database
            .replace(
                "name: databases.acme.example.com",
                "name: databases.konductor.io",
            )
            .replace("group: acme.example.com", "group: konductor.io"),
        &["spec.group", "served by this server's built-in types"],
    );
    refused(
        database.replace(
            "rule: self.replicas <= self.maxReplicas",
            "rule: self.replicas.frobnicate() <= self.maxReplicas",
        ),
        &[
            "x-kubernetes-validations[0].rule",
            "function \"frobnicate\" is not supported",
        ],
    );
    refused(
        database.replace(
            "  versions:\n",
            "  conversion:\n    strategy: Webhook\n  versions:\n",
        ),
        &["spec.conversion.strategy", "conversion webhooks"],
    );
    c.refused(&["get", "crd", "databases.acme.example.com"], "not found");
}

const WORKLOADS: &str = "\
apiVersion: batch/v1
kind: Job
metadata:
  name: extract
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: [sh, -c, echo hi]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  mode: fast
";

#[test]
fn jobs_and_deployments_take_their_status_from_whoever_plays_the_controller() {
    let c = Cluster::start();
    contains_all(
        &c.apply(WORKLOADS),
        &[
            "job.batch/extract created",
            "deployment.apps/web created",
            "configmap/web-config created",
        ],
    );
    let (mut watch, events) = c.watch_lines(&["get", "jobs", "-w", "--no-headers"]);
    let first = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first.starts_with("extract"), "{first}");
    let (mut waiter, _) = c.watch_lines(&[
        "wait",
        "--for=condition=Complete",
        "job/extract",
        "--timeout=60s",
    ]);
    c.ok(&[
        "patch",
        "job",
        "extract",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}"#,
    ]);
    let changed = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        changed.starts_with("extract") && changed.contains(" 1 "),
        "{changed}"
    );
    let _ = watch.kill();
    assert!(waiter.wait().unwrap().success(), "kubectl wait returns");

    // A spec change moves the generation; the status says which one it observed.
    c.ok(&["scale", "deployment", "web", "--replicas=3"]);
    let (mut watch, events) = c.watch_lines(&["get", "deployments", "-w", "--no-headers"]);
    let first = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first.starts_with("web"), "{first}");
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"observedGeneration":1,"readyReplicas":2,"availableReplicas":2,"updatedReplicas":2}}"#,
    ]);
    let changed = events.recv_timeout(Duration::from_secs(30)).unwrap();
    let columns: Vec<&str> = changed.split_whitespace().collect();
    assert_eq!(columns[..4], ["web", "2", "2", "2"], "{changed}");
    let _ = watch.kill();
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.generation} {.status.observedGeneration} {.spec.replicas}",
        ]),
        "2 1 3"
    );
    c.ok(&["create", "configmap", "settings", "--from-literal=a=b"]);
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.a}"]),
        "b"
    );
}
