//! Locks from Rust: hold a Semaphore permit, a Mutex, or one side of an RWMutex, kept
//! alive in the background and released when the [`Guard`] goes.
//!
//! Acquiring creates the holder's Permit (named by `permit_name`, so asking twice is
//! the same create; owned by the lock, so deleting the lock releases it) and waits on
//! its watch until the controller grants it. The guard then bumps the Permit's
//! `spec.renewTime` every third of the lock's ttl, and watches it: if the grant expires
//! or the Permit is deleted, [`Guard::lost`] resolves — stop using what the lock
//! protects. Dropping the guard (or [`Guard::release`]) deletes the Permit.
//!
//! ```no_run
//! # async fn example() -> konductor_sdk::Result<()> {
//! use konductor_sdk::locks::{Claim, Locks, Wait};
//! use konductor_sdk::{ConnectOptions, connect};
//!
//! let locks = Locks::new(&connect(&ConnectOptions::default()).await?);
//! let guard = locks.acquire(&Claim::mutex("db-migrate", "job-7"), Wait::Forever).await?;
//! println!("migrating with fencing token {}", guard.token());
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use konductor_api::duration::parse_duration;
use konductor_api::locks::{
    LockKind, Permit, PermitMode, PermitPhase, PermitSpec, lock_label, permit_name,
};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::connect::Connection;
use crate::error::{Error, Result};

/// What to ask for: which lock, as whom, how.
#[derive(Clone, Debug)]
pub struct Claim {
    /// Semaphore, Mutex or RWMutex.
    pub kind: LockKind,
    /// The lock's name.
    pub lock: String,
    /// Who asks.
    pub holder: String,
    /// Exclusive, or Shared (an RWMutex read lock).
    pub mode: PermitMode,
    /// Higher is granted first.
    pub priority: i32,
}

impl Claim {
    fn new(kind: LockKind, lock: &str, holder: &str, mode: PermitMode) -> Self {
        Self {
            kind,
            lock: lock.to_owned(),
            holder: holder.to_owned(),
            mode,
            priority: 0,
        }
    }

    /// One of a Semaphore's permits.
    pub fn semaphore(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::Semaphore, lock, holder, PermitMode::Exclusive)
    }

    /// A Mutex.
    pub fn mutex(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::Mutex, lock, holder, PermitMode::Exclusive)
    }

    /// An RWMutex for reading (beside other readers).
    pub fn read(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::RWMutex, lock, holder, PermitMode::Shared)
    }

    /// An RWMutex for writing (alone).
    pub fn write(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::RWMutex, lock, holder, PermitMode::Exclusive)
    }

    /// Sets the priority (higher is granted first).
    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    fn permit_name(&self) -> String {
        permit_name(self.kind, &self.lock, &self.holder)
    }
}

/// How long [`Locks::acquire`] waits for the grant.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Until it is granted.
    Forever,
    /// Not at all: if the claim is queued, withdraw it and fail with [`Error::LockBusy`].
    No,
    /// At most this long, then withdraw and fail with [`Error::LockTimeout`].
    AtMost(Duration),
}

/// The locks of one namespace.
#[derive(Clone)]
pub struct Locks {
    client: Client,
    namespace: String,
    permits: Api<Permit>,
}

impl Locks {
    /// Locks in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            client: connection.client.clone(),
            namespace: connection.namespace.clone(),
            permits: Api::namespaced(connection.client.clone(), &connection.namespace),
        }
    }

    fn error(&self, claim: &Claim, error: kube::Error) -> Error {
        let message = match &error {
            kube::Error::Api(status) if status.code == 404 => "not found".to_owned(),
            kube::Error::Api(status) => status.message.clone(),
            other => format!("cannot reach the API server: {other}"),
        };
        Error::Lock {
            kind: claim.kind.word(),
            namespace: self.namespace.clone(),
            lock: claim.lock.clone(),
            message,
        }
    }

    /// Asks for the lock and waits (as `wait` says) until it is granted. Asking again
    /// for a claim already granted returns a guard on the same grant.
    pub async fn acquire(&self, claim: &Claim, wait: Wait) -> Result<Guard> {
        let locks: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &claim.kind.api_resource(),
        );
        let lock = locks
            .get(&claim.lock)
            .await
            .map_err(|e| self.error(claim, e))?;
        let ttl = lock.data["spec"]["ttl"]
            .as_str()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(300));
        let name = claim.permit_name();
        let mut permit = Permit::new(
            &name,
            PermitSpec::new(claim.kind, &claim.lock, &claim.holder)
                .with_mode(claim.mode)
                .with_priority(claim.priority),
        );
        permit.spec.renew_time = Some(MicroTime(Timestamp::now()));
        permit.metadata.labels = Some(
            [(lock_label(claim.kind), claim.lock.clone())]
                .into_iter()
                .collect(),
        );
        permit.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "konductor.io/v1".to_owned(),
            kind: claim.kind.api_resource().kind,
            name: claim.lock.clone(),
            uid: lock.uid().unwrap_or_default(),
            ..OwnerReference::default()
        }]);
        match self.permits.create(&PostParams::default(), &permit).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Asked before: an expired claim is withdrawn and asked anew.
                let existing = self
                    .permits
                    .get(&name)
                    .await
                    .map_err(|e| self.error(claim, e))?;
                if existing
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == PermitPhase::Expired)
                {
                    self.withdraw(&name).await;
                    return Box::pin(self.acquire(claim, wait)).await;
                }
            }
            Err(error) => return Err(self.error(claim, error)),
        }
        let decided = |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.phase != PermitPhase::Pending || s.position.is_some())
        };
        let granted = |p: Option<&Permit>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.phase != PermitPhase::Pending)
        };
        let outcome = match wait {
            Wait::Forever => Some(until(&self.permits, &name, granted).await),
            Wait::No => {
                let first = until(&self.permits, &name, decided).await;
                if first.as_ref().is_ok_and(|p| !granted(p.as_ref())) {
                    self.withdraw(&name).await;
                    return Err(Error::LockBusy {
                        kind: claim.kind.word(),
                        namespace: self.namespace.clone(),
                        lock: claim.lock.clone(),
                    });
                }
                Some(first)
            }
            Wait::AtMost(limit) => {
                tokio::time::timeout(limit, until(&self.permits, &name, granted))
                    .await
                    .ok()
            }
        };
        let Some(outcome) = outcome else {
            self.withdraw(&name).await;
            return Err(Error::LockTimeout {
                kind: claim.kind.word(),
                namespace: self.namespace.clone(),
                lock: claim.lock.clone(),
            });
        };
        let permit = outcome
            .map_err(|e| Error::Lock {
                kind: claim.kind.word(),
                namespace: self.namespace.clone(),
                lock: claim.lock.clone(),
                message: format!("watching the permit: {e}"),
            })?
            .ok_or_else(|| Error::Lock {
                kind: claim.kind.word(),
                namespace: self.namespace.clone(),
                lock: claim.lock.clone(),
                message: "the permit was deleted while waiting".to_owned(),
            })?;
        let status = permit.status.clone().unwrap_or_default();
        if status.phase != PermitPhase::Granted {
            self.withdraw(&name).await;
            return Err(Error::LockLost {
                kind: claim.kind.word(),
                namespace: self.namespace.clone(),
                lock: claim.lock.clone(),
            });
        }
        Ok(Guard::start(
            self.permits.clone(),
            self.namespace.clone(),
            name,
            permit.uid().unwrap_or_default(),
            status.fencing_token.unwrap_or(0),
            ttl,
        ))
    }

    /// Releases `holder`'s claim on a lock (deletes its Permit, granted or not); says
    /// whether there was one.
    pub async fn release(&self, claim: &Claim) -> Result<bool> {
        match self
            .permits
            .delete(&claim.permit_name(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(error) => Err(self.error(claim, error)),
        }
    }

    /// Deletes a permit, ignoring one already gone.
    async fn withdraw(&self, name: &str) {
        if let Err(error) = self.permits.delete(name, &DeleteParams::default()).await {
            tracing::debug!(%error, permit = name, "withdrawing the permit");
        }
    }
}

/// Watches permit `name` until `condition` holds (the permit as it then is) or it is
/// deleted (`None`). Rides out a server restart or a lost connection: the watch
/// reconnects with backoff, as a holder waiting for a lock should.
async fn until(
    permits: &Api<Permit>,
    name: &str,
    condition: impl Fn(Option<&Permit>) -> bool,
) -> std::result::Result<Option<Permit>, kube::Error> {
    let mut changes = watcher(
        permits.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .boxed();
    let mut listed: Option<Permit> = None;
    while let Some(change) = changes.next().await {
        match change {
            Ok(watcher::Event::Apply(permit)) => {
                if condition(Some(&permit)) {
                    return Ok(Some(permit));
                }
            }
            Ok(watcher::Event::Delete(_)) => return Ok(None),
            Ok(watcher::Event::Init) => listed = None,
            Ok(watcher::Event::InitApply(permit)) => listed = Some(permit),
            Ok(watcher::Event::InitDone) => match listed.take() {
                Some(permit) if condition(Some(&permit)) => return Ok(Some(permit)),
                Some(_) => {}
                None => return Ok(None),
            },
            // Refused outright (credentials, permission): waiting cannot help.
            Err(
                watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status)),
            ) if matches!(status.code, 401 | 403) => {
                return Err(kube::Error::Api(status));
            }
            Err(error) => {
                tracing::debug!(%error, permit = name, "watching the permit; reconnecting")
            }
        }
    }
    Ok(None)
}

/// A granted lock: renewed in the background while it lives, released when dropped.
pub struct Guard {
    permits: Api<Permit>,
    namespace: String,
    name: String,
    uid: String,
    token: i64,
    lost: watch::Receiver<bool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl Guard {
    fn start(
        permits: Api<Permit>,
        namespace: String,
        name: String,
        uid: String,
        token: i64,
        ttl: Duration,
    ) -> Self {
        let (lost_sender, lost) = watch::channel(false);
        let keeper = tokio::spawn(keep(
            permits.clone(),
            name.clone(),
            uid.clone(),
            ttl,
            Arc::new(lost_sender),
        ));
        Self {
            permits,
            namespace,
            name,
            uid,
            token,
            lost,
            keeper: Some(keeper),
        }
    }

    /// The grant's fencing token: pass it to what the lock protects.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The Permit's name.
    pub fn permit(&self) -> &str {
        &self.name
    }

    /// Whether the grant is known to be lost (expired, or the Permit deleted).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the grant is lost: stop using what the lock protects.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and watching, but keeps the grant: the Permit stays until it is
    /// deleted (`koncli mutex unlock`) or expires after the lock's ttl. For holders that
    /// outlive this process, such as a script between `lock` and `unlock`.
    pub fn detach(mut self) -> i64 {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        self.token
    }

    /// Releases the lock now (deletes the Permit) and says whether that worked.
    pub async fn release(mut self) -> Result<()> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        let result = delete_permit(&self.permits, &self.name, &self.uid).await;
        result.map_err(|message| Error::Lock {
            kind: "permit",
            namespace: self.namespace.clone(),
            lock: self.name.clone(),
            message: format!("releasing: {message}"),
        })
    }
}

impl Drop for Guard {
    /// Released when dropped (in the background, if a runtime is still running).
    fn drop(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        keeper.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (permits, name, uid) = (self.permits.clone(), self.name.clone(), self.uid.clone());
            runtime.spawn(async move {
                let _ = delete_permit(&permits, &name, &uid).await;
            });
        }
    }
}

/// Deletes this grant's Permit (only this one: a re-created Permit has another uid).
async fn delete_permit(
    permits: &Api<Permit>,
    name: &str,
    uid: &str,
) -> std::result::Result<(), String> {
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match permits.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Renews the grant every third of the ttl and watches for its loss.
async fn keep(
    permits: Api<Permit>,
    name: String,
    uid: String,
    ttl: Duration,
    lost: Arc<watch::Sender<bool>>,
) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut changes = watcher(
        permits.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .boxed();
    // Whether the permit was in the listing a (re)connect is going through: one that
    // vanished while the watch was down gets no Delete event, only a missing listing.
    let mut listed = true;
    loop {
        tokio::select! {
            _ = renewals.tick() => {
                let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
                if let Err(error) = permits.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::warn!(%error, permit = %name, "renewing the permit");
                }
            }
            change = changes.next() => {
                let gone = match change {
                    None => return,
                    Some(Ok(watcher::Event::Init)) => {
                        listed = false;
                        false
                    }
                    Some(Ok(watcher::Event::InitDone)) => !listed,
                    Some(Ok(watcher::Event::Delete(permit))) => permit.uid().as_deref() == Some(uid.as_str()),
                    Some(Ok(watcher::Event::Apply(permit) | watcher::Event::InitApply(permit))) => {
                        listed = true;
                        permit.uid().as_deref() != Some(uid.as_str())
                            || permit.status.as_ref().is_some_and(|s| s.phase == PermitPhase::Expired)
                    }
                    Some(Err(_)) => false,
                };
                if gone {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}
