//! Durable object storage on SQLite (WAL mode), with one global resourceVersion.
//!
//! The store knows objects only as JSON values in buckets (`konductor.io/barriers`,
//! `events`, …) keyed by namespace and name; it knows nothing of HTTP or of what the
//! objects mean. Its guarantees, which everything above relies on:
//!
//! - **One transaction per write, durable before it returns**: `synchronous=FULL`, so an
//!   acknowledged write survives `kill -9` and power loss.
//! - **One monotonic resourceVersion** across all buckets, stored in the same
//!   transaction as the write, so it keeps rising across restarts.
//! - **Every committed write is published to the [`WatchHub`]** in commit order, while
//!   the writer lock is held, so watchers see exactly the sequence that was stored.
//! - **Snapshot lists**: a list and the resourceVersion it reports come from one read
//!   transaction, so a watch from that version misses nothing and repeats nothing.
//!
//! All methods block (SQLite I/O); async callers run them with
//! [`tokio::task::spawn_blocking`]. A `std::sync::Mutex` guards the one writer
//! connection because writes are serialised by SQLite anyway and the lock is never held
//! across an `.await`; reads use a small pool of separate connections, which WAL lets
//! run alongside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::watch::{EventType, WatchEvent, WatchHub};

/// How many idle read connections are kept.
const READ_POOL_SIZE: usize = 4;

/// Storage failures (I/O, corruption, a body that is not JSON).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored body could not be decoded.
    #[error("stored object is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// A result whose error is a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where an object lives: bucket, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The storage bucket (see `registry`).
    pub bucket: String,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(bucket: &str, namespace: &str, name: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What a write decided to do with the object it read.
#[derive(Debug)]
pub enum Write {
    /// Store this object (create or replace). Its resourceVersion is set by the store.
    Put(Value),
    /// Delete the object.
    Delete,
    /// Change nothing and return this object to the caller.
    Unchanged(Value),
}

/// The objects of one list and the resourceVersion of the snapshot they come from.
#[derive(Debug)]
pub struct Listing {
    /// The objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The store's resourceVersion at the time of the snapshot.
    pub resource_version: u64,
}

/// The SQLite-backed object store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The only connection that writes; holds the current resourceVersion with it.
    writer: Mutex<Writer>,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
    hub: WatchHub,
}

struct Writer {
    conn: Connection,
    resource_version: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (bucket, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (
    owner_uid TEXT NOT NULL,
    bucket TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (owner_uid, bucket, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('resourceVersion', 1);
";

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, publishing writes to `hub`.
    pub fn open(path: &Path, hub: WatchHub) -> Result<Self> {
        let conn = open_connection(path)?;
        conn.execute_batch(SCHEMA)?;
        let resource_version: i64 = conn.query_row(
            "SELECT value FROM counters WHERE name = 'resourceVersion'",
            [],
            |row| row.get(0),
        )?;
        let resource_version = u64::try_from(resource_version).unwrap_or(0);
        hub.reset(resource_version);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(Writer {
                    conn,
                    resource_version,
                }),
                readers: Mutex::new(Vec::new()),
                hub,
            }),
        })
    }

    /// The hub this store publishes to.
    pub fn hub(&self) -> &WatchHub {
        &self.inner.hub
    }

    /// The newest resourceVersion written.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.writer).resource_version
    }

    /// Runs `f` on a read connection from the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.inner.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.inner.path)?,
        };
        let result = f(&conn);
        let mut readers = lock(&self.inner.readers);
        if readers.len() < READ_POOL_SIZE {
            readers.push(conn);
        }
        result
    }

    /// The object at `key`, if it exists.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        self.read(|conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM objects WHERE bucket = ?1 AND namespace = ?2 AND name = ?3",
                    params![key.bucket, key.namespace, key.name],
                    |row| row.get(0),
                )
                .optional()?;
            body.map(|b| serde_json::from_str(&b).map_err(StoreError::from))
                .transpose()
        })
    }

    /// All objects of `bucket` (in `namespace`, or in all namespaces when `None`),
    /// ordered by namespace and name, starting after `after` (a `(namespace, name)`
    /// from a previous page) and returning at most `limit` (all when `None`).
    pub fn list(
        &self,
        bucket: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: Option<usize>,
    ) -> Result<Listing> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let resource_version: i64 = tx.query_row(
                "SELECT value FROM counters WHERE name = 'resourceVersion'",
                [],
                |row| row.get(0),
            )?;
            let (after_ns, after_name) = after.unwrap_or(("", ""));
            let has_after = after.is_some();
            let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let mut stmt = tx.prepare_cached(
                "SELECT body FROM objects
                 WHERE bucket = ?1 AND (?2 IS NULL OR namespace = ?2)
                   AND (NOT ?3 OR (namespace, name) > (?4, ?5))
                 ORDER BY namespace, name LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![bucket, namespace, has_after, after_ns, after_name, limit],
                |row| row.get::<_, String>(0),
            )?;
            let mut items = Vec::new();
            for body in rows {
                items.push(serde_json::from_str(&body?)?);
            }
            Ok(Listing {
                items,
                resource_version: u64::try_from(resource_version).unwrap_or(0),
            })
        })
    }

    /// The keys of objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Result<Vec<ObjectKey>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT bucket, namespace, name FROM owners WHERE owner_uid = ?1",
            )?;
            let rows = stmt.query_map(params![owner_uid], |row| {
                Ok(ObjectKey {
                    bucket: row.get(0)?,
                    namespace: row.get(1)?,
                    name: row.get(2)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> Result<bool> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM objects WHERE uid = ?1 LIMIT 1",
                    params![uid],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }

    /// Every distinct owner uid referenced by some object (for garbage collection
    /// after a restart).
    pub fn owner_uids(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT DISTINCT owner_uid FROM owners")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
    }

    /// Reads the object at `key`, lets `decide` choose what to do with it, and applies
    /// that in one transaction, durable before returning. `decide` receives the current
    /// object (or `None`) and the resourceVersion the write will get.
    ///
    /// Returns the stored object (with its new resourceVersion), the deleted object, or
    /// the unchanged one; `None` only when deleting an absent object.
    pub fn write<E>(
        &self,
        key: &ObjectKey,
        decide: impl FnOnce(Option<Value>) -> std::result::Result<Write, E>,
    ) -> std::result::Result<Option<Value>, E>
    where
        E: From<StoreError>,
    {
        let mut writer = lock(&self.inner.writer);
        let current: Option<Value> = writer
            .conn
            .query_row(
                "SELECT body FROM objects WHERE bucket = ?1 AND namespace = ?2 AND name = ?3",
                params![key.bucket, key.namespace, key.name],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(StoreError::from)?
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(StoreError::from)?;
        let existed = current.is_some();
        let decision = decide(current.clone())?;
        let next_rv = writer.resource_version + 1;
        let (event_type, mut object) = match decision {
            Write::Unchanged(object) => return Ok(Some(object)),
            Write::Delete => match &current {
                Some(object) => (EventType::Deleted, object.clone()),
                None => return Ok(None),
            },
            Write::Put(object) => (
                if existed {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                object,
            ),
        };
        object["metadata"]["resourceVersion"] = Value::String(next_rv.to_string());
        commit(&mut writer.conn, key, event_type, &object, next_rv).map_err(E::from)?;
        writer.resource_version = next_rv;
        let object = Arc::new(object);
        self.inner.hub.publish(WatchEvent {
            event_type,
            key: key.clone(),
            resource_version: next_rv,
            object: object.clone(),
            previous: current
                .filter(|_| event_type == EventType::Modified)
                .map(Arc::new),
            json: std::sync::OnceLock::new(),
        });
        drop(writer);
        Ok(Some(Arc::unwrap_or_clone(object)))
    }
}

/// Applies one write and the resourceVersion bump in a single durable transaction.
fn commit(
    conn: &mut Connection,
    key: &ObjectKey,
    event_type: EventType,
    object: &Value,
    resource_version: u64,
) -> Result<()> {
    let rv = i64::try_from(resource_version).unwrap_or(i64::MAX);
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM owners WHERE bucket = ?1 AND namespace = ?2 AND name = ?3",
        params![key.bucket, key.namespace, key.name],
    )?;
    if event_type == EventType::Deleted {
        tx.execute(
            "DELETE FROM objects WHERE bucket = ?1 AND namespace = ?2 AND name = ?3",
            params![key.bucket, key.namespace, key.name],
        )?;
    } else {
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        tx.execute(
            "INSERT INTO objects (bucket, namespace, name, uid, resource_version, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (bucket, namespace, name) DO UPDATE SET
               uid = excluded.uid, resource_version = excluded.resource_version, body = excluded.body",
            params![key.bucket, key.namespace, key.name, uid, rv, object.to_string()],
        )?;
        for owner in object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(owner_uid) = owner["uid"].as_str() {
                tx.execute(
                    "INSERT OR IGNORE INTO owners (owner_uid, bucket, namespace, name) VALUES (?1, ?2, ?3, ?4)",
                    params![owner_uid, key.bucket, key.namespace, key.name],
                )?;
            }
        }
    }
    tx.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'resourceVersion'",
        params![rv],
    )?;
    tx.commit()?;
    Ok(())
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every
/// critical section leaves the data consistent, so poisoning carries no meaning here).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "spec": {"n": 1}})
    }

    fn put(store: &Store, name: &str) -> Value {
        let key = ObjectKey::new("things", "default", name);
        store
            .write::<StoreError>(&key, |_| Ok(Write::Put(object(name))))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn writes_get_rising_resource_versions_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path, WatchHub::new(16)).unwrap();
        let a = put(&store, "a");
        let b = put(&store, "b");
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&b) > rv(&a));
        drop(store);
        let reopened = Store::open(&path, WatchHub::new(16)).unwrap();
        assert_eq!(reopened.resource_version(), rv(&b));
        let c = put(&reopened, "c");
        assert!(rv(&c) > rv(&b));
        let key = ObjectKey::new("things", "default", "a");
        assert_eq!(reopened.get(&key).unwrap().unwrap(), a);
    }

    #[test]
    fn lists_page_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), WatchHub::new(16)).unwrap();
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
        assert_eq!(first.resource_version, store.resource_version());
    }

    #[test]
    fn deletes_publish_the_last_state_and_forget_owners() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), WatchHub::new(16)).unwrap();
        let key = ObjectKey::new("things", "default", "child");
        let mut child = object("child");
        child["metadata"]["ownerReferences"] = json!([{"uid": "parent-uid"}]);
        store
            .write::<StoreError>(&key, |_| Ok(Write::Put(child)))
            .unwrap();
        assert_eq!(
            store.dependents("parent-uid").unwrap(),
            std::slice::from_ref(&key)
        );
        let subscription = store.hub().subscribe(store.resource_version()).unwrap();
        let deleted = store
            .write::<StoreError>(&key, |_| Ok(Write::Delete))
            .unwrap()
            .unwrap();
        assert_eq!(deleted["metadata"]["name"], "child");
        assert!(store.dependents("parent-uid").unwrap().is_empty());
        let mut live = subscription.live;
        let event = live.try_recv().unwrap();
        assert_eq!(event.event_type, EventType::Deleted);
        assert_eq!(event.resource_version, store.resource_version());
    }
}
