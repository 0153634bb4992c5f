//! What the controller remembers of its own writes: which versions each object was
//! written over, so that no cache it feeds goes back and no echo of its own write is
//! taken for news.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

/// A merge patch of an object's status, conditional on its uid or resourceVersion:
/// how the controller writes a status it computed as a difference (a lock's grants,
/// a Permit's status) rather than as a whole object.
#[derive(serde::Serialize, Debug)]
pub struct StatusPatch<'a, S> {
    /// What the write is conditional on.
    pub metadata: Precondition<'a>,
    /// The status fields to write (RFC 7386: `null` removes a field).
    pub status: S,
}

/// What a write is conditional on: the object's uid (not one created again under its
/// name), its resourceVersion (not changed since it was read), or both.
#[derive(serde::Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Precondition<'a> {
    /// The uid the object must have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    /// The resourceVersion it must be at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<&'a str>,
}

/// A subject's identity within the cluster: namespace and name.
pub type SubjectKey = (String, String);

/// The most status writes remembered while a subject cache catches up with them.
const MAX_REMEMBERED_WRITES: usize = 4096;

/// `subject`'s namespace and name.
pub fn subject_key<K: kube::Resource>(subject: &K) -> SubjectKey {
    (subject.namespace().unwrap_or_default(), subject.name_any())
}

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
/// again. Every cache fed by the controller's own writes uses it: the claim index
/// (which also keeps the locks) and, keeping the written object `O` too, [`OwnWrites`]
/// for the subjects' status writes. Opaque resourceVersions are only compared for
/// equality; entries go when the echo comes (or the object goes).
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

/// The controller's recent status writes of a subject kind (barriers, wait groups) that
/// its cache of them may not show yet.
///
/// The subject watch delivers a status write a moment after the write returns; a
/// reconcile in that moment would read the older barrier from the cache, compute from
/// an out-of-date previous status, and lose a 409 Conflict plus a retry on every busy
/// subject. So each write is remembered (in [`WrittenVersions`], with the object it
/// returned), and a reconcile that gets a superseded version from the cache works on
/// the written object instead; and the write's own watch event (its echo) triggers no
/// reconcile, since it carries nothing the writer did not know.
pub struct OwnWrites<K> {
    by_subject: Mutex<WrittenVersions<SubjectKey, Arc<K>>>,
}

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        Self {
            by_subject: Mutex::new(WrittenVersions::default()),
        }
    }
}

impl<K> OwnWrites<K>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    fn lock(&self) -> std::sync::MutexGuard<'_, WrittenVersions<SubjectKey, Arc<K>>> {
        self.by_subject
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The newest known state of `cached`: our own later write if the cache is behind it.
    pub fn latest(&self, cached: Arc<K>) -> Arc<K> {
        let key = subject_key(&*cached);
        let mut writes = self.lock();
        let Some(written) = writes.written(&key).cloned() else {
            return cached;
        };
        if written.uid() != cached.uid() {
            // A subject deleted and created again: not the one written.
            writes.forget(&key);
            return cached;
        }
        match writes.judge(&key, cached.resource_version().as_deref()) {
            EventVersion::Stale => written,
            // The cache caught up, or someone else wrote since: the cache is the truth.
            EventVersion::Echo | EventVersion::New => cached,
        }
    }

    /// Whether `subject`, as the watch delivers it, is exactly our last write.
    pub fn is_echo(&self, subject: &K) -> bool {
        self.lock()
            .written(&subject_key(subject))
            .is_some_and(|own| {
                own.uid() == subject.uid() && own.resource_version() == subject.resource_version()
            })
    }

    /// Remembers that `based_on` was replaced by `written`.
    pub fn remember(&self, based_on: &K, written: K, cache: &Store<K>) {
        let key = subject_key(&written);
        let mut writes = self.lock();
        if writes
            .written(&key)
            .is_some_and(|own| own.uid() != written.uid())
        {
            writes.forget(&key);
        }
        if writes.remembered() >= MAX_REMEMBERED_WRITES {
            // Keep only writes the cache has not caught up with (a few in flight).
            writes.retain(|(namespace, name), superseded| {
                cache
                    .get(&ObjectRef::new(name).within(namespace))
                    .and_then(|cached| cached.resource_version())
                    .is_some_and(|version| superseded.contains(&version))
            });
        }
        let Some(version) = written.resource_version() else {
            return;
        };
        writes.wrote_object(key, based_on.resource_version(), version, Arc::new(written));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use konductor_api::{Barrier, BarrierSpec};

    /// A barrier `ns/b` at `version` (for the tests of what is kept of writes).
    pub(crate) fn barrier(version: &str) -> Barrier {
        let mut barrier = Barrier::new("b", BarrierSpec::new(3));
        barrier.metadata.namespace = Some("ns".into());
        barrier.metadata.uid = Some("uid-1".into());
        barrier.metadata.resource_version = Some(version.into());
        barrier
    }

    fn version_of(barrier: &Barrier) -> String {
        barrier.resource_version().unwrap()
    }

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

    #[test]
    fn a_reconcile_behind_its_own_writes_works_on_the_newest() {
        let (cache, _writer) = kube::runtime::reflector::store::<Barrier>();
        let writes = OwnWrites::<Barrier>::default();
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert!(
            writes.is_echo(&barrier("2")),
            "our own write needs no reconcile"
        );
        assert!(!writes.is_echo(&barrier("1")));
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "2");
        // A second write on top of the first, while the cache still shows the oldest.
        writes.remember(&barrier("2"), barrier("3"), &cache);
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "3");
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("2")))), "3");
        // The cache caught up: it is the truth again, and the memory is gone.
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("3")))), "3");
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("1")))), "1");
    }

    #[test]
    fn someone_elses_newer_write_wins() {
        let (cache, _writer) = kube::runtime::reflector::store::<Barrier>();
        let writes = OwnWrites::<Barrier>::default();
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert_eq!(version_of(&writes.latest(Arc::new(barrier("5")))), "5");
        let mut recreated = barrier("1");
        recreated.metadata.uid = Some("uid-2".into());
        writes.remember(&barrier("1"), barrier("2"), &cache);
        assert_eq!(
            writes.latest(Arc::new(recreated)).uid().as_deref(),
            Some("uid-2"),
            "a barrier deleted and created again is not confused with the old one"
        );
    }
}
