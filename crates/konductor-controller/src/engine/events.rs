//! Events on subjects (a barrier opened, a lock granted to a holder), for every kind:
//! Warnings are always recorded; Normal Events within a token bucket per subject, as
//! client-go's event spam filter keeps one per object — a Mutex handed over a hundred
//! times a second would otherwise write two Events per handover, more writes than the
//! handover itself. An Event may name a related object (the Permit a grant is about),
//! so events about different claims are different series (a recorder folds events with
//! the same reason, object and related object into one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::metrics::Metrics;

/// Normal Events a subject may record in a burst.
const EVENT_BURST: f64 = 25.0;
/// Normal Events a subject may record per second once its burst is spent.
const EVENTS_PER_SECOND: f64 = 1.0;
/// Subjects whose budget is tracked before full buckets are forgotten.
const EVENT_BUDGET_SUBJECTS: usize = 10_000;

/// Which subject a budget is for: its kind, namespace and name.
type SubjectKey = (String, String, String);

/// A token bucket per subject for its Normal Events.
#[derive(Default)]
pub struct EventBudget {
    by_subject: HashMap<SubjectKey, (f64, Instant)>,
}

impl EventBudget {
    /// Takes one event from `subject`'s bucket; false when it is empty.
    pub fn take(&mut self, subject: &ObjectReference) -> bool {
        let now = Instant::now();
        if self.by_subject.len() >= EVENT_BUDGET_SUBJECTS {
            let full = |(tokens, at): &(f64, Instant)| {
                tokens + now.duration_since(*at).as_secs_f64() * EVENTS_PER_SECOND >= EVENT_BURST
            };
            self.by_subject.retain(|_, bucket| !full(bucket));
        }
        let key = (
            subject.kind.clone().unwrap_or_default(),
            subject.namespace.clone().unwrap_or_default(),
            subject.name.clone().unwrap_or_default(),
        );
        let (tokens, at) = self.by_subject.entry(key).or_insert((EVENT_BURST, now));
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

/// One Event to record on a subject.
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// The Event's reason (`Opened`, `Granted`, …).
    pub reason: &'static str,
    /// What happened, for people.
    pub note: String,
    /// What the controller did (`Reconcile`, `Delete`).
    pub action: &'static str,
    /// The claim it is about, if any.
    pub related: Option<ObjectReference>,
}

/// Records one kind's Events through its recorder, within the per-subject budget.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    budget: Arc<Mutex<EventBudget>>,
    metrics: Arc<Metrics>,
}

impl Events {
    /// Events through `recorder`, counting those left out in `metrics`.
    pub fn new(recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Self {
            recorder,
            budget: Arc::default(),
            metrics,
        }
    }

    /// Records `note` on `subject` now, if a Warning or within the subject's budget
    /// (`kind` labels the count of those left out). Failures are logged, not retried:
    /// Events are best effort, and the next one is recorded normally.
    pub async fn record(&self, kind: &str, subject: &ObjectReference, note: Note) {
        if note.type_ == EventType::Normal
            && !self
                .budget
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(subject)
        {
            self.metrics.event_dropped(kind);
            return;
        }
        let event = Event {
            type_: note.type_,
            reason: note.reason.to_owned(),
            note: Some(note.note),
            action: note.action.to_owned(),
            secondary: note.related,
        };
        if let Err(error) = self.recorder.publish(&event, subject).await {
            tracing::warn!(%error, kind, subject = ?subject.name, "recording event");
        }
    }

    /// Says a subject's phase change: logs it, and records it as an Event — a
    /// Warning when it went wrong — with `reason` and `message`. How every kind's
    /// controller reports its transitions.
    pub async fn transition(
        &self,
        kind: &str,
        subject: &ObjectReference,
        warning: bool,
        reason: &'static str,
        message: String,
    ) {
        tracing::info!(
            kind,
            namespace = subject.namespace.as_deref().unwrap_or_default(),
            name = subject.name.as_deref().unwrap_or_default(),
            reason,
            "{kind} {}: {message}",
            in_words(reason)
        );
        let note = Note {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            note: message,
            action: "Reconcile",
            related: None,
        };
        self.record(kind, subject, note).await;
    }

    /// Records `note` on `subject` in the background (off a handover's critical path).
    pub fn publish(&self, kind: &'static str, subject: ObjectReference, note: Note) {
        let events = self.clone();
        tokio::spawn(async move { events.record(kind, &subject, note).await });
    }
}

/// An Event reason in words for a log line: `TimedOut` → `timed out`.
fn in_words(reason: &str) -> String {
    let mut words = String::with_capacity(reason.len() + 4);
    for (i, c) in reason.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn subject(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Mutex".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn a_reason_reads_as_words_in_the_log() {
        assert_eq!(in_words("Opened"), "opened");
        assert_eq!(in_words("TimedOut"), "timed out");
        assert_eq!(in_words("InvalidSpec"), "invalid spec");
    }

    #[test]
    fn a_subject_spends_its_event_burst_then_waits_for_the_refill() {
        let mut budget = EventBudget::default();
        let burst = EVENT_BURST as usize;
        assert!((0..burst).all(|_| budget.take(&subject("busy"))));
        assert!(!budget.take(&subject("busy")), "the burst is spent");
        assert!(
            budget.take(&subject("quiet")),
            "each subject has its own budget"
        );
        // A second later (as far as the bucket knows) one more is allowed.
        let busy = ("Mutex".into(), "default".into(), "busy".into());
        if let Some((_, at)) = budget.by_subject.get_mut(&busy) {
            *at -= Duration::from_secs_f64(1.0 / EVENTS_PER_SECOND);
        }
        assert!(budget.take(&subject("busy")));
        assert!(!budget.take(&subject("busy")));
    }
}
