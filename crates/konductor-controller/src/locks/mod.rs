//! The lock controller: Semaphores, Mutexes, RWMutexes and Onces and their Permits in; lock
//! statuses (where grants become real), Permit statuses, Events and timed looks out —
//! via `konductor_api::locks::rules::evaluate` (a Once's: `konductor_api::once::rules`),
//! which alone decides every grant.
//!
//! # Layout
//! - [`cache`]: the locks and the permits by lock, with when each permit's renewal was
//!   last seen on the controller's [`MonotonicClock`].
//! - [`status`]: the rules' view of a permit, and the merge patches that write the
//!   statuses the rules decided (`konductor_api::locks::status`).
//! - [`mirror`]: permit statuses, written off the critical path.
//! - this file: the reconcile (`Context` as the engine's [`Reconciler`]) and the
//!   watches that feed its queue. Granted, Released and Expired Events name the Permit
//!   they are about; Normal ones are within the engine's per-lock budget.
//!
//! # A handover in three durable writes
//! The holder deletes its Permit (one write); the controller sees it, evaluates and
//! writes the lock's status, which lists every grant in force with its Permit's uid
//! and fencing token (the second). That write is the grant: it is conditional on the
//! resourceVersion the controller decided from, so a stale cache can never grant
//! twice, and it carries the token counter, so a token is durable before anyone can
//! act on it. Then the new holder's Permit status says Granted, with the token (the
//! third): the holder watches its own Permit, not the lock, so a handover reaches the
//! one process it grants to however long the queue. Nobody else's Permit is written:
//! a waiter's place in the queue is in the lock's status, read when asked.
//!
//! # Expiry
//! A claim expires a ttl after its last renewal seen on this controller's clock. Before
//! it writes a grant's expiry, the controller reads the Permit afresh: a renewal the
//! watch had not delivered yet counts from now. So when a grant is taken away, every
//! renewal acknowledged to its holder before that was sent at least a ttl earlier —
//! the holder, which stops a margin before a ttl has passed since its last acknowledged
//! renewal was sent, has already stopped.

pub mod cache;
pub mod mirror;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use konductor_api::locks::rules::PermitRecord;
use konductor_api::locks::rules::{Decision, LockInput, Transition, evaluate, expiry};
use konductor_api::locks::status::{
    LockFacts, LockStatus, lock_status, permit_status, ready_condition,
};
use konductor_api::locks::{LockKind, Permit, PermitPhase};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use self::cache::{
    IndexedPermit, LockKey, LockObjects, LockState, Locks, PermitClaims, PermitIndex,
    more_than_renewed,
};
use self::mirror::{Mirror, When};
use crate::Result;
use crate::clock::MonotonicClock;
use crate::engine::adoption::{self, Adopter, Earlier, Orphan};
use crate::engine::claims::{Change, HasUid};
use crate::engine::events::{Events, Note};
use crate::engine::writes::{Precondition, StatusPatch};
use crate::engine::{Reconciler, Workers, feed_index, serve};
use crate::metrics::KindLabels;
use crate::queue::{Urgency, WorkQueue};

/// The name the lock controller records Events under.
pub const LOCK_CONTROLLER_NAME: &str = "konductor.io/lock-controller";

/// Reconciles running at once.
const WORKERS: usize = 4;
/// How long to wait before looking again when the permit index is not complete yet.
const CACHE_WAIT: Duration = Duration::from_millis(100);
/// How long a change of the lock's waiting list alone (a claim joined or left the queue;
/// nobody granted, nothing expired) may wait before it is written: under load it then
/// shares the write of the next handover instead of costing one of its own.
const QUEUE_COALESCE: Duration = Duration::from_millis(25);

/// The server-side timeout of the controller's watches: a watch that stays silent
/// longer (plus a margin) is taken for dead and started again.
const WATCH_TIMEOUT_SECS: u32 = 60;

/// What a decision of a lock-family kind starts from: the lock as stored, its claims
/// and the lock rules' view of each, the lock's ttl and the controller's clock.
pub struct Claimed<'a> {
    /// The lock.
    pub lock: &'a LockState,
    /// Its claims.
    pub permits: &'a [Arc<IndexedPermit>],
    /// The lock rules' view of each claim, in the same order.
    pub records: Vec<PermitRecord>,
    /// `spec.ttl`.
    pub ttl: Duration,
    /// The controller's clock.
    pub now: Timestamp,
}

/// How a kind of the lock family decides: its grants, and the status to write. `Err`
/// refuses the lock, naming what in its spec cannot be used.
pub type Decide = fn(LockKind, Claimed<'_>) -> std::result::Result<(Decision, LockStatus), String>;

/// A kind of the lock family as the lock controller runs it: which objects to watch,
/// and how they are decided. The lock kinds are [`lock_kinds`]; a kind built on them
/// (a Once) brings its own `decide` and is handed to [`run`] beside them.
#[derive(Clone, Copy)]
pub struct FamilyKind {
    /// The kind.
    pub kind: LockKind,
    /// How its locks are decided.
    pub decide: Decide,
}

/// Semaphore, Mutex and RWMutex: decided by the lock rules alone.
pub fn lock_kinds() -> Vec<FamilyKind> {
    [LockKind::Semaphore, LockKind::Mutex, LockKind::RWMutex]
        .into_iter()
        .map(|kind| FamilyKind {
            kind,
            decide: by_lock_rules,
        })
        .collect()
}

/// The lock rules' decision, and the status it comes out as.
fn by_lock_rules(
    kind: LockKind,
    claimed: Claimed<'_>,
) -> std::result::Result<(Decision, LockStatus), String> {
    let Claimed {
        lock,
        records,
        ttl,
        now,
        ..
    } = claimed;
    let decision = evaluate(&LockInput {
        admits: kind.admits(),
        permits: lock.permits,
        ttl,
        last_token: lock.last_token(),
        permits_of_lock: &records,
        now,
    });
    let wanted = lock_status(&lock.facts(kind), &decision, &records, now);
    Ok((decision, wanted))
}

/// Shared by the lock workers.
struct Context {
    /// How each kind of the family decides.
    decide: std::collections::HashMap<LockKind, Decide>,
    client: Client,
    metrics: Arc<crate::metrics::Metrics>,
    events: Events,
    locks: Locks,
    permits: PermitIndex,
    mirror: Mirror,
    clock: MonotonicClock,
    queue_changes: QueueChanges,
}

/// What `wanted` changes in the lock's status as stored (compared as the API server
/// stores them: times at its microsecond precision), as a merge patch; `None` when
/// nothing. Each status is serialized once per reconcile, here.
fn status_changes(lock: &LockState, wanted: &LockStatus) -> Option<serde_json::Value> {
    let stored = lock
        .status
        .as_ref()
        .map_or(serde_json::Value::Null, LockStatus::to_value);
    status::merge_patch(&stored, &wanted.to_value())
}

/// Writes `changes` (see [`status_changes`]) into the lock's status, conditional on the
/// version it was decided from, and takes the answer into the cache.
async fn write_lock_status(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    changes: serde_json::Value,
) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &key.kind.api_resource());
    let body = StatusPatch {
        metadata: Precondition {
            resource_version: lock.version.as_deref(),
            ..Precondition::default()
        },
        status: changes,
    };
    let answer = api
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    ctx.locks.wrote(key, lock.version.clone(), &answer);
    ctx.metrics.status_written(key.kind.word());
    Ok(())
}

/// Reads afresh each permit whose grant the decision expires: a renewal the watch had
/// not delivered yet is noted as seen now. Says whether one was found (then the lock
/// must be evaluated again).
async fn renewed_meanwhile(
    ctx: &Context,
    key: &LockKey,
    decision: &Decision,
    permits: &[Arc<IndexedPermit>],
) -> Result<bool> {
    let api: Api<Permit> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut found = false;
    for transition in &decision.transitions {
        let Transition::Expired { permit: i, .. } = transition else {
            continue;
        };
        let known = &permits[*i].permit;
        if let Some(fresh) = api.get_opt(&known.name_any()).await?
            && fresh.uid() == known.uid()
            && fresh.spec.renew_time != known.spec.renew_time
        {
            ctx.permits.note(&fresh, ctx.clock.now());
            found = true;
        }
    }
    Ok(found)
}

/// Makes the lock the owner of its permits that are not owned by it, and labels them
/// with it — written with kubectl, or by a client that remembered an earlier lock of
/// the same name (its holder keeps its claim: the earlier owner is replaced), so
/// deleting the lock deletes them. Failures are left for the permit's next look.
async fn adopt_permits(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    permits: &[Arc<IndexedPermit>],
) {
    let kind = key.kind.api_resource().kind;
    let label = konductor_api::locks::lock_label(key.kind);
    let adopter = Adopter {
        kind: &kind,
        name: &key.name,
        uid: &lock.uid,
        label: &label,
        earlier: Earlier::TakenOver,
    };
    let patches: Vec<_> = permits
        .iter()
        .map(|p| &p.permit)
        .filter_map(|permit| {
            let version = permit.resource_version();
            let orphan = Orphan {
                name: permit.metadata.name.as_deref().unwrap_or_default(),
                resource_version: version.as_deref(),
                owners: permit.owner_references(),
                labelled: permit.labels().get(&label) == Some(&key.name),
            };
            adoption::patch(&orphan, &adopter).map(|patch| (permit.name_any(), patch))
        })
        .collect();
    if patches.is_empty() {
        return;
    }
    let api: Api<Permit> = Api::namespaced(ctx.client.clone(), &key.namespace);
    if let Err(error) = adoption::adopt(&api, patches).await {
        tracing::debug!(%error, lock = %key, "adopting permits");
    }
}

/// Deletes an Expired permit kept long enough, in the background (only that one: a
/// Permit created again under its name stays).
fn remove_later(ctx: &Context, permit: &Permit) {
    let api: Api<Permit> =
        Api::namespaced(ctx.client.clone(), &permit.namespace().unwrap_or_default());
    let (name, params) = (
        permit.name_any(),
        DeleteParams {
            preconditions: Some(Preconditions {
                uid: permit.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        },
    );
    tokio::spawn(async move {
        if let Err(error) = api.delete(&name, &params).await {
            tracing::debug!(%error, permit = %name, "removing an expired permit");
        }
    });
}

/// A lock whose spec cannot be used grants nothing; its Ready condition says `why`.
async fn refuse(
    ctx: &Context,
    key: &LockKey,
    lock: &LockState,
    why: &str,
    now: Timestamp,
) -> Result<Option<Duration>> {
    let mut refused = lock
        .status
        .clone()
        .unwrap_or_else(|| LockStatus::empty(key.kind));
    let facts = LockFacts {
        refusal: Some(why),
        ..lock.facts(key.kind)
    };
    refused.claims_mut().conditions = vec![ready_condition(&facts, now)];
    if let Some(changes) = status_changes(lock, &refused) {
        write_lock_status(ctx, key, lock, changes).await?;
    }
    Ok(None)
}

/// Evaluates one lock and writes what changed; returns when to look again.
async fn reconcile(key: &LockKey, ctx: &Context) -> Result<Option<Duration>> {
    let Some(lock) = ctx.locks.get(key) else {
        ctx.queue_changes.written(key);
        return Ok(None);
    };
    if !ctx.permits.is_ready() {
        return Ok(Some(CACHE_WAIT));
    }
    let now = ctx.clock.now();
    let ttl = match &lock.ttl {
        Ok(ttl) => *ttl,
        Err(why) => return refuse(ctx, key, &lock, why, now).await,
    };
    let Some(decide) = ctx.decide.get(&key.kind) else {
        return Ok(None);
    };
    let permits = ctx.permits.of(key);
    let claimed = Claimed {
        lock: &lock,
        permits: &permits,
        records: permits
            .iter()
            .map(|p| status::record_of(p, &lock))
            .collect(),
        ttl,
        now,
    };
    let (decision, wanted) = match decide(key.kind, claimed) {
        Ok(decided) => decided,
        Err(why) => return refuse(ctx, key, &lock, &why, now).await,
    };
    if renewed_meanwhile(ctx, key, &decision, &permits).await? {
        return Ok(Some(Duration::ZERO));
    }

    // The grant: one conditional write of the lock's status. A change of the queue
    // alone waits a moment for company (see QUEUE_COALESCE).
    let mut wait_for_company = None;
    if let Some(changes) = status_changes(&lock, &wanted) {
        let queue_only = decision.transitions.is_empty()
            && lock
                .status
                .as_ref()
                .is_some_and(|stored| stored.only_queue_differs(&wanted));
        match queue_only.then(|| ctx.queue_changes.waited(key)) {
            Some(waited) if waited < QUEUE_COALESCE => {
                wait_for_company = Some(QUEUE_COALESCE - waited);
            }
            _ => {
                write_lock_status(ctx, key, &lock, changes).await?;
                ctx.queue_changes.written(key);
            }
        }
    }

    // Then the permits' own statuses: a grant's next (its holder learns of it there),
    // the rest off the critical path.
    for (indexed, decided) in permits.iter().zip(&decision.permits) {
        if decided.remove {
            remove_later(ctx, &indexed.permit);
            continue;
        }
        // A permit that stays queued keeps the position it was queued at: rewriting
        // every waiter's place on every handover would cost a write per waiter per
        // handover (the lock's `status.waiting` carries the live order).
        let stored = indexed.permit.status.as_ref();
        let still_queued = decided.phase == PermitPhase::Pending
            && stored.is_some_and(|s| s.phase == PermitPhase::Pending);
        if still_queued {
            continue;
        }
        let wanted = permit_status(stored, decided, now);
        if wanted.differs_from(stored) {
            // A grant or an expiry is awaited by its holder (who watches its Permit, not
            // the lock): written next, after the lock's status that made it real.
            let when = if decided.phase == PermitPhase::Pending {
                When::Later
            } else {
                When::AtOnce
            };
            ctx.mirror
                .write(&indexed.permit, wanted.as_replacement(), when);
        }
    }
    adopt_permits(ctx, key, &lock, &permits).await;

    let labels = KindLabels::of(key.kind.word());
    for transition in &decision.transitions {
        match transition {
            Transition::Granted {
                holder,
                token,
                permit,
            } => {
                ctx.metrics.lock_grants.get_or_create(&labels).inc();
                tracing::info!(kind = key.kind.word(), namespace = %key.namespace, lock = %key.name, %holder, token, "granted");
                publish(
                    ctx,
                    key,
                    &lock.uid,
                    &permits[*permit].permit,
                    (EventType::Normal, "Granted"),
                    format!("granted to {holder} with fencing token {token}"),
                );
            }
            Transition::Expired { holder, permit } => {
                ctx.metrics.lock_expiries.get_or_create(&labels).inc();
                tracing::info!(kind = key.kind.word(), namespace = %key.namespace, lock = %key.name, %holder, "grant expired");
                publish(
                    ctx,
                    key,
                    &lock.uid,
                    &permits[*permit].permit,
                    (EventType::Warning, "Expired"),
                    format!(
                        "{holder}'s grant expired: not renewed within {}",
                        konductor_api::duration::format_duration(ttl)
                    ),
                );
            }
        }
    }
    let next_look = decision
        .next_look
        .map(|at| Duration::try_from(at.duration_since(ctx.clock.now())).unwrap_or(Duration::ZERO));
    Ok(crate::engine::sooner(next_look, wait_for_company))
}

/// Since when each lock has had a change of its queue alone waiting to be written.
#[derive(Default)]
struct QueueChanges {
    since: std::sync::Mutex<std::collections::HashMap<LockKey, std::time::Instant>>,
}

impl QueueChanges {
    /// How long `key`'s queue change has waited (counting from now if it is new).
    fn waited(&self, key: &LockKey) -> Duration {
        self.since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_insert_with(std::time::Instant::now)
            .elapsed()
    }

    /// `key`'s status was written: nothing waits any more.
    fn written(&self, key: &LockKey) {
        self.since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Records an Event on the lock `key` (uid `uid`) about `permit`, in the background.
fn publish(
    ctx: &Context,
    key: &LockKey,
    uid: &str,
    permit: &Permit,
    (type_, reason): (EventType, &'static str),
    note: String,
) {
    let note = Note {
        type_,
        reason,
        note,
        action: "Reconcile",
        related: Some(permit.object_ref(&())),
    };
    ctx.events
        .publish(key.kind.word(), key.reference(uid), note);
}

impl Reconciler for Context {
    type Key = LockKey;

    fn kind(key: &LockKey) -> &'static str {
        key.kind.word()
    }

    async fn reconcile(&self, key: &LockKey) -> Result<Option<Duration>> {
        reconcile(key, self).await
    }

    /// A conflict means the lock changed since the cache saw it: read it afresh and
    /// look again at once.
    async fn after_conflict(&self, key: &LockKey) -> Option<Duration> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &key.namespace,
            &key.kind.api_resource(),
        );
        match api.get_opt(&key.name).await {
            Ok(Some(lock)) => {
                self.locks.refresh(key, &lock);
                Some(Duration::ZERO)
            }
            Ok(None) => None,
            Err(_) => Some(Duration::from_millis(100)),
        }
    }
}

/// Where a change of a permit sends its lock, and how urgently: a release of a grant is
/// a handover (the next holder waits for it); a renewal of a waiting claim that was
/// alive anyway changes nothing until the lock's next look, and wakes nothing.
fn route_permit(ctx: &Context, change: &Change<PermitClaims>) -> Option<(LockKey, Urgency)> {
    let lock = ctx.locks.get(&change.subject);
    let released = match (&change.before, &change.after) {
        (Some(gone), None) => {
            ctx.mirror.forget(gone.uid());
            let granted = lock.as_ref().is_some_and(|l| l.grants_to(gone.uid()));
            if let (true, Some(lock)) = (granted, &lock) {
                publish(
                    ctx,
                    &change.subject,
                    &lock.uid,
                    &gone.permit,
                    (EventType::Normal, "Released"),
                    format!("{} released it", gone.permit.spec.holder),
                );
            }
            granted
        }
        _ => false,
    };
    let quiet_renewal = match (&change.before, &change.after, &lock) {
        (Some(before), Some(after), Some(lock))
            if !more_than_renewed(&before.permit, &after.permit) =>
        {
            !lock.grants_to(after.uid())
                && lock
                    .ttl
                    .as_ref()
                    .ok()
                    .and_then(|ttl| expiry(before.renewal, *ttl))
                    .is_some_and(|until| ctx.clock.now() < until)
        }
        _ => false,
    };
    if released {
        Some((change.subject.clone(), Urgency::Urgent))
    } else if quiet_renewal {
        None
    } else {
        Some((change.subject.clone(), Urgency::Normal))
    }
}

/// Runs the lock controller for the kinds of the `family` until `shutdown` completes,
/// recording Events as `reporter`'s instance under [`LOCK_CONTROLLER_NAME`].
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<crate::metrics::Metrics>,
    family: Vec<FamilyKind>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let reporter = Reporter {
        controller: LOCK_CONTROLLER_NAME.to_owned(),
        instance: reporter.instance,
    };
    let permits = PermitIndex::default();
    let clock = MonotonicClock::start();
    let (mirror, mut mirror_writers) = Mirror::start(client.clone(), permits.clone(), clock);
    let queue = Arc::new(WorkQueue::<LockKey>::default());
    let ctx = Arc::new(Context {
        decide: family.iter().map(|k| (k.kind, k.decide)).collect(),
        client: client.clone(),
        events: Events::new(Recorder::new(client.clone(), reporter), metrics.clone()),
        metrics: metrics.clone(),
        locks: Locks::of_kinds(family.iter().map(|k| k.kind)),
        permits: permits.clone(),
        mirror: mirror.clone(),
        clock,
        queue_changes: QueueChanges::default(),
    });
    let config = || watcher::Config::default().timeout(WATCH_TIMEOUT_SECS);
    let locks = family.iter().filter_map(|k| {
        let index = ctx.locks.of_kind(k.kind)?.clone();
        let api = Api::all_with(client.clone(), &k.kind.api_resource());
        let route = |change: &Change<LockObjects>| Some((change.subject.clone(), Urgency::Normal));
        Some(feed_index(
            api,
            config(),
            index,
            Timestamp::now,
            queue.clone(),
            route,
        ))
    });
    let routing = ctx.clone();
    let feeds = futures::future::join(
        futures::future::join_all(locks),
        feed_index(
            Api::all(client.clone()),
            config(),
            permits,
            move || clock.now(),
            queue.clone(),
            move |change| route_permit(&routing, change),
        ),
    );
    let workers = Workers {
        reconciler: ctx,
        queue,
        count: WORKERS,
        metrics,
    };
    // The permit index's readiness is checked by each reconcile.
    serve(workers, std::future::ready(true), feeds, shutdown).await;
    mirror.close();
    mirror_writers.abort_all();
}
