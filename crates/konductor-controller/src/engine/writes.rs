//! What the controller remembers of its own writes: which versions each object was
//! written over, so that no cache it feeds goes back and no echo of its own write is
//! taken for news.

use std::collections::HashMap;
use std::hash::Hash;

/// What a watch event is, next to the controller's own writes of that object.
#[derive(Debug, PartialEq, Eq)]
pub enum EventVersion {
    /// The echo of the controller's last write: the cache already holds it; nothing to do.
    Echo,
    /// A version the controller read before writing over it: older than the cache.
    Stale,
    /// Anything else: someone changed the object; the cache takes it.
    New,
}

/// Which resourceVersions each object was written over by the controller, so that a
/// watch event still carrying one of them (delivered after the write's answer) cannot
/// take a cache back, and the write's own echo queues no reconcile. Without it, a
/// reconcile right after a grant would see the permit still Pending and grant it
/// again. Every cache fed by the controller's own writes uses it: the claim index, the
/// lock cache, and (keeping the written object `O` too) the barrier controller's `OwnWrites`. Opaque
/// resourceVersions are only compared for equality; entries go when the echo comes
/// (or the object goes).
pub struct WrittenVersions<K, O = ()> {
    by_key: HashMap<K, Written<O>>,
}

struct Written<O> {
    /// The resourceVersion the last write returned.
    version: String,
    /// The versions it was written over, which events in flight may still carry.
    superseded: Vec<String>,
    /// What the writer keeps of the written object.
    object: O,
}

impl<K, O> Default for WrittenVersions<K, O> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> WrittenVersions<K> {
    /// Records that the object at `key`, read at `based_on`, was written and is now at
    /// `written`.
    pub fn wrote(&mut self, key: K, based_on: Option<String>, written: String) {
        self.wrote_object(key, based_on, written, ());
    }
}

impl<K: Hash + Eq, O> WrittenVersions<K, O> {
    /// [`WrittenVersions::wrote`], keeping `object` (what the write returned).
    pub fn wrote_object(&mut self, key: K, based_on: Option<String>, written: String, object: O) {
        let mut superseded = self
            .by_key
            .remove(&key)
            .map(|w| {
                let mut older = w.superseded;
                older.push(w.version);
                older
            })
            .unwrap_or_default();
        superseded.extend(based_on);
        self.by_key.insert(
            key,
            Written {
                version: written,
                superseded,
                object,
            },
        );
    }

    /// Judges a watch event of `key` at `version` (forgetting the writes it settles).
    pub fn judge(&mut self, key: &K, version: Option<&str>) -> EventVersion {
        let Some(written) = self.by_key.get(key) else {
            return EventVersion::New;
        };
        match version {
            Some(v) if v == written.version => {
                self.by_key.remove(key);
                EventVersion::Echo
            }
            Some(v) if written.superseded.iter().any(|s| s == v) => EventVersion::Stale,
            _ => {
                self.by_key.remove(key);
                EventVersion::New
            }
        }
    }

    /// What was kept of the last write of `key`, until its echo settles it.
    pub fn written(&self, key: &K) -> Option<&O> {
        self.by_key.get(key).map(|w| &w.object)
    }

    /// Forgets `key` (deleted, or re-listed).
    pub fn forget(&mut self, key: &K) {
        self.by_key.remove(key);
    }

    /// How many writes are remembered.
    pub fn remembered(&self) -> usize {
        self.by_key.len()
    }

    /// Keeps only the writes for which `keep(key, superseded versions)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &[String]) -> bool) {
        self.by_key.retain(|key, w| keep(key, &w.superseded));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_versions_keep_the_cache_from_going_back() {
        let mut written = WrittenVersions::default();
        assert_eq!(written.judge(&"p", Some("1")), EventVersion::New);
        written.wrote("p", Some("1".into()), "2".into());
        written.wrote("p", Some("2".into()), "3".into());
        // Events read before the writes, delivered after their answers: older.
        assert_eq!(written.judge(&"p", Some("1")), EventVersion::Stale);
        assert_eq!(written.judge(&"p", Some("2")), EventVersion::Stale);
        // The last write's echo settles it; afterwards every event is news.
        assert_eq!(written.judge(&"p", Some("3")), EventVersion::Echo);
        assert_eq!(written.judge(&"p", Some("1")), EventVersion::New);
    }

    #[test]
    fn someone_elses_write_after_ours_is_news() {
        let mut written = WrittenVersions::default();
        written.wrote("p", Some("1".into()), "2".into());
        assert_eq!(written.judge(&"p", Some("7")), EventVersion::New);
        assert_eq!(written.judge(&"p", Some("1")), EventVersion::New);
        written.wrote("q", None, "4".into());
        written.forget(&"q");
        assert_eq!(written.judge(&"q", Some("4")), EventVersion::New);
    }
}
