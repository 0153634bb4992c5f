//! What the barrier controller remembers of its own status writes, so it neither argues
//! with itself nor spends its time on one large barrier.
//!
//! - [`OwnWrites`]: the engine's [`WrittenVersions`], keeping the written barrier for
//!   reconciles that the reflector's cache has not caught up with.
//! - [`Pacing`]: how often a large barrier's progress may be written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use konductor_api::Barrier;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::arrivals::BarrierKey;
use crate::engine::writes::{EventVersion, WrittenVersions};

/// The most status writes remembered while the barrier cache catches up with them.
const MAX_REMEMBERED_WRITES: usize = 4096;

/// Status writes slower than this are paced (see [`Pacing`]).
const PACED_ABOVE: Duration = Duration::from_millis(5);

/// A barrier's namespace and name.
pub fn key_of(barrier: &Barrier) -> BarrierKey {
    (barrier.namespace().unwrap_or_default(), barrier.name_any())
}

/// The controller's recent status writes that its barrier cache may not show yet.
///
/// The barrier watch delivers a status write a moment after the write returns; a
/// reconcile in that moment would read the older barrier from the cache, compute from
/// an out-of-date previous status, and lose a 409 Conflict plus a retry on every busy
/// barrier. So each write is remembered (in [`WrittenVersions`], with the barrier it
/// returned), and a reconcile that gets a superseded version from the cache works on
/// the written barrier instead; and the write's own watch event (its echo) triggers no
/// reconcile, since it carries nothing the writer did not know.
#[derive(Default)]
pub struct OwnWrites {
    by_barrier: Mutex<WrittenVersions<BarrierKey, Arc<Barrier>>>,
}

impl OwnWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, WrittenVersions<BarrierKey, Arc<Barrier>>> {
        self.by_barrier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The newest known state of `cached`: our own later write if the cache is behind it.
    pub fn latest(&self, cached: Arc<Barrier>) -> Arc<Barrier> {
        let key = key_of(&cached);
        let mut writes = self.lock();
        let Some(written) = writes.written(&key).cloned() else {
            return cached;
        };
        if written.uid() != cached.uid() {
            // A barrier deleted and created again: not the one written.
            writes.forget(&key);
            return cached;
        }
        match writes.judge(&key, cached.resource_version().as_deref()) {
            EventVersion::Stale => written,
            // The cache caught up, or someone else wrote since: the cache is the truth.
            EventVersion::Echo | EventVersion::New => cached,
        }
    }

    /// Whether `barrier`, as the watch delivers it, is exactly our last write.
    pub fn is_echo(&self, barrier: &Barrier) -> bool {
        self.lock().written(&key_of(barrier)).is_some_and(|own| {
            own.uid() == barrier.uid() && own.resource_version() == barrier.resource_version()
        })
    }

    /// Remembers that `based_on` was replaced by `written`.
    pub fn remember(&self, based_on: &Barrier, written: Barrier, barriers: &Store<Barrier>) {
        let key = key_of(&written);
        let mut writes = self.lock();
        if writes
            .written(&key)
            .is_some_and(|own| own.uid() != written.uid())
        {
            writes.forget(&key);
        }
        if writes.remembered() >= MAX_REMEMBERED_WRITES {
            // Keep only writes the cache has not caught up with (a few in flight).
            writes.retain(|(namespace, name), superseded| {
                barriers
                    .get(&ObjectRef::new(name).within(namespace))
                    .and_then(|cached| cached.resource_version())
                    .is_some_and(|version| superseded.contains(&version))
            });
        }
        let Some(version) = written.resource_version() else {
            return;
        };
        writes.wrote_object(key, based_on.resource_version(), version, Arc::new(written));
    }
}

/// Paces the progress writes of large barriers.
///
/// A barrier's status lists every holder, so writing it costs in proportion to its
/// size: re-written for every few arrivals, a barrier of 10,000 costs O(n²). A barrier
/// whose last status write took longer than `PACED_ABOVE` (5 ms) has its progress written
/// at most once per that duration — its writes take at most half the time, and each
/// carries all arrivals since the last — while the write that can open it is never
/// held back (nor one at or past its deadline). Small barriers are never paced.
#[derive(Default)]
pub struct Pacing {
    by_barrier: Mutex<HashMap<BarrierKey, Paced>>,
}

struct Paced {
    /// When the last status write finished.
    written_at: Instant,
    /// How long it took.
    cost: Duration,
}

impl Pacing {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BarrierKey, Paced>> {
        self.by_barrier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `barrier`'s next write should wait, given that at most `arrived`
    /// holders have arrived; `None` to write now.
    pub fn hold(
        &self,
        barrier: &Barrier,
        arrived: usize,
        now: jiff::Timestamp,
    ) -> Option<Duration> {
        let writes = self.lock();
        let paced = writes.get(&key_of(barrier))?;
        let required = usize::try_from(barrier.spec.required()).unwrap_or(0);
        let at_deadline = barrier
            .status
            .as_ref()
            .and_then(|s| s.deadline.as_ref())
            .is_some_and(|deadline| now >= deadline.0);
        if arrived >= required || at_deadline {
            return None;
        }
        paced.cost.checked_sub(paced.written_at.elapsed())
    }

    /// Records a status write of `barrier` that took `cost`.
    pub fn wrote(&self, barrier: &Barrier, cost: Duration) {
        let key = key_of(barrier);
        let mut writes = self.lock();
        if cost >= PACED_ABOVE {
            writes.insert(
                key,
                Paced {
                    written_at: Instant::now(),
                    cost,
                },
            );
        } else {
            writes.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::BarrierSpec;

    fn barrier(version: &str) -> Barrier {
        let mut barrier = Barrier::new("b", BarrierSpec::new(3));
        barrier.metadata.namespace = Some("ns".into());
        barrier.metadata.uid = Some("uid-1".into());
        barrier.metadata.resource_version = Some(version.into());
        barrier
    }

    fn version_of(barrier: &Barrier) -> String {
        barrier.resource_version().unwrap()
    }

    #[test]
    fn a_reconcile_behind_its_own_writes_works_on_the_newest() {
        let (cache, _writer) = kube::runtime::reflector::store::<Barrier>();
        let writes = OwnWrites::default();
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert!(
            writes.is_echo(&barrier("2")),
            "our own write needs no reconcile"
        );
        assert!(!writes.is_echo(&barrier("1")));
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "2");
        // A second write on top of the first, while the cache still shows the oldest.
        writes.remember(&barrier("2"), barrier("3"), &cache);
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "3");
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("2")))), "3");
        // The cache caught up: it is the truth again, and the memory is gone.
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("3")))), "3");
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "1");
    }

    #[test]
    fn someone_elses_newer_write_wins() {
        let (cache, _writer) = kube::runtime::reflector::store::<Barrier>();
        let writes = OwnWrites::default();
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("5")))), "5");
        let mut recreated = barrier("1");
        recreated.metadata.uid = Some("uid-2".into());
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert_eq!(
            writes.latest(Arc::new(recreated)).uid().as_deref(),
            Some("uid-2"),
            "a barrier deleted and created again is not confused with the old one"
        );
    }

    #[test]
    fn only_slow_writes_are_paced_and_never_the_one_that_can_open() {
        let pacing = Pacing::default();
        let now = jiff::Timestamp::now();
        let b = barrier("1");
        pacing.wrote(&b, Duration::from_millis(1));
        assert_eq!(
            pacing.hold(&b, 0, now),
            None,
            "a small barrier is never held"
        );
        pacing.wrote(&b, Duration::from_secs(60));
        let wait = pacing.hold(&b, 2, now).expect("progress waits");
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert_eq!(
            pacing.hold(&b, 3, now),
            None,
            "3 arrivals may open it: write now"
        );
        let mut due = b.clone();
        due.status = Some(konductor_api::BarrierStatus {
            deadline: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                now,
            )),
            ..Default::default()
        });
        assert_eq!(
            pacing.hold(&due, 0, now),
            None,
            "its deadline is not held back"
        );
    }
}
