//! The WaitGroup rules: one pure function from (spec, members, creation time, now,
//! previous status) to the new status, the members to expire and when to look again.
//!
//! The rules (also in `docs/waitgroup.md`), with `complete = sealed or added ≥
//! expected` and `deadline = creation + timeout`:
//!
//! 1. **A member counts once**, by ID, however often it is added or marked done. Its
//!    state is the strongest of its records: expired, else failed, else done, else
//!    pending.
//! 2. **Done latches.** Once Done the counts are frozen — the status is the record of
//!    how the group finished — and members added afterwards are only counted as `late`.
//! 3. **Invalid spec → Failed** (`Ready=False`): a duration that does not parse, a
//!    memberTTL under 2s, negative counts.
//! 4. **Failed** as soon as more than `maxFailed` members failed — at once, whether or
//!    not the group is complete, so nobody waits for a group that cannot be Done.
//! 5. **Done** when complete, nothing pending, and at most `maxFailed`
//!    failed. A new group that is not sealed and has no `expected` is never complete,
//!    so it is not Done with nothing added (the original WaitGroup was).
//! 6. **Timeout** once `now ≥ deadline` while still Waiting.
//! 7. **Held members expire.** A member held by a worker (`spec.holder`), not finished,
//!    whose renewal the controller has not seen for `memberTTL` (on its own clock) is
//!    to be expired ([`Expire`]); the controller marks it, and from then on
//!    it counts as failed (rule 1), whatever its worker reports later. Only while the
//!    group is Waiting.
//! 8. Failed and Timeout are final too, but their counts follow the members (workers
//!    still finishing); the same members in any order give the same status.
//! 9. **Finished groups expire.** With `spec.ttlAfterFinished` a group is deleted that
//!    long after `finishedAt`.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use super::{
    AttemptResult, CONDITION_DONE, FAILURES_LISTED, MemberAttempt, MemberFailure, MemberOutcome,
    PENDING_LISTED, Standing, WaitGroupMember, WaitGroupPhase, WaitGroupSpec, WaitGroupStatus,
};
use crate::barrier::arrival::Outcome;
use crate::conditions::{condition, ready};
use crate::duration::parse_spec_field;
use crate::evaluation::{PhaseChange, deadline_of, delete_after, to_micros, until};

/// Reason of the `Done` condition while waiting.
pub const REASON_WAITING: &str = "Waiting";
/// Reason of the `Done` condition once done.
pub const REASON_DONE: &str = "Done";
/// Reason of the `Done` condition once too many members failed.
pub const REASON_FAILED: &str = "MembersFailed";
/// Reason of the `Done` condition after the deadline passed.
pub const REASON_TIMED_OUT: &str = "TimedOut";
pub use crate::conditions::REASON_INVALID_SPEC;

/// How many failures the `Done` condition's message names.
const FAILURES_NAMED: usize = 3;

/// One member object as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's ID (`spec.member`).
    pub member: String,
    /// Who holds it (`spec.holder`).
    pub holder: Option<String>,
    /// Its current attempt's outcome, once done.
    pub outcome: Option<MemberOutcome>,
    /// Whether the controller expired its current attempt.
    pub expired: bool,
    /// Whether its holder said its work was interrupted (`spec.interrupting`).
    pub interrupting: bool,
    /// Its earlier attempts (`spec.attempts`).
    pub attempts: Vec<MemberAttempt>,
    /// When the controller last saw its holder renew it (or take it), on the
    /// controller's clock; `None` if nobody holds it.
    pub renewal_seen_at: Option<Timestamp>,
    /// When it was added (its `creationTimestamp`), to list the earliest pending first.
    pub added_at: Option<Timestamp>,
}

impl MemberRecord {
    /// A member `id` added at `added_at`, not done.
    pub fn pending(id: impl Into<String>, added_at: Timestamp) -> Self {
        Self {
            member: id.into(),
            holder: None,
            outcome: None,
            expired: false,
            interrupting: false,
            attempts: Vec::new(),
            renewal_seen_at: None,
            added_at: Some(added_at),
        }
    }

    /// The record of `member`, its renewal seen at `renewal_seen_at`.
    pub fn of(member: &WaitGroupMember, renewal_seen_at: Option<Timestamp>) -> Self {
        Self {
            member: member.spec.member.clone(),
            holder: member.spec.holder.clone(),
            outcome: member.spec.outcome.clone(),
            expired: member.expired_now(),
            interrupting: member.spec.interrupting,
            attempts: member.spec.attempts.clone(),
            renewal_seen_at,
            added_at: member.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    /// The same member with `outcome`.
    #[must_use]
    pub fn with_outcome(mut self, outcome: MemberOutcome) -> Self {
        self.outcome = Some(outcome);
        self
    }
}

/// Everything the rules need to know about one WaitGroup at one moment.
#[derive(Clone, Debug)]
pub struct WaitGroupInput<'a> {
    /// The group's spec.
    pub spec: &'a WaitGroupSpec,
    /// `metadata.generation`, copied into `observedGeneration`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`: the deadline counts from here.
    pub created_at: Timestamp,
    /// Every member object of the group, in any order.
    pub members: &'a [&'a MemberRecord],
    /// The status as last written, if any.
    pub previous: Option<&'a WaitGroupStatus>,
    /// The current time (the controller's clock).
    pub now: Timestamp,
}

/// A phase change worth telling users about (the controller records it as an Event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Every member finished within `maxFailed`.
    Done,
    /// More than `maxFailed` members failed.
    Failed,
    /// The deadline passed first.
    TimedOut,
    /// The spec is invalid.
    InvalidSpec,
}

impl PhaseChange for Transition {
    fn is_warning(self) -> bool {
        self != Transition::Done
    }

    fn reason(self) -> &'static str {
        match self {
            Transition::Done => "Done",
            Transition::Failed => "Failed",
            Transition::TimedOut => "TimedOut",
            Transition::InvalidSpec => "InvalidSpec",
        }
    }
}

/// The outcome of [`evaluate`]: the deadline or a member's expiry is when the status
/// changes by itself; [`Expire`] the members to expire now.
pub type Evaluation = crate::evaluation::Evaluation<WaitGroupStatus, Transition, Expire>;

/// Member IDs to expire now (rule 7).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expire(pub Vec<String>);

/// Where a member stands (see [`Standing`]). Interruptions beyond the group's `maxInterruptions` count as
/// failures; the member fails for good once `memberAttempts` attempts failed.
pub fn standing(record: &MemberRecord, group: &WaitGroupSpec) -> Standing {
    let expired = record.expired;
    // An expiry stands whatever the holder reports afterwards.
    let ended = if expired {
        Some(MemberAttempt {
            result: if record.interrupting {
                AttemptResult::Interrupted
            } else {
                AttemptResult::Failed
            },
            holder: record.holder.clone(),
            exit_code: None,
            message: Some(if record.interrupting {
                "interrupted, and its worker stopped renewing it before it withdrew".to_owned()
            } else {
                "expired: its worker stopped renewing it before it was done".to_owned()
            }),
            finished_at: None,
        })
    } else {
        match &record.outcome {
            Some(outcome) if outcome.result == Outcome::Succeeded => return Standing::Done,
            Some(outcome) => Some(MemberAttempt {
                result: AttemptResult::Failed,
                holder: record.holder.clone(),
                exit_code: outcome.exit_code,
                message: outcome.message.clone(),
                finished_at: None,
            }),
            None => None,
        }
    };
    let mut interruptions = 0;
    let mut failures = 0;
    let mut last_failure = None;
    for attempt in record.attempts.iter().chain(ended.as_ref()) {
        let failed = match attempt.result {
            AttemptResult::Interrupted => {
                interruptions += 1;
                interruptions > group.max_interruptions
            }
            AttemptResult::Failed | AttemptResult::Unknown => true,
        };
        if failed {
            failures += 1;
            last_failure = Some(attempt);
        }
    }
    if failures >= group.member_attempts.max(1)
        && let Some(last) = last_failure
    {
        let excess = last.result == AttemptResult::Interrupted;
        return Standing::Failed(MemberFailure {
            member: record.member.clone(),
            message: Some(match (&last.message, excess) {
                (_, true) => format!(
                    "interrupted {interruptions} times, more than maxInterruptions {}: counted as a failure",
                    group.max_interruptions
                ),
                (Some(message), false) => message.clone(),
                (None, false) => "failed".to_owned(),
            }),
            exit_code: last.exit_code,
            expired: expired && ended.as_ref().is_some_and(|e| std::ptr::eq(e, last)),
            attempts: failures,
        });
    }
    match ended {
        Some(ended) => Standing::Retry { ended },
        None => Standing::Pending,
    }
}

/// Where `member` stands under `group`'s attempt rules.
pub fn standing_of(member: &WaitGroupMember, group: &WaitGroupSpec) -> Standing {
    standing(&MemberRecord::of(member, None), group)
}

/// A spec that passed validation, with its parsed durations.
struct ValidSpec {
    member_ttl: Option<Duration>,
    timeout: Option<Duration>,
    ttl_after_finished: Option<Duration>,
}

/// Checks a spec against the rules the CRD schema enforces, naming the field at fault.
pub fn validate_spec(spec: &WaitGroupSpec) -> Result<(), String> {
    check_spec(spec).map(|_| ())
}

fn check_spec(spec: &WaitGroupSpec) -> Result<ValidSpec, String> {
    if let Some(expected) = spec.expected
        && expected < 1
    {
        return Err(format!("spec.expected must be at least 1, got {expected}"));
    }
    if spec.max_failed < 0 {
        return Err(format!(
            "spec.maxFailed must not be negative, got {}",
            spec.max_failed
        ));
    }
    if !(1..=super::MAX_ATTEMPTS).contains(&spec.member_attempts) {
        return Err(format!(
            "spec.memberAttempts must be between 1 and {}, got {}",
            super::MAX_ATTEMPTS,
            spec.member_attempts
        ));
    }
    if !(0..=super::MAX_ATTEMPTS).contains(&spec.max_interruptions) {
        return Err(format!(
            "spec.maxInterruptions must be between 0 and {}, got {}",
            super::MAX_ATTEMPTS,
            spec.max_interruptions
        ));
    }
    let duration = parse_spec_field;
    let member_ttl = duration(spec.member_ttl.as_deref(), "memberTTL")?;
    if let Some(ttl) = member_ttl
        && ttl < crate::locks::MIN_TTL
    {
        return Err(format!(
            "spec.memberTTL must be at least 2s, got {}",
            spec.member_ttl.as_deref().unwrap_or_default()
        ));
    }
    Ok(ValidSpec {
        member_ttl,
        timeout: duration(spec.timeout.as_deref(), "timeout")?,
        ttl_after_finished: duration(spec.ttl_after_finished.as_deref(), "ttlAfterFinished")?,
    })
}

/// Where one member stands, its records folded (rule 1).
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Done,
    Failed(MemberFailure),
}

/// The group's members folded by ID. O(members): a reconcile of a large group runs
/// this on every change, so nothing here sorts or clones every member.
struct Tally {
    /// How many members are pending.
    pending: usize,
    /// The first [`PENDING_LISTED`] pending members, earliest added first.
    first_pending: Vec<String>,
    done: usize,
    /// Failed members, by ID.
    failures: Vec<MemberFailure>,
}

impl Tally {
    fn of(members: &[&MemberRecord], spec: &WaitGroupSpec) -> Self {
        let mut by_id: HashMap<&str, (State, Option<Timestamp>)> =
            HashMap::with_capacity(members.len());
        for record in members {
            let state = state_of(record, spec);
            let entry = by_id
                .entry(&record.member)
                .or_insert((State::Pending, record.added_at));
            if strength(&state) > strength(&entry.0) {
                entry.0 = state;
            }
            entry.1 = match (entry.1, record.added_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut pending: Vec<(Option<Timestamp>, &str)> = Vec::new();
        let mut done = 0;
        let mut failures = Vec::new();
        for (id, (state, added_at)) in by_id {
            match state {
                State::Pending => pending.push((added_at, id)),
                State::Done => done += 1,
                State::Failed(failure) => failures.push(failure),
            }
        }
        failures.sort_by(|a, b| a.member.cmp(&b.member));
        let count = pending.len();
        if count > PENDING_LISTED {
            pending.select_nth_unstable(PENDING_LISTED - 1);
            pending.truncate(PENDING_LISTED);
        }
        pending.sort_unstable();
        Tally {
            pending: count,
            first_pending: pending.into_iter().map(|(_, id)| id.to_owned()).collect(),
            done,
            failures,
        }
    }

    fn added(&self) -> usize {
        self.pending + self.done + self.failures.len()
    }
}

fn state_of(record: &MemberRecord, spec: &WaitGroupSpec) -> State {
    match standing(record, spec) {
        Standing::Pending | Standing::Retry { .. } => State::Pending,
        Standing::Done => State::Done,
        Standing::Failed(failure) => State::Failed(failure),
    }
}

/// Failed over done over pending; among failures the expired one wins.
fn strength(state: &State) -> u8 {
    match state {
        State::Pending => 0,
        State::Done => 1,
        State::Failed(f) if !f.expired => 2,
        State::Failed(_) => 3,
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Computes a WaitGroup's status from its spec, members, creation time and previous
/// status at `now`. Pure and deterministic: same input, same output.
///
/// ```
/// use konductor_api::waitgroup::{MemberOutcome, WaitGroupPhase, WaitGroupSpec};
/// use konductor_api::waitgroup::rules::{evaluate, MemberRecord, WaitGroupInput};
/// use k8s_openapi::jiff::Timestamp;
///
/// let now = Timestamp::from_second(1_700_000_000).unwrap();
/// let spec = WaitGroupSpec { sealed: true, ..Default::default() };
/// let member = MemberRecord::pending("a", now).with_outcome(MemberOutcome::succeeded(Some(0)));
/// let input = WaitGroupInput { spec: &spec, generation: Some(1), created_at: now,
///     members: &[&member], previous: None, now };
/// assert_eq!(evaluate(&input).status.phase, WaitGroupPhase::Done);
/// ```
pub fn evaluate(input: &WaitGroupInput<'_>) -> Evaluation {
    let now = input.now;
    let previous = input.previous;
    let previous_phase = previous.map(|s| s.phase).unwrap_or_default();
    let checked = check_spec(input.spec);
    let deadline = checked
        .as_ref()
        .ok()
        .and_then(|spec| spec.timeout)
        .and_then(|timeout| deadline_of(input.created_at, timeout));
    let tally = Tally::of(input.members, input.spec);

    let mut status = match previous {
        // Rule 2: Done latches, counts and all; later members are late.
        Some(previous) if previous_phase == WaitGroupPhase::Done => WaitGroupStatus {
            late: count(tally.added()).saturating_sub(previous.added).max(0),
            ..previous.clone()
        },
        _ => counted(input.spec, &checked, &tally, deadline, previous_phase, now),
    };
    status.lifecycle.deadline = deadline.map(MicroTime);
    status.lifecycle.observed_generation = input.generation;
    status.lifecycle.finished_at = match status.phase {
        WaitGroupPhase::Waiting => None,
        _ if previous_phase == status.phase => {
            previous.and_then(|p| p.lifecycle.finished_at.clone())
        }
        WaitGroupPhase::Timeout => deadline.map(MicroTime),
        _ => Some(MicroTime(to_micros(now))),
    };
    status.lifecycle.conditions = conditions(input, &checked, &status);

    // Rule 7: held members not renewed for the ttl, while the group waits.
    let mut expire = Vec::new();
    let mut next_expiry: Option<Timestamp> = None;
    if let (
        Ok(ValidSpec {
            member_ttl: Some(ttl),
            ..
        }),
        WaitGroupPhase::Waiting,
    ) = (&checked, status.phase)
    {
        for record in input.members {
            let Some(seen) = record.renewal_seen_at else {
                continue;
            };
            if standing(record, input.spec) != Standing::Pending {
                continue;
            }
            let Some(expires_at) = deadline_of(seen, *ttl) else {
                continue;
            };
            if now >= expires_at {
                expire.push(record.member.clone());
            } else {
                next_expiry = Some(next_expiry.map_or(expires_at, |at| at.min(expires_at)));
            }
        }
        expire.sort();
        expire.dedup();
    }

    let delete_after = delete_after(
        checked
            .as_ref()
            .ok()
            .and_then(|spec| spec.ttl_after_finished),
        status.lifecycle.finished_at.as_ref(),
        now,
    );
    let requeue_after = match status.phase {
        WaitGroupPhase::Waiting => [deadline, next_expiry]
            .into_iter()
            .flatten()
            .min()
            .map(|at| until(now, at)),
        _ => None,
    };
    let transition = (status.phase != previous_phase).then(|| match status.phase {
        WaitGroupPhase::Done => Transition::Done,
        WaitGroupPhase::Timeout => Transition::TimedOut,
        _ if checked.is_err() => Transition::InvalidSpec,
        _ => Transition::Failed,
    });
    Evaluation {
        status,
        requeue_after,
        transition,
        delete_after,
        also: Expire(expire),
    }
}

/// The status of a group that is not (yet) Done: counts from the members, and the
/// phase by rules 3–6 (Failed and Timeout being final).
fn counted(
    spec: &WaitGroupSpec,
    checked: &Result<ValidSpec, String>,
    tally: &Tally,
    deadline: Option<Timestamp>,
    previous_phase: WaitGroupPhase,
    now: Timestamp,
) -> WaitGroupStatus {
    let (added, done, failed) = (
        count(tally.added()),
        count(tally.done),
        count(tally.failures.len()),
    );
    let complete = spec.sealed || spec.expected.is_some_and(|expected| added >= expected);
    let phase = if checked.is_err() {
        WaitGroupPhase::Failed
    } else if previous_phase.is_finished() {
        previous_phase
    } else if failed > spec.max_failed {
        WaitGroupPhase::Failed
    } else if complete && tally.pending == 0 {
        WaitGroupPhase::Done
    } else if deadline.is_some_and(|deadline| now >= deadline) {
        WaitGroupPhase::Timeout
    } else {
        WaitGroupPhase::Waiting
    };
    WaitGroupStatus {
        phase,
        added,
        done,
        failed,
        counter: count(tally.pending),
        pending: tally.first_pending.clone(),
        failures: tally
            .failures
            .iter()
            .take(FAILURES_LISTED)
            .cloned()
            .collect(),
        ..WaitGroupStatus::default()
    }
}

/// The `Ready` and `Done` conditions for `status`.
fn conditions(
    input: &WaitGroupInput<'_>,
    checked: &Result<ValidSpec, String>,
    status: &WaitGroupStatus,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let previous = input
        .previous
        .map_or(&[][..], |p| &p.lifecycle.conditions[..]);
    let spec = input.spec;
    if status.phase == WaitGroupPhase::Done
        && input
            .previous
            .is_some_and(|p| p.phase == WaitGroupPhase::Done)
    {
        // Latched: the conditions say how it finished.
        return previous.to_vec();
    }
    let accepted = match checked {
        Ok(_) => Ok((
            "SpecAccepted",
            format!(
                "spec accepted: done when {}, with at most {} failed{}",
                match spec.expected {
                    Some(n) =>
                        format!("{n} members are added (or it is sealed) and all are finished"),
                    None => "sealed and every member is finished".to_owned(),
                },
                spec.max_failed,
                spec.timeout
                    .as_deref()
                    .map(|t| format!("; times out after {t}"))
                    .unwrap_or_default()
            ),
        )),
        Err(why) => Err(why.as_str()),
    };
    let (reason, message) = match (status.phase, checked) {
        (WaitGroupPhase::Failed, Err(why)) => (REASON_INVALID_SPEC, why.clone()),
        (WaitGroupPhase::Failed, Ok(_)) => (REASON_FAILED, failed_message(spec, status)),
        (WaitGroupPhase::Done, _) => (
            REASON_DONE,
            format!(
                "all {} members finished: {} done, {} failed (maxFailed {})",
                status.added, status.done, status.failed, spec.max_failed
            ),
        ),
        (WaitGroupPhase::Timeout, _) => (
            REASON_TIMED_OUT,
            format!(
                "the deadline passed with {} of {} members pending{}",
                status.counter,
                status.added,
                pending_names(status)
            ),
        ),
        (WaitGroupPhase::Waiting | WaitGroupPhase::Unknown, _) => {
            (REASON_WAITING, waiting_message(spec, status))
        }
    };
    vec![
        ready(previous, accepted, input.generation, input.now),
        condition(
            previous,
            CONDITION_DONE,
            status.phase == WaitGroupPhase::Done,
            reason,
            message,
            input.generation,
            input.now,
        ),
    ]
}

fn failed_message(spec: &WaitGroupSpec, status: &WaitGroupStatus) -> String {
    let named: Vec<String> = status
        .failures
        .iter()
        .take(FAILURES_NAMED)
        .map(|f| {
            let why = match (&f.message, f.exit_code) {
                (Some(message), _) => message.clone(),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "failed".to_owned(),
            };
            format!("{}: {why}", f.member)
        })
        .collect();
    let more = status.failed - count(named.len());
    format!(
        "{} failed, more than maxFailed {}: {}{}",
        members(status.failed),
        spec.max_failed,
        named.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    )
}

/// `1 member`, `3 members`.
fn members(n: i32) -> String {
    if n == 1 {
        "1 member".to_owned()
    } else {
        format!("{n} members")
    }
}

fn waiting_message(spec: &WaitGroupSpec, status: &WaitGroupStatus) -> String {
    let complete = spec.sealed || spec.expected.is_some_and(|e| status.added >= e);
    if status.added == 0 {
        return match spec.expected {
            Some(n) => format!("nothing added yet; waiting for {n} members"),
            None => "nothing added yet; waiting for members and the seal".to_owned(),
        };
    }
    let incomplete = match spec.expected {
        _ if complete => String::new(),
        Some(n) => format!("; {} of {n} members added", status.added),
        None => "; not sealed (more members may come)".to_owned(),
    };
    format!(
        "{} of {} members pending, {} done, {} failed{incomplete}{}",
        status.counter,
        status.added,
        status.done,
        status.failed,
        pending_names(status)
    )
}

fn pending_names(status: &WaitGroupStatus) -> String {
    if status.pending.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = status.pending.iter().take(3).map(String::as_str).collect();
    let more = status.counter - count(shown.len());
    format!(
        " ({}{})",
        shown.join(", "),
        if more > 0 {
            format!(", … {more} more")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests;
