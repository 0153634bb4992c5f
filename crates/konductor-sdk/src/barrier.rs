//! Barriers: N processes arrive; everyone waiting is released once enough have arrived.
//!
//! The primitive in a page. It is built on two guarantees of the API server:
//! **create-if-absent** (an Arrival's name is derived from its barrier and holder, so
//! arriving twice is the same create, and AlreadyExists means "already arrived") and
//! **watch from a resourceVersion** ([`Barriers::wait`] watches with kube-runtime's
//! watcher, which lists and then watches from the listed version, so an opening cannot
//! slip in between the read and the watch).
//!
//! A Job's ServiceAccount needs `get`, `list`, `watch` on barriers and `create` on
//! arrivals.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use konductor_api::{
    Arrival, ArrivalSpec, BARRIER_LABEL, Barrier, BarrierPhase, BarrierSpec, Outcome, arrival_name,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use crate::connect::Connection;
use crate::error::{Error, Request, Result};

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

/// What a wait reports while it waits.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The barrier does not exist (yet), or was just deleted; the wait continues until
    /// it exists again.
    Missing,
    /// The barrier exists and is still waiting.
    Waiting(&'a Barrier),
    /// The watch broke after it had worked (e.g. the API server restarted); it is being
    /// re-established with backoff. The text says why.
    Reconnecting(String),
}

/// The result of an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrived {
    /// This call recorded the arrival.
    Recorded,
    /// The holder had already arrived; nothing changed (its first outcome stands).
    AlreadyRecorded(Outcome),
}

/// Barriers in one namespace.
#[derive(Clone)]
pub struct Barriers {
    barriers: Api<Barrier>,
    all_barriers: Api<Barrier>,
    arrivals: Api<Arrival>,
    namespace: String,
    url: String,
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
            barriers: Api::namespaced(connection.client.clone(), &connection.namespace),
            all_barriers: Api::all(connection.client.clone()),
            arrivals: Api::namespaced(connection.client.clone(), &connection.namespace),
            namespace: connection.namespace.clone(),
            url: connection.url.clone(),
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
        Request {
            namespace: &self.namespace,
            barrier,
            verb,
            resource,
            url: &self.url,
        }
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
        self.barriers
            .create(&PostParams::default(), &Barrier::new(name, spec))
            .await
            .map_err(|e| self.request(name, "create", "barriers").error(e))
    }

    /// The barrier with its current status; [`Error::NotFound`] if absent.
    pub async fn get(&self, name: &str) -> Result<Barrier> {
        self.barriers
            .get(name)
            .await
            .map_err(|e| self.request(name, "get", "barriers").error(e))
    }

    /// Every barrier in the namespace, by name.
    pub async fn list(&self) -> Result<Vec<Barrier>> {
        let mut items = self
            .barriers
            .list(&ListParams::default())
            .await
            .map_err(|e| self.request("*", "list", "barriers").error(e))?
            .items;
        items.sort_by_key(ResourceExt::name_any);
        Ok(items)
    }

    /// Every barrier in every namespace, by namespace and name.
    pub async fn list_all_namespaces(&self) -> Result<Vec<Barrier>> {
        let mut items = self
            .all_barriers
            .list(&ListParams::default())
            .await
            .map_err(|e| self.request("*", "list", "barriers").error(e))?
            .items;
        items.sort_by_key(|b| (b.namespace(), b.name_any()));
        Ok(items)
    }

    /// Deletes the barrier; the API server's garbage collector deletes its arrivals.
    /// [`Error::NotFound`] if absent.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.barriers
            .delete(name, &DeleteParams::background())
            .await
            .map(|_| ())
            .map_err(|e| self.request(name, "delete", "barriers").error(e))
    }

    /// Records that `holder` arrived at `barrier` (or, with [`Outcome::Failed`], that it
    /// failed and will never arrive; `message` says why).
    ///
    /// Idempotent per holder: arriving again returns [`Arrived::AlreadyRecorded`] and
    /// changes nothing. A missing barrier is [`Error::NotFound`]; call
    /// [`Barriers::wait_until_exists`] first to wait for it instead. The Arrival is owned
    /// by the barrier, so deleting the barrier deletes it.
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
        // Only the barrier's uid is needed (for the ownerReference): ask for its metadata
        // alone, not a status that lists every holder so far.
        let owner = self
            .barriers
            .get_metadata(barrier)
            .await
            .map_err(|e| self.request(barrier, "get", "barriers").error(e))?;
        let name = arrival_name(barrier, holder);
        let spec = ArrivalSpec {
            barrier: barrier.to_owned(),
            holder: holder.to_owned(),
            outcome,
            message,
        };
        let mut arrival = Arrival::new(&name, spec);
        arrival.metadata.labels = Some(BTreeMap::from([(
            BARRIER_LABEL.to_owned(),
            barrier.to_owned(),
        )]));
        arrival.metadata.owner_references = Some(vec![OwnerReference {
            api_version: Barrier::api_version(&()).into_owned(),
            kind: Barrier::kind(&()).into_owned(),
            name: barrier.to_owned(),
            uid: owner.uid().unwrap_or_default(),
            ..OwnerReference::default()
        }]);
        match self.arrivals.create(&PostParams::default(), &arrival).await {
            Ok(_) => Ok(Arrived::Recorded),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self
                    .arrivals
                    .get(&name)
                    .await
                    .map(|a| a.spec.outcome)
                    .unwrap_or(outcome);
                Ok(Arrived::AlreadyRecorded(existing))
            }
            Err(e) => Err(self.request(barrier, "create", "arrivals").error(e)),
        }
    }

    /// Waits until `name` settles — Open, Timeout or Failed — and returns how.
    ///
    /// Watches; never polls. Returns at once if the barrier is already settled. If the
    /// barrier does not exist yet, `progress` hears [`Progress::Missing`] and the wait
    /// goes on until it is created (and settles). `progress` also hears every change
    /// while it waits. If the API server cannot be reached at first, fails at once; if
    /// a working watch breaks, `progress` hears [`Progress::Reconnecting`] and the watch
    /// resumes. With `timeout`, gives up with [`Error::WaitTimeout`]. Cancel by dropping
    /// the future.
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
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<WaitOutcome> {
        let started = Instant::now();
        let watch = async {
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut events = watcher(self.barriers.clone(), config)
                .default_backoff()
                .boxed();
            let mut present = false;
            let mut told_missing = false;
            let mut connected = false;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    // Failing to connect at all is an error (a wrong server, no
                    // permission); losing a working watch is retried, bounded by `timeout`.
                    Err(error) if connected => {
                        progress(Progress::Reconnecting(
                            self.watch_error(name, error).to_string(),
                        ));
                        continue;
                    }
                    Err(error) => return Err(self.watch_error(name, error)),
                };
                connected = true;
                let barrier = match event {
                    watcher::Event::Apply(b) | watcher::Event::InitApply(b) => b,
                    watcher::Event::Delete(_) => {
                        // Deleted while we wait (a reset): wait for it to come back.
                        present = false;
                        progress(Progress::Missing);
                        continue;
                    }
                    watcher::Event::Init => {
                        present = false;
                        continue;
                    }
                    watcher::Event::InitDone => {
                        if !present && !told_missing {
                            progress(Progress::Missing);
                            told_missing = true;
                        }
                        continue;
                    }
                };
                present = true;
                match barrier.phase() {
                    BarrierPhase::Open => return Ok(WaitOutcome::Open(barrier)),
                    BarrierPhase::Timeout => return Ok(WaitOutcome::TimedOut(barrier)),
                    BarrierPhase::Failed => return Ok(WaitOutcome::Failed(barrier)),
                    BarrierPhase::Waiting => progress(Progress::Waiting(&barrier)),
                }
            }
            Err(Error::Api {
                namespace: self.namespace.clone(),
                barrier: name.to_owned(),
                message: "the watch ended unexpectedly".into(),
            })
        };
        match timeout {
            None => watch.await,
            Some(limit) => match tokio::time::timeout(limit, watch).await {
                Ok(result) => result,
                Err(_) => Err(Error::WaitTimeout {
                    namespace: self.namespace.clone(),
                    barrier: name.to_owned(),
                    waited: started.elapsed(),
                }),
            },
        }
    }

    /// Waits until the barrier exists (watching; returns at once if it does).
    pub async fn wait_until_exists(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        let started = Instant::now();
        let watch = async {
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut objects = watcher(self.barriers.clone(), config)
                .default_backoff()
                .applied_objects()
                .boxed();
            match objects
                .try_next()
                .await
                .map_err(|e| self.watch_error(name, e))?
            {
                Some(barrier) => Ok(barrier),
                None => Err(Error::Api {
                    namespace: self.namespace.clone(),
                    barrier: name.to_owned(),
                    message: "the watch ended unexpectedly".into(),
                }),
            }
        };
        match timeout {
            None => watch.await,
            Some(limit) => tokio::time::timeout(limit, watch)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::WaitTimeout {
                        namespace: self.namespace.clone(),
                        barrier: name.to_owned(),
                        waited: started.elapsed(),
                    })
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
                    namespace: self.namespace.clone(),
                    barrier: after.to_owned(),
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

    fn watch_error(&self, name: &str, error: watcher::Error) -> Error {
        let request = self.request(name, "watch", "barriers");
        match error {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => request.error(e),
            watcher::Error::WatchError(status) => request.error(kube::Error::Api(status)),
            other => Error::Api {
                namespace: self.namespace.clone(),
                barrier: name.to_owned(),
                message: other.to_string(),
            },
        }
    }
}
