//! The Once's wiring to the lock controller: a Once's claims are Permits, held like a
//! Mutex's, so the lock controller follows, expires and writes them; what a Once's
//! status says — who executes, what the attempts came to, which key — is decided here
//! by `konductor_api::once::rules` and handed back in the lock rules' shape.

use std::time::Duration;

use konductor_api::locks::rules::Decision;
use konductor_api::locks::status::LockStatus;
use konductor_api::once::rules::{ClaimRecord, OnceInput, evaluate};
use konductor_api::once::{OnceSpec, OnceStatus};

/// A Once's decision (`konductor_api::once::rules`) from its `spec`, its `stored`
/// status (`None` before the first), its `generation` and its `claims`: the claims'
/// part in the lock rules' shape, and the Once's status to write.
pub fn decide(
    spec: &OnceSpec,
    stored: Option<&OnceStatus>,
    generation: Option<i64>,
    claims: &[ClaimRecord],
    ttl: Duration,
    now: jiff::Timestamp,
) -> (Decision, LockStatus) {
    let empty = OnceStatus::default();
    let stored = stored.unwrap_or(&empty);
    let decided = evaluate(&OnceInput {
        key: spec.key.as_deref(),
        max_attempts: spec.max_attempts,
        max_interruptions: spec.max_interruptions,
        ttl,
        status: stored,
        claims,
        generation,
        now,
    });
    (decided.claims, LockStatus::Once(decided.status))
}
