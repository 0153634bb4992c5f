//! Gates that resume suspended Jobs, on a `konductor server` process driven with the
//! real kubectl: a suspended Job that opted in is resumed when its Gate opens (and
//! marked), one without the opt-in is reported and left suspended, one that was never
//! suspended ran unordered, one re-created under a resumed name is not resumed, one
//! created after the Gate opened is resumed when it appears, a Gate that fails or times
//! out resumes nothing, and a Gate may not resume what it waits on; kinds outside the
//! configured list, Kueue-managed Jobs and other namespaces are refused; and a server
//! killed between the Gate's Open and the resume resumes once after its restart.

mod common;

use common::kubectl::Cluster;

/// A Job named `name`, suspended or not, opted in to be resumed by `gate` (if any).
fn job(name: &str, suspend: bool, resume_by: Option<&str>) -> String {
    let annotations = resume_by.map_or(String::new(), |gate| {
        format!("\n  annotations: {{konductor.io/resume-by: {gate}}}")
    });
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}{annotations}\nspec:\n  suspend: {suspend}\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: busybox}}]\n"
    )
}

/// A Gate `name` on Job `on`'s completion, resuming the Jobs `resume`.
fn gate(name: &str, on: &str, resume: &[&str]) -> String {
    let targets: Vec<String> = resume
        .iter()
        .map(|j| format!("{{apiVersion: batch/v1, kind: Job, name: {j}}}"))
        .collect();
    gate_of(name, on, &targets, "")
}

/// A Gate `name` on Job `on`'s completion, resuming `targets` (YAML flow mappings),
/// with `more` spec lines.
fn gate_of(name: &str, on: &str, targets: &[String], more: &str) -> String {
    let targets: String = targets.iter().map(|t| format!("\n  - {t}")).collect();
    format!(
        "apiVersion: konductor.io/v1\nkind: Gate\nmetadata: {{name: {name}}}\nspec:\n  conditions:\n  - ref: {{apiVersion: batch/v1, kind: Job, name: {on}}}\n{more}  resume:{targets}\n"
    )
}

/// Waits (bounded) until `jsonpath` of `object` is `value`.
fn until(c: &Cluster, object: &str, jsonpath: &str, value: &str) {
    c.ok(&[
        "wait",
        &format!("--for=jsonpath={{{jsonpath}}}={value}"),
        object,
        "--timeout=60s",
    ]);
}

fn field(c: &Cluster, object: &str, path: &str) -> String {
    let (kind, name) = object.split_once('/').unwrap();
    c.ok(&["get", kind, name, "-o", &format!("jsonpath={{{path}}}")])
}

#[test]
fn an_open_gate_resumes_the_jobs_that_opted_in_and_reports_the_others() {
    let c = Cluster::start();
    c.apply(&job("a", false, None));
    c.apply(&job("b", true, Some("after-a")));
    c.apply(&job("stranger", true, None));
    c.apply(&job("eager", false, Some("after-a")));
    c.apply(&gate("after-a", "a", &["b", "stranger", "eager"]));
    // Nothing is resumed while the Gate waits.
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.resume[0].uid}",
        "gate/after-a",
        "--timeout=60s",
    ]);
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "true");

    c.finish_job("a", "Complete");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.resume[0].state}=Resumed",
        "gate/after-a",
        "--timeout=60s",
    ]);
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "false");
    let mark = field(
        &c,
        "job/b",
        ".metadata.annotations.konductor\\.io/resumed-by",
    );
    assert!(mark.starts_with("after-a at "), "{mark}");
    // No opt-in: reported, never patched.
    assert_eq!(
        field(&c, "gate/after-a", ".status.resume[1].state"),
        "Refused"
    );
    let why = field(&c, "gate/after-a", ".status.resume[1].message");
    assert!(why.contains("konductor.io/resume-by"), "{why}");
    assert_eq!(field(&c, "job/stranger", ".spec.suspend"), "true");
    // Never suspended: it ran unordered, and is not patched.
    assert_eq!(
        field(&c, "gate/after-a", ".status.resume[2].state"),
        "RanUnordered"
    );
    assert_eq!(
        field(
            &c,
            "job/eager",
            ".metadata.annotations.konductor\\.io/resumed-by"
        ),
        ""
    );

    // A Job re-created under b's name after the resume is never resumed; a target
    // added once the Gate is Open is resumed when it appears.
    c.ok(&["delete", "job", "b"]);
    c.apply(&job("b", true, Some("after-a")));
    c.apply(&gate("after-a", "a", &["b", "stranger", "eager", "later"]));
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.resume[3].message}=waiting for it to be created",
        "gate/after-a",
        "--timeout=60s",
    ]);
    assert_eq!(
        field(&c, "gate/after-a", ".status.resume[0].state"),
        "Resumed"
    );
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "true");
    c.apply(&job("later", true, Some("after-a")));
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.resume[3].state}=Resumed",
        "gate/after-a",
        "--timeout=60s",
    ]);
    assert_eq!(field(&c, "job/later", ".spec.suspend"), "false");
}

#[test]
fn a_failed_gate_resumes_nothing_and_a_gate_cannot_resume_what_it_waits_on() {
    let c = Cluster::start();
    c.apply(&job("a", false, None));
    c.apply(&job("b", true, Some("after-a")));
    c.apply(&gate("after-a", "a", &["b"]));
    c.finish_job("a", "Failed");
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "gate/after-a",
        "--timeout=60s",
    ]);
    c.ok(&[
        "wait",
        "--for=jsonpath={.status.resume[0].message}=the Gate failed: not resumed",
        "gate/after-a",
        "--timeout=60s",
    ]);
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "true");

    let own = c.write("self.yaml", &gate("self", "a", &["a"]));
    c.refused(
        &["apply", "-f", own.to_str().unwrap()],
        "the Gate cannot resume an object it waits on",
    );
}

#[test]
fn a_gate_that_times_out_resumes_nothing() {
    let c = Cluster::start();
    c.apply(&job("a", false, None));
    c.apply(&job("b", true, Some("after-a")));
    c.apply(&gate_of(
        "after-a",
        "a",
        &["{apiVersion: batch/v1, kind: Job, name: b}".into()],
        "  timeout: 1s\n",
    ));
    until(&c, "gate/after-a", ".status.phase", "Timeout");
    until(
        &c,
        "gate/after-a",
        ".status.resume[0].message",
        "the Gate timed out: not resumed",
    );
    // A itself completing later changes nothing: Timeout latches.
    c.finish_job("a", "Complete");
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "true");
    assert_eq!(field(&c, "gate/after-a", ".status.phase"), "Timeout");
}

#[test]
fn kinds_outside_the_list_kueue_jobs_and_other_namespaces_are_refused() {
    let c = Cluster::start_with(&["--resume-kinds", "migrations.ops.example.com"]);
    let crd =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/migration-crd.yaml");
    c.ok(&["apply", "-f", crd.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/migrations.ops.example.com",
        "--timeout=60s",
    ]);
    c.apply(&job("a", false, None));
    c.apply(&job("queued", true, Some("after-a")).replace(
        "  annotations:",
        "  labels: {kueue.x-k8s.io/queue-name: team-a}\n  annotations:",
    ));
    c.ok(&["create", "configmap", "settings"]);
    c.apply(
        "apiVersion: ops.example.com/v1\nkind: Migration\nmetadata:\n  name: schema\n  annotations: {konductor.io/resume-by: after-a}\nspec: {suspend: true}\n",
    );
    c.apply(&gate_of(
        "after-a",
        "a",
        &[
            "{apiVersion: batch/v1, kind: Job, name: queued}".into(),
            "{apiVersion: v1, kind: ConfigMap, name: settings}".into(),
            "{apiVersion: ops.example.com/v1, kind: Migration, name: schema}".into(),
        ],
        "",
    ));
    // A kind outside the list is refused at once, naming the flag that adds one.
    until(&c, "gate/after-a", ".status.resume[1].state", "Refused");
    let why = field(&c, "gate/after-a", ".status.resume[1].message");
    assert!(
        why.contains("configmaps is not a kind this controller resumes")
            && why.contains("--resume-kinds"),
        "{why}"
    );
    c.finish_job("a", "Complete");
    // A kind added by configuration is resumed like a Job.
    until(&c, "gate/after-a", ".status.resume[2].state", "Resumed");
    assert_eq!(field(&c, "migration/schema", ".spec.suspend"), "false");
    // Kueue owns a queued Job's suspension.
    until(&c, "gate/after-a", ".status.resume[0].state", "Refused");
    let why = field(&c, "gate/after-a", ".status.resume[0].message");
    assert!(why.contains("Kueue"), "{why}");
    assert_eq!(field(&c, "job/queued", ".spec.suspend"), "true");
    // A Warning Event says each refusal; the resume has its own Event on the Gate and
    // on the object.
    let events = c.ok(&["get", "events", "-o", "jsonpath={range .items[*]}{.reason} {.involvedObject.kind}/{.involvedObject.name}{\"\\n\"}{end}"]);
    for line in [
        "NotResumed Gate/after-a",
        "Resumed Gate/after-a",
        "ResumedByGate Migration/schema",
    ] {
        assert!(
            events.lines().any(|l| l == line),
            "no {line:?} in:\n{events}"
        );
    }

    // There is no namespace field: a target elsewhere cannot even be written.
    let elsewhere = c.write(
        "elsewhere.yaml",
        &gate_of(
            "elsewhere",
            "a",
            &["{apiVersion: batch/v1, kind: Job, name: b, namespace: other}".into()],
            "",
        ),
    );
    c.refused(
        &["apply", "-f", elsewhere.to_str().unwrap()],
        "unknown field \"spec.resume[0].namespace\"",
    );
}

#[test]
fn one_file_with_the_suspended_job_and_its_gate_applies_in_either_order() {
    let c = Cluster::start();
    c.apply(&job("a", false, None));
    let job_first = format!(
        "{}---\n{}",
        job("b", true, Some("after-a")),
        gate("after-a", "a", &["b"])
    );
    c.apply(&job_first);
    let gate_first = format!(
        "{}---\n{}",
        gate("after-b", "a", &["c"]),
        job("c", true, Some("after-b"))
    );
    c.apply(&gate_first);
    until(
        &c,
        "gate/after-b",
        ".status.resume[0].message",
        "waiting for the Gate to open",
    );
    c.finish_job("a", "Complete");
    until(&c, "gate/after-a", ".status.resume[0].state", "Resumed");
    until(&c, "gate/after-b", ".status.resume[0].state", "Resumed");
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "false");
    assert_eq!(field(&c, "job/c", ".spec.suspend"), "false");
}

/// Job `b`'s resumed-by mark and resourceVersion.
fn mark_and_version(c: &Cluster, job: &str) -> (String, String) {
    (
        field(
            c,
            &format!("job/{job}"),
            ".metadata.annotations.konductor\\.io/resumed-by",
        ),
        field(c, &format!("job/{job}"), ".metadata.resourceVersion"),
    )
}

#[test]
fn a_server_killed_between_the_gates_open_and_the_resume_resumes_once_after_restart() {
    // The state a controller leaves when it dies right after writing Open: set up on a
    // server without its controller, the Gate's Open status written as it would have.
    let mut c = Cluster::start_with(&["--no-controller"]);
    c.apply(&job("a", false, None));
    c.finish_job("a", "Complete");
    c.apply(&job("b", true, Some("after-a")));
    c.apply(&gate("after-a", "a", &["b"]));
    c.ok(&[
        "patch",
        "gate",
        "after-a",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Open","met":1,"total":1,"required":1}}"#,
    ]);
    // kill -9, and back with its controller: b is resumed, marked once.
    c.restart_with(&[]);
    until(&c, "gate/after-a", ".status.resume[0].state", "Resumed");
    assert_eq!(field(&c, "job/b", ".spec.suspend"), "false");
    assert_eq!(field(&c, "job/b", ".metadata.generation"), "2");
    let (mark, version) = mark_and_version(&c, "b");
    assert!(mark.starts_with("after-a at "), "{mark}");

    // Killed again and restarted, the controller looks at the Gate again (a target
    // added meanwhile proves it did) and leaves b as it was: the mark is written once.
    c.apply(&job("c", true, Some("after-a")));
    c.restart();
    c.apply(&gate("after-a", "a", &["b", "c"]));
    until(&c, "gate/after-a", ".status.resume[1].state", "Resumed");
    assert_eq!(mark_and_version(&c, "b"), (mark, version));

    // Killed at whatever point the controller has reached just after the condition is
    // met: the resume still happens, exactly once.
    for round in 0..3 {
        let (on, target, name) = (
            format!("on-{round}"),
            format!("t-{round}"),
            format!("g-{round}"),
        );
        c.apply(&job(&on, false, None));
        c.apply(&job(&target, true, Some(&name)));
        c.apply(&gate(&name, &on, &[&target]));
        until(
            &c,
            &format!("gate/{name}"),
            ".status.resume[0].message",
            "waiting for the Gate to open",
        );
        c.finish_job(&on, "Complete");
        c.restart();
        until(
            &c,
            &format!("gate/{name}"),
            ".status.resume[0].state",
            "Resumed",
        );
        assert_eq!(
            field(&c, &format!("job/{target}"), ".spec.suspend"),
            "false"
        );
        assert_eq!(
            field(&c, &format!("job/{target}"), ".metadata.generation"),
            "2"
        );
    }
}
