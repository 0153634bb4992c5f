//! The Gate controller: the objects a Gate's conditions name in; its status and Events
//! out, via `konductor_api::gate::rules::evaluate`. A kind without claims: it uses the
//! engine's queue, workers, error policy, own writes, Events and metrics, and instead
//! of a claim index it has [`watches`] — one watch per kind and namespace the Gates name,
//! started and stopped as Gates need them, each change queueing the Gates that name the object.
//!
//! A Gate's conditions are read in the Gate's own namespace only: the controller's
//! wider read access never lets a Gate's author see another namespace's objects.

pub mod watches;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use konductor_api::gate::Gate;
use konductor_api::gate::rules::{GateInput, Observations, Transition, evaluate, latched, targets};
use kube::api::{Api, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use crate::engine::events::Events;
use crate::engine::writes::OwnWrites;
use crate::engine::{Reconciler, Workers, feed_subjects, serve, sooner};
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::{Error, Result};
use watches::{GateKinds, REDISCOVER_AFTER, Watches};

/// How metrics and logs name the kind.
const KIND: &str = "gate";

/// The `reportingController` of the Gate controller's Events.
pub const CONTROLLER_NAME: &str = "konductor.io/gate-controller";

/// How many Gates are reconciled at once.
const WORKERS: usize = 8;

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    client: Client,
    events: Events,
    metrics: Arc<Metrics>,
    own_writes: Arc<OwnWrites<Gate>>,
    gates: Store<Gate>,
    watches: Watches,
}

impl Reconciler for Context {
    type Key = ObjectRef<Gate>;

    fn kind(_: &ObjectRef<Gate>) -> &'static str {
        KIND
    }

    async fn reconcile(&self, key: &ObjectRef<Gate>) -> Result<Option<Duration>> {
        match self.gates.get(key) {
            Some(gate) => reconcile(key, gate, self).await,
            None => {
                self.watches.forget(key);
                Ok(None)
            }
        }
    }
}

/// Brings one Gate's status up to date; returns when to look again.
async fn reconcile(
    key: &ObjectRef<Gate>,
    gate: Arc<Gate>,
    ctx: &Context,
) -> Result<Option<Duration>> {
    let gate = ctx.own_writes.latest(gate);
    let namespace = gate.namespace().unwrap_or_default();
    let created_at = gate
        .creation_timestamp()
        .map(|t| t.0)
        .ok_or(Error::MissingCreationTimestamp)?;
    let named = targets(&gate.spec);
    // Interest first, then the caches: a change after this read queues the Gate again.
    let mut observed = Observations::new();
    // A kind not served yet is asked for again: its CRD may be applied meanwhile.
    let mut unresolved = false;
    if !latched(&gate.spec, gate.status.as_ref()) {
        ctx.watches.name(key, &namespace, &named);
        for target in named {
            let seen = ctx.watches.observe(&namespace, target).await;
            unresolved |= ctx.watches.not_served(target);
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
    if !evaluation.watching {
        ctx.watches.forget(key);
    }
    if gate.status.as_ref() != Some(&evaluation.status) {
        let api: Api<Gate> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut next = (*gate).clone();
        next.status = Some(evaluation.status.clone());
        let written = api
            .replace_status(&gate.name_any(), &PostParams::default(), &next)
            .await
            .map_err(Error::Kube)?;
        ctx.own_writes.remember(&gate, written, &ctx.gates);
        ctx.metrics.status_written(KIND);
    }
    if let Some(transition) = evaluation.transition {
        let warning = matches!(
            transition,
            Transition::Failed | Transition::TimedOut | Transition::InvalidSpec
        );
        let message = evaluation.status.summary();
        let subject = gate.object_ref(&());
        ctx.events
            .transition(KIND, &subject, warning, transition.reason(), message)
            .await;
    }
    let rediscover = (unresolved && evaluation.watching).then_some(REDISCOVER_AFTER);
    Ok(sooner(evaluation.requeue_after, rediscover))
}

/// Runs the Gate controller for all namespaces until `shutdown` resolves (one of the
/// kinds [`crate::kinds::run`] joins), reading the kinds `kinds` allows.
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    kinds: GateKinds,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let gates: Api<Gate> = Api::all(client.clone());
    let own_writes = Arc::new(OwnWrites::default());
    let (gate_cache, gate_writer) = reflector::store();
    let queue = Arc::new(WorkQueue::default());
    let context = Arc::new(Context {
        events: Events::new(Recorder::new(client.clone(), reporter), metrics.clone()),
        watches: Watches::new(client.clone(), kinds, queue.clone(), metrics.clone()),
        client,
        metrics: metrics.clone(),
        own_writes: own_writes.clone(),
        gates: gate_cache.clone(),
    });
    let feed = feed_subjects(gates, gate_writer, own_writes, queue.clone());
    let workers = Workers {
        reconciler: context,
        queue,
        count: WORKERS,
        metrics,
    };
    let ready = async move { gate_cache.wait_until_ready().await.is_ok() };
    serve(workers, ready, feed, shutdown).await;
    Ok(())
}
