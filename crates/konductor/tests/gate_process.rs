//! Gates on a `konductor server` process, driven with the real kubectl: a Gate on a CRD
//! applied at run time (the server's controller may read every kind it serves), Gates across `kill -9`
//! of the server — one still waiting opens when its Job completes after the restart, one
//! Open stays Open after its Jobs are deleted — and a malformed `--gate-kinds` refused.

mod common;

use common::kubectl::{Cluster, text};

/// A kind defined at run time by a CRD: status fields free-form.
const MIGRATION_CRD: &str = include_str!("fixtures/migration-crd.yaml");

const GATES: &str = "\
apiVersion: konductor.io/v1
kind: Gate
metadata: {name: jobs}
spec:
  conditions:
  - ref: {apiVersion: batch/v1, kind: Job, name: a}
  - ref: {apiVersion: batch/v1, kind: Job, name: b}
---
apiVersion: konductor.io/v1
kind: Gate
metadata: {name: schema}
spec:
  conditions:
  - ref: {apiVersion: ops.example.com/v1, kind: Migration, name: m1}
    jsonPath: '{.status.phase}'
    value: Done
";

fn job(name: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: busybox}}]\n"
    )
}

fn phase(c: &Cluster, gate: &str) -> String {
    c.ok(&["get", "gate", gate, "-o", "jsonpath={.status.phase}"])
}

#[test]
fn gates_survive_kill_9_of_the_server_and_open_on_a_crd_applied_at_run_time() {
    let mut c = Cluster::start_with(&[]);
    c.apply(GATES);
    c.apply(&job("a"));
    c.apply(&job("b"));
    c.finish_job("a", "Complete");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.met}=1",
        "gate/jobs",
        "--timeout=60s",
    ]);

    // The server dies without a word; b completes after it is back.
    c.restart();
    c.finish_job("b", "Complete");
    c.ok(&["wait", "--for=condition=Open", "gate/jobs", "--timeout=60s"]);

    // Open latches, across another kill -9 too.
    c.ok(&["delete", "job", "a", "b"]);
    c.restart();
    c.apply(&job("a"));
    assert_eq!(phase(&c, "jobs"), "Open");

    // The Migration kind did not exist when the Gate was created.
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.total}=1",
        "gate/schema",
        "--timeout=60s",
    ]);
    let waiting = c.ok(&[
        "get",
        "gate",
        "schema",
        "-o",
        "jsonpath={.status.results[0].message}",
    ]);
    assert!(waiting.contains("not served"), "{waiting}");
    c.apply(MIGRATION_CRD);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/migrations.ops.example.com",
        "--timeout=30s",
    ]);
    c.apply(
        "apiVersion: ops.example.com/v1\nkind: Migration\nmetadata: {name: m1}\nspec: {to: 7}\n",
    );
    c.ok(&[
        "patch",
        "migration",
        "m1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Done"}}"#,
    ]);
    c.ok(&[
        "wait",
        "--for=condition=Open",
        "gate/schema",
        "--timeout=60s",
    ]);
    let table = c.ok(&["get", "gates"]);
    assert!(
        table.lines().filter(|l| l.contains("Open")).count() == 2,
        "{table}"
    );
}

#[test]
fn a_malformed_gate_kinds_flag_is_refused_naming_it() {
    let output = common::konductor()
        .args(["operator", "--gate-kinds", "jobs*"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--gate-kinds") && stderr.contains("jobs*"),
        "{stderr}"
    );
}
