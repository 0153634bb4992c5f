//! The `Gate` kind (`konductor.io/v1`): wait until conditions on other resources hold —
//! a Job complete, a Deployment available at its current generation, a Barrier open,
//! any field of any custom resource — then open, and stay open.
//!
//! A Gate has no claims: the controller watches the objects its conditions name (in the
//! Gate's namespace only) and [`rules::evaluate`] alone decides what they add up to. A
//! condition names its object (`ref`) and at most one test; without one, the kind's
//! preset ([`presets`]) applies. The semantics are in `docs/gate.md`.

pub mod presets;
pub mod resume;
pub mod rules;
pub mod target;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::evaluation::Lifecycle;

/// The most conditions (and the most `failWhen` entries) one Gate may list.
pub const MAX_CONDITIONS: usize = 64;

/// The longest Gate name (names double as label values in Events' selectors).
pub const MAX_GATE_NAME_LEN: usize = 63;

/// `type` of the condition that is `True` once the Gate is Open, so that `kubectl wait
/// --for=condition=Open gate/NAME` works.
pub const CONDITION_OPEN: &str = "Open";

/// A Gate: Open once its conditions hold (all of them, any one, or `minMet` of them),
/// Failed as soon as a failure test matches, Timeout at its deadline. Open latches.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default,
)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Gate",
    plural = "gates",
    singular = "gate",
    shortname = "gt",
    category = "konductor",
    namespaced,
    status = "GateStatus",
    derive = "PartialEq",
    doc = "A Gate opens once conditions on other resources in its namespace hold (a Job complete, a Deployment available, a Barrier open, any field of any resource), fails as soon as a failure test matches, and stays Open once opened.",
    printcolumn(name = "Met", type_ = "integer", json_path = ".status.met"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.total"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Override",
        type_ = "string",
        json_path = ".spec.override",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.resume) || self.resume.all(r, !self.conditions.exists(c, c.ref.apiVersion == r.apiVersion && c.ref.kind == r.kind && c.ref.name == r.name))").message("resume: the Gate cannot resume an object it waits on"))]
pub struct GateSpec {
    /// What must hold for the Gate to open: each names an object in the Gate's
    /// namespace and a test on it (or its kind's preset).
    #[schemars(length(min = 1, max = MAX_CONDITIONS))]
    #[x_kube(validation = Rule::new("self.all(c, !(has(c.condition) && has(c.jsonPath)))").message("a condition has at most one test: condition or jsonPath"))]
    pub conditions: Vec<GateCondition>,

    /// Tests that fail the Gate at once when any of them holds (a Job's `Failed=True`
    /// is added for every Job a condition names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CONDITIONS))]
    #[x_kube(validation = Rule::new("self.all(c, !(has(c.condition) && has(c.jsonPath)))").message("a failWhen entry has at most one test: condition or jsonPath"))]
    pub fail_when: Vec<GateCondition>,

    /// `All` (default): every condition must be met; `Any`: one is enough.
    #[serde(default, rename = "match")]
    pub match_: GateMatch,

    /// How many conditions must be met (overrides `match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub min_met: Option<i32>,

    /// How long to wait for the Gate to open, counted from its creation, as a Go
    /// duration (`30m`, `2h`). Without it the Gate waits forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub timeout: Option<String>,

    /// A human's word over the conditions: `Open` opens the Gate now, `Closed` keeps it
    /// closed whatever its conditions say. Remove it to hand the Gate back to its
    /// conditions.
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<GateOverride>,

    /// Objects in the Gate's namespace to resume when it opens — a Job (or JobSet, or
    /// Argo Workflow) created with `spec.suspend: true` — by setting `spec.suspend` to
    /// `false`, once. Each must opt in with the annotation `konductor.io/resume-by:
    /// <this Gate's name>`; none may be an object the Gate waits on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CONDITIONS))]
    pub resume: Vec<TargetRef>,
}

/// One condition: an object and a test on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateCondition {
    /// The object, in the Gate's namespace.
    #[serde(rename = "ref")]
    pub target: TargetRef,

    /// Test: the object's `status.conditions` has this condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionTest>,

    /// Test: a JSONPath into the object (`{.status.phase}`, `.status.conditions[?(@.type=="Ready")].status`),
    /// checked with `op`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub json_path: Option<String>,

    /// How `jsonPath`'s values are checked: `Exists`, `Equals` (`value`) or `In`
    /// (`values`). Defaults to `Equals` when `value` is set, `In` when `values` is,
    /// `Exists` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<JsonPathOp>,

    /// The value `Equals` compares with (strings as they are; numbers and booleans as
    /// JSON: `3`, `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,

    /// The values `In` accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    pub values: Vec<String>,

    /// Whether a status older than the spec is ignored (default true): where the
    /// object publishes `status.observedGeneration` (a Deployment does, a Job does
    /// not), or its condition carries `observedGeneration`, a value below
    /// `metadata.generation` never counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_observed_generation: Option<bool>,

    /// How long the test must hold without a break before the condition is met, as a
    /// Go duration (`30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub stable_for: Option<String>,

    /// What a missing object means: `Wait` (default) for it to be created, or `Fail`
    /// the Gate. An object deleted after its condition was met keeps it met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_missing: Option<WhenMissing>,
}

/// The object a condition names: in the Gate's namespace, always.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Its `apiVersion` (`batch/v1`, `apps/v1`, `konductor.io/v1`, `v1`).
    #[schemars(
        length(min = 1, max = 317),
        regex(pattern = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$")
    )]
    pub api_version: String,
    /// Its `kind` (`Job`, `Deployment`, `Barrier`).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Z][A-Za-z0-9]*$"))]
    pub kind: String,
    /// Its name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

impl TargetRef {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version (`v1`).
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, version)| version)
    }
}

impl std::fmt::Display for TargetRef {
    /// `kind/name` in lower case, as kubectl names objects (`job/migrate`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// A test on one of the object's `status.conditions`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionTest {
    /// The condition's `type` (`Complete`, `Available`, `Ready`).
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// The status it must have (default `True`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConditionStatus>,
    /// The reason it must give, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

/// A condition's status, as `metav1.Condition` spells it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ConditionStatus {
    /// The condition holds.
    #[default]
    True,
    /// It does not.
    False,
    /// Its owner does not know.
    Unknown,
}

impl ConditionStatus {
    /// How `status` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// How a `jsonPath` test checks the values selected.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum JsonPathOp {
    /// The path selects a value (not null).
    #[default]
    Exists,
    /// A selected value equals `value`.
    Equals,
    /// A selected value is one of `values`.
    In,
}

/// What a missing object means.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum WhenMissing {
    /// Wait for it to be created (the default).
    #[default]
    Wait,
    /// Fail the Gate.
    Fail,
}

/// How many conditions must be met.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum GateMatch {
    /// Every condition.
    #[default]
    All,
    /// At least one.
    Any,
}

/// A human's word over the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum GateOverride {
    /// Open now, whatever the conditions say.
    Open,
    /// Stay closed, whatever the conditions say.
    Closed,
}

/// Where a Gate stands. Open latches (unless `override: Closed`); Failed and Timeout are
/// final.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum GatePhase {
    /// Not enough conditions met yet (or held closed by the override).
    #[default]
    Waiting,
    /// Enough conditions were met (or the override opened it).
    Open,
    /// A failure test matched, a condition can no longer be met, or the spec is
    /// invalid.
    Failed,
    /// The deadline passed first.
    Timeout,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

crate::evaluation::phase!(GatePhase { Waiting, Open, Failed, Timeout, Unknown } finished: Open | Failed | Timeout);

/// Where one condition stands, as the Gate's status lists it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionResult {
    /// The object, as kubectl names it (`job/migrate`).
    pub target: String,
    /// The test, in words (`condition Complete=True`, `{.status.phase} = Open`).
    pub test: String,
    /// Whether the condition is met.
    pub met: bool,
    /// Whether it can no longer be met (its object failed: a Job's `Failed=True`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Since when the test has held without a break (met once `stableFor` passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<MicroTime>,
    /// The object's resourceVersion this result was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_resource_version: Option<String>,
    /// The controller cannot read the object (its kind is not served, or it may not
    /// read it): `message` says why. The condition waits until it can.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
    /// Why it is (not) met.
    #[serde(default)]
    pub message: String,
}

/// The end of a result's message before the controller first looked at its object.
pub const NOT_LOOKED_AT: &str = "not looked at yet";

impl ConditionResult {
    /// Whether the controller has looked at the object (read it, found it missing, or
    /// found it unreadable).
    pub fn looked_at(&self) -> bool {
        !self.message.ends_with(NOT_LOOKED_AT)
    }
}

/// What the controller observed: written only through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    /// Waiting, Open, Failed or Timeout.
    #[serde(default)]
    pub phase: GatePhase,

    /// Conditions met.
    #[serde(default)]
    pub met: i32,

    /// Conditions listed.
    #[serde(default)]
    pub total: i32,

    /// Conditions that must be met (`total` for `All`, 1 for `Any`, or `minMet`).
    #[serde(default)]
    pub required: i32,

    /// One entry per `spec.conditions` entry, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ConditionResult>,

    /// Whether the phase is the override's (`spec.override`), not the conditions'.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,

    /// When the Gate opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<MicroTime>,

    /// One entry per `spec.resume` entry, in order: whether it was resumed, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resume: Vec<resume::ResumeResult>,

    /// Its deadline, when it finished, its conditions and their generation.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

crate::evaluation::lifecycle!(Gate, GateStatus, GatePhase, summary: CONDITION_OPEN);

/// The Gate's resource, as the list of kinds registers it, with the kinds its presets
/// name (both the operator and `koncli wait` read them) and those it resumes (the
/// operator patches them).
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, NONE, READ};
    use kube::CustomResourceExt;
    vec![KindEntry {
        controller: Access {
            verbs: READ,
            status_verbs: &["update"],
        },
        // create: `gate create`; patch: `gate open|close|auto` (the override).
        workload: Access {
            verbs: &["create", "get", "list", "watch", "patch"],
            ..NONE
        },
        also_reads: presets::PRESET_KINDS
            .iter()
            .filter(|kind| kind.group != crate::GROUP)
            .map(|kind| (kind.group, kind.resource))
            .collect(),
        also_resumes: resume::RESUMABLE_KINDS.to_vec(),
        ..KindEntry::of(Gate::crd(), Some(MAX_GATE_NAME_LEN))
    }]
}
