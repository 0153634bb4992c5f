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

use std::collections::HashMap;
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
    /// What acquiring needs of each lock asked for before (its uid, for the Permit's
    /// owner reference, and its ttl), so asking again costs no read. Should a lock be
    /// deleted and created again meanwhile, the controller corrects the owner.
    known: Arc<std::sync::Mutex<HashMap<LockId, KnownLock>>>,
    /// The shared watch of each lock followed in this process lately.
    watches: Arc<std::sync::Mutex<HashMap<LockId, Arc<LockWatch>>>>,
}

/// How long a lock's shared watch stays open after its last follower goes, so that a
/// process taking the same lock again and again does not set up a watch every time.
const WATCH_LINGER: Duration = Duration::from_secs(30);

/// A lock of this namespace: its kind and name.
type LockId = (LockKind, String);

/// What acquiring needs of a lock.
#[derive(Clone)]
struct KnownLock {
    uid: String,
    ttl: Duration,
}

impl Locks {
    /// Locks in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            client: connection.client.clone(),
            namespace: connection.namespace.clone(),
            permits: Api::namespaced(connection.client.clone(), &connection.namespace),
            known: Arc::default(),
            watches: Arc::default(),
        }
    }

    /// The shared watch of the claim's lock, started if nobody here follows it yet.
    fn watch_of(&self, claim: &Claim) -> Arc<LockWatch> {
        let mut watches = self
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (claim.kind, claim.lock.clone());
        if let Some(watch) = watches.get(&key) {
            return watch.clone();
        }
        let selector = format!("{}={}", lock_label(claim.kind), claim.lock);
        let watch = Arc::new(LockWatch::start(self.permits.clone(), selector));
        watches.insert(key.clone(), watch.clone());
        // Closed once nobody has followed it for WATCH_LINGER (when only this map holds it).
        let (watches, idle) = (Arc::downgrade(&self.watches), Arc::downgrade(&watch));
        tokio::spawn(async move {
            let mut unused_since: Option<tokio::time::Instant> = None;
            loop {
                tokio::time::sleep(WATCH_LINGER / 4).await;
                let (Some(watches), Some(watch)) = (watches.upgrade(), idle.upgrade()) else {
                    return;
                };
                let mut watches = watches
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // This map's and this task's references are the only ones: unused.
                if Arc::strong_count(&watch) > 2 {
                    unused_since = None;
                    continue;
                }
                let since = *unused_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WATCH_LINGER {
                    watches.remove(&key);
                    return;
                }
            }
        });
        watch
    }

    /// What is remembered of the claim's lock from an earlier acquire.
    fn remembered(&self, claim: &Claim) -> Option<KnownLock> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(claim.kind, claim.lock.clone()))
            .cloned()
    }

    /// Reads the claim's lock (failing if there is none) and remembers it.
    async fn read_lock(&self, claim: &Claim) -> Result<KnownLock> {
        let locks: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &claim.kind.api_resource(),
        );
        let lock = locks
            .get(&claim.lock)
            .await
            .map_err(|e| self.error(claim, e))?;
        let known = KnownLock {
            uid: lock.uid().unwrap_or_default(),
            ttl: lock.data["spec"]["ttl"]
                .as_str()
                .and_then(|t| parse_duration(t).ok())
                .unwrap_or(Duration::from_secs(300)),
        };
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((claim.kind, claim.lock.clone()), known.clone());
        Ok(known)
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
        // A lock asked for before is read beside the create, not before it.
        let remembered = self.remembered(claim);
        let KnownLock { uid, ttl } = match &remembered {
            Some(known) => known.clone(),
            None => self.read_lock(claim).await?,
        };
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
            uid,
            ..OwnerReference::default()
        }]);
        let params = PostParams::default();
        let create = self.permits.create(&params, &permit);
        let created = if remembered.is_some() {
            let (created, lock) = tokio::join!(create, self.read_lock(claim));
            if let Err(gone) = lock {
                if created.is_ok() {
                    self.withdraw(&name).await;
                }
                return Err(gone);
            }
            created
        } else {
            create.await
        };
        let current = match created {
            Ok(created) => created,
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
                existing
            }
            Err(error) => return Err(self.error(claim, error)),
        };
        let mut feed = PermitFeed::follow(self.watch_of(claim), &self.permits, &current);
        let decided = |p: &Permit| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase != PermitPhase::Pending || s.position.is_some())
        };
        let granted = |p: &Permit| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase != PermitPhase::Pending)
        };
        let outcome = match wait {
            Wait::Forever => Some(feed.until(Some(current), granted).await),
            Wait::No => {
                let first = feed.until(Some(current), decided).await;
                if first
                    .as_ref()
                    .is_ok_and(|p| !p.as_ref().is_some_and(granted))
                {
                    self.withdraw(&name).await;
                    return Err(Error::LockBusy {
                        kind: claim.kind.word(),
                        namespace: self.namespace.clone(),
                        lock: claim.lock.clone(),
                    });
                }
                Some(first)
            }
            Wait::AtMost(limit) => tokio::time::timeout(limit, feed.until(Some(current), granted))
                .await
                .ok(),
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
            feed,
            self.namespace.clone(),
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

/// What a [`PermitFeed`] saw of its permit.
#[derive(Clone, Debug)]
enum Seen {
    /// The permit as it now is.
    Now(Permit),
    /// The permit (as it last was) was deleted.
    Deleted(Permit),
    /// A re-list found no such permit: it went while the watch was down.
    Missing,
    /// The server refuses to show it (credentials, permission): waiting cannot help.
    Refused(String),
}

/// The permits of one lock as this process sees them: one list+watch per lock (by its
/// label), shared by every acquire and guard on it — a process with many claims on a
/// lock keeps one connection, not one per claim — and stopped when the last of them
/// goes. It rides out a lost connection or a server restart (the watcher re-lists with
/// backoff), as a holder waiting for a lock should.
struct LockWatch {
    state: Arc<std::sync::Mutex<WatchState>>,
    task: tokio::task::JoinHandle<()>,
}

/// One follower of a permit: its id and where to tell it what was seen.
type Follower = (u64, watch::Sender<Option<Seen>>);

#[derive(Default)]
struct WatchState {
    /// The latest state of each permit of the lock, by name.
    latest: HashMap<String, Permit>,
    /// Who follows which permit, by permit name.
    followers: HashMap<String, Vec<Follower>>,
    next_follower: u64,
}

impl WatchState {
    fn tell(&self, name: &str, seen: &Seen) {
        for (_, follower) in self.followers.get(name).into_iter().flatten() {
            follower.send_replace(Some(seen.clone()));
        }
    }

    fn tell_everyone(&self, seen: &Seen) {
        for (_, follower) in self.followers.values().flatten() {
            follower.send_replace(Some(seen.clone()));
        }
    }
}

impl LockWatch {
    /// Starts watching the permits labelled with `selector`.
    fn start(permits: Api<Permit>, selector: String) -> Self {
        let state = Arc::new(std::sync::Mutex::new(WatchState::default()));
        let task = tokio::spawn(follow_lock(permits, selector, Arc::downgrade(&state)));
        Self { state, task }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Feeds one lock's permit events to the followers in `state` while it lives.
async fn follow_lock(
    permits: Api<Permit>,
    selector: String,
    state: std::sync::Weak<std::sync::Mutex<WatchState>>,
) {
    let mut events = watcher(permits, watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut listing: Option<HashMap<String, Permit>> = None;
    while let Some(event) = events.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Ok(watcher::Event::Init) => listing = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(permit)) => {
                state.tell(&permit.name_any(), &Seen::Now(permit.clone()));
                listing
                    .get_or_insert_with(HashMap::new)
                    .insert(permit.name_any(), permit);
            }
            Ok(watcher::Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                for (name, followers) in &state.followers {
                    if !listed.contains_key(name) {
                        for (_, follower) in followers {
                            follower.send_replace(Some(Seen::Missing));
                        }
                    }
                }
                state.latest = listed;
            }
            Ok(watcher::Event::Apply(permit)) => {
                state.tell(&permit.name_any(), &Seen::Now(permit.clone()));
                state.latest.insert(permit.name_any(), permit);
            }
            Ok(watcher::Event::Delete(permit)) => {
                state.latest.remove(&permit.name_any());
                state.tell(&permit.name_any(), &Seen::Deleted(permit));
            }
            Err(
                watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status)),
            ) if matches!(status.code, 401 | 403) => {
                state.tell_everyone(&Seen::Refused(status.message.clone()));
            }
            Err(error) => {
                tracing::debug!(%error, selector = %selector, "watching the lock's permits; reconnecting")
            }
        }
    }
}

/// One permit's changes, from its lock's shared [`LockWatch`]: only this permit (by
/// uid — a permit of the same name from before is not it), as it changes after the
/// version the follower already has. The acquire waits on it and the guard keeps it.
struct PermitFeed {
    watch: Arc<LockWatch>,
    permits: Api<Permit>,
    name: String,
    uid: String,
    follower: u64,
    changes: watch::Receiver<Option<Seen>>,
    /// Whether the watch has shown this permit yet: until it has, another permit of the
    /// same name is an older one the watch has not seen deleted.
    shown: bool,
}

impl PermitFeed {
    /// Follows `permit` (as created or read) on `watch`.
    fn follow(watch: Arc<LockWatch>, permits: &Api<Permit>, permit: &Permit) -> Self {
        let name = permit.name_any();
        let (sender, changes) = watch::channel(None);
        let follower = {
            let mut state = watch.state();
            if let Some(latest) = state.latest.get(&name) {
                sender.send_replace(Some(Seen::Now(latest.clone())));
            }
            state.next_follower += 1;
            let id = state.next_follower;
            state
                .followers
                .entry(name.clone())
                .or_default()
                .push((id, sender));
            id
        };
        Self {
            watch,
            permits: permits.clone(),
            name,
            uid: permit.uid().unwrap_or_default(),
            follower,
            changes,
            shown: false,
        }
    }

    /// The next thing seen of this permit (`None` only if the watch ends for good).
    async fn next(&mut self) -> Option<Seen> {
        loop {
            self.changes.changed().await.ok()?;
            let seen = self.changes.borrow_and_update().clone();
            match seen? {
                Seen::Now(permit) if permit.uid().as_deref() == Some(self.uid.as_str()) => {
                    self.shown = true;
                    return Some(Seen::Now(permit));
                }
                // Ours went and another took its name: the caller sees the new one.
                Seen::Now(permit) if self.shown => return Some(Seen::Now(permit)),
                Seen::Now(_) => {}
                Seen::Deleted(permit) if permit.uid().as_deref() == Some(self.uid.as_str()) => {
                    return Some(Seen::Deleted(permit));
                }
                Seen::Deleted(_) => {}
                // A re-list without it may predate its creation: ask the server.
                Seen::Missing => match self.permits.get_opt(&self.name).await {
                    Ok(Some(permit)) => return Some(Seen::Now(permit)),
                    Ok(None) => return Some(Seen::Missing),
                    Err(error) => {
                        tracing::debug!(%error, permit = %self.name, "reading the permit after a re-list");
                    }
                },
                Seen::Refused(why) => return Some(Seen::Refused(why)),
            }
        }
    }

    /// Waits until `condition` holds for the permit (the permit as it then is), starting
    /// with `current`, or until it is gone (`None`).
    async fn until(
        &mut self,
        current: Option<Permit>,
        condition: impl Fn(&Permit) -> bool,
    ) -> std::result::Result<Option<Permit>, String> {
        if let Some(permit) = current.filter(|p| condition(p)) {
            return Ok(Some(permit));
        }
        while let Some(seen) = self.next().await {
            match seen {
                Seen::Now(permit) if permit.uid().as_deref() != Some(self.uid.as_str()) => {
                    return Ok(None);
                }
                Seen::Now(permit) if condition(&permit) => return Ok(Some(permit)),
                Seen::Now(_) => {}
                Seen::Deleted(_) | Seen::Missing => return Ok(None),
                Seen::Refused(why) => return Err(why),
            }
        }
        Ok(None)
    }
}

impl Drop for PermitFeed {
    fn drop(&mut self) {
        let mut state = self.watch.state();
        if let Some(followers) = state.followers.get_mut(&self.name) {
            followers.retain(|(id, _)| *id != self.follower);
            if followers.is_empty() {
                state.followers.remove(&self.name);
            }
        }
    }
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
    fn start(feed: PermitFeed, namespace: String, uid: String, token: i64, ttl: Duration) -> Self {
        let (lost_sender, lost) = watch::channel(false);
        let (permits, name) = (feed.permits.clone(), feed.name.clone());
        let keeper = tokio::spawn(keep(feed, uid.clone(), ttl, Arc::new(lost_sender)));
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

/// Renews the grant every third of the ttl and watches (on the acquire's feed) for its
/// loss.
async fn keep(mut feed: PermitFeed, uid: String, ttl: Duration, lost: Arc<watch::Sender<bool>>) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = renewals.tick() => {
                let patch = json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } });
                if let Err(error) = feed.permits.patch(&feed.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::warn!(%error, permit = %feed.name, "renewing the permit");
                }
            }
            seen = feed.next() => {
                let gone = match seen {
                    None => return,
                    Some(Seen::Missing) => true,
                    Some(Seen::Deleted(permit)) => permit.uid().as_deref() == Some(uid.as_str()),
                    Some(Seen::Now(permit)) => {
                        permit.uid().as_deref() != Some(uid.as_str())
                            || permit.status.as_ref().is_some_and(|s| s.phase == PermitPhase::Expired)
                    }
                    Some(Seen::Refused(_)) => false,
                };
                if gone {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}
