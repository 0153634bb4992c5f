//! The barrier controller: Arrivals in; Barrier status, Events and deadline requeues
//! out, via `konductor_api::barrier::rules::evaluate`. Wired to the engine ([`crate::engine`]):
//! [`arrivals`] indexes each barrier's Arrivals, this file is the reconcile and the
//! watches that feed its queue.
//!
//! Barriers are reconciled from a [`crate::queue::WorkQueue`] fed by two watches: barriers (each
//! change, except the echo of our own status writes) and arrivals (mapped to their
//! barrier through `spec.barrier`). Each reconcile reads its own
//! barrier's arrivals from the [`ArrivalIndex`] — never a LIST, never a scan of every
//! arrival — asks [`konductor_api::barrier::rules::evaluate`] for the status, and only translates
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
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use konductor_api::barrier::rules::{ArrivalRecord, BarrierInput, Transition, evaluate};
use konductor_api::{Arrival, Barrier, BarrierPhase, BarrierStatus, Outcome};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use self::arrivals::{ArrivalIndex, IndexedArrival};
use self::writes::Pacing;
use crate::engine::adoption::{self, Adopter, Earlier, Orphan};
use crate::engine::feed_index;
use crate::engine::subject::{ClaimFeeds, Judged, Judgement, Running, Start, SubjectKind};
use crate::metrics::Metrics;
use crate::queue::Urgency;
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

/// The Barrier as a [`SubjectKind`]: its arrivals come from the claim index.
pub struct BarrierKind {
    /// The API client.
    client: Client,
    /// The arrivals of each barrier, kept current from the arrival watch.
    arrivals: ArrivalIndex,
    /// Prometheus metrics (the time to open).
    metrics: Arc<Metrics>,
    /// How often large barriers' progress is written (see [`Pacing`]).
    pacing: Pacing,
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
    ctx: &BarrierKind,
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

impl SubjectKind for BarrierKind {
    type Subject = Barrier;
    type Transition = Transition;
    type Also = ();
    /// The arrivals indexed for the barrier.
    type Seen = Vec<Arc<IndexedArrival>>;

    type Settings = ();

    const KIND: &'static str = KIND;
    const CONTROLLER: &'static str = CONTROLLER_NAME;
    const RUNNING: Running = Running {
        workers: WORKERS,
        progress_workers: Some(PROGRESS_WORKERS),
    };

    /// Its arrivals' feed: a reported failure may fail the barrier, and enough
    /// arrivals may open it — both as urgent as an opening; the rest is progress.
    fn start(start: &Start<Barrier>, (): ()) -> (Self, ClaimFeeds) {
        let index = ArrivalIndex::new();
        start.metrics.set_barrier_store(start.cache.clone());
        let kind = BarrierKind {
            client: start.client.clone(),
            arrivals: index.clone(),
            metrics: start.metrics.clone(),
            pacing: Pacing::default(),
        };
        let cache = start.cache.clone();
        let arrivals: Api<Arrival> = Api::all(start.client.clone());
        let feed = feed_index(
            arrivals,
            watcher::Config::default(),
            index.clone(),
            jiff::Timestamp::now,
            start.queue.clone(),
            move |change| {
                let (namespace, name) = &change.subject;
                let key = ObjectRef::new(name).within(namespace);
                let failed =
                    change.after.as_ref().map(|a| a.record.outcome) == Some(Outcome::Failed);
                let urgency = if failed {
                    Urgency::Urgent
                } else {
                    urgency_of(&key, &cache, &index)
                };
                Some((key, urgency))
            },
        );
        (kind, Box::pin(feed))
    }

    async fn judge(&self, barrier: &Arc<Barrier>) -> Result<Judged<Self>> {
        // Never judge a barrier on a partial view of its arrivals (e.g. right after
        // start). Look again shortly rather than wait here: a reconcile blocked on an
        // index that is no longer being filled (during shutdown) would hold the
        // controller forever.
        if !self.arrivals.is_ready() {
            return Ok(Judged::Later(CACHE_WAIT));
        }
        let now = Timestamp::now();
        let subject = (barrier.namespace().unwrap_or_default(), barrier.name_any());
        let count = self.arrivals.count(&subject);
        if let Some(wait) = self.pacing.hold(barrier, count, now) {
            return Ok(Judged::Later(wait));
        }
        let created_at = barrier
            .creation_timestamp()
            .map(|t| t.0)
            .ok_or(Error::MissingCreationTimestamp)?;
        let kept = self.arrivals.of(&subject);
        let arrivals = arrivals_of(barrier, &kept);
        let evaluation = evaluate(&BarrierInput {
            spec: &barrier.spec,
            generation: barrier.meta().generation,
            created_at,
            arrivals: &arrivals,
            previous: barrier.status.as_ref(),
            now,
        });
        Ok(Judged::Now(Judgement {
            evaluation,
            seen: kept,
        }))
    }

    fn wrote(&self, barrier: &Barrier, took: Duration) {
        self.pacing.wrote(barrier, took);
    }

    async fn after_write(
        &self,
        barrier: &Barrier,
        judgement: &Judgement<Self>,
    ) -> Result<Option<Duration>> {
        // Adoption does not change what counts (arrivals without an owner count
        // already), so it comes after the status write, off the path that releases
        // waiters.
        adopt_arrivals(barrier, &judgement.seen, self).await?;
        let evaluation = &judgement.evaluation;
        if evaluation.transition == Some(Transition::Opened)
            && let (Some(MicroTime(opened)), Some(created)) =
                (&evaluation.status.opened_at, barrier.creation_timestamp())
        {
            let waited = opened.duration_since(created.0);
            self.metrics
                .time_to_open
                .observe(waited.as_secs_f64().max(0.0));
        }
        Ok(None)
    }

    /// The message of the condition the transition changed.
    fn message(status: &BarrierStatus, transition: Transition) -> String {
        let changed = match transition {
            Transition::InvalidSpec => konductor_api::CONDITION_READY,
            _ => konductor_api::CONDITION_OPEN,
        };
        status
            .condition(changed)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    }

    fn ended(status: &BarrierStatus) -> &'static str {
        match status.phase {
            BarrierPhase::Open => "opened",
            BarrierPhase::Timeout => "timed out",
            _ => "failed",
        }
    }

    fn ttl_after_finished(barrier: &Barrier) -> Option<&str> {
        barrier.spec.ttl_after_finished.as_deref()
    }
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
