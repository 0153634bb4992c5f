//! The `RateLimit` kind (`konductor.io/v1`): at most `limit` grants in any window of
//! length `window` — "at most 10 deploys an hour", "at most 100 calls a minute to a
//! partner API" — where a Semaphore bounds how many run *at once*, not how many *start
//! per window*. An optional `maxConcurrent` bounds both.
//!
//! A member of the lock family: its claims are [`Permit`](crate::locks::Permit)s
//! (`lockRef.kind: RateLimit`), granted in queue order (priority, then arrival) with
//! fencing tokens, renewed while they wait or hold, expired on the controller's clock.
//! Which claims are granted is decided by [`rules::evaluate`] alone: the lock rules'
//! grants, bounded by the grant times the status records for the window. The semantics
//! are in `docs/ratelimit.md`.

pub mod rules;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::locks::ClaimsStatus;

/// The most grants a window may allow (the status records each grant's time).
pub const MAX_LIMIT: i32 = 10_000;

/// `type` of the condition that is `True` while a grant can be made now, so that
/// `kubectl wait --for=condition=Available ratelimit/NAME` works.
pub const CONDITION_AVAILABLE: &str = "Available";

/// A RateLimit: at most `limit` grants in any window of `window`.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "RateLimit",
    plural = "ratelimits",
    singular = "ratelimit",
    shortname = "rl",
    category = "konductor",
    namespaced,
    status = "RateLimitStatus",
    derive = "PartialEq",
    doc = "A RateLimit grants at most `limit` claims in any window of length `window` (and, with `maxConcurrent`, at most that many held at once); the rest wait in order of priority, then arrival.",
    printcolumn(name = "Used", type_ = "integer", json_path = ".status.used"),
    printcolumn(name = "Limit", type_ = "integer", json_path = ".spec.limit"),
    printcolumn(name = "Window", type_ = "string", json_path = ".spec.window"),
    printcolumn(name = "Next Slot", type_ = "string", json_path = ".status.nextSlotAt"),
    printcolumn(
        name = "Waiting",
        type_ = "integer",
        json_path = ".status.waitingCount"
    ),
    printcolumn(
        name = "Token",
        type_ = "integer",
        json_path = ".status.fencingToken",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// How many grants any window of `window` may hold (at least 1).
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub limit: i32,

    /// The window's length, as a Go duration (`1h`, `1m`, at least `1s`): a grant counts
    /// against the limit for this long after it was made.
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub window: String,

    /// Also at most this many holders at once (a `run` holds its grant while its
    /// command runs); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent: Option<i32>,

    /// How long a claim lives without renewal, as a Go duration (default `5m`).
    #[serde(default = "default_ttl")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: a holder renews its claim several times per ttl, and needs time to stop its command before the ttl runs out"))]
    pub ttl: String,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        Self {
            limit: 1,
            window: "1m".to_owned(),
            max_concurrent: None,
            ttl: default_ttl(),
        }
    }
}

fn default_ttl() -> String {
    crate::locks::DEFAULT_TTL.to_owned()
}

/// Whether a RateLimit can grant now.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum RateLimitPhase {
    /// A grant can be made now.
    #[default]
    Available,
    /// The window holds `limit` grants (or `maxConcurrent` hold it): claims wait.
    Limited,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the controller last decided about a RateLimit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStatus {
    /// Available or Limited.
    #[serde(default)]
    pub phase: RateLimitPhase,
    /// Grants made in the window that ends now.
    #[serde(default)]
    pub used: i32,
    /// When the next grant can be made, while the window is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_slot_at: Option<MicroTime>,
    /// When each grant still in the window was made, oldest first: the record the
    /// window is counted from (after a restart, too).
    #[serde(default)]
    pub recent_grants: Vec<MicroTime>,
    /// The holders granted, in grant order.
    #[serde(default)]
    pub holders: Vec<String>,
    /// The grants in force, the queue, the token counter and the conditions.
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}

/// The RateLimit's resource, as the list of kinds registers it.
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, NONE, READ};
    use kube::CustomResourceExt;
    vec![KindEntry {
        controller: Access {
            verbs: READ,
            status_verbs: &["patch"],
        },
        // create: `ratelimit run|take --limit N --window D` make it on first use.
        workload: Access {
            verbs: &["create", "get", "list", "watch"],
            ..NONE
        },
        // Available now, Limited a moment later: nothing a Gate could wait for.
        gate_preset: false,
        ..KindEntry::of(RateLimit::crd(), Some(crate::locks::MAX_LOCK_NAME_LEN))
    }]
}
