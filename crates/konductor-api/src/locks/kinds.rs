//! The three lock kinds. Their specs say how many may hold them and for how long
//! without renewal; their statuses are written by the controller from
//! [`super::rules::evaluate`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::PermitMode;

/// One grant of a lock, as the lock's status lists it: who holds it, through which
/// Permit (its uid tells a Permit from an earlier one of the same name), with which
/// fencing token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// Who holds it (the Permit's `spec.holder`).
    pub holder: String,
    /// The Permit's name.
    pub permit: String,
    /// The Permit's uid.
    pub uid: String,
    /// The grant's fencing token.
    pub token: i64,
    /// Exclusive, or Shared (an RWMutex reader).
    #[serde(default)]
    pub mode: PermitMode,
    /// When it was granted.
    pub granted_at: MicroTime,
    /// When it expires unless the controller sees a renewal before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<MicroTime>,
}

/// What every lock's status records of its claims — who holds it (each grant with
/// its Permit and fencing token), who waits, the token counter and the conditions —
/// flattened into each kind's status (a Once's too), so the fields sit at the top of
/// `status` as users read them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsStatus {
    /// The holders waiting, in the order they will be granted.
    #[serde(default)]
    pub waiting: Vec<String>,
    /// How many holders wait (the length of `waiting`), for `kubectl get`.
    #[serde(default)]
    pub waiting_count: i32,
    /// Every grant in force, each with its Permit and fencing token, in token order.
    /// A grant becomes real here: the controller writes it to the lock's status before
    /// anywhere else, and a holder holds the lock while its Permit's uid is listed.
    /// (Absent only in statuses written before this field existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,
    /// The last fencing token issued (0 before the first grant).
    #[serde(default)]
    pub fencing_token: i64,
    /// `Ready` (whether the spec was accepted) and the kind's own: `Available` (a
    /// Semaphore has a permit free), `Locked` (a Mutex or RWMutex is held), `Done` (a
    /// Once's work succeeded for its key) — so that `kubectl wait --for=condition=…`
    /// works on locks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What every lock kind's status has in common — the part clients read to learn of a
/// grant, whatever the kind (each kind's status deserializes into it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommonLockStatus {
    /// The kind's phase, as text.
    #[serde(default)]
    pub phase: Option<String>,
    /// What every kind records of its claims.
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}

impl CommonLockStatus {
    /// The status of a lock object of any kind (empty before the controller wrote one,
    /// or if what is stored is not a lock status).
    pub fn of(lock: &kube::core::DynamicObject) -> Self {
        lock.data
            .get("status")
            .and_then(|status| Self::deserialize(status).ok())
            .unwrap_or_default()
    }

    /// The condition of `type_`, if the controller has written one.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.claims.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// What every lock kind's spec has in common (each kind's spec deserializes into it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CommonLockSpec {
    /// `spec.ttl`, as written.
    #[serde(default = "default_ttl")]
    pub ttl: String,
    /// A Semaphore's `spec.permits`; `None` for the other kinds (one holder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permits: Option<i32>,
}

impl Default for CommonLockSpec {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            permits: None,
        }
    }
}

impl CommonLockSpec {
    /// The spec of a lock object of any kind, or which field cannot be read (an API
    /// server without the CRD's validation may store anything).
    pub fn of(lock: &kube::core::DynamicObject) -> Result<Self, String> {
        read_spec(lock.data.get("spec").unwrap_or(&serde_json::Value::Null))
    }

    /// How many holders the lock admits at once: `permits`, or 1.
    pub fn capacity(&self) -> i64 {
        self.permits.map_or(1, i64::from)
    }
}

/// A stored object's `spec` as `T` (the defaults when it has none), or an error naming
/// the field that does not fit (`spec.maxAttempts: invalid type: …`): a malformed
/// stored spec is reported, never read as the defaults.
pub fn read_spec<T: serde::de::DeserializeOwned + Default>(
    spec: &serde_json::Value,
) -> Result<T, String> {
    if spec.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(spec).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." {
            "spec".to_owned()
        } else {
            format!("spec.{path}")
        };
        format!("{field}: {}", error.inner())
    })
}

fn default_ttl() -> String {
    super::DEFAULT_TTL.to_owned()
}

/// A Semaphore: at most `permits` holders at once.
// Clippy mistakes the repeated `type_ = ...` inside kube's `printcolumn(...)` arguments
// for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Semaphore",
    plural = "semaphores",
    singular = "semaphore",
    shortname = "sem",
    category = "konductor",
    namespaced,
    status = "SemaphoreStatus",
    derive = "PartialEq",
    doc = "A Semaphore lets at most `spec.permits` holders in at once; the rest wait in order of priority, then arrival.",
    printcolumn(name = "Permits", type_ = "integer", json_path = ".spec.permits"),
    printcolumn(name = "In Use", type_ = "integer", json_path = ".status.inUse"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.available"),
    printcolumn(
        name = "Waiting",
        type_ = "integer",
        json_path = ".status.waitingCount"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreSpec {
    /// How many holders may hold the semaphore at once (at least 1). Lowering it below
    /// the number in use revokes nobody; new grants wait until enough release.
    #[schemars(range(min = 1))]
    pub permits: i32,

    /// How long a grant lives without renewal, as a Go duration (default `5m`). A holder
    /// renews by bumping its Permit's `spec.renewTime`.
    #[serde(default = "default_ttl")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: a holder renews its claim several times per ttl, and needs time to stop its command before the ttl runs out"))]
    pub ttl: String,
}

/// Whether a Semaphore has a permit free.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum SemaphorePhase {
    /// At least one permit is free.
    #[default]
    Available,
    /// Every permit is in use.
    Exhausted,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the controller last decided about a Semaphore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreStatus {
    /// Available or Exhausted.
    #[serde(default)]
    pub phase: SemaphorePhase,
    /// Granted permits that have not expired.
    #[serde(default)]
    pub in_use: i32,
    /// Permits free now (never below 0).
    #[serde(default)]
    pub available: i32,
    /// The holders granted, in grant order.
    #[serde(default)]
    pub holders: Vec<String>,
    /// The grants in force, the queue, the token counter and the conditions.
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}

/// A Mutex: one holder at a time.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Mutex",
    plural = "mutexes",
    singular = "mutex",
    shortname = "mtx",
    category = "konductor",
    namespaced,
    status = "MutexStatus",
    derive = "PartialEq",
    doc = "A Mutex lets one holder in at a time; the rest wait in order of priority, then arrival.",
    printcolumn(name = "Holder", type_ = "string", json_path = ".status.holder"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Waiting",
        type_ = "integer",
        json_path = ".status.waitingCount"
    ),
    printcolumn(
        name = "Token",
        type_ = "integer",
        json_path = ".status.fencingToken",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MutexSpec {
    /// How long a grant lives without renewal, as a Go duration (default `5m`).
    #[serde(default = "default_ttl")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: a holder renews its claim several times per ttl, and needs time to stop its command before the ttl runs out"))]
    pub ttl: String,
}

/// Whether a Mutex is held.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum MutexPhase {
    /// Nobody holds it.
    #[default]
    Unlocked,
    /// One holder holds it.
    Locked,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the controller last decided about a Mutex.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutexStatus {
    /// Unlocked or Locked.
    #[serde(default)]
    pub phase: MutexPhase,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// When the current holder was granted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<MicroTime>,
    /// When the current grant expires unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<MicroTime>,
    /// The grants in force, the queue, the token counter and the conditions.
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}

/// An RWMutex: many readers or one writer.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "RWMutex",
    plural = "rwmutexes",
    singular = "rwmutex",
    shortname = "rwm",
    category = "konductor",
    namespaced,
    status = "RWMutexStatus",
    derive = "PartialEq",
    doc = "An RWMutex lets many readers or one writer in; a waiting writer stops readers that come after it.",
    printcolumn(name = "Writer", type_ = "string", json_path = ".status.writeHolder"),
    printcolumn(name = "Readers", type_ = "string", json_path = ".status.readHolders"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Waiting",
        type_ = "integer",
        json_path = ".status.waitingCount"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RWMutexSpec {
    /// How long a grant lives without renewal, as a Go duration (default `5m`).
    #[serde(default = "default_ttl")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: a holder renews its claim several times per ttl, and needs time to stop its command before the ttl runs out"))]
    pub ttl: String,
}

/// Who holds an RWMutex.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum RWMutexPhase {
    /// Nobody holds it.
    #[default]
    Unlocked,
    /// One or more readers hold it.
    ReadLocked,
    /// One writer holds it.
    WriteLocked,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the controller last decided about an RWMutex.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RWMutexStatus {
    /// Unlocked, ReadLocked or WriteLocked.
    #[serde(default)]
    pub phase: RWMutexPhase,
    /// The writer holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_holder: Option<String>,
    /// The readers holding it, in grant order.
    #[serde(default)]
    pub read_holders: Vec<String>,
    /// When it went from Unlocked to held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<MicroTime>,
    /// When the earliest current grant expires unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<MicroTime>,
    /// The grants in force, the queue, the token counter and the conditions.
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}
