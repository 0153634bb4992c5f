use super::*;
use serde_json::json;

fn object(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "spec": {"n": 1}})
}

fn put(store: &Store, name: &str) -> Value {
    let key = ObjectKey::new("things", "default", name);
    let stored = store
        .write::<StoreError>(&key, |_| Ok(Write::Put(object(name))))
        .unwrap()
        .unwrap();
    (*stored).clone()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("db"), WatchHub::new(100_000)).unwrap()
}

#[test]
fn writes_get_rising_resource_versions_that_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = Store::open(&path, WatchHub::new(16)).unwrap();
    let a = put(&store, "a");
    let b = put(&store, "b");
    assert!(rv(&b) > rv(&a));
    drop(store);
    let reopened = Store::open(&path, WatchHub::new(16)).unwrap();
    assert_eq!(reopened.resource_version(), rv(&b));
    let c = put(&reopened, "c");
    assert!(rv(&c) > rv(&b));
    let key = ObjectKey::new("things", "default", "a");
    assert_eq!(
        *reopened.get(&key).unwrap().unwrap(),
        a,
        "read from the database"
    );
    assert_eq!(
        reopened
            .get(&ObjectKey::new("things", "default", "c"))
            .unwrap()
            .unwrap()
            .as_ref(),
        &c,
        "read hot"
    );
}

#[test]
fn lists_page_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for name in ["c", "a", "b"] {
        put(&store, name);
    }
    let first = store
        .list("things", Some("default"), None, Some(2))
        .unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b")]);
    let rest = store
        .list("things", None, Some(("default", "b")), None)
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0]["metadata"]["name"], "c");
    let in_namespace = store
        .list("things", Some("default"), Some(("default", "a")), None)
        .unwrap();
    assert_eq!(in_namespace.items.len(), 2);
    assert_eq!(first.resource_version, store.resource_version());
}

#[test]
fn deletes_publish_the_last_state_forget_owners_and_queue_collection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let parent = put(&store, "parent");
    let key = ObjectKey::new("things", "default", "child");
    let mut child = object("child");
    child["metadata"]["ownerReferences"] = json!([{"uid": "uid-parent"}]);
    store
        .write::<StoreError>(&key, |_| Ok(Write::Put(child)))
        .unwrap();
    assert_eq!(
        store.dependents("uid-parent").unwrap(),
        std::slice::from_ref(&key)
    );
    assert!(store.uid_exists("uid-parent").unwrap());
    let subscription = store
        .hub()
        .subscribe(
            store.resource_version(),
            &crate::watch::Route::Bucket("things".into()),
        )
        .unwrap();
    let parent_key = ObjectKey::new("things", "default", "parent");
    let deleted = store
        .write::<StoreError>(&parent_key, |_| Ok(Write::Delete))
        .unwrap()
        .unwrap();
    assert_eq!(deleted["metadata"]["name"], parent["metadata"]["name"]);
    assert!(!store.uid_exists("uid-parent").unwrap());
    let mut live = subscription.live;
    let event = live.try_recv().unwrap();
    assert_eq!(event.event_type, EventType::Deleted);
    assert_eq!(event.resource_version, store.resource_version());
    assert_eq!(
        store.gc_pending(10).unwrap(),
        [GcTask::Owner("uid-parent".into())]
    );
    // Deleting an object nothing depends on queues nothing.
    store
        .write::<StoreError>(&key, |_| Ok(Write::Delete))
        .unwrap();
    assert!(store.dependents("uid-parent").unwrap().is_empty());
    assert_eq!(store.gc_pending(10).unwrap().len(), 1);
    store.gc_done(&GcTask::Owner("uid-parent".into())).unwrap();
    assert!(store.gc_pending(10).unwrap().is_empty());
}

#[test]
fn deleting_a_namespace_queues_its_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let key = ObjectKey::new(NAMESPACES, "", "team");
    store
        .write::<StoreError>(&key, |_| {
            Ok(Write::Put(
                json!({"metadata": {"name": "team", "uid": "ns-uid"}}),
            ))
        })
        .unwrap();
    store
        .write::<StoreError>(&key, |_| Ok(Write::Delete))
        .unwrap();
    assert_eq!(
        store.gc_pending(10).unwrap(),
        [GcTask::Namespace("team".into())]
    );
}

#[test]
fn a_database_from_before_the_queue_gets_its_leftovers_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        // The schema as it was: no queue, no indexes, user_version 0; an arrival whose
        // barrier was deleted while the server was down, and one in a deleted namespace.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE objects (bucket TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                uid TEXT NOT NULL, resource_version INTEGER NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (bucket, namespace, name)) WITHOUT ROWID;
             CREATE TABLE owners (owner_uid TEXT NOT NULL, bucket TEXT NOT NULL, namespace TEXT NOT NULL,
                name TEXT NOT NULL, PRIMARY KEY (owner_uid, bucket, namespace, name)) WITHOUT ROWID;
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO counters VALUES ('resourceVersion', 7);
             INSERT INTO objects VALUES ('namespaces', '', 'default', 'd', 1, '{}');
             INSERT INTO objects VALUES ('arrivals', 'default', 'a', 'a-uid', 2, '{}');
             INSERT INTO objects VALUES ('arrivals', 'gone', 'b', 'b-uid', 3, '{}');
             INSERT INTO owners VALUES ('barrier-uid', 'arrivals', 'default', 'a');",
        )
        .unwrap();
    }
    let store = Store::open(&path, WatchHub::new(16)).unwrap();
    let mut pending = store.gc_pending(10).unwrap();
    pending.sort_by_key(|t| format!("{t:?}"));
    assert_eq!(
        pending,
        [
            GcTask::Namespace("gone".into()),
            GcTask::Owner("barrier-uid".into())
        ]
    );
    for task in &pending {
        store.gc_done(task).unwrap();
    }
    drop(store);
    let reopened = Store::open(&path, WatchHub::new(16)).unwrap();
    assert!(reopened.gc_pending(10).unwrap().is_empty(), "queued once");
    assert_eq!(reopened.resource_version(), 7);
}

/// The cost of a statement must not grow with the number of objects: each one finds
/// its rows through an index, never by scanning `objects` or `owners`.
#[test]
fn every_statement_uses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Statistics as on a busy server, so the planner chooses as it would there.
    for i in 0..200 {
        put(&store, &format!("o{i}"));
    }
    let conn = Connection::open(dir.path().join("db")).unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    for (name, statement) in sql::SERVING {
        let mut plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let unbound = vec![rusqlite::types::Null; plan.parameter_count()];
        let details: Vec<String> = plan
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for detail in &details {
            assert!(
                !(detail.starts_with("SCAN objects") || detail.starts_with("SCAN owners")),
                "{name} scans a whole table: {details:?}"
            );
        }
    }
}

/// Concurrent writers share commits but each gets its own version, in order, and the
/// watch sees every write exactly once, in version order, with no gaps.
#[test]
fn concurrent_writes_are_committed_in_batches_without_gaps() {
    const THREADS: usize = 16;
    const WRITES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let start = store.resource_version();
    let mut live = store
        .hub()
        .subscribe(start, &crate::watch::Route::Bucket("things".into()))
        .unwrap()
        .live;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = store.clone();
            scope.spawn(move || {
                for i in 0..WRITES {
                    let key = ObjectKey::new("things", "default", &format!("t{t}-{i}"));
                    // Every fourth write is refused by its decision: others in its batch
                    // must not notice.
                    let result = store.write::<StoreError>(&key, |_| {
                        if i % 4 == 3 {
                            Err(StoreError::CommitFailed("refused".into()))
                        } else {
                            Ok(Write::Put(object(&key.name)))
                        }
                    });
                    assert_eq!(result.is_err(), i % 4 == 3);
                }
            });
        }
    });
    let written = THREADS * WRITES * 3 / 4;
    assert_eq!(store.resource_version(), start + written as u64);
    let stats = store.stats();
    assert_eq!(stats.writes, written as u64);
    assert!(stats.commits <= stats.writes, "{stats:?}");
    for expected in start + 1..=start + written as u64 {
        let event = live.try_recv().unwrap();
        assert_eq!(event.resource_version, expected);
        assert_eq!(rv(&event.object), expected);
        let stored = store.get(&event.key).unwrap().unwrap();
        assert_eq!(event.object_json(), stored.to_string());
    }
    assert!(live.try_recv().is_err());
}

#[test]
fn a_panicking_decision_leaves_the_store_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let key = ObjectKey::new("things", "default", "p");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.write::<StoreError>(&key, |_| panic!("a bug"));
    }));
    assert!(panicked.is_err());
    assert_eq!(rv(&put(&store, "after")), store.resource_version());
    assert!(store.get(&key).unwrap().is_none());
}

#[test]
fn the_write_ahead_log_is_checkpointed_off_the_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..50 {
        put(&store, &format!("o{i}"));
    }
    let (frames, copied) = store.checkpoint().unwrap();
    assert_eq!(
        copied, frames,
        "all of the WAL can be copied without stopping writers"
    );
    let reopened_reader = Connection::open(dir.path().join("db")).unwrap();
    let count: i64 = reopened_reader
        .query_row(
            "SELECT count(*) FROM objects WHERE bucket = 'things'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 50);
}
