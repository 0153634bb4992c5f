//! The lock controller: Semaphores, Mutexes and RWMutexes and their Permits in, lock
//! and Permit statuses, Events and expiry requeues out, via
//! `konductor_api::locks::rules::evaluate` — which alone decides every grant.
//!
//! - Three lock watches fill one map of locks (`LockState`, whatever the kind); the
//!   Permit watch fills a [`PermitIndex`] (permits by lock, and when each permit's
//!   `renewTime` was last seen to change, on this controller's clock).
//! - Every change of a lock or of one of its permits queues that lock; a worker
//!   evaluates it and writes, in this order: the lock's status (its fencing-token
//!   counter first, so a token is never handed out twice), then each permit whose
//!   status changed, then Events (Granted, Expired; Released when a granted permit is
//!   deleted). It looks again exactly when the earliest grant would expire.
//! - Statuses are written as JSON merge patches with every field present (null when
//!   unset), compared with what is stored first, so an unchanged answer writes
//!   nothing and the controller's own writes do not make it loop.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use konductor_api::duration::parse_duration;
use konductor_api::locks::rules::{
    Decision, LockInput, PermitDecision, PermitRecord, Transition, evaluate,
};
use konductor_api::locks::{
    CONDITION_GRANTED, CONDITION_READY, LockKind, Mutex, Permit, PermitPhase, RWMutex, Semaphore,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::metrics::LockLabels;
use crate::queue::WorkQueue;
use crate::writes::{EventVersion, WrittenVersions};
use crate::{Error, Result};

/// Reconciles running at once.
const WORKERS: usize = 4;
/// How long to wait before looking again when the permit index is not complete yet.
const CACHE_WAIT: Duration = Duration::from_millis(100);

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
struct LockState {
    uid: String,
    /// The resourceVersion this state is of.
    version: Option<String>,
    generation: Option<i64>,
    /// `spec.permits` (1 for a Mutex or RWMutex).
    permits: i64,
    /// `spec.ttl`, or why the spec cannot be used (then nothing is granted).
    ttl: std::result::Result<Duration, String>,
    /// The last fencing token issued, from the status.
    last_token: i64,
    /// The stored status, for comparing before writing.
    status: Value,
}

/// `spec.ttl`, or why it cannot be used (the schema admits `0s`, which would expire
/// every grant at once).
fn ttl_of(text: &str) -> std::result::Result<Duration, String> {
    match parse_duration(text) {
        Ok(Duration::ZERO) => Err(format!("spec.ttl {text:?} must be longer than 0s")),
        Ok(ttl) => Ok(ttl),
        Err(error) => Err(format!("spec.ttl: {error}")),
    }
}

fn status_value<T: serde::Serialize>(status: Option<&T>) -> Value {
    status
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn lock_state<K: Resource>(
    lock: &K,
    permits: i64,
    ttl: &str,
    last_token: i64,
    status: Value,
) -> LockState {
    LockState {
        uid: lock.meta().uid.clone().unwrap_or_default(),
        version: lock.meta().resource_version.clone(),
        generation: lock.meta().generation,
        permits,
        ttl: ttl_of(ttl),
        last_token,
        status,
    }
}

fn semaphore_state(lock: &Semaphore) -> LockState {
    let token = lock.status.as_ref().map_or(0, |s| s.fencing_token);
    lock_state(
        lock,
        i64::from(lock.spec.permits),
        &lock.spec.ttl,
        token,
        status_value(lock.status.as_ref()),
    )
}

fn mutex_state(lock: &Mutex) -> LockState {
    let token = lock.status.as_ref().map_or(0, |s| s.fencing_token);
    lock_state(
        lock,
        1,
        &lock.spec.ttl,
        token,
        status_value(lock.status.as_ref()),
    )
}

fn rwmutex_state(lock: &RWMutex) -> LockState {
    let token = lock.status.as_ref().map_or(0, |s| s.fencing_token);
    lock_state(
        lock,
        1,
        &lock.spec.ttl,
        token,
        status_value(lock.status.as_ref()),
    )
}

/// Every lock, by key, kept current from the three lock watches.
#[derive(Clone, Default)]
struct Locks {
    state: Arc<RwLock<LocksState>>,
}

#[derive(Default)]
struct LocksState {
    by_key: HashMap<LockKey, LockState>,
    /// The keys seen since a kind's re-list began (locks not seen again are gone).
    relisting: HashMap<LockKind, std::collections::HashSet<LockKey>>,
    /// Status writes of ours the watch may not have delivered yet.
    written: WrittenVersions<LockKey>,
}

impl Locks {
    fn get(&self, key: &LockKey) -> Option<LockState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .get(key)
            .cloned()
    }

    /// Takes the answer to our status write of `key` (read at `based_on`) into the
    /// cache at once, so the next reconcile need not wait for the watch.
    fn wrote(&self, key: &LockKey, based_on: &LockState, answer: &DynamicObject) {
        let status = answer.data["status"].clone();
        let written = LockState {
            version: answer.metadata.resource_version.clone(),
            last_token: status["fencingToken"]
                .as_i64()
                .unwrap_or(based_on.last_token),
            status,
            ..based_on.clone()
        };
        let mut locks = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(version) = written.version.clone() {
            locks
                .written
                .wrote(key.clone(), based_on.version.clone(), version);
        }
        locks.by_key.insert(key.clone(), written);
    }

    /// Applies one watch event of a `kind` lock; returns the key it touched (none for
    /// the echo of our own write, or an event older than it).
    fn apply<K: Resource + ResourceExt>(
        &self,
        kind: LockKind,
        event: &watcher::Event<K>,
        state_of: fn(&K) -> LockState,
    ) -> Option<LockKey> {
        let key = |lock: &K| LockKey {
            kind,
            namespace: lock.namespace().unwrap_or_default(),
            name: lock.name_any(),
        };
        let mut locks = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            watcher::Event::Init => {
                locks
                    .relisting
                    .insert(kind, std::collections::HashSet::new());
                None
            }
            watcher::Event::InitApply(lock) => {
                locks.relisting.entry(kind).or_default().insert(key(lock));
                locks.written.forget(&key(lock));
                locks.by_key.insert(key(lock), state_of(lock));
                Some(key(lock))
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
                match locks
                    .written
                    .judge(&key(lock), lock.meta().resource_version.as_deref())
                {
                    EventVersion::New => {
                        locks.by_key.insert(key(lock), state_of(lock));
                        Some(key(lock))
                    }
                    EventVersion::Echo | EventVersion::Stale => None,
                }
            }
            watcher::Event::Delete(lock) => {
                locks.written.forget(&key(lock));
                locks.by_key.remove(&key(lock));
                None
            }
        }
    }
}

/// When a permit's `renewTime` was last seen to change.
#[derive(Clone, Debug)]
struct Renewal {
    renew_time: Option<String>,
    seen: Timestamp,
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
    renewals: HashMap<String, Renewal>,
    relisting: Option<HashMap<LockKey, HashMap<String, Arc<Permit>>>>,
    ready: bool,
    /// Status writes of ours the watch may not have delivered yet, by permit uid.
    written: WrittenVersions<String>,
}

fn key_of_permit(permit: &Permit) -> LockKey {
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
    /// Set when a granted permit was deleted: who released the lock.
    pub released_by: Option<String>,
}

impl PermitIndex {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_renewal(state: &mut IndexState, permit: &Permit, now: Timestamp) {
        let renew_time = permit.spec.renew_time.as_ref().map(|t| t.0.to_string());
        let uid = permit.uid().unwrap_or_default();
        match state.renewals.get_mut(&uid) {
            Some(known) if known.renew_time == renew_time => {}
            Some(known) => {
                known.renew_time = renew_time;
                known.seen = now;
            }
            None => {
                state.renewals.insert(
                    uid,
                    Renewal {
                        renew_time,
                        seen: now,
                    },
                );
            }
        }
    }

    /// Takes the answer to our status write of a permit (read at `based_on`) into the
    /// index at once, so the next reconcile need not wait for the watch.
    fn wrote(&self, based_on: Option<String>, answer: Permit) {
        let mut state = self.write();
        if let (Some(uid), Some(version)) = (answer.uid(), answer.resource_version()) {
            state.written.wrote(uid, based_on, version);
        }
        state
            .by_lock
            .entry(key_of_permit(&answer))
            .or_default()
            .insert(answer.name_any(), Arc::new(answer));
    }

    /// Applies one watch event, returning the lock it concerns (none for the echo of
    /// our own write, or an event older than it).
    pub fn apply(&self, event: &watcher::Event<Permit>) -> Option<PermitChange> {
        let now = Timestamp::now();
        let mut state = self.write();
        match event {
            watcher::Event::Init => {
                state.relisting = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(permit) => {
                state.written.forget(&permit.uid().unwrap_or_default());
                Self::note_renewal(&mut state, permit, now);
                state
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .entry(key_of_permit(permit))
                    .or_default()
                    .insert(permit.name_any(), Arc::new(permit.clone()));
                Some(PermitChange {
                    lock: key_of_permit(permit),
                    released_by: None,
                })
            }
            watcher::Event::InitDone => {
                if let Some(listing) = state.relisting.take() {
                    state.by_lock = listing;
                }
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
                Self::note_renewal(&mut state, permit, now);
                state
                    .by_lock
                    .entry(key_of_permit(permit))
                    .or_default()
                    .insert(permit.name_any(), Arc::new(permit.clone()));
                Some(PermitChange {
                    lock: key_of_permit(permit),
                    released_by: None,
                })
            }
            watcher::Event::Delete(permit) => {
                let key = key_of_permit(permit);
                if let Some(permits) = state.by_lock.get_mut(&key) {
                    permits.remove(&permit.name_any());
                    if permits.is_empty() {
                        state.by_lock.remove(&key);
                    }
                }
                state.renewals.remove(&permit.uid().unwrap_or_default());
                state.written.forget(&permit.uid().unwrap_or_default());
                let granted = permit
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == PermitPhase::Granted);
                Some(PermitChange {
                    lock: key,
                    released_by: granted.then(|| permit.spec.holder.clone()),
                })
            }
        }
    }

    fn is_ready(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
    }

    /// The permits of one lock, each with when its renewal was last seen.
    fn of(&self, key: &LockKey) -> Vec<(Arc<Permit>, Timestamp)> {
        let state = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Timestamp::now();
        state
            .by_lock
            .get(key)
            .map(|permits| {
                permits
                    .values()
                    .map(|p| {
                        let seen = state
                            .renewals
                            .get(&p.uid().unwrap_or_default())
                            .map_or(now, |r| r.seen);
                        (p.clone(), seen)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Shared by the lock workers.
struct Context {
    client: Client,
    metrics: Arc<crate::metrics::Metrics>,
    recorder: Recorder,
    locks: Locks,
    permits: PermitIndex,
    event_budget: std::sync::Mutex<EventBudget>,
}

/// Normal Events (Granted, Released) a lock may record in a burst.
const EVENT_BURST: f64 = 25.0;
/// Normal Events a lock may record per second once its burst is spent.
const EVENTS_PER_SECOND: f64 = 1.0;
/// Locks whose budget is tracked before full buckets are forgotten.
const EVENT_BUDGET_LOCKS: usize = 10_000;

/// A token bucket per lock for its Normal Events, as client-go's event spam filter
/// keeps one per object: a Mutex handed over a hundred times a second would otherwise
/// write two Events per handover — more writes than the handover itself. Warnings
/// (Expired) are always recorded.
#[derive(Default)]
struct EventBudget {
    by_lock: HashMap<LockKey, (f64, std::time::Instant)>,
}

impl EventBudget {
    /// Takes one event from `key`'s bucket; false when it is empty.
    fn take(&mut self, key: &LockKey) -> bool {
        let now = std::time::Instant::now();
        if self.by_lock.len() >= EVENT_BUDGET_LOCKS {
            let full = |(tokens, at): &(f64, std::time::Instant)| {
                tokens + now.duration_since(*at).as_secs_f64() * EVENTS_PER_SECOND >= EVENT_BURST
            };
            self.by_lock.retain(|_, bucket| !full(bucket));
        }
        let (tokens, at) = self
            .by_lock
            .entry(key.clone())
            .or_insert((EVENT_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * EVENTS_PER_SECOND).min(EVENT_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn record_of(permit: &Permit, renewal_seen: Timestamp) -> PermitRecord {
    let status = permit.status.as_ref();
    PermitRecord {
        name: permit.name_any(),
        holder: permit.spec.holder.clone(),
        mode: permit.spec.mode,
        priority: permit.spec.priority,
        created: permit
            .creation_timestamp()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        phase: status.map_or(PermitPhase::Pending, |s| s.phase),
        token: status.and_then(|s| s.fencing_token),
        granted_at: status.and_then(|s| s.granted_at.as_ref()).map(|t| t.0),
        renewal_seen,
    }
}

fn micro(time: Option<Timestamp>) -> Value {
    time.map_or(Value::Null, |t| {
        serde_json::to_value(MicroTime(t)).unwrap_or(Value::Null)
    })
}

/// Drops nulls (recursively), as the API server does when it stores a merge patch:
/// what a status looks like once written.
fn stored_form(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), stored_form(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The lock's status for `decision`, every field present (null when unset).
fn lock_status(
    key: &LockKey,
    lock: &LockState,
    decision: &Decision,
    records: &[PermitRecord],
    now: Timestamp,
) -> Value {
    let holders: Vec<&str> = decision
        .holding
        .iter()
        .map(|&i| records[i].holder.as_str())
        .collect();
    let waiting: Vec<&str> = decision
        .waiting
        .iter()
        .map(|&i| records[i].holder.as_str())
        .collect();
    let locked_at = decision
        .holding
        .iter()
        .filter_map(|&i| decision.permits[i].granted_at)
        .min();
    let expires_at = decision
        .holding
        .iter()
        .filter_map(|&i| decision.permits[i].expires_at)
        .min();
    let in_use = i64::try_from(holders.len()).unwrap_or(i64::MAX);
    let mut status = match key.kind {
        LockKind::Semaphore => json!({
            "phase": if in_use < lock.permits { "Available" } else { "Exhausted" },
            "inUse": in_use,
            "available": (lock.permits - in_use).max(0),
            "holders": holders,
        }),
        LockKind::Mutex => json!({
            "phase": if holders.is_empty() { "Unlocked" } else { "Locked" },
            "holder": holders.first(),
            "lockedAt": micro(locked_at),
            "expiresAt": micro(expires_at),
        }),
        LockKind::RWMutex => {
            let writer = decision
                .holding
                .iter()
                .find(|&&i| records[i].mode == konductor_api::locks::PermitMode::Exclusive)
                .map(|&i| records[i].holder.as_str());
            let readers: Vec<&str> = if writer.is_some() {
                Vec::new()
            } else {
                holders.clone()
            };
            json!({
                "phase": match (writer, holders.is_empty()) {
                    (Some(_), _) => "WriteLocked",
                    (None, true) => "Unlocked",
                    (None, false) => "ReadLocked",
                },
                "writeHolder": writer,
                "readHolders": readers,
                "lockedAt": micro(locked_at),
                "expiresAt": micro(expires_at),
            })
        }
    };
    status["waiting"] = json!(waiting);
    status["fencingToken"] = json!(decision.last_token);
    status["observedGeneration"] = json!(lock.generation);
    status["conditions"] = json!([ready_condition(lock, Time(now))]);
    status
}

/// The lock's `Ready` condition: whether its spec was accepted, keeping the transition
/// time while that does not change.
fn ready_condition(lock: &LockState, now: Time) -> Value {
    let (status, reason, message) = match &lock.ttl {
        Ok(_) => ("True", "SpecAccepted", "spec accepted".to_owned()),
        Err(why) => ("False", "InvalidSpec", why.clone()),
    };
    let since = lock.status["conditions"]
        .as_array()
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == CONDITION_READY && c["status"] == status)
        })
        .map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone());
    json!({
        "type": CONDITION_READY,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": lock.generation,
    })
}

/// A permit's status for its decision, every field present; the Granted condition
/// keeps its transition time while its status stays the same.
fn permit_status(permit: &Permit, decision: &PermitDecision, now: Timestamp) -> Value {
    let (granted, reason, message) = match decision.phase {
        PermitPhase::Granted => (
            "True",
            "Granted",
            format!("granted with fencing token {}", decision.token.unwrap_or(0)),
        ),
        PermitPhase::Pending => (
            "False",
            "Pending",
            format!("waiting at position {}", decision.position.unwrap_or(0)),
        ),
        PermitPhase::Expired => (
            "False",
            "Expired",
            "not renewed within the lock's ttl".to_owned(),
        ),
    };
    let previous = permit
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_GRANTED));
    let since = match previous {
        Some(condition) if condition.status == granted => condition.last_transition_time.clone(),
        _ => Time(now),
    };
    json!({
        "phase": decision.phase,
        "position": decision.position,
        "grantedAt": micro(decision.granted_at),
        "expiresAt": micro(decision.expires_at),
        "fencingToken": decision.token,
        "conditions": [{
            "type": CONDITION_GRANTED,
            "status": granted,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }],
    })
}

fn reference(key: &LockKey, lock: &LockState) -> ObjectReference {
    let resource = key.kind.api_resource();
    ObjectReference {
        api_version: Some(resource.api_version),
        kind: Some(resource.kind),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: Some(lock.uid.clone()),
        ..ObjectReference::default()
    }
}

/// Records an Event on the lock in the background, if a Warning or within the lock's
/// event budget.
fn publish_later(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    type_: EventType,
    reason: &str,
    note: String,
) {
    if type_ == EventType::Normal
        && !ctx
            .event_budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(key)
    {
        ctx.metrics
            .lock_events_dropped
            .get_or_create(&LockLabels::of(key.kind))
            .inc();
        return;
    }
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    let (recorder, reference, name) =
        (ctx.recorder.clone(), reference(key, lock), key.name.clone());
    tokio::spawn(async move {
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, lock = %name, "recording event");
        }
    });
}

/// Merges `status` into the status of `lock` (as cached) and takes the answer into the
/// cache.
async fn patch_lock_status(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    status: Value,
) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &key.kind.api_resource());
    let answer = api
        .patch_status(
            &key.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(Error::Kube)?;
    ctx.locks.wrote(key, lock, &answer);
    Ok(())
}

/// Writes `status` as the permit's status and takes the answer into the index.
async fn patch_permit_status(ctx: &Context, permit: &Permit, status: Value) -> Result<()> {
    let api: Api<Permit> =
        Api::namespaced(ctx.client.clone(), &permit.namespace().unwrap_or_default());
    match api
        .patch_status(
            &permit.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
    {
        Ok(answer) => {
            ctx.permits.wrote(permit.resource_version(), answer);
            Ok(())
        }
        // Released meanwhile: its deletion queues the lock again.
        Err(kube::Error::Api(refused)) if refused.code == 404 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// Makes the lock the owner of its permits that are not owned by it — written with
/// kubectl without an owner, or by a client that remembered an earlier lock of the same
/// name — so deleting the lock deletes them. The resourceVersion guards against racing
/// writers; a permit changed meanwhile is looked at again on its next event.
async fn adopt_permits(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    permits: &[(Arc<Permit>, Timestamp)],
) {
    let kind = key.kind.api_resource().kind;
    let owned = |permit: &Permit| {
        permit
            .owner_references()
            .iter()
            .any(|o| o.kind == kind && o.name == key.name && o.uid == lock.uid)
    };
    let api: Api<Permit> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for permit in permits.iter().map(|(p, _)| p).filter(|p| !owned(p)) {
        let mut owners: Vec<OwnerReference> = permit
            .owner_references()
            .iter()
            .filter(|o| !(o.kind == kind && o.name == key.name))
            .cloned()
            .collect();
        owners.push(OwnerReference {
            api_version: "konductor.io/v1".into(),
            kind: kind.clone(),
            name: key.name.clone(),
            uid: lock.uid.clone(),
            ..OwnerReference::default()
        });
        let patch = json!({
            "metadata": {
                "ownerReferences": owners,
                "resourceVersion": permit.resource_version(),
            }
        });
        if let Err(error) = api
            .patch(
                &permit.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(%error, permit = %permit.name_any(), "adopting the permit");
        }
    }
}

/// Evaluates one lock and writes what changed; returns when to look again.
async fn reconcile(key: &LockKey, ctx: &Context) -> Result<Option<Duration>> {
    let Some(lock) = ctx.locks.get(key) else {
        return Ok(None);
    };
    if !ctx.permits.is_ready() {
        return Ok(Some(CACHE_WAIT));
    }
    let permits = ctx.permits.of(key);
    let records: Vec<PermitRecord> = permits
        .iter()
        .map(|(p, seen)| record_of(p, *seen))
        .collect();
    let now = Timestamp::now();
    let Ok(ttl) = lock.ttl.clone() else {
        // An unusable spec grants nothing; it says why in its Ready condition.
        let ready = json!([ready_condition(&lock, Time(now))]);
        if stored_form(&ready) != lock.status["conditions"] {
            patch_lock_status(ctx, key, &lock, json!({ "conditions": ready })).await?;
        }
        return Ok(None);
    };
    let decision = evaluate(&LockInput {
        kind: key.kind,
        permits: lock.permits,
        ttl,
        last_token: lock.last_token,
        permits_of_lock: &records,
        now,
    });

    let status = lock_status(key, &lock, &decision, &records, now);
    let lock_write =
        (stored_form(&status) != lock.status).then(|| patch_lock_status(ctx, key, &lock, status));
    let permit_writes =
        permits
            .iter()
            .zip(&decision.permits)
            .filter_map(|((permit, _), decided)| {
                // A permit that stays queued keeps the position it was queued at: rewriting
                // every waiter's place on every handover would cost a write per waiter per
                // handover (the lock's `status.waiting` carries the live order, in one write).
                // Checked first, so a reconcile costs nothing per waiter that stays queued.
                let still_queued = decided.phase == PermitPhase::Pending
                    && permit
                        .status
                        .as_ref()
                        .is_some_and(|s| s.phase == PermitPhase::Pending);
                if still_queued {
                    return None;
                }
                let status = permit_status(permit, decided, now);
                let changed = stored_form(&status) != status_value(permit.status.as_ref());
                changed.then(|| patch_permit_status(ctx, permit, status))
            });
    let permit_writes = futures::future::try_join_all(permit_writes);
    if decision.last_token > lock.last_token {
        // A new token: the lock's counter must be durable before a permit carries it.
        if let Some(write) = lock_write {
            write.await?;
        }
        permit_writes.await?;
    } else {
        // No token handed out: the writes are independent and can share a commit.
        let lock_write = async {
            match lock_write {
                Some(write) => write.await,
                None => Ok(()),
            }
        };
        futures::future::try_join(lock_write, permit_writes).await?;
    }
    adopt_permits(ctx, key, &lock, &permits).await;
    // Events last, in the background: recording them is not part of the grant.
    let labels = LockLabels::of(key.kind);
    for transition in &decision.transitions {
        let (type_, reason, note) = match transition {
            Transition::Granted { holder, token } => {
                ctx.metrics.lock_grants.get_or_create(&labels).inc();
                tracing::info!(kind = key.kind.word(), namespace = %key.namespace, lock = %key.name, %holder, token, "granted");
                (
                    EventType::Normal,
                    "Granted",
                    format!("granted to {holder} with fencing token {token}"),
                )
            }
            Transition::Expired { holder } => {
                ctx.metrics.lock_expiries.get_or_create(&labels).inc();
                tracing::info!(kind = key.kind.word(), namespace = %key.namespace, lock = %key.name, %holder, "grant expired");
                (
                    EventType::Warning,
                    "Expired",
                    format!(
                        "{holder}'s grant expired: not renewed within {}",
                        konductor_api::duration::format_duration(ttl)
                    ),
                )
            }
        };
        publish_later(ctx, key, &lock, type_, reason, note);
    }
    Ok(decision
        .next_look
        .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)))
}

/// One worker: reconciles due locks until the queue closes.
async fn work(queue: Arc<WorkQueue<LockKey>>, ctx: Arc<Context>) {
    while let Some(key) = queue.next().await {
        ctx.metrics
            .lock_reconciles
            .get_or_create(&LockLabels::of(key.kind))
            .inc();
        let requeue = match reconcile(&key, &ctx).await {
            Ok(requeue) => requeue,
            Err(error) if error.is_conflict() => Some(Duration::from_millis(50)),
            Err(error) => {
                tracing::warn!(%error, kind = key.kind.word(), lock = %key.name, "lock reconcile failed; retrying in 2s");
                Some(Duration::from_secs(2))
            }
        };
        queue.done(key, requeue);
    }
}

/// Follows the locks of one kind into `locks`, queueing each one that changes.
fn watch_locks<K>(
    client: &Client,
    locks: &Locks,
    queue: &Arc<WorkQueue<LockKey>>,
    kind: LockKind,
    state_of: fn(&K) -> LockState,
) -> impl std::future::Future<Output = ()> + use<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let (locks, queue) = (locks.clone(), queue.clone());
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| futures::future::ready(event.ok()))
        .for_each(move |event| {
            if let Some(key) = locks.apply(kind, &event, state_of) {
                queue.add(key);
            }
            futures::future::ready(())
        })
}

/// Runs the lock controller until `shutdown` completes.
pub async fn run(
    client: Client,
    recorder: Recorder,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let locks = Locks::default();
    let permits = PermitIndex::default();
    let queue = Arc::new(WorkQueue::<LockKey>::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics,
        recorder,
        locks: locks.clone(),
        permits: permits.clone(),
        event_budget: std::sync::Mutex::default(),
    });
    let semaphores = watch_locks(
        &client,
        &locks,
        &queue,
        LockKind::Semaphore,
        semaphore_state,
    );
    let mutexes = watch_locks(&client, &locks, &queue, LockKind::Mutex, mutex_state);
    let rwmutexes = watch_locks(&client, &locks, &queue, LockKind::RWMutex, rwmutex_state);
    let permit_feed = {
        let (queue, ctx) = (queue.clone(), ctx.clone());
        watcher(Api::<Permit>::all(client), watcher::Config::default())
            .default_backoff()
            .filter_map(|event| futures::future::ready(event.ok()))
            .for_each(move |event| {
                if let Some(change) = ctx.permits.apply(&event) {
                    if let (Some(holder), Some(lock)) =
                        (&change.released_by, ctx.locks.get(&change.lock))
                    {
                        publish_later(
                            &ctx,
                            &change.lock,
                            &lock,
                            EventType::Normal,
                            "Released",
                            format!("{holder} released it"),
                        );
                    }
                    queue.add(change.lock);
                }
                futures::future::ready(())
            })
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        workers.spawn(work(queue.clone(), ctx.clone()));
    }
    let feeds = futures::future::join4(semaphores, mutexes, rwmutexes, permit_feed);
    tokio::select! {
        _ = feeds => {}
        () = shutdown.fuse() => {}
    }
    queue.close();
    while workers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> LockKey {
        LockKey {
            kind: LockKind::Mutex,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_lock_spends_its_event_burst_then_waits_for_the_refill() {
        let mut budget = EventBudget::default();
        let burst = EVENT_BURST as usize;
        assert!((0..burst).all(|_| budget.take(&key("busy"))));
        assert!(!budget.take(&key("busy")), "the burst is spent");
        assert!(budget.take(&key("quiet")), "each lock has its own budget");
        // A second later (as far as the bucket knows) one more is allowed.
        if let Some((_, at)) = budget.by_lock.get_mut(&key("busy")) {
            *at -= Duration::from_secs_f64(1.0 / EVENTS_PER_SECOND);
        }
        assert!(budget.take(&key("busy")));
        assert!(!budget.take(&key("busy")));
    }
}
