//! The watch hub: one in-memory fan-out of committed writes to every watcher.
//!
//! The store publishes each committed write here, in commit order. The hub keeps a
//! bounded window of recent events so a watch can resume from any resourceVersion
//! inside it, and bounded broadcast channels for live events — one per bucket, one
//! per watched object for watches of a single object (a `metadata.name` field
//! selector, as every `koncli barrier wait` uses), and one per label for watches whose
//! selector requires a label value (`konductor.io/client=…`, as every lock client's
//! watch of its own Permits has). An event wakes only the watchers of its bucket, of
//! its object and of the labels it has (or had): a thousand waiters at one barrier are
//! not woken by arrivals or by other barriers, and a thousand lock clients are not
//! woken by each other's Permits. No watcher ever queries the database.
//!
//! Limits, and what happens at them:
//! - **Window** (`window` events, and at most [`WINDOW_BYTES`] of serialized objects, so
//!   a few large objects written often cannot fill memory): a watch from a
//!   resourceVersion older than the window's start is answered 410 Expired, and the
//!   client re-lists (as with etcd compaction).
//! - **Live channels** ([`BUCKET_CHANNEL`] events for a bucket, [`OBJECT_CHANNEL`] for
//!   one object or one label): a watcher that falls that far behind is told 410 Expired and dropped
//!   rather than buffered without limit (a channel holds on to every event its slowest
//!   watcher has not taken yet, so this also bounds what one slow client can pin).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::key::ObjectKey;

/// How many events of a bucket a watcher of that bucket may lag behind.
pub const BUCKET_CHANNEL: usize = 2048;

/// How many events of one object a watcher of that object may lag behind.
pub const OBJECT_CHANNEL: usize = 256;

/// The most serialized object bytes the window keeps (the objects themselves take a
/// few times this as values).
pub const WINDOW_BYTES: usize = 16 * 1024 * 1024;

/// The kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was deleted; the event carries its last state.
    Deleted,
}

impl EventType {
    /// The name used on the wire (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed write.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The resourceVersion the write got.
    pub resource_version: u64,
    /// The object after the write (its last state for deletes).
    pub object: Arc<Value>,
    /// The object before the write (`None` for creates), without its `spec` and
    /// `status` (selectors never look there, and they are most of a large object's
    /// size), so a watch with a selector can tell an object that stopped matching (sent
    /// as DELETED) from one that never did.
    pub previous: Option<Arc<Value>>,
    /// The whole watch line (`{"type":…,"object":…}` and a newline), serialized once
    /// and shared by every watcher; the object's JSON is a slice of it.
    line: bytes::Bytes,
}

/// `{"type":"MODIFIED","object":` — what precedes the object in a line.
fn line_prefix(event_type: EventType) -> String {
    format!("{{\"type\":\"{}\",\"object\":", event_type.as_str())
}

impl WatchEvent {
    /// An event around `object`, whose JSON text (`object_json`, as the store already
    /// serialized it) becomes the event's one line.
    pub fn new(
        event_type: EventType,
        key: ObjectKey,
        resource_version: u64,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
        object_json: &str,
    ) -> Self {
        let prefix = line_prefix(event_type);
        let mut line = String::with_capacity(prefix.len() + object_json.len() + 2);
        line.push_str(&prefix);
        line.push_str(object_json);
        line.push_str("}\n");
        Self {
            event_type,
            key,
            resource_version,
            object,
            previous,
            line: bytes::Bytes::from(line),
        }
    }

    /// What of an object's previous state an event keeps: all but `spec` and `status`.
    pub fn selectable_part(mut object: Value) -> Value {
        if let Some(map) = object.as_object_mut() {
            map.remove("spec");
            map.remove("status");
        }
        object
    }

    /// The object as JSON text (a view into the line).
    pub fn object_json(&self) -> &str {
        let start = line_prefix(self.event_type).len();
        let object = &self.line[start..self.line.len() - 2];
        std::str::from_utf8(object).expect("the line was built from a string")
    }

    /// The length of the object's JSON text.
    pub fn object_json_len(&self) -> usize {
        self.line.len() - line_prefix(self.event_type).len() - 2
    }

    /// The event as one watch line: a thousand watchers cost a thousand reference
    /// counts, not a thousand copies.
    pub fn line(&self) -> bytes::Bytes {
        self.line.clone()
    }
}

/// A new watcher's starting point: the events it missed, then the live stream.
pub struct Subscription {
    /// Events after the requested resourceVersion that are still in the window.
    pub backlog: Vec<Arc<WatchEvent>>,
    /// Everything published from now on.
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
}

/// The requested resourceVersion is older than the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Expired {
    /// The version asked for.
    pub requested: u64,
    /// The oldest version a watch can start from now.
    pub oldest: u64,
}

/// Which events a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// Every event of a bucket.
    Bucket(String),
    /// The events of one object.
    Object(ObjectKey),
    /// The events of a bucket's objects that have (or had, before the write) the label
    /// `key` = `value`.
    Label {
        /// The bucket.
        bucket: String,
        /// The label's key.
        key: String,
        /// Its value.
        value: String,
    },
}

impl Route {
    /// Whether `event` takes this route.
    pub fn covers(&self, event: &WatchEvent) -> bool {
        match self {
            Route::Bucket(bucket) => event.key.bucket == *bucket,
            Route::Object(object) => event.key == *object,
            Route::Label { bucket, key, value } => {
                let has = |object: &Value| {
                    object["metadata"]["labels"]
                        .get(key)
                        .and_then(Value::as_str)
                        == Some(value.as_str())
                };
                event.key.bucket == *bucket
                    && (has(&event.object) || event.previous.as_deref().is_some_and(has))
            }
        }
    }
}

/// A label channel's name within its bucket: `key=value`.
fn label_channel(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// The labels of `object`, as label channel names.
fn label_channels(object: &Value) -> impl Iterator<Item = String> + '_ {
    object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some(label_channel(key, value.as_str()?)))
}

type Sender = broadcast::Sender<Arc<WatchEvent>>;

/// The hub. Cheap to clone; all clones share one window and its channels.
#[derive(Clone)]
pub struct WatchHub {
    state: Arc<Mutex<HubState>>,
}

struct HubState {
    /// Recent events, oldest first.
    window: VecDeque<Arc<WatchEvent>>,
    /// The most events kept in `window`.
    capacity: usize,
    /// Serialized object bytes of the events in `window`.
    bytes: usize,
    /// Watches may start from this version or later: every event after it is in the
    /// window.
    oldest_resumable: u64,
    /// Live fan-out per bucket.
    buckets: std::collections::HashMap<String, Sender>,
    /// Live fan-out per watched object; dropped once nobody listens.
    objects: std::collections::HashMap<ObjectKey, Sender>,
    /// `objects.len()` after the last sweep of channels nobody listens to.
    swept_at: usize,
    /// Live fan-out per bucket and label (`key=value`); dropped once nobody listens.
    labels: std::collections::HashMap<String, std::collections::HashMap<String, Sender>>,
    /// How many label channels there are, and were after the last sweep.
    label_channels: (usize, usize),
}

impl HubState {
    /// Drops object and label channels whose watchers are all gone (objects never
    /// written again would keep them otherwise); amortized O(1) per subscription.
    fn sweep_idle_channels(&mut self) {
        if self.objects.len() > 2 * self.swept_at.max(64) {
            self.objects.retain(|_, sender| sender.receiver_count() > 0);
            self.swept_at = self.objects.len();
        }
        let (count, swept_at) = self.label_channels;
        if count > 2 * swept_at.max(64) {
            for channels in self.labels.values_mut() {
                channels.retain(|_, sender| sender.receiver_count() > 0);
            }
            self.labels.retain(|_, channels| !channels.is_empty());
            let left = self
                .labels
                .values()
                .map(std::collections::HashMap::len)
                .sum();
            self.label_channels = (left, left);
        }
    }

    /// Sends `event` to the channels of the labels its object has or had (each once).
    fn send_to_labels(&mut self, event: &Arc<WatchEvent>) {
        let Some(channels) = self.labels.get_mut(&event.key.bucket) else {
            return;
        };
        let mut names: Vec<String> = label_channels(&event.object).collect();
        if let Some(previous) = event.previous.as_deref() {
            for name in label_channels(previous) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        for name in names {
            if let Some(sender) = channels.get(&name)
                && sender.send(event.clone()).is_err()
            {
                channels.remove(&name);
                self.label_channels.0 -= 1;
            }
        }
    }
}

impl WatchHub {
    /// A hub keeping the last `capacity` events (and letting a watcher lag as many).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Arc::new(Mutex::new(HubState {
                window: VecDeque::with_capacity(capacity.min(4096)),
                capacity,
                bytes: 0,
                oldest_resumable: 0,
                buckets: std::collections::HashMap::new(),
                objects: std::collections::HashMap::new(),
                swept_at: 0,
                labels: std::collections::HashMap::new(),
                label_channels: (0, 0),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the window and starts it at `resource_version` (when the store opens:
    /// nothing older can be replayed after a restart).
    pub fn reset(&self, resource_version: u64) {
        let mut state = self.lock();
        state.window.clear();
        state.bytes = 0;
        state.oldest_resumable = resource_version;
    }

    /// Publishes a committed write. Called by the store, in commit order.
    pub fn publish(&self, event: WatchEvent) {
        let event = Arc::new(event);
        let size = event.object_json_len();
        let mut state = self.lock();
        state.bytes += size;
        state.window.push_back(event.clone());
        while state.window.len() > state.capacity
            || (state.bytes > WINDOW_BYTES && state.window.len() > 1)
        {
            let Some(dropped) = state.window.pop_front() else {
                break;
            };
            state.bytes -= dropped.object_json_len();
            state.oldest_resumable = dropped.resource_version;
        }
        // A channel nobody listens to any more is let go.
        if let Some(sender) = state.buckets.get(&event.key.bucket)
            && sender.send(event.clone()).is_err()
        {
            state.buckets.remove(&event.key.bucket);
        }
        if let Some(sender) = state.objects.get(&event.key)
            && sender.send(event.clone()).is_err()
        {
            state.objects.remove(&event.key);
        }
        state.send_to_labels(&event);
    }

    /// Starts a watch of `route` after `resource_version`: the backlog of newer events
    /// still in the window, and the live stream from there on, with no gap and no
    /// repeat between them.
    pub fn subscribe(&self, resource_version: u64, route: &Route) -> Result<Subscription, Expired> {
        let mut state = self.lock();
        if resource_version < state.oldest_resumable {
            return Err(Expired {
                requested: resource_version,
                oldest: state.oldest_resumable,
            });
        }
        // The window is in version order: find the start by bisection, so a watch
        // costs what it replays, not the window's size.
        let start = state
            .window
            .partition_point(|e| e.resource_version <= resource_version);
        let backlog = state
            .window
            .range(start..)
            .filter(|e| route.covers(e))
            .cloned()
            .collect();
        let capacity = state.capacity;
        let live = match route {
            Route::Bucket(bucket) => state
                .buckets
                .entry(bucket.clone())
                .or_insert_with(|| broadcast::channel(BUCKET_CHANNEL.min(capacity)).0)
                .subscribe(),
            Route::Object(key) => {
                state.sweep_idle_channels();
                state
                    .objects
                    .entry(key.clone())
                    .or_insert_with(|| broadcast::channel(OBJECT_CHANNEL.min(capacity)).0)
                    .subscribe()
            }
            Route::Label { bucket, key, value } => {
                state.sweep_idle_channels();
                let channels = state.labels.entry(bucket.clone()).or_default();
                let mut created = false;
                let live = channels
                    .entry(label_channel(key, value))
                    .or_insert_with(|| {
                        created = true;
                        broadcast::channel(OBJECT_CHANNEL.min(capacity)).0
                    })
                    .subscribe();
                if created {
                    state.label_channels.0 += 1;
                }
                live
            }
        };
        Ok(Subscription { backlog, live })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_with(rv: u64, object: Value) -> WatchEvent {
        let json = object.to_string();
        WatchEvent::new(
            EventType::Added,
            ObjectKey::new("b", "ns", &format!("o{rv}")),
            rv,
            Arc::new(object),
            None,
            &json,
        )
    }

    fn event(rv: u64) -> WatchEvent {
        event_with(rv, Value::Null)
    }

    fn all() -> Route {
        Route::Bucket("b".into())
    }

    #[test]
    fn an_event_wakes_only_the_watchers_of_its_bucket_and_object() {
        let hub = WatchHub::new(10);
        let mut bucket = hub.subscribe(0, &all()).unwrap().live;
        let mut mine = hub
            .subscribe(0, &Route::Object(ObjectKey::new("b", "ns", "o2")))
            .unwrap()
            .live;
        let mut other_bucket = hub.subscribe(0, &Route::Bucket("c".into())).unwrap().live;
        hub.publish(event(1));
        hub.publish(event(2));
        assert_eq!(bucket.try_recv().unwrap().resource_version, 1);
        assert_eq!(bucket.try_recv().unwrap().resource_version, 2);
        assert_eq!(
            mine.try_recv().unwrap().resource_version,
            2,
            "o1's event passed it by"
        );
        assert!(mine.try_recv().is_err());
        assert!(other_bucket.try_recv().is_err());
        let replay = hub
            .subscribe(0, &Route::Object(ObjectKey::new("b", "ns", "o1")))
            .unwrap()
            .backlog;
        assert_eq!(replay.len(), 1, "the backlog is filtered the same way");
    }

    #[test]
    fn a_label_route_hears_only_objects_with_that_label_or_that_lost_it() {
        let hub = WatchHub::new(10);
        let route = |value: &str| Route::Label {
            bucket: "b".into(),
            key: "client".into(),
            value: value.into(),
        };
        let mut mine = hub.subscribe(0, &route("me")).unwrap().live;
        let mut theirs = hub.subscribe(0, &route("them")).unwrap().live;
        let labelled = |value: &str| json!({"metadata": {"labels": {"client": value}}});
        hub.publish(event_with(1, labelled("me")));
        hub.publish(event_with(2, labelled("them")));
        // Relabelled from "me" to "them": both hear it (mine, as the object leaving).
        let mut moved = event_with(3, labelled("them"));
        moved.previous = Some(Arc::new(labelled("me")));
        hub.publish(moved);
        let heard = |live: &mut broadcast::Receiver<Arc<WatchEvent>>| {
            std::iter::from_fn(|| live.try_recv().ok())
                .map(|e| e.resource_version)
                .collect::<Vec<_>>()
        };
        assert_eq!(heard(&mut mine), [1, 3]);
        assert_eq!(heard(&mut theirs), [2, 3]);
        let replay = hub.subscribe(0, &route("me")).unwrap().backlog;
        let replayed: Vec<u64> = replay.iter().map(|e| e.resource_version).collect();
        assert_eq!(replayed, [1, 3], "the backlog is filtered the same way");
    }

    #[test]
    fn resumes_from_inside_the_window_without_gaps_or_repeats() {
        let hub = WatchHub::new(10);
        hub.reset(5);
        for rv in 6..=9 {
            hub.publish(event(rv));
        }
        let mut sub = hub.subscribe(7, &all()).unwrap();
        let versions: Vec<u64> = sub.backlog.iter().map(|e| e.resource_version).collect();
        assert_eq!(versions, [8, 9]);
        hub.publish(event(10));
        assert_eq!(sub.live.try_recv().unwrap().resource_version, 10);
    }

    #[test]
    fn versions_older_than_the_window_are_expired() {
        let hub = WatchHub::new(3);
        hub.reset(0);
        for rv in 1..=5 {
            hub.publish(event(rv));
        }
        assert_eq!(
            hub.subscribe(1, &all()).err(),
            Some(Expired {
                requested: 1,
                oldest: 2
            })
        );
        assert_eq!(hub.subscribe(2, &all()).unwrap().backlog.len(), 3);
    }

    #[test]
    fn large_objects_shorten_the_window() {
        let hub = WatchHub::new(1000);
        hub.reset(0);
        let big = Value::String("x".repeat(WINDOW_BYTES / 4));
        for rv in 1..=8 {
            hub.publish(event_with(rv, big.clone()));
        }
        assert!(
            hub.subscribe(3, &all()).is_err(),
            "the oldest large events were let go"
        );
        let kept = hub.subscribe(8 - 3, &all()).unwrap().backlog.len();
        assert_eq!(kept, 3, "three quarters-of-the-budget objects fit");
    }

    #[test]
    fn a_restart_cannot_replay_older_versions() {
        let hub = WatchHub::new(3);
        hub.reset(100);
        assert!(hub.subscribe(99, &all()).is_err());
        assert!(hub.subscribe(100, &all()).unwrap().backlog.is_empty());
    }

    #[test]
    fn an_event_is_one_shared_line() {
        let e = event_with(7, serde_json::json!({"a": 1}));
        let line = e.line();
        assert_eq!(&line[..], b"{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n");
        assert_eq!(line.as_ptr(), e.line().as_ptr(), "built once");
        assert_eq!(e.object_json(), "{\"a\":1}");
        assert_eq!(e.object_json_len(), 7);
    }

    #[test]
    fn a_watcher_that_falls_too_far_behind_is_told_so() {
        let hub = WatchHub::new(2);
        let mut sub = hub.subscribe(0, &all()).unwrap();
        for rv in 1..=5 {
            hub.publish(event(rv));
        }
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
