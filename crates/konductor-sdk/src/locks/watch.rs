//! One lock as this process sees it: a watch of the lock object and a watch of its
//! Permits (by label), shared by every acquire and guard on that lock in the process —
//! a process with many claims on a lock keeps two connections, not two per claim. It
//! rides out lost connections and server restarts (reconnecting with a backoff capped
//! well under the lock's ttl) and tells its followers whenever anything changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use konductor_api::duration::parse_duration;
use konductor_api::locks::{
    CONDITION_READY, CommonLockSpec, CommonLockStatus, Grant, LockKind, Permit, lock_label,
};
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::watching::{CappedBackoff, watch_config};

/// A resourceVersion as a number, for telling which of two reads of one object is
/// newer (kube-apiserver's are etcd revisions, `konductor server`'s a counter; both
/// rise). `None` for a version that is not a number: then the later arrival wins.
pub fn version_number(version: Option<&str>) -> Option<u64> {
    version.and_then(|v| v.parse().ok())
}

/// What a claim needs of its lock.
#[derive(Clone, Debug)]
pub struct LockView {
    /// The lock's uid (its Permits' owner).
    pub uid: String,
    /// The resourceVersion read.
    pub version: Option<u64>,
    /// `spec.ttl`.
    pub ttl: Duration,
    /// The status every kind has.
    pub status: CommonLockStatus,
}

impl LockView {
    /// The view of a lock object of any kind.
    pub fn of(lock: &DynamicObject) -> Self {
        Self {
            uid: lock.uid().unwrap_or_default(),
            version: version_number(lock.metadata.resource_version.as_deref()),
            // (A spec the controller cannot read grants nothing; its ttl is moot.)
            ttl: CommonLockSpec::of(lock)
                .ok()
                .and_then(|spec| parse_duration(&spec.ttl).ok())
                .unwrap_or(Duration::from_secs(300)),
            status: CommonLockStatus::of(lock),
        }
    }

    /// The grant the status lists for the Permit with this uid.
    pub fn grant_of(&self, uid: &str) -> Option<&Grant> {
        self.status
            .claims
            .grants
            .as_ref()?
            .iter()
            .find(|g| g.uid == uid)
    }

    /// Why the controller refuses the lock's spec, if it does.
    pub fn refusal(&self) -> Option<String> {
        self.status
            .condition(CONDITION_READY)
            .filter(|c| c.status == "False")
            .map(|c| c.message.clone())
    }

    /// Whether `self` may replace `known` (it is not older).
    fn supersedes(&self, known: &LockView) -> bool {
        match (self.version, known.version) {
            (Some(new), Some(old)) => new >= old,
            _ => true,
        }
    }
}

/// Whether a lock is there, as far as the watch knows.
#[derive(Clone, Debug, Default)]
pub enum LockPresence {
    /// Not listed yet.
    #[default]
    Unknown,
    /// There, as last seen.
    Present(LockView),
    /// Not there (never created, or deleted).
    Absent,
}

/// Everything the watch knows.
#[derive(Default)]
pub struct Seen {
    /// The lock object.
    pub lock: LockPresence,
    /// The latest version of each of its Permits, by name.
    pub permits: HashMap<String, Permit>,
    /// Whether the Permits have been listed since the last (re)connection began.
    pub permits_listed: bool,
    /// Set when the server refuses to show the lock or its permits (credentials,
    /// permission): waiting cannot help.
    pub refused: Option<String>,
    /// Set while a watch that worked is reconnecting: why it broke.
    pub reconnecting: Option<String>,
}

/// Who to tell about changes: every follower when the lock changes, only a Permit's
/// followers when that Permit changes — a lock with a hundred waiters in one process
/// wakes one of them, not all, when another's Permit changes.
#[derive(Default)]
struct Bells {
    lock: watch::Sender<u64>,
    permits: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Bells {
    fn permits(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ring_lock(&self) {
        self.lock.send_modify(|n| *n += 1);
    }

    fn ring_permit(&self, name: &str) {
        let mut permits = self.permits();
        if let Some(bell) = permits.get(name) {
            if bell.receiver_count() == 0 {
                permits.remove(name);
            } else {
                bell.send_modify(|n| *n += 1);
            }
        }
    }

    fn ring_all(&self) {
        self.ring_lock();
        self.permits().retain(|_, bell| {
            bell.send_modify(|n| *n += 1);
            bell.receiver_count() > 0
        });
    }
}

/// What one follower hears: changes of the lock and of its own Permit.
pub struct Changes {
    lock: watch::Receiver<u64>,
    permit: watch::Receiver<u64>,
}

impl Changes {
    /// Resolves at the next change; `Err` once the watch is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        tokio::select! {
            changed = self.lock.changed() => changed,
            changed = self.permit.changed() => changed,
        }
    }
}

/// The shared watch of one lock.
pub struct LockWatch {
    seen: Arc<Mutex<Seen>>,
    bells: Arc<Bells>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn refusal(error: &watcher::Error) -> Option<String> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            if matches!(status.code, 401 | 403) =>
        {
            Some(status.message.clone())
        }
        _ => None,
    }
}

impl LockWatch {
    /// Starts watching the `kind` lock `name` in `namespace` and its Permits,
    /// reconnecting with pauses of at most `reconnect_cap`.
    pub fn start(
        client: &Client,
        namespace: &str,
        kind: LockKind,
        name: &str,
        reconnect_cap: Duration,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let bells = Arc::new(Bells::default());
        let locks: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
        let permits: Api<Permit> = Api::namespaced(client.clone(), namespace);
        let lock_events = watcher(
            locks,
            watch_config().fields(&format!("metadata.name={name}")),
        )
        .backoff(CappedBackoff::new(reconnect_cap));
        let permit_events = watcher(
            permits,
            watch_config().labels(&format!("{}={name}", lock_label(kind))),
        )
        .backoff(CappedBackoff::new(reconnect_cap));
        let tasks = vec![
            tokio::spawn(follow_lock(
                lock_events.boxed(),
                Arc::downgrade(&seen),
                bells.clone(),
            )),
            tokio::spawn(follow_permits(
                permit_events.boxed(),
                Arc::downgrade(&seen),
                bells.clone(),
            )),
        ];
        Self { seen, bells, tasks }
    }

    /// What the watch knows now.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the follower of the Permit `name` hears: its changes and the lock's.
    pub fn subscribe(&self, name: &str) -> Changes {
        let permit = self
            .bells
            .permits()
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Changes {
            lock: self.bells.lock.subscribe(),
            permit,
        }
    }

    /// Tells the followers of the Permit `name` to look again (something outside the
    /// watch changed).
    pub fn poke(&self, name: &str) {
        self.bells.ring_permit(name);
    }

    /// Takes a lock read outside the watch (a fresh GET), unless the watch already has
    /// a newer one.
    pub fn offer_lock(&self, view: LockView) {
        {
            let mut seen = self.seen();
            if let LockPresence::Present(known) = &seen.lock
                && !view.supersedes(known)
            {
                return;
            }
            seen.lock = LockPresence::Present(view);
        }
        self.bells.ring_lock();
    }

    /// Takes a Permit read outside the watch (the answer to a renewal), unless the watch
    /// already has a newer version of the same Permit.
    pub fn offer_permit(&self, permit: Permit) {
        let name = permit.name_any();
        {
            let mut seen = self.seen();
            if let Some(known) = seen.permits.get(&name)
                && known.uid() == permit.uid()
                && let (Some(known), Some(new)) = (
                    version_number(known.resource_version().as_deref()),
                    version_number(permit.resource_version().as_deref()),
                )
                && new < known
            {
                return;
            }
            seen.permits.insert(name.clone(), permit);
        }
        self.bells.ring_permit(&name);
    }
}

type Events<K> = futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// Feeds the lock object's events into `seen` while it lives.
async fn follow_lock(
    mut events: Events<DynamicObject>,
    seen: std::sync::Weak<Mutex<Seen>>,
    bells: Arc<Bells>,
) {
    let mut listed_one = false;
    while let Some(event) = events.next().await {
        let Some(seen) = seen.upgrade() else {
            return;
        };
        {
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                Ok(watcher::Event::Init) => listed_one = false,
                Ok(watcher::Event::InitApply(lock)) => {
                    listed_one = true;
                    seen.lock = LockPresence::Present(LockView::of(&lock));
                }
                Ok(watcher::Event::InitDone) => {
                    seen.reconnecting = None;
                    if !listed_one {
                        seen.lock = LockPresence::Absent;
                    }
                }
                Ok(watcher::Event::Apply(lock)) => {
                    let view = LockView::of(&lock);
                    let newer = match &seen.lock {
                        LockPresence::Present(known) => view.supersedes(known),
                        _ => true,
                    };
                    if newer {
                        seen.lock = LockPresence::Present(view);
                    }
                }
                Ok(watcher::Event::Delete(_)) => seen.lock = LockPresence::Absent,
                Err(error) => match refusal(&error) {
                    Some(why) => seen.refused = Some(why),
                    None => seen.reconnecting = Some(crate::error::plain_watch(&error)),
                },
            }
        }
        bells.ring_lock();
    }
}

/// Feeds the Permits' events into `seen` while it lives.
async fn follow_permits(
    mut events: Events<Permit>,
    seen: std::sync::Weak<Mutex<Seen>>,
    bells: Arc<Bells>,
) {
    let mut listing: HashMap<String, Permit> = HashMap::new();
    while let Some(event) = events.next().await {
        let Some(seen) = seen.upgrade() else {
            return;
        };
        // Whose followers to tell: one Permit's (`Some`), everyone's (`None`), or
        // nobody's yet (a listing in progress: `Some("")`).
        let touched: Option<String> = {
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match event {
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    Some(String::new())
                }
                Ok(watcher::Event::InitApply(permit)) => {
                    listing.insert(permit.name_any(), permit);
                    Some(String::new())
                }
                Ok(watcher::Event::InitDone) => {
                    seen.permits = std::mem::take(&mut listing);
                    seen.permits_listed = true;
                    seen.reconnecting = None;
                    None
                }
                Ok(watcher::Event::Apply(permit)) => {
                    let name = permit.name_any();
                    seen.permits.insert(name.clone(), permit);
                    Some(name)
                }
                Ok(watcher::Event::Delete(permit)) => {
                    let name = permit.name_any();
                    if seen
                        .permits
                        .get(&name)
                        .is_some_and(|known| known.uid() == permit.uid())
                    {
                        seen.permits.remove(&name);
                    }
                    Some(name)
                }
                Err(error) => {
                    match refusal(&error) {
                        Some(why) => seen.refused = Some(why),
                        None => seen.reconnecting = Some(crate::error::plain_watch(&error)),
                    }
                    None
                }
            }
        };
        match touched {
            Some(name) if name.is_empty() => {}
            Some(name) => bells.ring_permit(&name),
            None => bells.ring_all(),
        }
    }
}
