//! What the barrier controller remembers of its own status writes, so it neither argues
//! with itself nor spends its time on one large barrier.
//!
//! [`Pacing`]: how often a large barrier's progress may be written (its own writes are
//! remembered by the engine's [`crate::engine::writes::OwnWrites`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use konductor_api::Barrier;

use super::arrivals::BarrierKey;
use crate::engine::writes::subject_key;

/// Status writes slower than this are paced (see [`Pacing`]).
const PACED_ABOVE: Duration = Duration::from_millis(5);

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
        let paced = writes.get(&subject_key(barrier))?;
        let required = usize::try_from(barrier.spec.required()).unwrap_or(0);
        let at_deadline = barrier
            .status
            .as_ref()
            .and_then(|s| s.lifecycle.deadline.as_ref())
            .is_some_and(|deadline| now >= deadline.0);
        if arrived >= required || at_deadline {
            return None;
        }
        paced.cost.checked_sub(paced.written_at.elapsed())
    }

    /// Records a status write of `barrier` that took `cost`.
    pub fn wrote(&self, barrier: &Barrier, cost: Duration) {
        let key = subject_key(barrier);
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
    use crate::engine::writes::tests::barrier;

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
            lifecycle: konductor_api::evaluation::Lifecycle {
                deadline: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    now,
                )),
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(
            pacing.hold(&due, 0, now),
            None,
            "its deadline is not held back"
        );
    }
}
