//! The RateLimit's wiring to the lock controller: its claims are Permits, followed,
//! expired and written by the lock controller; how many may be granted now — what its
//! window and `maxConcurrent` allow — and its status are decided here by
//! `konductor_api::ratelimit::rules`, in the lock rules' shape. The RateLimit joins the
//! lock controller as one more kind of its family ([`family`]).

use konductor_api::duration::parse_duration;
use konductor_api::locks::LockKind;
use konductor_api::locks::read_spec;
use konductor_api::locks::rules::Decision;
use konductor_api::locks::status::LockStatus;
use konductor_api::ratelimit::rules::{RateLimitInput, evaluate};
use konductor_api::ratelimit::{RateLimitSpec, RateLimitStatus};

use crate::locks::{Claimed, FamilyKind};

/// The RateLimit as a kind of the lock family.
pub fn family() -> FamilyKind {
    FamilyKind {
        kind: LockKind::RateLimit,
        decide,
    }
}

/// A RateLimit's decision from its stored spec and status (the grant times its window
/// is counted from) and its claims. A stored spec that cannot be read or used is
/// refused, naming the field.
fn decide(kind: LockKind, claimed: Claimed<'_>) -> Result<(Decision, LockStatus), String> {
    let Claimed {
        lock,
        records,
        ttl,
        now,
        ..
    } = claimed;
    let spec: RateLimitSpec = read_spec(&lock.spec)?;
    let window = parse_duration(&spec.window)
        .ok()
        .filter(|w| !w.is_zero())
        .ok_or_else(|| {
            format!(
                "spec.window {:?} is not a Go duration of at least 1s",
                spec.window
            )
        })?;
    let empty = RateLimitStatus::default();
    let recorded = match &lock.status {
        Some(LockStatus::RateLimit(stored)) => stored,
        _ => &empty,
    };
    Ok(evaluate(&RateLimitInput {
        limit: i64::from(spec.limit.max(1)),
        window,
        max_concurrent: spec.max_concurrent.map(i64::from),
        ttl,
        recorded,
        records: &records,
        facts: lock.facts(kind),
        now,
    }))
}
