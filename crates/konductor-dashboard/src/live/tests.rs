use serde_json::json;

use super::*;

fn watched(kind: &str) -> &'static Watched {
    WATCHED.iter().find(|w| w.kind == kind).unwrap()
}

fn barrier(name: &str, arrived: i32) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Barrier",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"expected": 3},
        "status": {"phase": "Waiting", "arrived": arrived},
    }))
    .unwrap()
}

fn permit(name: &str, lock: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Permit",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-12-08T00:00:00Z"},
        "spec": {"lockRef": {"kind": "Mutex", "name": lock}, "holder": name},
        "status": {"phase": "Pending"},
    }))
    .unwrap()
}

fn mutex(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1", "kind": "Mutex",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"ttl": "30s"},
    }))
    .unwrap()
}

fn parse(message: &str) -> serde_json::Value {
    serde_json::from_str(message).unwrap()
}

#[test]
fn a_page_gets_only_the_panels_changed_since_it_last_looked() {
    let mut model = Model::default();
    model.apply(watched("Barrier"), barrier("a", 0));
    model.apply(watched("Barrier"), barrier("b", 0));
    assert!(model.flush());
    let seen = model.seq;
    let snapshot = parse(&model.snapshot());
    assert_eq!(snapshot["panels"].as_array().unwrap().len(), 2);

    // Three changes to one barrier make one panel in one batch.
    for arrived in 1..=3 {
        model.apply(watched("Barrier"), barrier("a", arrived));
    }
    assert!(model.flush());
    let changes = parse(&model.changes_since(seen).unwrap());
    let panels = changes["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0]["summary"], "3 of 3 arrived");
    assert!(changes.get("events").is_none());

    // Nothing changed: no batch.
    model.apply(watched("Barrier"), barrier("a", 3));
    assert!(!model.flush());

    model.remove(watched("Barrier"), "Barrier/ns/b");
    assert!(model.flush());
    let changes = parse(&model.changes_since(seen + 1).unwrap());
    assert_eq!(changes["removed"], json!(["Barrier/ns/b"]));
}

#[test]
fn a_claim_remakes_its_subjects_panel_and_leaving_removes_it_from_the_queue() {
    let mut model = Model::default();
    model.apply(watched("Mutex"), mutex("db"));
    model.apply(watched("Permit"), permit("p1", "db"));
    model.apply(watched("Permit"), permit("p2", "db"));
    model.flush();
    let panel = parse(&model.panels["Mutex/ns/db"]);
    assert_eq!(panel["view"]["claims"]["queueLength"], 2);
    let seen = model.seq;
    model.remove(watched("Permit"), "Permit/ns/p1");
    assert!(model.flush());
    let changes = parse(&model.changes_since(seen).unwrap());
    assert_eq!(changes["panels"][0]["view"]["claims"]["queueLength"], 1);
}

#[test]
fn a_relist_drops_what_it_no_longer_delivers() {
    let mut model = Model::default();
    model.apply(watched("Barrier"), barrier("a", 0));
    model.apply(watched("Barrier"), barrier("b", 0));
    model.flush();
    model.begin_relist("Barrier");
    model.apply(watched("Barrier"), barrier("a", 1));
    model.end_relist(watched("Barrier"));
    model.flush();
    let keys: Vec<&String> = model.panels.keys().collect();
    assert_eq!(keys, ["Barrier/ns/a"]);
    assert_eq!(model.visibility["Barrier"], Visibility::Live);
}

#[test]
fn a_page_too_far_behind_gets_a_snapshot() {
    let mut model = Model::default();
    for arrived in 0..(LOG_BATCHES as i32 + 5) {
        model.apply(watched("Barrier"), barrier("a", arrived % 4));
        model.apply(watched("Barrier"), barrier(&format!("n{arrived}"), 0));
        model.flush();
    }
    assert!(model.changes_since(1).is_none());
    assert!(model.changes_since(model.seq - 1).is_some());
}

#[test]
fn only_events_of_konductor_objects_are_listed_newest_kept() {
    let mut model = Model::default();
    let event = |n: usize, api_version: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("e{n}"), "namespace": "ns", "uid": format!("u{n}")},
            "involvedObject": {"apiVersion": api_version, "kind": "Barrier", "name": "a", "namespace": "ns"},
            "reason": "Opened", "message": "opened", "type": "Normal",
            "lastTimestamp": format!("2026-12-08T00:{:02}:{:02}Z", n / 60, n % 60),
        }))
        .unwrap()
    };
    model.apply(watched("Event"), event(0, "apps/v1"));
    assert!(model.events.is_empty());
    for n in 0..(EVENTS_KEPT + 10) {
        model.apply(watched("Event"), event(n, "konductor.io/v1"));
    }
    assert_eq!(model.events.len(), EVENTS_KEPT);
    assert_eq!(model.events.front().unwrap().uid, "u10");
}

#[test]
fn a_refused_list_reads_not_visible_and_a_missing_kind_not_served() {
    let refused = |code: u16| {
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "permits.konductor.io is forbidden".to_owned(),
            ..kube::core::Status::default()
        })))
    };
    assert_eq!(
        visibility_of(&refused(403)),
        Visibility::Forbidden("permits.konductor.io is forbidden".to_owned())
    );
    assert!(matches!(
        visibility_of(&refused(404)),
        Visibility::NotServed(_)
    ));
    assert!(matches!(
        visibility_of(&refused(500)),
        Visibility::Failing(_)
    ));
    let json = serde_json::to_value(Visibility::Forbidden("no".to_owned())).unwrap();
    assert_eq!(
        json,
        json!({"state": "forbidden", "message": "no"}),
        "as the page reads it"
    );
}
