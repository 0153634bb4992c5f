//! Prometheus metrics of the controller, by kind: reconciles, their errors and
//! durations, status writes, Events left out by the budget; barriers by phase and the
//! time barriers take to open; lock grants and expiries.

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

/// Labels of the counters kept per kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `barrier`, `semaphore`, `mutex`, `rwmutex`.
    pub kind: String,
}

impl KindLabels {
    /// The labels of `kind`.
    pub fn of(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
        }
    }
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind whose reconcile failed.
    pub kind: String,
    /// The error's kind ([`Error::metric_label`]).
    pub error: String,
}

/// Labels of the phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `Waiting`, `Open`, `Failed` or `Timeout`.
    pub phase: String,
}

/// Times one reconcile into a histogram when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Reconcile durations by kind.
type Durations = Family<KindLabels, Histogram, fn() -> Histogram>;

/// The buckets of reconcile durations: 0.5 ms to 4 s.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// All controller metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by kind.
    reconciles: Family<KindLabels, Counter>,
    /// Failed reconciles by kind and error.
    errors: Family<ErrorLabels, Counter>,
    /// Reconcile durations, by kind.
    durations: Durations,
    /// Status subresource writes, by kind (well below one per arrival when bursts
    /// coalesce).
    status_writes: Family<KindLabels, Counter>,
    /// Normal Events not recorded because the subject's event budget was spent.
    events_dropped: Family<KindLabels, Counter>,
    /// Seconds from a barrier's creation to its opening.
    pub time_to_open: Histogram,
    /// 1 while this replica leads (operator), else 0.
    pub leader: Gauge,
    /// Watches of a kind in a namespace that waiting Gates name now.
    pub gate_watches: Gauge,
    /// Grants made, by kind.
    pub lock_grants: Family<KindLabels, Counter>,
    /// Grants that expired (not renewed within the ttl), by kind.
    pub lock_expiries: Family<KindLabels, Counter>,
    /// Barriers by phase, from the controller's cache at scrape time.
    phases: Family<PhaseLabels, Gauge>,
    /// The controller's barrier cache, once running.
    barriers: Mutex<Option<Store<Barrier>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("konductor");
        let metrics = Self {
            registry: Registry::default(),
            reconciles: Family::default(),
            errors: Family::default(),
            durations: Durations::new_with_constructor(reconcile_histogram),
            status_writes: Family::default(),
            events_dropped: Family::default(),
            time_to_open: Histogram::new(exponential_buckets(0.01, 4.0, 12)),
            leader: Gauge::default(),
            gate_watches: Gauge::default(),
            lock_grants: Family::default(),
            lock_expiries: Family::default(),
            phases: Family::default(),
            barriers: Mutex::new(None),
        };
        // Every metric: its name (after `konductor_`), its help text, the metric.
        macro_rules! register {
            ($($name:literal, $help:literal, $metric:expr;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "reconciles", "Reconciles run, by kind", metrics.reconciles;
            "reconcile_errors", "Failed reconciles, by kind and error", metrics.errors;
            "reconcile_duration_seconds", "Time spent in one reconcile, by kind", metrics.durations;
            "status_writes", "Status updates written, by kind", metrics.status_writes;
            "events_dropped", "Normal Events not recorded (over the per-object budget), by kind", metrics.events_dropped;
            "barrier_time_to_open_seconds", "Time from a barrier's creation to its opening", metrics.time_to_open;
            "barriers", "Barriers by phase", metrics.phases;
            "lock_grants", "Lock grants made", metrics.lock_grants;
            "lock_expiries", "Lock grants that expired unrenewed", metrics.lock_expiries;
            "gate_watches", "Watches of a kind in a namespace that waiting Gates name", metrics.gate_watches;
            "leader", "1 while this replica holds the lease", metrics.leader;
        }
        // Every kind's series exist from the start (at 0), on a standby replica too.
        for kind in konductor_api::kinds().iter().filter(|k| k.reconciled) {
            let labels = KindLabels::of(kind.word());
            let _ = metrics.reconciles.get_or_create(&labels);
            let _ = metrics.status_writes.get_or_create(&labels);
        }
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and times it until the returned guard drops.
    pub fn reconciling(&self, kind: &str) -> ReconcileTimer {
        let labels = KindLabels::of(kind);
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.durations.get_or_create(&labels).clone(),
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `kind`.
    pub fn failed(&self, kind: &str, error: &Error) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
                error: error.metric_label().to_owned(),
            })
            .inc();
    }

    /// Counts a status write of `kind`.
    pub fn status_written(&self, kind: &str) {
        self.status_writes
            .get_or_create(&KindLabels::of(kind))
            .inc();
    }

    /// Status writes of `kind` so far.
    pub fn status_writes(&self, kind: &str) -> u64 {
        self.status_writes
            .get_or_create(&KindLabels::of(kind))
            .get()
    }

    /// Reconciles of `kind` so far.
    pub fn reconciles(&self, kind: &str) -> u64 {
        self.reconciles.get_or_create(&KindLabels::of(kind)).get()
    }

    /// Counts a Normal Event of `kind` left out by its subject's budget.
    pub fn event_dropped(&self, kind: &str) {
        self.events_dropped
            .get_or_create(&KindLabels::of(kind))
            .inc();
    }

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
