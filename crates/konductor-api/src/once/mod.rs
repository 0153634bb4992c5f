//! The `Once` kind (`konductor.io/v1`): run a piece of work once per key across any
//! number of replicas — one fenced executor at a time, everyone else waits for the
//! recorded outcome, and a dead executor is taken over.
//!
//! A Once's claims are [`Permit`](crate::locks::Permit)s (`lockRef.kind: Once`), as a
//! Mutex's are: a would-be executor creates one (with the key it wants run), renews it
//! while it waits or works, and reports its outcome on it (`spec.outcome`, with its
//! fencing token). Which claim executes, what its outcome means and when the Once moves
//! on to another key is decided by [`rules::evaluate`] alone. The guarantee, honestly:
//! **at most one executor at a time, fenced, and the outcome recorded** — work that dies
//! after doing its job but before reporting runs again, so it must be idempotent or
//! store its fencing token with its result. The semantics are in `docs/once.md`.

pub mod rules;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::locks::ClaimsStatus;

/// The longest key (a migration hash, an app version, an image digest all fit).
pub const MAX_KEY_LEN: usize = 253;

/// The longest outcome message a claim may report.
pub const MAX_OUTCOME_MESSAGE_LEN: usize = 1024;

/// How many attempts `status.history` keeps (the most recent).
pub const HISTORY_LEN: usize = 10;

/// How many finished keys `status.completedKeys` remembers (the most recent): a
/// straggler asking for one of them is answered from it without running anything.
pub const COMPLETED_KEYS_LEN: usize = 32;

/// The most attempts `spec.maxAttempts` may allow.
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;

/// `type` of the condition that is `True` once the work succeeded for the current key,
/// so that `kubectl wait --for=condition=Done once/NAME` works.
pub const CONDITION_DONE: &str = "Done";

/// A Once: its work runs once per key, by one fenced executor at a time.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Once",
    plural = "onces",
    singular = "once",
    category = "konductor",
    namespaced,
    status = "OnceStatus",
    derive = "PartialEq",
    doc = "A Once runs a piece of work once per key: one fenced executor at a time, the others wait for its recorded outcome, and a dead executor is taken over.",
    printcolumn(name = "Key", type_ = "string", json_path = ".status.key"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Executor", type_ = "string", json_path = ".status.executor"),
    printcolumn(name = "Attempts", type_ = "integer", json_path = ".status.attempts"),
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
pub struct OnceSpec {
    /// The version of the work (a migration hash, an app version): a new key means the
    /// work must run again. Claims that name no key of their own ask for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_KEY_LEN))]
    pub key: Option<String>,

    /// How long an executor's claim lives without renewal, as a Go duration (default
    /// `5m`): an executor not heard of for this long is taken over.
    #[serde(default = "default_ttl")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: an executor renews its claim several times per ttl, and needs time to stop its work before the ttl runs out"))]
    pub ttl: String,

    /// How many attempts a key gets (default 3); an attempt lost to a dead executor
    /// counts. After the last one fails the Once is Failed for that key.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = MAX_ATTEMPTS_LIMIT))]
    pub max_attempts: i32,

    /// How many times the work for one key may be interrupted (its executor got
    /// SIGINT, SIGTERM, SIGHUP or SIGQUIT: a node drain, a cancelled rollout) without
    /// the attempt counting toward `maxAttempts` (default 3); further interruptions
    /// count.
    #[serde(default = "default_max_interruptions")]
    #[schemars(range(min = 0, max = MAX_ATTEMPTS_LIMIT))]
    pub max_interruptions: i32,
}

impl Default for OnceSpec {
    fn default() -> Self {
        Self {
            key: None,
            ttl: default_ttl(),
            max_attempts: default_max_attempts(),
            max_interruptions: default_max_interruptions(),
        }
    }
}

fn default_max_interruptions() -> i32 {
    crate::DEFAULT_MAX_INTERRUPTIONS
}

fn default_ttl() -> String {
    crate::locks::DEFAULT_TTL.to_owned()
}

fn default_max_attempts() -> i32 {
    3
}

/// Where a Once stands for its current key.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum OncePhase {
    /// Nobody executes it yet (or the last attempt failed and another may start).
    #[default]
    Pending,
    /// An executor holds it (`executor`, `fencingToken`).
    Running,
    /// The work succeeded for `key`: nobody runs it again for that key.
    Succeeded,
    /// Every allowed attempt failed for `key` (`koncli once reset` allows a new try).
    Failed,
    /// A phase this version does not know (written by a newer controller).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

crate::evaluation::phase!(OncePhase { Pending, Running, Succeeded, Failed, Unknown } finished: Succeeded | Failed);

/// How an attempt ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AttemptOutcome {
    /// The executor reported success.
    Succeeded,
    /// The executor reported failure.
    Failed,
    /// The executor's claim expired (not renewed within the ttl) or was deleted before
    /// it reported anything.
    Lost,
    /// The executor was interrupted (a signal) and its work did not succeed after it:
    /// the attempt does not count toward `maxAttempts` (up to `maxInterruptions`).
    Interrupted,
    /// An outcome this version does not know (written by a newer controller).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What an executor reports on its claim when its work ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedOutcome {
    /// `Succeeded` or `Failed`.
    pub result: crate::Outcome,
    /// The fencing token the work ran under: an outcome with an older token than the
    /// executor's in force is recorded as late and changes nothing.
    pub fencing_token: i64,
    /// The work's exit code, if it was a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A short note (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_OUTCOME_MESSAGE_LEN))]
    pub message: Option<String>,
    /// The work was interrupted (a signal) and did not succeed after it: with `result`
    /// Failed, an interruption rather than a failure (a controller that predates this
    /// field counts it as a failure).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// One attempt, as `status.history` records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The key it ran for.
    #[serde(default)]
    pub key: String,
    /// Who executed it.
    pub holder: String,
    /// Its fencing token.
    pub fencing_token: i64,
    /// When it was granted (unknown for a late report the history no longer holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<MicroTime>,
    /// When its end was recorded.
    pub finished_at: MicroTime,
    /// Succeeded, Failed or Lost.
    pub outcome: AttemptOutcome,
    /// The work's exit code, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The executor's note, or why the attempt was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Reported by an executor whose claim had already expired: recorded, and changed
    /// nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// A key the Once finished with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletedKey {
    /// The key.
    pub key: String,
    /// Succeeded or Failed.
    pub phase: OncePhase,
    /// When.
    pub completed_at: MicroTime,
    /// The fencing token of its last attempt.
    pub fencing_token: i64,
}

/// What the controller last decided about a Once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnceStatus {
    /// Pending, Running, Succeeded or Failed — for `key`.
    #[serde(default)]
    pub phase: OncePhase,
    /// The key the phase is about.
    #[serde(default)]
    pub key: String,
    /// Who executes it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// When the current (or last) attempt for `key` was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<MicroTime>,
    /// When `key` finished (Succeeded or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<MicroTime>,
    /// Attempts made for `key` that count toward `maxAttempts` (lost ones do;
    /// interrupted ones do not, up to `maxInterruptions`).
    #[serde(default)]
    pub attempts: i32,
    /// The `spec.key` this status has taken into account: a spec key is made the
    /// current key once (when it is new), never again after it is finished and
    /// forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_key: Option<String>,
    /// How many times the work for `key` was interrupted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interruptions: i32,
    /// The last attempts, oldest first (at most 10).
    #[serde(default)]
    pub history: Vec<Attempt>,
    /// The keys finished most recently, oldest first (at most 32): asking for one of
    /// them again is answered from here.
    #[serde(default)]
    pub completed_keys: Vec<CompletedKey>,
    /// Who executes (its grant, while Running), who waits to execute `key`, the
    /// token counter (the executor's token, while Running) and the conditions
    /// (`Ready`, and `Done`: the work succeeded for `key`).
    #[serde(flatten)]
    pub claims: ClaimsStatus,
}

/// What a claim asking for `key` finds in a Once's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStanding {
    /// Finished: succeeded (by whom, with which token) …
    Succeeded(CompletedKey),
    /// … or failed for good.
    Failed(CompletedKey),
    /// Not finished: running, pending, or not reached yet.
    Open,
}

impl OnceStatus {
    /// Where `key` stands: finished (remembered in `completedKeys`) or open.
    pub fn standing_of(&self, key: &str) -> KeyStanding {
        match self.completed_keys.iter().rev().find(|c| c.key == key) {
            Some(done) if done.phase == OncePhase::Succeeded => {
                KeyStanding::Succeeded(done.clone())
            }
            Some(done) => KeyStanding::Failed(done.clone()),
            None => KeyStanding::Open,
        }
    }

    /// The attempt recorded with this fencing token (the latest such entry).
    pub fn attempt_with(&self, token: i64) -> Option<&Attempt> {
        self.history.iter().rev().find(|a| a.fencing_token == token)
    }

    /// The condition of `type_`, if the controller has written one.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.claims.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The status as it is after `koncli once reset --key KEY`: `key` is forgotten as
    /// finished, so it may run again; if it is the current key, its attempts start from
    /// 0. History and the token counter stay.
    #[must_use]
    pub fn reset(&self, key: &str) -> Self {
        let mut status = self.clone();
        status.completed_keys.retain(|c| c.key != key);
        if status.key == key {
            status.start_key(key.to_owned());
        }
        status
    }

    /// Makes `key` the current key, from its start: Pending, no attempts, nobody
    /// executing (the token counter, the history and the finished keys stay).
    pub fn start_key(&mut self, key: String) {
        self.key = key;
        self.phase = OncePhase::Pending;
        self.attempts = 0;
        self.interruptions = 0;
        self.executor = None;
        self.started_at = None;
        self.completed_at = None;
        self.claims.grants = Some(Vec::new());
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The key a claim asks for: its own, else the Once's `spec.key`, else the empty key.
pub fn effective_key(claim_key: Option<&str>, spec_key: Option<&str>) -> String {
    claim_key
        .filter(|k| !k.is_empty())
        .or(spec_key)
        .unwrap_or_default()
        .to_owned()
}

/// The Once's resource, as the list of kinds registers it (its claims are the lock
/// kinds' Permits).
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, READ};
    use kube::CustomResourceExt;
    vec![KindEntry {
        controller: Access {
            verbs: READ,
            status_verbs: &["patch"],
        },
        // create: `koncli once run` creates the Once it is asked to run; status
        // update: `koncli once reset` (conditional on the version it read).
        workload: Access {
            verbs: &["create", "get", "list", "watch"],
            status_verbs: &["update"],
        },
        ..KindEntry::of(Once::crd(), Some(crate::locks::MAX_LOCK_NAME_LEN))
    }]
}
