//! The Gate controller: the objects a Gate's conditions name in; its status and Events
//! out, via `konductor_api::gate::rules::evaluate`. A kind without claims: a
//! [`SubjectKind`] on the engine's reconcile, which instead of a claim index has
//! [`watches`] — one watch per kind and namespace the Gates name,
//! started and stopped as Gates need them, each change queueing the Gates that name the object.
//!
//! A Gate's conditions are read in the Gate's own namespace only: the controller's
//! wider read access never lets a Gate's author see another namespace's objects.

pub mod watches;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use konductor_api::gate::rules::{
    GateInput, Observations, Transition, Watching, evaluate, latched, targets,
};
use konductor_api::gate::{Gate, GateStatus};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

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
}

impl SubjectKind for GateKind {
    type Subject = Gate;
    type Transition = Transition;
    type Also = Watching;
    /// Whether a kind named is not served yet (its CRD may be applied meanwhile).
    type Seen = bool;

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
        (GateKind { watches }, Box::pin(std::future::pending::<()>()))
    }

    async fn judge(&self, gate: &Arc<Gate>) -> Result<Judged<Self>> {
        let key = ObjectRef::from_obj(&**gate);
        let namespace = gate.namespace().unwrap_or_default();
        let created_at = gate
            .creation_timestamp()
            .map(|t| t.0)
            .ok_or(Error::MissingCreationTimestamp)?;
        let named = targets(&gate.spec);
        // Interest first, then the caches: a change after this read queues the Gate again.
        let mut observed = Observations::new();
        let mut unresolved = false;
        if !latched(&gate.spec, gate.status.as_ref()) {
            self.watches.name(&key, &namespace, &named);
            for target in named {
                let seen = self.watches.observe(&namespace, target).await;
                unresolved |= self.watches.not_served(target);
                observed.insert(target.clone(), seen);
            }
        }
        let evaluation = evaluate(&GateInput {
            spec: &gate.spec,
            generation: gate.meta().generation,
            created_at,
            previous: gate.status.as_ref(),
            observed: &observed,
            now: Timestamp::now(),
        });
        if !evaluation.also.0 {
            self.watches.forget(&key);
        }
        Ok(Judged::Now(Judgement {
            evaluation,
            seen: unresolved,
        }))
    }

    async fn after_write(&self, _: &Gate, judgement: &Judgement<Self>) -> Result<Option<Duration>> {
        let Watching(watching) = judgement.evaluation.also;
        Ok((judgement.seen && watching).then_some(REDISCOVER_AFTER))
    }

    fn message(status: &GateStatus, _: Transition) -> String {
        status.summary()
    }

    fn forget(&self, key: &ObjectRef<Gate>) {
        self.watches.forget(key);
    }
}
