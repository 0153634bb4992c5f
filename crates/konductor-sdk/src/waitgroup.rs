//! WaitGroups: fan-out / fan-in with named members.
//!
//! A producer [`add`](WaitGroups::add)s members by ID and [`seal`](WaitGroups::seal)s
//! the group once it has added them all; workers mark their member
//! [`done`](WaitGroups::done); a consumer [`wait`](WaitGroups::wait)s until the group is
//! Done (or Failed, or timed out). Each member is its own object under a deterministic
//! name, so adding or marking done again — a retry after a lost answer — is the same
//! write and never counts twice. [`WaitGroups::run`] is a worker's whole recipe: add
//! the member, hold it (renewed, when the group has a `memberTTL`, so a worker that dies
//! fails its member instead of hanging the group), run the work, mark it done with the
//! outcome.
//!
//! ```no_run
//! # async fn example(connection: konductor_sdk::Connection) -> konductor_sdk::Result<()> {
//! use konductor_sdk::waitgroup::WaitGroups;
//! let groups = WaitGroups::new(&connection);
//! let files = ["a.csv", "b.csv"].map(String::from);
//! groups.add("ingest", &files).await?;
//! groups.seal("ingest").await?;
//! // … each worker: groups.done("ingest", "a.csv", MemberOutcome::succeeded(None)) …
//! let group = groups.wait("ingest", None, |_| {}).await?;
//! println!("{}: {}", group.phase(), group.status.unwrap_or_default().summary());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use konductor_api::waitgroup::{
    AttemptResult, MemberAttempt, MemberFailure, MemberOutcome, Standing, WaitGroup,
    WaitGroupMember, WaitGroupMemberSpec, WaitGroupPhase, WaitGroupSpec, member_name,
};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::Notify;

use crate::claims::held::{Chain, Loss, Renewal, Timing, renew_periodically, send_renewal};
use crate::claims::{Asked, ask};
use crate::connect::Connection;
use crate::error::Result;
use crate::patches::{self, Interrupting, SpecPatch};
use crate::subjects::{Ensured, Subjects};
use konductor_api::waitgroup::rules::standing_of;

/// How many members `add` creates at once.
const ADD_CONCURRENCY: usize = 16;

/// The WaitGroups of one namespace.
#[derive(Clone)]
pub struct WaitGroups {
    groups: Subjects<WaitGroup>,
    members: Api<WaitGroupMember>,
}

/// What [`WaitGroups::add`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// Members added now.
    pub created: Vec<String>,
    /// Members that were there already (an earlier add, or a worker's done).
    pub existing: Vec<String>,
}

/// What [`WaitGroups::done`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marked {
    /// The outcome was recorded now.
    Recorded,
    /// The member was already done with this result (a retry): nothing changed.
    AlreadyRecorded,
}

/// How [`WaitGroups::run`] ended.
#[derive(Debug)]
pub enum Ran<T> {
    /// The work ran and its outcome was recorded: `Ok` as Succeeded, `Err` as Failed.
    Finished(std::result::Result<T, String>),
    /// The member was already done: nothing ran.
    AlreadyFinished,
    /// The member had failed for good (every allowed attempt failed): nothing ran.
    FailedForGood(MemberFailure),
    /// The hold on the member was lost while the work ran: the work was dropped (the
    /// member counts as failed once the controller expires it).
    Lost(Loss),
}

impl WaitGroups {
    /// WaitGroups in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            groups: Subjects::new(connection, "waitgroup", "waitgroups"),
            members: Api::namespaced(connection.client.clone(), &connection.namespace),
        }
    }

    /// The namespace these WaitGroups live in.
    pub fn namespace(&self) -> &str {
        &self.groups.namespace
    }

    /// Creates a WaitGroup. [`Error::AlreadyExists`](crate::Error::AlreadyExists) if
    /// the name is taken, [`Error::Invalid`](crate::Error::Invalid) (naming the field)
    /// if the server refuses the spec.
    pub async fn create(&self, name: &str, spec: WaitGroupSpec) -> Result<WaitGroup> {
        self.groups.create(&WaitGroup::new(name, spec)).await
    }

    /// The WaitGroup `name`, created from `spec` if it does not exist yet (an existing
    /// one is left as it is).
    pub async fn ensure(&self, name: &str, spec: WaitGroupSpec) -> Result<Ensured<WaitGroup>> {
        self.groups.ensure(&WaitGroup::new(name, spec)).await
    }

    /// The WaitGroup `name`. [`Error::NotFound`](crate::Error::NotFound) if absent.
    pub async fn get(&self, name: &str) -> Result<WaitGroup> {
        self.groups.get(name).await
    }

    /// Deletes a WaitGroup (its members go with it).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.groups.delete(name).await
    }

    /// The WaitGroups of the namespace (or of every namespace), by namespace and name.
    pub async fn list(&self, all_namespaces: bool) -> Result<Vec<WaitGroup>> {
        self.groups.list(all_namespaces).await
    }

    /// The group `name`, refused if it is Done: a member added now would not be
    /// counted (it would be reported as late).
    async fn open_group(&self, name: &str) -> Result<WaitGroup> {
        let group = self.get(name).await?;
        if group.phase() == WaitGroupPhase::Done {
            return Err(self.groups.refused(
                name,
                "is already Done: a member added now would not be counted (create a new WaitGroup for new work)",
            ));
        }
        Ok(group)
    }

    /// Adds the members `ids` (idempotent: a member already there is left as it is).
    /// Refused if the group is Done.
    pub async fn add(&self, name: &str, ids: &[String]) -> Result<Added> {
        let group = self.open_group(name).await?;
        let uid = group.uid().unwrap_or_default();
        // Collected first: a lazy `map` here makes the future not `Send` (a known
        // limit of the compiler's lifetime inference for closures in streams).
        let asks: Vec<_> = ids
            .iter()
            .map(|id| Box::pin(self.add_one(name, id, &uid)))
            .collect();
        let asks = futures::stream::iter(asks).buffered(ADD_CONCURRENCY);
        let mut added = Added::default();
        for (id, created) in asks.try_collect::<Vec<_>>().await? {
            if created {
                added.created.push(id);
            } else {
                added.existing.push(id);
            }
        }
        Ok(added)
    }

    /// Creates member `id` of the group `name` (whose uid is `uid`); whether it was
    /// created now (`false`: it was there).
    async fn add_one(&self, name: &str, id: &str, uid: &str) -> Result<(String, bool)> {
        let member = WaitGroupMember::of_group(WaitGroupMemberSpec::new(name, id), uid);
        match ask(&self.members, &member).await {
            Ok(Asked::Created(_)) => Ok((id.to_owned(), true)),
            Ok(Asked::Found(_) | Asked::Vanished) => Ok((id.to_owned(), false)),
            Err(failed) => Err(self
                .groups
                .request(name, failed.verb, "waitgroupmembers")
                .error(failed.error)),
        }
    }

    /// Marks member `id` done with `outcome` (idempotent: the same result again changes
    /// nothing; a different one is refused — an outcome is written once). A member not
    /// added yet is added done.
    pub async fn done(&self, name: &str, id: &str, outcome: MemberOutcome) -> Result<Marked> {
        let object = member_name(name, id);
        let patch = SpecPatch::new(patches::Outcome { outcome: &outcome });
        let patched = self
            .members
            .patch(&object, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match patched {
            Ok(_) => Ok(Marked::Recorded),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let group = self.open_group(name).await?;
                let mut spec = WaitGroupMemberSpec::new(name, id);
                spec.outcome = Some(outcome.clone());
                let member = WaitGroupMember::of_group(spec, &group.uid().unwrap_or_default());
                match ask(&self.members, &member).await {
                    Ok(Asked::Created(_)) => Ok(Marked::Recorded),
                    // Added meanwhile: mark it as asked.
                    Ok(_) => Box::pin(self.done(name, id, outcome)).await,
                    Err(failed) => Err(self
                        .groups
                        .request(name, failed.verb, "waitgroupmembers")
                        .error(failed.error)),
                }
            }
            Err(kube::Error::Api(status)) if status.code == 422 => {
                let existing = self.members.get(&object).await.map_err(|e| {
                    self.groups
                        .request(name, "get", "waitgroupmembers")
                        .error(e)
                })?;
                match existing.spec.outcome {
                    Some(recorded) if recorded.result == outcome.result => {
                        Ok(Marked::AlreadyRecorded)
                    }
                    Some(recorded) => Err(self.groups.refused(
                        name,
                        format!(
                            "member {id} is already done as {:?}: an outcome is written once",
                            recorded.result
                        ),
                    )),
                    None => Err(self
                        .groups
                        .request(name, "patch", "waitgroupmembers")
                        .error(kube::Error::Api(status))),
                }
            }
            Err(error) => Err(self
                .groups
                .request(name, "patch", "waitgroupmembers")
                .error(error)),
        }
    }

    /// Seals the group: the members added are all there will be.
    pub async fn seal(&self, name: &str) -> Result<WaitGroup> {
        let patch = SpecPatch::new(Sealed { sealed: true });
        self.groups.patch(name, &patch).await
    }

    /// Waits (watching, riding out reconnects and server restarts) until the group is
    /// finished — Done, Failed or Timeout — and returns it as it finished; `progress`
    /// sees every version on the way. [`Error::StillWaiting`](crate::Error::StillWaiting)
    /// when `timeout` passes first, [`Error::NotFound`](crate::Error::NotFound) if the
    /// group does not exist or is deleted.
    pub async fn wait(
        &self,
        name: &str,
        timeout: Option<Duration>,
        progress: impl FnMut(crate::waiting::Progress<'_, WaitGroup>),
    ) -> Result<WaitGroup> {
        self.groups
            .wait_until(
                name,
                timeout,
                progress,
                |group| group.phase().is_finished(),
                |group| {
                    format!(
                        "{}: {}",
                        group.phase(),
                        group.status.clone().unwrap_or_default().summary()
                    )
                },
            )
            .await
    }

    /// Takes member `id` as `holder` (adding it if needed): with a group `memberTTL`,
    /// the member is renewed in the background until marked done, and [`Held::lost`]
    /// says when the hold can no longer be trusted. A member already done, or failed
    /// for good, is not taken ([`Hold::Done`], [`Hold::Failed`]); one whose last attempt
    /// failed with attempts left, or was interrupted, is taken for a new attempt (the
    /// ended one recorded in `spec.attempts`). A sealed group takes no new member: a
    /// member ID it does not have is refused, naming the pending ones.
    pub async fn hold(&self, name: &str, id: &str, holder: &str) -> Result<Hold> {
        let group = self.get(name).await?;
        let ttl = group
            .spec
            .member_ttl
            .as_deref()
            .map(konductor_api::duration::parse_duration)
            .transpose()
            .map_err(|e| self.groups.refused(name, format!("spec.memberTTL: {e}")))?;
        let object = member_name(name, id);
        let read = |e| {
            self.groups
                .request(name, "get", "waitgroupmembers")
                .error(e)
        };
        let write = |e| {
            self.groups
                .request(name, "patch", "waitgroupmembers")
                .error(e)
        };
        let (taken, sent) = loop {
            let Some(mut member) = self.members.get_opt(&object).await.map_err(read)? else {
                if group.spec.sealed {
                    return Err(self.groups.refused(name, not_a_member(&group, id)));
                }
                self.add(name, &[id.to_owned()]).await?;
                continue;
            };
            let now = MicroTime(Timestamp::now());
            match standing_of(&member, &group.spec) {
                Standing::Done => return Ok(Hold::Done),
                Standing::Failed(failure) => return Ok(Hold::Failed(failure)),
                Standing::Retry { mut ended } => {
                    ended.finished_at.get_or_insert(now.clone());
                    member.spec.attempts.push(ended);
                    member.spec.outcome = None;
                }
                Standing::Pending if member.spec.interrupting => {
                    // Its worker was interrupted and did not withdraw (killed after the
                    // signal): an interruption, recorded as it would have.
                    member.spec.attempts.push(MemberAttempt {
                        result: AttemptResult::Interrupted,
                        holder: member.spec.holder.clone(),
                        exit_code: None,
                        message: Some(
                            "interrupted, and its worker did not withdraw (stopped before it could)"
                                .to_owned(),
                        ),
                        finished_at: Some(now.clone()),
                    });
                }
                Standing::Pending => {}
            }
            member.spec.interrupting = false;
            member.spec.holder = Some(holder.to_owned());
            member.spec.renew_time = Some(now);
            let sent = Instant::now();
            // Written over the version read: two workers retrying one member never
            // both record the ended attempt.
            match patch_over(&self.members, &object, &member).await {
                Ok(taken) => break (taken, sent),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(write(error)),
            }
        };
        let uid = taken.uid().unwrap_or_default();
        let renewal = ttl.map(|ttl| {
            let state = Arc::new(HoldState {
                members: self.members.clone(),
                object: object.clone(),
                uid: uid.clone(),
                timing: Timing::for_ttl(ttl),
                chain: Mutex::new(Chain::new(sent, true)),
                loss: Mutex::new(None),
                changed: Notify::new(),
            });
            (state.clone(), tokio::spawn(state.renew()))
        });
        Ok(Hold::Held(Box::new(Held {
            groups: self.clone(),
            group: name.to_owned(),
            id: id.to_owned(),
            holder: holder.to_owned(),
            uid,
            renewal,
        })))
    }

    /// A worker's whole recipe: adds and holds member `id` as `holder`, runs `work`
    /// (dropped if the hold is lost), and marks the member done with the outcome — `Ok`
    /// as Succeeded, `Err(message)` as Failed.
    pub async fn run<F, Fut, T>(
        &self,
        name: &str,
        id: &str,
        holder: &str,
        work: F,
    ) -> Result<Ran<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        let held = match self.hold(name, id, holder).await? {
            Hold::Held(held) => held,
            Hold::Done => return Ok(Ran::AlreadyFinished),
            Hold::Failed(failure) => return Ok(Ran::FailedForGood(failure)),
        };
        let result = tokio::select! {
            result = work() => result,
            loss = held.lost() => {
                held.abandon();
                return Ok(Ran::Lost(loss));
            }
        };
        let outcome = match &result {
            Ok(_) => MemberOutcome::succeeded(None),
            Err(message) => MemberOutcome::failed(None, Some(message.clone())),
        };
        held.done(outcome).await?;
        Ok(Ran::Finished(result))
    }
}

/// What [`WaitGroups::hold`] came to.
pub enum Hold {
    /// The member is held by this process: run its work.
    Held(Box<Held>),
    /// The member is done already: nothing to run.
    Done,
    /// The member failed for good (every allowed attempt failed): nothing to run.
    Failed(MemberFailure),
}

/// Writes `member`'s spec as it is now (its attempts, outcome, mark and holder) over the
/// version it was read at: a merge patch carrying that resourceVersion, so a member
/// changed meanwhile is a 409 (look again) — a Job's ServiceAccount needs only `patch`
/// on members.
async fn patch_over(
    members: &Api<WaitGroupMember>,
    object: &str,
    member: &WaitGroupMember,
) -> kube::Result<WaitGroupMember> {
    let version = member.resource_version();
    let patch = SpecPatch::over_version(version.as_deref(), MemberWork::of(&member.spec));
    members
        .patch(object, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Why a sealed group refuses member `id`: it has no such member (a mistyped ID would
/// otherwise be added, and the real member left pending).
fn not_a_member(group: &WaitGroup, id: &str) -> String {
    let status = group.status.clone().unwrap_or_default();
    let pending = if status.pending.is_empty() {
        "none".to_owned()
    } else {
        let more = status.counter - i32::try_from(status.pending.len()).unwrap_or(i32::MAX);
        format!(
            "{}{}",
            status.pending.join(", "),
            if more > 0 {
                format!(", … {more} more")
            } else {
                String::new()
            }
        )
    };
    format!(
        "is sealed and has no member {id:?} (a sealed group takes no new members); its pending members: {pending}"
    )
}

/// A member held by this process: renewed in the background (with a `memberTTL`) until
/// marked done, withdrawn or abandoned.
pub struct Held {
    groups: WaitGroups,
    group: String,
    id: String,
    holder: String,
    uid: String,
    renewal: Option<(Arc<HoldState>, tokio::task::JoinHandle<()>)>,
}

impl Held {
    /// The timing kept for the group's `memberTTL`, if it has one.
    pub fn timing(&self) -> Option<Timing> {
        self.renewal.as_ref().map(|(state, _)| state.timing)
    }

    /// Resolves when the hold can no longer be trusted: no renewal acknowledged in
    /// time (the controller may expire the member), the member expired, or it was
    /// deleted. Never, without a `memberTTL`.
    pub async fn lost(&self) -> Loss {
        match &self.renewal {
            Some((state, _)) => state.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Stops renewing and marks the member done with `outcome`.
    pub async fn done(mut self, outcome: MemberOutcome) -> Result<Marked> {
        self.stop();
        self.groups.done(&self.group, &self.id, outcome).await
    }

    /// Stops renewing without marking the member: with a `memberTTL` it expires and
    /// counts as failed; without one it stays pending.
    pub fn abandon(mut self) {
        self.stop();
    }

    /// Marks the member interrupting (`spec.interrupting`): its work got a signal. From
    /// now on its end — or its expiry, if this process is killed — is an interruption.
    /// Renewal goes on. Best effort (the withdrawal says the same).
    pub async fn mark_interrupting(&self) {
        let patch = SpecPatch::of_uid(&self.uid, Interrupting { interrupting: true });
        let object = member_name(&self.group, &self.id);
        if let Err(error) = self
            .groups
            .members
            .patch(&object, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(%error, member = %self.id, "marking the member interrupting");
        }
    }

    /// Gives the member back after its work was interrupted (and did not succeed): it
    /// is pending again, the interruption recorded in `spec.attempts` (beyond the
    /// group's `maxInterruptions`, an interruption counts as a failed attempt).
    pub async fn withdraw_interrupted(
        mut self,
        exit_code: Option<i32>,
        message: Option<String>,
    ) -> Result<()> {
        self.stop();
        let object = member_name(&self.group, &self.id);
        let request = |verb| {
            self.groups
                .groups
                .request(&self.group, verb, "waitgroupmembers")
        };
        loop {
            let Some(mut member) = self
                .groups
                .members
                .get_opt(&object)
                .await
                .map_err(|e| request("get").error(e))?
            else {
                return Ok(());
            };
            // Taken over (or finished) meanwhile: nothing of ours to give back.
            if member.uid().as_deref() != Some(self.uid.as_str())
                || member.spec.holder.as_deref() != Some(self.holder.as_str())
                || member.spec.outcome.is_some()
            {
                return Ok(());
            }
            member.spec.attempts.push(MemberAttempt {
                result: AttemptResult::Interrupted,
                holder: Some(self.holder.clone()),
                exit_code,
                message: message.clone(),
                finished_at: Some(MicroTime(Timestamp::now())),
            });
            member.spec.interrupting = false;
            member.spec.holder = None;
            member.spec.renew_time = None;
            match patch_over(&self.groups.members, &object, &member).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(request("patch").error(error)),
            }
        }
    }

    fn stop(&mut self) {
        if let Some((_, task)) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The renewal of a held member, and what its answers said.
struct HoldState {
    members: Api<WaitGroupMember>,
    object: String,
    uid: String,
    timing: Timing,
    chain: Mutex<Chain>,
    /// Set when an answer showed the member expired or gone.
    loss: Mutex<Option<Loss>>,
    changed: Notify,
}

impl HoldState {
    fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        self.chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_loss(&self, loss: Loss) {
        *self
            .loss
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(loss);
        self.changed.notify_waiters();
    }

    /// Renews every `renew_every` until aborted.
    async fn renew(self: Arc<Self>) {
        renew_periodically(&self.timing, None, || self.renew_once()).await;
    }

    /// One renewal; an answer showing the member expired (or gone) ends the hold.
    async fn renew_once(&self) {
        let sent = Instant::now();
        match send_renewal(&self.members, &self.object, &self.uid, &self.timing).await {
            Renewal::Acknowledged(member) if member.expired_now() => {
                self.set_loss(Loss::Expired);
            }
            Renewal::Acknowledged(_) => {
                self.chain()
                    .acknowledged(sent, Instant::now(), &self.timing);
                self.changed.notify_waiters();
            }
            Renewal::Gone => self.set_loss(Loss::Deleted),
            Renewal::Unanswered => {}
        }
    }

    async fn lost(&self) -> Loss {
        loop {
            let changed = self.changed.notified();
            if let Some(loss) = self
                .loss
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
            {
                return loss;
            }
            let (last_ack_sent, trusted_until) = {
                let chain = self.chain();
                (chain.last_ack_sent, chain.trusted_until(&self.timing))
            };
            let now = Instant::now();
            if now >= trusted_until {
                return Loss::Jeopardy {
                    since: now - last_ack_sent,
                    trusted_for: self.timing.trusted_for(),
                };
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(trusted_until.into()) => {}
            }
        }
    }
}

/// A WaitGroup sealed.
#[derive(serde::Serialize, Debug)]
struct Sealed {
    sealed: bool,
}

/// What a member's holder writes of its work: its attempts, its outcome, its mark and
/// who holds it since when — all of them, unset ones removed.
#[derive(serde::Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct MemberWork<'a> {
    attempts: &'a [MemberAttempt],
    outcome: Option<&'a MemberOutcome>,
    interrupting: bool,
    holder: Option<&'a str>,
    renew_time: Option<&'a MicroTime>,
}

impl<'a> MemberWork<'a> {
    /// The work part of `spec`, as it is now.
    fn of(spec: &'a WaitGroupMemberSpec) -> Self {
        Self {
            attempts: &spec.attempts,
            outcome: spec.outcome.as_ref(),
            interrupting: spec.interrupting,
            holder: spec.holder.as_deref(),
            renew_time: spec.renew_time.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_and_group_patches_write_fields_of_their_specs() {
        use crate::patches::tests::writes_fields_of;
        use konductor_api::waitgroup::WaitGroupSpec;
        let spec = WaitGroupMemberSpec::new("g", "m");
        writes_fields_of::<WaitGroupMemberSpec>(MemberWork::of(&spec));
        writes_fields_of::<WaitGroupSpec>(Sealed { sealed: true });
        let outcome = MemberOutcome::succeeded(Some(0));
        writes_fields_of::<WaitGroupMemberSpec>(patches::Outcome { outcome: &outcome });
    }
}
