//! The shape of every subject kind's answer. A kind's rules (`barrier::rules`,
//! `waitgroup::rules`, `gate::rules`) are one pure function from what was observed to
//! an [`Evaluation`]; the controller only carries it out — the same way for every
//! kind: write the status if it changed, record an Event for the [`PhaseChange`], look
//! again after `requeue_after`, delete the subject when `delete_after` is zero. Every
//! such status ends the same way: [`Lifecycle`].

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// For a phase enum (`phase!(BarrierPhase { Waiting, Open, … } finished: Open | …)`):
/// `as_str` (its name as `status.phase` holds it), `Display`, and `is_finished` — the
/// listed phases are final; any other, an unknown one included, is not (a waiter keeps
/// waiting).
macro_rules! phase {
    ($phase:ident { $($variant:ident),+ $(,)? } finished: $($final:ident)|+) => {
        impl $phase {
            /// The phase's name as it appears in `status.phase`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($phase::$variant => stringify!($variant),)+
                }
            }

            /// Whether the phase is final (an unknown one is not: a waiter keeps waiting).
            pub fn is_finished(self) -> bool {
                matches!(self, $($phase::$final)|+)
            }
        }

        impl std::fmt::Display for $phase {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use phase;

/// For a subject kind whose status flattens [`Lifecycle`]
/// (`lifecycle!(Gate, GateStatus, GatePhase, summary: CONDITION_OPEN)`): the status's
/// `condition(type)` and — naming the condition that says how it stands — `summary()`
/// (that condition's message), and the object's `phase()` (the first phase until the
/// controller has written a status).
macro_rules! lifecycle {
    ($kind:ident, $status:ident, $phase:ident $(, summary: $summary:expr)?) => {
        impl $status {
            /// The condition of the given type, if present.
            pub fn condition(
                &self,
                type_: &str,
            ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
                self.lifecycle.condition(type_)
            }

            $(
            /// How it stands, in words: the message of the condition that says so.
            pub fn summary(&self) -> String {
                self.condition($summary)
                    .map(|c| c.message.clone())
                    .unwrap_or_default()
            }
            )?
        }

        impl $kind {
            /// Its phase: the first one until the controller has written a status.
            pub fn phase(&self) -> $phase {
                self.status.as_ref().map(|s| s.phase).unwrap_or_default()
            }
        }
    };
}
pub(crate) use lifecycle;

/// How every subject kind's status ends — its deadline, when it finished, its
/// conditions and the generation they reflect — flattened into the Barrier's, the
/// WaitGroup's and the Gate's status (the fields stay at the top of `status`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// When it times out: its creation time plus `spec.timeout`. Microsecond precision
    /// (as precise as the API server's `creationTimestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<MicroTime>,

    /// When it last finished (unset while it waits; a Gate's only once it failed or
    /// timed out): `spec.ttlAfterFinished`, where the kind has one, counts from here.
    /// Microsecond precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<MicroTime>,

    /// `Ready` (spec accepted) and the kind's own — `Open` (a Barrier, a Gate) or
    /// `Done` (a WaitGroup) — in the metav1.Condition shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Lifecycle {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A change of phase worth an Event (a barrier opened, a group failed…).
pub trait PhaseChange: Copy + Send + Sync + 'static {
    /// The Event's reason (`Opened`, `Failed`, …).
    fn reason(self) -> &'static str;
    /// Whether the Event is a Warning (something went wrong) rather than Normal.
    fn is_warning(self) -> bool;
}

/// What a kind's rules decided about one subject. `A` is whatever else that kind's
/// rules decide (a WaitGroup's members to expire, whether a Gate still needs its
/// watches); `()` for a kind with nothing more.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation<S, T, A = ()> {
    /// The status the subject should have now.
    pub status: S,
    /// The change of phase from the status as last written, if it is worth an Event.
    pub transition: Option<T>,
    /// How long until the status changes by itself (a deadline, a claim's expiry), if
    /// it can.
    pub requeue_after: Option<Duration>,
    /// How long until the subject is to be deleted (`spec.ttlAfterFinished` after
    /// `status.finishedAt`); zero when that time has come.
    pub delete_after: Option<Duration>,
    /// What else the kind's rules decided.
    pub also: A,
}

/// How long from `now` until `at` (zero once it has passed): what a deadline or a
/// deletion time becomes in an [`Evaluation`].
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// `start + after`, or `None` when that is past the end of representable time (which
/// then behaves as no deadline): a deadline from a creation time and a `spec.timeout`,
/// an expiry from a renewal and a ttl.
pub fn deadline_of(start: Timestamp, after: Duration) -> Option<Timestamp> {
    let after = SignedDuration::try_from(after).ok()?;
    start.checked_add(after).ok().map(to_micros)
}

/// `ts` cut to whole microseconds, all a `MicroTime` (openedAt, deadline) keeps, so the
/// status read back from the API equals the one computed and a reconcile after a status
/// write writes nothing.
pub fn to_micros(ts: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts)
}

/// How long until a finished subject is to be deleted: `spec.ttlAfterFinished`
/// (`ttl_after_finished`, valid) after `status.finishedAt` — the
/// [`Evaluation::delete_after`] of every kind that has both.
pub fn delete_after(
    ttl_after_finished: Option<Duration>,
    finished_at: Option<&MicroTime>,
    now: Timestamp,
) -> Option<Duration> {
    let at = deadline_of(finished_at?.0, ttl_after_finished?)?;
    Some(until(now, at))
}
