//! Leader election on a `coordination.k8s.io/v1` Lease, with plain get + update and
//! resourceVersion preconditions (no server-side apply or strategic merge needed, so it
//! works the same on a real cluster and on `konductor server`).
//!
//! One replica holds the lease and renews it every `renew_period`; the others check
//! every `renew_period` — and whenever the Lease changes (they watch it) — and take it
//! over once it is released or `renewTime + leaseDurationSeconds` has passed. A holder
//! that cannot renew within the lease duration steps down before anyone else may take
//! over. On shutdown the holder releases the lease, and a standby takes over at once.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;

use crate::{Error, Result};

/// Who competes for which lease, and how fast.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (pod name or hostname plus a random part).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and standbys check.
    pub renew_period: Duration,
}

/// One replica's view of the lease.
pub struct LeaderElection {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElection {
    /// An election over `config.namespace/config.name`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Takes the lease if it is free or expired, renews it if held. Returns whether this
    /// replica holds it afterwards. Losing a race (409) is "not leader", not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(Error::Kube(e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let valid_for = SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds
                .unwrap_or(self.duration_seconds()),
        ));
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|MicroTime(renewed)| *renewed + valid_for <= now);
        if holder.as_ref() == Some(me) {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(self.duration_seconds());
        } else if holder.is_none() || expired {
            spec.holder_identity = Some(me.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(self.duration_seconds());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(false);
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Gives the lease up (if held) so a standby can take over without waiting.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_ref() != Some(&self.config.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Runs `work` only while this replica leads, until `shutdown` resolves.
    ///
    /// `work` is called each time leadership is gained, with a future that resolves when
    /// it must stop (leadership lost or shutdown); `on_change` hears every change of
    /// leadership. On shutdown the lease is released.
    pub async fn run<W, F>(
        &self,
        mut work: W,
        on_change: impl Fn(bool),
        shutdown: impl Future<Output = ()>,
    ) -> Result<()>
    where
        W: FnMut(tokio::sync::oneshot::Receiver<()>) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::pin!(shutdown);
        // A standby looks again as soon as the Lease changes (released, say), not only
        // at its next tick.
        let mut lease_changes = kube::runtime::watcher(
            self.api.clone(),
            kube::runtime::watcher::Config::default()
                .fields(&format!("metadata.name={}", self.config.name)),
        )
        .default_backoff()
        .boxed();
        let mut told_no_namespace = false;
        let mut running: Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )> = None;
        let mut last_renewal = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(self.config.renew_period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => {}
                Some(_) = lease_changes.next(), if running.is_none() => {}
            }
            let leading = match self.try_acquire_or_renew().await {
                Ok(leading) => {
                    told_no_namespace = false;
                    leading
                }
                Err(Error::Kube(kube::Error::Api(status)))
                    if status.code == 404 && status.message.starts_with("namespaces") =>
                {
                    if !told_no_namespace {
                        tracing::error!(
                            namespace = %self.config.namespace,
                            "leader election: the lease namespace {} does not exist; create it (kubectl create namespace {}) or pass --lease-namespace",
                            self.config.namespace,
                            self.config.namespace,
                        );
                        told_no_namespace = true;
                    }
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, "leader election: lease check failed");
                    // Keep leading only while the last renewal is still valid.
                    running.is_some() && last_renewal.elapsed() < self.config.lease_duration
                }
            };
            if leading {
                last_renewal = tokio::time::Instant::now();
            }
            match (leading, running.is_some()) {
                (true, false) => {
                    tracing::info!(identity = %self.config.identity, "became leader");
                    on_change(true);
                    let (stop, stopped) = tokio::sync::oneshot::channel();
                    running = Some((stop, tokio::spawn(work(stopped))));
                }
                (false, true) => {
                    tracing::warn!(identity = %self.config.identity, "lost leadership; stopping");
                    stop_work(running.take()).await;
                    on_change(false);
                }
                _ => {}
            }
        }
        let was_leading = running.is_some();
        stop_work(running.take()).await;
        if was_leading {
            on_change(false);
            self.release().await?;
            tracing::info!(identity = %self.config.identity, "released the lease");
        }
        Ok(())
    }
}

/// How long stopping work may take before it is aborted: a replica that lost the lease
/// must stop acting well within a lease duration.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Asks running work to stop, and aborts it if it has not after [`STOP_GRACE`].
async fn stop_work(
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
) {
    if let Some((stop, mut handle)) = running {
        let _ = stop.send(());
        match tokio::time::timeout(STOP_GRACE, &mut handle).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "controller task failed"),
            Err(_) => {
                tracing::warn!("controller did not stop in time; aborting it");
                handle.abort();
            }
        }
    }
}
