//! What every kind's controller shares — the engine the kinds are wired to. A kind's
//! controller module says how to reconcile one subject and what feeds its queue; the
//! engine does the rest the same way for every kind:
//!
//! - [`claims`]: a subject's claims (a barrier's Arrivals, a lock's Permits), indexed by
//!   subject from one watch, with the watcher protocol done once.
//! - [`writes`]: which versions the controller wrote each object over, so no cache it
//!   feeds goes back and the echo of its own write is no news.
//! - [`adoption`]: claims written without their subject as owner (by kubectl, or for
//!   an earlier subject of the same name) are adopted, and labelled with it.
//! - [`events`]: Events on subjects, Warnings always, Normal ones within a budget per
//!   subject.
//! - [`subject`]: the reconcile of every kind whose rules decide its subject's status
//!   (a kind implements [`subject::SubjectKind`]; [`subject::Subjects`] writes the
//!   status, records the transition, deletes after the ttl, says when to look again).
//! - this module: the workers ([`serve`]) — a [`WorkQueue`] drained by a fixed number
//!   of workers, each reconcile counted and timed by kind, and one error policy (a
//!   conflict is looked at again at once, anything else after a pause that doubles
//!   per subject while it keeps failing — [`ErrorBackoff`] — both counted by kind and
//!   error).

pub mod adoption;
pub mod claims;
pub mod events;
pub mod subject;
pub mod writes;

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use crate::engine::claims::{Change, ClaimIndex, Claims};
use crate::engine::events::{Events, Note};
use crate::engine::writes::OwnWrites;
use crate::metrics::Metrics;
use crate::queue::{Urgency, WorkQueue};
use crate::{Error, Result};

/// The first pause after a failed reconcile (other than a conflict); it doubles with
/// each further failure of the same subject, up to [`MAX_RETRY_AFTER`].
const FIRST_RETRY_AFTER: Duration = Duration::from_millis(100);

/// The longest pause between retries of a subject that keeps failing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long each subject waits before its next retry: 100 ms after its first failure,
/// doubling per failure in a row up to 30 s, and back to the start after a success — a
/// passing blip costs a tenth of a second, a subject that cannot be written does not
/// cost a request every two seconds forever. Only failing subjects take memory.
pub struct ErrorBackoff<K> {
    failures: std::sync::Mutex<std::collections::HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> Default for ErrorBackoff<K> {
    fn default() -> Self {
        Self {
            failures: std::sync::Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> ErrorBackoff<K> {
    /// `key` failed (again): how long until it is looked at next.
    pub fn failed(&self, key: &K) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(key.clone()).or_insert(0);
        let pause = FIRST_RETRY_AFTER
            .saturating_mul(2u32.saturating_pow(*count))
            .min(MAX_RETRY_AFTER);
        *count = count.saturating_add(1);
        pause
    }

    /// `key` was reconciled: its next failure starts over.
    pub fn succeeded(&self, key: &K) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// How long running reconciles may take to finish when the controller stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One kind's reconcile, as the engine's workers call it.
pub trait Reconciler: Send + Sync + 'static {
    /// Which subject to look at (a barrier's or a lock's namespace and name).
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;

    /// The kind of `key`'s subject as metrics and logs name it (`barrier`, `mutex`, …).
    fn kind(key: &Self::Key) -> &'static str;

    /// Brings `key`'s subject up to date; returns when to look again, if a watch event
    /// may not come first.
    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = Result<Option<Duration>>> + Send;

    /// When to look at `key` again after a 409 Conflict: someone wrote in between, and
    /// their write's watch event usually triggers the next look first. A kind whose
    /// cache may lag its own conditional writes reads the subject afresh here.
    fn after_conflict(&self, key: &Self::Key) -> impl Future<Output = Option<Duration>> + Send {
        let _ = key;
        std::future::ready(Some(Duration::from_millis(50)))
    }
}

/// The error policy every kind shares: counts the failure by kind and error, and says
/// when to look again — after a conflict as the kind says (at once: a lock handover
/// must not wait on a backoff), otherwise after the subject's backoff.
async fn after_failure<R: Reconciler>(
    reconciler: &R,
    key: &R::Key,
    error: &Error,
    metrics: &Metrics,
    backoff: &ErrorBackoff<R::Key>,
) -> Option<Duration> {
    let kind = R::kind(key);
    metrics.failed(kind, error);
    if error.is_conflict() {
        // Routine: someone wrote in between; the next look sorts it out.
        tracing::debug!(%error, kind, subject = %key, "conflict; looking again");
        reconciler.after_conflict(key).await
    } else {
        let pause = backoff.failed(key);
        tracing::warn!(%error, kind, subject = %key, retry_in = ?pause, "reconcile failed; retrying");
        Some(pause)
    }
}

/// One worker: takes due keys off the queue and reconciles them until it closes.
async fn work<R: Reconciler>(
    reconciler: Arc<R>,
    queue: Arc<WorkQueue<R::Key>>,
    metrics: Arc<Metrics>,
    backoff: Arc<ErrorBackoff<R::Key>>,
) {
    while let Some(key) = queue.next().await {
        let result = {
            let _timer = metrics.reconciling(R::kind(&key));
            reconciler.reconcile(&key).await
        };
        let requeue = match result {
            Ok(requeue) => {
                backoff.succeeded(&key);
                requeue
            }
            Err(error) => after_failure(&*reconciler, &key, &error, &metrics, &backoff).await,
        };
        queue.done(key, requeue);
    }
}

/// How a kind's controller is run by [`serve`].
pub struct Workers<R: Reconciler> {
    /// The kind's reconcile.
    pub reconciler: Arc<R>,
    /// The queue its watches fill.
    pub queue: Arc<WorkQueue<R::Key>>,
    /// How many reconciles run at once (each mostly waits for its writes, which the
    /// API server commits together with the others in flight).
    pub count: usize,
    /// Where reconciles, their durations and failures are counted.
    pub metrics: Arc<Metrics>,
}

/// Runs a kind's controller until `shutdown` resolves or its `feeds` (the watches that
/// fill the queue) end: the workers start once `ready` resolves true (the subjects'
/// cache holds every subject, so "not listed yet" is never mistaken for "deleted").
/// On the way out, the queue closes and running reconciles get a few seconds to finish.
pub async fn serve<R: Reconciler>(
    workers: Workers<R>,
    ready: impl Future<Output = bool>,
    feeds: impl Future,
    shutdown: impl Future,
) {
    let Workers {
        reconciler,
        queue,
        count,
        metrics,
    } = workers;
    let mut running = tokio::task::JoinSet::new();
    let backoff = Arc::new(ErrorBackoff::default());
    {
        let start = async {
            if ready.await {
                for _ in 0..count {
                    running.spawn(work(
                        reconciler.clone(),
                        queue.clone(),
                        metrics.clone(),
                        backoff.clone(),
                    ));
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = feeds => {}
            () = start => {}
            _ = shutdown => {}
        }
    }
    queue.close();
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("reconciles still running at shutdown were cancelled");
    }
}

/// The sooner of two requeues (either may be absent): what a reconcile returns when two
/// things may change its subject by themselves.
pub fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Deletes a finished subject whose `spec.ttlAfterFinished` ran out, after a Normal
/// Event saying why (`note`; on the subject, so `kubectl get events` keeps it after the
/// subject is gone). Only this object: one created again under its name meanwhile has
/// another uid, and is left alone.
pub async fn delete_expired<K>(
    api: &Api<K>,
    subject: &K,
    events: &Events,
    kind: &str,
    note: String,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    tracing::info!(kind, namespace = %subject.namespace().unwrap_or_default(), name = %subject.name_any(), "{note}");
    let note = Note {
        type_: EventType::Normal,
        reason: "Expired",
        note,
        action: "Delete",
        related: None,
    };
    events.record(kind, &subject.object_ref(&()), note).await;
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: subject.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&subject.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// Feeds `queue` from the watch of a subject kind (every namespace): each change goes
/// into the cache `writer` fills, then queues its subject — except the echo of the
/// controller's own status write, which carries nothing it did not know.
pub async fn feed_subjects<K>(
    api: Api<K>,
    writer: Writer<K>,
    own_writes: Arc<OwnWrites<K>>,
    queue: Arc<WorkQueue<ObjectRef<K>>>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .try_filter(move |subject| futures::future::ready(!own_writes.is_echo(subject)))
        .for_each(|event| {
            match event {
                Ok(subject) => queue.add(ObjectRef::from_obj(&subject)),
                Err(error) => tracing::warn!(%error, kind = %K::kind(&()), "watching subjects"),
            }
            futures::future::ready(())
        })
        .await;
}

/// Feeds `index` from the watch `api` (a kind's claims, or a lock kind's objects), each
/// change it makes — seen at `now()` — `route`d once applied to the key it wakes in
/// `queue` and how urgently: a reconcile never reads an index older than the event that
/// woke it, the echo of the controller's own write wakes nothing, and a re-list wakes
/// only what it changed.
pub async fn feed_index<C: Claims, Q: Eq + Hash + Clone>(
    api: Api<C::Claim>,
    config: watcher::Config,
    index: ClaimIndex<C>,
    now: impl Fn() -> jiff::Timestamp,
    queue: Arc<WorkQueue<Q>>,
    mut route: impl FnMut(&Change<C>) -> Option<(Q, Urgency)>,
) where
    C::Claim: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .for_each(|event| {
            match event {
                Ok(event) => {
                    for change in index.apply(&event, now()) {
                        if let Some((key, urgency)) = route(&change) {
                            queue.add_with(key, urgency);
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "watching {}", std::any::type_name::<C>()),
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_subject_waits_longer_each_time_up_to_a_cap_and_starts_over_after_success() {
        let backoff = ErrorBackoff::default();
        let pauses: Vec<u128> = (0..12).map(|_| backoff.failed(&"a").as_millis()).collect();
        assert_eq!(
            pauses,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(
            backoff.failed(&"b"),
            Duration::from_millis(100),
            "per subject"
        );
        backoff.succeeded(&"a");
        assert_eq!(backoff.failed(&"a"), Duration::from_millis(100));
    }
}
