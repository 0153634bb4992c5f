//! Tests of the barrier rules: one test per rule of `docs/semantics.md`, then properties
//! over random histories of arrivals, failures, spec edits and passing time.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::SignedDuration;
use proptest::prelude::*;

/// The barrier's creation time in every test.
fn t0() -> Timestamp {
    Timestamp::from_second(1_750_000_000).unwrap()
}

/// `t0` plus `ms` milliseconds.
fn at_ms(ms: i64) -> Timestamp {
    t0() + SignedDuration::from_millis(ms)
}

/// `t0` plus `s` seconds.
fn at(s: i64) -> Timestamp {
    at_ms(s * 1000)
}

/// A barrier under test: its spec, its arrivals and its last written status.
struct Scenario {
    spec: BarrierSpec,
    generation: i64,
    arrivals: Vec<ArrivalRecord>,
    status: Option<BarrierStatus>,
}

impl Scenario {
    fn new(spec: BarrierSpec) -> Self {
        Self {
            spec,
            generation: 1,
            arrivals: Vec::new(),
            status: None,
        }
    }

    fn arrive(&mut self, holder: &str, when: Timestamp) -> &mut Self {
        self.arrivals.push(ArrivalRecord::succeeded(holder, when));
        self
    }

    fn fail(&mut self, holder: &str, when: Timestamp) -> &mut Self {
        self.arrivals.push(ArrivalRecord::failed(holder, when));
        self
    }

    fn edit(&mut self, change: impl FnOnce(&mut BarrierSpec)) -> &mut Self {
        change(&mut self.spec);
        self.generation += 1;
        self
    }

    /// Evaluates at `now` without storing the result.
    fn peek(&self, now: Timestamp) -> Evaluation {
        evaluate(&BarrierInput {
            spec: &self.spec,
            generation: Some(self.generation),
            created_at: t0(),
            arrivals: &self.arrivals,
            previous: self.status.as_ref(),
            now,
        })
    }

    /// Evaluates at `now` and stores the status as the controller would: through the
    /// API, i.e. serialized and read back.
    fn reconcile(&mut self, now: Timestamp) -> Evaluation {
        let evaluation = self.peek(now);
        let json = serde_json::to_string(&evaluation.status).unwrap();
        self.status = Some(serde_json::from_str(&json).unwrap());
        evaluation
    }
}

fn cond<'a>(status: &'a BarrierStatus, type_: &str) -> &'a Condition {
    status.condition(type_).expect("condition present")
}

#[test]
fn waits_until_enough_have_arrived() {
    let mut b = Scenario::new(BarrierSpec::new(3));
    b.arrive("a", at(1)).arrive("b", at(2));
    let e = b.reconcile(at(3));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
    assert_eq!(e.status.arrived, 2);
    assert_eq!(e.status.arrivals, ["a", "b"]);
    assert_eq!(e.requeue_after, None, "no deadline, nothing to wake up for");
    assert_eq!(e.transition, None);
    assert_eq!(cond(&e.status, CONDITION_OPEN).reason, REASON_WAITING);
}

#[test]
fn opens_when_the_expected_number_arrive() {
    let mut b = Scenario::new(BarrierSpec::new(3));
    b.arrive("a", at(1)).arrive("b", at(2)).arrive("c", at(3));
    let e = b.reconcile(at(4));
    assert_eq!(e.status.phase, BarrierPhase::Open);
    assert_eq!(e.status.opened_at, Some(MicroTime(at(4))));
    assert_eq!(e.transition, Some(Transition::Opened));
    let open = cond(&e.status, CONDITION_OPEN);
    assert_eq!(
        (open.status.as_str(), open.reason.as_str()),
        ("True", REASON_OPENED)
    );
}

#[test]
fn opens_at_quorum_before_everyone_arrives() {
    let mut b = Scenario::new(BarrierSpec::new(10).with_quorum(7));
    for i in 0..6 {
        b.arrive(&format!("p{i}"), at(1));
    }
    assert_eq!(b.reconcile(at(2)).status.phase, BarrierPhase::Waiting);
    b.arrive("p6", at(3));
    assert_eq!(b.reconcile(at(3)).status.phase, BarrierPhase::Open);
}

#[test]
fn quorum_defaults_to_expected() {
    let mut b = Scenario::new(BarrierSpec::new(2));
    b.arrive("a", at(1));
    assert_eq!(b.reconcile(at(1)).status.phase, BarrierPhase::Waiting);
    assert_eq!(b.spec.required(), 2);
}

#[test]
fn a_holder_arriving_twice_counts_once() {
    let mut b = Scenario::new(BarrierSpec::new(2));
    b.arrive("a", at(1)).arrive("a", at(2)).arrive("a", at(3));
    let e = b.reconcile(at(4));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
    assert_eq!(e.status.arrived, 1);
    assert_eq!(e.status.arrivals, ["a"]);
}

#[test]
fn a_success_outweighs_the_same_holders_failure_reports() {
    let mut b = Scenario::new(BarrierSpec::new(2));
    b.fail("a", at(1)).arrive("a", at(2)).fail("a", at(3));
    let e = b.reconcile(at(4));
    assert_eq!((e.status.arrived, e.status.failed), (1, 0));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
}

#[test]
fn times_out_exactly_at_the_deadline_and_not_a_millisecond_before() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    let before = b.reconcile(at_ms(9_999));
    assert_eq!(before.status.phase, BarrierPhase::Waiting);
    assert_eq!(before.requeue_after, Some(Duration::from_millis(1)));
    let after = b.reconcile(at(10));
    assert_eq!(after.status.phase, BarrierPhase::Timeout);
    assert_eq!(after.transition, Some(Transition::TimedOut));
    assert_eq!(after.requeue_after, None);
    assert_eq!(cond(&after.status, CONDITION_OPEN).reason, REASON_TIMED_OUT);
}

#[test]
fn asks_to_look_again_exactly_at_the_deadline() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("1m30s"));
    let e = b.reconcile(at_ms(250));
    assert_eq!(e.requeue_after, Some(Duration::from_millis(89_750)));
    assert_eq!(e.status.lifecycle.deadline, Some(MicroTime(at(90))));
}

#[test]
fn sub_second_timeouts_work() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_timeout("500ms"));
    assert_eq!(b.reconcile(at_ms(499)).status.phase, BarrierPhase::Waiting);
    assert_eq!(b.reconcile(at_ms(500)).status.phase, BarrierPhase::Timeout);
}

#[test]
fn an_arrival_exactly_at_the_deadline_is_late() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_timeout("10s"));
    b.arrive("a", at(10));
    let e = b.reconcile(at(10));
    assert_eq!(e.status.phase, BarrierPhase::Timeout);
    assert_eq!(e.status.arrivals, ["a"], "late arrivals are still listed");
}

#[test]
fn arrivals_made_in_time_open_the_barrier_even_if_noticed_after_the_deadline() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    b.reconcile(at(2));
    b.arrive("b", at_ms(9_900));
    let e = b.reconcile(at_ms(10_050));
    assert_eq!(e.status.phase, BarrierPhase::Open);
}

#[test]
fn arrivals_after_a_timeout_are_listed_but_do_not_open_it() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    assert_eq!(b.reconcile(at(10)).status.phase, BarrierPhase::Timeout);
    b.arrive("b", at(11));
    let e = b.reconcile(at(11));
    assert_eq!(e.status.phase, BarrierPhase::Timeout);
    assert_eq!(e.status.arrivals, ["a", "b"]);
    assert_eq!(e.status.arrived, 2);
    assert_eq!(e.transition, None);
}

#[test]
fn a_timeout_stays_even_if_an_in_time_arrival_is_noticed_later() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    assert_eq!(b.reconcile(at(10)).status.phase, BarrierPhase::Timeout);
    b.arrive("b", at(9));
    assert_eq!(b.reconcile(at(12)).status.phase, BarrierPhase::Timeout);
}

#[test]
fn raising_the_timeout_revives_a_timed_out_barrier() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    b.reconcile(at(10));
    b.edit(|s| s.timeout = Some("1h".into()));
    let revived = b.reconcile(at(20));
    assert_eq!(revived.status.phase, BarrierPhase::Waiting);
    assert_eq!(revived.transition, Some(Transition::Revived));
    assert_eq!(revived.requeue_after, Some(Duration::from_secs(3600 - 20)));
    b.arrive("b", at(30));
    let opened = b.reconcile(at(30));
    assert_eq!(opened.status.phase, BarrierPhase::Open);
    assert_eq!(opened.transition, Some(Transition::Opened));
}

#[test]
fn raising_the_timeout_counts_arrivals_made_after_the_old_deadline() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1));
    b.reconcile(at(10));
    b.arrive("b", at(15));
    assert_eq!(b.reconcile(at(15)).status.phase, BarrierPhase::Timeout);
    b.edit(|s| s.timeout = Some("1m".into()));
    let e = b.reconcile(at(16));
    assert_eq!(e.status.phase, BarrierPhase::Open);
    assert_eq!(e.transition, Some(Transition::Opened));
}

#[test]
fn raising_the_timeout_not_far_enough_keeps_the_timeout() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.reconcile(at(10));
    b.edit(|s| s.timeout = Some("15s".into()));
    let e = b.reconcile(at(20));
    assert_eq!(e.status.phase, BarrierPhase::Timeout);
    assert_eq!(e.transition, None);
}

#[test]
fn removing_the_timeout_revives_a_timed_out_barrier() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.reconcile(at(10));
    b.edit(|s| s.timeout = None);
    let e = b.reconcile(at(20));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
    assert_eq!(e.status.lifecycle.deadline, None);
}

#[test]
fn open_is_sticky_whatever_happens_next() {
    let mut b = Scenario::new(BarrierSpec::new(2).with_timeout("10s"));
    b.arrive("a", at(1)).arrive("b", at(2));
    let opened = b.reconcile(at(3));
    let opened_at = opened.status.opened_at.clone();
    let open_since = cond(&opened.status, CONDITION_OPEN)
        .last_transition_time
        .clone();

    b.arrivals.clear();
    assert_eq!(
        b.reconcile(at(4)).status.phase,
        BarrierPhase::Open,
        "arrivals deleted"
    );
    b.edit(|s| s.expected = 100);
    assert_eq!(
        b.reconcile(at(5)).status.phase,
        BarrierPhase::Open,
        "expected raised"
    );
    b.fail("x", at(6)).fail("y", at(6));
    assert_eq!(
        b.reconcile(at(7)).status.phase,
        BarrierPhase::Open,
        "failures"
    );
    let late = b.reconcile(at(60));
    assert_eq!(late.status.phase, BarrierPhase::Open, "deadline passed");
    b.edit(|s| s.expected = 0);
    let invalid = b.reconcile(at(61));
    assert_eq!(
        invalid.status.phase,
        BarrierPhase::Open,
        "spec made invalid"
    );
    assert_eq!(cond(&invalid.status, CONDITION_READY).status, "False");
    assert_eq!(invalid.status.opened_at, opened_at, "openedAt is set once");
    assert_eq!(
        cond(&invalid.status, CONDITION_OPEN).last_transition_time,
        open_since
    );
    assert_eq!(invalid.transition, None);
}

#[test]
fn arrivals_after_open_are_listed_and_it_stays_open() {
    let mut b = Scenario::new(BarrierSpec::new(3).with_quorum(2));
    b.arrive("a", at(1)).arrive("b", at(2));
    b.reconcile(at(2));
    b.arrive("c", at(5)).arrive("d", at(6));
    let e = b.reconcile(at(6));
    assert_eq!(e.status.phase, BarrierPhase::Open);
    assert_eq!(e.status.arrivals, ["a", "b", "c", "d"]);
    assert_eq!(e.status.arrived, 4);
    assert_eq!(e.transition, None);
}

#[test]
fn failures_that_make_the_quorum_unreachable_fail_the_barrier() {
    let mut b = Scenario::new(BarrierSpec::new(20).with_quorum(18).with_timeout("1h"));
    b.fail("m1", at(1)).fail("m2", at(2));
    let tolerated = b.reconcile(at(3));
    assert_eq!(
        tolerated.status.phase,
        BarrierPhase::Waiting,
        "two failures allowed"
    );
    assert_eq!(tolerated.status.failed, 2);
    b.arrivals.push(ArrivalRecord {
        holder: "m3".into(),
        outcome: Outcome::Failed,
        message: Some("out of memory".into()),
        arrived_at: Some(at(4)),
    });
    let failed = b.reconcile(at(4));
    assert_eq!(failed.status.phase, BarrierPhase::Failed);
    assert_eq!(failed.transition, Some(Transition::Failed));
    assert_eq!(failed.requeue_after, None, "nothing to wait for");
    assert_eq!(failed.status.failed, 3);
    assert_eq!(
        failed.status.failures[2],
        ReportedFailure {
            holder: "m3".into(),
            message: Some("out of memory".into())
        }
    );
    let open = cond(&failed.status, CONDITION_OPEN);
    assert_eq!(open.reason, REASON_FAILED);
    assert!(open.message.contains("at most 17"), "{}", open.message);
    assert_eq!(cond(&failed.status, CONDITION_READY).status, "True");
}

#[test]
fn a_failed_barrier_stays_failed_past_its_deadline() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_timeout("10s"));
    b.fail("a", at(1));
    assert_eq!(b.reconcile(at(2)).status.phase, BarrierPhase::Failed);
    let e = b.reconcile(at(20));
    assert_eq!(e.status.phase, BarrierPhase::Failed);
    assert_eq!(e.transition, None);
}

#[test]
fn lowering_the_quorum_revives_a_failed_barrier() {
    let mut b = Scenario::new(BarrierSpec::new(3));
    b.fail("a", at(1));
    assert_eq!(b.reconcile(at(1)).status.phase, BarrierPhase::Failed);
    b.edit(|s| s.quorum = Some(2));
    let e = b.reconcile(at(2));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
    assert_eq!(e.transition, Some(Transition::Revived));
}

#[test]
fn an_invalid_spec_fails_with_ready_false_naming_the_field() {
    let cases = [
        (BarrierSpec::new(0), "spec.expected"),
        (BarrierSpec::new(-3), "spec.expected"),
        (BarrierSpec::new(3).with_quorum(0), "spec.quorum"),
        (BarrierSpec::new(3).with_quorum(4), "spec.quorum"),
        (BarrierSpec::new(3).with_timeout("soon"), "spec.timeout"),
        (BarrierSpec::new(3).with_timeout("5"), "spec.timeout"),
        (
            BarrierSpec::new(3).with_timeout("99999999h"),
            "spec.timeout",
        ),
    ];
    for (spec, field) in cases {
        let mut b = Scenario::new(spec.clone());
        b.arrive("a", at(1)).arrive("b", at(1)).arrive("c", at(1));
        let e = b.reconcile(at(2));
        assert_eq!(e.status.phase, BarrierPhase::Failed, "{spec:?}");
        assert_eq!(e.transition, Some(Transition::InvalidSpec), "{spec:?}");
        let ready = cond(&e.status, CONDITION_READY);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, REASON_INVALID_SPEC);
        assert!(ready.message.contains(field), "{}", ready.message);
        assert!(validate_spec(&spec).unwrap_err().contains(field));
    }
}

#[test]
fn fixing_an_invalid_spec_revives_the_barrier() {
    let mut b = Scenario::new(BarrierSpec::new(3).with_quorum(4));
    b.reconcile(at(1));
    b.edit(|s| s.quorum = Some(2));
    let e = b.reconcile(at(2));
    assert_eq!(e.status.phase, BarrierPhase::Waiting);
    assert_eq!(e.transition, Some(Transition::Revived));
    assert_eq!(cond(&e.status, CONDITION_READY).reason, REASON_READY);
}

#[test]
fn a_valid_spec_is_ready_as_in_the_seed() {
    let mut b = Scenario::new(BarrierSpec::new(5).with_quorum(4).with_timeout("30m"));
    let e = b.reconcile(at(1));
    let ready = cond(&e.status, CONDITION_READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "BarrierReady")
    );
    assert_eq!(ready.observed_generation, Some(1));
    assert_eq!(e.status.lifecycle.observed_generation, Some(1));
    assert_eq!(
        e.transition, None,
        "a new barrier starting to wait is not news"
    );
}

#[test]
fn conditions_keep_their_transition_time_until_their_status_changes() {
    let mut b = Scenario::new(BarrierSpec::new(3));
    let first = b.reconcile(at(1));
    let waiting_since = cond(&first.status, CONDITION_OPEN)
        .last_transition_time
        .clone();
    assert_eq!(waiting_since, Time(at(1)));
    b.arrive("a", at(5));
    let second = b.reconcile(at(5));
    let open = cond(&second.status, CONDITION_OPEN);
    assert_eq!(open.last_transition_time, waiting_since);
    assert!(
        open.message.contains("1 of 3"),
        "message updates: {}",
        open.message
    );
    b.arrive("b", at(6)).arrive("c", at(7));
    let opened = b.reconcile(at(8));
    assert_eq!(
        cond(&opened.status, CONDITION_OPEN).last_transition_time,
        Time(at(8))
    );
    assert_eq!(
        cond(&opened.status, CONDITION_READY).last_transition_time,
        Time(at(1))
    );
}

#[test]
fn observed_generation_follows_the_spec() {
    let mut b = Scenario::new(BarrierSpec::new(3));
    b.reconcile(at(1));
    b.edit(|s| s.expected = 4);
    assert_eq!(
        b.reconcile(at(2)).status.lifecycle.observed_generation,
        Some(2)
    );
}

#[test]
fn a_finished_barrier_is_deleted_exactly_its_ttl_after_it_finished() {
    let spec = BarrierSpec::new(1).with_ttl_after_finished("10s");
    let mut b = Scenario::new(spec);
    let waiting = b.reconcile(at(1));
    assert_eq!(waiting.status.lifecycle.finished_at, None);
    assert_eq!(
        waiting.delete_after, None,
        "a waiting barrier never expires"
    );
    b.arrive("a", at(2));
    let opened = b.reconcile(at(3));
    assert_eq!(opened.status.lifecycle.finished_at, opened.status.opened_at);
    assert_eq!(opened.delete_after, Some(Duration::from_secs(10)));
    // The finish time stays; the deletion comes closer, and is due exactly at it.
    assert_eq!(
        b.reconcile(at(12)).delete_after,
        Some(Duration::from_millis(1000))
    );
    assert_eq!(b.reconcile(at(13)).delete_after, Some(Duration::ZERO));
    assert_eq!(
        b.peek(at(13)).status.lifecycle.finished_at.map(|t| t.0),
        Some(at(3))
    );
}

#[test]
fn a_timeout_finishes_at_the_deadline_and_a_failure_when_it_is_seen() {
    let mut timed_out = Scenario::new(
        BarrierSpec::new(2)
            .with_timeout("5s")
            .with_ttl_after_finished("1m"),
    );
    let late_look = timed_out.reconcile(at(7));
    assert_eq!(late_look.status.phase, BarrierPhase::Timeout);
    assert_eq!(
        late_look.status.lifecycle.finished_at.map(|t| t.0),
        Some(at(5))
    );
    assert_eq!(late_look.delete_after, Some(Duration::from_secs(58)));

    let mut failed = Scenario::new(BarrierSpec::new(1).with_ttl_after_finished("1m"));
    failed.fail("a", at(1));
    let seen = failed.reconcile(at(2));
    assert_eq!(seen.status.phase, BarrierPhase::Failed);
    assert_eq!(seen.status.lifecycle.finished_at.map(|t| t.0), Some(at(2)));
    assert_eq!(
        failed
            .reconcile(at(30))
            .status
            .lifecycle
            .finished_at
            .map(|t| t.0),
        Some(at(2))
    );
}

#[test]
fn a_revived_barrier_is_unfinished_again() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_timeout("5s"));
    assert!(b.reconcile(at(6)).status.lifecycle.finished_at.is_some());
    b.edit(|spec| spec.timeout = Some("1h".into()));
    let revived = b.reconcile(at(7));
    assert_eq!(revived.status.phase, BarrierPhase::Waiting);
    assert_eq!(revived.status.lifecycle.finished_at, None);
}

#[test]
fn an_unreadable_ttl_after_finished_is_an_invalid_spec() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_ttl_after_finished("soon"));
    let e = b.reconcile(at(1));
    assert_eq!(e.status.phase, BarrierPhase::Failed);
    assert!(
        cond(&e.status, CONDITION_READY)
            .message
            .contains("spec.ttlAfterFinished")
    );
    assert_eq!(e.delete_after, None, "an invalid spec deletes nothing");
}

#[test]
fn arrival_order_is_by_time_then_holder() {
    let mut b = Scenario::new(BarrierSpec::new(9));
    b.arrive("z", at(1))
        .arrive("b", at(3))
        .arrive("a", at(3))
        .arrive("m", at(2));
    assert_eq!(b.reconcile(at(4)).status.arrivals, ["z", "m", "a", "b"]);
}

#[test]
fn arrivals_without_a_timestamp_count_as_now() {
    let mut b = Scenario::new(BarrierSpec::new(1).with_timeout("10s"));
    b.arrivals.push(ArrivalRecord {
        holder: "a".into(),
        outcome: Outcome::Succeeded,
        message: None,
        arrived_at: None,
    });
    assert_eq!(b.peek(at(9)).status.phase, BarrierPhase::Open);
    assert_eq!(b.peek(at(10)).status.phase, BarrierPhase::Timeout);
}

// ---- Properties over random histories ----

/// One thing that can happen to a barrier between two reconciles.
#[derive(Clone, Debug)]
enum Step {
    Arrive(u8),
    Fail(u8),
    Wait(u32),
    SetTimeout(Option<u32>),
    SetQuorum(Option<i32>),
    SetExpected(i32),
    DeleteArrivals,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..8).prop_map(Step::Arrive),
        2 => (0u8..8).prop_map(Step::Fail),
        3 => (0u32..20_000).prop_map(Step::Wait),
        1 => proptest::option::of(0u32..60_000).prop_map(Step::SetTimeout),
        1 => proptest::option::of(-1i32..8).prop_map(Step::SetQuorum),
        1 => (-1i32..8).prop_map(Step::SetExpected),
        1 => Just(Step::DeleteArrivals),
    ]
}

fn spec() -> impl Strategy<Value = BarrierSpec> {
    (
        1i32..6,
        proptest::option::of(1i32..6),
        proptest::option::of(0u32..30_000),
    )
        .prop_map(|(expected, quorum, timeout_ms)| BarrierSpec {
            expected,
            quorum: quorum.map(|q| q.min(expected)),
            timeout: timeout_ms.map(|ms| format!("{ms}ms")),
            ttl_after_finished: None,
        })
}

/// Plays `steps`, reconciling after each, and returns every evaluation in order.
fn play(spec: BarrierSpec, steps: &[Step]) -> Vec<Evaluation> {
    let mut b = Scenario::new(spec);
    let mut now_ms = 0i64;
    let mut out = vec![b.reconcile(at_ms(now_ms))];
    for step in steps {
        match step {
            Step::Arrive(h) => {
                b.arrive(&format!("h{h}"), at_ms(now_ms));
            }
            Step::Fail(h) => {
                b.fail(&format!("h{h}"), at_ms(now_ms));
            }
            Step::Wait(ms) => now_ms += i64::from(*ms),
            Step::SetTimeout(t) => {
                b.edit(|s| s.timeout = t.map(|ms| format!("{ms}ms")));
            }
            Step::SetQuorum(q) => {
                b.edit(|s| s.quorum = *q);
            }
            Step::SetExpected(e) => {
                b.edit(|s| s.expected = *e);
            }
            Step::DeleteArrivals => b.arrivals.clear(),
        }
        out.push(b.reconcile(at_ms(now_ms)));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn open_is_sticky_and_opened_at_never_changes(spec in spec(), steps in proptest::collection::vec(step(), 0..40)) {
        let history = play(spec, &steps);
        let mut opened_at = None;
        for e in &history {
            if let Some(first) = &opened_at {
                prop_assert_eq!(e.status.phase, BarrierPhase::Open);
                prop_assert_eq!(e.status.opened_at.as_ref(), Some(first));
            } else if e.status.phase == BarrierPhase::Open {
                prop_assert!(e.status.opened_at.is_some());
                opened_at = e.status.opened_at.clone();
            } else {
                prop_assert!(e.status.opened_at.is_none());
            }
        }
    }

    #[test]
    fn a_holder_counts_once_however_often_it_arrives(
        spec in spec(),
        holders in proptest::collection::vec((0u8..6, 0i64..20_000, any::<bool>()), 0..20),
        repeats in 1usize..4,
        now in 0i64..40_000,
    ) {
        let records: Vec<ArrivalRecord> = holders.iter().map(|(h, ms, ok)| {
            let holder = format!("h{h}");
            if *ok { ArrivalRecord::succeeded(holder, at_ms(*ms)) } else { ArrivalRecord::failed(holder, at_ms(*ms)) }
        }).collect();
        let repeated: Vec<ArrivalRecord> = records.iter().cloned().cycle().take(records.len() * repeats).collect();
        let once = evaluate(&BarrierInput { spec: &spec, generation: Some(1), created_at: t0(), arrivals: &records, previous: None, now: at_ms(now) });
        let many = evaluate(&BarrierInput { spec: &spec, generation: Some(1), created_at: t0(), arrivals: &repeated, previous: None, now: at_ms(now) });
        prop_assert_eq!(&once.status, &many.status);
        let distinct: std::collections::BTreeSet<_> = once.status.arrivals.iter().collect();
        prop_assert_eq!(distinct.len(), once.status.arrivals.len());
        prop_assert_eq!(once.status.arrived as usize, once.status.arrivals.len());
        prop_assert_eq!(once.status.failed as usize, once.status.failures.len());
        prop_assert!(once.status.failures.iter().all(|f| !once.status.arrivals.contains(&f.holder)));
    }

    #[test]
    fn quorum_defaults_to_expected_everywhere(spec in spec(), steps in proptest::collection::vec(step(), 0..30)) {
        let explicit = BarrierSpec { quorum: Some(spec.expected), ..spec.clone() };
        let implicit = BarrierSpec { quorum: None, ..spec };
        let steps: Vec<Step> = steps.into_iter().filter(|s| !matches!(s, Step::SetQuorum(_) | Step::SetExpected(_))).collect();
        let a = play(explicit, &steps);
        let b = play(implicit, &steps);
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x.status.phase, y.status.phase);
            prop_assert_eq!(x.requeue_after, y.requeue_after);
        }
    }

    #[test]
    fn the_timeout_falls_exactly_at_the_deadline(expected in 1i32..5, timeout_ms in 1u32..100_000, arrived in 0i32..5) {
        let spec = BarrierSpec::new(expected).with_timeout(format!("{timeout_ms}ms"));
        let arrived = arrived.min(expected - 1);
        let records: Vec<_> = (0..arrived).map(|i| ArrivalRecord::succeeded(format!("h{i}"), t0())).collect();
        let eval = |ms: i64| evaluate(&BarrierInput { spec: &spec, generation: Some(1), created_at: t0(), arrivals: &records, previous: None, now: at_ms(ms) });
        let before = eval(i64::from(timeout_ms) - 1);
        prop_assert_eq!(before.status.phase, BarrierPhase::Waiting);
        prop_assert_eq!(before.requeue_after, Some(Duration::from_millis(1)));
        prop_assert_eq!(eval(i64::from(timeout_ms)).status.phase, BarrierPhase::Timeout);
    }

    #[test]
    fn raising_the_timeout_into_the_future_always_revives(expected in 2i32..6, timeout_ms in 0u32..10_000, extra_ms in 1u32..10_000) {
        let mut b = Scenario::new(BarrierSpec::new(expected).with_timeout(format!("{timeout_ms}ms")));
        b.arrive("only", t0());
        let now = at_ms(i64::from(timeout_ms));
        prop_assert_eq!(b.reconcile(now).status.phase, BarrierPhase::Timeout);
        b.edit(|s| s.timeout = Some(format!("{}ms", timeout_ms + extra_ms)));
        let revived = b.reconcile(now);
        prop_assert_eq!(revived.status.phase, BarrierPhase::Waiting);
        prop_assert_eq!(revived.transition, Some(Transition::Revived));
        prop_assert_eq!(revived.requeue_after, Some(Duration::from_millis(u64::from(extra_ms))));
    }

    #[test]
    fn unreachable_quorums_fail(expected in 1i32..10, quorum in 1i32..10, failures in 0i32..10, successes in 0i32..10) {
        let quorum = quorum.min(expected);
        let successes = successes.min(quorum - 1);
        let failures = failures.min(expected - successes);
        let spec = BarrierSpec::new(expected).with_quorum(quorum);
        let mut records: Vec<_> = (0..successes).map(|i| ArrivalRecord::succeeded(format!("ok{i}"), t0())).collect();
        records.extend((0..failures).map(|i| ArrivalRecord::failed(format!("bad{i}"), t0())));
        let e = evaluate(&BarrierInput { spec: &spec, generation: Some(1), created_at: t0(), arrivals: &records, previous: None, now: t0() });
        let expected_phase = if expected - failures < quorum { BarrierPhase::Failed } else { BarrierPhase::Waiting };
        prop_assert_eq!(e.status.phase, expected_phase);
    }

    #[test]
    fn invalid_specs_fail_with_ready_false(expected in -3i32..6, quorum in proptest::option::of(-3i32..9)) {
        let spec = BarrierSpec { quorum, ..BarrierSpec::new(expected) };
        let invalid = expected < 1 || quorum.is_some_and(|q| q < 1 || q > expected);
        let e = evaluate(&BarrierInput { spec: &spec, generation: Some(1), created_at: t0(), arrivals: &[], previous: None, now: t0() });
        let ready = e.status.condition(CONDITION_READY).unwrap();
        prop_assert_eq!(ready.status == "False", invalid);
        if invalid {
            prop_assert_eq!(e.status.phase, BarrierPhase::Failed);
            prop_assert_eq!(ready.reason.as_str(), REASON_INVALID_SPEC);
        }
    }

    #[test]
    fn transition_times_change_only_on_real_transitions(spec in spec(), steps in proptest::collection::vec(step(), 0..40)) {
        let history = play(spec, &steps);
        for pair in history.windows(2) {
            for type_ in [CONDITION_READY, CONDITION_OPEN] {
                let before = pair[0].status.condition(type_).unwrap();
                let after = pair[1].status.condition(type_).unwrap();
                if before.status == after.status {
                    prop_assert_eq!(&before.last_transition_time, &after.last_transition_time);
                }
            }
            let phase_changed = pair[0].status.phase != pair[1].status.phase;
            if pair[1].transition.is_none() {
                prop_assert!(!phase_changed, "phase changed without a transition: {:?} -> {:?}", pair[0].status.phase, pair[1].status.phase);
            }
        }
    }

    #[test]
    fn a_written_status_is_a_fixed_point(spec in spec(), steps in proptest::collection::vec(step(), 0..30), sub_ms in 0u32..1_000_000) {
        // Whatever the clock's sub-millisecond part, re-evaluating right after the status
        // was written (and read back) changes nothing: no endless status writes.
        let mut b = Scenario::new(spec);
        let mut now = at_ms(0) + SignedDuration::from_nanos(i64::from(sub_ms));
        for step in &steps {
            match step {
                Step::Arrive(h) => { b.arrive(&format!("h{h}"), now); }
                Step::Fail(h) => { b.fail(&format!("h{h}"), now); }
                Step::Wait(ms) => now += SignedDuration::from_millis(i64::from(*ms)),
                Step::SetTimeout(t) => { b.edit(|s| s.timeout = t.map(|ms| format!("{ms}ms1ns"))); }
                Step::SetQuorum(q) => { b.edit(|s| s.quorum = *q); }
                Step::SetExpected(e) => { b.edit(|s| s.expected = *e); }
                Step::DeleteArrivals => b.arrivals.clear(),
            }
            b.reconcile(now);
            let again = b.peek(now);
            prop_assert_eq!(Some(&again.status), b.status.as_ref());
            prop_assert_eq!(again.transition, None);
        }
    }

    #[test]
    fn only_waiting_barriers_with_a_deadline_ask_to_be_woken(spec in spec(), steps in proptest::collection::vec(step(), 0..30)) {
        for e in play(spec, &steps) {
            let expects_wakeup = e.status.phase == BarrierPhase::Waiting && e.status.lifecycle.deadline.is_some();
            prop_assert_eq!(e.requeue_after.is_some(), expects_wakeup);
        }
    }
}
