//! What a Gate does to the objects it resumes — suspended Jobs (JobSets, Workflows…)
//! whose `spec.suspend` it sets to `false` when it opens — decided here alone, from
//! what the Gate recorded of each target and what the controller sees of it now.
//!
//! The promises, each a branch of [`decide`]:
//! - **Opt-in**: a target is patched only if it carries [`RESUME_BY`] naming this Gate;
//!   one without it is refused, never patched.
//! - **Bound to the first object seen**: the target is the object (uid) first seen
//!   under its name; one re-created under the name later is refused, not resumed.
//! - **Once**: a target is patched once, with [`RESUMED_BY`] written in the same patch,
//!   so a controller that dies between the patch and the Gate's status finds the
//!   annotation and records the resume instead of patching again.
//! - **Only an Open Gate resumes**: a Gate that waits, failed or timed out patches
//!   nothing.
//! - A target that was never suspended is not patched: it ran unordered, and says so.
//! - A target whose suspension Kueue owns ([`KUEUE_QUEUE_LABEL`]) is refused.

use serde::{Deserialize, Serialize};

use super::GatePhase;

/// The annotation a target carries to opt in to being resumed by a Gate:
/// `konductor.io/resume-by: <gate name>`.
pub const RESUME_BY: &str = "konductor.io/resume-by";

/// The annotation the controller writes on an object it resumed: the Gate's name and
/// when (`gate-name at 2026-12-07T18:00:00Z`).
pub const RESUMED_BY: &str = "konductor.io/resumed-by";

/// The label of a workload Kueue admits (and so suspends and resumes itself).
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// The kinds a Gate resumes unless configured otherwise, as (API group, resource): each
/// has a boolean `spec.suspend` that means "create nothing yet" (not CronJob, whose
/// `suspend` pauses a schedule). The operator's role may patch exactly these.
pub const RESUMABLE_KINDS: [(&str, &str); 3] = [
    ("batch", "jobs"),
    ("jobset.x-k8s.io", "jobsets"),
    ("argoproj.io", "workflows"),
];

impl Observed {
    /// What a resume looks at of `object` (any kind, as JSON with its metadata).
    pub fn of(object: &serde_json::Value) -> Self {
        let metadata = &object["metadata"];
        let annotation = |key: &str| metadata["annotations"][key].as_str().map(str::to_owned);
        Self {
            uid: metadata["uid"].as_str().unwrap_or_default().to_owned(),
            suspend: object["spec"]["suspend"].as_bool(),
            resume_by: annotation(RESUME_BY),
            resumed_by: annotation(RESUMED_BY),
            kueue: metadata["labels"][KUEUE_QUEUE_LABEL].is_string(),
        }
    }
}

/// Where one target stands, as the Gate's status records it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ResumeState {
    /// Not resumed yet: the Gate is not Open, or the object does not exist yet.
    #[default]
    Waiting,
    /// Resumed by this Gate (`spec.suspend` set to `false`).
    Resumed,
    /// Not resumed, for good: the message says why (no opt-in, re-created, Kueue).
    Refused,
    /// It was not suspended when the Gate opened: it ran without waiting for the Gate.
    RanUnordered,
}

/// One target's entry in the Gate's `status.resume`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResumeResult {
    /// The target, as `spec.resume` names it.
    #[serde(rename = "ref")]
    pub target: super::TargetRef,
    /// Where it stands.
    pub state: ResumeState,
    /// The uid of the object it is bound to (the first seen under its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// When the Gate saw it resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>,
    /// Why it waits, or why it was not resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ResumeResult {
    /// What the Gate recorded of the target, for [`decide`].
    pub fn recorded(&self) -> Recorded {
        Recorded {
            state: self.state,
            uid: self.uid.clone(),
        }
    }
}

/// The merge patch that resumes a target: `spec.suspend: false` and the mark
/// ([`RESUMED_BY`]), on the object with `uid` only.
#[derive(Serialize, Debug)]
pub struct ResumePatch<'a> {
    metadata: PatchMetadata<'a>,
    spec: Unsuspend,
}

#[derive(Serialize, Debug)]
struct PatchMetadata<'a> {
    uid: &'a str,
    annotations: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize, Debug)]
struct Unsuspend {
    suspend: bool,
}

impl<'a> ResumePatch<'a> {
    /// Resumes the object with `uid`, marked as resumed by `gate` at `at`.
    pub fn new(uid: &'a str, gate: &str, at: &str) -> Self {
        Self {
            metadata: PatchMetadata {
                uid,
                annotations: [(RESUMED_BY, format!("{gate} at {at}"))].into(),
            },
            spec: Unsuspend { suspend: false },
        }
    }
}

/// What the Gate has recorded of one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Its state.
    pub state: ResumeState,
    /// The uid of the object the target is bound to (the first seen under its name).
    pub uid: Option<String>,
}

/// What the controller sees of one target now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Its uid.
    pub uid: String,
    /// `spec.suspend` (`None` when absent).
    pub suspend: Option<bool>,
    /// The value of its [`RESUME_BY`] annotation, if any.
    pub resume_by: Option<String>,
    /// The value of its [`RESUMED_BY`] annotation, if any.
    pub resumed_by: Option<String>,
    /// Whether it carries [`KUEUE_QUEUE_LABEL`].
    pub kueue: bool,
}

/// What to do about one target, and what to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Patch `spec.suspend: false` and [`RESUMED_BY`] onto the object with this uid
    /// (the patch is conditional on it).
    pub patch: Option<String>,
    /// What the Gate records of the target (once the patch, if any, succeeded).
    pub recorded: Recorded,
    /// Why, in a sentence, for the status and Events (`None` while merely waiting).
    pub message: Option<String>,
}

impl Decision {
    fn record(state: ResumeState, uid: Option<String>, message: Option<String>) -> Self {
        Self {
            patch: None,
            recorded: Recorded { state, uid },
            message,
        }
    }
}

/// Whether a [`RESUMED_BY`] value names the Gate `gate` (`gate at TIME`).
fn names_gate(resumed_by: &str, gate: &str) -> bool {
    resumed_by == gate || resumed_by.starts_with(&format!("{gate} at "))
}

/// Why a target of a Gate in `phase` that is not Open waits (or never will be resumed).
fn not_open(phase: GatePhase) -> &'static str {
    match phase {
        GatePhase::Failed => "the Gate failed: not resumed",
        GatePhase::Timeout => "the Gate timed out: not resumed",
        _ => "waiting for the Gate to open",
    }
}

/// Decides what the Gate `gate`, in `phase`, does about one target, from what it
/// recorded (`None`: nothing yet) and what is seen of the object (`None`: absent).
pub fn decide(
    gate: &str,
    phase: GatePhase,
    recorded: Option<&Recorded>,
    observed: Option<&Observed>,
) -> Decision {
    let open = phase == GatePhase::Open;
    let recorded = recorded.cloned().unwrap_or_default();
    // Settled for good: a resume happens once; a refusal or an unordered run stays.
    if recorded.state != ResumeState::Waiting {
        return Decision::record(recorded.state, recorded.uid, None);
    }
    let Some(object) = observed else {
        let waiting = if open {
            "waiting for it to be created"
        } else {
            not_open(phase)
        };
        return Decision::record(ResumeState::Waiting, recorded.uid, Some(waiting.into()));
    };
    // The target is the first object seen under its name.
    let bound = recorded.uid.clone().unwrap_or_else(|| object.uid.clone());
    if object.uid != bound {
        return Decision::record(
            ResumeState::Refused,
            Some(bound),
            Some("re-created under the same name after the Gate first saw it: not resumed".into()),
        );
    }
    if !open {
        return Decision::record(
            ResumeState::Waiting,
            Some(bound),
            Some(not_open(phase).into()),
        );
    }
    if object
        .resumed_by
        .as_deref()
        .is_some_and(|by| names_gate(by, gate))
    {
        // Patched before the Gate could record it (a restart in between).
        return Decision::record(ResumeState::Resumed, Some(bound), None);
    }
    if object.resume_by.as_deref() != Some(gate) {
        let why = match &object.resume_by {
            Some(other) => {
                format!("its {RESUME_BY} annotation names {other:?}, not this Gate: not resumed")
            }
            None => format!("it has no {RESUME_BY}: {gate} annotation (the opt-in): not resumed"),
        };
        return Decision::record(ResumeState::Refused, Some(bound), Some(why));
    }
    if object.kueue {
        return Decision::record(
            ResumeState::Refused,
            Some(bound),
            Some(format!(
                "it is managed by Kueue ({KUEUE_QUEUE_LABEL}), which owns its suspension: not resumed"
            )),
        );
    }
    if object.suspend != Some(true) {
        return Decision::record(
            ResumeState::RanUnordered,
            Some(bound),
            Some("it was not suspended when the Gate opened: it ran without waiting".into()),
        );
    }
    Decision {
        patch: Some(bound.clone()),
        recorded: Recorded {
            state: ResumeState::Resumed,
            uid: Some(bound),
        },
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspended(uid: &str) -> Observed {
        Observed {
            uid: uid.into(),
            suspend: Some(true),
            resume_by: Some("a-done".into()),
            ..Observed::default()
        }
    }

    fn waiting_on(uid: &str) -> Recorded {
        Recorded {
            state: ResumeState::Waiting,
            uid: Some(uid.into()),
        }
    }

    #[test]
    fn an_open_gate_resumes_an_opted_in_suspended_target_once() {
        let first = decide("a-done", GatePhase::Open, None, Some(&suspended("u1")));
        assert_eq!(first.patch.as_deref(), Some("u1"));
        assert_eq!(first.recorded.state, ResumeState::Resumed);
        let again = decide(
            "a-done",
            GatePhase::Open,
            Some(&first.recorded),
            Some(&suspended("u1")),
        );
        assert_eq!(again.patch, None, "a resume happens once");
        assert_eq!(again.recorded.state, ResumeState::Resumed);
    }

    #[test]
    fn a_gate_that_is_not_open_resumes_nothing_but_binds_the_first_object_seen() {
        for phase in [GatePhase::Waiting, GatePhase::Failed, GatePhase::Timeout] {
            let closed = decide("a-done", phase, None, Some(&suspended("u1")));
            assert_eq!(closed.patch, None, "{phase:?}");
            assert_eq!(closed.recorded, waiting_on("u1"));
        }
        let failed = decide("a-done", GatePhase::Failed, None, None);
        assert_eq!(
            failed.message.as_deref(),
            Some("the Gate failed: not resumed")
        );
    }

    #[test]
    fn a_target_created_after_the_gate_opened_is_resumed_when_it_appears() {
        let absent = decide("a-done", GatePhase::Open, None, None);
        assert_eq!(absent.patch, None);
        assert_eq!(absent.recorded.uid, None);
        let appeared = decide(
            "a-done",
            GatePhase::Open,
            Some(&absent.recorded),
            Some(&suspended("u1")),
        );
        assert_eq!(appeared.patch.as_deref(), Some("u1"));
    }

    #[test]
    fn an_object_recreated_under_the_name_is_refused() {
        let recreated = decide(
            "a-done",
            GatePhase::Open,
            Some(&waiting_on("u1")),
            Some(&suspended("u2")),
        );
        assert_eq!(recreated.patch, None);
        assert_eq!(recreated.recorded.state, ResumeState::Refused);
        assert_eq!(recreated.recorded.uid.as_deref(), Some("u1"));
        // After a resume, a re-created object is never looked at again.
        let resumed = Recorded {
            state: ResumeState::Resumed,
            uid: Some("u1".into()),
        };
        let later = decide(
            "a-done",
            GatePhase::Open,
            Some(&resumed),
            Some(&suspended("u2")),
        );
        assert_eq!(later.patch, None);
    }

    #[test]
    fn without_the_opt_in_naming_this_gate_nothing_is_patched() {
        let mut other = suspended("u1");
        other.resume_by = Some("b-done".into());
        let refused = decide("a-done", GatePhase::Open, None, Some(&other));
        assert_eq!(refused.patch, None);
        assert_eq!(refused.recorded.state, ResumeState::Refused);
        assert!(refused.message.unwrap().contains("b-done"));
        other.resume_by = None;
        let refused = decide("a-done", GatePhase::Open, None, Some(&other));
        assert!(refused.message.unwrap().contains(RESUME_BY));
    }

    #[test]
    fn kueue_managed_and_never_suspended_targets_are_reported_not_patched() {
        let mut kueue = suspended("u1");
        kueue.kueue = true;
        let refused = decide("a-done", GatePhase::Open, None, Some(&kueue));
        assert_eq!(
            (refused.patch, refused.recorded.state),
            (None, ResumeState::Refused)
        );
        let mut running = suspended("u1");
        running.suspend = Some(false);
        let unordered = decide("a-done", GatePhase::Open, None, Some(&running));
        assert_eq!(
            (unordered.patch, unordered.recorded.state),
            (None, ResumeState::RanUnordered)
        );
    }

    #[test]
    fn a_resume_patched_before_a_restart_is_recorded_not_repeated() {
        let mut patched = suspended("u1");
        patched.suspend = Some(false);
        patched.resumed_by = Some("a-done at 2026-12-07T18:00:00Z".into());
        let after_restart = decide(
            "a-done",
            GatePhase::Open,
            Some(&waiting_on("u1")),
            Some(&patched),
        );
        assert_eq!(after_restart.patch, None);
        assert_eq!(after_restart.recorded.state, ResumeState::Resumed);
        // Another Gate's mark does not count as this one's.
        patched.resumed_by = Some("a-done-2 at 2026-12-07T18:00:00Z".into());
        let other = decide(
            "a-done",
            GatePhase::Open,
            Some(&waiting_on("u1")),
            Some(&patched),
        );
        assert_eq!(other.recorded.state, ResumeState::RanUnordered);
    }
}
