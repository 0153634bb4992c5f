//! Durable object storage on SQLite (WAL mode), with one global resourceVersion.
//!
//! The store knows objects only as JSON values in buckets (`konductor.io/barriers`,
//! `events`, …) keyed by namespace and name; it knows nothing of HTTP or of what the
//! objects mean. Its guarantees, which everything above relies on:
//!
//! - **Durable before it returns**: `synchronous=FULL`, so an acknowledged write
//!   survives `kill -9` and power loss.
//! - **Group commit**: writes that arrive while another is being made durable wait and
//!   are committed together, in one transaction and one fsync. A write with no one
//!   waiting behind it commits at once, so batching adds no latency when idle. Every
//!   write still gets its own resourceVersion, in the order it was applied.
//! - **One monotonic resourceVersion** across all buckets, stored in the same
//!   transaction as the writes, so it keeps rising across restarts.
//! - **Every committed write is published to the [`WatchHub`]** in commit order, while
//!   the writer lock is held, so watchers see exactly the sequence that was stored —
//!   and only once it is durable. Each object is serialized once, for the database and
//!   for every watcher.
//! - **Snapshot lists**: a list and the resourceVersion it reports come from one read
//!   transaction, so a watch from that version misses nothing and repeats nothing.
//! - **Garbage collection work is queued durably**: deleting an object that owns others
//!   (or a namespace) records a task in the same transaction, so the collector never
//!   scans for work and a crash never loses it.
//! - **Every statement uses an index** (a test checks the query plans): the cost of a
//!   write does not grow with the number of objects stored.
//!
//! - **Checkpoints off the write path**: a background thread copies the WAL into the
//!   database (SQLite's automatic checkpoint would stall the write that triggers it
//!   for milliseconds).
//!
//! All methods block (SQLite I/O); async callers run them with
//! [`tokio::task::spawn_blocking`]. A `std::sync::Mutex` guards the one writer
//! connection because writes are serialised by SQLite anyway and the lock is never held
//! across an `.await`; reads use a small pool of separate connections, which WAL lets
//! run alongside the writer and which only ever see committed data.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::key::NAMESPACES;
pub use crate::key::ObjectKey;
use crate::watch::{EventType, WatchEvent, WatchHub};

mod hot;
use hot::HotSet;

/// How many objects the hot set keeps (see [`hot`]); they share their values with the
/// watch window, so this costs little memory beyond it.
const HOT_OBJECTS: usize = 10_000;

/// How many idle read connections are kept.
const READ_POOL_SIZE: usize = 4;

/// The writer connection's page cache, KiB (readers keep SQLite's default 2 MiB).
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// How many failed batches are remembered for their waiting writers.
const FAILED_BATCHES_KEPT: usize = 64;

/// The least time between two background checkpoints while writes go on. Longer means
/// a page written many times is copied once, not each time (a checkpoint every 200 ms
/// took a tenth of the server's CPU under load).
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Storage failures (I/O, corruption, a body that is not JSON).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored body could not be decoded.
    #[error("stored object is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The transaction this write was part of could not be committed.
    #[error("storage error: committing the write failed: {0}")]
    CommitFailed(String),
    /// A file next to the database (a backup's target) could not be written.
    #[error("{0}")]
    File(String),
}

/// A result whose error is a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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

/// Work the garbage collector owes, queued by the delete that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcTask {
    /// The object with this uid was deleted and owned others: collect them.
    Owner(String),
    /// This namespace was deleted: delete everything in it.
    Namespace(String),
}

impl GcTask {
    fn columns(&self) -> (&'static str, &str) {
        match self {
            GcTask::Owner(uid) => ("owner", uid),
            GcTask::Namespace(name) => ("namespace", name),
        }
    }
}

/// The SQLite-backed object store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The only connection that writes, with the batch being built on it.
    writer: Mutex<Writer>,
    /// Signalled whenever a batch has been committed (or has failed).
    batch_finished: Condvar,
    /// Writers waiting for the writer lock. The writer that finds nobody behind it
    /// commits the open batch; the others leave that to the last one.
    queued: AtomicUsize,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
    hub: WatchHub,
    /// Woken when garbage-collection tasks are committed.
    gc_wakeup: tokio::sync::Notify,
    /// The committed state of recently used objects (filled by the writer at commit).
    hot: Mutex<HotSet>,
}

/// Copies committed WAL frames into the database in the background; stops when the
/// store (its sender) is dropped.
fn run_checkpointer(conn: Connection, commits: std::sync::mpsc::Receiver<()>) {
    // Wait for a commit, let the burst it belongs to go on for a while, then copy it
    // all in one go.
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        while commits.try_recv().is_ok() {}
        if let Err(error) = checkpoint(&conn) {
            tracing::warn!(%error, "checkpointing the write-ahead log");
        }
    }
}

/// Copies what it can of the WAL into the database without blocking writers; returns
/// (frames in the WAL, frames copied).
fn checkpoint(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })?)
}

struct Writer {
    conn: Connection,
    /// The newest resourceVersion committed (what readers can see).
    committed: u64,
    /// The newest resourceVersion handed out, possibly in the open batch.
    applied: u64,
    /// Whether a transaction (the open batch) is in progress.
    in_transaction: bool,
    /// The open batch's events, published once it commits.
    events: Vec<WatchEvent>,
    /// Whether the open batch queued garbage-collection work.
    queued_gc: bool,
    /// Why the open batch cannot be committed (a write failed half-way), if it can't.
    spoiled: Option<String>,
    /// The open batch's number (the next one to commit); batches commit in order.
    batch: u64,
    /// Recently failed batches and why, for the writers waiting on them.
    failed: VecDeque<(u64, String)>,
    /// Counts since the store opened.
    stats: StoreStats,
    /// Tells the checkpointer that something was committed.
    checkpointer: std::sync::mpsc::SyncSender<()>,
}

/// What the store has done since it opened (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Objects written or deleted.
    pub writes: u64,
    /// Transactions committed (each one fsync); fewer than `writes` under load.
    pub commits: u64,
}

/// Every SQL statement the store runs, named, so a test can check each one's plan.
mod sql {
    pub const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS objects (
            bucket TEXT NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            uid TEXT NOT NULL,
            resource_version INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (bucket, namespace, name)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS objects_by_uid ON objects (uid);
        CREATE TABLE IF NOT EXISTS owners (
            owner_uid TEXT NOT NULL,
            bucket TEXT NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (owner_uid, bucket, namespace, name)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS owners_by_dependent ON owners (bucket, namespace, name);
        CREATE TABLE IF NOT EXISTS counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO counters (name, value) VALUES ('resourceVersion', 1);
        CREATE TABLE IF NOT EXISTS gc_queue (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        ) WITHOUT ROWID;
    ";
    /// Queues the collection of what databases written before the queue existed left
    /// behind: dependents of deleted owners, contents of deleted namespaces. Runs once.
    pub const QUEUE_LEFTOVERS: &str = "
        INSERT OR IGNORE INTO gc_queue (kind, id)
            SELECT DISTINCT 'owner', owner_uid FROM owners
            WHERE NOT EXISTS (SELECT 1 FROM objects WHERE uid = owners.owner_uid);
        INSERT OR IGNORE INTO gc_queue (kind, id)
            SELECT DISTINCT 'namespace', namespace FROM objects
            WHERE namespace != '' AND NOT EXISTS (
                SELECT 1 FROM objects AS ns
                WHERE ns.bucket = 'namespaces' AND ns.namespace = '' AND ns.name = objects.namespace);
    ";
    /// `PRAGMA user_version` once the schema above and its one-off work are in place.
    pub const SCHEMA_VERSION: i64 = 2;

    pub const RESOURCE_VERSION: &str = "SELECT value FROM counters WHERE name = 'resourceVersion'";
    pub const SET_RESOURCE_VERSION: &str =
        "UPDATE counters SET value = ?1 WHERE name = 'resourceVersion'";
    pub const GET: &str =
        "SELECT body FROM objects WHERE bucket = ?1 AND namespace = ?2 AND name = ?3";
    pub const LIST_NAMESPACE: &str = "SELECT body FROM objects
        WHERE bucket = ?1 AND namespace = ?2 AND name > ?3
        ORDER BY name LIMIT ?4";
    pub const LIST_ALL: &str = "SELECT body FROM objects
        WHERE bucket = ?1 AND (namespace, name) > (?2, ?3)
        ORDER BY namespace, name LIMIT ?4";
    pub const DEPENDENTS: &str = "SELECT bucket, namespace, name FROM owners WHERE owner_uid = ?1";
    pub const UID_EXISTS: &str = "SELECT 1 FROM objects WHERE uid = ?1 LIMIT 1";
    pub const FORGET_OWNERS: &str =
        "DELETE FROM owners WHERE bucket = ?1 AND namespace = ?2 AND name = ?3";
    pub const DELETE: &str =
        "DELETE FROM objects WHERE bucket = ?1 AND namespace = ?2 AND name = ?3";
    pub const UPSERT: &str =
        "INSERT INTO objects (bucket, namespace, name, uid, resource_version, body)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6)
        ON CONFLICT (bucket, namespace, name) DO UPDATE SET
            uid = excluded.uid, resource_version = excluded.resource_version, body = excluded.body";
    pub const ADD_OWNER: &str =
        "INSERT OR IGNORE INTO owners (owner_uid, bucket, namespace, name) VALUES (?1, ?2, ?3, ?4)";
    pub const QUEUE_OWNER: &str = "INSERT OR IGNORE INTO gc_queue (kind, id)
        SELECT 'owner', ?1 WHERE EXISTS (SELECT 1 FROM owners WHERE owner_uid = ?1)";
    pub const QUEUE_NAMESPACE: &str =
        "INSERT OR IGNORE INTO gc_queue (kind, id) VALUES ('namespace', ?1)";
    pub const GC_PENDING: &str = "SELECT kind, id FROM gc_queue LIMIT ?1";
    pub const GC_DONE: &str = "DELETE FROM gc_queue WHERE kind = ?1 AND id = ?2";

    /// The statements run while serving (for the query-plan test).
    #[cfg(test)]
    pub const SERVING: &[(&str, &str)] = &[
        ("RESOURCE_VERSION", RESOURCE_VERSION),
        ("SET_RESOURCE_VERSION", SET_RESOURCE_VERSION),
        ("GET", GET),
        ("LIST_NAMESPACE", LIST_NAMESPACE),
        ("LIST_ALL", LIST_ALL),
        ("DEPENDENTS", DEPENDENTS),
        ("UID_EXISTS", UID_EXISTS),
        ("FORGET_OWNERS", FORGET_OWNERS),
        ("DELETE", DELETE),
        ("UPSERT", UPSERT),
        ("ADD_OWNER", ADD_OWNER),
        ("QUEUE_OWNER", QUEUE_OWNER),
        ("QUEUE_NAMESPACE", QUEUE_NAMESPACE),
        ("GC_PENDING", GC_PENDING),
        ("GC_DONE", GC_DONE),
    ];
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Creates or upgrades the schema.
fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(sql::SCHEMA)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < sql::SCHEMA_VERSION {
        conn.execute_batch(sql::QUEUE_LEFTOVERS)?;
        conn.pragma_update(None, "user_version", sql::SCHEMA_VERSION)?;
    }
    Ok(())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What one write did inside the open batch.
enum Applied {
    /// Nothing was written; this is the caller's answer.
    Nothing(Option<Value>),
    /// The object was stored or deleted; this is its state with the new version.
    Written(Arc<Value>),
}

impl Writer {
    /// Starts the batch's transaction if none is open.
    fn begin(&mut self) -> Result<()> {
        if !self.in_transaction {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// The object at `key` as this batch sees it: written earlier in the batch, else
    /// hot, else from the database.
    fn current(&self, key: &ObjectKey, hot: &Mutex<HotSet>) -> Result<Option<Value>> {
        if let Some(event) = self.events.iter().rev().find(|e| e.key == *key) {
            return Ok((event.event_type != EventType::Deleted).then(|| (*event.object).clone()));
        }
        if let Some(object) = lock(hot).get(key) {
            return Ok(Some((*object).clone()));
        }
        let body: Option<String> = self
            .conn
            .prepare_cached(sql::GET)?
            .query_row(params![key.bucket, key.namespace, key.name], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(body.map(|body| serde_json::from_str(&body)).transpose()?)
    }

    /// Reads, decides and writes one object into the open batch.
    fn apply<E: From<StoreError>>(
        &mut self,
        hot: &Mutex<HotSet>,
        key: &ObjectKey,
        decide: impl FnOnce(Option<Value>) -> std::result::Result<Write, E>,
    ) -> std::result::Result<Applied, E> {
        let current = self.current(key, hot)?;
        let existed = current.is_some();
        let decision = decide(current.clone())?;
        let resource_version = self.applied + 1;
        let (event_type, mut object) = match decision {
            Write::Unchanged(object) => return Ok(Applied::Nothing(Some(object))),
            Write::Delete => match current.clone() {
                Some(object) => (EventType::Deleted, object),
                None => return Ok(Applied::Nothing(None)),
            },
            Write::Put(object) if existed => (EventType::Modified, object),
            Write::Put(object) => (EventType::Added, object),
        };
        object["metadata"]["resourceVersion"] = Value::String(resource_version.to_string());
        // Serialized once: the same text goes to the database and to every watcher.
        let json = object.to_string();
        // A change that fails half-way (a storage error) spoils the whole batch: it is
        // rolled back instead of committed and every writer in it gets the error —
        // simpler and cheaper than a savepoint per write, for a failure only broken
        // storage causes.
        if let Some(why) = &self.spoiled {
            return Err(StoreError::CommitFailed(why.clone()).into());
        }
        self.begin()?;
        if let Err(error) = self.store_change(key, event_type, &object, &json, resource_version) {
            self.spoiled = Some(error.to_string());
            return Err(error.into());
        }
        self.applied = resource_version;
        let object = Arc::new(object);
        self.events.push(WatchEvent::new(
            event_type,
            key.clone(),
            resource_version,
            object.clone(),
            current
                .filter(|_| event_type == EventType::Modified)
                .map(|previous| Arc::new(WatchEvent::selectable_part(previous))),
            &json,
        ));
        Ok(Applied::Written(object))
    }

    /// The SQL of one write: the row, its owners, and any garbage-collection task.
    fn store_change(
        &mut self,
        key: &ObjectKey,
        event_type: EventType,
        object: &Value,
        json: &str,
        resource_version: u64,
    ) -> Result<()> {
        let conn = &self.conn;
        conn.prepare_cached(sql::FORGET_OWNERS)?.execute(params![
            key.bucket,
            key.namespace,
            key.name
        ])?;
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        if event_type == EventType::Deleted {
            conn.prepare_cached(sql::DELETE)?.execute(params![
                key.bucket,
                key.namespace,
                key.name
            ])?;
            let mut queued = conn
                .prepare_cached(sql::QUEUE_OWNER)?
                .execute(params![uid])?;
            if key.bucket == NAMESPACES {
                queued += conn
                    .prepare_cached(sql::QUEUE_NAMESPACE)?
                    .execute(params![key.name])?;
            }
            self.queued_gc |= queued > 0;
            return Ok(());
        }
        conn.prepare_cached(sql::UPSERT)?.execute(params![
            key.bucket,
            key.namespace,
            key.name,
            uid,
            to_i64(resource_version),
            json
        ])?;
        let mut add_owner = conn.prepare_cached(sql::ADD_OWNER)?;
        for owner in object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(owner_uid) = owner["uid"].as_str() {
                add_owner.execute(params![owner_uid, key.bucket, key.namespace, key.name])?;
            }
        }
        Ok(())
    }

    /// Commits the open batch (or rolls back a spoiled one), publishes its events in
    /// order and starts the next.
    fn commit(&mut self, hub: &WatchHub, hot: &Mutex<HotSet>, gc_wakeup: &tokio::sync::Notify) {
        let result = match self.spoiled.take() {
            Some(why) => Err(why),
            None => self
                .conn
                .prepare_cached(sql::SET_RESOURCE_VERSION)
                .and_then(|mut stmt| stmt.execute(params![to_i64(self.applied)]))
                .and_then(|_| self.conn.prepare_cached("COMMIT")?.execute([]))
                .map_err(|error| error.to_string()),
        };
        self.in_transaction = false;
        let events = std::mem::take(&mut self.events);
        let queued_gc = std::mem::take(&mut self.queued_gc);
        match result {
            Ok(_) => {
                self.stats.commits += 1;
                self.stats.writes += events.len() as u64;
                self.committed = self.applied;
                {
                    let mut hot = lock(hot);
                    for event in &events {
                        let state =
                            (event.event_type != EventType::Deleted).then(|| event.object.clone());
                        hot.put(&event.key, state);
                    }
                }
                for event in events {
                    hub.publish(event);
                }
                let _ = self.checkpointer.try_send(());
                if queued_gc {
                    gc_wakeup.notify_one();
                }
            }
            Err(why) => {
                tracing::error!(error = %why, "a batch of writes could not be committed");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.applied = self.committed;
                if self.failed.len() == FAILED_BATCHES_KEPT {
                    self.failed.pop_front();
                }
                self.failed.push_back((self.batch, why));
            }
        }
        self.batch += 1;
    }

    /// Why batch `batch` failed, if it did.
    fn failure_of(&self, batch: u64) -> Option<String> {
        self.failed
            .iter()
            .find(|(number, _)| *number == batch)
            .map(|(_, why)| why.clone())
    }
}

/// Writes a consistent copy of the database at `database` to `to` (a new file, mode
/// 0600): one read transaction, so it is safe while a server writes — WAL mode lets
/// readers of other processes see the last committed state. Restore by stopping the
/// server and putting the copy in place of `konductor.db` (without `-wal`/`-shm`).
pub fn backup(database: &Path, to: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // Created empty first, owner-only (it holds every object), and never over an
    // existing file; VACUUM INTO fills an empty file.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| StoreError::File(format!("{}: {e}", to.display())))?;
    }
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
    Ok(())
}

impl Store {
    /// Opens (creating or upgrading if needed) the database at `path`, publishing
    /// writes to `hub`.
    pub fn open(path: &Path, hub: WatchHub) -> Result<Self> {
        let conn = open_connection(path)?;
        migrate(&conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The writer reads every object it replaces that is not hot, and updates three
        // indexes per write: keep their upper levels in memory as the database grows.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB.saturating_neg())?;
        let (checkpointer, commits) = std::sync::mpsc::sync_channel(1);
        let checkpoint_conn = open_connection(path)?;
        std::thread::Builder::new()
            .name("konductor-checkpoint".into())
            .spawn(move || run_checkpointer(checkpoint_conn, commits))
            .map_err(|e| StoreError::CommitFailed(format!("starting the checkpointer: {e}")))?;
        let resource_version: i64 = conn.query_row(sql::RESOURCE_VERSION, [], |row| row.get(0))?;
        let resource_version = u64::try_from(resource_version).unwrap_or(0);
        hub.reset(resource_version);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(Writer {
                    conn,
                    committed: resource_version,
                    applied: resource_version,
                    in_transaction: false,
                    events: Vec::new(),
                    queued_gc: false,
                    spoiled: None,
                    batch: 1,
                    failed: VecDeque::new(),
                    stats: StoreStats::default(),
                    checkpointer,
                }),
                batch_finished: Condvar::new(),
                queued: AtomicUsize::new(0),
                readers: Mutex::new(Vec::new()),
                hub,
                gc_wakeup: tokio::sync::Notify::new(),
                hot: Mutex::new(HotSet::new(HOT_OBJECTS)),
            }),
        })
    }

    /// The hub this store publishes to.
    pub fn hub(&self) -> &WatchHub {
        &self.inner.hub
    }

    /// The newest resourceVersion committed.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.writer).committed
    }

    /// Copies the write-ahead log into the database now (the background thread does
    /// this on its own); returns (frames in the WAL, frames copied).
    pub fn checkpoint(&self) -> Result<(i64, i64)> {
        self.read(checkpoint)
    }

    /// Writes and commits since the store opened.
    pub fn stats(&self) -> StoreStats {
        lock(&self.inner.writer).stats
    }

    /// Resolves when garbage-collection tasks may have been queued (see
    /// [`Store::gc_pending`]).
    pub fn gc_wakeup(&self) -> &tokio::sync::Notify {
        &self.inner.gc_wakeup
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

    /// The object at `key`, if it exists; shared, not copied, when it is hot.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Arc<Value>>> {
        if let Some(object) = lock(&self.inner.hot).get(key) {
            return Ok(Some(object));
        }
        self.read(|conn| {
            let body: Option<String> = conn
                .prepare_cached(sql::GET)?
                .query_row(params![key.bucket, key.namespace, key.name], |row| {
                    row.get(0)
                })
                .optional()?;
            body.map(|b| Ok(Arc::new(serde_json::from_str(&b)?)))
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
            let resource_version: i64 =
                tx.query_row(sql::RESOURCE_VERSION, [], |row| row.get(0))?;
            let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let (after_ns, after_name) = after.unwrap_or(("", ""));
            // Within a namespace, a cursor from another one (an all-namespaces page)
            // sorts before or after it as a whole.
            let (query, scope, after_name) = match namespace {
                Some(namespace) => match after_ns.cmp(namespace) {
                    std::cmp::Ordering::Less => (sql::LIST_NAMESPACE, namespace, ""),
                    std::cmp::Ordering::Equal => (sql::LIST_NAMESPACE, namespace, after_name),
                    std::cmp::Ordering::Greater => {
                        return Ok(Listing {
                            items: Vec::new(),
                            resource_version: u64::try_from(resource_version).unwrap_or(0),
                        });
                    }
                },
                None => (sql::LIST_ALL, after_ns, after_name),
            };
            let mut stmt = tx.prepare_cached(query)?;
            let rows = stmt.query_map(params![bucket, scope, after_name, limit], |row| {
                row.get::<_, String>(0)
            })?;
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

    /// Visits the objects of `bucket` (in `namespace`, or all when `None`) in
    /// (namespace, name) order after `after`, within one read transaction — one
    /// consistent snapshot however many there are — until `visit` returns false.
    /// Returns the snapshot's resourceVersion.
    pub fn scan(
        &self,
        bucket: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        visit: impl FnMut(Value) -> bool,
    ) -> Result<u64> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let resource_version = read_resource_version(&tx)?;
            scan_rows(&tx, bucket, namespace, after, visit)?;
            Ok(resource_version)
        })
    }

    /// A consistent view of the whole store as of now, held open so that later reads
    /// (the pages of one list) all see it. Dropping it lets it go.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let conn = open_connection(&self.inner.path)?;
        conn.execute_batch("BEGIN")?;
        let resource_version = read_resource_version(&conn)?;
        Ok(Snapshot {
            conn,
            resource_version,
        })
    }

    /// The keys of objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Result<Vec<ObjectKey>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(sql::DEPENDENTS)?;
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
                .prepare_cached(sql::UID_EXISTS)?
                .query_row(params![uid], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    /// Up to `limit` queued garbage-collection tasks (oldest work is not favoured; every
    /// task stays queued until [`Store::gc_done`]).
    pub fn gc_pending(&self, limit: usize) -> Result<Vec<GcTask>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(sql::GC_PENDING)?;
            let rows = stmt.query_map(params![to_i64(limit as u64)], |row| {
                let kind: String = row.get(0)?;
                let id: String = row.get(1)?;
                Ok(match kind.as_str() {
                    "namespace" => GcTask::Namespace(id),
                    _ => GcTask::Owner(id),
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
    }

    /// Removes a finished garbage-collection task from the queue.
    pub fn gc_done(&self, task: &GcTask) -> Result<()> {
        self.in_batch(|writer| {
            writer.begin()?;
            let (kind, id) = task.columns();
            writer
                .conn
                .prepare_cached(sql::GC_DONE)?
                .execute(params![kind, id])?;
            Ok(())
        })
    }

    /// Reads the object at `key`, lets `decide` choose what to do with it, and applies
    /// that, durable before returning. `decide` receives the current object (or `None`)
    /// and must not block: the writer lock is held while it runs.
    ///
    /// Returns the stored object (with its new resourceVersion), the deleted object, or
    /// the unchanged one; `None` only when deleting an absent object.
    pub fn write<E>(
        &self,
        key: &ObjectKey,
        decide: impl FnOnce(Option<Value>) -> std::result::Result<Write, E>,
    ) -> std::result::Result<Option<Arc<Value>>, E>
    where
        E: From<StoreError>,
    {
        let hot = &self.inner.hot;
        let applied = self.in_batch(|writer| Ok(writer.apply(hot, key, decide)))?;
        Ok(match applied? {
            Applied::Nothing(answer) => answer.map(Arc::new),
            Applied::Written(object) => Some(object),
        })
    }

    /// Runs `body` on the writer inside the current batch, then either commits the
    /// batch (when no other writer is queued behind) or waits until the writer that
    /// commits it has. Whatever `body` returns is only handed back once everything it
    /// may have seen or written is durable.
    fn in_batch<T>(&self, body: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let inner = &*self.inner;
        inner.queued.fetch_add(1, Ordering::SeqCst);
        let mut writer = lock(&inner.writer);
        inner.queued.fetch_sub(1, Ordering::SeqCst);
        let batch = writer.batch;
        // A panic in `body` (a bug in a `decide`) must not leave the batch without a
        // committer: finish the protocol, then let the panic continue.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut writer)));
        if writer.in_transaction {
            if inner.queued.load(Ordering::SeqCst) == 0 {
                writer.commit(&inner.hub, &inner.hot, &inner.gc_wakeup);
                inner.batch_finished.notify_all();
            } else {
                while writer.batch == batch {
                    writer = inner
                        .batch_finished
                        .wait(writer)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
        let failure = writer.failure_of(batch);
        drop(writer);
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match failure {
            Some(why) => Err(StoreError::CommitFailed(why)),
            None => result,
        }
    }
}

/// The store's newest committed resourceVersion, as this connection's transaction sees it.
fn read_resource_version(conn: &Connection) -> Result<u64> {
    let version: i64 = conn.query_row(sql::RESOURCE_VERSION, [], |row| row.get(0))?;
    Ok(u64::try_from(version).unwrap_or(0))
}

/// Visits rows of `bucket` in order after `after` until `visit` returns false, reading
/// rows only as far as it goes.
fn scan_rows(
    conn: &Connection,
    bucket: &str,
    namespace: Option<&str>,
    after: Option<(&str, &str)>,
    mut visit: impl FnMut(Value) -> bool,
) -> Result<()> {
    let (after_ns, after_name) = after.unwrap_or(("", ""));
    // A cursor from another namespace sorts before or after this one whole.
    let (statement, first, after_name) = match namespace {
        Some(namespace) => match after_ns.cmp(namespace) {
            std::cmp::Ordering::Less => (sql::LIST_NAMESPACE, namespace, ""),
            std::cmp::Ordering::Equal => (sql::LIST_NAMESPACE, namespace, after_name),
            std::cmp::Ordering::Greater => return Ok(()),
        },
        None => (sql::LIST_ALL, after_ns, after_name),
    };
    let mut stmt = conn.prepare_cached(statement)?;
    let params = params![bucket, first, after_name, -1];
    let mut rows = stmt.query(params)?;
    while let Some(row) = rows.next()? {
        let body: String = row.get(0)?;
        if !visit(serde_json::from_str(&body)?) {
            break;
        }
    }
    Ok(())
}

/// A read transaction held open: every read through it sees the store as it was when
/// it began (SQLite's WAL keeps that version for as long as it is open).
pub struct Snapshot {
    conn: Connection,
    resource_version: u64,
}

impl Snapshot {
    /// The resourceVersion the snapshot shows.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// [`Store::scan`] within this snapshot.
    pub fn scan(
        &self,
        bucket: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        visit: impl FnMut(Value) -> bool,
    ) -> Result<()> {
        scan_rows(&self.conn, bucket, namespace, after, visit)
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every
/// critical section leaves the data consistent, so poisoning carries no meaning here).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
