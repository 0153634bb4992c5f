//! Konductor's API: every custom resource (`konductor.io/v1`) with the pure rules that
//! decide its status. No I/O: every other Konductor crate builds on this one.
//!
//! # Layout
//! One folder per kind, each holding the kind's resources (spec, status, phases) and
//! its `rules` — the one pure function that decides the status:
//! - [`barrier`]: the Barrier and its claims, the Arrivals ([`barrier::arrival`]).
//! - [`locks`]: Semaphore, Mutex, RWMutex and their claims, the Permits.
//! - [`once`]: the Once (a member of the lock family: its claims are Permits).
//! - [`ratelimit`]: the RateLimit (grants per window; a member of the lock family).
//! - [`waitgroup`]: the WaitGroup and its members (WaitGroupMember).
//! - [`gate`]: the Gate (conditions on other resources), with its presets.
//!
//! What the kinds share:
//! - [`evaluation`]: the shape of every subject kind's rules' answer.
//! - [`conditions`]: status conditions as every kind's rules write them.
//! - [`duration`]: Go-style durations (`30s`, `1h30m`) for specs and the CLI.
//! - [`jsonpath`]: Kubernetes' JSONPath (client-go's), for Gate tests and printer
//!   columns.
//! - [`names`]: Kubernetes' name rules (DNS-1123 labels and subdomains).
//! - [`mod@reference`]: `kind/name` references to objects, as users write them.
//! - [`kinds`]: **the list of kinds**, each registered by its module; [`crd`] their
//!   CRDs, [`rbac`] the roles generated from them.

pub mod barrier;
pub mod conditions;
pub mod crd;
pub mod duration;
pub mod evaluation;
pub mod gate;
pub mod jsonpath;
pub mod locks;
pub mod names;
pub mod once;
pub mod ratelimit;
pub mod rbac;
pub mod reference;
pub mod waitgroup;

pub use barrier::arrival::{Arrival, ArrivalSpec, ArrivalStatus, Outcome, arrival_name};
pub use barrier::{
    BARRIER_LABEL, Barrier, BarrierPhase, BarrierSpec, BarrierStatus, CONDITION_OPEN,
    CONDITION_READY, ReportedFailure,
};

/// **The list of Konductor's kinds**, each registered by its own module: the CRDs
/// (`config/crd/` and its kustomization), the embedded server's resources and storage
/// buckets, both RBAC roles (`config/rbac/`), the controllers' metrics and the API
/// reference all follow it. Which accesses are right is checked against what koncli
/// and the controllers really ask of a server (`crates/koncli/tests/rbac.rs`).
pub fn kinds() -> Vec<crd::KindEntry> {
    [
        barrier::kinds(),
        locks::kinds(),
        once::kinds(),
        ratelimit::kinds(),
        waitgroup::kinds(),
        gate::kinds(),
    ]
    .concat()
}

/// How many interruptions of one WaitGroup member or one Once key do not count as
/// failures, unless the spec says otherwise: a task stopped by its deadline every time
/// must not retry forever.
pub const DEFAULT_MAX_INTERRUPTIONS: i32 = 3;

/// The API group of Konductor's resources.
pub const GROUP: &str = "konductor.io";
/// The API version of Konductor's resources.
pub const VERSION: &str = "v1";
/// `apiVersion` of every Konductor resource: [`GROUP`]/[`VERSION`].
pub const API_VERSION: &str = "konductor.io/v1";

/// The owner reference a claim (an Arrival, a Permit) carries to its subject, the
/// Konductor object `kind` `name` with `uid`: deleting the subject collects its claims,
/// and a claim owned by an earlier object of the same name is told apart by the uid.
pub fn owner_reference(
    kind: impl Into<String>,
    name: impl Into<String>,
    uid: impl Into<String>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// During a rolling upgrade an older client reads statuses and claims a newer
    /// controller or client wrote: values it does not know decode as `Unknown`.
    #[test]
    fn statuses_and_claims_from_a_newer_version_decode_with_unknown_values() {
        let barrier: crate::BarrierStatus =
            serde_json::from_value(json!({"phase": "Paused", "arrived": 1})).unwrap();
        assert_eq!(barrier.phase, crate::BarrierPhase::Unknown);
        assert!(!barrier.phase.is_finished());
        let group: crate::waitgroup::WaitGroupStatus =
            serde_json::from_value(json!({"phase": "Draining"})).unwrap();
        assert_eq!(group.phase, crate::waitgroup::WaitGroupPhase::Unknown);
        assert!(!group.phase.is_finished());
        let gate: crate::gate::GateStatus =
            serde_json::from_value(json!({"phase": "Half-open"})).unwrap();
        assert_eq!(gate.phase, crate::gate::GatePhase::Unknown);
        let permit: crate::locks::PermitStatus =
            serde_json::from_value(json!({"phase": "Parked"})).unwrap();
        assert_eq!(permit.phase, crate::locks::PermitPhase::Unknown);
        let mutex: crate::locks::MutexStatus =
            serde_json::from_value(json!({"phase": "Fenced"})).unwrap();
        assert_eq!(mutex.phase, crate::locks::MutexPhase::Unknown);
        let permit: crate::locks::PermitSpec = serde_json::from_value(json!({
            "lockRef": {"kind": "Quota", "name": "deploys"},
            "holder": "h", "mode": "Upgradable"
        }))
        .unwrap();
        assert_eq!(permit.lock_ref.kind, crate::locks::LockKind::Unknown);
        assert_eq!(permit.mode, crate::locks::PermitMode::Unknown);
        let arrival: crate::ArrivalSpec =
            serde_json::from_value(json!({"barrier": "b", "holder": "h", "outcome": "Skipped"}))
                .unwrap();
        assert_eq!(arrival.outcome, crate::Outcome::Unknown);
        let member: crate::waitgroup::WaitGroupMemberSpec = serde_json::from_value(json!({
            "waitGroup": "g", "member": "m",
            "attempts": [{"result": "Preempted"}],
            "outcome": {"result": "Cancelled"}
        }))
        .unwrap();
        assert_eq!(
            member.attempts[0].result,
            crate::waitgroup::AttemptResult::Unknown
        );
        assert_eq!(
            member.outcome.map(|o| o.result),
            Some(crate::Outcome::Unknown)
        );
    }

    #[test]
    fn the_api_version_is_group_slash_version() {
        assert_eq!(
            super::API_VERSION,
            format!("{}/{}", super::GROUP, super::VERSION)
        );
    }
}
