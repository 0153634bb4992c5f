//! What the lock controller knows: every lock ([`Locks`]) and every permit by lock with
//! its renewals ([`PermitIndex`]) — both the engine's claim index — kept current from
//! the watches and from the answers to the controller's own writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use konductor_api::duration::parse_duration;
use konductor_api::locks::rules::Renewal;
use konductor_api::locks::status::LockStatus;
use konductor_api::locks::{CommonLockSpec, Grant, LockKind, MIN_TTL, Permit, PermitPhase};
use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::engine::claims::{ClaimIndex, Claims, HasUid};

/// One lock: its kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockKey {
    /// Semaphore, Mutex or RWMutex.
    pub kind: LockKind,
    /// The lock's namespace.
    pub namespace: String,
    /// The lock's name.
    pub name: String,
}

impl std::fmt::Display for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind.word(), self.namespace, self.name)
    }
}

impl LockKey {
    /// The lock as Events name it.
    pub fn reference(&self, uid: &str) -> k8s_openapi::api::core::v1::ObjectReference {
        let resource = self.kind.api_resource();
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: Some(uid.to_owned()),
            ..Default::default()
        }
    }
}

/// What the controller needs of a lock, whatever its kind.
#[derive(Clone, Debug)]
pub struct LockState {
    /// The lock's uid (for Events and owner references).
    pub uid: String,
    /// The resourceVersion this state is of: the lock's status is written only over it.
    pub version: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.permits` (1 for a Mutex or RWMutex).
    pub permits: i64,
    /// `spec.ttl`, or why the spec cannot be used (then nothing is granted).
    pub ttl: Result<Duration, String>,
    /// The status as stored, typed by the lock's kind (`None` before the controller
    /// first wrote one, or when what is stored is not that kind's status).
    pub status: Option<LockStatus>,
    /// The spec as stored, for what only one kind of the family has (a Once's key and
    /// limits): that kind reads it typed when it decides.
    pub spec: serde_json::Value,
}

impl LockState {
    /// The state of a `kind` lock object. A spec that cannot be read is refused
    /// (through `ttl`) naming the field, never read as the defaults.
    pub fn of(kind: LockKind, lock: &DynamicObject) -> Self {
        let (permits, ttl) = match CommonLockSpec::of(lock) {
            Ok(spec) => (spec.capacity(), ttl_of(&spec.ttl)),
            Err(why) => (1, Err(why)),
        };
        Self {
            uid: lock.uid().unwrap_or_default(),
            version: lock.resource_version(),
            generation: lock.metadata.generation,
            permits,
            ttl,
            status: LockStatus::of(kind, lock),
            spec: lock.data.get("spec").cloned().unwrap_or_default(),
        }
    }

    /// The last fencing token the stored status records (0 before the first grant).
    pub fn last_token(&self) -> i64 {
        self.status.as_ref().map_or(0, |s| s.claims().fencing_token)
    }

    /// The grants the lock's status lists (`None` for a status written before grants
    /// were listed there).
    pub fn grants(&self) -> Option<&[Grant]> {
        self.status.as_ref()?.claims().grants.as_deref()
    }

    /// What the lock rules' statuses need to know of this `kind` lock.
    pub fn facts(&self, kind: LockKind) -> konductor_api::locks::status::LockFacts<'_> {
        konductor_api::locks::status::LockFacts {
            kind,
            permits: self.permits,
            generation: self.generation,
            previous: self
                .status
                .as_ref()
                .map_or(&[][..], |s| &s.claims().conditions[..]),
            refusal: self.ttl.as_ref().err().map(String::as_str),
        }
    }

    /// Whether the lock's status lists a grant for the permit with this uid.
    pub fn grants_to(&self, uid: &str) -> bool {
        self.grants()
            .is_some_and(|grants| grants.iter().any(|g| g.uid == uid))
    }
}

/// `spec.ttl`, or why it cannot be used (an API server without the CRD's validation
/// may let a shorter one in).
fn ttl_of(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(ttl) if ttl < MIN_TTL => Err(format!(
            "spec.ttl {text:?} is shorter than the minimum of {}: a holder renews several times per ttl and must stop its command before it runs out",
            konductor_api::duration::format_duration(MIN_TTL)
        )),
        Ok(ttl) => Ok(ttl),
        Err(error) => Err(format!("spec.ttl: {error}")),
    }
}

/// How one kind's locks are kept: each lock the one entry of its own key in the
/// engine's index ([`ClaimIndex`]) — the same watcher protocol, re-list and own-write
/// handling as every claim — read into a [`LockState`] once per version seen.
pub struct LockObjects {
    /// The kind of the locks indexed.
    pub kind: LockKind,
}

impl Claims for LockObjects {
    type Claim = DynamicObject;
    type Kept = LockState;
    type Subject = LockKey;

    fn subject(&self, lock: &DynamicObject) -> LockKey {
        LockKey {
            kind: self.kind,
            namespace: lock.namespace().unwrap_or_default(),
            name: lock.name_any(),
        }
    }

    fn keep(&self, lock: &DynamicObject, _: Option<&LockState>, _: Timestamp) -> LockState {
        LockState::of(self.kind, lock)
    }
}

impl HasUid for LockState {
    fn uid(&self) -> &str {
        &self.uid
    }
}

/// One kind's locks, by key. Cheap to clone; clones share it.
pub type LockIndex = ClaimIndex<LockObjects>;

/// Every lock of the family: one index per kind, each filled by its kind's watch.
#[derive(Clone, Default)]
pub struct Locks {
    by_kind: HashMap<LockKind, LockIndex>,
}

impl Locks {
    /// Locks of the `kinds` given.
    pub fn of_kinds(kinds: impl IntoIterator<Item = LockKind>) -> Self {
        let by_kind = kinds
            .into_iter()
            .map(|kind| (kind, LockIndex::of_claims(LockObjects { kind })))
            .collect();
        Self { by_kind }
    }

    /// The index of `kind`'s locks.
    pub fn of_kind(&self, kind: LockKind) -> Option<&LockIndex> {
        self.by_kind.get(&kind)
    }

    /// The lock at `key`, as last seen (or written).
    pub fn get(&self, key: &LockKey) -> Option<Arc<LockState>> {
        self.by_kind.get(&key.kind)?.get(key, &key.name)
    }

    /// Takes the answer to our status write of `key` (read at `based_on`) into the
    /// cache at once, so the next reconcile need not wait for the watch, and the
    /// write's echo is no news.
    pub fn wrote(&self, key: &LockKey, based_on: Option<String>, answer: &DynamicObject) {
        if let Some(index) = self.by_kind.get(&key.kind) {
            index.wrote(based_on, answer, Timestamp::now());
        }
    }

    /// Takes a lock read afresh (after a conflict) into the cache.
    pub fn refresh(&self, key: &LockKey, lock: &DynamicObject) {
        if let Some(index) = self.by_kind.get(&key.kind) {
            index.note(lock, Timestamp::now());
        }
    }
}

/// One permit as a reconcile sees it.
#[derive(Clone, Debug)]
pub struct IndexedPermit {
    /// The permit as last seen (or written).
    pub permit: Arc<Permit>,
    /// What has been seen of its renewals.
    pub renewal: Renewal,
    /// Whether the renewal was seen to change since this controller first saw the
    /// permit (a permit seen only once, at a controller start, has not).
    pub renewed_since_first_seen: bool,
}

impl HasUid for IndexedPermit {
    fn uid(&self) -> &str {
        self.permit.metadata.uid.as_deref().unwrap_or_default()
    }
}

/// How a lock's Permits are indexed: by the lock they claim, each with when its
/// `renewTime` was last seen to change (on the controller's clock).
#[derive(Default)]
pub struct PermitClaims;

impl Claims for PermitClaims {
    type Claim = Permit;
    type Kept = IndexedPermit;
    type Subject = LockKey;

    fn subject(&self, permit: &Permit) -> LockKey {
        key_of_permit(permit)
    }

    /// A renewal counts from when it is first seen; a permit first seen already
    /// Expired stays so until it is renewed.
    fn keep(
        &self,
        permit: &Permit,
        before: Option<&IndexedPermit>,
        now: Timestamp,
    ) -> IndexedPermit {
        let same = before.filter(|b| b.permit.uid() == permit.uid());
        let (renewal, renewed_since_first_seen) = match same {
            Some(known) if known.permit.spec.renew_time == permit.spec.renew_time => {
                (known.renewal, known.renewed_since_first_seen)
            }
            Some(_) => (Renewal::Seen(now), true),
            None => {
                let expired = permit
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == PermitPhase::Expired);
                let renewal = if expired {
                    Renewal::ExpiredWhenFirstSeen(now)
                } else {
                    Renewal::Seen(now)
                };
                (renewal, false)
            }
        };
        IndexedPermit {
            permit: Arc::new(permit.clone()),
            renewal,
            renewed_since_first_seen,
        }
    }
}

/// Permits by lock, and their renewals. Cheap to clone; clones share it.
pub type PermitIndex = ClaimIndex<PermitClaims>;

/// The lock a permit claims.
pub fn key_of_permit(permit: &Permit) -> LockKey {
    LockKey {
        kind: permit.spec.lock_ref.kind,
        namespace: permit.namespace().unwrap_or_default(),
        name: permit.spec.lock_ref.name.clone(),
    }
}

/// Whether two versions of a permit differ in more than `spec.renewTime` (and the
/// metadata that changes with every write).
pub fn more_than_renewed(old: &Permit, new: &Permit) -> bool {
    let mut old_spec = old.spec.clone();
    old_spec.renew_time.clone_from(&new.spec.renew_time);
    old.uid() != new.uid()
        || old_spec != new.spec
        || old.status != new.status
        || old.metadata.owner_references != new.metadata.owner_references
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::locks::{PermitSpec, PermitStatus};
    use kube::runtime::watcher::Event;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn permit(uid: &str, renewed: i64) -> Permit {
        let mut permit = Permit::new("mutex-m-a", PermitSpec::new(LockKind::Mutex, "m", "a"));
        permit.metadata.namespace = Some("ns".into());
        permit.metadata.uid = Some(uid.into());
        permit.spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            at(renewed),
        ));
        permit
    }

    fn lock() -> LockKey {
        LockKey {
            kind: LockKind::Mutex,
            namespace: "ns".into(),
            name: "m".into(),
        }
    }

    fn stored(kind: LockKind, data: serde_json::Value) -> DynamicObject {
        let mut object = DynamicObject::new("l", &kind.api_resource()).within("ns");
        object.data = data;
        object
    }

    #[test]
    fn a_stored_spec_that_cannot_be_read_is_refused_naming_the_field_never_defaulted() {
        let semaphore = stored(
            LockKind::Semaphore,
            serde_json::json!({"spec": {"permits": []}}),
        );
        let refusal = LockState::of(LockKind::Semaphore, &semaphore)
            .ttl
            .unwrap_err();
        assert!(
            refusal.starts_with("spec.permits: invalid type"),
            "{refusal}"
        );
        // A readable one, with the status typed by its kind.
        let mutex = stored(
            LockKind::Mutex,
            serde_json::json!({"spec": {"ttl": "30s"}, "status": {"phase": "Locked", "fencingToken": 7}}),
        );
        let state = LockState::of(LockKind::Mutex, &mutex);
        assert_eq!(state.ttl, Ok(Duration::from_secs(30)));
        assert_eq!(state.last_token(), 7);
        assert!(matches!(state.status, Some(LockStatus::Mutex(_))));
    }

    #[test]
    fn a_lock_is_found_by_its_key_its_own_write_is_taken_at_once_and_a_relist_drops_the_gone() {
        let locks = Locks::of_kinds([LockKind::Mutex, LockKind::Semaphore]);
        let index = locks.of_kind(LockKind::Mutex).unwrap();
        let mut mutex = stored(LockKind::Mutex, serde_json::json!({"spec": {"ttl": "30s"}}));
        mutex.metadata.name = Some("m".into());
        mutex.metadata.uid = Some("u1".into());
        mutex.metadata.resource_version = Some("5".into());
        index.apply(&Event::Init, at(0));
        index.apply(&Event::InitApply(mutex.clone()), at(0));
        let changes = index.apply(&Event::InitDone, at(0));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].subject, lock());
        assert_eq!(locks.get(&lock()).unwrap().version.as_deref(), Some("5"));
        let semaphore = LockKey {
            kind: LockKind::Semaphore,
            ..lock()
        };
        assert!(
            locks.get(&semaphore).is_none(),
            "another kind's lock of that name"
        );

        // Our status write is taken at once; its echo wakes nothing.
        let mut answer = mutex.clone();
        answer.metadata.resource_version = Some("6".into());
        answer.data = serde_json::json!({"spec": {"ttl": "30s"}, "status": {"fencingToken": 3}});
        locks.wrote(&lock(), Some("5".into()), &answer);
        assert_eq!(locks.get(&lock()).unwrap().last_token(), 3);
        assert!(
            index.apply(&Event::Apply(mutex), at(1)).is_empty(),
            "the version it was written over, delivered after the write's answer"
        );
        assert!(
            index.apply(&Event::Apply(answer), at(1)).is_empty(),
            "the echo"
        );
        assert_eq!(locks.get(&lock()).unwrap().last_token(), 3);

        // A re-list without it: gone, and its key is woken to find it gone.
        index.apply(&Event::Init, at(2));
        let changes = index.apply(&Event::InitDone, at(2));
        assert!(changes.len() == 1 && changes[0].after.is_none());
        assert!(locks.get(&lock()).is_none());
    }

    #[test]
    fn a_renewal_counts_from_when_it_is_seen_and_survives_a_relist() {
        let index = PermitIndex::new();
        index.apply(&Event::InitDone, at(0));
        index.apply(&Event::Apply(permit("u1", 0)), at(10));
        let seen = |index: &PermitIndex| index.of(&lock())[0].renewal;
        assert_eq!(seen(&index), Renewal::Seen(at(10)));
        // The same renewTime again (another change, or a re-list): not a renewal.
        index.apply(&Event::Apply(permit("u1", 0)), at(20));
        assert_eq!(seen(&index), Renewal::Seen(at(10)));
        index.apply(&Event::Init, at(25));
        index.apply(&Event::InitApply(permit("u1", 0)), at(25));
        index.apply(&Event::InitDone, at(25));
        assert_eq!(seen(&index), Renewal::Seen(at(10)));
        // A new renewTime: seen now.
        index.apply(&Event::Apply(permit("u1", 5)), at(30));
        assert_eq!(seen(&index), Renewal::Seen(at(30)));
        assert!(index.of(&lock())[0].renewed_since_first_seen);
        // Another permit of the same name is a first sight.
        index.apply(&Event::Apply(permit("u2", 5)), at(40));
        assert_eq!(seen(&index), Renewal::Seen(at(40)));
        assert!(!index.of(&lock())[0].renewed_since_first_seen);
    }

    #[test]
    fn a_permit_found_expired_stays_so_and_a_relist_reports_what_changed() {
        let index = PermitIndex::new();
        let mut expired = permit("u1", 0);
        expired.status = Some(PermitStatus {
            phase: PermitPhase::Expired,
            ..PermitStatus::default()
        });
        index.apply(&Event::Init, at(0));
        index.apply(&Event::InitApply(expired), at(0));
        let changes = index.apply(&Event::InitDone, at(0));
        assert_eq!(changes.len(), 1, "the first listing is news");
        assert_eq!(
            index.of(&lock())[0].renewal,
            Renewal::ExpiredWhenFirstSeen(at(0))
        );
        // A re-list without it: it is reported gone.
        index.apply(&Event::Init, at(1));
        let changes = index.apply(&Event::InitDone, at(1));
        assert!(changes.len() == 1 && changes[0].after.is_none() && changes[0].before.is_some());
        assert!(index.of(&lock()).is_empty());
    }

    #[test]
    fn our_own_write_is_taken_at_once_and_its_echo_is_no_news() {
        let index = PermitIndex::new();
        index.apply(&Event::InitDone, at(0));
        let mut written = permit("u1", 0);
        written.metadata.resource_version = Some("5".into());
        index.apply(&Event::Apply(written.clone()), at(0));
        let mut answer = written.clone();
        answer.metadata.resource_version = Some("6".into());
        answer.status = Some(PermitStatus::default());
        index.wrote(Some("5".into()), &answer, at(1));
        assert!(index.of(&lock())[0].permit.status.is_some());
        assert!(
            index.apply(&Event::Apply(answer), at(2)).is_empty(),
            "the echo"
        );
        // A write over a permit replaced meanwhile does not land in the index.
        let mut other = permit("u9", 0);
        other.metadata.resource_version = Some("7".into());
        index.wrote(None, &other, at(3));
        assert_eq!(index.of(&lock())[0].uid(), "u1");
    }

    #[test]
    fn a_ttl_too_short_or_unreadable_is_refused_saying_why() {
        assert_eq!(ttl_of("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(ttl_of("5m"), Ok(Duration::from_secs(300)));
        for (ttl, says) in [
            ("0s", "shorter than the minimum of 2s"),
            ("1500ms", "minimum"),
            ("soon", "spec.ttl"),
        ] {
            let why = ttl_of(ttl).unwrap_err();
            assert!(
                why.contains(says) && why.contains("spec.ttl"),
                "{ttl}: {why}"
            );
        }
    }
}
