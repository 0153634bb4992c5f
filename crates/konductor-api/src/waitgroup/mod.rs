//! The `WaitGroup` kind (`konductor.io/v1`): fan-out / fan-in with named members. A
//! producer adds members by ID (one per Job, per input file…), workers mark them done,
//! and a consumer waits until every member is finished — or until too many failed.
//!
//! Each member is its own claim object, a [`WaitGroupMember`] named by [`member_name`]
//! from (group, member ID): adding twice is the same create and marking done twice the
//! same write, so retries never count twice (a counter that clients read, modify and
//! write does). What the members add up to is decided by [`rules::evaluate`] alone. The
//! semantics are in `docs/waitgroup.md`.

pub mod rules;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::evaluation::Lifecycle;

use crate::barrier::arrival::Outcome;

/// Label carried by every member naming its WaitGroup, so one group's members can be
/// listed and watched with `-l konductor.io/waitgroup=NAME`.
pub const WAITGROUP_LABEL: &str = "konductor.io/waitgroup";

/// The longest WaitGroup name: names double as the value of [`WAITGROUP_LABEL`].
pub const MAX_WAITGROUP_NAME_LEN: usize = 63;

/// The longest member ID (a pod name, an input file's path, an index).
pub const MAX_MEMBER_ID_LEN: usize = 253;

/// The longest message a member may report.
pub const MAX_MEMBER_MESSAGE_LEN: usize = 1024;

/// How many pending member IDs `status.pending` lists (the earliest added); the count of
/// all of them is `status.counter`.
pub const PENDING_LISTED: usize = 20;

/// How many failed members `status.failures` lists (the earliest failed).
pub const FAILURES_LISTED: usize = 20;

/// The largest `spec.expected` and `spec.maxFailed`.
pub const MAX_MEMBERS: i32 = 1_000_000;

/// `type` of the condition that is `True` once every member finished within
/// `spec.maxFailed`, so that `kubectl wait --for=condition=Done waitgroup/NAME` works.
pub const CONDITION_DONE: &str = "Done";

/// A WaitGroup: done when every member added to it is done, failed as soon as more
/// than `maxFailed` of them failed.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "WaitGroup",
    plural = "waitgroups",
    singular = "waitgroup",
    shortname = "wg",
    category = "konductor",
    namespaced,
    status = "WaitGroupStatus",
    derive = "PartialEq",
    doc = "A WaitGroup waits for a dynamic set of named members: Done once it is sealed (or has `spec.expected` members) and every member finished, Failed as soon as more than `spec.maxFailed` members failed.",
    printcolumn(name = "Added", type_ = "integer", json_path = ".status.added"),
    printcolumn(name = "Done", type_ = "integer", json_path = ".status.done"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failed"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Sealed",
        type_ = "boolean",
        json_path = ".spec.sealed",
        priority = 1
    ),
    printcolumn(
        name = "Expected",
        type_ = "integer",
        json_path = ".spec.expected",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WaitGroupSpec {
    /// How many members make the group complete, when known in advance. Without it the
    /// group is complete once `sealed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_MEMBERS))]
    pub expected: Option<i32>,

    /// Set by the producer once it has added every member (dynamic fan-out): from then
    /// on the members added are all there will be. Cannot be unset.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self || !oldSelf").message("a sealed WaitGroup cannot be unsealed"))]
    pub sealed: bool,

    /// How many members may fail with the group still Done (default 0); one more
    /// failure fails the group at once.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_MEMBERS))]
    pub max_failed: i32,

    /// How long a member held by a worker (`koncli waitgroup run`) lives without
    /// renewal, as a Go duration (at least `2s`): a worker not heard of for this long
    /// before its member is done fails the member, so a worker that dies without a word
    /// fails the group instead of hanging it. Without it held members never expire.
    #[serde(default, rename = "memberTTL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("must be at least 2s: a worker renews its member several times per ttl"))]
    pub member_ttl: Option<String>,

    /// How long to wait for the group to be Done, counted from its creation, as a Go
    /// duration (`30m`, `2h`). Without it the group waits forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub timeout: Option<String>,

    /// How long after the group finished (Done, Failed or Timeout) the controller
    /// deletes it, with its members, as a Go duration. Without it finished groups stay
    /// until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN))]
    pub ttl_after_finished: Option<String>,

    /// How many failed attempts a member gets (default 1): a member fails for good —
    /// and only then counts toward `maxFailed` — after this many attempts failed; a
    /// retry before then (`koncli waitgroup run` again) runs its work again.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = MAX_ATTEMPTS))]
    pub member_attempts: i32,

    /// How many times a member's work may be interrupted (SIGINT, SIGTERM, SIGHUP or
    /// SIGQUIT while it ran: a node drain, a cancelled CI run) without counting as a
    /// failed attempt (default 3); further interruptions count as failures.
    #[serde(default = "default_max_interruptions")]
    #[schemars(range(min = 0, max = MAX_ATTEMPTS))]
    pub max_interruptions: i32,
}

impl Default for WaitGroupSpec {
    fn default() -> Self {
        Self {
            expected: None,
            sealed: false,
            max_failed: 0,
            member_ttl: None,
            timeout: None,
            ttl_after_finished: None,
            member_attempts: 1,
            max_interruptions: DEFAULT_MAX_INTERRUPTIONS,
        }
    }
}

fn one() -> i32 {
    1
}

fn default_max_interruptions() -> i32 {
    DEFAULT_MAX_INTERRUPTIONS
}

pub use crate::DEFAULT_MAX_INTERRUPTIONS;

/// The largest `spec.memberAttempts` and `spec.maxInterruptions`.
pub const MAX_ATTEMPTS: i32 = 100;

/// The most past attempts a member records (`spec.attempts`).
pub const MAX_RECORDED_ATTEMPTS: usize = 2 * MAX_ATTEMPTS as usize;

/// Where a WaitGroup stands. Done, Failed and Timeout are final.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema,
)]
pub enum WaitGroupPhase {
    /// Not complete yet (not sealed and fewer than `expected` members, or members still
    /// pending), or nothing added yet.
    #[default]
    Waiting,
    /// Complete, and every member finished with at most `maxFailed` failures.
    Done,
    /// More than `maxFailed` members failed (or the spec is invalid).
    Failed,
    /// The deadline passed first.
    Timeout,
    /// A phase this version does not know (written by a newer controller).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

crate::evaluation::phase!(WaitGroupPhase { Waiting, Done, Failed, Timeout, Unknown } finished: Done | Failed | Timeout);

/// One member that failed, as the group's status lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberFailure {
    /// The member's ID.
    pub member: String,
    /// What it reported (or why it expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its command's exit code, when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether it failed by expiring (its worker stopped renewing it) rather than by
    /// reporting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    /// How many of its attempts failed (interruptions beyond `maxInterruptions`
    /// included), this one too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: i32,
}

/// What the controller observed: written only through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitGroupStatus {
    /// Waiting, Done, Failed or Timeout.
    #[serde(default)]
    pub phase: WaitGroupPhase,

    /// Members added (distinct IDs).
    #[serde(default)]
    pub added: i32,

    /// Members done successfully.
    #[serde(default)]
    pub done: i32,

    /// Members failed (reported, or expired).
    #[serde(default)]
    pub failed: i32,

    /// `added − done − failed`: members still pending (the original WaitGroup's
    /// counter).
    #[serde(default)]
    pub counter: i32,

    /// The first pending member IDs (at most 20, earliest added first); `counter` is
    /// how many there are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,

    /// The first failed members (at most 20), with their messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<MemberFailure>,

    /// Members added after the group finished: not counted (the status is the record of
    /// how the group finished).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late: i32,

    /// Its deadline, when it finished, its conditions and their generation.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

crate::evaluation::lifecycle!(WaitGroup, WaitGroupStatus, WaitGroupPhase, summary: CONDITION_DONE);

/// One member of a WaitGroup (in the same namespace): added by creating it, done by
/// writing its outcome.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "WaitGroupMember",
    plural = "waitgroupmembers",
    singular = "waitgroupmember",
    shortname = "wgm",
    category = "konductor",
    namespaced,
    status = "WaitGroupMemberStatus",
    derive = "PartialEq",
    doc = "A WaitGroupMember is one member of a WaitGroup: created when the member is added, its outcome written when it is done.",
    printcolumn(name = "WaitGroup", type_ = "string", json_path = ".spec.waitGroup"),
    printcolumn(name = "Member", type_ = "string", json_path = ".spec.member"),
    printcolumn(name = "Outcome", type_ = "string", json_path = ".spec.outcome.result"),
    printcolumn(
        name = "Holder",
        type_ = "string",
        json_path = ".spec.holder",
        priority = 1
    ),
    printcolumn(
        name = "Expired",
        type_ = "boolean",
        json_path = ".status.expired",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WaitGroupMemberSpec {
    /// Name of the WaitGroup (in the same namespace). Immutable.
    #[schemars(length(min = 1, max = MAX_WAITGROUP_NAME_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("waitGroup is immutable"))]
    pub wait_group: String,

    /// The member's ID, unique within the group: a member counts once however often
    /// it is added. Immutable.
    #[schemars(length(min = 1, max = MAX_MEMBER_ID_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("member is immutable"))]
    pub member: String,

    /// The worker holding the member (`koncli waitgroup run`), which renews it. A held
    /// member of a group with `spec.memberTTL` fails if not renewed for that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::barrier::arrival::MAX_HOLDER_LEN))]
    pub holder: Option<String>,

    /// Bumped by the holder to show it is alive. The controller measures the ttl from
    /// when it sees this change, on its own clock, never from the value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,

    /// What the member's current attempt came to: set when it is done. Written once;
    /// removed only by a retry that moves a failed attempt into `attempts` (the group's
    /// `memberAttempts` allowing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("outcome is written once"))]
    pub outcome: Option<MemberOutcome>,

    /// Set by the holder when its work was interrupted (a signal): from then on its end
    /// — or its expiry — is an interruption, not a failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupting: bool,

    /// The member's earlier attempts that did not finish it (failed with attempts
    /// left, or interrupted), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RECORDED_ATTEMPTS))]
    pub attempts: Vec<MemberAttempt>,
}

/// How an earlier attempt at a member ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AttemptResult {
    /// Its work failed (or its holder expired).
    Failed,
    /// Its work was interrupted by a signal (and did not succeed after it).
    Interrupted,
    /// A result this version does not know (written by a newer client): counted as a
    /// failure.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// One earlier attempt at a member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberAttempt {
    /// Failed or Interrupted.
    pub result: AttemptResult,
    /// Who ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::barrier::arrival::MAX_HOLDER_LEN))]
    pub holder: Option<String>,
    /// Its command's exit code, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What it said (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MEMBER_MESSAGE_LEN))]
    pub message: Option<String>,
    /// When it ended (on the writer's clock: for people, not for rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<MicroTime>,
}

/// What a member came to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberOutcome {
    /// `Succeeded` or `Failed`.
    pub result: Outcome,
    /// The exit code of the member's command, if it ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Free text, e.g. why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MEMBER_MESSAGE_LEN))]
    pub message: Option<String>,
}

impl MemberOutcome {
    /// A success, with the exit code of the command if one ran.
    pub fn succeeded(exit_code: Option<i32>) -> Self {
        Self {
            result: Outcome::Succeeded,
            exit_code,
            message: None,
        }
    }

    /// A failure, with an exit code and a message when there are any.
    pub fn failed(exit_code: Option<i32>, message: Option<String>) -> Self {
        Self {
            result: Outcome::Failed,
            exit_code,
            message,
        }
    }
}

/// What the controller says of a member: written only by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitGroupMemberStatus {
    /// Set when the member expired (held, not renewed for the group's `memberTTL`
    /// before it was done): it counts as failed, whatever is reported afterwards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,

    /// When the controller expired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<MicroTime>,

    /// Which attempt expired: the length of `spec.attempts` then. A retry that records
    /// the expired attempt starts a new one, which the expiry no longer concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_attempt: Option<i32>,
}

impl WaitGroupMember {
    /// The member object as every Konductor client writes it: named by
    /// [`member_name`] (so adding twice is the same create), labelled with its group
    /// ([`WAITGROUP_LABEL`]) and owned by the group with `group_uid`.
    pub fn of_group(spec: WaitGroupMemberSpec, group_uid: &str) -> Self {
        let mut member = Self::new(&member_name(&spec.wait_group, &spec.member), spec);
        member.metadata.labels =
            Some([(WAITGROUP_LABEL.to_owned(), member.spec.wait_group.clone())].into());
        member.metadata.owner_references = Some(vec![crate::owner_reference(
            "WaitGroup",
            member.spec.wait_group.clone(),
            group_uid,
        )]);
        member
    }

    /// Whether the controller expired the member's current attempt (not an earlier
    /// one a retry has recorded since).
    pub fn expired_now(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.expired
                && s.expired_attempt
                    .is_none_or(|n| usize::try_from(n).ok() == Some(self.spec.attempts.len()))
        })
    }
}

/// Where a member stands, from its records and its group's attempt rules
/// (`memberAttempts`, `maxInterruptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not finished, and no attempt ended: not started, or running.
    Pending,
    /// Its current attempt ended without finishing it — failed with attempts left, or
    /// interrupted — so it is pending again; a retry records `ended` in
    /// `spec.attempts` and runs it again.
    Retry {
        /// The attempt that ended, as a retry records it.
        ended: MemberAttempt,
    },
    /// Done successfully.
    Done,
    /// Failed for good: `memberAttempts` attempts failed.
    Failed(MemberFailure),
}

impl Standing {
    /// Whether the member is finished (done, or failed for good).
    pub fn is_finished(&self) -> bool {
        matches!(self, Standing::Done | Standing::Failed(_))
    }
}

impl WaitGroupMemberSpec {
    /// Member `member` of group `wait_group`, not done yet and not held.
    pub fn new(wait_group: impl Into<String>, member: impl Into<String>) -> Self {
        Self {
            wait_group: wait_group.into(),
            member: member.into(),
            holder: None,
            renew_time: None,
            outcome: None,
            interrupting: false,
            attempts: Vec::new(),
        }
    }
}

/// The deterministic name of member `member` of WaitGroup `wait_group`: a DNS label,
/// `<group>-<member>-<hash>` as [`crate::arrival_name`] builds it.
///
/// ```
/// use konductor_api::waitgroup::member_name;
/// assert_eq!(member_name("ingest", "file-7"), member_name("ingest", "file-7"));
/// assert_ne!(member_name("ingest", "File.7"), member_name("ingest", "file-7"));
/// ```
pub fn member_name(wait_group: &str, member: &str) -> String {
    crate::barrier::arrival::claim_name(wait_group, member)
}

/// The WaitGroup's resources, as the list of kinds registers them: the group and its
/// claims, the members.
pub fn kinds() -> Vec<crate::crd::KindEntry> {
    use crate::crd::{Access, KindEntry, NONE};
    use kube::CustomResourceExt;
    vec![
        KindEntry {
            // delete: `spec.ttlAfterFinished`.
            controller: Access {
                verbs: &["get", "list", "watch", "delete"],
                status_verbs: &["update"],
            },
            // create: `waitgroup add` and `run` create the group they are asked to
            // use; patch: `waitgroup seal`.
            workload: Access {
                verbs: &["create", "get", "list", "watch", "patch"],
                ..NONE
            },
            ..KindEntry::of(WaitGroup::crd(), Some(MAX_WAITGROUP_NAME_LEN))
        },
        KindEntry {
            // patch: adoption; status update: expiring a held member.
            controller: Access {
                verbs: &["get", "list", "watch", "patch"],
                status_verbs: &["update"],
            },
            // create: add; patch: done and renewal; get: done of a member added elsewhere.
            workload: Access {
                verbs: &["create", "get", "patch"],
                ..NONE
            },
            reconciled: false,
            ..KindEntry::of(WaitGroupMember::crd(), None)
        },
    ]
}
