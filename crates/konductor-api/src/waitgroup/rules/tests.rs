use super::*;
use crate::conditions::CONDITION_READY;
use proptest::prelude::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn sealed() -> WaitGroupSpec {
    WaitGroupSpec {
        sealed: true,
        ..WaitGroupSpec::default()
    }
}

fn pending(id: &str) -> MemberRecord {
    MemberRecord::pending(id, at(0))
}

fn done(id: &str) -> MemberRecord {
    pending(id).with_outcome(MemberOutcome::succeeded(Some(0)))
}

fn failed(id: &str, message: &str) -> MemberRecord {
    pending(id).with_outcome(MemberOutcome::failed(Some(1), Some(message.to_owned())))
}

fn held(id: &str, seen: i64) -> MemberRecord {
    MemberRecord {
        renewal_seen_at: Some(at(seen)),
        ..pending(id)
    }
}

fn eval_at(
    spec: &WaitGroupSpec,
    members: &[MemberRecord],
    previous: Option<&WaitGroupStatus>,
    now: i64,
) -> Evaluation {
    let members: Vec<&MemberRecord> = members.iter().collect();
    evaluate(&WaitGroupInput {
        spec,
        generation: Some(1),
        created_at: at(0),
        members: &members,
        previous,
        now: at(now),
    })
}

fn eval(spec: &WaitGroupSpec, members: &[MemberRecord]) -> Evaluation {
    eval_at(spec, members, None, 10)
}

#[test]
fn a_member_counts_once_however_often_it_is_added_or_done() {
    let members = [
        pending("a"),
        done("a"),
        done("a"),
        pending("b"),
        pending("b"),
    ];
    let status = eval(&WaitGroupSpec::default(), &members).status;
    assert_eq!(
        (status.added, status.done, status.failed, status.counter),
        (2, 1, 0, 1)
    );
    assert_eq!(status.pending, ["b"]);
}

#[test]
fn an_expired_member_is_failed_whatever_it_reports_later() {
    let mut expired = pending("a");
    expired.expired = true;
    let late_success = expired
        .clone()
        .with_outcome(MemberOutcome::succeeded(Some(0)));
    let status = eval(&sealed(), &[late_success]).status;
    assert_eq!(status.failed, 1);
    assert!(status.failures[0].expired);
    assert_eq!(status.phase, WaitGroupPhase::Failed);
}

#[test]
fn a_new_unsealed_group_with_nothing_added_is_waiting_not_done() {
    let evaluation = eval(&WaitGroupSpec::default(), &[]);
    assert_eq!(evaluation.status.phase, WaitGroupPhase::Waiting);
    assert_eq!(
        evaluation.status.summary(),
        "nothing added yet; waiting for members and the seal"
    );
    // Everything added is done, but more may come: still waiting.
    let status = eval(&WaitGroupSpec::default(), &[done("a")]).status;
    assert_eq!(status.phase, WaitGroupPhase::Waiting);
    assert!(
        status.summary().contains("not sealed"),
        "{}",
        status.summary()
    );
}

#[test]
fn sealed_with_every_member_finished_is_done() {
    assert_eq!(
        eval(&sealed(), &[done("a"), pending("b")]).status.phase,
        WaitGroupPhase::Waiting
    );
    let evaluation = eval(&sealed(), &[done("a"), done("b")]);
    assert_eq!(evaluation.status.phase, WaitGroupPhase::Done);
    assert_eq!(evaluation.transition, Some(Transition::Done));
    assert_eq!(
        evaluation.status.lifecycle.finished_at,
        Some(MicroTime(at(10)))
    );
    // Sealed with nothing added: the producer said there is nothing to wait for.
    assert_eq!(eval(&sealed(), &[]).status.phase, WaitGroupPhase::Done);
}

#[test]
fn expected_members_make_the_group_complete_without_a_seal() {
    let spec = WaitGroupSpec {
        expected: Some(2),
        ..WaitGroupSpec::default()
    };
    let status = eval(&spec, &[done("a")]).status;
    assert_eq!(status.phase, WaitGroupPhase::Waiting);
    assert!(status.summary().contains("1 of 2 members added"));
    assert_eq!(
        eval(&spec, &[done("a"), done("b")]).status.phase,
        WaitGroupPhase::Done
    );
}

#[test]
fn failures_within_max_failed_still_end_done() {
    let spec = WaitGroupSpec {
        max_failed: 1,
        ..sealed()
    };
    let status = eval(&spec, &[done("a"), failed("b", "disk full")]).status;
    assert_eq!(status.phase, WaitGroupPhase::Done);
    assert_eq!(
        status.summary(),
        "all 2 members finished: 1 done, 1 failed (maxFailed 1)"
    );
}

#[test]
fn one_failure_too_many_fails_the_group_at_once_with_its_message() {
    let spec = WaitGroupSpec {
        max_failed: 1,
        ..WaitGroupSpec::default()
    };
    // Not sealed, members still pending: it fails anyway.
    let members = [pending("a"), failed("b", "disk full"), failed("c", "oom")];
    let evaluation = eval(&spec, &members);
    assert_eq!(evaluation.status.phase, WaitGroupPhase::Failed);
    assert_eq!(evaluation.transition, Some(Transition::Failed));
    assert_eq!(
        evaluation.status.summary(),
        "2 members failed, more than maxFailed 1: b: disk full; c: oom"
    );
}

#[test]
fn done_latches_and_later_members_are_late() {
    let first = eval(&sealed(), &[done("a")]).status;
    let later = eval_at(
        &sealed(),
        &[done("a"), pending("b"), failed("c", "x")],
        Some(&first),
        20,
    );
    assert_eq!(later.status.phase, WaitGroupPhase::Done);
    assert_eq!((later.status.added, later.status.late), (1, 2));
    assert_eq!(
        later.status.lifecycle.finished_at,
        first.lifecycle.finished_at
    );
    assert_eq!(later.transition, None);
    assert!(later.also.0.is_empty());
}

#[test]
fn failed_is_final_but_its_counts_follow_the_members() {
    let first = eval(&sealed(), &[failed("a", "x"), pending("b")]).status;
    assert_eq!(first.phase, WaitGroupPhase::Failed);
    let later = eval_at(&sealed(), &[failed("a", "x"), done("b")], Some(&first), 20);
    assert_eq!(later.status.phase, WaitGroupPhase::Failed);
    assert_eq!((later.status.done, later.status.counter), (1, 0));
    assert_eq!(
        later.status.lifecycle.finished_at,
        first.lifecycle.finished_at
    );
}

#[test]
fn the_deadline_times_the_group_out_exactly_then() {
    let spec = WaitGroupSpec {
        timeout: Some("30s".into()),
        ..sealed()
    };
    let before = eval_at(&spec, &[pending("a")], None, 29);
    assert_eq!(before.status.phase, WaitGroupPhase::Waiting);
    assert_eq!(before.requeue_after, Some(Duration::from_secs(1)));
    let at_deadline = eval_at(&spec, &[pending("a")], Some(&before.status), 30);
    assert_eq!(at_deadline.status.phase, WaitGroupPhase::Timeout);
    assert_eq!(at_deadline.transition, Some(Transition::TimedOut));
    assert_eq!(
        at_deadline.status.lifecycle.finished_at,
        Some(MicroTime(at(30)))
    );
    assert!(
        at_deadline
            .status
            .summary()
            .contains("1 of 1 members pending (a)")
    );
}

#[test]
fn a_held_member_not_renewed_for_its_ttl_is_expired_and_the_next_expiry_is_the_requeue() {
    let spec = WaitGroupSpec {
        member_ttl: Some("10s".into()),
        ..sealed()
    };
    let members = [held("a", 0), held("b", 5), pending("c"), {
        let mut d = held("d", 0);
        d.outcome = Some(MemberOutcome::succeeded(None));
        d
    }];
    let evaluation = eval_at(&spec, &members, None, 10);
    assert_eq!(
        evaluation.also.0,
        ["a"],
        "b has 5s left; c is not held; d is done"
    );
    assert_eq!(evaluation.requeue_after, Some(Duration::from_secs(5)));
    // Until the controller has marked it, it is still pending.
    assert_eq!(evaluation.status.counter, 4 - 1);
    // Without memberTTL nothing expires.
    assert!(eval_at(&sealed(), &members, None, 1000).also.0.is_empty());
}

#[test]
fn an_invalid_spec_fails_the_group_naming_the_field() {
    let spec = WaitGroupSpec {
        member_ttl: Some("1s".into()),
        ..sealed()
    };
    let evaluation = eval(&spec, &[]);
    assert_eq!(evaluation.status.phase, WaitGroupPhase::Failed);
    assert_eq!(evaluation.transition, Some(Transition::InvalidSpec));
    let ready = evaluation.status.condition(CONDITION_READY).unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("spec.memberTTL"),
        "{}",
        ready.message
    );
    assert!(
        validate_spec(&WaitGroupSpec {
            timeout: Some("soon".into()),
            ..sealed()
        })
        .unwrap_err()
        .contains("spec.timeout")
    );
}

#[test]
fn a_finished_group_is_deleted_its_ttl_after_finishing() {
    let spec = WaitGroupSpec {
        ttl_after_finished: Some("1m".into()),
        ..sealed()
    };
    let first = eval_at(&spec, &[done("a")], None, 10);
    assert_eq!(first.delete_after, Some(Duration::from_secs(60)));
    let later = eval_at(&spec, &[done("a")], Some(&first.status), 100);
    assert_eq!(later.delete_after, Some(Duration::ZERO));
    assert_eq!(
        eval(&WaitGroupSpec { ..spec }, &[pending("a")]).delete_after,
        None
    );
}

#[test]
fn pending_and_failures_are_listed_up_to_their_bounds_earliest_added_first() {
    let members: Vec<MemberRecord> = (0..50)
        .map(|i| MemberRecord::pending(format!("m{i:02}"), at(50 - i)))
        .chain((0..30).map(|i| failed(&format!("f{i:02}"), "x")))
        .collect();
    let status = eval(
        &WaitGroupSpec {
            max_failed: 100,
            ..WaitGroupSpec::default()
        },
        &members,
    )
    .status;
    assert_eq!(status.counter, 50);
    assert_eq!(status.pending.len(), PENDING_LISTED);
    assert_eq!(status.pending[0], "m49", "added first");
    assert_eq!(status.failed, 30);
    assert_eq!(status.failures.len(), FAILURES_LISTED);
}

#[test]
fn evaluating_its_own_answer_again_changes_nothing() {
    let spec = WaitGroupSpec {
        max_failed: 1,
        timeout: Some("1h".into()),
        ..WaitGroupSpec::default()
    };
    let members = [pending("a"), done("b"), failed("c", "x")];
    let first = eval(&spec, &members);
    let again = eval_at(&spec, &members, Some(&first.status), 11);
    assert_eq!(again.status, first.status);
    assert_eq!(again.transition, None);
}

/// One step of a producer/worker history: an add, or a done with its outcome.
#[derive(Clone, Debug)]
enum Step {
    Add(usize),
    Done(usize, bool),
}

/// A history over up to 8 members and a `maxFailed`: each member added one or more
/// times, then (maybe) done one or more times with its one outcome.
fn history() -> impl Strategy<Value = (Vec<Step>, i32)> {
    (1usize..8).prop_flat_map(|n| {
        (
            proptest::collection::vec(proptest::option::of(any::<bool>()), n),
            proptest::collection::vec((0..n, 1usize..4, 1usize..4), n..3 * n),
            0i32..3,
        )
            .prop_map(|(outcomes, retries, max_failed)| {
                let mut steps = Vec::new();
                for (member, adds, dones) in retries {
                    steps.extend(std::iter::repeat_n(Step::Add(member), adds));
                    if let Some(ok) = outcomes[member] {
                        steps.extend(std::iter::repeat_n(Step::Done(member, ok), dones));
                    }
                }
                (steps, max_failed)
            })
    })
}

/// Plays `steps` (in order, each member's done only once it was added), evaluating
/// after every step as the controller would, and seals at the end.
fn play(steps: &[Step], max_failed: i32) -> WaitGroupStatus {
    let mut spec = WaitGroupSpec {
        max_failed,
        ..WaitGroupSpec::default()
    };
    let mut members: Vec<MemberRecord> = Vec::new();
    let mut status: Option<WaitGroupStatus> = None;
    let mut look = |spec: &WaitGroupSpec, members: &[MemberRecord]| {
        let next = eval_at(spec, members, status.as_ref(), 10).status;
        status = Some(next);
    };
    for step in steps {
        match *step {
            Step::Add(m) => members.push(pending(&format!("m{m}"))),
            Step::Done(m, ok) => {
                let id = format!("m{m}");
                if !members.iter().any(|r| r.member == id) {
                    members.push(pending(&id));
                }
                let outcome = if ok {
                    MemberOutcome::succeeded(Some(0))
                } else {
                    MemberOutcome::failed(Some(1), Some(format!("{id} broke")))
                };
                members.push(pending(&id).with_outcome(outcome));
            }
        }
        look(&spec, &members);
    }
    spec.sealed = true;
    look(&spec, &members);
    status.unwrap()
}

proptest! {
    #[test]
    fn any_order_and_any_retries_give_the_same_status(
        (steps, max_failed) in history(),
        seed in any::<u64>(),
    ) {
        let first = play(&steps, max_failed);
        // The same steps shuffled (each member's done may come before its add: it
        // adds itself, as `waitgroup done` does).
        let mut shuffled = steps.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let second = play(&shuffled, max_failed);
        prop_assert_eq!(first.phase, second.phase);
        prop_assert_eq!(
            (first.added, first.done, first.failed, first.counter),
            (second.added, second.done, second.failed, second.counter)
        );
        prop_assert_eq!(first.summary(), second.summary());
    }

    #[test]
    fn done_only_when_every_member_finished_within_max_failed_and_the_counter_adds_up(
        (steps, max_failed) in history(),
    ) {
        let status = play(&steps, max_failed);
        prop_assert_eq!(status.counter, status.added - status.done - status.failed);
        match status.phase {
            WaitGroupPhase::Done => {
                prop_assert_eq!(status.counter, 0);
                prop_assert!(status.failed <= max_failed);
            }
            WaitGroupPhase::Failed => prop_assert!(status.failed > max_failed),
            WaitGroupPhase::Waiting => prop_assert!(status.counter > 0),
            WaitGroupPhase::Timeout => prop_assert!(false, "no timeout was set"),
            WaitGroupPhase::Unknown => prop_assert!(false, "the rules never write Unknown"),
        }
    }
}

fn attempt(result: AttemptResult) -> MemberAttempt {
    MemberAttempt {
        result,
        holder: Some("w".to_owned()),
        exit_code: None,
        message: Some(format!("{result:?}")),
        finished_at: None,
    }
}

fn with_attempts(mut record: MemberRecord, results: &[AttemptResult]) -> MemberRecord {
    record.attempts = results.iter().copied().map(attempt).collect();
    record
}

#[test]
fn a_failed_member_with_attempts_left_is_pending_and_counts_toward_nothing() {
    let spec = WaitGroupSpec {
        member_attempts: 3,
        ..sealed()
    };
    let status = eval(&spec, &[failed("a", "boom"), done("b")]).status;
    assert_eq!(status.phase, WaitGroupPhase::Waiting);
    assert_eq!((status.failed, status.counter), (0, 1));
    assert_eq!(status.pending, ["a"]);
    let once_more = with_attempts(failed("a", "boom"), &[AttemptResult::Failed]);
    assert_eq!(
        eval(&spec, &[once_more]).status.phase,
        WaitGroupPhase::Waiting
    );
    let third = with_attempts(
        failed("a", "third"),
        &[AttemptResult::Failed, AttemptResult::Failed],
    );
    let status = eval(&spec, &[third]).status;
    assert_eq!(status.phase, WaitGroupPhase::Failed);
    assert_eq!(status.failures[0].attempts, 3);
    assert_eq!(status.failures[0].message.as_deref(), Some("third"));
}

#[test]
fn interruptions_do_not_count_until_there_are_more_than_max_interruptions() {
    let spec = sealed();
    let interrupted = |n: usize| with_attempts(pending("a"), &vec![AttemptResult::Interrupted; n]);
    for n in 0..=3 {
        let status = eval(&spec, &[interrupted(n)]).status;
        assert_eq!(status.phase, WaitGroupPhase::Waiting, "{n} interruptions");
        assert_eq!(status.counter, 1);
    }
    let status = eval(&spec, &[interrupted(4)]).status;
    assert_eq!(status.phase, WaitGroupPhase::Failed);
    assert!(
        status.failures[0]
            .message
            .as_deref()
            .unwrap()
            .contains("more than maxInterruptions 3"),
        "{:?}",
        status.failures
    );
}

#[test]
fn an_expiry_after_the_interrupting_mark_is_an_interruption() {
    let spec = sealed();
    let record = MemberRecord {
        interrupting: true,
        expired: true,
        ..held("a", 0)
    };
    assert!(matches!(
        standing(&record, &spec),
        Standing::Retry { ended } if ended.result == AttemptResult::Interrupted
    ));
    let unmarked = MemberRecord {
        expired: true,
        ..held("a", 0)
    };
    assert!(matches!(standing(&unmarked, &spec), Standing::Failed(f) if f.expired));
}

#[test]
fn a_member_being_retried_is_not_expired_again_until_it_is_held_anew() {
    let spec = WaitGroupSpec {
        member_ttl: Some("10s".to_owned()),
        member_attempts: 2,
        ..sealed()
    };
    let ended = MemberRecord {
        expired: true,
        ..held("a", 0)
    };
    let evaluation = eval_at(&spec, &[ended], None, 100);
    assert!(evaluation.also.0.is_empty());
    assert_eq!(evaluation.status.phase, WaitGroupPhase::Waiting);
}
