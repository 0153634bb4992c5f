//! Permit statuses, written after the lock's. A grant becomes real in the lock's status
//! (one write per handover); each Permit's own status follows it, so that `kubectl get
//! permits` and `kubectl wait --for=condition=Granted permit/…` work — and so that a
//! waiting client, which watches its own Permits and not the lock, learns of its grant.
//! Reconciles hand the statuses they decided to this writer and go on.
//!
//! Writes for one permit happen in the order they were decided, and a newer decision
//! for a permit replaces one not yet written. A grant or an expiry ([`When::AtOnce`]) is
//! written next, ahead of everything else: its holder waits for it. Any other status (a
//! claim's place when it was queued) waits [`MIRROR_DELAY`], so that a Permit released
//! at once costs no write at all: its deletion cancels it. Every write names the
//! permit's uid, so it never lands on a later Permit of the same name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use konductor_api::locks::Permit;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::Notify;

use super::cache::PermitIndex;
use crate::clock::MonotonicClock;
use crate::engine::writes::{Precondition, StatusPatch};

/// How many permits' statuses are written at once (each permit's in order).
const WRITERS: usize = 4;

/// How long a decided status waits before it is written (a Permit deleted meanwhile
/// needs none).
pub const MIRROR_DELAY: std::time::Duration = std::time::Duration::from_millis(25);

/// How soon a decided status is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Next, ahead of the rest: a grant or an expiry, which its holder waits for.
    AtOnce,
    /// After [`MIRROR_DELAY`], in turn.
    Later,
}

/// One permit status to write.
struct Pending {
    /// When it may be written.
    due: tokio::time::Instant,
    namespace: String,
    name: String,
    /// The permit's resourceVersion when the status was decided (for the index).
    based_on: Option<String>,
    status: Value,
}

#[derive(Default)]
struct Queue {
    /// By permit uid: the latest status decided and not yet taken by a writer.
    latest: HashMap<String, Pending>,
    /// Uids in the order their first unwritten status was decided.
    order: VecDeque<String>,
    /// Uids a writer is writing now (one writer per permit at a time).
    busy: std::collections::HashSet<String>,
    closed: bool,
}

/// What a writer takes from the queue.
enum Taken {
    /// This uid's status, to write now.
    Write(String, Pending),
    /// Nothing before this moment.
    Later(tokio::time::Instant),
    /// Nothing at all.
    Nothing,
    /// Nothing, ever: the writers stop.
    Closed,
}

/// The permit status writer. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Mirror {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
}

impl Mirror {
    /// Starts the writers on `client`; answers go into `index`.
    pub fn start(
        client: Client,
        index: PermitIndex,
        clock: MonotonicClock,
    ) -> (Self, tokio::task::JoinSet<()>) {
        let mirror = Self {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..WRITERS {
            writers.spawn(
                mirror
                    .clone()
                    .write_until_closed(client.clone(), index.clone(), clock),
            );
        }
        (mirror, writers)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands over `permit`'s status, as decided (every field present, absent ones null),
    /// to be written `when` says.
    pub fn write(&self, permit: &Permit, status: Value, when: When) {
        let uid = permit.uid().unwrap_or_default();
        let now = tokio::time::Instant::now();
        let pending = Pending {
            due: match when {
                When::AtOnce => now,
                When::Later => now + MIRROR_DELAY,
            },
            namespace: permit.namespace().unwrap_or_default(),
            name: permit.name_any(),
            based_on: permit.resource_version(),
            status,
        };
        let mut queue = self.queue();
        match queue.latest.get_mut(&uid) {
            // Replaces the one not yet written, keeping its turn (or its due time).
            Some(earlier) => {
                *earlier = Pending {
                    due: earlier.due.min(pending.due),
                    ..pending
                };
                if when == When::AtOnce {
                    queue.order.retain(|u| *u != uid);
                    queue.order.push_front(uid);
                }
            }
            None => {
                queue.latest.insert(uid.clone(), pending);
                match when {
                    When::AtOnce => queue.order.push_front(uid),
                    When::Later => queue.order.push_back(uid),
                }
            }
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// The Permit with `uid` was deleted: its status need not be written.
    pub fn forget(&self, uid: &str) {
        let mut queue = self.queue();
        if queue.latest.remove(uid).is_some() {
            queue.order.retain(|u| u != uid);
        }
    }

    /// Stops the writers once what is queued has been written.
    pub fn close(&self) {
        self.queue().closed = true;
        self.wake.notify_waiters();
    }

    /// The next status to write, if one is due and not being written already; else
    /// when the next one is due.
    fn take(&self) -> Taken {
        let mut queue = self.queue();
        let now = tokio::time::Instant::now();
        let position = queue.order.iter().position(|uid| !queue.busy.contains(uid));
        let Some(at) = position else {
            return if queue.closed {
                Taken::Closed
            } else {
                Taken::Nothing
            };
        };
        let due = queue.latest.get(&queue.order[at]).map_or(now, |p| p.due);
        if due > now && !queue.closed {
            return Taken::Later(due);
        }
        let Some(uid) = queue.order.remove(at) else {
            return Taken::Nothing;
        };
        let Some(pending) = queue.latest.remove(&uid) else {
            return Taken::Nothing;
        };
        queue.busy.insert(uid.clone());
        Taken::Write(uid, pending)
    }

    async fn write_until_closed(self, client: Client, index: PermitIndex, clock: MonotonicClock) {
        loop {
            // Registered before looking, so a status handed over meanwhile wakes it.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (uid, pending) = match self.take() {
                Taken::Closed => return,
                Taken::Nothing => {
                    notified.await;
                    continue;
                }
                Taken::Later(due) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                    continue;
                }
                Taken::Write(uid, pending) => (uid, pending),
            };
            let api: Api<Permit> = Api::namespaced(client.clone(), &pending.namespace);
            let patch = StatusPatch {
                metadata: Precondition {
                    uid: Some(&uid),
                    ..Precondition::default()
                },
                status: &pending.status,
            };
            match api
                .patch_status(
                    &pending.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(answer) => index.wrote(pending.based_on, &answer, clock.now()),
                // Released meanwhile (404), or another Permit of the same name (409).
                Err(kube::Error::Api(refused)) if matches!(refused.code, 404 | 409) => {}
                Err(error) => {
                    tracing::debug!(%error, permit = %pending.name, "writing the permit's status")
                }
            }
            self.queue().busy.remove(&uid);
            self.wake.notify_one();
        }
    }
}
