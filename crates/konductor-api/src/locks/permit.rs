//! The `Permit`: one holder's claim on one lock. Creating it asks for the lock,
//! bumping `spec.renewTime` keeps a grant alive, deleting it releases.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Which kind of lock a Permit claims.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
pub enum LockKind {
    /// A [`super::Semaphore`].
    Semaphore,
    /// A [`super::Mutex`].
    Mutex,
    /// An [`super::RWMutex`].
    RWMutex,
    /// A [`crate::once::Once`]: its executor holds it like a Mutex, and reports the
    /// work's outcome on its Permit.
    Once,
    /// A [`crate::ratelimit::RateLimit`]: granted as its window allows.
    RateLimit,
    /// A kind this version does not know (a newer client's claim): nothing is granted
    /// to it, and it is not read as any lock.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

impl LockKind {
    /// The API resource of this kind of lock, for clients that handle all three kinds
    /// alike (as dynamic objects).
    pub fn api_resource(self) -> kube::core::ApiResource {
        match self {
            LockKind::Semaphore => kube::core::ApiResource::erase::<super::Semaphore>(&()),
            LockKind::Mutex => kube::core::ApiResource::erase::<super::Mutex>(&()),
            LockKind::RWMutex => kube::core::ApiResource::erase::<super::RWMutex>(&()),
            LockKind::Once => kube::core::ApiResource::erase::<crate::once::Once>(&()),
            LockKind::RateLimit => {
                kube::core::ApiResource::erase::<crate::ratelimit::RateLimit>(&())
            }
            LockKind::Unknown => kube::core::ApiResource {
                group: crate::GROUP.to_owned(),
                version: crate::VERSION.to_owned(),
                api_version: crate::API_VERSION.to_owned(),
                kind: "Unknown".to_owned(),
                plural: "unknown".to_owned(),
            },
        }
    }

    /// The kind's resource (plural), as the API serves it.
    pub fn plural(self) -> &'static str {
        match self {
            LockKind::Semaphore => "semaphores",
            LockKind::Mutex => "mutexes",
            LockKind::RWMutex => "rwmutexes",
            LockKind::Once => "onces",
            LockKind::RateLimit => "ratelimits",
            LockKind::Unknown => "unknown",
        }
    }

    /// How a lock of this kind admits holders: all the lock rules know of its kind.
    pub fn admits(self) -> super::rules::Admits {
        use super::rules::Admits;
        match self {
            LockKind::Semaphore => Admits::Counted,
            // A Once's executor holds it as a Mutex's holder does.
            LockKind::Mutex | LockKind::Once => Admits::OneHolder,
            LockKind::RWMutex => Admits::ReadersOrOneWriter,
            // As many as its window (and maxConcurrent) allow now: its rules say how many.
            LockKind::RateLimit => Admits::UpTo,
            LockKind::Unknown => Admits::Nobody,
        }
    }

    /// The lower-case name used in permit names, labels and koncli commands.
    pub fn word(self) -> &'static str {
        match self {
            LockKind::Semaphore => "semaphore",
            LockKind::Mutex => "mutex",
            LockKind::RWMutex => "rwmutex",
            LockKind::Once => "once",
            LockKind::RateLimit => "ratelimit",
            LockKind::Unknown => "unknown",
        }
    }
}

/// The lock a Permit claims, in the Permit's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub struct LockRef {
    /// Semaphore, Mutex or RWMutex.
    pub kind: LockKind,
    /// The lock's name.
    #[schemars(length(min = 1, max = super::MAX_LOCK_NAME_LEN))]
    pub name: String,
}

/// How a Permit holds its lock.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum PermitMode {
    /// Alone (a Mutex, an RWMutex write lock) or as one of `permits` (a Semaphore).
    #[default]
    Exclusive,
    /// Beside other Shared holders: an RWMutex read lock.
    Shared,
    /// A mode this version does not know (a newer client's claim): never granted.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// One holder's request for a lock.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Permit",
    plural = "permits",
    singular = "permit",
    shortname = "pmt",
    category = "konductor",
    namespaced,
    status = "PermitStatus",
    derive = "PartialEq",
    doc = "A Permit is one holder's claim on a Semaphore, Mutex, RWMutex, Once or RateLimit in the same namespace: created to ask, renewed to keep, deleted to release.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.lockRef.kind"),
    printcolumn(name = "Lock", type_ = "string", json_path = ".spec.lockRef.name"),
    printcolumn(name = "Holder", type_ = "string", json_path = ".spec.holder"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Token", type_ = "integer", json_path = ".status.fencingToken"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PermitSpec {
    /// The lock claimed. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("lockRef is immutable"))]
    pub lock_ref: LockRef,

    /// Who claims it: a pod name, hostname or any identifier unique among the lock's
    /// users. Immutable.
    #[schemars(length(min = 1, max = crate::barrier::arrival::MAX_HOLDER_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("holder is immutable"))]
    pub holder: String,

    /// `Exclusive` (the default), or `Shared` for an RWMutex read lock. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("mode is immutable"))]
    pub mode: PermitMode,

    /// Higher is granted first; FIFO among equal priorities (default 0).
    #[serde(default)]
    pub priority: i32,

    /// Bumped by the holder to show it is alive. The controller measures the ttl from
    /// when it sees this change, on its own clock, never from the value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,

    /// A claim on a Once: the key it asks to have run (absent: the Once's `spec.key`).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::once::MAX_KEY_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("key is immutable"))]
    pub key: Option<String>,

    /// A claim on a Once: what its work came to, reported by the executor with the
    /// fencing token it ran under. Written once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("outcome is written once"))]
    pub outcome: Option<crate::once::ReportedOutcome>,

    /// Set by the holder when the command it runs under the grant was interrupted (a
    /// signal): for a Once, the attempt's end — or its expiry — is then an interruption,
    /// not a failure. The holder keeps renewing until the command is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupting: bool,
}

impl Permit {
    /// The Permit a holder asks with, as every Konductor client writes it: named by
    /// [`permit_name`] (so asking twice is the same create), labelled with its lock
    /// ([`super::lock_label`]) and owned by the lock with `lock_uid`.
    pub fn for_lock(spec: PermitSpec, lock_uid: &str) -> Self {
        let LockRef { kind, name: lock } = spec.lock_ref.clone();
        let mut permit = Self::new(&permit_name(kind, &lock, &spec.holder), spec);
        permit.metadata.labels = Some([(super::lock_label(kind), lock.clone())].into());
        permit.metadata.owner_references = Some(vec![crate::owner_reference(
            kind.api_resource().kind,
            lock,
            lock_uid,
        )]);
        permit
    }
}

impl PermitSpec {
    /// An exclusive claim of `holder` on the `kind` lock `name`, at priority 0.
    pub fn new(kind: LockKind, name: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            lock_ref: LockRef {
                kind,
                name: name.into(),
            },
            holder: holder.into(),
            mode: PermitMode::Exclusive,
            priority: 0,
            renew_time: None,
            key: None,
            outcome: None,
            interrupting: false,
        }
    }

    /// Sets the mode.
    #[must_use]
    pub fn with_mode(mut self, mode: PermitMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the key a claim on a Once asks for.
    #[must_use]
    pub fn with_key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// Where a Permit stands.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum PermitPhase {
    /// Queued (`status.position` says where).
    #[default]
    Pending,
    /// Holding the lock (`status.fencingToken` says with which token).
    Granted,
    /// Was granted, but not renewed for the lock's ttl: no longer holds it. Delete it
    /// (and create it again) to ask anew.
    Expired,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the controller decided about a Permit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermitStatus {
    /// Pending, Granted or Expired.
    #[serde(default)]
    pub phase: PermitPhase,
    /// Place in the queue when it was queued (1 is next); the lock's `status.waiting`
    /// is the live order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i32>,
    /// When it was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<MicroTime>,
    /// When the grant expires unless renewed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<MicroTime>,
    /// The grant's fencing token: pass it to what the lock protects, which should
    /// refuse tokens older than the newest it has seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// `Granted`: `True` while granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl PermitStatus {
    /// Whether `self` says something `stored` does not, compared as the API server
    /// stores them (times at its microsecond precision).
    pub fn differs_from(&self, stored: Option<&PermitStatus>) -> bool {
        stored.is_none_or(|stored| {
            serde_json::to_value(self).ok() != serde_json::to_value(stored).ok()
        })
    }

    /// The status as the body of a merge patch that replaces the stored one whole:
    /// every field it leaves out is `null` (removed), not kept from before. The field
    /// names come from the type's own schema.
    pub fn as_replacement(&self) -> serde_json::Value {
        static FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            schemars::schema_for!(PermitStatus)
                .get("properties")
                .and_then(serde_json::Value::as_object)
                .map(|properties| properties.keys().cloned().collect())
                .unwrap_or_default()
        });
        let mut status = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = status.as_object_mut() {
            for field in FIELDS.iter() {
                fields
                    .entry(field.clone())
                    .or_insert(serde_json::Value::Null);
            }
        }
        status
    }
}

/// The deterministic name of `holder`'s Permit on the `kind` lock `lock`: a DNS-1123
/// label, the same for the same three inputs, so acquiring twice is the same create.
///
/// ```
/// use konductor_api::locks::{LockKind, permit_name};
/// let name = permit_name(LockKind::Mutex, "db-migrate", "job-7");
/// assert!(name.starts_with("mutex-db-migrate-job-7-"));
/// assert_ne!(name, permit_name(LockKind::Semaphore, "db-migrate", "job-7"));
/// ```
pub fn permit_name(kind: LockKind, lock: &str, holder: &str) -> String {
    crate::barrier::arrival::claim_name(&format!("{}-{lock}", kind.word()), holder)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_replacement_status_removes_every_field_it_leaves_out() {
        let granted = super::PermitStatus {
            phase: super::PermitPhase::Granted,
            fencing_token: Some(3),
            ..Default::default()
        };
        let body = granted.as_replacement();
        assert_eq!(body["fencingToken"], 3);
        for removed in ["position", "grantedAt", "expiresAt"] {
            assert_eq!(
                body.get(removed),
                Some(&serde_json::Value::Null),
                "{removed}"
            );
        }
    }
}
