//! One reconcile for every kind whose rules decide its subject's status (Barrier,
//! WaitGroup, Gate): a kind implements [`SubjectKind`] — what it observes and how it
//! asks its rules — and [`Subjects`] does the rest the same way for all of them: the
//! cache lookup and its own writes, the typed `replace_status`, the metrics, the
//! transition Event, the deletion after `spec.ttlAfterFinished` and the next look;
//! [`run`] starts such a kind's controller (its subjects' watch, its claim feeds, the
//! workers).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use konductor_api::evaluation::{Evaluation, PhaseChange};
use kube::api::{Api, PostParams};
use kube::core::NamespaceResourceScope;
use kube::core::object::HasStatus;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::events::Events;
use crate::engine::writes::OwnWrites;
use crate::engine::{Workers, delete_expired, feed_subjects, serve, sooner};
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::{Error, Result};

/// A kind's status type.
pub type StatusOf<K> = <<K as SubjectKind>::Subject as HasStatus>::Status;

/// What a kind's rules answered for one subject, with what the kind looked at to ask
/// them (kept for [`SubjectKind::after_write`]).
pub struct Judgement<K: SubjectKind> {
    /// The rules' answer.
    pub evaluation: Evaluation<StatusOf<K>, K::Transition, K::Also>,
    /// What the kind observed to get it.
    pub seen: K::Seen,
}

/// Whether a subject could be judged now.
pub enum Judged<K: SubjectKind> {
    /// Not yet (a cache still filling, writes being paced): look again after this.
    Later(Duration),
    /// Judged.
    Now(Judgement<K>),
}

/// A kind whose status its rules decide from what the controller observes.
pub trait SubjectKind: Send + Sync + Sized + 'static {
    /// The subject resource.
    type Subject: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasStatus<Status: Clone + PartialEq + Send + Sync>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// Its rules' changes of phase worth an Event.
    type Transition: PhaseChange;
    /// What else its rules decide (see [`Evaluation::also`]).
    type Also: Send + Sync;
    /// What the kind keeps of what it observed, for after the status write.
    type Seen: Send + Sync;

    /// What the kind's controller is told beyond its client (`()` for most; the Gate:
    /// the kinds it may read).
    type Settings: Send;

    /// How metrics, logs and Events name the kind (`barrier`, `waitgroup`, …).
    const KIND: &'static str;

    /// The `reportingController` of its Events (`kubectl describe` shows it as "From").
    const CONTROLLER: &'static str;

    /// How many reconciles run at once, and how many of them may write progress.
    const RUNNING: Running;

    /// The kind and the future of its claim feeds, made from what its controller
    /// [`Start`]s from (the subjects' own watch is [`run`]'s).
    fn start(start: &Start<Self::Subject>, settings: Self::Settings) -> (Self, ClaimFeeds);

    /// Observes what the subject's rules need and asks them (the latest known version
    /// of `subject`: the cache, or the controller's own newer write).
    fn judge(
        &self,
        subject: &Arc<Self::Subject>,
    ) -> impl Future<Output = Result<Judged<Self>>> + Send;

    /// Called once the status is written, `took` after the reconcile began.
    fn wrote(&self, subject: &Self::Subject, took: Duration) {
        let _ = (subject, took);
    }

    /// What follows the status write, off the path that releases waiters (adopting
    /// claims, Events beyond the transition's); may ask for an earlier look.
    fn after_write(
        &self,
        subject: &Self::Subject,
        judgement: &Judgement<Self>,
    ) -> impl Future<Output = Result<Option<Duration>>> + Send {
        let _ = (subject, judgement);
        std::future::ready(Ok(None))
    }

    /// The transition Event's message.
    fn message(status: &StatusOf<Self>, transition: Self::Transition) -> String;

    /// How a finished subject ended, for the note on its deletion after
    /// `spec.ttlAfterFinished` (`opened`, `done`, `timed out`, `failed`).
    fn ended(status: &StatusOf<Self>) -> &'static str {
        let _ = status;
        "finished"
    }

    /// Its `spec.ttlAfterFinished` as written, for the note on its deletion.
    fn ttl_after_finished(subject: &Self::Subject) -> Option<&str> {
        let _ = subject;
        None
    }

    /// `key` is gone from the cache (deleted): let go of what was kept for it.
    fn forget(&self, key: &ObjectRef<Self::Subject>) {
        let _ = key;
    }
}

/// A [`SubjectKind`]'s reconciler: the engine's [`crate::engine::Reconciler`] for it.
pub struct Subjects<K: SubjectKind> {
    /// The kind.
    pub kind: K,
    client: Client,
    events: Events,
    metrics: Arc<Metrics>,
    own_writes: Arc<OwnWrites<K::Subject>>,
    cache: Store<K::Subject>,
}

impl<K: SubjectKind> Subjects<K> {
    /// `kind`'s reconciler, reading subjects from `cache` (fed by
    /// [`crate::engine::feed_subjects`] with the same `own_writes`).
    pub fn new(
        kind: K,
        client: Client,
        events: Events,
        metrics: Arc<Metrics>,
        own_writes: Arc<OwnWrites<K::Subject>>,
        cache: Store<K::Subject>,
    ) -> Self {
        Self {
            kind,
            client,
            events,
            metrics,
            own_writes,
            cache,
        }
    }

    /// Brings one subject's status up to date; returns when to look again.
    async fn settle(&self, subject: Arc<K::Subject>) -> Result<Option<Duration>> {
        let started = std::time::Instant::now();
        let subject = self.own_writes.latest(subject);
        let judgement = match self.kind.judge(&subject).await? {
            Judged::Later(after) => return Ok(Some(after)),
            Judged::Now(judgement) => judgement,
        };
        let evaluation = &judgement.evaluation;
        let namespace = subject.namespace().unwrap_or_default();
        let api: Api<K::Subject> = Api::namespaced(self.client.clone(), &namespace);
        // The status write goes first and alone: waiters are released by it, so it
        // must not queue behind an Event's own durable write. A crash right after it
        // loses the Event (best effort in Kubernetes too), never the status.
        if subject.status() != Some(&evaluation.status) {
            let mut next = (*subject).clone();
            *next.status_mut() = Some(evaluation.status.clone());
            // Replace (not patch) so fields that disappeared are removed, and the
            // resourceVersion makes a concurrent change a conflict that retries.
            let written = api
                .replace_status(&subject.name_any(), &PostParams::default(), &next)
                .await
                .map_err(Error::Kube)?;
            self.own_writes.remember(&subject, written, &self.cache);
            self.kind.wrote(&subject, started.elapsed());
            self.metrics.status_written(K::KIND);
        }
        let sooner_still = self.kind.after_write(&subject, &judgement).await?;
        if let Some(transition) = evaluation.transition {
            let message = K::message(&evaluation.status, transition);
            self.events
                .transition(
                    K::KIND,
                    &subject.object_ref(&()),
                    transition.is_warning(),
                    transition.reason(),
                    message,
                )
                .await;
        }
        if evaluation.delete_after == Some(Duration::ZERO) {
            let ttl = K::ttl_after_finished(&subject).unwrap_or_default();
            let note = format!(
                "deleting: {} {ttl} ago (spec.ttlAfterFinished {ttl})",
                K::ended(&evaluation.status)
            );
            delete_expired(&api, &*subject, &self.events, K::KIND, note).await?;
            return Ok(None);
        }
        Ok(sooner(
            sooner(evaluation.requeue_after, evaluation.delete_after),
            sooner_still,
        ))
    }
}

impl<K: SubjectKind> crate::engine::Reconciler for Subjects<K> {
    type Key = ObjectRef<K::Subject>;

    fn kind(_: &Self::Key) -> &'static str {
        K::KIND
    }

    async fn reconcile(&self, key: &Self::Key) -> Result<Option<Duration>> {
        match self.cache.get(key) {
            Some(subject) => self.settle(subject).await,
            None => {
                self.kind.forget(key);
                Ok(None)
            }
        }
    }
}

/// What a subject kind's controller starts from, to build its kind and its claim feeds:
/// the subjects' cache (filled by the subjects' own watch, which [`run`] adds), the
/// queue its feeds fill, and the client and Events its reconciles use.
pub struct Start<S: Resource<DynamicType = ()> + 'static> {
    /// The API client.
    pub client: Client,
    /// The subjects as last seen.
    pub cache: Store<S>,
    /// The queue of subjects to reconcile.
    pub queue: Arc<WorkQueue<ObjectRef<S>>>,
    /// Events on subjects.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The watches that feed a kind's queue besides its subjects' own (its claims').
pub type ClaimFeeds = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a subject kind's controller runs.
pub struct Running {
    /// Reconciles at once.
    pub workers: usize,
    /// How many of them may write progress (normal-urgency work) at once; `None`: all.
    pub progress_workers: Option<usize>,
}

/// Runs a subject kind's controller for all namespaces until `shutdown` resolves, its
/// Events recorded as `reporter`'s instance of [`SubjectKind::CONTROLLER`]: the kind
/// [`SubjectKind::start`]s its claim feeds, the subjects' watch feeds the same queue,
/// and the workers start once the subjects' cache holds every subject.
pub async fn run<K: SubjectKind>(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    settings: K::Settings,
    shutdown: impl Future,
) {
    let running = K::RUNNING;
    let reporter = Reporter {
        controller: K::CONTROLLER.to_owned(),
        instance: reporter.instance,
    };
    let own_writes = Arc::new(OwnWrites::default());
    let (cache, writer) = reflector::store();
    let queue = Arc::new(match running.progress_workers {
        Some(limit) => WorkQueue::with_normal_limit(limit),
        None => WorkQueue::default(),
    });
    let events = Events::new(Recorder::new(client.clone(), reporter), metrics.clone());
    let start = Start {
        client: client.clone(),
        cache: cache.clone(),
        queue: queue.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
    };
    let (kind, claims) = K::start(&start, settings);
    let subjects = Arc::new(Subjects::new(
        kind,
        client.clone(),
        events,
        metrics.clone(),
        own_writes.clone(),
        cache.clone(),
    ));
    let feeds = futures::future::join(
        feed_subjects(Api::all(client), writer, own_writes, queue.clone()),
        claims,
    );
    let workers = Workers {
        reconciler: subjects,
        queue,
        count: running.workers,
        metrics,
    };
    let ready = async move { cache.wait_until_ready().await.is_ok() };
    serve(workers, ready, feeds, shutdown).await;
}
