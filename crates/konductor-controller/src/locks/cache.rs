//! What the lock controller knows: every lock ([`Locks`]) and every permit by lock with
//! its renewals ([`PermitIndex`]), kept current from the watches and from the answers
//! to the controller's own writes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use konductor_api::duration::parse_duration;
use konductor_api::locks::rules::Renewal;
use konductor_api::locks::{CommonLockStatus, Grant, LockKind, MIN_TTL, Permit, PermitPhase};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use serde_json::Value;

use crate::writes::{EventVersion, WrittenVersions};

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
    /// The status as stored, typed where every kind agrees.
    pub common: CommonLockStatus,
    /// The status as stored, for writing only what differs.
    pub status: Value,
}

impl LockState {
    /// The state of a lock object of any kind.
    pub fn of(lock: &DynamicObject) -> Self {
        let status = lock.data.get("status").cloned().unwrap_or(Value::Null);
        let spec = &lock.data["spec"];
        Self {
            uid: lock.uid().unwrap_or_default(),
            version: lock.resource_version(),
            generation: lock.metadata.generation,
            permits: spec["permits"].as_i64().unwrap_or(1),
            ttl: ttl_of(
                spec["ttl"]
                    .as_str()
                    .unwrap_or(konductor_api::locks::DEFAULT_TTL),
            ),
            common: serde_json::from_value(status.clone()).unwrap_or_default(),
            status,
        }
    }

    /// The grants the lock's status lists (`None` for a status written before grants
    /// were listed there).
    pub fn grants(&self) -> Option<&[Grant]> {
        self.common.grants.as_deref()
    }

    /// What the lock rules' statuses need to know of this `kind` lock.
    pub fn facts(&self, kind: LockKind) -> konductor_api::locks::status::LockFacts<'_> {
        konductor_api::locks::status::LockFacts {
            kind,
            permits: self.permits,
            generation: self.generation,
            previous: &self.common.conditions,
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

/// Every lock, by key, kept current from the lock watches. Cheap to clone; clones
/// share it.
#[derive(Clone, Default)]
pub struct Locks {
    state: Arc<RwLock<LocksState>>,
}

#[derive(Default)]
struct LocksState {
    by_key: HashMap<LockKey, LockState>,
    /// The keys seen since a kind's re-list began (locks not seen again are gone).
    relisting: HashMap<LockKind, HashSet<LockKey>>,
    /// Status writes of ours the watch may not have delivered yet.
    written: WrittenVersions<LockKey>,
}

fn key_of(kind: LockKind, lock: &DynamicObject) -> LockKey {
    LockKey {
        kind,
        namespace: lock.namespace().unwrap_or_default(),
        name: lock.name_any(),
    }
}

impl Locks {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, LocksState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock at `key`, as last seen.
    pub fn get(&self, key: &LockKey) -> Option<LockState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .get(key)
            .cloned()
    }

    /// Takes the answer to our status write of `key` (read at `based_on`) into the
    /// cache at once, so the next reconcile need not wait for the watch.
    pub fn wrote(&self, key: &LockKey, based_on: Option<String>, answer: &DynamicObject) {
        let written = LockState::of(answer);
        let mut locks = self.write();
        if let Some(version) = written.version.clone() {
            locks.written.wrote(key.clone(), based_on, version);
        }
        locks.by_key.insert(key.clone(), written);
    }

    /// Takes a lock read afresh (after a conflict) into the cache.
    pub fn refresh(&self, key: &LockKey, lock: &DynamicObject) {
        let mut locks = self.write();
        locks.written.forget(key);
        locks.by_key.insert(key.clone(), LockState::of(lock));
    }

    /// Applies one watch event of a `kind` lock; returns the key it touched (none for
    /// the echo of our own write, or an event older than it).
    pub fn apply(&self, kind: LockKind, event: &watcher::Event<DynamicObject>) -> Option<LockKey> {
        let mut locks = self.write();
        match event {
            watcher::Event::Init => {
                locks.relisting.insert(kind, HashSet::new());
                None
            }
            watcher::Event::InitApply(lock) => {
                let key = key_of(kind, lock);
                locks.relisting.entry(kind).or_default().insert(key.clone());
                locks.written.forget(&key);
                locks.by_key.insert(key.clone(), LockState::of(lock));
                Some(key)
            }
            watcher::Event::InitDone => {
                if let Some(seen) = locks.relisting.remove(&kind) {
                    locks
                        .by_key
                        .retain(|k, _| k.kind != kind || seen.contains(k));
                }
                None
            }
            watcher::Event::Apply(lock) => {
                let key = key_of(kind, lock);
                match locks
                    .written
                    .judge(&key, lock.metadata.resource_version.as_deref())
                {
                    EventVersion::New => {
                        locks.by_key.insert(key.clone(), LockState::of(lock));
                        Some(key)
                    }
                    EventVersion::Echo | EventVersion::Stale => None,
                }
            }
            watcher::Event::Delete(lock) => {
                let key = key_of(kind, lock);
                locks.written.forget(&key);
                locks.by_key.remove(&key);
                None
            }
        }
    }
}

/// What the index knows of one permit's renewals.
#[derive(Clone, Debug)]
struct RenewalState {
    /// The `spec.renewTime` last seen.
    renew_time: Option<String>,
    /// When the ttl counts from.
    renewal: Renewal,
    /// Whether the renewal was seen to change (not only the permit first seen).
    changed: bool,
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

/// Permits by lock, and their renewals. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct PermitIndex {
    state: Arc<RwLock<IndexState>>,
}

#[derive(Default)]
struct IndexState {
    by_lock: HashMap<LockKey, HashMap<String, Arc<Permit>>>,
    /// By permit uid.
    renewals: HashMap<String, RenewalState>,
    relisting: Option<HashMap<LockKey, HashMap<String, Arc<Permit>>>>,
    ready: bool,
    /// Status writes of ours the watch may not have delivered yet, by permit uid.
    written: WrittenVersions<String>,
}

/// The lock a permit claims.
pub fn key_of_permit(permit: &Permit) -> LockKey {
    LockKey {
        kind: permit.spec.lock_ref.kind,
        namespace: permit.namespace().unwrap_or_default(),
        name: permit.spec.lock_ref.name.clone(),
    }
}

/// What a permit watch event means for its lock.
pub struct PermitChange {
    /// The lock to look at again.
    pub lock: LockKey,
    /// Set when a permit was deleted: the permit as it last was.
    pub deleted: Option<Permit>,
    /// Only its `renewTime` changed; with the renewal it had before (to tell whether
    /// the claim was still alive).
    pub renewed_only: Option<(String, Renewal)>,
}

/// Whether two versions of a permit differ in more than `spec.renewTime` (and the
/// metadata that changes with every write).
fn more_than_renewed(old: &Permit, new: &Permit) -> bool {
    let mut old_spec = old.spec.clone();
    old_spec.renew_time.clone_from(&new.spec.renew_time);
    old_spec != new.spec
        || old.status != new.status
        || old.metadata.owner_references != new.metadata.owner_references
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
}

impl PermitIndex {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes `permit`'s renewal as seen `now`, if its `renewTime` changed (or it is new
    /// to the index); returns the renewal it had before.
    fn note_renewal(state: &mut IndexState, permit: &Permit, now: Timestamp) -> Option<Renewal> {
        let renew_time = permit.spec.renew_time.as_ref().map(|t| t.0.to_string());
        let uid = permit.uid().unwrap_or_default();
        match state.renewals.get_mut(&uid) {
            Some(known) if known.renew_time == renew_time => Some(known.renewal),
            Some(known) => {
                let before = known.renewal;
                known.renew_time = renew_time;
                known.renewal = Renewal::Seen(now);
                known.changed = true;
                Some(before)
            }
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
                state.renewals.insert(
                    uid,
                    RenewalState {
                        renew_time,
                        renewal,
                        changed: false,
                    },
                );
                None
            }
        }
    }

    /// Notes a renewal found by reading a permit afresh (the watch had not shown it yet).
    pub fn renewed(&self, permit: &Permit, now: Timestamp) {
        Self::note_renewal(&mut self.write(), permit, now);
    }

    /// Takes the answer to our status write of a permit (read at `based_on`) into the
    /// index at once, so the next reconcile need not wait for the watch.
    pub fn wrote(&self, based_on: Option<String>, answer: Permit) {
        let mut state = self.write();
        if let (Some(uid), Some(version)) = (answer.uid(), answer.resource_version()) {
            state.written.wrote(uid, based_on, version);
        }
        let Some(permits) = state.by_lock.get_mut(&key_of_permit(&answer)) else {
            return; // deleted meanwhile
        };
        // Only over the same permit: one of the same name created meanwhile stays.
        if let Some(known) = permits.get(&answer.name_any())
            && known.uid() == answer.uid()
        {
            permits.insert(answer.name_any(), Arc::new(answer));
        }
    }

    /// Applies one watch event, returning the lock it concerns (none for the echo of
    /// our own write, or an event older than it).
    pub fn apply(&self, event: &watcher::Event<Permit>, now: Timestamp) -> Option<PermitChange> {
        let mut state = self.write();
        match event {
            watcher::Event::Init => {
                state.relisting = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(permit) => {
                Self::note_renewal(&mut state, permit, now);
                state.written.forget(&permit.uid().unwrap_or_default());
                state
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .entry(key_of_permit(permit))
                    .or_default()
                    .insert(permit.name_any(), Arc::new(permit.clone()));
                None
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                let live: HashSet<String> = listed
                    .values()
                    .flat_map(|permits| permits.values().filter_map(|p| p.uid()))
                    .collect();
                state.renewals.retain(|uid, _| live.contains(uid));
                state.by_lock = listed;
                state.ready = true;
                None
            }
            watcher::Event::Apply(permit) => {
                let uid = permit.uid().unwrap_or_default();
                if state
                    .written
                    .judge(&uid, permit.resource_version().as_deref())
                    != EventVersion::New
                {
                    return None;
                }
                let key = key_of_permit(permit);
                let before = state
                    .by_lock
                    .get(&key)
                    .and_then(|permits| permits.get(&permit.name_any()))
                    .filter(|known| known.uid() == permit.uid())
                    .cloned();
                let renewal_before = Self::note_renewal(&mut state, permit, now);
                state
                    .by_lock
                    .entry(key.clone())
                    .or_default()
                    .insert(permit.name_any(), Arc::new(permit.clone()));
                let renewed_only = match (before, renewal_before) {
                    (Some(before), Some(renewal)) if !more_than_renewed(&before, permit) => {
                        Some((uid, renewal))
                    }
                    _ => None,
                };
                Some(PermitChange {
                    lock: key,
                    deleted: None,
                    renewed_only,
                })
            }
            watcher::Event::Delete(permit) => {
                let key = key_of_permit(permit);
                if let Some(permits) = state.by_lock.get_mut(&key) {
                    if permits
                        .get(&permit.name_any())
                        .is_some_and(|known| known.uid() == permit.uid())
                    {
                        permits.remove(&permit.name_any());
                    }
                    if permits.is_empty() {
                        state.by_lock.remove(&key);
                    }
                }
                let uid = permit.uid().unwrap_or_default();
                state.renewals.remove(&uid);
                state.written.forget(&uid);
                Some(PermitChange {
                    lock: key,
                    deleted: Some(permit.clone()),
                    renewed_only: None,
                })
            }
        }
    }

    /// Whether the first list of permits has arrived (before it, no lock is judged).
    pub fn is_ready(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
    }

    /// The permits of one lock, each with what has been seen of its renewals.
    pub fn of(&self, key: &LockKey, now: Timestamp) -> Vec<IndexedPermit> {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .by_lock
            .get(key)
            .map(|permits| {
                permits
                    .values()
                    .map(|p| {
                        let known = state.renewals.get(&p.uid().unwrap_or_default());
                        IndexedPermit {
                            permit: p.clone(),
                            renewal: known.map_or(Renewal::Seen(now), |r| r.renewal),
                            renewed_since_first_seen: known.is_some_and(|r| r.changed),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
