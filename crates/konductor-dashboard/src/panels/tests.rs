use serde_json::json;

use super::*;

fn object(
    kind: &str,
    name: &str,
    spec: serde_json::Value,
    status: serde_json::Value,
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-12-08T00:00:00Z"},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn permit(
    lock_kind: &str,
    lock: &str,
    holder: &str,
    position: Option<i32>,
    phase: &str,
    created: &str,
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1",
        "kind": "Permit",
        "metadata": {"name": format!("{lock}-{holder}"), "namespace": "ns", "creationTimestamp": created},
        "spec": {"lockRef": {"kind": lock_kind, "name": lock}, "holder": holder},
        "status": {"phase": phase, "position": position},
    }))
    .unwrap()
}

fn member(group: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
    let mut spec = spec;
    spec["waitGroup"] = json!(group);
    spec["member"] = json!(name);
    serde_json::from_value(json!({
        "apiVersion": "konductor.io/v1",
        "kind": "WaitGroupMember",
        "metadata": {"name": format!("{group}-{name}"), "namespace": "ns"},
        "spec": spec,
    }))
    .unwrap()
}

#[test]
fn a_barrier_shows_arrivals_of_expected_with_its_quorum_and_failures() {
    let barrier = object(
        "Barrier",
        "etl",
        json!({"expected": 4, "quorum": 3}),
        json!({"phase": "Waiting", "arrived": 2, "arrivals": ["a", "b"], "failed": 1,
               "failures": [{"holder": "c", "message": "disk full"}]}),
    );
    let panel = panel("Barrier", &barrier, std::iter::empty()).unwrap();
    assert_eq!(panel.key, "Barrier/ns/etl");
    assert_eq!(panel.summary, "2 of 4 arrived, quorum 3, 1 failed");
    assert!(panel.active);
    assert_eq!(panel.waiting_since.as_deref(), Some("2026-12-08T00:00:00Z"));
    let View::Barrier {
        arrivals,
        failures,
        quorum,
        ..
    } = panel.view
    else {
        panic!()
    };
    assert_eq!(
        (arrivals, quorum),
        (vec!["a".to_owned(), "b".to_owned()], 3)
    );
    assert_eq!(failures[0].message.as_deref(), Some("disk full"));
}

#[test]
fn a_lock_lists_its_holders_and_the_first_waiters_in_queue_order_with_the_total() {
    let mutex = object(
        "Mutex",
        "db",
        json!({"ttl": "30s"}),
        json!({"phase": "Locked", "holder": "x", "fencingToken": 5,
               "grants": [{"holder": "x", "permit": "db-x", "uid": "u", "token": 5,
                           "grantedAt": "2026-12-08T00:00:01.000000Z"}]}),
    );
    let mut claims = Vec::new();
    for i in 0..15 {
        // Created in reverse order: the queue follows the controller's positions.
        let created = format!("2026-12-08T00:00:{:02}Z", 30 - i);
        let (_, claim) = claim_of(
            "Permit",
            &permit(
                "Mutex",
                "db",
                &format!("w{i}"),
                Some(i + 1),
                "Pending",
                &created,
            ),
        )
        .unwrap();
        claims.push(claim);
    }
    let (parent, granted) = claim_of(
        "Permit",
        &permit("Mutex", "db", "x", None, "Granted", "2026-12-08T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(parent, "Mutex/ns/db");
    claims.push(granted);
    let panel = panel("Mutex", &mutex, claims.iter()).unwrap();
    assert_eq!(panel.summary, "1 of 1 in use, 15 waiting");
    assert_eq!(
        panel.waiting_since.as_deref(),
        Some("2026-12-08T00:00:16Z"),
        "the oldest waiter"
    );
    let View::Lock {
        capacity, claims, ..
    } = panel.view
    else {
        panic!()
    };
    assert_eq!(capacity, 1);
    assert_eq!(claims.holders[0].holder, "x");
    assert_eq!(claims.holders[0].token, 5);
    assert_eq!(claims.queue_length, 15);
    let shown: Vec<&str> = claims.queue.iter().map(|w| w.holder.as_str()).collect();
    assert_eq!(
        shown,
        ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"]
    );
}

#[test]
fn a_semaphore_counts_in_use_of_its_permits() {
    let semaphore = object(
        "Semaphore",
        "gpus",
        json!({"permits": 8, "ttl": "30s"}),
        json!({"phase": "Available", "inUse": 1, "available": 7, "fencingToken": 1,
               "grants": [{"holder": "a", "permit": "p", "uid": "u", "token": 1,
                           "grantedAt": "2026-12-08T00:00:01Z"}]}),
    );
    let panel = panel("Semaphore", &semaphore, std::iter::empty()).unwrap();
    assert_eq!(panel.summary, "1 of 8 in use, 0 waiting");
    assert!(!panel.active);
}

#[test]
fn a_waitgroup_grid_is_bounded_and_shows_failed_members_first() {
    let group = object(
        "WaitGroup",
        "ingest",
        json!({"expected": 400}),
        json!({"phase": "Waiting", "added": 400, "done": 300, "failed": 1, "counter": 99}),
    );
    let mut claims = Vec::new();
    for i in 0..400 {
        let spec = match i {
            0..300 => json!({"outcome": {"result": "Succeeded"}}),
            300 => json!({"outcome": {"result": "Failed", "message": "bad row"}}),
            301..310 => json!({"holder": "pod-1"}),
            _ => json!({}),
        };
        let (parent, claim) = claim_of(
            "WaitGroupMember",
            &member("ingest", &format!("f{i:03}"), spec),
        )
        .unwrap();
        assert_eq!(parent, "WaitGroup/ns/ingest");
        claims.push(claim);
    }
    let panel = panel("WaitGroup", &group, claims.iter()).unwrap();
    let View::WaitGroup {
        cells, by_state, ..
    } = panel.view
    else {
        panic!()
    };
    assert_eq!(cells.len(), CELLS_SHOWN);
    assert_eq!(
        (cells[0].state, cells[0].message.as_deref()),
        ("failed", Some("bad row"))
    );
    assert_eq!(cells[1].state, "running");
    assert_eq!(by_state["done"], 300);
    assert_eq!(by_state["pending"], 90);
    assert_eq!(by_state["running"], 9);
}

#[test]
fn a_gate_shows_each_condition_and_what_it_resumes() {
    let gate = object(
        "Gate",
        "b-after-a",
        json!({"conditions": [{"ref": {"apiVersion": "batch/v1", "kind": "Job", "name": "a"},
                               "condition": {"type": "Complete"}}],
               "resume": [{"apiVersion": "batch/v1", "kind": "Job", "name": "b"}]}),
        json!({"phase": "Waiting", "met": 0, "total": 1, "required": 1,
               "results": [{"target": "job/a", "test": "condition Complete=True", "met": false,
                            "failed": false, "message": "Complete is False"}]}),
    );
    let panel = panel("Gate", &gate, std::iter::empty()).unwrap();
    assert_eq!(panel.summary, "0 of 1 conditions met (all)");
    let View::Gate {
        conditions, resume, ..
    } = panel.view
    else {
        panic!()
    };
    assert_eq!(conditions[0].target, "job/a");
    assert!(!conditions[0].met);
    assert_eq!(
        (resume[0].target.as_str(), resume[0].state.as_str()),
        ("job/b", "Waiting")
    );
}

#[test]
fn an_object_that_is_not_its_kind_gets_no_panel_and_a_stranger_no_claim() {
    let broken = object("Barrier", "x", json!({"expected": "many"}), json!({}));
    assert!(panel("Barrier", &broken, std::iter::empty()).is_none());
    assert!(claim_of("Barrier", &broken).is_none());
}
