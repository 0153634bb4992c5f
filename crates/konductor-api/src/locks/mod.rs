//! The lock family (`konductor.io/v1`): processes take turns instead of waiting for
//! each other.
//!
//! - [`Semaphore`]: at most `spec.permits` holders at once.
//! - [`Mutex`]: one holder at a time.
//! - [`RWMutex`]: many readers or one writer; a waiting writer stops later readers.
//! - [`crate::once::Once`]: a piece of work run once per key by one fenced executor at a time
//!   (its executor holds it as a Mutex's holder does, then reports the outcome).
//! - [`Permit`]: one holder's claim on one lock (as an Arrival is on a Barrier), named
//!   by [`permit_name`] so acquiring twice is the same create; deleting it releases.
//!
//! Every grant carries a fencing token, strictly increasing for the life of the lock;
//! a claim whose holder stops renewing for `spec.ttl` (on the controller's clock)
//! expires, waiting or granted. Which permits are granted is decided by
//! [`rules::evaluate`] alone, one pure function for all three kinds; the lock's status
//! lists the grants in force ([`Grant`]). The semantics are in `docs/locks.md`.

mod kinds;
mod permit;
pub mod rules;
pub mod status;

pub use kinds::{
    ClaimsStatus, CommonLockSpec, CommonLockStatus, Grant, Mutex, MutexPhase, MutexSpec,
    MutexStatus, RWMutex, RWMutexPhase, RWMutexSpec, RWMutexStatus, Semaphore, SemaphorePhase,
    SemaphoreSpec, SemaphoreStatus, read_spec,
};
pub use permit::{
    LockKind, LockRef, Permit, PermitMode, PermitPhase, PermitSpec, PermitStatus, permit_name,
};

/// The longest lock name: names double as the value of [`lock_label`] (label values are
/// at most 63 characters). The CRDs enforce it, as for barriers.
pub const MAX_LOCK_NAME_LEN: usize = 63;

/// The label on every Permit naming its lock, one key per kind
/// (`konductor.io/mutex: db-migrate`), so `kubectl get permits -l
/// konductor.io/mutex=db-migrate` lists one lock's permits.
pub fn lock_label(kind: LockKind) -> String {
    format!("konductor.io/{}", kind.word())
}

/// The label on a Permit naming the client (one SDK `Locks`, one `koncli` process)
/// that follows it: each client watches its own Permits by this label — and nothing
/// else — so a grant, a release or a renewal reaches one waiting process, not the
/// whole queue. Its value is opaque, unique per client.
pub const CLIENT_LABEL: &str = "konductor.io/client";

/// The default `spec.ttl`: how long a grant lives without renewal.
pub const DEFAULT_TTL: &str = "5m";

/// The shortest `spec.ttl` a lock accepts. A holder renews its claim six times per ttl
/// and stops its command a fifth of the ttl before the grant could expire
/// (`docs/locks.md`, "What a holder can rely on"); below 2s those steps leave too little
/// time for a round trip to the API server. The CRDs enforce it, and the controller
/// refuses a shorter ttl (Ready=False) should an API server let one in.
pub const MIN_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// `type` of the condition that says whether the controller accepted the lock's spec
/// (the same condition barriers have).
pub use crate::conditions::CONDITION_READY;

/// `type` of a Mutex's or RWMutex's condition that is `True` while anyone holds it
/// (`kubectl wait --for=condition=Locked=false mutex/NAME` waits until it is free).
pub const CONDITION_LOCKED: &str = "Locked";

/// `type` of a Semaphore's condition that is `True` while a permit is free.
pub const CONDITION_AVAILABLE: &str = "Available";

/// How long the controller keeps an Expired Permit before deleting it: long enough for
/// `kubectl get permits` to show what happened, short enough that holders whose names
/// never recur (every `koncli … run` is a new holder) do not pile up.
pub const EXPIRED_PERMIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(600);

/// `type` of a Permit's condition that is `True` while it is granted, so that
/// `kubectl wait --for=condition=Granted permit/NAME` works.
pub const CONDITION_GRANTED: &str = "Granted";

/// The lock kinds' resources, as the list of kinds registers them: Semaphore, Mutex,
/// RWMutex and their claims, the Permits (a Once's claims too).
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, NONE, READ};
    use kube::CustomResourceExt;
    let lock = |crd| KindEntry {
        controller: Access {
            verbs: READ,
            status_verbs: &["patch"],
        },
        // create: `run` and `lock` make a lock that does not exist on first use.
        workload: Access {
            verbs: &["create", "get", "list", "watch"],
            ..NONE
        },
        ..KindEntry::of(crd, Some(MAX_LOCK_NAME_LEN))
    };
    vec![
        lock(Semaphore::crd()),
        lock(Mutex::crd()),
        lock(RWMutex::crd()),
        KindEntry {
            // patch: adoption; delete: a claim expired for 10 minutes.
            controller: Access {
                verbs: &["get", "list", "watch", "patch", "delete"],
                status_verbs: &["patch"],
            },
            // patch: renewal; delete: release.
            workload: Access {
                verbs: &["create", "get", "list", "watch", "patch", "delete"],
                ..NONE
            },
            reconciled: false,
            ..KindEntry::of(Permit::crd(), None)
        },
    ]
}
