//! Prometheus metrics of the controller: reconciles, errors by kind, reconcile
//! duration, status writes, barriers by phase and the time barriers take to open; lock
//! reconciles, grants and expiries by kind.

use std::sync::Mutex;
use std::time::Instant;

use konductor_api::{Barrier, BarrierPhase};
use kube::runtime::reflector::Store;
use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Error;

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's kind ([`Error::metric_label`]).
    pub error: String,
}

impl From<&Error> for ErrorLabels {
    fn from(error: &Error) -> Self {
        Self {
            error: error.metric_label().to_owned(),
        }
    }
}

/// Labels of the phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `Waiting`, `Open`, `Failed` or `Timeout`.
    pub phase: String,
}

/// Labels of the lock counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LockLabels {
    /// `semaphore`, `mutex` or `rwmutex`.
    pub kind: String,
}

impl LockLabels {
    /// The labels of a `kind` lock.
    pub fn of(kind: konductor_api::locks::LockKind) -> Self {
        Self {
            kind: kind.word().to_owned(),
        }
    }
}

/// Times one reconcile into a histogram when dropped.
pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// A histogram of reconcile durations.
pub struct ReconcileHistogram(Histogram);

impl ReconcileHistogram {
    /// Starts timing a reconcile; the time is recorded when the guard drops.
    pub fn start(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            histogram: &self.0,
            started: Instant::now(),
        }
    }
}

/// All controller metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Failed reconciles by error kind.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations.
    pub reconcile: ReconcileHistogram,
    /// Status subresource writes (well below one per arrival when bursts coalesce).
    pub status_writes: Counter,
    /// Seconds from a barrier's creation to its opening.
    pub time_to_open: Histogram,
    /// 1 while this replica leads (operator), else 0.
    pub leader: Gauge,
    /// Lock reconciles run, by kind.
    pub lock_reconciles: Family<LockLabels, Counter>,
    /// Grants made, by kind.
    pub lock_grants: Family<LockLabels, Counter>,
    /// Grants that expired (not renewed within the ttl), by kind.
    pub lock_expiries: Family<LockLabels, Counter>,
    /// Normal Events on locks not recorded because the lock's event budget was spent.
    pub lock_events_dropped: Family<LockLabels, Counter>,
    /// Barriers by phase, from the controller's cache at scrape time.
    phases: Family<PhaseLabels, Gauge>,
    /// The controller's barrier cache, once running.
    barriers: Mutex<Option<Store<Barrier>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("konductor");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let status_writes = Counter::default();
        let time_to_open = Histogram::new(exponential_buckets(0.01, 4.0, 12));
        let phases = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Barrier reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles of barriers and locks, by error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one barrier reconcile",
            reconcile.clone(),
        );
        registry.register(
            "status_writes",
            "Barrier status updates written",
            status_writes.clone(),
        );
        registry.register(
            "barrier_time_to_open_seconds",
            "Time from a barrier's creation to its opening",
            time_to_open.clone(),
        );
        registry.register("barriers", "Barriers by phase", phases.clone());
        let lock_reconciles = Family::<LockLabels, Counter>::default();
        let lock_grants = Family::<LockLabels, Counter>::default();
        let lock_expiries = Family::<LockLabels, Counter>::default();
        let lock_events_dropped = Family::<LockLabels, Counter>::default();
        registry.register(
            "lock_events_dropped",
            "Normal lock Events not recorded (over the per-lock budget)",
            lock_events_dropped.clone(),
        );
        registry.register(
            "lock_reconciles",
            "Lock reconciles run",
            lock_reconciles.clone(),
        );
        registry.register("lock_grants", "Lock grants made", lock_grants.clone());
        registry.register(
            "lock_expiries",
            "Lock grants that expired unrenewed",
            lock_expiries.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            reconcile: ReconcileHistogram(reconcile),
            status_writes,
            time_to_open,
            leader,
            lock_reconciles,
            lock_grants,
            lock_expiries,
            lock_events_dropped,
            phases,
            barriers: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Lets the phase gauge read the controller's barrier cache.
    pub fn set_barrier_store(&self, store: Store<Barrier>) {
        *self.barriers.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        if let Some(store) = self
            .barriers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let barriers = store.state();
            for phase in [
                BarrierPhase::Waiting,
                BarrierPhase::Open,
                BarrierPhase::Failed,
                BarrierPhase::Timeout,
            ] {
                let count = barriers.iter().filter(|b| b.phase() == phase).count();
                self.phases
                    .get_or_create(&PhaseLabels {
                        phase: phase.to_string(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
