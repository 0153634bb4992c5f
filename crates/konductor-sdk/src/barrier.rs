//! Barriers: N processes arrive; everyone waiting is released once enough have arrived.
//!
//! The primitive in a page. It is built on two guarantees of the API server:
//! **create-if-absent** (an Arrival's name is derived from its barrier and holder, so
//! arriving twice is the same create, and AlreadyExists means "already arrived") and
//! **watch from a resourceVersion** ([`Barriers::wait`] watches with kube-runtime's
//! watcher, which lists and then watches from the listed version, so an opening cannot
//! slip in between the read and the watch).
//!
//! A Job's ServiceAccount needs `get`, `list`, `watch` on barriers and `create`, `get`
//! on arrivals (and `delete`, for a holder that reported failure to arrive after all).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use konductor_api::{
    Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, Outcome, arrival_name,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

use crate::claims::{AskFailed, Asked, ask, withdraw};
use crate::connect::Connection;
use crate::error::{Error, Request, Result};
use crate::subjects::Subjects;
use crate::waiting::{Waited, Waiting};

/// How a wait ended, when it ended because the barrier settled.
#[derive(Debug, Clone)]
pub enum WaitOutcome {
    /// The barrier opened: proceed.
    Open(Barrier),
    /// The barrier's deadline passed before enough arrivals.
    TimedOut(Barrier),
    /// The barrier can never open (failures, or an invalid spec).
    Failed(Barrier),
}

/// What a barrier wait reports while it waits.
pub type Progress<'a> = crate::waiting::Progress<'a, Barrier>;

/// The result of an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrived {
    /// This call recorded the arrival.
    Recorded,
    /// The holder had reported failure; this call recorded its success in its place
    /// (a retried Job that succeeds after failing).
    RecordedAfterFailure,
    /// The holder had already reported this outcome, or had already arrived (a
    /// success stands: a failure reported after it is not recorded). Nothing changed;
    /// the outcome on record is given.
    AlreadyRecorded(Outcome),
}

/// Barriers in one namespace.
#[derive(Clone)]
pub struct Barriers {
    barriers: Subjects<Barrier>,
    arrivals: Api<Arrival>,
    namespaces: Api<Namespace>,
    client: kube::Client,
    namespace: String,
}

impl Barriers {
    /// Barriers in the connection's namespace.
    ///
    /// ```no_run
    /// # async fn example() -> konductor_sdk::Result<()> {
    /// use konductor_sdk::{Barriers, ConnectOptions, connect};
    /// let barriers = Barriers::new(&connect(&ConnectOptions::default()).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(connection: &Connection) -> Self {
        Self {
            barriers: Subjects::new(connection, "barrier", "barriers"),
            arrivals: Api::namespaced(connection.client.clone(), &connection.namespace),
            namespaces: Api::all(connection.client.clone()),
            client: connection.client.clone(),
            namespace: connection.namespace.clone(),
        }
    }

    /// The namespace these barriers live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn request<'a>(
        &'a self,
        barrier: &'a str,
        verb: &'static str,
        resource: &'static str,
    ) -> Request<'a> {
        self.barriers.request(barrier, verb, resource)
    }

    /// Creates a barrier. Fails with [`Error::AlreadyExists`] if the name is taken and
    /// [`Error::Invalid`] (naming the field) if the server refuses the spec.
    ///
    /// ```no_run
    /// # async fn example(barriers: konductor_sdk::Barriers) -> konductor_sdk::Result<()> {
    /// use konductor_api::BarrierSpec;
    /// barriers.create("extract-complete", BarrierSpec::new(5).with_timeout("1h")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create(&self, name: &str, spec: BarrierSpec) -> Result<Barrier> {
        self.barriers.create(&Barrier::new(name, spec)).await
    }

    /// The barrier with its current status; [`Error::NotFound`] if absent.
    pub async fn get(&self, name: &str) -> Result<Barrier> {
        self.barriers.get(name).await
    }

    /// Every barrier in the namespace, by name.
    pub async fn list(&self) -> Result<Vec<Barrier>> {
        self.barriers.list(false).await
    }

    /// Every barrier in every namespace, by namespace and name.
    pub async fn list_all_namespaces(&self) -> Result<Vec<Barrier>> {
        self.barriers.list(true).await
    }

    /// Deletes the barriers (here, or with `all_namespaces` everywhere) that finished —
    /// became Open, Timeout or Failed — at least `age` ago, and returns them; with
    /// `dry_run`, only returns them. Each is deleted only as it was listed (its uid), so
    /// a barrier created again under the same name meanwhile stays.
    pub async fn prune(
        &self,
        age: Duration,
        all_namespaces: bool,
        dry_run: bool,
    ) -> Result<Vec<Barrier>> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let cutoff = k8s_openapi::jiff::SignedDuration::try_from(age)
            .ok()
            .and_then(|age| now.checked_sub(age).ok())
            .unwrap_or(k8s_openapi::jiff::Timestamp::MIN);
        let listed = if all_namespaces {
            self.list_all_namespaces().await?
        } else {
            self.list().await?
        };
        let finished: Vec<Barrier> = listed
            .into_iter()
            .filter(|b| finished_at(b).is_some_and(|at| at <= cutoff))
            .collect();
        if dry_run {
            return Ok(finished);
        }
        let mut pruned = Vec::with_capacity(finished.len());
        for barrier in finished {
            let namespace = barrier.namespace().unwrap_or_default();
            let api: Api<Barrier> = Api::namespaced(self.client.clone(), &namespace);
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: barrier.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(&barrier.name_any(), &params).await {
                Ok(_) => pruned.push(barrier),
                // Gone or replaced meanwhile: not ours to delete.
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(e) => {
                    return Err(self
                        .request(&barrier.name_any(), "delete", "barriers")
                        .error(e));
                }
            }
        }
        Ok(pruned)
    }

    /// Deletes the barrier; the API server's garbage collector deletes its arrivals.
    /// [`Error::NotFound`] if absent.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.barriers.delete(name).await
    }

    /// Records that `holder` arrived at `barrier` (or, with [`Outcome::Failed`], that it
    /// failed and will never arrive; `message` says why).
    ///
    /// Idempotent per holder: reporting the same outcome again returns
    /// [`Arrived::AlreadyRecorded`] and changes nothing. A holder that reported failure
    /// and then arrives (a retried Job) has its failure report replaced by the arrival
    /// ([`Arrived::RecordedAfterFailure`]); a failure reported after arriving is not
    /// recorded (the success stands: [`Arrived::AlreadyRecorded`] with
    /// [`Outcome::Succeeded`]). A missing barrier is [`Error::NotFound`]; call
    /// [`Barriers::wait_until_exists`] first to wait for it instead. The Arrival is owned
    /// by the barrier, so deleting the barrier deletes it.
    ///
    /// Reads only the barrier's metadata (its uid), however many holders it lists.
    ///
    /// ```no_run
    /// # async fn example(barriers: konductor_sdk::Barriers) -> konductor_sdk::Result<()> {
    /// use konductor_api::Outcome;
    /// barriers.arrive("extract-complete", "extract-job-3", Outcome::Succeeded, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn arrive(
        &self,
        barrier: &str,
        holder: &str,
        outcome: Outcome,
        message: Option<String>,
    ) -> Result<Arrived> {
        let owner = self
            .barriers
            .api
            .get_metadata(barrier)
            .await
            .map_err(|e| self.request(barrier, "get", "barriers").error(e))?;
        self.record(
            barrier,
            &owner.uid().unwrap_or_default(),
            holder,
            outcome,
            message,
        )
        .await
    }

    /// [`Barriers::arrive`] at a barrier already read (no second read for its uid).
    pub async fn arrive_at(
        &self,
        barrier: &Barrier,
        holder: &str,
        outcome: Outcome,
        message: Option<String>,
    ) -> Result<Arrived> {
        let uid = barrier.uid().unwrap_or_default();
        self.record(&barrier.name_any(), &uid, holder, outcome, message)
            .await
    }

    /// Creates the Arrival of `holder` at barrier `name` (whose uid is `uid`).
    async fn record(
        &self,
        barrier: &str,
        uid: &str,
        holder: &str,
        outcome: Outcome,
        message: Option<String>,
    ) -> Result<Arrived> {
        let name = arrival_name(barrier, holder);
        let spec = ArrivalSpec {
            barrier: barrier.to_owned(),
            holder: holder.to_owned(),
            outcome,
            message,
        };
        let arrival = Arrival::at_barrier(spec, uid);
        let failed = |f: AskFailed| self.request(barrier, f.verb, "arrivals").error(f.error);
        let mut replaced = false;
        for _ in 0..3 {
            let existing = match ask(&self.arrivals, &arrival).await.map_err(failed)? {
                Asked::Created(_) if replaced => return Ok(Arrived::RecordedAfterFailure),
                Asked::Created(_) => return Ok(Arrived::Recorded),
                Asked::Found(existing) => existing,
                Asked::Vanished => continue,
            };
            // After a replacement, whatever someone recorded meanwhile stands.
            if replaced || existing.spec.outcome == outcome || outcome == Outcome::Failed {
                return Ok(Arrived::AlreadyRecorded(existing.spec.outcome));
            }
            // A success after a failure report: the failure gives way. Deleted (only if
            // it is still the one read) and created anew, so the arrival's time is now.
            withdraw(
                &self.arrivals,
                &name,
                existing.uid().as_deref(),
                Duration::ZERO,
            )
            .await
            .map_err(|message| Error::Api {
                kind: "barrier",
                namespace: self.namespace.clone(),
                name: barrier.to_owned(),
                message,
            })?;
            replaced = true;
        }
        Err(Error::Api {
            kind: "barrier",
            namespace: self.namespace.clone(),
            name: barrier.to_owned(),
            message: format!("could not create arrival {name}: it keeps being deleted"),
        })
    }

    /// Waits until `name` settles — Open, Timeout or Failed — and returns how.
    ///
    /// Watches; never polls. Returns at once if the barrier is already settled — even
    /// with a zero `timeout`: the barrier's current state is read before the client
    /// deadline applies. If the barrier does not exist yet (or its namespace does not,
    /// or it is deleted while waited on), `progress` hears [`Progress::Missing`] with
    /// the reason and the wait goes on until it exists. `progress` also hears every
    /// change while it waits. If the API server cannot be reached at first, fails at
    /// once. A working watch that breaks for a transient reason (connection lost, 429,
    /// 5xx) is re-established with backoff and `progress` hears
    /// [`Progress::Reconnecting`]; a permanent one (401, 403, the namespace or the
    /// resource gone) ends the wait with that error. With `timeout`, gives up with
    /// [`Error::WaitTimeout`]. Cancel by dropping the future.
    ///
    /// ```no_run
    /// # async fn example(barriers: konductor_sdk::Barriers) -> konductor_sdk::Result<()> {
    /// use konductor_sdk::WaitOutcome;
    /// use std::time::Duration;
    /// match barriers.wait("extract-complete", Some(Duration::from_secs(3600)), |_| {}).await? {
    ///     WaitOutcome::Open(_) => println!("go"),
    ///     WaitOutcome::TimedOut(_) | WaitOutcome::Failed(_) => println!("give up"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait(
        &self,
        name: &str,
        timeout: Option<Duration>,
        progress: impl FnMut(Progress<'_>),
    ) -> Result<WaitOutcome> {
        let started = Instant::now();
        let waited = self
            .waiting(name)
            .until(timeout, progress, |b| b.phase().is_finished())
            .await?;
        match waited {
            Waited::Finished(barrier) => Ok(match barrier.phase() {
                BarrierPhase::Open => WaitOutcome::Open(barrier),
                BarrierPhase::Timeout => WaitOutcome::TimedOut(barrier),
                _ => WaitOutcome::Failed(barrier),
            }),
            Waited::TimedOut(_) => Err(Error::WaitTimeout {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                waited: started.elapsed(),
            }),
        }
    }

    fn waiting<'a>(&'a self, name: &'a str) -> Waiting<'a, Barrier> {
        Waiting {
            api: self.barriers.api.clone(),
            namespaces: self.namespaces.clone(),
            request: self.request(name, "watch", "barriers"),
        }
    }

    /// Waits until the barrier exists (watching; returns at once if it does, even with
    /// a zero `timeout`).
    pub async fn wait_until_exists(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        let started = Instant::now();
        match self.waiting(name).until(timeout, |_| {}, |_| true).await? {
            Waited::Finished(barrier) => Ok(barrier),
            Waited::TimedOut(_) => Err(Error::NotCreated {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                waited: started.elapsed(),
            }),
        }
    }

    /// A pipeline stage, as in the seed's ETL example: waits for `after` to open, runs
    /// `work`, then arrives at `then` as `holder` — as a failure if `work` fails, so the
    /// next stage learns at once instead of timing out. Returns `work`'s result, or
    /// why the stage could not start.
    ///
    /// ```no_run
    /// # async fn example(barriers: konductor_sdk::Barriers) -> konductor_sdk::Result<()> {
    /// let rows = barriers
    ///     .stage("extract-complete", "transform-complete", "transform-1", None, || async {
    ///         Ok::<_, String>(42) // transform the data
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stage<T, E, F, Fut>(
        &self,
        after: &str,
        then: &str,
        holder: &str,
        timeout: Option<Duration>,
        work: F,
    ) -> Result<std::result::Result<T, E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
        E: std::fmt::Display,
    {
        match self.wait(after, timeout, |_| {}).await? {
            WaitOutcome::Open(_) => {}
            WaitOutcome::TimedOut(_) | WaitOutcome::Failed(_) => {
                let why = format!("barrier {after} did not open");
                self.arrive(then, holder, Outcome::Failed, Some(why.clone()))
                    .await?;
                return Err(Error::Api {
                    kind: "barrier",
                    namespace: self.namespace.clone(),
                    name: after.to_owned(),
                    message: why,
                });
            }
        }
        let result = work().await;
        match &result {
            Ok(_) => self.arrive(then, holder, Outcome::Succeeded, None).await?,
            Err(e) => {
                self.arrive(then, holder, Outcome::Failed, Some(e.to_string()))
                    .await?
            }
        };
        Ok(result)
    }
}

/// When a barrier finished (became Open, Timeout or Failed): its `status.finishedAt`,
/// else (a status written before that field existed) its `openedAt` or deadline, else
/// its creation; `None` while it waits.
pub fn finished_at(barrier: &Barrier) -> Option<k8s_openapi::jiff::Timestamp> {
    let status = barrier.status.as_ref()?;
    if status.phase == konductor_api::BarrierPhase::Waiting {
        return None;
    }
    status
        .lifecycle
        .finished_at
        .as_ref()
        .or(status.opened_at.as_ref())
        .map(|t| t.0)
        .or_else(|| {
            (status.phase == konductor_api::BarrierPhase::Timeout)
                .then(|| status.lifecycle.deadline.as_ref().map(|t| t.0))
                .flatten()
        })
        .or_else(|| barrier.creation_timestamp().map(|t| t.0))
}
