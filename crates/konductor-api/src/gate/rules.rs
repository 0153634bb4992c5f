//! The Gate rules: [`evaluate`] is the one pure function that decides a Gate's status
//! from its spec, its previous status and what was observed of the objects its
//! conditions name. The controller and `koncli wait` (which has no Gate object) both
//! call it.
//!
//! 1. Each condition resolves to a test: its own (`condition`, or `jsonPath` + `op`),
//!    else its kind's preset ([`super::presets`]); a kind without a preset needs a test.
//! 2. **Generation**: with `requireObservedGeneration` (the default) a status older
//!    than the spec never counts — `status.observedGeneration` (or the condition's
//!    own `observedGeneration`) below `metadata.generation`, or absent for a kind that
//!    always publishes it (a Deployment).
//! 3. A test holding since `since` meets its condition once `stableFor` has passed; a
//!    break resets `since`.
//! 4. A **missing** object: a condition already met stays met (a finished Job deleted
//!    by its TTL); otherwise it waits for the object (`whenMissing: Wait`) or fails it
//!    (`Fail`).
//! 5. A preset's failure test (a Job's `Failed=True`) fails its condition; the Gate
//!    fails once the conditions not failed cannot reach `required` (`All`: any failed
//!    condition). Any `failWhen` test that holds fails the Gate at once.
//! 6. **Open** once `met ≥ required` (`All`: every condition, `Any`: one, or `minMet`).
//!    **Open latches**: later observations never close it. Failed and Timeout are final.
//! 7. **Timeout** once the deadline (creation + `timeout`) passes while Waiting.
//! 8. `override: Open` opens the Gate, `Closed` holds it Waiting, whatever the
//!    conditions say (and re-arms a latched Gate); removed, the conditions decide again.
//! 9. An invalid spec fails the Gate (reason `InvalidSpec`) saying what is wrong.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

pub use super::presets::Test;
use super::presets::preset;
use super::{
    CONDITION_OPEN, ConditionResult, GateCondition, GateMatch, GateOverride, GatePhase, GateSpec,
    GateStatus, JsonPathOp, TargetRef, WhenMissing,
};
use crate::conditions::{condition, ready};
use crate::duration::parse_duration;
use crate::evaluation::{Lifecycle, PhaseChange, deadline_of, to_micros, until};
use crate::jsonpath::{JsonPath, render};

/// Reason of the `Open` condition while the Gate waits.
pub const REASON_WAITING: &str = "Waiting";
/// Reason of the `Open` condition once enough conditions were met.
pub const REASON_OPENED: &str = "ConditionsMet";
/// Reason of the `Open` condition when the override decides.
pub const REASON_OVERRIDDEN: &str = "Overridden";
/// Reason of the `Open` condition after a failure.
pub const REASON_FAILED: &str = "ConditionFailed";
/// Reason of the `Open` condition after the deadline passed.
pub const REASON_TIMED_OUT: &str = "TimedOut";
pub use crate::conditions::REASON_INVALID_SPEC;

/// What one test found in one object.
struct Finding {
    holds: bool,
    /// What was seen, in words (`Complete=False`, `phase Waiting`).
    seen: String,
}

impl Test {
    /// Checks the test on `object` (its status generation is [`stale`]'s business).
    fn check(&self, object: &Value) -> Finding {
        match self {
            Test::Condition {
                type_,
                status,
                reason,
            } => {
                let Some(found) = self.condition_of(object) else {
                    return Finding {
                        holds: false,
                        seen: format!("no {type_} condition yet"),
                    };
                };
                let field = |name: &str| found.get(name).and_then(Value::as_str).unwrap_or("");
                let holds = field("status") == status.as_str()
                    && reason.as_deref().is_none_or(|r| r == field("reason"));
                let mut seen = format!("{type_}={}", field("status"));
                if !field("reason").is_empty() {
                    seen.push_str(&format!(" ({})", field("reason")));
                }
                Finding { holds, seen }
            }
            Test::Path { path, op, values } => {
                let selected: Vec<String> = path
                    .select(object)
                    .into_iter()
                    .filter(|v| !v.is_null())
                    .map(render)
                    .collect();
                let holds = match op {
                    JsonPathOp::Exists => !selected.is_empty(),
                    JsonPathOp::Equals | JsonPathOp::In => {
                        selected.iter().any(|s| values.contains(s))
                    }
                };
                let seen = if selected.is_empty() {
                    format!("{path} selects nothing")
                } else {
                    format!("{path} is {}", selected.join(", "))
                };
                Finding { holds, seen }
            }
        }
    }

    /// The condition a `Condition` test reads (in `status.conditions`, by type).
    fn condition_of<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        let Test::Condition { type_, .. } = self else {
            return None;
        };
        object
            .pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    }
}

/// What was observed of one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// Not looked at yet (the watch of its kind is still listing).
    Unknown,
    /// It cannot be read; the message says why (a kind not served, or one the
    /// controller may not read).
    Unreadable(String),
    /// It does not exist.
    Missing,
    /// The object, as JSON (with its metadata).
    Present(Value),
}

/// What the objects a Gate names look like now, by reference.
pub type Observations = HashMap<TargetRef, Observed>;

/// Everything [`evaluate`] looks at.
pub struct GateInput<'a> {
    /// The Gate's spec.
    pub spec: &'a GateSpec,
    /// The Gate's `metadata.generation`.
    pub generation: Option<i64>,
    /// The Gate's `metadata.creationTimestamp`: the deadline counts from here.
    pub created_at: Timestamp,
    /// The status as last written.
    pub previous: Option<&'a GateStatus>,
    /// What was observed of the objects its conditions name.
    pub observed: &'a Observations,
    /// The evaluator's clock.
    pub now: Timestamp,
}

/// A change of phase worth an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The Gate opened.
    Opened,
    /// A failure test matched, or a condition can no longer be met.
    Failed,
    /// The deadline passed first.
    TimedOut,
    /// The spec is invalid.
    InvalidSpec,
    /// The override closed an Open Gate.
    Closed,
}

impl PhaseChange for Transition {
    fn is_warning(self) -> bool {
        matches!(
            self,
            Transition::Failed | Transition::TimedOut | Transition::InvalidSpec
        )
    }

    fn reason(self) -> &'static str {
        match self {
            Transition::Opened => "Opened",
            Transition::Failed => "Failed",
            Transition::TimedOut => "TimedOut",
            Transition::InvalidSpec => REASON_INVALID_SPEC,
            Transition::Closed => "Closed",
        }
    }
}

/// What [`evaluate`] decided: a deadline or a `stableFor` is when the status changes
/// by itself; a Gate is never deleted by its rules.
pub type Evaluation = crate::evaluation::Evaluation<GateStatus, Transition, Watching>;

/// Whether the objects' changes can still change the status (false once the Gate is
/// finished and not overridden): what the watches are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watching(pub bool);

/// One condition, resolved.
#[derive(Clone, Debug)]
struct Resolved {
    /// The object.
    pub target: TargetRef,
    /// What meets it.
    pub test: Test,
    /// What fails it for good (a preset's).
    pub failure: Option<Test>,
    /// Rule 2.
    pub require_generation: bool,
    /// Whether the kind always publishes `status.observedGeneration`.
    pub publishes_generation: bool,
    /// Rule 3.
    pub stable_for: Option<Duration>,
    /// Rule 4.
    pub when_missing: WhenMissing,
}

/// A spec resolved: what [`evaluate`] works with.
#[derive(Clone, Debug)]
struct Checked {
    /// `spec.conditions`, resolved.
    pub conditions: Vec<Resolved>,
    /// `spec.failWhen`, resolved.
    pub fail_when: Vec<Resolved>,
    /// How many conditions must be met.
    pub required: usize,
    /// `spec.timeout`.
    pub timeout: Option<Duration>,
}

/// Checks one condition as the rules will read it (a test its kind can have, one test
/// at most, a JSONPath that parses…); errors start with `condition: `.
pub fn check_condition(condition: &GateCondition) -> Result<(), String> {
    resolve(condition, "condition").map(|_| ())
}

/// Resolves one condition (`field` names it in errors: `spec.conditions[0]`).
fn resolve(condition: &GateCondition, field: &str) -> Result<Resolved, String> {
    let target = &condition.target;
    let preset = preset(target.group(), &target.kind);
    if condition.condition.is_some() && condition.json_path.is_some() {
        return Err(format!(
            "{field}: set one test, condition or jsonPath, not both"
        ));
    }
    if condition.json_path.is_none()
        && (condition.op.is_some() || condition.value.is_some() || !condition.values.is_empty())
    {
        return Err(format!("{field}: op, value and values need a jsonPath"));
    }
    let test = if let Some(test) = &condition.condition {
        Test::Condition {
            type_: test.type_.clone(),
            status: test.status.unwrap_or_default(),
            reason: test.reason.clone(),
        }
    } else if let Some(path) = &condition.json_path {
        let path = JsonPath::parse(path).map_err(|e| format!("{field}.jsonPath: {e}"))?;
        let op = condition
            .op
            .unwrap_or(match (&condition.value, &condition.values[..]) {
                (Some(_), _) => JsonPathOp::Equals,
                (None, [_, ..]) => JsonPathOp::In,
                (None, []) => JsonPathOp::Exists,
            });
        let values = match (op, &condition.value, &condition.values[..]) {
            (JsonPathOp::Exists, None, []) => vec![],
            (JsonPathOp::Exists, _, _) => {
                return Err(format!("{field}: op Exists takes no value"));
            }
            (JsonPathOp::Equals, Some(value), []) => vec![value.clone()],
            (JsonPathOp::Equals, _, _) => {
                return Err(format!("{field}: op Equals needs value (one)"));
            }
            (JsonPathOp::In, None, values) if !values.is_empty() => values.to_vec(),
            (JsonPathOp::In, _, _) => return Err(format!("{field}: op In needs values")),
        };
        Test::Path { path, op, values }
    } else if let Some(preset) = &preset {
        preset.test.clone()
    } else {
        return Err(format!(
            "{field}: {} {} has no preset: give a test (condition or jsonPath)",
            target.api_version, target.kind
        ));
    };
    let stable_for = condition
        .stable_for
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("{field}.stableFor: {e}"))?;
    if !crate::names::is_dns1123_subdomain(&target.name) {
        return Err(format!(
            "{field}.ref.name: {:?} is not a valid object name",
            target.name
        ));
    }
    Ok(Resolved {
        target: target.clone(),
        // A preset's failure applies to its own test only: a custom test says what it
        // waits for, and failWhen what fails it.
        failure: preset
            .as_ref()
            .filter(|p| p.test == test)
            .and_then(|p| p.failure.clone()),
        publishes_generation: preset
            .as_ref()
            .is_some_and(|p| p.publishes_observed_generation),
        test,
        require_generation: condition.require_observed_generation.unwrap_or(true),
        stable_for,
        when_missing: condition.when_missing.unwrap_or_default(),
    })
}

/// Checks a spec beyond what its schema can (rule 9).
fn check_spec(spec: &GateSpec) -> Result<Checked, String> {
    let conditions = spec
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| resolve(c, &format!("spec.conditions[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if conditions.is_empty() {
        return Err("spec.conditions: at least one condition is needed".to_owned());
    }
    let fail_when = spec
        .fail_when
        .iter()
        .enumerate()
        .map(|(i, c)| resolve(c, &format!("spec.failWhen[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let total = conditions.len();
    let required = match (spec.min_met, spec.match_) {
        (Some(n), _) => {
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 || n > total {
                return Err(format!(
                    "spec.minMet: must be between 1 and the {total} condition(s), got {n}"
                ));
            }
            n
        }
        (None, GateMatch::All) => total,
        (None, GateMatch::Any) => 1,
    };
    let timeout = spec
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("spec.timeout: {e}"))?;
    Ok(Checked {
        conditions,
        fail_when,
        required,
        timeout,
    })
}

/// Every object a spec names (conditions and failWhen), once each: what to observe.
pub fn targets(spec: &GateSpec) -> Vec<&TargetRef> {
    let mut seen = Vec::new();
    for condition in spec.conditions.iter().chain(&spec.fail_when) {
        if !seen.contains(&&condition.target) {
            seen.push(&condition.target);
        }
    }
    seen
}

/// Why a status is older than the spec, if it is (rule 2).
fn stale(resolved: &Resolved, test: &Test, object: &Value) -> Option<String> {
    if !resolved.require_generation {
        return None;
    }
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)?;
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    match observed {
        Some(observed) if observed < generation => {
            return Some(format!(
                "its status is behind its spec (observedGeneration {observed} < generation {generation})"
            ));
        }
        None if resolved.publishes_generation => {
            return Some(format!(
                "its status has not observed generation {generation} yet"
            ));
        }
        _ => {}
    }
    let of_condition = test
        .condition_of(object)
        .and_then(|c| c.get("observedGeneration"))
        .and_then(Value::as_i64);
    match of_condition {
        Some(observed) if observed < generation => Some(format!(
            "its condition is behind its spec (observedGeneration {observed} < generation {generation})"
        )),
        _ => None,
    }
}

/// The object's resourceVersion.
fn resource_version(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Where one condition stands now (rules 2–5), and when it may change by itself.
fn judge(
    resolved: &Resolved,
    observed: &Observed,
    previous: Option<&ConditionResult>,
    now: Timestamp,
) -> (ConditionResult, Option<Timestamp>) {
    let target = resolved.target.to_string();
    let base = ConditionResult {
        target: target.clone(),
        test: resolved.test.to_string(),
        ..ConditionResult::default()
    };
    let was_met = previous.is_some_and(|p| p.met);
    match observed {
        Observed::Unknown => (
            previous.cloned().unwrap_or(ConditionResult {
                message: format!("{target} {}", super::NOT_LOOKED_AT),
                ..base
            }),
            None,
        ),
        Observed::Unreadable(why) => (
            ConditionResult {
                met: was_met,
                since: previous.and_then(|p| p.since.clone()),
                unreadable: true,
                message: why.clone(),
                ..base
            },
            None,
        ),
        Observed::Missing if was_met => (
            ConditionResult {
                met: true,
                since: previous.and_then(|p| p.since.clone()),
                message: format!("met; {target} was deleted since"),
                ..base
            },
            None,
        ),
        Observed::Missing => {
            let fail = resolved.when_missing == WhenMissing::Fail;
            // The last version seen, if it was ever seen: deleted before it was met.
            let last_seen = previous.and_then(|p| p.observed_resource_version.clone());
            let message = match (fail, &last_seen) {
                (true, _) => format!("{target} does not exist (whenMissing: Fail)"),
                (false, Some(_)) => format!(
                    "{target} was deleted before it was met; waiting for it to be created again"
                ),
                (false, None) => format!("waiting for {target} to be created"),
            };
            (
                ConditionResult {
                    failed: fail,
                    observed_resource_version: last_seen,
                    message,
                    ..base
                },
                None,
            )
        }
        Observed::Present(object) => {
            let observed_resource_version = resource_version(object);
            if let Some(failure) = &resolved.failure
                && stale(resolved, failure, object).is_none()
            {
                let finding = failure.check(object);
                if finding.holds {
                    return (
                        ConditionResult {
                            failed: true,
                            observed_resource_version,
                            message: format!("{target} failed: {}", finding.seen),
                            ..base
                        },
                        None,
                    );
                }
            }
            let finding = resolved.test.check(object);
            if let Some(why) = stale(resolved, &resolved.test, object) {
                return (
                    ConditionResult {
                        observed_resource_version,
                        message: format!("{target}: {why}"),
                        ..base
                    },
                    None,
                );
            }
            if !finding.holds {
                return (
                    ConditionResult {
                        observed_resource_version,
                        message: format!("waiting: {target} {}", finding.seen),
                        ..base
                    },
                    None,
                );
            }
            let since = previous
                .and_then(|p| p.since.clone())
                .map_or(to_micros(now), |t| t.0);
            let stable_at = resolved
                .stable_for
                .and_then(|d| deadline_of(since, d))
                .unwrap_or(since);
            let met = now >= stable_at;
            let message = if met {
                format!("met: {target} {}", finding.seen)
            } else {
                format!(
                    "{target} {}; met once it holds for {}",
                    finding.seen,
                    crate::duration::format_duration(resolved.stable_for.unwrap_or_default())
                )
            };
            (
                ConditionResult {
                    met,
                    since: Some(MicroTime(since)),
                    observed_resource_version,
                    message,
                    ..base
                },
                (!met).then_some(stable_at),
            )
        }
    }
}

/// Whether the Gate's status is final whatever its objects do (rule 6): Open latches,
/// Failed and Timeout are final — unless the override says otherwise. Nothing needs
/// observing for a latched Gate.
pub fn latched(spec: &GateSpec, previous: Option<&GateStatus>) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let reopened = previous.phase != GatePhase::Open && spec.override_ == Some(GateOverride::Open);
    let reclosed =
        previous.phase == GatePhase::Open && spec.override_ == Some(GateOverride::Closed);
    previous.phase.is_finished() && !previous.overridden && !reopened && !reclosed
}

/// Decides the Gate's status. Pure: the same input gives the same answer.
pub fn evaluate(input: &GateInput<'_>) -> Evaluation {
    let previous = input.previous;
    let overriding = input.spec.override_;
    if let Some(previous) = previous
        && latched(input.spec, Some(previous))
    {
        let mut status = previous.clone();
        status.lifecycle.observed_generation = input.generation;
        return Evaluation {
            status,
            transition: None,
            requeue_after: None,
            delete_after: None,
            also: Watching(false),
        };
    }
    let checked = check_spec(input.spec);
    let total = input.spec.conditions.len();
    let deadline = checked
        .as_ref()
        .ok()
        .and_then(|c| c.timeout)
        .and_then(|timeout| deadline_of(input.created_at, timeout));
    let mut results = Vec::with_capacity(total);
    let mut wake = deadline;
    let mut failure = None;
    let mut required = total;
    if let Ok(checked) = &checked {
        required = checked.required;
        let previous_results = previous.map_or(&[][..], |p| &p.results[..]);
        for (i, resolved) in checked.conditions.iter().enumerate() {
            let observed = input
                .observed
                .get(&resolved.target)
                .unwrap_or(&Observed::Unknown);
            // A result counts as this condition's only if it names the same test.
            let before = previous_results.get(i).filter(|p| {
                p.target == resolved.target.to_string() && p.test == resolved.test.to_string()
            });
            let (result, changes_at) = judge(resolved, observed, before, input.now);
            wake = earliest(wake, changes_at);
            results.push(result);
        }
        failure = checked.fail_when.iter().find_map(|resolved| {
            let Some(Observed::Present(object)) = input.observed.get(&resolved.target) else {
                return None;
            };
            let finding = resolved.test.check(object);
            (finding.holds && stale(resolved, &resolved.test, object).is_none()).then(|| {
                format!(
                    "failWhen matched: {} {} ({})",
                    resolved.target, resolved.test, finding.seen
                )
            })
        });
    }
    let met = results.iter().filter(|r| r.met).count();
    let failed: Vec<&ConditionResult> = results.iter().filter(|r| r.failed).collect();
    let (phase, reason, message, overridden) = match (&checked, overriding) {
        (_, Some(GateOverride::Open)) => (
            GatePhase::Open,
            REASON_OVERRIDDEN,
            format!("opened by spec.override ({met} of {required} required condition(s) met)"),
            true,
        ),
        (Err(why), _) => (GatePhase::Failed, REASON_INVALID_SPEC, why.clone(), false),
        (Ok(_), Some(GateOverride::Closed)) => (
            GatePhase::Waiting,
            REASON_OVERRIDDEN,
            format!("held closed by spec.override ({met} of {required} required condition(s) met)"),
            true,
        ),
        (Ok(_), None) => {
            if let Some(why) = failure.take() {
                (GatePhase::Failed, REASON_FAILED, why, false)
            } else if total - failed.len() < required {
                let why: Vec<&str> = failed.iter().map(|r| r.message.as_str()).collect();
                let need = if required == total {
                    "every condition is required".to_owned()
                } else {
                    format!(
                        "{required} of {total} are required and only {} can still be met",
                        total - failed.len()
                    )
                };
                (
                    GatePhase::Failed,
                    REASON_FAILED,
                    format!("{} ({need})", why.join("; ")),
                    false,
                )
            } else if met >= required {
                (
                    GatePhase::Open,
                    REASON_OPENED,
                    format!("{met} of {total} condition(s) met ({required} required)"),
                    false,
                )
            } else if deadline.is_some_and(|d| input.now >= d) {
                (
                    GatePhase::Timeout,
                    REASON_TIMED_OUT,
                    format!(
                        "the deadline passed with {met} of {required} required condition(s) met: {}",
                        waiting_for(&results)
                    ),
                    false,
                )
            } else {
                (
                    GatePhase::Waiting,
                    REASON_WAITING,
                    format!(
                        "{met} of {required} required condition(s) met: {}",
                        waiting_for(&results)
                    ),
                    false,
                )
            }
        }
    };
    let previous_phase = previous.map(|p| p.phase).unwrap_or_default();
    let transition = match phase {
        _ if phase == previous_phase && previous.is_some() => None,
        GatePhase::Open => Some(Transition::Opened),
        GatePhase::Failed if checked.is_err() => Some(Transition::InvalidSpec),
        GatePhase::Failed => Some(Transition::Failed),
        GatePhase::Timeout => Some(Transition::TimedOut),
        GatePhase::Waiting if previous_phase == GatePhase::Open => Some(Transition::Closed),
        GatePhase::Waiting | GatePhase::Unknown => None,
    };
    let at = |wanted: GatePhase, field: Option<&MicroTime>| {
        (phase == wanted).then(|| {
            field
                .filter(|_| previous_phase == wanted)
                .cloned()
                .unwrap_or(MicroTime(to_micros(input.now)))
        })
    };
    let previous_conditions = previous.map_or(&[][..], |p| &p.lifecycle.conditions[..]);
    let accepted = match &checked {
        Ok(_) => Ok(("SpecAccepted", "spec accepted".to_owned())),
        Err(why) => Err(why.as_str()),
    };
    let conditions: Vec<Condition> = vec![
        ready(previous_conditions, accepted, input.generation, input.now),
        condition(
            previous_conditions,
            CONDITION_OPEN,
            phase == GatePhase::Open,
            reason,
            message,
            input.generation,
            input.now,
        ),
    ];
    let status = GateStatus {
        phase,
        met: count(met),
        total: count(total),
        required: count(required),
        results,
        overridden,
        opened_at: at(GatePhase::Open, previous.and_then(|p| p.opened_at.as_ref())),
        // Decided per target by `resume::decide`, from what the controller observes of
        // each; carried over until it does.
        resume: previous.map(|p| p.resume.clone()).unwrap_or_default(),
        lifecycle: Lifecycle {
            finished_at: if matches!(phase, GatePhase::Failed | GatePhase::Timeout) {
                previous
                    .filter(|p| p.phase == phase)
                    .and_then(|p| p.lifecycle.finished_at.clone())
                    .or(Some(MicroTime(to_micros(input.now))))
            } else {
                None
            },
            deadline: deadline.map(MicroTime),
            conditions,
            observed_generation: input.generation,
        },
    };
    let watching = phase == GatePhase::Waiting || overridden;
    Evaluation {
        requeue_after: if phase == GatePhase::Waiting {
            wake.map(|at| until(input.now, at))
        } else {
            None
        },
        status,
        transition,
        delete_after: None,
        also: Watching(watching),
    }
}

/// The earlier of two optional times.
fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the unmet conditions wait for, in a few words each (the first three).
fn waiting_for(results: &[ConditionResult]) -> String {
    let unmet: Vec<&str> = results
        .iter()
        .filter(|r| !r.met)
        .map(|r| r.message.as_str())
        .collect();
    let mut text = unmet.iter().take(3).copied().collect::<Vec<_>>().join("; ");
    if unmet.len() > 3 {
        text.push_str(&format!("; and {} more", unmet.len() - 3));
    }
    text
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
