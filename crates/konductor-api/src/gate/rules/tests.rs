//! One test per test type, preset and option of the Gate rules, and property tests:
//! Open latches, `Any` vs `All`, a stale generation never counts.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::gate::ConditionStatus;
use crate::gate::{ConditionTest, GateCondition, TargetRef};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn target(api_version: &str, kind: &str, name: &str) -> TargetRef {
    TargetRef {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn job(name: &str) -> TargetRef {
    target("batch/v1", "Job", name)
}

fn on(target: TargetRef) -> GateCondition {
    GateCondition {
        target,
        ..GateCondition::default()
    }
}

fn spec(conditions: Vec<GateCondition>) -> GateSpec {
    GateSpec {
        conditions,
        ..GateSpec::default()
    }
}

/// A Job with these conditions (`(type, status)`).
fn job_object(conditions: &[(&str, &str)]) -> Value {
    json!({
        "metadata": {"name": "j", "resourceVersion": "7", "generation": 1},
        "status": {"conditions": conditions.iter().map(|(t, s)| json!({"type": t, "status": s})).collect::<Vec<_>>()}
    })
}

fn deployment(generation: i64, observed: Option<i64>, available: &str) -> Value {
    let mut status = json!({"conditions": [{"type": "Available", "status": available}]});
    if let Some(observed) = observed {
        status["observedGeneration"] = json!(observed);
    }
    json!({"metadata": {"name": "web", "resourceVersion": "3", "generation": generation}, "status": status})
}

fn phase_object(phase: &str) -> Value {
    json!({"metadata": {"name": "x", "resourceVersion": "1", "generation": 1}, "status": {"phase": phase}})
}

struct Run<'a> {
    spec: &'a GateSpec,
    previous: Option<GateStatus>,
}

impl Run<'_> {
    fn step(&mut self, observed: &Observations, now: Timestamp) -> Evaluation {
        let evaluation = evaluate(&GateInput {
            spec: self.spec,
            generation: Some(1),
            created_at: at(0),
            previous: self.previous.as_ref(),
            observed,
            now,
        });
        self.previous = Some(evaluation.status.clone());
        evaluation
    }
}

fn once(spec: &GateSpec, observed: &[(TargetRef, Observed)], now: Timestamp) -> Evaluation {
    Run {
        spec,
        previous: None,
    }
    .step(&observed.iter().cloned().collect(), now)
}

#[test]
fn a_job_preset_opens_on_complete_and_never_on_succeeded_alone() {
    let spec = spec(vec![on(job("migrate"))]);
    let succeeded = json!({"metadata": {"name": "migrate", "resourceVersion": "4"}, "status": {"succeeded": 1}});
    let evaluation = once(
        &spec,
        &[(job("migrate"), Observed::Present(succeeded))],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    assert!(
        evaluation.status.results[0]
            .message
            .contains("no Complete condition")
    );
    let complete = job_object(&[("Complete", "True")]);
    let evaluation = once(
        &spec,
        &[(job("migrate"), Observed::Present(complete))],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Open);
    assert_eq!(evaluation.transition, Some(Transition::Opened));
    assert_eq!(
        evaluation.status.results[0]
            .observed_resource_version
            .as_deref(),
        Some("7")
    );
    assert_eq!(evaluation.status.opened_at, Some(MicroTime(at(1))));
    assert!(!evaluation.also.0);
}

#[test]
fn a_failed_job_fails_the_gate_at_once() {
    let spec = spec(vec![on(job("a")), on(job("b"))]);
    let evaluation = once(
        &spec,
        &[(
            job("a"),
            Observed::Present(job_object(&[("Failed", "True")])),
        )],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Failed);
    assert_eq!(evaluation.transition, Some(Transition::Failed));
    assert!(
        evaluation.status.summary().contains("job/a failed"),
        "{}",
        evaluation.status.summary()
    );
}

#[test]
fn with_any_a_failed_job_fails_the_gate_only_when_nothing_else_can_open_it() {
    let mut any = spec(vec![on(job("a")), on(job("b"))]);
    any.match_ = GateMatch::Any;
    let failed = Observed::Present(job_object(&[("Failed", "True")]));
    let evaluation = once(&any, &[(job("a"), failed.clone())], at(1));
    assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    let evaluation = once(
        &any,
        &[(job("a"), failed.clone()), (job("b"), failed)],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Failed);
}

#[test]
fn a_deployment_counts_only_when_its_status_has_caught_up_with_its_spec() {
    let web = target("apps/v1", "Deployment", "web");
    let spec = spec(vec![on(web.clone())]);
    for (object, open) in [
        (deployment(2, Some(1), "True"), false),
        (deployment(2, None, "True"), false),
        (deployment(2, Some(2), "False"), false),
        (deployment(2, Some(2), "True"), true),
    ] {
        let evaluation = once(
            &spec,
            &[(web.clone(), Observed::Present(object.clone()))],
            at(1),
        );
        assert_eq!(evaluation.status.phase == GatePhase::Open, open, "{object}");
    }
    let stale = once(
        &spec,
        &[(
            web.clone(),
            Observed::Present(deployment(2, Some(1), "True")),
        )],
        at(1),
    );
    assert!(stale.status.results[0].message.contains("behind its spec"));
}

#[test]
fn require_observed_generation_false_accepts_a_stale_status() {
    let web = target("apps/v1", "Deployment", "web");
    let mut condition = on(web.clone());
    condition.require_observed_generation = Some(false);
    let evaluation = once(
        &spec(vec![condition]),
        &[(web, Observed::Present(deployment(2, Some(1), "True")))],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Open);
}

#[test]
fn a_condition_test_checks_type_status_reason_and_the_conditions_own_generation() {
    let db = target("acme.example.com/v1", "Database", "db");
    let mut condition = on(db.clone());
    condition.condition = Some(ConditionTest {
        type_: "Ready".into(),
        status: Some(ConditionStatus::False),
        reason: Some("Paused".into()),
    });
    let spec = spec(vec![condition]);
    let object = |status: &str, reason: &str, observed: i64| {
        json!({"metadata": {"generation": 3}, "status": {"conditions": [
            {"type": "Ready", "status": status, "reason": reason, "observedGeneration": observed}]}})
    };
    for (object, open) in [
        (object("False", "Paused", 3), true),
        (object("False", "Other", 3), false),
        (object("True", "Paused", 3), false),
        (object("False", "Paused", 2), false),
    ] {
        let evaluation = once(
            &spec,
            &[(db.clone(), Observed::Present(object.clone()))],
            at(1),
        );
        assert_eq!(evaluation.status.phase == GatePhase::Open, open, "{object}");
    }
}

#[test]
fn json_path_tests_exists_equals_and_in() {
    let db = target("acme.example.com/v1", "Database", "db");
    let with = |op: Option<JsonPathOp>, value: Option<&str>, values: &[&str]| {
        let mut condition = on(db.clone());
        condition.json_path = Some("{.status.endpoint}".into());
        condition.op = op;
        condition.value = value.map(str::to_owned);
        condition.values = values.iter().map(|v| (*v).to_owned()).collect();
        spec(vec![condition])
    };
    let object = Observed::Present(json!({"status": {"endpoint": "db:5432"}}));
    let empty = Observed::Present(json!({"status": {"endpoint": null}}));
    let cases = [
        (with(None, None, &[]), &object, true),
        (with(Some(JsonPathOp::Exists), None, &[]), &empty, false),
        (with(None, Some("db:5432"), &[]), &object, true),
        (
            with(Some(JsonPathOp::Equals), Some("db:1"), &[]),
            &object,
            false,
        ),
        (with(None, None, &["x", "db:5432"]), &object, true),
        (
            with(Some(JsonPathOp::In), None, &["x", "y"]),
            &object,
            false,
        ),
    ];
    for (spec, observed, open) in cases {
        let evaluation = once(&spec, &[(db.clone(), observed.clone())], at(1));
        assert_eq!(
            evaluation.status.phase == GatePhase::Open,
            open,
            "{:?} on {observed:?}",
            spec.conditions[0]
        );
    }
}

#[test]
fn our_kinds_open_by_phase_and_fail_by_phase() {
    for (kind, open, failed) in [
        ("Barrier", "Open", Some("Timeout")),
        ("Once", "Succeeded", Some("Failed")),
        ("WaitGroup", "Done", Some("Failed")),
        ("Gate", "Open", Some("Failed")),
        ("Mutex", "Unlocked", None),
        ("RWMutex", "Unlocked", None),
        ("Semaphore", "Available", None),
    ] {
        let reference = target("konductor.io/v1", kind, "x");
        let spec = spec(vec![on(reference.clone())]);
        let evaluation = once(
            &spec,
            &[(reference.clone(), Observed::Present(phase_object(open)))],
            at(1),
        );
        assert_eq!(evaluation.status.phase, GatePhase::Open, "{kind}");
        let evaluation = once(
            &spec,
            &[(reference.clone(), Observed::Present(phase_object("Other")))],
            at(1),
        );
        assert_eq!(evaluation.status.phase, GatePhase::Waiting, "{kind}");
        if let Some(failed) = failed {
            let evaluation = once(
                &spec,
                &[(reference, Observed::Present(phase_object(failed)))],
                at(1),
            );
            assert_eq!(evaluation.status.phase, GatePhase::Failed, "{kind}");
        }
    }
}

#[test]
fn stable_for_meets_a_condition_only_after_it_held_without_a_break() {
    let mut condition = on(job("a"));
    condition.stable_for = Some("30s".into());
    let spec = spec(vec![condition]);
    let complete = Observed::Present(job_object(&[("Complete", "True")]));
    let pending = Observed::Present(job_object(&[]));
    let mut run = Run {
        spec: &spec,
        previous: None,
    };
    let first = run.step(
        &[(job("a"), complete.clone())].into_iter().collect(),
        at(10),
    );
    assert_eq!(first.status.phase, GatePhase::Waiting);
    assert_eq!(first.requeue_after, Some(Duration::from_secs(30)));
    let broken = run.step(&[(job("a"), pending)].into_iter().collect(), at(20));
    assert_eq!(broken.status.results[0].since, None);
    let again = run.step(
        &[(job("a"), complete.clone())].into_iter().collect(),
        at(25),
    );
    assert_eq!(again.status.phase, GatePhase::Waiting);
    let early = run.step(
        &[(job("a"), complete.clone())].into_iter().collect(),
        at(50),
    );
    assert_eq!(early.status.phase, GatePhase::Waiting);
    assert_eq!(early.requeue_after, Some(Duration::from_secs(5)));
    let stable = run.step(&[(job("a"), complete)].into_iter().collect(), at(55));
    assert_eq!(stable.status.phase, GatePhase::Open);
}

#[test]
fn when_missing_waits_or_fails_and_a_met_condition_survives_deletion() {
    let waiting = spec(vec![on(job("a")), on(job("b"))]);
    let evaluation = once(&waiting, &[(job("a"), Observed::Missing)], at(1));
    assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    assert!(
        evaluation.status.results[0]
            .message
            .contains("to be created")
    );

    let mut failing = on(job("a"));
    failing.when_missing = Some(WhenMissing::Fail);
    let evaluation = once(
        &spec(vec![failing]),
        &[(job("a"), Observed::Missing)],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Failed);

    // Job a is deleted before it completes: said so, and waited for again.
    let mut run = Run {
        spec: &waiting,
        previous: None,
    };
    run.step(
        &[(job("a"), Observed::Present(job_object(&[])))]
            .into_iter()
            .collect(),
        at(1),
    );
    let gone = run.step(
        &[(job("a"), Observed::Missing)].into_iter().collect(),
        at(2),
    );
    assert!(
        gone.status.results[0]
            .message
            .contains("deleted before it was met")
    );
    let still = run.step(
        &[(job("a"), Observed::Missing)].into_iter().collect(),
        at(3),
    );
    assert_eq!(still.status, gone.status);

    // Job a completes, then its TTL deletes it before job b completes.
    let mut run = Run {
        spec: &waiting,
        previous: None,
    };
    let complete = Observed::Present(job_object(&[("Complete", "True")]));
    run.step(&[(job("a"), complete.clone())].into_iter().collect(), at(1));
    let deleted = run.step(
        &[(job("a"), Observed::Missing)].into_iter().collect(),
        at(2),
    );
    assert!(
        deleted.status.results[0].met,
        "{:?}",
        deleted.status.results[0]
    );
    let open = run.step(
        &[(job("a"), Observed::Missing), (job("b"), complete)]
            .into_iter()
            .collect(),
        at(3),
    );
    assert_eq!(open.status.phase, GatePhase::Open);
}

#[test]
fn fail_when_fails_the_gate_as_soon_as_it_holds() {
    let db = target("acme.example.com/v1", "Database", "db");
    let mut failure = on(db.clone());
    failure.json_path = Some(".status.phase".into());
    failure.value = Some("Broken".into());
    let mut spec = spec(vec![on(job("a"))]);
    spec.fail_when = vec![failure];
    let evaluation = once(
        &spec,
        &[(db.clone(), Observed::Present(phase_object("Healthy")))],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    let evaluation = once(
        &spec,
        &[(db, Observed::Present(phase_object("Broken")))],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Failed);
    assert!(evaluation.status.summary().starts_with("failWhen matched"));
}

#[test]
fn min_met_opens_on_that_many_conditions() {
    let mut spec = spec(vec![on(job("a")), on(job("b")), on(job("c"))]);
    spec.min_met = Some(2);
    let complete = Observed::Present(job_object(&[("Complete", "True")]));
    let one = once(&spec, &[(job("a"), complete.clone())], at(1));
    assert_eq!(
        (one.status.phase, one.status.required),
        (GatePhase::Waiting, 2)
    );
    let two = once(
        &spec,
        &[(job("a"), complete.clone()), (job("c"), complete)],
        at(1),
    );
    assert_eq!(two.status.phase, GatePhase::Open);
}

#[test]
fn the_deadline_times_the_gate_out_and_requeues_until_then() {
    let mut spec = spec(vec![on(job("a"))]);
    spec.timeout = Some("1m".into());
    let before = once(&spec, &[], at(20));
    assert_eq!(before.status.phase, GatePhase::Waiting);
    assert_eq!(before.requeue_after, Some(Duration::from_secs(40)));
    let after = once(&spec, &[], at(60));
    assert_eq!(after.status.phase, GatePhase::Timeout);
    assert_eq!(after.transition, Some(Transition::TimedOut));
}

#[test]
fn the_override_opens_holds_closed_and_re_arms() {
    let mut spec = spec(vec![on(job("a"))]);
    let complete = Observed::Present(job_object(&[("Complete", "True")]));
    spec.override_ = Some(GateOverride::Open);
    let mut run = Run {
        spec: &spec,
        previous: None,
    };
    let opened = run.step(&Observations::new(), at(1));
    assert_eq!(
        (opened.status.phase, opened.status.overridden),
        (GatePhase::Open, true)
    );
    assert!(opened.also.0);

    let mut closed = spec.clone();
    closed.override_ = Some(GateOverride::Closed);
    let mut run = Run {
        spec: &closed,
        previous: None,
    };
    let held = run.step(&[(job("a"), complete.clone())].into_iter().collect(), at(1));
    assert_eq!(held.status.phase, GatePhase::Waiting);
    assert!(held.status.summary().contains("held closed"));

    // Opened by its conditions, closed by a human, handed back: it opens again.
    let mut auto = spec.clone();
    auto.override_ = None;
    let observed: Observations = [(job("a"), complete)].into_iter().collect();
    let first = once(
        &auto,
        &observed.clone().into_iter().collect::<Vec<_>>(),
        at(1),
    );
    let reclosed = evaluate(&GateInput {
        spec: &closed,
        generation: Some(2),
        created_at: at(0),
        previous: Some(&first.status),
        observed: &observed,
        now: at(2),
    });
    assert_eq!(reclosed.status.phase, GatePhase::Waiting);
    assert_eq!(reclosed.transition, Some(Transition::Closed));
    let reopened = evaluate(&GateInput {
        spec: &auto,
        generation: Some(3),
        created_at: at(0),
        previous: Some(&reclosed.status),
        observed: &observed,
        now: at(3),
    });
    assert_eq!(reopened.status.phase, GatePhase::Open);
}

#[test]
fn an_invalid_spec_fails_the_gate_naming_the_field() {
    let pod = target("v1", "Pod", "p");
    let cases = [
        (
            spec(vec![on(pod.clone())]),
            "spec.conditions[0]: v1 Pod has no preset",
        ),
        (
            {
                let mut c = on(pod.clone());
                c.json_path = Some(".status[".into());
                spec(vec![c])
            },
            "spec.conditions[0].jsonPath",
        ),
        (
            {
                let mut c = on(pod.clone());
                c.json_path = Some(".status.phase".into());
                c.op = Some(JsonPathOp::Equals);
                spec(vec![c])
            },
            "op Equals needs value",
        ),
        (
            {
                let mut s = spec(vec![on(job("a"))]);
                s.min_met = Some(2);
                s
            },
            "spec.minMet",
        ),
    ];
    for (spec, why) in cases {
        let evaluation = once(&spec, &[], at(1));
        assert_eq!(evaluation.status.phase, GatePhase::Failed);
        assert_eq!(evaluation.transition, Some(Transition::InvalidSpec));
        assert!(
            evaluation.status.summary().contains(why),
            "{}",
            evaluation.status.summary()
        );
    }
}

#[test]
fn an_unreadable_kind_is_a_condition_message_and_not_a_verdict() {
    let db = target("acme.example.com/v1", "Database", "db");
    let mut condition = on(db.clone());
    condition.json_path = Some(".status.phase".into());
    let evaluation = once(
        &spec(vec![condition]),
        &[(
            db,
            Observed::Unreadable("the controller may not read databases.acme.example.com".into()),
        )],
        at(1),
    );
    assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    assert!(evaluation.status.summary().contains("may not read"));
}

#[test]
fn evaluating_its_own_answer_again_changes_nothing() {
    let spec = spec(vec![on(job("a")), on(job("b"))]);
    let observed: Observations = [(
        job("a"),
        Observed::Present(job_object(&[("Complete", "True")])),
    )]
    .into_iter()
    .collect();
    let mut run = Run {
        spec: &spec,
        previous: None,
    };
    let first = run.step(&observed, at(1));
    let second = run.step(&observed, at(9));
    assert_eq!(first.status, second.status);
    assert_eq!(second.transition, None);
}

/// An observation of a Job: missing, pending, complete or failed (and by how much its
/// status lags, for a Deployment).
fn any_observation() -> impl Strategy<Value = Observed> {
    prop_oneof![
        Just(Observed::Missing),
        Just(Observed::Unknown),
        Just(Observed::Present(job_object(&[]))),
        Just(Observed::Present(job_object(&[("Complete", "True")]))),
        Just(Observed::Present(job_object(&[("Complete", "False")]))),
    ]
}

proptest! {
    #[test]
    fn once_open_a_gate_stays_open_whatever_its_objects_do(
        history in proptest::collection::vec(proptest::collection::vec(any_observation(), 3), 1..12)
    ) {
        let spec = spec(vec![on(job("a")), on(job("b")), on(job("c"))]);
        let mut run = Run { spec: &spec, previous: None };
        let mut opened = false;
        for (i, step) in history.iter().enumerate() {
            let observed: Observations = ["a", "b", "c"].iter().map(|n| job(n)).zip(step.iter().cloned()).collect();
            let evaluation = run.step(&observed, at(i64::try_from(i).unwrap()));
            if opened {
                prop_assert_eq!(evaluation.status.phase, GatePhase::Open);
                prop_assert_eq!(evaluation.transition, None);
            }
            opened |= evaluation.status.phase == GatePhase::Open;
        }
    }

    #[test]
    fn any_opens_on_one_met_condition_and_all_only_on_every_one(
        complete in proptest::collection::vec(any::<bool>(), 1..6)
    ) {
        let names: Vec<String> = (0..complete.len()).map(|i| format!("j{i}")).collect();
        let observed: Observations = names.iter().zip(&complete).map(|(n, done)| {
            let status = if *done { "True" } else { "False" };
            (job(n), Observed::Present(job_object(&[("Complete", status)])))
        }).collect();
        let mut all = spec(names.iter().map(|n| on(job(n))).collect());
        let mut any = all.clone();
        any.match_ = GateMatch::Any;
        all.match_ = GateMatch::All;
        let phase = |spec: &GateSpec| once(spec, &observed.clone().into_iter().collect::<Vec<_>>(), at(1)).status.phase;
        prop_assert_eq!(phase(&all) == GatePhase::Open, complete.iter().all(|c| *c));
        prop_assert_eq!(phase(&any) == GatePhase::Open, complete.iter().any(|c| *c));
    }

    #[test]
    fn a_status_behind_its_spec_never_counts(
        generation in 1i64..10,
        lag in 1i64..5,
        on_the_condition in any::<bool>(),
    ) {
        let observed_generation = generation - lag;
        let web = target("apps/v1", "Deployment", "web");
        let db = target("acme.example.com/v1", "Database", "db");
        let mut ready = on(db.clone());
        ready.condition = Some(ConditionTest { type_: "Ready".into(), status: None, reason: None });
        let spec = spec(vec![on(web.clone()), ready]);
        let (status_generation, condition_generation) = if on_the_condition {
            (generation, observed_generation)
        } else {
            (observed_generation, generation)
        };
        let object = |kind_condition: &str| json!({
            "metadata": {"generation": generation},
            "status": {"observedGeneration": status_generation, "conditions": [
                {"type": kind_condition, "status": "True", "observedGeneration": condition_generation}]}
        });
        let evaluation = once(&spec, &[
            (web, Observed::Present(object("Available"))),
            (db, Observed::Present(object("Ready"))),
        ], at(1));
        prop_assert_eq!(evaluation.status.met, 0);
        prop_assert_eq!(evaluation.status.phase, GatePhase::Waiting);
    }
}
