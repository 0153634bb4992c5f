//! The Gate controller: the objects a Gate's conditions name in; its status and Events
//! out, via `konductor_api::gate::rules::evaluate`. A kind without claims: a
//! [`SubjectKind`] on the engine's reconcile, which instead of a claim index has
//! [`watches`] — one watch per kind and namespace the Gates name,
//! started and stopped as Gates need them, each change queueing the Gates that name the object.
//!
//! A Gate's conditions are read in the Gate's own namespace only: the controller's
//! wider read access never lets a Gate's author see another namespace's objects.

pub mod watches;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use k8s_openapi::jiff::Timestamp;
use konductor_api::gate::resume::{self, ResumePatch, ResumeResult, ResumeState};
use konductor_api::gate::rules::{
    GateInput, Observations, Observed, Transition, Watching, evaluate, latched, targets,
};
use konductor_api::gate::{Gate, GatePhase, GateStatus, TargetRef};
use kube::api::DynamicObject;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::engine::events::{Events, Note};
use crate::engine::subject::{ClaimFeeds, Judged, Judgement, Running, Start, SubjectKind};
use crate::{Error, Result};
use watches::{GateKinds, REDISCOVER_AFTER, Watches};

/// How metrics and logs name the kind.
const KIND: &str = "gate";

/// The `reportingController` of the Gate controller's Events.
pub const CONTROLLER_NAME: &str = "konductor.io/gate-controller";

/// How many Gates are reconciled at once.
const WORKERS: usize = 8;

/// The Gate as a [`SubjectKind`]: what its conditions name is observed through
/// [`watches`].
pub struct GateKind {
    watches: Watches,
    /// Events about resumes (the transition's are the engine's).
    events: Events,
}

/// What a Gate's judgement keeps for after its status write.
pub struct Looked {
    /// Whether a kind named is not served yet (its CRD may be applied meanwhile).
    unresolved: bool,
    /// The targets to resume once the Gate's Open status is written: each with the uid
    /// the patch is conditional on.
    resumes: Vec<(TargetRef, String)>,
    /// Targets settled without a patch in this look (refused, ran unordered, or found
    /// resumed after a restart), for their Events.
    settled: Vec<ResumeResult>,
}

impl SubjectKind for GateKind {
    type Subject = Gate;
    type Transition = Transition;
    type Also = Watching;
    type Seen = Looked;

    type Settings = GateKinds;

    const KIND: &'static str = KIND;
    const CONTROLLER: &'static str = CONTROLLER_NAME;
    const RUNNING: Running = Running {
        workers: WORKERS,
        progress_workers: None,
    };

    /// The kinds `kinds` allows are watched as Gates need them (no claim feeds).
    fn start(start: &Start<Gate>, kinds: GateKinds) -> (Self, ClaimFeeds) {
        let watches = Watches::new(
            start.client.clone(),
            kinds,
            start.queue.clone(),
            start.metrics.clone(),
        );
        let events = start.events.clone();
        (
            GateKind { watches, events },
            Box::pin(std::future::pending::<()>()),
        )
    }

    async fn judge(&self, gate: &Arc<Gate>) -> Result<Judged<Self>> {
        let key = ObjectRef::from_obj(&**gate);
        let namespace = gate.namespace().unwrap_or_default();
        let created_at = gate
            .creation_timestamp()
            .map(|t| t.0)
            .ok_or(Error::MissingCreationTimestamp)?;
        let mut named = targets(&gate.spec);
        let is_latched = latched(&gate.spec, gate.status.as_ref());
        if is_latched {
            named.clear();
        }
        // The targets to resume stay watched until each is settled.
        let recorded = |i: usize, target: &TargetRef| {
            gate.status
                .as_ref()
                .and_then(|s| s.resume.get(i))
                .filter(|r| r.target == *target)
        };
        let unsettled: Vec<&TargetRef> = gate
            .spec
            .resume
            .iter()
            .enumerate()
            .filter(|(i, t)| recorded(*i, t).is_none_or(|r| r.state == ResumeState::Waiting))
            .map(|(_, t)| t)
            .collect();
        let mut interest = named.clone();
        interest.extend(unsettled.iter().copied());
        // Interest first, then the caches: a change after this read queues the Gate again.
        let mut observed = Observations::new();
        let mut unresolved = false;
        if !interest.is_empty() {
            self.watches.name(&key, &namespace, &interest);
        }
        for target in interest {
            if observed.contains_key(target) {
                continue;
            }
            let seen = self.watches.observe(&namespace, target).await;
            unresolved |= self.watches.not_served(target);
            observed.insert(target.clone(), seen);
        }
        let mut evaluation = evaluate(&GateInput {
            spec: &gate.spec,
            generation: gate.meta().generation,
            created_at,
            previous: gate.status.as_ref(),
            observed: &observed,
            now: Timestamp::now(),
        });
        let mut refusals = HashMap::new();
        for target in &unsettled {
            if let Some(why) = self.watches.refusal(target).await {
                refusals.insert(*target, why);
            }
        }
        let (results, resumes) = judge_resumes(gate, evaluation.status.phase, &observed, &refusals);
        let settled = newly_settled(gate.status.as_ref(), &results);
        // A Gate that failed or timed out resumes nothing (an override is a spec
        // change, which brings the Gate back): its targets need no watching.
        let may_resume = !matches!(
            evaluation.status.phase,
            GatePhase::Failed | GatePhase::Timeout
        );
        let waiting_to_resume =
            may_resume && results.iter().any(|r| r.state == ResumeState::Waiting);
        evaluation.status.resume = results;
        if !evaluation.also.0 && !waiting_to_resume {
            self.watches.forget(&key);
        }
        evaluation.also.0 |= waiting_to_resume;
        Ok(Judged::Now(Judgement {
            evaluation,
            seen: Looked {
                unresolved,
                resumes,
                settled,
            },
        }))
    }

    /// Resumes the targets the written status allows (an Open Gate's only): one
    /// uid-conditional patch each, marked so that it is never repeated.
    async fn after_write(
        &self,
        gate: &Gate,
        judgement: &Judgement<Self>,
    ) -> Result<Option<Duration>> {
        let Watching(watching) = judgement.evaluation.also;
        let namespace = gate.namespace().unwrap_or_default();
        let name = gate.name_any();
        let now = Timestamp::now().to_string();
        for (target, uid) in &judgement.seen.resumes {
            let api = match self.watches.api(&namespace, target).await {
                Ok(api) => api,
                Err(why) => {
                    tracing::warn!(gate = %name, %target, %why, "cannot resume");
                    continue;
                }
            };
            let patch = ResumePatch::new(uid, &name, &now);
            match api
                .patch(
                    &target.name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(resumed) => {
                    tracing::info!(gate = %name, %target, "resumed");
                    self.resumed_events(gate, target, &resumed);
                }
                // Deleted or re-created meanwhile: the next look records it.
                Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
                Err(error) => return Err(error.into()),
            }
        }
        for result in &judgement.seen.settled {
            self.settled_event(gate, result);
        }
        Ok((judgement.seen.unresolved && watching).then_some(REDISCOVER_AFTER))
    }

    fn message(status: &GateStatus, _: Transition) -> String {
        status.summary()
    }

    fn forget(&self, key: &ObjectRef<Gate>) {
        self.watches.forget(key);
    }
}

impl GateKind {
    /// Says that the Gate resumed `target` (now `object`): an Event on the Gate and one
    /// on the object, in the background.
    fn resumed_events(&self, gate: &Gate, target: &TargetRef, object: &DynamicObject) {
        let name = gate.name_any();
        self.events.publish(
            KIND,
            gate.object_ref(&()),
            Note {
                type_: EventType::Normal,
                reason: "Resumed",
                note: format!("resumed {target}: spec.suspend set to false"),
                action: "Resume",
                related: None,
            },
        );
        let reference = ObjectReference {
            api_version: Some(target.api_version.clone()),
            kind: Some(target.kind.clone()),
            name: Some(target.name.clone()),
            namespace: object.namespace(),
            uid: object.uid(),
            ..ObjectReference::default()
        };
        self.events.publish(
            KIND,
            reference,
            Note {
                type_: EventType::Normal,
                reason: "ResumedByGate",
                note: format!("resumed by Gate {name}: it opened"),
                action: "Resume",
                related: Some(gate.object_ref(&())),
            },
        );
    }

    /// Says how a target settled without a patch: a Warning on the Gate when it was
    /// refused or ran unordered.
    fn settled_event(&self, gate: &Gate, result: &ResumeResult) {
        let reason = match result.state {
            ResumeState::Refused => "NotResumed",
            ResumeState::RanUnordered => "RanUnordered",
            ResumeState::Resumed | ResumeState::Waiting => return,
        };
        self.events.publish(
            KIND,
            gate.object_ref(&()),
            Note {
                type_: EventType::Warning,
                reason,
                note: format!(
                    "{}: {}",
                    result.target,
                    result.message.as_deref().unwrap_or_default()
                ),
                action: "Resume",
                related: None,
            },
        );
    }
}

/// The targets whose state left Waiting between `before` and `results` (without a
/// patch of this look's: those stay Waiting until their mark is seen).
fn newly_settled(before: Option<&GateStatus>, results: &[ResumeResult]) -> Vec<ResumeResult> {
    let previous = before.map(|s| &s.resume[..]).unwrap_or_default();
    results
        .iter()
        .enumerate()
        .filter(|(i, result)| {
            let was = previous
                .get(*i)
                .filter(|r| r.target == result.target)
                .map_or(ResumeState::Waiting, |r| r.state);
            was == ResumeState::Waiting && result.state != ResumeState::Waiting
        })
        .map(|(_, result)| result.clone())
        .collect()
}

/// Each `spec.resume` target's status entry, decided by [`resume::decide`] from what the
/// Gate recorded and what is observed of the object; and the targets to patch (only
/// when the Gate is Open). A target decided to be patched is recorded as Waiting
/// ("resuming") until its mark is seen on the object.
fn judge_resumes(
    gate: &Gate,
    phase: GatePhase,
    observed: &Observations,
    refusals: &HashMap<&TargetRef, String>,
) -> (Vec<ResumeResult>, Vec<(TargetRef, String)>) {
    let name = gate.name_any();
    let previous = gate
        .status
        .as_ref()
        .map(|s| &s.resume[..])
        .unwrap_or_default();
    let mut results = Vec::with_capacity(gate.spec.resume.len());
    let mut resumes = Vec::new();
    for (i, target) in gate.spec.resume.iter().enumerate() {
        let before = previous.get(i).filter(|r| r.target == *target);
        let mut result = ResumeResult {
            target: target.clone(),
            ..before.cloned().unwrap_or_default()
        };
        let waiting = result.state == ResumeState::Waiting;
        if let Some(why) = refusals.get(target).filter(|_| waiting) {
            result.state = ResumeState::Refused;
            result.message = Some(why.clone());
            results.push(result);
            continue;
        }
        let object = match observed.get(target) {
            Some(Observed::Present(object)) => Some(resume::Observed::of(object)),
            Some(Observed::Unreadable(why)) => {
                result.message = Some(why.clone());
                results.push(result);
                continue;
            }
            Some(Observed::Unknown) => {
                results.push(result);
                continue;
            }
            Some(Observed::Missing) | None => None,
        };
        let decision = resume::decide(
            &name,
            phase,
            before.map(ResumeResult::recorded).as_ref(),
            object.as_ref(),
        );
        result.uid = decision.recorded.uid.clone();
        match decision.patch {
            Some(uid) => {
                result.state = ResumeState::Waiting;
                result.message = Some("resuming".into());
                resumes.push((target.clone(), uid));
            }
            None => {
                if decision.recorded.state == ResumeState::Resumed && result.resumed_at.is_none() {
                    result.resumed_at = Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now()),
                    );
                }
                result.state = decision.recorded.state;
                if decision.message.is_some() || result.state == ResumeState::Resumed {
                    result.message = decision.message;
                }
            }
        }
        results.push(result);
    }
    (results, resumes)
}
