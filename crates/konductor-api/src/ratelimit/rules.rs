//! The RateLimit rules: one pure function, [`evaluate`], from a RateLimit, the grant
//! times its status records and its claims to which claims are granted and the status
//! to write. The controller only writes its answer; nothing else decides.
//!
//! 1. **The window slides**: a grant counts against the limit from the moment it was
//!    made until `window` later. The grants counted are those the status records
//!    (`status.recentGrants`) with a time after `now - window` — including any time
//!    after `now` (a clock that went back after a restart): counted for longer, never
//!    less, so a restart or a leader change can only delay a grant, never allow one
//!    more.
//! 2. **How many may be granted now**: `limit` less the grants in the window; with
//!    `maxConcurrent`, also no more than it less those holding now.
//! 3. **Which**: the lock rules ([`crate::locks::rules::evaluate`]) grant that many
//!    from the head of the queue — priority, then arrival — with fencing tokens, and
//!    decide liveness and expiry as for every lock.
//! 4. **Recorded with the grant**: each grant's time goes into `status.recentGrants`
//!    in the same status write that makes the grant real; times that left the window
//!    are dropped.
//! 5. **When to look again**: when the oldest recorded grant leaves the window, while
//!    claims wait for a slot (besides the lock rules' own next look).
//!
//! Evaluating the answer again at the same moment changes nothing: a fixed point.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{CONDITION_AVAILABLE, RateLimitPhase, RateLimitStatus};
use crate::conditions::condition;
use crate::locks::rules::{Admits, Decision, LockInput, PermitRecord, Transition, expiry};
use crate::locks::status::{LockFacts, LockStatus, lock_status};

/// A RateLimit and its claims at one moment.
#[derive(Clone, Debug)]
pub struct RateLimitInput<'a> {
    /// `spec.limit`.
    pub limit: i64,
    /// `spec.window`.
    pub window: Duration,
    /// `spec.maxConcurrent`.
    pub max_concurrent: Option<i64>,
    /// `spec.ttl`.
    pub ttl: Duration,
    /// The grant times the status records, and its token counter.
    pub recorded: &'a RateLimitStatus,
    /// Every claim, as the lock rules see them.
    pub records: &'a [PermitRecord],
    /// The lock facts for the status (kind, generation, conditions, refusal).
    pub facts: LockFacts<'a>,
    /// Now, on the controller's clock.
    pub now: Timestamp,
}

/// `at + duration`, saturating.
fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    let duration = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// The grant times that still count at `now` (after `now - window`), oldest first.
pub fn in_window(recorded: &[MicroTime], window: Duration, now: Timestamp) -> Vec<Timestamp> {
    let mut times: Vec<Timestamp> = recorded
        .iter()
        .map(|t| t.0)
        .filter(|&t| plus(t, window) > now)
        .collect();
    times.sort();
    times
}

/// Decides the claims' grants and the RateLimit's status; see the module
/// documentation for the rules.
pub fn evaluate(input: &RateLimitInput<'_>) -> (Decision, LockStatus) {
    let now = input.now;
    let counted = in_window(&input.recorded.recent_grants, input.window, now);
    let used_before = i64::try_from(counted.len()).unwrap_or(i64::MAX);
    let alive = |p: &PermitRecord| expiry(p.renewal, input.ttl).is_some_and(|e| now < e);
    let holding = i64::try_from(
        input
            .records
            .iter()
            .filter(|p| p.grant.is_some() && alive(p))
            .count(),
    )
    .unwrap_or(i64::MAX);
    let mut new_grants = (input.limit - used_before).max(0);
    if let Some(max) = input.max_concurrent {
        new_grants = new_grants.min((max - holding).max(0));
    }
    let decision = crate::locks::rules::evaluate(&LockInput {
        admits: Admits::UpTo,
        permits: holding + new_grants,
        ttl: input.ttl,
        last_token: input.recorded.claims.fencing_token,
        permits_of_lock: input.records,
        now,
    });
    let granted_now = decision
        .transitions
        .iter()
        .filter(|t| matches!(t, Transition::Granted { .. }))
        .count();
    let mut recent = counted;
    recent.extend(std::iter::repeat_n(now, granted_now));
    let used = i64::try_from(recent.len()).unwrap_or(i64::MAX);
    let window_full = used >= input.limit;
    let concurrency_full = input
        .max_concurrent
        .is_some_and(|max| i64::try_from(decision.holding.len()).unwrap_or(i64::MAX) >= max);
    // The grant that must leave the window before another can be made.
    let next_slot_at = window_full
        .then(|| {
            let index = usize::try_from(used - input.limit).unwrap_or(0);
            recent.get(index).map(|&t| plus(t, input.window))
        })
        .flatten();
    let mut decision = decision;
    if !decision.waiting.is_empty()
        && let Some(slot) = next_slot_at
    {
        decision.next_look = Some(decision.next_look.map_or(slot, |look| look.min(slot)));
    }
    let LockStatus::RateLimit(mut status) =
        lock_status(&input.facts, &decision, input.records, now)
    else {
        unreachable!("lock_status answers a RateLimit's status for a RateLimit");
    };
    let available = !window_full && !concurrency_full;
    status.phase = if available {
        RateLimitPhase::Available
    } else {
        RateLimitPhase::Limited
    };
    status.used = i32::try_from(used).unwrap_or(i32::MAX);
    status.next_slot_at = next_slot_at.map(MicroTime);
    status.recent_grants = recent.into_iter().map(MicroTime).collect();
    let (reason, message) = match (window_full, concurrency_full) {
        (false, false) => (
            "SlotFree",
            format!("{used} of {} grants used in the window", input.limit),
        ),
        (true, _) => (
            "WindowFull",
            format!(
                "all {} grants of the window used; the next slot opens at {}",
                input.limit,
                next_slot_at.map_or("-".to_owned(), |t| t.to_string())
            ),
        ),
        (false, true) => (
            "ConcurrencyFull",
            format!(
                "{} holders at once, the most maxConcurrent allows",
                decision.holding.len()
            ),
        ),
    };
    status.claims.conditions.push(condition(
        input.facts.previous,
        CONDITION_AVAILABLE,
        available,
        reason,
        message,
        input.facts.generation,
        now,
    ));
    (decision, LockStatus::RateLimit(status))
}

#[cfg(test)]
mod tests;
