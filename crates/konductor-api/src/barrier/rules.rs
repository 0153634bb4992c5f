//! The barrier rules: one pure function from (spec, arrivals, creation time, now,
//! previous status) to the new status and when to look again.
//!
//! Every part of Konductor that needs to know what a barrier's phase is — the
//! controller, and tests that check it — calls [`evaluate`]; nothing else decides.
//! The rules (also in `docs/semantics.md`), with `required = quorum or expected` and
//! `deadline = creation + timeout`:
//!
//! 1. **Open is sticky.** Once open, a barrier stays open whatever happens to its
//!    arrivals or spec; `openedAt` is set once.
//! 2. **Invalid spec → Failed** (`Ready=False`, reason `InvalidSpec`): expected < 1,
//!    quorum < 1 or > expected, or a timeout that is not a Go duration.
//! 3. **Timeout stays** while the deadline is in the past: arrivals noticed after the
//!    barrier timed out do not open it, even ones stamped before the deadline. Raising
//!    `spec.timeout` so that the deadline is in the future again revives it (back to
//!    Waiting, or straight to Open).
//! 4. **Open** when at least `required` distinct holders arrived successfully before
//!    the deadline (an arrival exactly at the deadline is late).
//! 5. **Failed** when the failures leave too few possible arrivals:
//!    `expected − failures < required`.
//! 6. **Timeout** once `now ≥ deadline`: exactly at the deadline, not a moment before.
//! 7. Otherwise **Waiting**, looking again exactly at the deadline.
//! 8. **Finished barriers expire.** `finishedAt` is when the barrier last became Open
//!    (its `openedAt`), Timeout (its deadline) or Failed; with `spec.ttlAfterFinished`
//!    it is to be deleted exactly that long after `finishedAt`.
//!
//! A holder counts once however often it arrives; a holder with any successful arrival
//! counts as arrived (its failure reports are ignored), otherwise as failed. Late
//! arrivals are still listed in `status.arrivals`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use crate::barrier::arrival::Outcome;
use crate::barrier::{
    BarrierPhase, BarrierSpec, BarrierStatus, CONDITION_OPEN, CONDITION_READY, ReportedFailure,
};
use crate::conditions::{condition, ready};
use crate::duration::parse_spec_field;
use crate::evaluation::{Lifecycle, PhaseChange, deadline_of, delete_after, to_micros, until};

/// Reason of the `Ready` condition when the spec is accepted (as in the seed).
pub const REASON_READY: &str = "BarrierReady";
pub use crate::conditions::REASON_INVALID_SPEC;
/// Reason of the `Open` condition once open.
pub const REASON_OPENED: &str = "Opened";
/// Reason of the `Open` condition while waiting.
pub const REASON_WAITING: &str = "Waiting";
/// Reason of the `Open` condition after the deadline passed.
pub const REASON_TIMED_OUT: &str = "TimedOut";
/// Reason of the `Open` condition when the barrier can never open.
pub const REASON_FAILED: &str = "Failed";

/// One arrival as the rules see it: who, with what outcome, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrivalRecord {
    /// The arriving process.
    pub holder: String,
    /// Whether it arrived or reported failure.
    pub outcome: Outcome,
    /// Its message, for failures.
    pub message: Option<String>,
    /// When the API server recorded it (its `creationTimestamp`); `None` means "now".
    pub arrived_at: Option<Timestamp>,
}

impl ArrivalRecord {
    /// A successful arrival of `holder` at `arrived_at`.
    pub fn succeeded(holder: impl Into<String>, arrived_at: Timestamp) -> Self {
        Self {
            holder: holder.into(),
            outcome: Outcome::Succeeded,
            message: None,
            arrived_at: Some(arrived_at),
        }
    }

    /// A failure reported by `holder` at `arrived_at`.
    pub fn failed(holder: impl Into<String>, arrived_at: Timestamp) -> Self {
        Self {
            holder: holder.into(),
            outcome: Outcome::Failed,
            message: None,
            arrived_at: Some(arrived_at),
        }
    }
}

/// Everything the rules need to know about one barrier at one moment.
#[derive(Clone, Debug)]
pub struct BarrierInput<'a> {
    /// The barrier's spec.
    pub spec: &'a BarrierSpec,
    /// `metadata.generation`, copied into `observedGeneration`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`: the deadline counts from here.
    pub created_at: Timestamp,
    /// Every arrival at the barrier, in any order, duplicates allowed.
    pub arrivals: &'a [ArrivalRecord],
    /// The status as last written, if any: Open and Timeout are sticky through it, and
    /// condition transition times and `openedAt` are kept from it.
    pub previous: Option<&'a BarrierStatus>,
    /// The current time.
    pub now: Timestamp,
}

/// A phase change worth telling users about (the controller records it as an Event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The barrier opened.
    Opened,
    /// The deadline passed before enough arrivals.
    TimedOut,
    /// Failures made the quorum unreachable.
    Failed,
    /// The spec became invalid.
    InvalidSpec,
    /// A timed-out or failed barrier is waiting again (its spec was changed).
    Revived,
}

impl PhaseChange for Transition {
    fn is_warning(self) -> bool {
        !matches!(self, Transition::Opened | Transition::Revived)
    }

    fn reason(self) -> &'static str {
        match self {
            Transition::Opened => "Opened",
            Transition::TimedOut => "TimedOut",
            Transition::Failed => "Failed",
            Transition::InvalidSpec => "InvalidSpec",
            Transition::Revived => "Revived",
        }
    }
}

/// The outcome of [`evaluate`]: the deadline is when the status changes by itself.
pub type Evaluation = crate::evaluation::Evaluation<BarrierStatus, Transition>;

/// A spec that passed validation, with its derived values.
struct ValidSpec {
    expected: i32,
    required: i32,
    timeout: Option<Duration>,
    ttl_after_finished: Option<Duration>,
}

/// Checks a spec against the same rules the CRD schema enforces, so a barrier that
/// slipped past an API server without validation is reported instead of misbehaving.
/// The error message names the offending field.
pub fn validate_spec(spec: &BarrierSpec) -> Result<(), String> {
    check_spec(spec).map(|_| ())
}

fn check_spec(spec: &BarrierSpec) -> Result<ValidSpec, String> {
    if spec.expected < 1 {
        return Err(format!(
            "spec.expected must be at least 1, got {}",
            spec.expected
        ));
    }
    if let Some(quorum) = spec.quorum {
        if quorum < 1 {
            return Err(format!("spec.quorum must be at least 1, got {quorum}"));
        }
        if quorum > spec.expected {
            return Err(format!(
                "spec.quorum ({quorum}) must not be greater than spec.expected ({})",
                spec.expected
            ));
        }
    }
    let duration = parse_spec_field;
    let timeout = duration(spec.timeout.as_deref(), "timeout")?;
    let ttl_after_finished = duration(spec.ttl_after_finished.as_deref(), "ttlAfterFinished")?;
    Ok(ValidSpec {
        expected: spec.expected,
        required: spec.required(),
        timeout,
        ttl_after_finished,
    })
}

/// Arrivals folded per holder.
#[derive(Default)]
struct Tally {
    /// Successful holders with their earliest arrival time, in arrival order.
    arrived: Vec<(Timestamp, String)>,
    /// Holders with only failure reports, with the latest message, in report order.
    failures: Vec<(Timestamp, ReportedFailure)>,
}

impl Tally {
    fn from_records(records: &[ArrivalRecord], now: Timestamp) -> Self {
        // Per holder: earliest success, or else the latest failure.
        let mut successes: BTreeMap<&str, Timestamp> = BTreeMap::new();
        let mut failures: BTreeMap<&str, (Timestamp, Option<&str>)> = BTreeMap::new();
        for record in records {
            let at = record.arrived_at.unwrap_or(now);
            match record.outcome {
                Outcome::Succeeded => {
                    let first = successes.entry(&record.holder).or_insert(at);
                    *first = (*first).min(at);
                }
                // A newer client's outcome this version cannot read counts as neither.
                Outcome::Unknown => {}
                Outcome::Failed => {
                    let latest = failures
                        .entry(&record.holder)
                        .or_insert((at, record.message.as_deref()));
                    if at >= latest.0 {
                        *latest = (at, record.message.as_deref());
                    }
                }
            }
        }
        let mut arrived: Vec<(Timestamp, String)> = successes
            .into_iter()
            .map(|(holder, at)| (at, holder.to_owned()))
            .collect();
        arrived.sort();
        let mut failed: Vec<(Timestamp, ReportedFailure)> = failures
            .into_iter()
            .filter(|(holder, _)| !arrived.iter().any(|(_, h)| h == holder))
            .map(|(holder, (at, message))| {
                let failure = ReportedFailure {
                    holder: holder.to_owned(),
                    message: message.map(str::to_owned),
                };
                (at, failure)
            })
            .collect();
        failed.sort_by(|a, b| (a.0, &a.1.holder).cmp(&(b.0, &b.1.holder)));
        Tally {
            arrived,
            failures: failed,
        }
    }

    /// Successful arrivals strictly before `deadline` (all of them without one).
    fn arrived_before(&self, deadline: Option<Timestamp>) -> i32 {
        let count = match deadline {
            Some(deadline) => self.arrived.iter().filter(|(at, _)| *at < deadline).count(),
            None => self.arrived.len(),
        };
        saturating_i32(count)
    }
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Computes a barrier's status from its spec, arrivals, creation time and the previous
/// status, at time `now`. Pure and deterministic: same input, same output.
///
/// ```
/// use konductor_api::{BarrierSpec, BarrierPhase};
/// use konductor_api::barrier::rules::{evaluate, ArrivalRecord, BarrierInput};
/// use k8s_openapi::jiff::Timestamp;
///
/// let created = Timestamp::from_second(1_700_000_000).unwrap();
/// let spec = BarrierSpec::new(2).with_timeout("1m");
/// let arrivals = [ArrivalRecord::succeeded("a", created), ArrivalRecord::succeeded("b", created)];
/// let input = BarrierInput { spec: &spec, generation: Some(1), created_at: created,
///     arrivals: &arrivals, previous: None, now: created };
/// assert_eq!(evaluate(&input).status.phase, BarrierPhase::Open);
/// ```
pub fn evaluate(input: &BarrierInput<'_>) -> Evaluation {
    let now = input.now;
    let previous = input.previous;
    let previous_phase = previous.map(|s| s.phase);
    let tally = Tally::from_records(input.arrivals, now);
    let checked = check_spec(input.spec);

    let deadline = checked
        .as_ref()
        .ok()
        .and_then(|spec| spec.timeout)
        .and_then(|timeout| deadline_of(input.created_at, timeout));
    let arrived = saturating_i32(tally.arrived.len());
    let failed = saturating_i32(tally.failures.len());

    let (phase, open_reason, open_message) = match &checked {
        _ if previous_phase == Some(BarrierPhase::Open) => (
            BarrierPhase::Open,
            REASON_OPENED,
            previous
                .and_then(|s| s.condition(CONDITION_OPEN))
                .filter(|c| c.status == "True")
                .map(|c| c.message.clone())
                .unwrap_or_else(|| format!("opened; {arrived} arrived")),
        ),
        Err(message) => (BarrierPhase::Failed, REASON_FAILED, message.clone()),
        Ok(spec) => decide(spec, &tally, deadline, previous_phase, now),
    };

    let opened_at = match phase {
        BarrierPhase::Open => Some(
            previous
                .and_then(|s| s.opened_at.clone())
                .unwrap_or(MicroTime(to_micros(now))),
        ),
        _ => None,
    };

    // Rule 8: a finished barrier records when it finished, kept while its phase stays.
    let finished_at = match phase {
        BarrierPhase::Waiting | BarrierPhase::Unknown => None,
        _ if previous_phase == Some(phase)
            && previous.is_some_and(|s| s.lifecycle.finished_at.is_some()) =>
        {
            previous.and_then(|s| s.lifecycle.finished_at.clone())
        }
        BarrierPhase::Open => opened_at.clone(),
        BarrierPhase::Timeout => deadline.map(MicroTime),
        BarrierPhase::Failed => Some(MicroTime(to_micros(now))),
    };
    let delete_after = delete_after(
        checked
            .as_ref()
            .ok()
            .and_then(|spec| spec.ttl_after_finished),
        finished_at.as_ref(),
        now,
    );

    let accepted = match &checked {
        Ok(spec) => Ok((
            REASON_READY,
            format!(
                "spec accepted: opens at {} of {} arrivals{}",
                spec.required,
                spec.expected,
                match &input.spec.timeout {
                    Some(t) => format!(", times out after {t}"),
                    None => String::new(),
                }
            ),
        )),
        Err(why) => Err(why.as_str()),
    };
    let open_status = phase == BarrierPhase::Open;
    let previous_conditions = previous.map_or(&[][..], |p| &p.lifecycle.conditions[..]);
    let conditions = vec![
        ready(previous_conditions, accepted, input.generation, now),
        condition(
            previous_conditions,
            CONDITION_OPEN,
            open_status,
            open_reason,
            open_message,
            input.generation,
            now,
        ),
    ];

    let status = BarrierStatus {
        phase,
        arrived,
        arrivals: tally.arrived.into_iter().map(|(_, h)| h).collect(),
        failed,
        failures: tally.failures.into_iter().map(|(_, f)| f).collect(),
        opened_at,
        lifecycle: Lifecycle {
            deadline: deadline.map(MicroTime),
            finished_at,
            conditions,
            observed_generation: input.generation,
        },
    };

    let requeue_after = match (phase, deadline) {
        (BarrierPhase::Waiting, Some(deadline)) => Some(until(now, deadline)),
        _ => None,
    };
    let transition = transition(previous, &status);
    Evaluation {
        status,
        requeue_after,
        transition,
        delete_after,
        also: (),
    }
}

/// Rules 3–7 for a valid spec that is not already open: the phase and the `Open`
/// condition's reason and message.
fn decide(
    spec: &ValidSpec,
    tally: &Tally,
    deadline: Option<Timestamp>,
    previous_phase: Option<BarrierPhase>,
    now: Timestamp,
) -> (BarrierPhase, &'static str, String) {
    let required = spec.required;
    let in_time = tally.arrived_before(deadline);
    let failed = saturating_i32(tally.failures.len());
    let deadline_passed = deadline.is_some_and(|d| now >= d);
    let deadline_text = || deadline.map(|d| d.to_string()).unwrap_or_default();

    let timed_out = (
        BarrierPhase::Timeout,
        REASON_TIMED_OUT,
        format!(
            "deadline {} passed with {in_time} of {required} required arrivals",
            deadline_text()
        ),
    );
    if previous_phase == Some(BarrierPhase::Timeout) && deadline_passed {
        return timed_out;
    }
    if in_time >= required {
        return (
            BarrierPhase::Open,
            REASON_OPENED,
            format!(
                "{in_time} of {required} required arrivals (expected {})",
                spec.expected
            ),
        );
    }
    let possible = spec.expected.saturating_sub(failed);
    if possible < required {
        return (
            BarrierPhase::Failed,
            REASON_FAILED,
            format!(
                "{failed} of {} expected processes failed, so at most {possible} can arrive but {required} are required",
                spec.expected
            ),
        );
    }
    if deadline_passed {
        return timed_out;
    }
    (
        BarrierPhase::Waiting,
        REASON_WAITING,
        format!(
            "{in_time} of {required} required arrivals (expected {})",
            spec.expected
        ),
    )
}

/// The reportable change between the previous status and the new one.
fn transition(previous: Option<&BarrierStatus>, next: &BarrierStatus) -> Option<Transition> {
    let ready = |s: &BarrierStatus| s.condition(CONDITION_READY).map(|c| c.status == "True");
    let was_invalid = previous.and_then(ready) == Some(false);
    let is_invalid = ready(next) == Some(false);
    let previous_phase = previous.map(|s| s.phase).unwrap_or_default();
    if is_invalid && !was_invalid && next.phase == BarrierPhase::Failed {
        return Some(Transition::InvalidSpec);
    }
    if previous_phase == next.phase {
        return None;
    }
    Some(match next.phase {
        BarrierPhase::Open => Transition::Opened,
        BarrierPhase::Timeout => Transition::TimedOut,
        BarrierPhase::Failed if is_invalid => Transition::InvalidSpec,
        BarrierPhase::Failed => Transition::Failed,
        BarrierPhase::Waiting => Transition::Revived,
        BarrierPhase::Unknown => return None,
    })
}

#[cfg(test)]
mod tests;
