use super::*;
use crate::locks::rules::Renewal;
use proptest::prelude::*;

const TTL: Duration = Duration::from_secs(10);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn claim(name: &str, created: i64, key: Option<&str>) -> ClaimRecord {
    ClaimRecord {
        permit: PermitRecord::queued(&format!("once-o-{name}"), name, at(created)),
        key: key.map(str::to_owned),
        outcome: None,
        interrupting: false,
    }
}

fn decide(status: &OnceStatus, claims: &[ClaimRecord], now: i64) -> OnceDecision {
    decide_with(None, 3, status, claims, now)
}

fn decide_with(
    key: Option<&str>,
    max_attempts: i32,
    status: &OnceStatus,
    claims: &[ClaimRecord],
    now: i64,
) -> OnceDecision {
    evaluate(&OnceInput {
        key,
        max_attempts,
        max_interruptions: 3,
        ttl: TTL,
        status,
        claims,
        generation: Some(1),
        now: at(now),
    })
}

fn reported(mut claim: ClaimRecord, result: Outcome, token: i64) -> ClaimRecord {
    claim.outcome = Some(ReportedOutcome {
        result,
        fencing_token: token,
        exit_code: Some(i32::from(result == Outcome::Failed)),
        message: None,
        interrupted: false,
    });
    claim
}

fn executor(decision: &OnceDecision) -> Option<&str> {
    decision.status.executor.as_deref()
}

#[test]
fn the_oldest_claim_executes_alone_and_the_others_wait_in_order() {
    let claims = [
        claim("c", 3, None),
        claim("a", 1, None),
        claim("b", 2, None),
    ];
    let decision = decide(&OnceStatus::default(), &claims, 5);
    assert_eq!(executor(&decision), Some("a"));
    assert_eq!(decision.status.phase, OncePhase::Running);
    assert_eq!(decision.status.claims.fencing_token, 1);
    assert_eq!(decision.status.attempts, 1);
    assert_eq!(decision.status.claims.waiting, ["b", "c"]);
    assert_eq!(decision.claims.permits[1].phase, PermitPhase::Granted);
    assert_eq!(decision.claims.permits[2].position, Some(1));
    assert_eq!(decision.status.claims.grants.as_ref().unwrap().len(), 1);
}

#[test]
fn success_finishes_the_key_and_nobody_runs_it_again() {
    let claims = [claim("a", 1, Some("v1")), claim("b", 2, Some("v1"))];
    let running = decide(&OnceStatus::default(), &claims, 5).status;
    let claims = [
        reported(claims[0].clone(), Outcome::Succeeded, 1),
        claims[1].clone(),
    ];
    let done = decide(&running, &claims, 6);
    assert_eq!(done.status.phase, OncePhase::Succeeded);
    assert_eq!(done.status.key, "v1");
    assert_eq!(executor(&done), None);
    assert!(done.claims.holding.is_empty());
    assert_eq!(
        done.status.history.last().unwrap().outcome,
        AttemptOutcome::Succeeded
    );
    assert!(matches!(
        done.status.standing_of("v1"),
        super::super::KeyStanding::Succeeded(_)
    ));
    assert_eq!(
        done.status.condition(CONDITION_DONE).unwrap().status,
        "True"
    );
    // Later, and with a newcomer: still nobody.
    let later = [claims[1].clone(), claim("c", 7, Some("v1"))];
    let again = decide(&done.status, &later, 8);
    assert!(again.claims.holding.is_empty());
    assert_eq!(again.status.phase, OncePhase::Succeeded);
}

#[test]
fn a_failure_is_recorded_and_the_next_claim_runs_with_a_higher_token() {
    let claims = [claim("a", 1, None), claim("b", 2, None)];
    let running = decide(&OnceStatus::default(), &claims, 5).status;
    let claims = [
        reported(claims[0].clone(), Outcome::Failed, 1),
        claims[1].clone(),
    ];
    let next = decide(&running, &claims, 6);
    assert_eq!(executor(&next), Some("b"));
    assert_eq!(next.status.claims.fencing_token, 2);
    assert_eq!(next.status.attempts, 2);
    let failed = &next.status.history[0];
    assert_eq!(
        (failed.outcome, failed.fencing_token),
        (AttemptOutcome::Failed, 1)
    );
    assert_eq!(failed.exit_code, Some(1));
}

#[test]
fn an_executor_not_renewed_within_the_ttl_is_lost_and_taken_over_not_before() {
    let mut claims = [claim("a", 0, None), claim("b", 1, None)];
    let running = decide(&OnceStatus::default(), &claims, 1).status;
    // b renews, a does not.
    claims[1].permit.renewal = Renewal::Seen(at(9));
    let before = decide(&running, &claims, 9);
    assert_eq!(executor(&before), Some("a"));
    assert_eq!(before.claims.next_look, Some(at(10)));
    let after = decide(&running, &claims, 10);
    assert_eq!(executor(&after), Some("b"));
    assert_eq!(after.status.claims.fencing_token, 2);
    assert_eq!(after.status.history[0].outcome, AttemptOutcome::Lost);
    assert_eq!(after.claims.permits[0].phase, PermitPhase::Expired);
    assert!(
        after
            .claims
            .transitions
            .iter()
            .any(|t| matches!(t, Transition::Expired { .. }))
    );
}

#[test]
fn an_executor_whose_claim_is_deleted_before_it_reports_is_lost() {
    let claims = [claim("a", 1, None), claim("b", 2, None)];
    let running = decide(&OnceStatus::default(), &claims, 3).status;
    let next = decide(&running, &claims[1..], 4);
    assert_eq!(next.status.history[0].outcome, AttemptOutcome::Lost);
    assert_eq!(executor(&next), Some("b"));
}

#[test]
fn after_max_attempts_the_key_fails_for_good_and_grants_nothing() {
    let mut claims = vec![
        claim("a", 1, None),
        claim("b", 2, None),
        claim("c", 3, None),
    ];
    let mut status = decide_with(None, 2, &OnceStatus::default(), &claims, 4).status;
    claims[0] = reported(claims[0].clone(), Outcome::Failed, 1);
    status = decide_with(None, 2, &status, &claims, 5).status;
    assert_eq!(status.executor.as_deref(), Some("b"));
    claims[1] = reported(claims[1].clone(), Outcome::Failed, 2);
    let failed = decide_with(None, 2, &status, &claims, 6);
    assert_eq!(failed.status.phase, OncePhase::Failed);
    assert_eq!(failed.status.attempts, 2);
    assert!(failed.claims.holding.is_empty());
    assert!(failed.status.claims.waiting.is_empty());
    assert!(matches!(
        failed.status.standing_of(""),
        super::super::KeyStanding::Failed(_)
    ));
    // A reset allows a new try, with a higher token.
    let retried = decide_with(None, 2, &failed.status.reset(""), &claims, 7);
    assert_eq!(retried.status.executor.as_deref(), Some("c"));
    assert_eq!(retried.status.claims.fencing_token, 3);
}

#[test]
fn a_late_outcome_is_recorded_as_late_and_changes_nothing() {
    let mut claims = vec![claim("a", 0, None), claim("b", 0, None)];
    let running = decide(&OnceStatus::default(), &claims, 1).status;
    claims[1].permit.renewal = Renewal::Seen(at(15));
    let taken_over = decide(&running, &claims, 15).status;
    assert_eq!(taken_over.executor.as_deref(), Some("b"));
    // a comes back and reports success with its old token.
    claims[0] = reported(claims[0].clone(), Outcome::Succeeded, 1);
    claims[0].permit.renewal = Renewal::Seen(at(16));
    let after = decide(&taken_over, &claims, 16);
    assert_eq!(after.status.phase, OncePhase::Running);
    assert_eq!(executor(&after), Some("b"));
    let late = after.status.history.last().unwrap();
    assert!(late.late);
    assert_eq!(
        (late.fencing_token, late.outcome),
        (1, AttemptOutcome::Succeeded)
    );
    // Recorded once.
    assert_eq!(decide(&after.status, &claims, 16).status, after.status);
}

#[test]
fn keys_move_on_one_at_a_time() {
    let mut claims = vec![claim("old", 1, Some("v1")), claim("new", 2, Some("v2"))];
    let running = decide(&OnceStatus::default(), &claims, 3);
    assert_eq!(
        (running.status.key.as_str(), executor(&running)),
        ("v1", Some("old"))
    );
    // The v2 claim waits for v1 to finish: no place in v1's queue.
    assert!(running.status.claims.waiting.is_empty());
    claims[0] = reported(claims[0].clone(), Outcome::Succeeded, 1);
    let moved = decide(&running.status, &claims, 4);
    assert_eq!(
        (moved.status.key.as_str(), executor(&moved)),
        ("v2", Some("new"))
    );
    assert_eq!(moved.status.attempts, 1);
    // A straggler for v1 is not run again.
    claims[1] = reported(claims[1].clone(), Outcome::Succeeded, 2);
    claims.push(claim("straggler", 5, Some("v1")));
    let after = decide(&moved.status, &claims, 6);
    assert_eq!(
        (after.status.key.as_str(), after.status.phase),
        ("v2", OncePhase::Succeeded)
    );
    assert!(after.claims.holding.is_empty());
}

#[test]
fn the_spec_key_comes_first_and_claims_without_a_key_ask_for_it() {
    let claims = [claim("other", 1, Some("v9")), claim("plain", 2, None)];
    let decision = decide_with(Some("v1"), 3, &OnceStatus::default(), &claims, 3);
    assert_eq!(
        (decision.status.key.as_str(), executor(&decision)),
        ("v1", Some("plain"))
    );
}

#[test]
fn a_dead_waiter_is_not_granted_and_is_removed_later() {
    let claims = [
        claim("a", 0, None),
        claim("dead", 0, None),
        claim("b", 0, None),
    ];
    let mut claims = claims.to_vec();
    claims[0].permit.renewal = Renewal::Seen(at(20));
    claims[2].permit.renewal = Renewal::Seen(at(20));
    let running = decide(&OnceStatus::default(), &claims[..1], 1).status;
    let claims_later = [
        reported(claims[0].clone(), Outcome::Failed, 1),
        claims[1].clone(),
        claims[2].clone(),
    ];
    let next = decide(&running, &claims_later, 20);
    assert_eq!(executor(&next), Some("b"));
    assert_eq!(next.claims.permits[1].phase, PermitPhase::Expired);
    assert!(!next.claims.permits[1].remove);
    let much_later = decide(&next.status, &claims_later, 10 + 600);
    assert!(much_later.claims.permits[1].remove);
}

/// One step of a random history of a Once.
#[derive(Clone, Debug)]
enum Step {
    /// A new claim (holder number, key number).
    Ask(u8, u8),
    /// The executor reports success or failure.
    Report(bool),
    /// A claim (by index) reports an outcome with an old token.
    ReportLate(u8, bool),
    /// Time passes; every claim but the executor renews (the executor renews when the
    /// flag is set).
    Tick(u8, bool),
    /// A claim (by index) is deleted.
    Delete(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..6u8, 0..3u8).prop_map(|(h, k)| Step::Ask(h, k)),
        any::<bool>().prop_map(Step::Report),
        (0..8u8, any::<bool>()).prop_map(|(i, s)| Step::ReportLate(i, s)),
        (1..15u8, any::<bool>()).prop_map(|(s, r)| Step::Tick(s, r)),
        (0..8u8).prop_map(Step::Delete),
    ]
}

proptest! {
    #[test]
    fn single_flight_rising_tokens_bounded_attempts_and_a_fixed_point(
        steps in proptest::collection::vec(step(), 1..60),
        max_attempts in 1..4i32,
    ) {
        let mut now = 0i64;
        let mut claims: Vec<ClaimRecord> = Vec::new();
        let mut status = OnceStatus::default();
        let mut highest = 0i64;
        let mut succeeded: Vec<String> = Vec::new();
        let mut serial = 0;
        for step in steps {
            match step {
                Step::Ask(holder, key) => {
                    serial += 1;
                    claims.push(claim(&format!("h{holder}-{serial}"), now, Some(&format!("k{key}"))));
                }
                Step::Report(success) => {
                    let grant = status.claims.grants.as_ref().and_then(|g| g.first()).cloned();
                    if let Some(grant) = grant
                        && let Some(c) = claims.iter_mut().find(|c| c.permit.uid == grant.uid)
                    {
                        let result = if success { Outcome::Succeeded } else { Outcome::Failed };
                        *c = reported(c.clone(), result, grant.token);
                    }
                }
                Step::ReportLate(i, success) => {
                    let executing = status.claims.grants.as_ref().and_then(|g| g.first()).map(|g| g.uid.clone());
                    if status.claims.fencing_token > 1
                        && let Some(c) = claims.get_mut(usize::from(i))
                        && Some(&c.permit.uid) != executing.as_ref()
                        && c.outcome.is_none()
                    {
                        let result = if success { Outcome::Succeeded } else { Outcome::Failed };
                        *c = reported(c.clone(), result, status.claims.fencing_token - 1);
                    }
                }
                Step::Tick(seconds, executor_renews) => {
                    now += i64::from(seconds);
                    let executing = status.claims.grants.as_ref().and_then(|g| g.first()).map(|g| g.uid.clone());
                    for c in &mut claims {
                        if executor_renews || Some(&c.permit.uid) != executing.as_ref() {
                            c.permit.renewal = Renewal::Seen(at(now));
                        }
                    }
                }
                Step::Delete(i) => {
                    if usize::from(i) < claims.len() {
                        claims.remove(usize::from(i));
                    }
                }
            }
            let decision = decide_with(None, max_attempts, &status, &claims, now);
            let next = &decision.status;
            // Never two executors.
            prop_assert!(next.claims.grants.as_ref().is_none_or(|g| g.len() <= 1));
            prop_assert!(decision.claims.holding.len() <= 1);
            // Tokens strictly rise: each grant above every token issued before.
            for transition in &decision.claims.transitions {
                if let Transition::Granted { token, permit, .. } = transition {
                    prop_assert!(*token > highest, "token {token} after {highest}");
                    highest = *token;
                    // A succeeded key grants nothing more.
                    let key = effective_key(claims[*permit].key.as_deref(), None);
                    prop_assert!(!succeeded.contains(&key), "{key} ran again");
                }
            }
            prop_assert!(next.claims.fencing_token >= highest);
            // Attempts never exceed maxAttempts.
            prop_assert!(next.attempts <= max_attempts);
            if next.phase == OncePhase::Succeeded && !succeeded.contains(&next.key) {
                succeeded.push(next.key.clone());
            }
            // The answer is a fixed point.
            let again = decide_with(None, max_attempts, next, &claims, now);
            prop_assert_eq!(&again.status, next);
            prop_assert!(again.claims.transitions.is_empty());
            status = decision.status;
        }
    }
}

/// Plays one `once run --key K` to its end: a claim for K granted and succeeding.
fn run_key(status: OnceStatus, spec_key: Option<&str>, key: &str, t: i64) -> OnceStatus {
    let mut claims = vec![claim(&format!("r{t}"), t, Some(key))];
    let granted = decide_with(spec_key, 3, &status, &claims, t);
    assert_eq!(
        (granted.status.key.as_str(), granted.status.phase),
        (key, OncePhase::Running),
        "key {key} is granted at once"
    );
    claims[0] = reported(
        claims[0].clone(),
        Outcome::Succeeded,
        granted.status.claims.fencing_token,
    );
    let done = decide_with(spec_key, 3, &granted.status, &claims, t);
    assert_eq!(done.status.phase, OncePhase::Succeeded);
    // The claim is released: the Once at rest.
    decide_with(spec_key, 3, &done.status, &[], t).status
}

#[test]
fn a_hundred_successive_keys_are_each_granted_at_once_even_past_the_remembered_window() {
    // As `once run oo --key 1` first created it: spec.key "1".
    let mut status = OnceStatus::default();
    for i in 1..=100 {
        status = run_key(status, Some("1"), &i.to_string(), i);
    }
    assert_eq!(status.completed_keys.len(), COMPLETED_KEYS_LEN);
    // The forgotten spec key is not made current again.
    assert_eq!(status.key, "100");
}

#[test]
fn a_key_nobody_asks_for_does_not_hold_up_claims_for_another() {
    let mut claims = vec![claim("a", 1, Some("v1"))];
    let running = decide(&OnceStatus::default(), &claims, 1);
    claims[0] = reported(claims[0].clone(), Outcome::Failed, 1);
    let failed_once = decide(&running.status, &claims, 2).status;
    assert_eq!(
        (failed_once.key.as_str(), failed_once.phase),
        ("v1", OncePhase::Pending)
    );
    // Nobody retries v1; a claim for v2 arrives and is granted.
    let other = [claim("b", 3, Some("v2"))];
    let moved = decide(&failed_once, &other, 3);
    assert_eq!(
        (moved.status.key.as_str(), executor(&moved)),
        ("v2", Some("b"))
    );
}

#[test]
fn a_new_spec_key_becomes_current_once_it_is_idle() {
    let status = decide_with(Some("v1"), 3, &OnceStatus::default(), &[], 1).status;
    assert_eq!(
        (status.key.as_str(), status.phase),
        ("v1", OncePhase::Pending)
    );
    let edited = decide_with(Some("v2"), 3, &status, &[], 2).status;
    assert_eq!(edited.key, "v2");
}

fn interrupted(mut claim: ClaimRecord, token: i64) -> ClaimRecord {
    claim.interrupting = true;
    claim.outcome = Some(ReportedOutcome {
        result: Outcome::Failed,
        fencing_token: token,
        exit_code: Some(143),
        message: Some("interrupted".to_owned()),
        interrupted: true,
    });
    claim
}

#[test]
fn interruptions_do_not_count_toward_max_attempts_until_there_are_too_many() {
    let mut status = OnceStatus::default();
    for i in 1..=3 {
        let mut claims = vec![claim(&format!("w{i}"), i, None)];
        let running = decide_with(None, 1, &status, &claims, i);
        assert_eq!(running.status.phase, OncePhase::Running, "attempt {i}");
        claims[0] = interrupted(claims[0].clone(), running.status.claims.fencing_token);
        status = decide_with(None, 1, &running.status, &claims, i).status;
        assert_eq!(
            (status.phase, status.attempts, status.interruptions),
            (OncePhase::Pending, 0, i32::try_from(i).unwrap())
        );
        assert_eq!(
            status.history.last().unwrap().outcome,
            AttemptOutcome::Interrupted
        );
    }
    // The fourth interruption counts: with maxAttempts 1 the key fails for good.
    let mut claims = vec![claim("w4", 4, None)];
    let running = decide_with(None, 1, &status, &claims, 4);
    claims[0] = interrupted(claims[0].clone(), running.status.claims.fencing_token);
    let status = decide_with(None, 1, &running.status, &claims, 4).status;
    assert_eq!(status.phase, OncePhase::Failed);
    assert!(
        status
            .history
            .last()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("more than maxInterruptions 3")
    );
}

#[test]
fn an_executor_that_expires_after_its_interrupting_mark_was_interrupted_not_lost() {
    let mut claims = vec![claim("a", 0, None), claim("b", 0, None)];
    let running = decide(&OnceStatus::default(), &claims, 1).status;
    claims[0].interrupting = true;
    claims[1].permit.renewal = Renewal::Seen(at(15));
    let taken_over = decide(&running, &claims, 15).status;
    assert_eq!(taken_over.history[0].outcome, AttemptOutcome::Interrupted);
    assert_eq!(taken_over.executor.as_deref(), Some("b"));
    // b's attempt is the only one that counts.
    assert_eq!(taken_over.attempts, 1);
}

#[test]
fn statuses_from_a_newer_version_decode_with_unknown_values() {
    let status: OnceStatus = serde_json::from_value(serde_json::json!({
        "phase": "Paused",
        "key": "v1",
        "history": [{
            "holder": "a", "fencingToken": 1, "finishedAt": "2026-01-01T00:00:00.000000Z",
            "outcome": "Skipped", "newField": 1
        }]
    }))
    .unwrap();
    assert_eq!(status.phase, OncePhase::Unknown);
    assert_eq!(status.history[0].outcome, AttemptOutcome::Unknown);
}
