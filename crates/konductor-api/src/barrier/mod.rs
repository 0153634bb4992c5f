//! The `Barrier` custom resource (`konductor.io/v1`): N processes arrive, and everyone
//! waiting is released once enough have arrived. Field for field the seed's API page,
//! plus `observedGeneration`, the failures and the deadline in status.
//!
//! - this file: the Barrier resource (spec, status, phases, condition types).
//! - [`arrival`]: the Arrival, a process's claim on a barrier, and [`arrival::arrival_name`],
//!   the deterministic name that makes arriving idempotent.
//! - [`rules`]: [`rules::evaluate`], the one pure function that decides a barrier's
//!   status.

pub mod arrival;
pub mod rules;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::evaluation::Lifecycle;

/// Label carried by every Arrival naming the Barrier it arrives at, so the arrivals of
/// one barrier can be listed and watched with `-l konductor.io/barrier=NAME`.
pub const BARRIER_LABEL: &str = "konductor.io/barrier";

pub use crate::conditions::CONDITION_READY;

/// `type` of the condition that is `True` once the barrier is open, so that
/// `kubectl wait --for=condition=Open barrier/NAME` works.
pub const CONDITION_OPEN: &str = "Open";

/// The longest Barrier name: names must be usable as the value of [`BARRIER_LABEL`],
/// and label values are at most 63 characters. The CRD enforces it with a `maxLength`
/// on `metadata.name`, the one metadata restriction Kubernetes allows in a CRD schema.
pub const MAX_BARRIER_NAME_LEN: usize = 63;

/// What the user asks of a barrier: how many arrivals to expect, how many are enough,
/// and how long to wait.
// Clippy mistakes the repeated `type_ = ...` inside kube's `printcolumn(...)` arguments
// for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Barrier",
    plural = "barriers",
    singular = "barrier",
    shortname = "bar",
    category = "konductor",
    category = "all",
    namespaced,
    status = "BarrierStatus",
    derive = "PartialEq",
    doc = "A Barrier synchronizes processes at a coordination point: it opens once `spec.quorum` (default `spec.expected`) processes have arrived, before `spec.timeout` runs out.",
    printcolumn(name = "Expected", type_ = "integer", json_path = ".spec.expected"),
    printcolumn(name = "Quorum", type_ = "integer", json_path = ".spec.quorum"),
    printcolumn(name = "Arrived", type_ = "integer", json_path = ".status.arrived"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Timeout",
        type_ = "string",
        json_path = ".spec.timeout",
        priority = 1
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failed",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.quorum) || self.quorum <= self.expected")
    .message("quorum must not be greater than expected")
    .field_path(".quorum"))]
#[serde(rename_all = "camelCase")]
pub struct BarrierSpec {
    /// Number of processes expected to arrive (at least 1).
    #[schemars(range(min = 1))]
    pub expected: i32,

    /// Maximum time to wait for enough arrivals, counted from the barrier's creation, as a
    /// Go duration (`30s`, `15m`, `1h30m`, `500ms`). Without it the barrier waits forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub timeout: Option<String>,

    /// Minimum number of successful arrivals needed to open (at least 1, at most
    /// `expected`; default: `expected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quorum: Option<i32>,

    /// How long after the barrier finished (became Open, Timeout or Failed) the
    /// controller deletes it, with its arrivals, as a Go duration (`1h`, `10m`). Without
    /// it finished barriers stay until deleted (see `koncli barrier prune`). A process
    /// that arrives or waits after the deletion finds no barrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub ttl_after_finished: Option<String>,
}

impl BarrierSpec {
    /// A spec expecting `expected` arrivals, with no quorum and no timeout.
    pub fn new(expected: i32) -> Self {
        Self {
            expected,
            timeout: None,
            quorum: None,
            ttl_after_finished: None,
        }
    }

    /// Sets `quorum`.
    #[must_use]
    pub fn with_quorum(mut self, quorum: i32) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// Sets `timeout` (a Go duration string such as `30m`).
    #[must_use]
    pub fn with_timeout(mut self, timeout: impl Into<String>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// Sets `ttlAfterFinished` (a Go duration string such as `1h`).
    #[must_use]
    pub fn with_ttl_after_finished(mut self, ttl: impl Into<String>) -> Self {
        self.ttl_after_finished = Some(ttl.into());
        self
    }

    /// The number of successful arrivals that opens the barrier: `quorum`, else `expected`.
    pub fn required(&self) -> i32 {
        self.quorum.unwrap_or(self.expected)
    }
}

/// The lifecycle of a barrier; see `docs/semantics.md` for the exact rules.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum BarrierPhase {
    /// Fewer than the required arrivals so far, and the deadline has not passed.
    #[default]
    Waiting,
    /// Enough processes arrived in time; everyone may proceed. Sticky: nothing closes it.
    Open,
    /// The barrier can never open: reported failures leave too few possible arrivals,
    /// or the spec is invalid.
    Failed,
    /// The deadline passed before enough processes arrived.
    Timeout,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

crate::evaluation::phase!(BarrierPhase { Waiting, Open, Failed, Timeout, Unknown } finished: Open | Timeout | Failed);

/// One process that reported failure at the barrier instead of arriving.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ReportedFailure {
    /// The holder that failed.
    pub holder: String,
    /// What the holder said went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the controller observed: written only through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BarrierStatus {
    /// Current phase: Waiting, Open, Failed or Timeout.
    #[serde(default)]
    pub phase: BarrierPhase,

    /// Number of distinct processes that have arrived successfully (late ones included).
    #[serde(default)]
    pub arrived: i32,

    /// The processes that have arrived, in order of arrival.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrivals: Vec<String>,

    /// Number of distinct processes that reported failure instead of arriving.
    #[serde(default)]
    pub failed: i32,

    /// The processes that reported failure, with their messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ReportedFailure>,

    /// When the barrier opened; set once and never changed. Microsecond precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<MicroTime>,

    /// Its deadline, when it finished, its conditions and their generation.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

crate::evaluation::lifecycle!(Barrier, BarrierStatus, BarrierPhase);

/// The Barrier's resources, as the list of kinds registers them: the Barrier and its
/// claims, the Arrivals.
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, NONE};
    use kube::CustomResourceExt;
    vec![
        KindEntry {
            // delete: `spec.ttlAfterFinished`.
            controller: Access {
                verbs: &["get", "list", "watch", "delete"],
                status_verbs: &["update", "patch"],
            },
            ..KindEntry::of(Barrier::crd(), Some(MAX_BARRIER_NAME_LEN))
        },
        KindEntry {
            // patch: adopting an Arrival made without its owner.
            controller: Access {
                verbs: &["get", "list", "watch", "patch"],
                ..NONE
            },
            // delete: a holder that reported failure arrives after all.
            workload: Access {
                verbs: &["create", "get", "delete"],
                ..NONE
            },
            reconciled: false,
            ..KindEntry::of(arrival::Arrival::crd(), None)
        },
    ]
}
