//! Gates that resume suspended Jobs, on a `konductor server` process driven with the
//! real kubectl: a suspended Job that opted in is resumed when its Gate opens (and
//! marked), one without the opt-in is reported and left suspended, one that was never
//! suspended ran unordered, one re-created under a resumed name is not resumed, one
//! created after the Gate opened is resumed when it appears, a Gate that fails resumes
//! nothing, and a Gate may not resume what it waits on.

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
    let targets: String = resume
        .iter()
        .map(|j| format!("\n  - {{apiVersion: batch/v1, kind: Job, name: {j}}}"))
        .collect();
    format!(
        "apiVersion: konductor.io/v1\nkind: Gate\nmetadata: {{name: {name}}}\nspec:\n  conditions:\n  - ref: {{apiVersion: batch/v1, kind: Job, name: {on}}}\n  resume:{targets}\n"
    )
}

/// Sets Job `job`'s condition `type_` to True, as the Job controller would.
fn finish(c: &Cluster, job: &str, type_: &str) {
    c.ok(&[
        "patch",
        "job",
        job,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(r#"{{"status":{{"conditions":[{{"type":"{type_}","status":"True"}}]}}}}"#),
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

    finish(&c, "a", "Complete");
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
    finish(&c, "a", "Failed");
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
