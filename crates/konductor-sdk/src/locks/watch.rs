//! What a client follows of its locks: a watch of *its own* Permits — those labelled
//! with its [`CLIENT_LABEL`] — shared by every acquire and guard of one `Locks`, and
//! reads of a lock on demand ([`LockView`]). Nothing else: the lock object, which the
//! controller writes on every handover, and the other holders' Permits, which they
//! renew, are not watched, so a handover reaches the one process it grants to — the
//! controller writes the grant to the lock's status and then to the new holder's
//! Permit — and a queue of a thousand costs a waiter what a queue of ten does. The watch
//! rides out lost connections and server restarts (reconnecting with a backoff capped
//! well under a ttl) and tells a Permit's followers whenever it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use konductor_api::duration::parse_duration;
use konductor_api::locks::{
    CLIENT_LABEL, CONDITION_READY, CommonLockSpec, CommonLockStatus, Grant, Permit,
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

/// What a claim needs of its lock, from one read of it.
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

    /// Who holds the lock, in token order.
    pub fn holders(&self) -> Vec<String> {
        self.status
            .claims
            .grants
            .iter()
            .flatten()
            .map(|g| g.holder.clone())
            .collect()
    }

    /// Why the controller refuses the lock's spec, if it does.
    pub fn refusal(&self) -> Option<String> {
        self.status
            .condition(CONDITION_READY)
            .filter(|c| c.status == "False")
            .map(|c| c.message.clone())
    }

    /// Whether `self` may replace `known` (it is not older).
    pub fn supersedes(&self, known: &LockView) -> bool {
        match (self.version, known.version) {
            (Some(new), Some(old)) => new >= old,
            _ => true,
        }
    }
}

/// Whether a lock is there, as far as a claim's reads of it know.
#[derive(Clone, Debug, Default)]
pub enum LockPresence {
    /// Not read yet.
    #[default]
    Unknown,
    /// There, as last read.
    Present(LockView),
    /// Not there (never created, or deleted).
    Absent,
}

impl LockPresence {
    /// Takes a newer read: a view that does not supersede the one known is dropped.
    pub fn offer(&mut self, read: LockPresence) {
        if let (LockPresence::Present(known), LockPresence::Present(view)) = (&*self, &read)
            && !view.supersedes(known)
        {
            return;
        }
        *self = read;
    }
}

/// Everything the watch knows.
#[derive(Default)]
pub struct Seen {
    /// The latest version of each of this client's Permits, by name.
    pub permits: HashMap<String, Permit>,
    /// Set when the server refuses to show the Permits (credentials, permission):
    /// waiting cannot help.
    pub refused: Option<String>,
    /// Set while a watch that worked is reconnecting: why it broke.
    pub reconnecting: Option<String>,
}

/// Who to tell about changes: only a Permit's followers when that Permit changes —
/// a client with a hundred claims wakes one of them when another's Permit changes —
/// everyone's after a re-list or a broken connection.
#[derive(Default)]
struct Bells {
    permits: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Bells {
    fn permits(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ring(&self, name: &str) {
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
        self.permits().retain(|_, bell| {
            bell.send_modify(|n| *n += 1);
            bell.receiver_count() > 0
        });
    }
}

/// What one follower hears: changes of its own Permit.
pub struct Changes {
    permit: watch::Receiver<u64>,
}

impl Changes {
    /// Resolves at the next change; `Err` once the watch is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.permit.changed().await
    }
}

/// The shared watch of one client's Permits.
pub struct ClaimWatch {
    seen: Arc<Mutex<Seen>>,
    bells: Arc<Bells>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ClaimWatch {
    fn drop(&mut self) {
        self.task.abort();
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

impl ClaimWatch {
    /// Starts watching the Permits in `namespace` labelled as the client `client`'s,
    /// reconnecting with pauses of at most `reconnect_cap`.
    pub fn start(client: &Client, namespace: &str, id: &str, reconnect_cap: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let bells = Arc::new(Bells::default());
        let permits: Api<Permit> = Api::namespaced(client.clone(), namespace);
        let events = watcher(
            permits,
            watch_config().labels(&format!("{CLIENT_LABEL}={id}")),
        )
        .backoff(CappedBackoff::new(reconnect_cap));
        let task = tokio::spawn(follow_permits(
            events.boxed(),
            Arc::downgrade(&seen),
            bells.clone(),
        ));
        Self { seen, bells, task }
    }

    /// What the watch knows now.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the follower of the Permit `name` hears.
    pub fn subscribe(&self, name: &str) -> Changes {
        let permit = self
            .bells
            .permits()
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Changes { permit }
    }

    /// Tells the followers of the Permit `name` to look again (something outside the
    /// watch changed).
    pub fn poke(&self, name: &str) {
        self.bells.ring(name);
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
        self.bells.ring(&name);
    }
}

type Events<K> = futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

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
            Some(name) => bells.ring(&name),
            None => bells.ring_all(),
        }
    }
}
