use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::locks::rules::{GrantRecord, Renewal};
use crate::locks::{LockKind, PermitMode, PermitPhase};

const WINDOW: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(60);

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

/// A live claim made at `created_ms`, holding the grant `grant` if any.
fn claim(i: usize, created_ms: i64, grant: Option<GrantRecord>, now: Timestamp) -> PermitRecord {
    PermitRecord {
        name: format!("p{i:02}"),
        uid: format!("u{i}"),
        holder: format!("h{i}"),
        mode: PermitMode::Exclusive,
        priority: 0,
        created: at(created_ms),
        grant,
        renewal: Renewal::Seen(now),
    }
}

fn facts() -> LockFacts<'static> {
    LockFacts {
        kind: LockKind::RateLimit,
        permits: 1,
        generation: Some(1),
        previous: &[],
        refusal: None,
    }
}

fn decide(
    limit: i64,
    max_concurrent: Option<i64>,
    recorded: &RateLimitStatus,
    records: &[PermitRecord],
    now: Timestamp,
) -> (Decision, RateLimitStatus) {
    let (decision, status) = evaluate(&RateLimitInput {
        limit,
        window: WINDOW,
        max_concurrent,
        ttl: TTL,
        recorded,
        records,
        facts: facts(),
        now,
    });
    let LockStatus::RateLimit(status) = status else {
        panic!("a RateLimit's status");
    };
    (decision, status)
}

#[test]
fn a_full_window_grants_nothing_until_its_oldest_grant_leaves_it() {
    let now = at(0);
    let claims: Vec<PermitRecord> = (0..9).map(|i| claim(i, i as i64, None, now)).collect();
    let (decision, status) = decide(3, None, &RateLimitStatus::default(), &claims, now);
    assert_eq!(
        decision.holding,
        vec![0, 1, 2],
        "the first three in the queue"
    );
    assert_eq!(decision.waiting.len(), 6);
    assert_eq!((status.used, status.phase), (3, RateLimitPhase::Limited));
    assert_eq!(status.next_slot_at.as_ref().map(|t| t.0), Some(at(2_000)));
    assert_eq!(
        decision.next_look,
        Some(at(2_000)),
        "looks again when a slot opens"
    );
    assert_eq!(status.claims.fencing_token, 3);

    // The three holders finish at once; nobody else is granted before the window moves.
    let rest: Vec<PermitRecord> = (3..9)
        .map(|i| claim(i, i as i64, None, at(1_000)))
        .collect();
    let (early, _) = decide(3, None, &status, &rest, at(1_999));
    assert!(
        early.holding.is_empty(),
        "the window still holds three grants"
    );
    let (later, status) = decide(3, None, &status, &rest, at(2_000));
    assert_eq!(later.holding.len(), 3);
    assert_eq!(
        status.used, 3,
        "the old grants left the window, three new ones came in"
    );
    assert_eq!(status.claims.fencing_token, 6, "tokens go on rising");
}

#[test]
fn evaluating_the_answer_again_changes_nothing() {
    let now = at(0);
    let claims: Vec<PermitRecord> = (0..5).map(|i| claim(i, i as i64, None, now)).collect();
    let (decision, status) = decide(2, None, &RateLimitStatus::default(), &claims, now);
    let granted: Vec<PermitRecord> = claims
        .iter()
        .zip(&decision.permits)
        .map(|(p, d)| PermitRecord {
            grant: d.token.map(|token| GrantRecord {
                token,
                granted_at: now,
            }),
            ..p.clone()
        })
        .collect();
    let (again, status_again) = decide(2, None, &status, &granted, now);
    assert_eq!(again.holding, decision.holding);
    assert!(again.transitions.is_empty());
    assert_eq!(status_again.recent_grants, status.recent_grants);
}

#[test]
fn grant_times_from_before_a_restart_count_even_from_a_clock_that_went_back() {
    // The window was counted by a controller whose clock was ahead: its grants seem to
    // lie in the future now. They still count, for longer — a restart only delays.
    let recorded = RateLimitStatus {
        recent_grants: vec![MicroTime(at(5_000)), MicroTime(at(5_000))],
        ..RateLimitStatus::default()
    };
    let now = at(0);
    let claims: Vec<PermitRecord> = (0..3).map(|i| claim(i, i as i64, None, now)).collect();
    let (decision, status) = decide(2, None, &recorded, &claims, now);
    assert!(decision.holding.is_empty());
    assert_eq!(status.used, 2);
    assert_eq!(status.next_slot_at.as_ref().map(|t| t.0), Some(at(7_000)));
}

#[test]
fn max_concurrent_bounds_the_holders_as_well_as_the_window() {
    let now = at(0);
    let holder = claim(
        0,
        0,
        Some(GrantRecord {
            token: 1,
            granted_at: now,
        }),
        now,
    );
    let recorded = RateLimitStatus {
        recent_grants: vec![MicroTime(now)],
        claims: crate::locks::ClaimsStatus {
            fencing_token: 1,
            ..Default::default()
        },
        ..RateLimitStatus::default()
    };
    let claims = vec![holder, claim(1, 1, None, now)];
    let (decision, status) = decide(10, Some(1), &recorded, &claims, now);
    assert_eq!(decision.holding, vec![0]);
    assert_eq!(decision.waiting, vec![1]);
    assert_eq!(status.phase, RateLimitPhase::Limited);
    assert_eq!(
        status.next_slot_at, None,
        "a release, not time, frees the slot"
    );
    // The holder leaves: the waiter is granted at once.
    let (decision, _) = decide(10, Some(1), &status, &claims[1..], now);
    assert_eq!(decision.holding, vec![0]);
    assert_eq!(decision.permits[0].phase, PermitPhase::Granted);
}

/// Claims arriving and finishing at random moments, the controller evaluating at
/// random moments: no window of `WINDOW` ever holds more than `limit` grant times.
#[test]
fn no_window_ever_holds_more_than_the_limit() {
    let limit = 3;
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        i64::try_from(seed % u64::try_from(bound).unwrap()).unwrap()
    };
    let mut status = RateLimitStatus::default();
    let mut claims: Vec<PermitRecord> = Vec::new();
    let mut all_grants: Vec<i64> = Vec::new();
    let mut t = 0;
    for i in 0..400 {
        t += next(300);
        let now = at(t);
        if next(2) == 0 {
            claims.push(claim(i, t, None, now));
        }
        // Holders finish now and then.
        claims.retain(|c| c.grant.is_none() || next(3) != 0);
        for c in &mut claims {
            c.renewal = Renewal::Seen(now);
        }
        let (decision, decided) = decide(limit, None, &status, &claims, now);
        for (c, d) in claims.iter_mut().zip(&decision.permits) {
            if c.grant.is_none()
                && let Some(token) = d.token
            {
                all_grants.push(t);
                c.grant = Some(GrantRecord {
                    token,
                    granted_at: now,
                });
            }
        }
        status = decided;
    }
    assert!(
        all_grants.len() > 20,
        "the run granted something: {all_grants:?}"
    );
    let window_ms = i64::try_from(WINDOW.as_millis()).unwrap();
    for (i, start) in all_grants.iter().enumerate() {
        let within = all_grants[i..]
            .iter()
            .take_while(|&&g| g < start + window_ms)
            .count();
        assert!(
            within <= limit as usize,
            "{within} grants within {window_ms} ms from {start}: {all_grants:?}"
        );
    }
}
