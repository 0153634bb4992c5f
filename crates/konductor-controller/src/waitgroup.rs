//! The WaitGroup controller: WaitGroupMembers in; WaitGroup status, expired members,
//! Events and deadline requeues out, via `konductor_api::waitgroup::rules::evaluate`.
//! Wired to the engine ([`crate::engine`]) as the barrier controller is: a claim index of
//! each group's members fed by one watch, a queue fed by the group and member watches,
//! a reconcile that only translates the rules' answer.
//!
//! A held member (`spec.holder`, renewed by `koncli waitgroup run`) is expired on the
//! controller's clock: the index notes when it *saw* each renewal, never trusting the
//! value written; before expiring one the controller reads it afresh, and marks it
//! with a write conditional on the version read — so a renewal or a done that raced
//! with the expiry wins, and the expiry is looked at again.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use konductor_api::barrier::arrival::Outcome;
use konductor_api::waitgroup::rules::{Expire, MemberRecord, Transition, WaitGroupInput, evaluate};
use konductor_api::waitgroup::{
    WAITGROUP_LABEL, WaitGroup, WaitGroupMember, WaitGroupMemberStatus, WaitGroupPhase,
    WaitGroupStatus,
};
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::engine::adoption::{self, Adopter, Earlier, Orphan};
use crate::engine::claims::{ClaimIndex, Claims, HasUid};
use crate::engine::events::{Events, Note};
use crate::engine::feed_index;
use crate::engine::subject::{ClaimFeeds, Judged, Judgement, Running, Start, SubjectKind};
use crate::engine::writes::{SubjectKey, subject_key};
use crate::queue::Urgency;
use crate::{Error, Result};

/// How metrics and logs name the kind.
const KIND: &str = "waitgroup";

/// The `reportingController` of the WaitGroup controller's Events.
pub const CONTROLLER_NAME: &str = "konductor.io/waitgroup-controller";

/// How soon a group is looked at again when the member index is still filling.
const CACHE_WAIT: Duration = Duration::from_millis(100);

/// How many groups are reconciled at once.
const WORKERS: usize = 8;

/// How many of them may write progress (a member added or done that cannot finish the
/// group by itself) at once: under a burst, each group's changes coalesce in the queue
/// into one status write.
const PROGRESS_WORKERS: usize = 2;

/// What the controller keeps of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedMember {
    /// The object's name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Its resourceVersion (a precondition when adopting or expiring it).
    pub resource_version: Option<String>,
    /// Its ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// Whether it carries the `konductor.io/waitgroup` label naming its group.
    pub labelled: bool,
    /// Its holder and last renewal as written: a change is a renewal seen.
    renewal: (Option<String>, Option<MicroTime>),
    /// What the rules need.
    pub record: MemberRecord,
}

impl HasUid for IndexedMember {
    fn uid(&self) -> &str {
        &self.uid
    }
}

/// How a group's members are indexed: by the group they name.
#[derive(Default)]
pub struct MemberClaims;

impl Claims for MemberClaims {
    type Claim = WaitGroupMember;
    type Kept = IndexedMember;
    type Subject = SubjectKey;

    fn subject(&self, member: &WaitGroupMember) -> SubjectKey {
        (
            member.namespace().unwrap_or_default(),
            member.spec.wait_group.clone(),
        )
    }

    fn keep(
        &self,
        member: &WaitGroupMember,
        before: Option<&IndexedMember>,
        now: Timestamp,
    ) -> IndexedMember {
        let uid = member.uid().unwrap_or_default();
        let renewal = (member.spec.holder.clone(), member.spec.renew_time.clone());
        let same = before.filter(|b| b.uid == uid);
        // Rule 7's clock: when this controller saw the holder take or renew it.
        let renewal_seen_at = match same {
            _ if member.spec.holder.is_none() => None,
            Some(before) if before.renewal == renewal => before.record.renewal_seen_at,
            _ => Some(now),
        };
        IndexedMember {
            name: member.name_any(),
            resource_version: member.resource_version(),
            owners: member.owner_references().to_vec(),
            labelled: member.labels().get(WAITGROUP_LABEL) == Some(&member.spec.wait_group),
            renewal,
            record: MemberRecord::of(member, renewal_seen_at),
            uid,
        }
    }
}

/// Members by group. Cheap to clone; clones share the index.
pub type MemberIndex = ClaimIndex<MemberClaims>;

/// The WaitGroup as a [`SubjectKind`]: its members come from the claim index.
pub struct WaitGroupKind {
    client: Client,
    events: Events,
    members: MemberIndex,
}

/// The members that count for `group`: naming it, and not owned by an earlier group of
/// the same name (those await garbage collection).
fn members_of(group: &WaitGroup, index: &MemberIndex) -> Vec<Arc<IndexedMember>> {
    let uid = group.uid();
    index
        .of(&subject_key(group))
        .into_iter()
        .filter(|m| {
            m.owners
                .iter()
                .filter(|o| o.kind == "WaitGroup")
                .all(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect()
}

/// Makes the group the owner of its members that have none, and labels them.
async fn adopt_members(
    group: &WaitGroup,
    members: &[Arc<IndexedMember>],
    ctx: &WaitGroupKind,
) -> Result<()> {
    let Some(uid) = group.uid() else {
        return Ok(());
    };
    let name = group.name_any();
    let adopter = Adopter {
        kind: "WaitGroup",
        name: &name,
        uid: &uid,
        label: WAITGROUP_LABEL,
        earlier: Earlier::Left,
    };
    let patches = members.iter().filter_map(|member| {
        let orphan = Orphan {
            name: &member.name,
            resource_version: member.resource_version.as_deref(),
            owners: &member.owners,
            labelled: member.labelled,
        };
        adoption::patch(&orphan, &adopter).map(|patch| (member.name.clone(), patch))
    });
    let api: Api<WaitGroupMember> =
        Api::namespaced(ctx.client.clone(), &group.namespace().unwrap_or_default());
    adoption::adopt(&api, patches.collect::<Vec<_>>()).await
}

/// Marks the members `ids` of `group` expired — each only if a fresh read shows it
/// exactly as the index saw it (not renewed, not done since), with a write conditional
/// on that read. Returns whether any was marked or found changed (look again).
async fn expire_members(
    group: &WaitGroup,
    members: &[Arc<IndexedMember>],
    ids: &[String],
    ctx: &WaitGroupKind,
) -> Result<bool> {
    let api: Api<WaitGroupMember> =
        Api::namespaced(ctx.client.clone(), &group.namespace().unwrap_or_default());
    let mut changed = false;
    for kept in members.iter().filter(|m| ids.contains(&m.record.member)) {
        let now = Timestamp::now();
        let Some(mut fresh) = api.get_opt(&kept.name).await? else {
            continue;
        };
        let unchanged = fresh.uid().as_deref() == Some(kept.uid.as_str())
            && (fresh.spec.holder.clone(), fresh.spec.renew_time.clone()) == kept.renewal
            && fresh.spec.outcome.is_none()
            && fresh.spec.attempts.len() == kept.record.attempts.len()
            && fresh.spec.interrupting == kept.record.interrupting;
        if !unchanged {
            ctx.members.note(&fresh, now);
            changed = true;
            continue;
        }
        let based_on = fresh.resource_version();
        fresh.status = Some(WaitGroupMemberStatus {
            expired: true,
            expired_at: Some(MicroTime(now)),
            expired_attempt: i32::try_from(fresh.spec.attempts.len()).ok(),
        });
        match api
            .replace_status(&kept.name, &PostParams::default(), &fresh)
            .await
        {
            Ok(written) => {
                ctx.members.wrote(based_on, &written, now);
                let consequence =
                    match konductor_api::waitgroup::rules::standing_of(&written, &group.spec) {
                        konductor_api::waitgroup::Standing::Failed(_) => "it failed for good",
                        _ if written.spec.interrupting => {
                            "its work had been interrupted: it is pending again"
                        }
                        _ => "the attempt failed; the member is pending again (memberAttempts)",
                    };
                let note = Note {
                    type_: EventType::Warning,
                    reason: "MemberExpired",
                    note: format!(
                        "member {} expired: its holder {} did not renew it for spec.memberTTL {}; {consequence}",
                        kept.record.member,
                        fresh.spec.holder.as_deref().unwrap_or("unknown"),
                        group.spec.member_ttl.as_deref().unwrap_or_default()
                    ),
                    action: "Expire",
                    related: Some(written.object_ref(&())),
                };
                ctx.events.record(KIND, &group.object_ref(&()), note).await;
                changed = true;
            }
            // Renewed or done meanwhile: the next look decides again.
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => changed = true,
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    Ok(changed)
}

impl SubjectKind for WaitGroupKind {
    type Subject = WaitGroup;
    type Transition = Transition;
    type Also = Expire;
    /// The members that counted.
    type Seen = Vec<Arc<IndexedMember>>;

    type Settings = ();

    const KIND: &'static str = KIND;
    const CONTROLLER: &'static str = CONTROLLER_NAME;
    const RUNNING: Running = Running {
        workers: WORKERS,
        progress_workers: Some(PROGRESS_WORKERS),
    };

    /// Its members' feed: a failure may fail the group at once (urgent); the rest is
    /// progress, coalesced per group.
    fn start(start: &Start<WaitGroup>, (): ()) -> (Self, ClaimFeeds) {
        let index = MemberIndex::new();
        let kind = WaitGroupKind {
            client: start.client.clone(),
            events: start.events.clone(),
            members: index.clone(),
        };
        let members: Api<WaitGroupMember> = Api::all(start.client.clone());
        let feed = feed_index(
            members,
            watcher::Config::default(),
            index,
            jiff::Timestamp::now,
            start.queue.clone(),
            |change| {
                let outcome = change
                    .after
                    .as_ref()
                    .and_then(|m| m.record.outcome.as_ref());
                let urgency = if outcome.map(|o| o.result) == Some(Outcome::Failed) {
                    Urgency::Urgent
                } else {
                    Urgency::Normal
                };
                let (namespace, name) = &change.subject;
                Some((ObjectRef::new(name).within(namespace), urgency))
            },
        );
        (kind, Box::pin(feed))
    }

    async fn judge(&self, group: &Arc<WaitGroup>) -> Result<Judged<Self>> {
        if !self.members.is_ready() {
            return Ok(Judged::Later(CACHE_WAIT));
        }
        let created_at = group
            .creation_timestamp()
            .map(|t| t.0)
            .ok_or(Error::MissingCreationTimestamp)?;
        let mut members = members_of(group, &self.members);
        let mut expired_some = false;
        let evaluation = loop {
            let records: Vec<&MemberRecord> = members.iter().map(|m| &m.record).collect();
            let evaluation = evaluate(&WaitGroupInput {
                spec: &group.spec,
                generation: group.meta().generation,
                created_at,
                members: &records,
                previous: group.status.as_ref(),
                now: Timestamp::now(),
            });
            let Expire(expire) = &evaluation.also;
            if expire.is_empty() || expired_some {
                break evaluation;
            }
            // Mark them, then judge again on what the marks left in the index.
            expired_some = expire_members(group, &members, expire, self).await?;
            members = members_of(group, &self.members);
            if !expired_some {
                break evaluation;
            }
        };
        Ok(Judged::Now(Judgement {
            evaluation,
            seen: members,
        }))
    }

    async fn after_write(
        &self,
        group: &WaitGroup,
        judgement: &Judgement<Self>,
    ) -> Result<Option<Duration>> {
        // Adoption does not change what counts, so it comes after the status write.
        adopt_members(group, &judgement.seen, self).await?;
        let late_before = group.status.as_ref().map_or(0, |s| s.late);
        let late = judgement.evaluation.status.late;
        if late > late_before {
            let note = Note {
                type_: EventType::Warning,
                reason: "MemberAfterDone",
                note: format!(
                    "{} member(s) added after the group was Done; they are not counted",
                    late - late_before
                ),
                action: "Reconcile",
                related: None,
            };
            self.events.record(KIND, &group.object_ref(&()), note).await;
        }
        Ok(None)
    }

    fn message(status: &WaitGroupStatus, _: Transition) -> String {
        status.summary()
    }

    fn ended(status: &WaitGroupStatus) -> &'static str {
        match status.phase {
            WaitGroupPhase::Done => "done",
            WaitGroupPhase::Timeout => "timed out",
            _ => "failed",
        }
    }

    fn ttl_after_finished(group: &WaitGroup) -> Option<&str> {
        group.spec.ttl_after_finished.as_deref()
    }
}
