//! The Once's wiring to the lock controller: a Once's claims are Permits, held like a
//! Mutex's, so the lock controller follows, expires and writes them; what a Once's
//! status says — who executes, what the attempts came to, which key — is decided here
//! by `konductor_api::once::rules` and handed back in the lock rules' shape. The Once
//! joins the lock controller as one more kind of its family ([`family`]).

use konductor_api::locks::LockKind;
use konductor_api::locks::read_spec;
use konductor_api::locks::rules::Decision;
use konductor_api::locks::status::LockStatus;
use konductor_api::once::rules::{ClaimRecord, OnceInput, evaluate};
use konductor_api::once::{OnceSpec, OnceStatus};

use crate::locks::{Claimed, FamilyKind};

/// The Once as a kind of the lock family.
pub fn family() -> FamilyKind {
    FamilyKind {
        kind: LockKind::Once,
        decide,
    }
}

/// A Once's decision (`konductor_api::once::rules`) from its stored spec and status,
/// its generation and its claims: the claims' part in the lock rules' shape, and the
/// Once's status to write. A stored spec that cannot be read is refused, naming the
/// field.
fn decide(_: LockKind, claimed: Claimed<'_>) -> Result<(Decision, LockStatus), String> {
    let Claimed {
        lock,
        permits,
        records,
        ttl,
        now,
    } = claimed;
    let spec: OnceSpec = read_spec(&lock.spec)?;
    let claims: Vec<ClaimRecord> = permits
        .iter()
        .zip(records)
        .map(|(indexed, permit)| ClaimRecord {
            permit,
            key: indexed.permit.spec.key.clone(),
            outcome: indexed.permit.spec.outcome.clone(),
            interrupting: indexed.permit.spec.interrupting,
        })
        .collect();
    let empty = OnceStatus::default();
    let stored = match &lock.status {
        Some(LockStatus::Once(stored)) => stored,
        _ => &empty,
    };
    let decided = evaluate(&OnceInput {
        key: spec.key.as_deref(),
        max_attempts: spec.max_attempts,
        max_interruptions: spec.max_interruptions,
        ttl,
        status: stored,
        claims: &claims,
        generation: lock.generation,
        now,
    });
    Ok((decided.claims, LockStatus::Once(decided.status)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::cache::LockState;
    use kube::api::DynamicObject;

    #[test]
    fn a_stored_spec_that_cannot_be_read_is_refused_naming_the_field_never_defaulted() {
        let mut once = DynamicObject::new("migrate", &LockKind::Once.api_resource()).within("ns");
        once.data = serde_json::json!({"spec": {"ttl": "30s", "maxAttempts": "three"}});
        let lock = LockState::of(LockKind::Once, &once);
        let claimed = Claimed {
            lock: &lock,
            permits: &[],
            records: Vec::new(),
            ttl: std::time::Duration::from_secs(30),
            now: jiff::Timestamp::now(),
        };
        let Err(refusal) = (family().decide)(LockKind::Once, claimed) else {
            panic!("a Once whose spec cannot be read is refused");
        };
        assert!(
            refusal.starts_with("spec.maxAttempts: invalid type"),
            "{refusal}"
        );
    }
}
