//! The barrier controller: Arrivals in; Barrier status, Events and deadline requeues
//! out, via `konductor_api::rules::evaluate`. Wired to the engine ([`crate::engine`]):
//! [`arrivals`] indexes each barrier's Arrivals, this file is the reconcile and the
//! watches that feed its queue.
//!
//! Barriers are reconciled from a [`WorkQueue`] fed by two watches: barriers (each
//! change, except the echo of our own status writes) and arrivals (mapped to their
//! barrier through `spec.barrier`). Each reconcile reads its own
//! barrier's arrivals from the [`ArrivalIndex`] — never a LIST, never a scan of every
//! arrival — asks [`konductor_api::rules::evaluate`] for the status, and only translates
//! the answer: a status write when it changed, an Event on a transition, and a requeue
//! exactly at the deadline. It is level-based: a restart, a missed or a duplicated event
//! all end in the same status.
//!
//! Work per arrival does not grow with history: one index update, one reconcile of one
//! barrier (O(its arrivals)), at most one status write — fewer under load, because
//! arrivals that come in while a barrier waits in the queue or is being reconciled are
//! folded into one reconcile. The queue runs due work at once (kube-runtime's
//! scheduler waits for a timer tick, about a millisecond, before every reconcile).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use konductor_api::rules::{ArrivalRecord, BarrierInput, Transition, evaluate};
use konductor_api::{Arrival, Barrier, Outcome};
use kube::api::{Api, PostParams};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use self::arrivals::{ArrivalIndex, IndexedArrival};
use self::writes::Pacing;
use crate::engine::adoption::{self, Adopter, Earlier, Orphan};
use crate::engine::events::{Events, Note};
use crate::engine::writes::OwnWrites;
use crate::engine::{Reconciler, Workers, delete_expired, feed_claims, feed_subjects, serve};
use crate::metrics::Metrics;
use crate::queue::{Urgency, WorkQueue};
use crate::{Error, Result};

pub mod arrivals;
pub mod writes;

/// How metrics and logs name the kind.
const KIND: &str = "barrier";

/// How soon a barrier is looked at again when the arrivals index is still filling.
const CACHE_WAIT: Duration = Duration::from_millis(100);

/// How many barriers are reconciled at once. A reconcile mostly waits for its status
/// write, which the API server commits together with the others in flight.
const WORKERS: usize = 16;

/// How many of them may write progress (a barrier that cannot open yet) at once. When
/// arrivals come faster than that, progress waits in the queue, where each barrier's
/// arrivals coalesce into one status write, while openings use every worker: with
/// 1,000 barriers × 10 arrivals from 16 clients, 4 wrote 0.31 statuses per arrival
/// where 16 wrote 1.0 (docs/benchmarks.md).
const PROGRESS_WORKERS: usize = 2;

/// The `reportingController` of the controller's Events.
pub const CONTROLLER_NAME: &str = "konductor.io/barrier-controller";

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Records Events against barriers.
    pub events: Events,
    /// The arrivals of each barrier, kept current from the arrival watch.
    pub arrivals: ArrivalIndex,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// This controller's own recent status writes (see [`OwnWrites`]).
    own_writes: Arc<OwnWrites<Barrier>>,
    /// How often large barriers' progress is written (see [`Pacing`]).
    pacing: Pacing,
    /// The controller's barrier cache, for forgetting writes of deleted barriers.
    barriers: Store<Barrier>,
}

/// The arrivals that count for `barrier`: naming it in its namespace, and not owned by
/// an earlier barrier of the same name (those await garbage collection).
fn arrivals_of(barrier: &Barrier, kept: &[Arc<IndexedArrival>]) -> Vec<ArrivalRecord> {
    let uid = barrier.uid();
    kept.iter()
        .filter(|a| {
            a.owners
                .iter()
                .filter(|o| o.kind == "Barrier")
                .all(|o| Some(&o.uid) == uid.as_ref())
        })
        .map(|a| a.record.clone())
        .collect()
}

/// Makes the barrier the owner of its arrivals that have none, and labels them with it
/// (koncli does both itself; arrivals written with kubectl may do neither). Arrivals of
/// an earlier barrier of the same name are left to the garbage collector: a barrier
/// created again starts afresh.
async fn adopt_arrivals(
    barrier: &Barrier,
    arrivals: &[Arc<IndexedArrival>],
    ctx: &Context,
) -> Result<()> {
    let Some(uid) = barrier.uid() else {
        return Ok(());
    };
    let namespace = barrier.namespace().unwrap_or_default();
    let name = barrier.name_any();
    let adopter = Adopter {
        kind: "Barrier",
        name: &name,
        uid: &uid,
        label: konductor_api::BARRIER_LABEL,
        earlier: Earlier::Left,
    };
    let patches = arrivals.iter().filter_map(|arrival| {
        let orphan = Orphan {
            name: &arrival.name,
            resource_version: arrival.resource_version.as_deref(),
            owners: &arrival.owners,
            labelled: arrival.labelled,
        };
        adoption::patch(&orphan, &adopter).map(|patch| (arrival.name.clone(), patch))
    });
    let api: Api<Arrival> = Api::namespaced(ctx.client.clone(), &namespace);
    adoption::adopt(&api, patches.collect::<Vec<_>>()).await
}

impl Reconciler for Context {
    type Key = ObjectRef<Barrier>;

    fn kind(_: &ObjectRef<Barrier>) -> &'static str {
        KIND
    }

    async fn reconcile(&self, key: &ObjectRef<Barrier>) -> Result<Option<Duration>> {
        // A barrier gone from the cache was deleted: nothing to do.
        match self.barriers.get(key) {
            Some(barrier) => reconcile(barrier, self).await,
            None => Ok(None),
        }
    }
}

/// Brings one barrier's status up to date; returns when to look again (the deadline),
/// if a watch event may not come first.
async fn reconcile(barrier: Arc<Barrier>, ctx: &Context) -> Result<Option<Duration>> {
    // Never judge a barrier on a partial view of its arrivals (e.g. right after start).
    // Look again shortly rather than wait here: a reconcile blocked on an index that is
    // no longer being filled (during shutdown) would hold the controller forever.
    if !ctx.arrivals.is_ready() {
        return Ok(Some(CACHE_WAIT));
    }
    let barrier = ctx.own_writes.latest(barrier);
    let now = Timestamp::now();
    let namespace = barrier.namespace().unwrap_or_default();
    if let Some(wait) = ctx.pacing.hold(
        &barrier,
        ctx.arrivals.count(&(namespace.clone(), barrier.name_any())),
        now,
    ) {
        return Ok(Some(wait));
    }
    let started = Instant::now();
    let created_at = barrier
        .creation_timestamp()
        .map(|t| t.0)
        .ok_or(Error::MissingCreationTimestamp)?;
    let kept = ctx.arrivals.of(&(namespace.clone(), barrier.name_any()));
    let arrivals = arrivals_of(&barrier, &kept);
    let evaluation = evaluate(&BarrierInput {
        spec: &barrier.spec,
        generation: barrier.meta().generation,
        created_at,
        arrivals: &arrivals,
        previous: barrier.status.as_ref(),
        now,
    });

    // The status write goes first and alone: waiters are released by it, so it must
    // not queue behind the Event's own durable write. `kubectl describe` may show the
    // new phase a moment before its Event; a crash in that moment loses the Event
    // (Events are best effort in Kubernetes too), never the status.
    if barrier.status.as_ref() != Some(&evaluation.status) {
        let api: Api<Barrier> =
            Api::namespaced(ctx.client.clone(), &barrier.namespace().unwrap_or_default());
        let mut next = (*barrier).clone();
        next.status = Some(evaluation.status.clone());
        // Replace (not patch) so fields that disappeared are removed, and the
        // resourceVersion makes a concurrent change a conflict that retries.
        let written = api
            .replace_status(&barrier.name_any(), &PostParams::default(), &next)
            .await
            .map_err(Error::Kube)?;
        ctx.own_writes.remember(&barrier, written, &ctx.barriers);
        ctx.pacing.wrote(&barrier, started.elapsed());
        ctx.metrics.status_written(KIND);
    }
    // Adoption does not change what counts (arrivals without an owner count already),
    // so it comes after the status write, off the path that releases waiters.
    adopt_arrivals(&barrier, &kept, ctx).await?;
    if let Some(transition) = evaluation.transition {
        tracing::info!(
            namespace = %barrier.namespace().unwrap_or_default(),
            barrier = %barrier.name_any(),
            phase = %evaluation.status.phase,
            reason = transition.reason(),
            arrived = evaluation.status.arrived,
            "barrier {}",
            match transition {
                Transition::Opened => "opened",
                Transition::TimedOut => "timed out",
                Transition::Failed => "failed",
                Transition::InvalidSpec => "has an invalid spec",
                Transition::Revived => "is waiting again",
            }
        );
        publish(ctx, &barrier, transition, &evaluation.status).await;
    }
    if evaluation.transition == Some(Transition::Opened)
        && let Some(MicroTime(opened)) = &evaluation.status.opened_at
    {
        let waited = opened.duration_since(created_at);
        ctx.metrics
            .time_to_open
            .observe(waited.as_secs_f64().max(0.0));
    }

    // A finished barrier past its spec.ttlAfterFinished goes, with its arrivals.
    if evaluation.delete_after == Some(Duration::ZERO) {
        expire(&barrier, ctx, &evaluation.status).await?;
        return Ok(None);
    }
    // Look again exactly at the deadline, or when the barrier is to be deleted.
    Ok(crate::engine::sooner(
        evaluation.requeue_after,
        evaluation.delete_after,
    ))
}

/// Deletes a barrier whose `spec.ttlAfterFinished` ran out, after an Event saying so
/// (on the barrier, so `kubectl get events` keeps it after the barrier is gone). Only
/// this barrier: one created again under its name meanwhile has another uid.
async fn expire(
    barrier: &Barrier,
    ctx: &Context,
    status: &konductor_api::BarrierStatus,
) -> Result<()> {
    let ttl = barrier
        .spec
        .ttl_after_finished
        .as_deref()
        .unwrap_or_default();
    let note = format!(
        "deleting: {} {ttl} ago (spec.ttlAfterFinished {ttl})",
        match status.phase {
            konductor_api::BarrierPhase::Open => "opened",
            konductor_api::BarrierPhase::Timeout => "timed out",
            _ => "failed",
        }
    );
    let api: Api<Barrier> =
        Api::namespaced(ctx.client.clone(), &barrier.namespace().unwrap_or_default());
    delete_expired(&api, barrier, &ctx.events, KIND, note).await
}

/// Records the Event for a transition (after the status write, which is what counts).
async fn publish(
    ctx: &Context,
    barrier: &Barrier,
    transition: Transition,
    status: &konductor_api::BarrierStatus,
) {
    let note = status
        .condition(match transition {
            Transition::InvalidSpec => konductor_api::CONDITION_READY,
            _ => konductor_api::CONDITION_OPEN,
        })
        .map(|c| c.message.clone());
    let type_ = match transition {
        Transition::Opened | Transition::Revived => EventType::Normal,
        Transition::TimedOut | Transition::Failed | Transition::InvalidSpec => EventType::Warning,
    };
    let note = Note {
        type_,
        reason: transition.reason(),
        note: note.unwrap_or_default(),
        action: "Reconcile",
        related: None,
    };
    ctx.events
        .record(KIND, &barrier.object_ref(&()), note)
        .await;
}

/// How urgently an arrival's barrier needs a look: urgently once it has as many
/// arrivals as it requires (this one may open it), in turn otherwise (progress).
fn urgency_of(
    key: &ObjectRef<Barrier>,
    barriers: &Store<Barrier>,
    index: &ArrivalIndex,
) -> Urgency {
    let may_open = barriers.get(key).is_some_and(|barrier| {
        let required = usize::try_from(barrier.spec.required()).unwrap_or(0);
        let subject = (key.namespace.clone().unwrap_or_default(), key.name.clone());
        index.count(&subject) >= required
    });
    if may_open {
        Urgency::Urgent
    } else {
        Urgency::Normal
    }
}

/// Which Arrival triggers which Barrier.
fn barrier_of(arrival: Arrival) -> Option<ObjectRef<Barrier>> {
    let namespace = arrival.namespace()?;
    Some(ObjectRef::new(&arrival.spec.barrier).within(&namespace))
}

/// Runs the barrier controller for all namespaces until `shutdown` resolves (one of
/// the kinds [`crate::kinds::run`] joins). Reconciles are postponed until the arrivals
/// index has filled, so no barrier is ever judged on a partial view.
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let barriers: Api<Barrier> = Api::all(client.clone());
    let arrivals: Api<Arrival> = Api::all(client.clone());
    let own_writes = Arc::new(OwnWrites::default());
    let (barrier_cache, barrier_writer) = reflector::store();
    let index = ArrivalIndex::new();
    metrics.set_barrier_store(barrier_cache.clone());
    let context = Arc::new(Context {
        events: Events::new(Recorder::new(client.clone(), reporter), metrics.clone()),
        client,
        arrivals: index.clone(),
        metrics: metrics.clone(),
        own_writes: own_writes.clone(),
        pacing: Pacing::default(),
        barriers: barrier_cache.clone(),
    });
    let queue = Arc::new(WorkQueue::with_normal_limit(PROGRESS_WORKERS));
    let feed = {
        let barriers = feed_subjects(barriers, barrier_writer, own_writes, queue.clone());
        let (to_queue, cache) = (queue.clone(), barrier_cache.clone());
        let arrivals = feed_claims(arrivals, index.clone(), move |arrival: Arrival| {
            // A reported failure may fail the barrier: as urgent as an opening.
            let failed = arrival.spec.outcome == Outcome::Failed;
            if let Some(key) = barrier_of(arrival) {
                let urgency = if failed {
                    Urgency::Urgent
                } else {
                    urgency_of(&key, &cache, &index)
                };
                to_queue.add_with(key, urgency);
            }
        });
        futures::future::join(barriers, arrivals)
    };
    let workers = Workers {
        reconciler: context,
        queue,
        count: WORKERS,
        metrics,
    };
    // Workers start once the barrier cache holds every barrier.
    let ready = async move { barrier_cache.wait_until_ready().await.is_ok() };
    serve(workers, ready, feed, shutdown).await;
    Ok(())
}
