//! The controller against a real `konductor server` (in-process, HTTPS on loopback):
//! every phase transition, its events, and the edge cases of docs/semantics.md.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use konductor_api::{
    Arrival, ArrivalSpec, BARRIER_LABEL, Barrier, BarrierPhase, BarrierSpec, CONDITION_OPEN,
    CONDITION_READY, arrival_name,
};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use common::Harness;

impl Harness {
    fn barriers(&self) -> Api<Barrier> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn arrivals(&self) -> Api<Arrival> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create(&self, name: &str, spec: BarrierSpec) -> Barrier {
        self.barriers()
            .create(&PostParams::default(), &Barrier::new(name, spec))
            .await
            .unwrap()
    }

    /// Arrives as koncli does: deterministic name, label, owner reference.
    async fn arrive(&self, barrier: &Barrier, spec: ArrivalSpec) -> Result<Arrival, kube::Error> {
        let arrival = Arrival::at_barrier(spec, &barrier.uid().unwrap());
        self.arrivals()
            .create(&PostParams::default(), &arrival)
            .await
    }

    async fn succeed(&self, barrier: &Barrier, holder: &str) {
        self.arrive(barrier, ArrivalSpec::succeeded(barrier.name_any(), holder))
            .await
            .unwrap();
    }

    async fn fail(&self, barrier: &Barrier, holder: &str) {
        self.arrive(
            barrier,
            ArrivalSpec::failed(barrier.name_any(), holder, Some("crashed".into())),
        )
        .await
        .unwrap();
    }

    /// Waits (bounded) until the barrier satisfies `condition`, returning it.
    async fn until(&self, name: &str, condition: impl Fn(&Barrier) -> bool) -> Barrier {
        konductor_testing::until(self.barriers(), name, |b| b.is_some_and(&condition))
            .await
            .expect("it is there")
    }

    async fn until_phase(&self, name: &str, phase: BarrierPhase) -> Barrier {
        self.until(name, move |b| b.phase() == phase).await
    }

    /// Waits (bounded, watching) until the barrier's events include every one of
    /// `reasons` — an Event is recorded beside the status write, not before it — and
    /// returns all their reasons.
    async fn events_with(&self, name: &str, reasons: &[&str]) -> Vec<String> {
        let events: Api<CoreEvent> = Api::namespaced(self.client.clone(), "default");
        let config = watcher::Config::default().fields(&format!(
            "involvedObject.name={name},involvedObject.kind=Barrier"
        ));
        let mut stream = watcher(events, config).boxed();
        let mut seen = BTreeMap::new();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = stream.try_next().await.unwrap() {
                if let watcher::Event::Apply(e) | watcher::Event::InitApply(e) = event {
                    seen.insert(e.name_any(), e.reason.unwrap_or_default());
                }
                if reasons.iter().all(|r| seen.values().any(|s| s == r)) {
                    return;
                }
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "events {reasons:?} of {name} never recorded: {seen:?}"
        );
        seen.into_values().collect()
    }

    async fn stop(mut self) {
        self.stop_controller().await;
        self.0.server.shutdown().await;
    }
}

fn arrived(b: &Barrier) -> i32 {
    b.status.as_ref().map_or(0, |s| s.arrived)
}

#[tokio::test]
async fn opens_when_everyone_expected_has_arrived() {
    let h = Harness::start().await;
    let b = h.create("all", BarrierSpec::new(3)).await;
    let waiting = h.until("all", |b| b.status.is_some()).await;
    assert_eq!(waiting.phase(), BarrierPhase::Waiting);
    let ready = waiting
        .status
        .as_ref()
        .unwrap()
        .condition(CONDITION_READY)
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "BarrierReady")
    );

    h.succeed(&b, "a").await;
    h.succeed(&b, "b").await;
    let two = h.until("all", |b| arrived(b) == 2).await;
    assert_eq!(two.phase(), BarrierPhase::Waiting, "not released early");

    h.succeed(&b, "c").await;
    let open = h.until_phase("all", BarrierPhase::Open).await;
    let status = open.status.unwrap();
    assert_eq!(status.arrivals, ["a", "b", "c"]);
    assert!(status.opened_at.is_some());
    assert_eq!(status.condition(CONDITION_OPEN).unwrap().status, "True");
    assert_eq!(status.lifecycle.observed_generation, Some(1));
    assert_eq!(h.events_with("all", &["Opened"]).await, ["Opened"]);
    h.stop().await;
}

#[tokio::test]
async fn opens_at_quorum() {
    let h = Harness::start().await;
    let b = h
        .create("quorum", BarrierSpec::new(10).with_quorum(7))
        .await;
    for i in 0..6 {
        h.succeed(&b, &format!("p{i}")).await;
    }
    let six = h.until("quorum", |b| arrived(b) == 6).await;
    assert_eq!(six.phase(), BarrierPhase::Waiting);
    h.succeed(&b, "p6").await;
    h.until_phase("quorum", BarrierPhase::Open).await;
    h.stop().await;
}

#[tokio::test]
async fn times_out_at_the_deadline_and_revives_when_the_timeout_is_raised() {
    let h = Harness::start().await;
    let b = h
        .create("late", BarrierSpec::new(2).with_timeout("1s"))
        .await;
    h.succeed(&b, "a").await;
    let timed_out = h.until_phase("late", BarrierPhase::Timeout).await;
    let status = timed_out.status.as_ref().unwrap();
    assert_eq!(status.condition(CONDITION_OPEN).unwrap().reason, "TimedOut");
    let deadline = status.lifecycle.deadline.as_ref().unwrap().0;
    let created = timed_out.creation_timestamp().unwrap().0;
    assert_eq!(
        deadline.duration_since(created),
        jiff::SignedDuration::from_secs(1)
    );

    h.barriers()
        .patch(
            "late",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"timeout": "1h"}})),
        )
        .await
        .unwrap();
    let revived = h.until_phase("late", BarrierPhase::Waiting).await;
    assert_eq!(
        revived.status.unwrap().lifecycle.observed_generation,
        Some(2)
    );
    h.succeed(&b, "b").await;
    h.until_phase("late", BarrierPhase::Open).await;
    h.events_with("late", &["TimedOut", "Revived", "Opened"])
        .await;
    h.stop().await;
}

#[tokio::test]
async fn failures_that_make_the_quorum_unreachable_fail_it() {
    let h = Harness::start().await;
    let b = h
        .create(
            "mapreduce",
            BarrierSpec::new(4).with_quorum(3).with_timeout("1h"),
        )
        .await;
    h.fail(&b, "m1").await;
    let tolerated = h
        .until("mapreduce", |b| {
            b.status.as_ref().is_some_and(|s| s.failed == 1)
        })
        .await;
    assert_eq!(tolerated.phase(), BarrierPhase::Waiting);
    h.fail(&b, "m2").await;
    let failed = h.until_phase("mapreduce", BarrierPhase::Failed).await;
    let status = failed.status.unwrap();
    assert_eq!(status.failures[1].message.as_deref(), Some("crashed"));
    h.events_with("mapreduce", &["Failed"]).await;
    h.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_that_bypassed_validation_fails_with_ready_false() {
    let h = Harness::start().await;
    // Write straight into storage, as a cluster without the CRD's schema would accept it.
    let service = h.server.service().clone();
    tokio::task::spawn_blocking(move || {
        let barriers = service
            .registry()
            .find("konductor.io", "v1", "barriers")
            .unwrap()
            .clone();
        let key = konductor_server::store::ObjectKey::new(&barriers.storage, "default", "broken");
        let object = konductor_server::objects::prepare_create(
            &barriers,
            "default",
            json!({"metadata": {"name": "broken"}, "spec": {"expected": 3, "quorum": 5}}),
            jiff::Timestamp::now(),
        )
        .unwrap();
        service
            .store()
            .write::<konductor_server::store::StoreError>(&key, |_| {
                Ok(konductor_server::store::Write::Put(object))
            })
            .unwrap();
    })
    .await
    .unwrap();
    let failed = h.until_phase("broken", BarrierPhase::Failed).await;
    let ready = failed
        .status
        .as_ref()
        .unwrap()
        .condition(CONDITION_READY)
        .unwrap()
        .clone();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(ready.message.contains("spec.quorum"), "{}", ready.message);
    h.events_with("broken", &["InvalidSpec"]).await;
    h.stop().await;
}

#[tokio::test]
async fn a_holder_arriving_twice_counts_once() {
    let h = Harness::start().await;
    let b = h.create("twice", BarrierSpec::new(2)).await;
    h.succeed(&b, "same").await;
    let again = h
        .arrive(&b, ArrivalSpec::succeeded("twice", "same"))
        .await
        .unwrap_err();
    assert!(matches!(again, kube::Error::Api(s) if s.code == 409));
    // Even under another object name, the holder is the same process.
    let mut alias = Arrival::new("alias", ArrivalSpec::succeeded("twice", "same"));
    alias.metadata.labels = Some(BTreeMap::from([(
        BARRIER_LABEL.to_owned(),
        "twice".to_owned(),
    )]));
    h.arrivals()
        .create(&PostParams::default(), &alias)
        .await
        .unwrap();
    h.succeed(&b, "other").await;
    let open = h.until_phase("twice", BarrierPhase::Open).await;
    assert_eq!(open.status.unwrap().arrived, 2);
    h.stop().await;
}

#[tokio::test]
async fn arrivals_after_open_are_listed_and_it_stays_open() {
    let h = Harness::start().await;
    let b = h.create("sticky", BarrierSpec::new(2).with_quorum(1)).await;
    h.succeed(&b, "first").await;
    let open = h.until_phase("sticky", BarrierPhase::Open).await;
    let opened_at = open.status.unwrap().opened_at;
    h.succeed(&b, "second").await;
    let later = h.until("sticky", |b| arrived(b) == 2).await;
    let status = later.status.unwrap();
    assert_eq!(later.metadata.name.as_deref(), Some("sticky"));
    assert_eq!(status.phase, BarrierPhase::Open);
    assert_eq!(status.arrivals, ["first", "second"]);
    assert_eq!(status.opened_at, opened_at);
    h.stop().await;
}

#[tokio::test]
async fn deleting_the_barrier_removes_its_arrivals_and_a_recreated_one_starts_empty() {
    let h = Harness::start().await;
    let b = h.create("reset", BarrierSpec::new(2)).await;
    h.succeed(&b, "a").await;
    h.until("reset", |b| arrived(b) == 1).await;
    h.barriers()
        .delete("reset", &DeleteParams::default())
        .await
        .unwrap();
    let name = arrival_name("reset", "a");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            h.arrivals(),
            &name,
            kube::runtime::conditions::is_deleted(""),
        ),
    )
    .await
    .ok();
    let again = h.create("reset", BarrierSpec::new(2)).await;
    let fresh = h.until("reset", |b| b.status.is_some()).await;
    assert_eq!(fresh.uid(), again.uid());
    assert_eq!(arrived(&fresh), 0, "the new barrier starts empty");
    assert!(h.arrivals().get_opt(&name).await.unwrap().is_none());
    h.stop().await;
}

#[tokio::test]
async fn arrivals_written_without_an_owner_are_adopted_and_labelled_by_their_barrier() {
    let h = Harness::start().await;
    let b = h.create("adopter", BarrierSpec::new(2)).await;
    let bare = Arrival::new("bare", ArrivalSpec::succeeded("adopter", "kubectl-user"));
    h.arrivals()
        .create(&PostParams::default(), &bare)
        .await
        .unwrap();
    h.until("adopter", |b| arrived(b) == 1).await;
    // Adoption follows the status write (it does not change what counts).
    let adopted = tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(h.arrivals(), "bare", |a: Option<&Arrival>| {
            a.is_some_and(|a| !a.owner_references().is_empty())
        }),
    )
    .await
    .expect("adopted within 30s")
    .unwrap()
    .unwrap();
    let owner = &adopted.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Barrier", b.uid().unwrap().as_str())
    );
    assert_eq!(
        adopted.labels().get(BARRIER_LABEL).map(String::as_str),
        Some("adopter"),
        "labelled too, so `-l konductor.io/barrier=adopter` finds it"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_finished_barrier_is_deleted_with_its_arrivals_once_its_ttl_runs_out() {
    let h = Harness::start().await;
    let b = h
        .create(
            "short-lived",
            BarrierSpec::new(1).with_ttl_after_finished("1s"),
        )
        .await;
    let keep = h.create("kept", BarrierSpec::new(1)).await;
    h.succeed(&b, "a").await;
    h.succeed(&keep, "a").await;
    let open = h.until_phase("short-lived", BarrierPhase::Open).await;
    let finished = open
        .status
        .unwrap()
        .lifecycle
        .finished_at
        .expect("finishedAt set")
        .0;

    let gone = await_condition(h.barriers(), "short-lived", |b: Option<&Barrier>| {
        b.is_none()
    });
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .expect("the barrier was never deleted")
        .unwrap();
    let deleted_seen = k8s_openapi::jiff::Timestamp::now();
    assert!(
        deleted_seen >= finished + k8s_openapi::jiff::SignedDuration::from_secs(1),
        "deleted before its ttl ran out (finished {finished}, gone by {deleted_seen})"
    );
    // Its arrivals are its dependents: the garbage collector deletes them after it
    // (in the background, as Kubernetes does), so their going is awaited.
    let arrival = arrival_name("short-lived", "a");
    let arrival_gone = await_condition(h.arrivals(), &arrival, |a: Option<&Arrival>| a.is_none());
    tokio::time::timeout(Duration::from_secs(30), arrival_gone)
        .await
        .expect("its arrivals went with it")
        .unwrap();
    let arrivals = h
        .arrivals()
        .list(&kube::api::ListParams::default().labels(&format!("{BARRIER_LABEL}=short-lived")))
        .await
        .unwrap();
    assert!(arrivals.items.is_empty(), "its arrivals went with it");
    assert!(
        h.events_with("short-lived", &["Expired"])
            .await
            .contains(&"Expired".to_owned()),
        "an Event says why it went"
    );
    // A barrier without the ttl stays.
    assert_eq!(
        h.barriers().get("kept").await.unwrap().phase(),
        BarrierPhase::Open
    );
    h.stop().await;
}
