//! Events on locks: Granted, Released, Expired — each naming the Permit it is about as
//! its related object, so grants to different holders are different events (an event
//! recorder folds events with the same reason, object and related object into one
//! series). Recorded in the background, within a per-lock budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use konductor_api::locks::Permit;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::cache::LockKey;
use crate::metrics::{LockLabels, Metrics};

/// Normal Events (Granted, Released) a lock may record in a burst.
const EVENT_BURST: f64 = 25.0;
/// Normal Events a lock may record per second once its burst is spent.
const EVENTS_PER_SECOND: f64 = 1.0;
/// Locks whose budget is tracked before full buckets are forgotten.
const EVENT_BUDGET_LOCKS: usize = 10_000;

/// A token bucket per lock for its Normal Events, as client-go's event spam filter
/// keeps one per object: a Mutex handed over a hundred times a second would otherwise
/// write two Events per handover — more writes than the handover itself. Warnings
/// (Expired) are always recorded.
#[derive(Default)]
pub struct EventBudget {
    by_lock: HashMap<LockKey, (f64, Instant)>,
}

impl EventBudget {
    /// Takes one event from `key`'s bucket; false when it is empty.
    pub fn take(&mut self, key: &LockKey) -> bool {
        let now = Instant::now();
        if self.by_lock.len() >= EVENT_BUDGET_LOCKS {
            let full = |(tokens, at): &(f64, Instant)| {
                tokens + now.duration_since(*at).as_secs_f64() * EVENTS_PER_SECOND >= EVENT_BURST
            };
            self.by_lock.retain(|_, bucket| !full(bucket));
        }
        let (tokens, at) = self
            .by_lock
            .entry(key.clone())
            .or_insert((EVENT_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * EVENTS_PER_SECOND).min(EVENT_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Records lock Events.
pub struct LockEvents {
    recorder: Recorder,
    budget: std::sync::Mutex<EventBudget>,
    metrics: Arc<Metrics>,
}

fn permit_reference(permit: &Permit) -> ObjectReference {
    permit.object_ref(&())
}

impl LockEvents {
    /// Events through `recorder`, counting dropped ones in `metrics`.
    pub fn new(recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Self {
            recorder,
            budget: std::sync::Mutex::default(),
            metrics,
        }
    }

    /// Records an Event on the lock `key` (uid `uid`) about `permit`, in the background,
    /// if a Warning or within the lock's budget.
    pub fn publish(
        &self,
        key: &LockKey,
        uid: &str,
        permit: &Permit,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        if type_ == EventType::Normal
            && !self
                .budget
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(key)
        {
            self.metrics
                .lock_events_dropped
                .get_or_create(&LockLabels::of(key.kind))
                .inc();
            return;
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: Some(permit_reference(permit)),
        };
        let resource = key.kind.api_resource();
        let reference = ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            uid: Some(uid.to_owned()),
            ..ObjectReference::default()
        };
        let (recorder, name) = (self.recorder.clone(), key.name.clone());
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::warn!(%error, lock = %name, "recording event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::locks::LockKind;
    use std::time::Duration;

    fn key(name: &str) -> LockKey {
        LockKey {
            kind: LockKind::Mutex,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_lock_spends_its_event_burst_then_waits_for_the_refill() {
        let mut budget = EventBudget::default();
        let burst = EVENT_BURST as usize;
        assert!((0..burst).all(|_| budget.take(&key("busy"))));
        assert!(!budget.take(&key("busy")), "the burst is spent");
        assert!(budget.take(&key("quiet")), "each lock has its own budget");
        // A second later (as far as the bucket knows) one more is allowed.
        if let Some((_, at)) = budget.by_lock.get_mut(&key("busy")) {
            *at -= Duration::from_secs_f64(1.0 / EVENTS_PER_SECOND);
        }
        assert!(budget.take(&key("busy")));
        assert!(!budget.take(&key("busy")));
    }
}
