//! The hot set: the committed state of recently written or read objects, kept as the
//! same shared values the watch hub holds, so reading an object that is in use (the
//! barrier every arriving Job looks up, the namespace every create checks, the object a
//! write replaces) costs neither SQLite nor JSON parsing.
//!
//! Only the writer fills it, at commit, under the writer lock — so it never holds
//! anything but the newest committed state of a key. Reads that miss go to SQLite and
//! leave the set alone (a reader filling it could race a commit and put an older state
//! back). Bounded: the least recently used keys leave first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::ObjectKey;

/// Recently used objects by key, least recently used first out.
pub(super) struct HotSet {
    entries: HashMap<ObjectKey, Entry>,
    /// Keys by when they were last used; stale duplicates are skipped when evicting.
    order: VecDeque<(ObjectKey, u64)>,
    /// A counter standing for time: one tick per insert or refresh.
    clock: u64,
    capacity: usize,
}

struct Entry {
    object: Arc<Value>,
    /// When the key was last put at the back of `order`.
    used: u64,
}

impl HotSet {
    /// An empty set holding at most `capacity` objects.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            clock: 0,
            capacity: capacity.max(1),
        }
    }

    /// The object at `key`, if hot. A key not used for a while is moved to the back.
    pub(super) fn get(&mut self, key: &ObjectKey) -> Option<Arc<Value>> {
        let clock = self.clock;
        let half = (self.capacity / 2) as u64;
        let entry = self.entries.get_mut(key)?;
        let object = entry.object.clone();
        // Refresh only keys that drifted towards the front, so `order` grows by at most
        // one entry per key per half-turn, not one per read.
        if clock.saturating_sub(entry.used) > half {
            self.clock += 1;
            entry.used = self.clock;
            self.order.push_back((key.clone(), self.clock));
        }
        Some(object)
    }

    /// Records the committed state of `key` (`None`: deleted).
    pub(super) fn put(&mut self, key: &ObjectKey, object: Option<Arc<Value>>) {
        let Some(object) = object else {
            self.entries.remove(key);
            return;
        };
        self.clock += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                object,
                used: self.clock,
            },
        );
        self.order.push_back((key.clone(), self.clock));
        while self.entries.len() > self.capacity {
            let Some((oldest, used)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|e| e.used == used) {
                self.entries.remove(&oldest);
            }
        }
        // Drop stale duplicates piling up at the front.
        while self
            .order
            .front()
            .is_some_and(|(k, used)| self.entries.get(k).is_none_or(|e| e.used != *used))
        {
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("things", "ns", name)
    }

    #[test]
    fn holds_the_newest_state_and_forgets_deletes() {
        let mut hot = HotSet::new(10);
        hot.put(&key("a"), Some(Arc::new(json!(1))));
        hot.put(&key("a"), Some(Arc::new(json!(2))));
        assert_eq!(*hot.get(&key("a")).unwrap(), json!(2));
        hot.put(&key("a"), None);
        assert!(hot.get(&key("a")).is_none());
    }

    #[test]
    fn the_least_recently_used_leave_first_and_order_stays_bounded() {
        let mut hot = HotSet::new(4);
        for name in ["ns-default", "b", "c", "d"] {
            hot.put(&key(name), Some(Arc::new(json!(name))));
        }
        for i in 0..1000 {
            // The namespace is read all the time; the other keys come and go.
            assert!(hot.get(&key("ns-default")).is_some(), "evicted at {i}");
            hot.put(&key(&format!("x{i}")), Some(Arc::new(json!(i))));
        }
        assert!(hot.get(&key("b")).is_none());
        assert_eq!(hot.entries.len(), 4);
        assert!(hot.order.len() <= 3 * hot.capacity, "{}", hot.order.len());
    }
}
