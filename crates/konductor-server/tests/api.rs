//! The embedded API server driven through kube-rs, as every Konductor client drives it:
//! CRUD, status, conflicts, selectors, paging, watch, garbage collection, validation,
//! namespaces, patches, events, leases, auth, TLS, limits and restarts.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, config};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace};
use k8s_openapi::api::events::v1::Event as EventsV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use konductor_api::{
    Arrival, ArrivalSpec, Barrier, BarrierPhase, BarrierSpec, BarrierStatus, arrival_name,
};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

fn barrier(name: &str, spec: BarrierSpec) -> Barrier {
    Barrier::new(name, spec)
}

fn arrival_for(owner: &Barrier, holder: &str) -> Arrival {
    Arrival::at_barrier(
        ArrivalSpec::succeeded(owner.name_any(), holder),
        &owner.uid().unwrap(),
    )
}

/// The next event of a watch that is not a bookmark.
async fn next_change<K>(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<K>, kube::Error>> + Unpin),
) -> WatchEvent<K> {
    bounded(async {
        loop {
            match stream
                .next()
                .await
                .expect("the watch ended")
                .expect("watch error")
            {
                WatchEvent::Bookmark(_) => continue,
                event => return event,
            }
        }
    })
    .await
}

/// Awaits `future`, failing the test instead of hanging if it takes over 30 s.
async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), future)
        .await
        .expect("nothing happened within 30 s")
}

fn status_of(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn barriers_can_be_created_read_listed_replaced_and_deleted() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let created = api
        .create(
            &PostParams::default(),
            &barrier("b1", BarrierSpec::new(3).with_quorum(2).with_timeout("30m")),
        )
        .await
        .unwrap();
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.namespace().as_deref(), Some("default"));

    let fetched = api.get("b1").await.unwrap();
    assert_eq!(fetched.spec, created.spec);
    assert_eq!(fetched.resource_version(), created.resource_version());

    let mut changed = fetched.clone();
    changed.spec.expected = 4;
    let replaced = api
        .replace("b1", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.spec.expected, 4);
    assert_eq!(replaced.metadata.generation, Some(2));
    let rv = |b: &Barrier| b.resource_version().unwrap().parse::<u64>().unwrap();
    assert!(rv(&replaced) > rv(&fetched));

    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    api.delete("b1", &DeleteParams::default()).await.unwrap();
    let gone = status_of(api.get("b1").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "barriers.konductor.io \"b1\" not found");
}

#[tokio::test]
async fn creating_a_taken_name_is_already_exists() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    api.create(&PostParams::default(), &barrier("b", BarrierSpec::new(1)))
        .await
        .unwrap();
    let err = status_of(
        api.create(&PostParams::default(), &barrier("b", BarrierSpec::new(1)))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn status_and_spec_are_written_separately() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut with_status = barrier("b", BarrierSpec::new(2));
    with_status.status = Some(BarrierStatus {
        phase: BarrierPhase::Open,
        ..Default::default()
    });
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(created.status.is_none(), "create ignores status");

    let status_patch =
        json!({"status": {"phase": "Waiting", "arrived": 1}, "spec": {"expected": 9}});
    let patched = api
        .patch_status("b", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().arrived, 1);
    assert_eq!(patched.spec.expected, 2, "status writes ignore spec");
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes keep generation"
    );

    let spec_patch = json!({"spec": {"expected": 5}, "status": {"arrived": 99}});
    let patched = api
        .patch("b", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.expected, 5);
    assert_eq!(
        patched.status.as_ref().unwrap().arrived,
        1,
        "spec writes ignore status"
    );
    assert_eq!(patched.metadata.generation, Some(2));

    let label_patch = json!({"metadata": {"labels": {"team": "etl"}}});
    let patched = api
        .patch("b", &PatchParams::default(), &Patch::Merge(&label_patch))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "metadata changes keep generation"
    );

    let status = api.get_status("b").await.unwrap();
    assert_eq!(status.status.unwrap().arrived, 1);
}

#[tokio::test]
async fn stale_resource_versions_conflict() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let first = api
        .create(&PostParams::default(), &barrier("b", BarrierSpec::new(2)))
        .await
        .unwrap();
    let mut a = first.clone();
    a.spec.expected = 3;
    api.replace("b", &PostParams::default(), &a).await.unwrap();
    let mut stale = first;
    stale.spec.expected = 4;
    let err = status_of(
        api.replace("b", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    assert_eq!(api.get("b").await.unwrap().spec.expected, 3);
}

#[tokio::test]
async fn label_and_field_selectors_and_pages_narrow_lists() {
    let t = TestServer::start().await;
    let barriers: Api<Barrier> = t.api();
    let arrivals: Api<Arrival> = t.api();
    let b1 = barriers
        .create(&PostParams::default(), &barrier("b1", BarrierSpec::new(9)))
        .await
        .unwrap();
    let b2 = barriers
        .create(&PostParams::default(), &barrier("b2", BarrierSpec::new(9)))
        .await
        .unwrap();
    for i in 0..5 {
        arrivals
            .create(&PostParams::default(), &arrival_for(&b1, &format!("w{i}")))
            .await
            .unwrap();
    }
    arrivals
        .create(&PostParams::default(), &arrival_for(&b2, "w0"))
        .await
        .unwrap();

    let of_b1 = arrivals
        .list(&ListParams::default().labels("konductor.io/barrier=b1"))
        .await
        .unwrap();
    assert_eq!(of_b1.items.len(), 5);
    let set_based = arrivals
        .list(&ListParams::default().labels("konductor.io/barrier in (b2,b3)"))
        .await
        .unwrap();
    assert_eq!(set_based.items.len(), 1);
    let by_name = arrivals
        .list(&ListParams::default().fields(&format!("metadata.name={}", arrival_name("b1", "w3"))))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(by_name.items[0].spec.holder, "w3");

    let mut seen = Vec::new();
    let mut params = ListParams::default()
        .labels("konductor.io/barrier=b1")
        .limit(2);
    loop {
        let page = arrivals.list(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|a| a.spec.holder.clone()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["w0", "w1", "w2", "w3", "w4"]);

    let everywhere: Api<Arrival> = Api::all(t.client.clone());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        6
    );
}

#[tokio::test]
async fn a_watcher_sees_every_change() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    while !matches!(
        bounded(stream.try_next()).await.unwrap().unwrap(),
        watcher::Event::InitDone
    ) {}

    api.create(&PostParams::default(), &barrier("w", BarrierSpec::new(1)))
        .await
        .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"expected": 2}})),
    )
    .await
    .unwrap();
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"arrived": 1}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    loop {
        match bounded(stream.try_next()).await.unwrap().unwrap() {
            watcher::Event::Apply(b) => {
                seen.push((b.spec.expected, b.status.map_or(0, |s| s.arrived)))
            }
            watcher::Event::Delete(b) => {
                assert_eq!(b.name_any(), "w");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, [(1, 0), (2, 0), (2, 1)]);
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_expire_outside_the_window() {
    let t = TestServer::start_with(|c| c.watch_window = 5).await;
    let api: Api<Barrier> = t.api();
    let first = api
        .create(&PostParams::default(), &barrier("r0", BarrierSpec::new(1)))
        .await
        .unwrap();
    let from = first.resource_version().unwrap();
    for i in 1..=3 {
        api.create(
            &PostParams::default(),
            &barrier(&format!("r{i}"), BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    for _ in 0..3 {
        match next_change(&mut stream).await {
            WatchEvent::Added(b) => names.push(b.name_any()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        names,
        ["r1", "r2", "r3"],
        "events after the version, in order, once"
    );

    for i in 4..=12 {
        api.create(
            &PostParams::default(),
            &barrier(&format!("r{i}"), BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    }
    // As kube-apiserver: the watch starts, and its one event is a 410 ERROR (clients
    // re-list on it; kube-rs would retry an HTTP 410 forever).
    let stream = api.watch(&WatchParams::default(), &from).await.unwrap();
    let status = match bounded(Box::pin(stream).next()).await.unwrap().unwrap() {
        WatchEvent::Error(status) => *status,
        other => panic!("expected 410, got {other:?}"),
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn watches_send_bookmarks_when_asked() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let created = api
        .create(&PostParams::default(), &barrier("bm", BarrierSpec::new(1)))
        .await
        .unwrap();
    let rv = created.resource_version().unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match bounded(stream.next()).await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn metrics_count_requests_and_each_watch_event_once_per_watch_it_is_sent_on() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let first = api
        .create(&PostParams::default(), &barrier("w1", BarrierSpec::new(1)))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();
    let mut watches = Vec::new();
    for _ in 0..3 {
        watches.push(
            api.watch(&WatchParams::default(), &rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    api.create(&PostParams::default(), &barrier("w2", BarrierSpec::new(1)))
        .await
        .unwrap();
    for watch in &mut watches {
        assert!(matches!(next_change(watch).await, WatchEvent::Added(_)));
    }
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = t.client.request_text(request).await.unwrap();
    let sent = |metric: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{metric}{{resource=\"barriers.konductor.io\"}} "))
            })
            .map(|v| v.parse::<u64>().unwrap())
    };
    assert_eq!(
        sent("konductor_server_watch_events_sent_total"),
        Some(3),
        "{text}"
    );
    let served = |verb: &str| {
        let series = format!(
            "konductor_server_requests_total{{verb=\"{verb}\",resource=\"barriers.konductor.io\",subresource=\"\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map(|v| v.parse::<u64>().unwrap())
    };
    assert_eq!(
        (served("create"), served("watch")),
        (Some(2), Some(3)),
        "{text}"
    );
    assert!(
        sent("konductor_server_watch_event_bytes_sent_total").unwrap() > 3 * 100,
        "{text}"
    );
}

#[tokio::test]
async fn label_selected_watches_see_objects_leave_the_selection() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut labelled = barrier("sel", BarrierSpec::new(1));
    labelled.metadata.labels = Some(BTreeMap::from([("stage".to_owned(), "one".to_owned())]));
    let created = api.create(&PostParams::default(), &labelled).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("stage=one"), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"stage": "two"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        next_change(&mut stream).await,
        WatchEvent::Deleted(_)
    ));
}

#[tokio::test]
async fn deleting_a_barrier_deletes_the_arrivals_it_owns() {
    let t = TestServer::start().await;
    let barriers: Api<Barrier> = t.api();
    let arrivals: Api<Arrival> = t.api();
    let owner = barriers
        .create(&PostParams::default(), &barrier("gc", BarrierSpec::new(3)))
        .await
        .unwrap();
    let keep = barriers
        .create(
            &PostParams::default(),
            &barrier("keep", BarrierSpec::new(3)),
        )
        .await
        .unwrap();
    for holder in ["a", "b", "c"] {
        arrivals
            .create(&PostParams::default(), &arrival_for(&owner, holder))
            .await
            .unwrap();
    }
    arrivals
        .create(&PostParams::default(), &arrival_for(&keep, "a"))
        .await
        .unwrap();

    let lp = ListParams::default().labels("konductor.io/barrier=gc");
    let listed = arrivals.list(&lp).await.unwrap();
    let version = listed.metadata.resource_version.clone().unwrap();
    let mut stream = arrivals
        .watch(
            &WatchParams::default().labels("konductor.io/barrier=gc"),
            &version,
        )
        .await
        .unwrap()
        .boxed();
    barriers
        .delete("gc", &DeleteParams::background())
        .await
        .unwrap();
    let mut deleted = 0;
    while deleted < 3 {
        if let WatchEvent::Deleted(_) = next_change(&mut stream).await {
            deleted += 1;
        }
    }
    assert!(arrivals.list(&lp).await.unwrap().items.is_empty());
    assert_eq!(
        arrivals
            .list(&ListParams::default().labels("konductor.io/barrier=keep"))
            .await
            .unwrap()
            .items
            .len(),
        1,
        "other barriers' arrivals stay"
    );
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let t = TestServer::start().await;
    let barriers: Api<Barrier> = t.api();
    let arrivals: Api<Arrival> = t.api();
    let owner = barriers
        .create(
            &PostParams::default(),
            &barrier("orph", BarrierSpec::new(1)),
        )
        .await
        .unwrap();
    let a = arrivals
        .create(&PostParams::default(), &arrival_for(&owner, "a"))
        .await
        .unwrap();
    barriers
        .delete("orph", &DeleteParams::orphan())
        .await
        .unwrap();
    let kept = arrivals.get(&a.name_any()).await.unwrap();
    assert!(kept.owner_references().is_empty());
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_field_causes() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let cases = [
        (
            BarrierSpec::new(0),
            "spec.expected",
            "should be greater than or equal to 1",
        ),
        (
            BarrierSpec::new(3).with_quorum(4),
            "spec.quorum",
            "quorum must not be greater than expected",
        ),
        (
            BarrierSpec::new(3).with_quorum(0),
            "spec.quorum",
            "should be greater than or equal to 1",
        ),
        (
            BarrierSpec::new(3).with_timeout("soon"),
            "spec.timeout",
            "should match",
        ),
    ];
    for (spec, field, message) in cases {
        let err = status_of(
            api.create(&PostParams::default(), &barrier("bad", spec.clone()))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (err.code, err.reason.as_str()),
            (422, "Invalid"),
            "{spec:?}"
        );
        assert!(
            err.message
                .starts_with("Barrier.konductor.io \"bad\" is invalid: "),
            "{}",
            err.message
        );
        assert!(err.message.contains(message), "{spec:?}: {}", err.message);
        let causes = err.details.unwrap().causes;
        assert_eq!(causes[0].field, field, "{spec:?}");
    }
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing stored"
    );

    let long_name = "x".repeat(64);
    let err = status_of(
        api.create(
            &PostParams::default(),
            &barrier(&long_name, BarrierSpec::new(1)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);

    let arrivals: Api<Arrival> = t.api();
    let empty_holder = Arrival::new("a", ArrivalSpec::succeeded("b", ""));
    let err = status_of(
        arrivals
            .create(&PostParams::default(), &empty_holder)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "spec.holder");

    let ok = arrivals
        .create(
            &PostParams::default(),
            &Arrival::new("a", ArrivalSpec::succeeded("b", "h")),
        )
        .await
        .unwrap();
    let err = status_of(
        arrivals
            .patch(
                &ok.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holder": "other"}})),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.contains("holder is immutable"),
        "{}",
        err.message
    );

    let wrong_type = json!({"apiVersion": "konductor.io/v1", "kind": "Barrier", "metadata": {"name": "wt"}, "spec": {"expected": "five"}});
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        t.client.clone(),
        "default",
        &kube::api::ApiResource::erase::<Barrier>(&()),
    );
    let err = status_of(
        raw.create(
            &PostParams::default(),
            &serde_json::from_value(wrong_type).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("must be of type integer"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn namespaced_objects_need_their_namespace() {
    let t = TestServer::start().await;
    let elsewhere: Api<Barrier> = Api::namespaced(t.client.clone(), "team-a");
    let err = status_of(
        elsewhere
            .create(&PostParams::default(), &barrier("b", BarrierSpec::new(1)))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"team-a\" not found");

    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    elsewhere
        .create(&PostParams::default(), &barrier("b", BarrierSpec::new(1)))
        .await
        .unwrap();
    assert!(namespaces.get("default").await.is_ok());
    let refused = status_of(
        namespaces
            .delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));

    let version = elsewhere
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = elsewhere
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed();
    namespaces
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        matches!(next_change(&mut stream).await, WatchEvent::Deleted(_)),
        "namespace contents are deleted"
    );
}

#[tokio::test]
async fn strategic_merge_is_refused_for_barriers_but_works_for_leases() {
    let t = TestServer::start().await;
    let barriers: Api<Barrier> = t.api();
    barriers
        .create(&PostParams::default(), &barrier("sm", BarrierSpec::new(1)))
        .await
        .unwrap();
    let err = status_of(
        barriers
            .patch(
                "sm",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"expected": 2}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );

    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/expected", "value": 7}]))
            .unwrap();
    let patched = barriers
        .patch(
            "sm",
            &PatchParams::default(),
            &Patch::Json::<()>(json_patch),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.expected, 7);

    let leases: Api<Lease> = t.api();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let patched = leases
        .patch(
            "leader",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let applied = leases
        .patch("other", &PatchParams::apply("konductor-test"), &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "c"}})))
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().holder_identity.as_deref(), Some("c"));
    let mut current = leases.get("leader").await.unwrap();
    current.spec.as_mut().unwrap().holder_identity = Some("d".into());
    let replaced = leases
        .replace("leader", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("d"));
}

#[tokio::test]
async fn events_written_as_events_k8s_io_are_read_as_core_events() {
    let t = TestServer::start().await;
    let recorded: Api<EventsV1> = t.api();
    let event: EventsV1 = serde_json::from_value(json!({
        "metadata": {"name": "b.opened", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"apiVersion": "konductor.io/v1", "kind": "Barrier", "name": "b", "namespace": "default", "uid": "u1"},
        "reason": "Opened", "note": "3 of 3 arrived", "type": "Normal", "action": "Reconcile",
        "reportingController": "konductor.io/controller", "reportingInstance": "konductor-0",
    }))
    .unwrap();
    recorded
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
    let patched = recorded
        .patch(
            "b.opened",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.series.unwrap().count, 2);

    let core: Api<CoreEvent> = t.api();
    let described = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=b,involvedObject.kind=Barrier,involvedObject.uid=u1"),
        )
        .await
        .unwrap();
    assert_eq!(described.items.len(), 1);
    let e = &described.items[0];
    assert_eq!(e.message.as_deref(), Some("3 of 3 arrived"));
    assert_eq!(e.involved_object.name.as_deref(), Some("b"));
    assert_eq!(e.reason.as_deref(), Some("Opened"));
}

/// A client for the server in `kubeconfig`, presenting `token` instead of its own.
async fn client_with_token(kubeconfig: &std::path::Path, token: Option<&str>) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = token.map(|t| t.to_owned().into());
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let t = TestServer::start().await;
    for token in [Some("not-the-token"), None] {
        let client = client_with_token(&t.server.kubeconfig, token).await;
        let api: Api<Barrier> = Api::namespaced(client, "default");
        let err = status_of(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(
            (err.code, err.reason.as_str()),
            (401, "Unauthorized"),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn bodies_over_three_mebibytes_are_refused() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut huge = barrier("huge", BarrierSpec::new(1));
    huge.metadata.annotations = Some(BTreeMap::from([(
        "big".to_owned(),
        "x".repeat(4 * 1024 * 1024),
    )]));
    let err = status_of(api.create(&PostParams::default(), &huge).await.unwrap_err());
    assert_eq!(
        (err.code, err.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );
}

#[tokio::test]
async fn tls_serves_with_the_ca_in_the_kubeconfig() {
    let t = TestServer::start_with(|c| c.tls = true).await;
    assert!(t.server.url.starts_with("https://"));
    let api: Api<Barrier> = t.api();
    api.create(
        &PostParams::default(),
        &barrier("secure", BarrierSpec::new(1)),
    )
    .await
    .unwrap();
    assert_eq!(api.get("secure").await.unwrap().spec.expected, 1);
}

#[tokio::test]
async fn objects_survive_a_restart_and_versions_keep_rising() {
    let dir = tempfile::tempdir().unwrap();
    let server = konductor_server::Server::start(config(dir.path()))
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    let api: Api<Barrier> = Api::namespaced(client, "default");
    let before = api
        .create(
            &PostParams::default(),
            &barrier("durable", BarrierSpec::new(2)),
        )
        .await
        .unwrap();
    server.shutdown().await;

    let server = konductor_server::Server::start(config(dir.path()))
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    let api: Api<Barrier> = Api::namespaced(client, "default");
    let after = api.get("durable").await.unwrap();
    assert_eq!(after.uid(), before.uid());
    let next = api
        .create(
            &PostParams::default(),
            &barrier("next", BarrierSpec::new(2)),
        )
        .await
        .unwrap();
    let rv = |b: &Barrier| b.resource_version().unwrap().parse::<u64>().unwrap();
    assert!(rv(&next) > rv(&before));
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let t = TestServer::start().await;
    let err = konductor_server::Server::start(config(t.dir.path()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("already using"), "{err}");
}

#[tokio::test]
async fn non_loopback_addresses_need_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.listen = "0.0.0.0:0".parse().unwrap();
    c.tls = false;
    let err = konductor_server::Server::start(c).await.err().unwrap();
    assert!(err.to_string().contains("without --expose"), "{err}");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut b = barrier("fin", BarrierSpec::new(1));
    b.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &b).await.unwrap();
    api.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = api.get("fin").await.unwrap();
    assert!(held.meta().deletion_timestamp.is_some());
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(status_of(api.get("fin").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn delete_collection_removes_the_selected_objects() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    for (name, stage) in [("x1", "a"), ("x2", "a"), ("x3", "b")] {
        let mut b = barrier(name, BarrierSpec::new(1));
        b.metadata.labels = Some(BTreeMap::from([("stage".to_owned(), stage.to_owned())]));
        api.create(&PostParams::default(), &b).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("stage=a"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(left, ["x3"]);
}

#[tokio::test]
async fn generate_name_creates_unique_names() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut b = barrier("", BarrierSpec::new(1));
    b.metadata.name = None;
    b.metadata.generate_name = Some("stage-".into());
    let one = api.create(&PostParams::default(), &b).await.unwrap();
    let two = api.create(&PostParams::default(), &b).await.unwrap();
    assert!(one.name_any().starts_with("stage-"));
    assert_ne!(one.name_any(), two.name_any());
}

#[tokio::test]
async fn the_barrier_kind_metadata_is_discoverable() {
    let t = TestServer::start().await;
    let discovery = kube::discovery::Discovery::new(t.client.clone())
        .run()
        .await
        .unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "konductor.io",
            "v1",
            "Barrier",
        ))
        .unwrap();
    assert_eq!(resource.plural, "barriers");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(Barrier::url_path(&(), Some("default")).starts_with("/apis/konductor.io/v1"));
}

#[tokio::test]
async fn aggregated_discovery_describes_every_resource_in_one_answer() {
    let t = TestServer::start().await;
    let aggregated = |path: &str| {
        http::Request::get(path)
            .header(
                "Accept",
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            )
            .body(Vec::new())
            .unwrap()
    };
    let groups: serde_json::Value =
        serde_json::from_str(&t.client.request_text(aggregated("/apis")).await.unwrap()).unwrap();
    assert_eq!(groups["kind"], "APIGroupDiscoveryList");
    let konductor = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "konductor.io")
        .expect("konductor.io is listed");
    let barriers = konductor["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "barriers")
        .expect("barriers are listed");
    assert_eq!(barriers["responseKind"]["kind"], "Barrier");
    assert_eq!(barriers["scope"], "Namespaced");
    assert_eq!(barriers["subresources"][0]["subresource"], "status");
    let core: serde_json::Value =
        serde_json::from_str(&t.client.request_text(aggregated("/api")).await.unwrap()).unwrap();
    let resources: Vec<&str> = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["resource"].as_str())
        .collect();
    assert!(resources.contains(&"namespaces") && resources.contains(&"configmaps"));
    let legacy: serde_json::Value = serde_json::from_str(
        &t.client
            .request_text(http::Request::get("/api").body(Vec::new()).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        legacy["kind"], "APIVersions",
        "a client asking for JSON gets the legacy form"
    );
}

#[tokio::test]
async fn health_endpoints_answer_without_a_token() {
    let t = TestServer::start().await;
    let anonymous = client_with_token(&t.server.kubeconfig, None).await;
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        let body = anonymous.request_text(request).await.unwrap();
        assert!(!body.is_empty(), "{path}");
    }
    let request = http::Request::get("/apis/konductor.io/v1")
        .body(Vec::new())
        .unwrap();
    let err = status_of(anonymous.request_text(request).await.unwrap_err());
    assert_eq!(err.code, 401, "discovery needs the token");
}

#[tokio::test]
async fn dry_run_validates_and_stores_nothing() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let previewed = api
        .create(&dry, &barrier("dry", BarrierSpec::new(2)))
        .await
        .unwrap();
    assert_eq!(previewed.spec.expected, 2);
    assert_eq!(
        status_of(api.get("dry").await.unwrap_err()).code,
        404,
        "nothing stored"
    );
    let invalid = status_of(
        api.create(&dry, &barrier("dry", BarrierSpec::new(0)))
            .await
            .unwrap_err(),
    );
    assert_eq!(invalid.code, 422, "dry runs still validate");

    api.create(
        &PostParams::default(),
        &barrier("real", BarrierSpec::new(2)),
    )
    .await
    .unwrap();
    let patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let previewed = api
        .patch(
            "real",
            &patch,
            &Patch::Merge(json!({"spec": {"expected": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(previewed.spec.expected, 9);
    assert_eq!(api.get("real").await.unwrap().spec.expected, 2);
    let delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    api.delete("real", &delete).await.unwrap();
    assert!(
        api.get("real").await.is_ok(),
        "a dry-run delete deletes nothing"
    );
}

#[tokio::test]
async fn metadata_only_reads_leave_spec_and_status_behind() {
    let t = TestServer::start().await;
    let api: Api<Barrier> = t.api();
    let mut created = api
        .create(
            &PostParams::default(),
            &barrier("meta", BarrierSpec::new(2)),
        )
        .await
        .unwrap();
    created.status = Some(BarrierStatus {
        arrivals: vec!["a".into(), "b".into()],
        ..BarrierStatus::default()
    });
    api.replace_status("meta", &PostParams::default(), &created)
        .await
        .unwrap();
    let metadata = api.get_metadata("meta").await.unwrap();
    assert_eq!(metadata.metadata.uid, created.metadata.uid);
    let client = t.client.clone();
    let raw = http::Request::get("/apis/konductor.io/v1/namespaces/default/barriers/meta")
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&client.request_text(raw).await.unwrap()).unwrap();
    assert_eq!(body["kind"], "PartialObjectMetadata");
    assert!(
        body.get("status").is_none() && body.get("spec").is_none(),
        "{body}"
    );
    let listed = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("meta"));
}

#[tokio::test]
async fn every_page_of_a_list_comes_from_one_snapshot() {
    let t = TestServer::start().await;
    let barriers: Api<Barrier> = t.api();
    for i in 0..5 {
        barriers
            .create(
                &PostParams::default(),
                &barrier(&format!("p{i}"), BarrierSpec::new(1)),
            )
            .await
            .unwrap();
    }
    let first = barriers
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    let version = first.metadata.resource_version.clone();
    // Changes after the first page: a deletion, an addition, an update.
    barriers
        .delete("p3", &DeleteParams::default())
        .await
        .unwrap();
    barriers
        .create(&PostParams::default(), &barrier("p5", BarrierSpec::new(1)))
        .await
        .unwrap();
    let mut names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    let mut token = first.metadata.continue_.unwrap();
    loop {
        let page = barriers
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(page.metadata.resource_version, version, "one snapshot");
        names.extend(page.items.iter().map(ResourceExt::name_any));
        match page.metadata.continue_ {
            Some(next) if !next.is_empty() => token = next,
            _ => break,
        }
    }
    assert_eq!(
        names,
        ["p0", "p1", "p2", "p3", "p4"],
        "as of the first page"
    );
    // A token whose snapshot is gone is 410, as on a real API server.
    let stale = status_of(
        barriers
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((stale.code, stale.reason.as_str()), (410, "Expired"));
}
