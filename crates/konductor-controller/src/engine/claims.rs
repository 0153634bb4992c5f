//! The claims of every subject — a barrier's Arrivals, a lock's Permits — indexed by
//! subject and kept current from one watch of the claims, so that a reconcile touches
//! only its own subject's claims, never a scan of every claim in the cluster. One
//! implementation of kube-runtime's watcher protocol for every kind: `Init` starts a
//! fresh listing, `InitApply` fills it, `InitDone` swaps it in (a re-list after a
//! broken watch never shows a half-filled view), `Apply`/`Delete` change one claim.
//! Until the first `InitDone` the index is not ready, and reconciles wait.
//!
//! A kind says what is kept of each claim ([`Claims::keep`]: a compact entry, so memory
//! per stored claim stays small, plus whatever it tracks across versions — the time a
//! Permit's renewal was seen) and which subject a claim counts for.
//!
//! The lock controller keeps its locks the same way — each lock the one "claim" of its
//! own key — so every cache a controller fills from a watch of its own writes follows
//! the protocol here, and [`crate::engine::feed_index`] is the one feed of all of them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::engine::writes::{EventVersion, WrittenVersions};

/// How one kind's claims are indexed.
pub trait Claims: Send + Sync + 'static {
    /// The claim object (Arrival, Permit).
    type Claim: ResourceExt;
    /// What the index keeps of one claim.
    type Kept: Send + Sync;
    /// The subject a claim counts for.
    type Subject: Clone + Eq + Hash + Send + Sync;

    /// The subject `claim` counts for.
    fn subject(&self, claim: &Self::Claim) -> Self::Subject;

    /// What is kept of `claim`, seen `now`; `before` is what was kept of the claim of
    /// the same name (which may be an earlier claim: compare uids).
    fn keep(&self, claim: &Self::Claim, before: Option<&Self::Kept>, now: Timestamp) -> Self::Kept;
}

/// One claim that changed: what was kept before and after (`None`: absent).
pub struct Change<C: Claims> {
    /// The subject it counts for.
    pub subject: C::Subject,
    /// What was kept of it before the change.
    pub before: Option<Arc<C::Kept>>,
    /// What is kept of it now (`None`: deleted).
    pub after: Option<Arc<C::Kept>>,
}

/// Claims of one subject, by name.
type OfSubject<K> = HashMap<String, Arc<K>>;

/// Claims by subject. Cheap to clone; clones share the index.
pub struct ClaimIndex<C: Claims> {
    state: Arc<RwLock<State<C>>>,
}

impl<C: Claims> Clone for ClaimIndex<C> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<C: Claims + Default> Default for ClaimIndex<C> {
    fn default() -> Self {
        Self::of_claims(C::default())
    }
}

struct State<C: Claims> {
    /// How claims are indexed.
    claims: C,
    by_subject: HashMap<C::Subject, OfSubject<C::Kept>>,
    /// The listing being filled after `Init`, swapped in at `InitDone`.
    relisting: Option<HashMap<C::Subject, OfSubject<C::Kept>>>,
    /// Whether a complete listing has been seen.
    ready: bool,
    /// Writes of ours the watch may not have delivered yet, by claim uid.
    written: WrittenVersions<String>,
}

impl<C: Claims> State<C> {
    fn current(&self, subject: &C::Subject, name: &str) -> Option<Arc<C::Kept>> {
        self.by_subject.get(subject)?.get(name).cloned()
    }

    /// Puts `claim` into the view, returning what was there before.
    fn put(&mut self, claim: &C::Claim, now: Timestamp) -> Change<C> {
        let (subject, name) = (self.claims.subject(claim), claim.name_any());
        let before = self.current(&subject, &name);
        let kept = Arc::new(self.claims.keep(claim, before.as_deref(), now));
        self.by_subject
            .entry(subject.clone())
            .or_default()
            .insert(name, kept.clone());
        Change {
            subject,
            before,
            after: Some(kept),
        }
    }
}

impl<C: Claims> ClaimIndex<C> {
    /// An empty index, not ready until a listing completes.
    pub fn new() -> Self
    where
        C: Default,
    {
        Self::default()
    }

    /// An empty index of claims indexed as `claims` says.
    pub fn of_claims(claims: C) -> Self {
        Self {
            state: Arc::new(RwLock::new(State {
                claims,
                by_subject: HashMap::new(),
                relisting: None,
                ready: false,
                written: WrittenVersions::default(),
            })),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<C>> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<C>> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one watch event, seen `now`; returns the claims it changed — one for
    /// `Apply` and `Delete` (none for the echo of our own write, or an event older than
    /// it), every claim added, changed or gone for the `InitDone` that ends a re-list.
    /// O(1) per event but `InitDone`, which compares the listing with the view.
    pub fn apply(&self, event: &watcher::Event<C::Claim>, now: Timestamp) -> Vec<Change<C>> {
        let mut guard = self.write();
        let state = &mut *guard;
        match event {
            watcher::Event::Init => {
                state.relisting = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(claim) => {
                let (subject, name) = (state.claims.subject(claim), claim.name_any());
                let before = state.current(&subject, &name);
                let kept = Arc::new(state.claims.keep(claim, before.as_deref(), now));
                state.written.forget(&claim.uid().unwrap_or_default());
                state
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .entry(subject)
                    .or_default()
                    .insert(name, kept);
                Vec::new()
            }
            watcher::Event::InitDone => {
                state.ready = true;
                let Some(listing) = state.relisting.take() else {
                    return Vec::new();
                };
                let old = std::mem::replace(&mut state.by_subject, listing);
                let mut changes = Vec::new();
                for (subject, claims) in &state.by_subject {
                    let before = old.get(subject);
                    for (name, kept) in claims {
                        let previous = before.and_then(|b| b.get(name));
                        if !previous.is_some_and(|p| Arc::ptr_eq(p, kept)) {
                            changes.push(Change {
                                subject: subject.clone(),
                                before: previous.cloned(),
                                after: Some(kept.clone()),
                            });
                        }
                    }
                }
                for (subject, claims) in old {
                    let now_there = state.by_subject.get(&subject);
                    for (name, kept) in claims {
                        if !now_there.is_some_and(|c| c.contains_key(&name)) {
                            changes.push(Change {
                                subject: subject.clone(),
                                before: Some(kept),
                                after: None,
                            });
                        }
                    }
                }
                changes
            }
            watcher::Event::Apply(claim) => {
                let uid = claim.uid().unwrap_or_default();
                if state
                    .written
                    .judge(&uid, claim.resource_version().as_deref())
                    != EventVersion::New
                {
                    return Vec::new();
                }
                vec![state.put(claim, now)]
            }
            watcher::Event::Delete(claim) => {
                let (subject, name) = (state.claims.subject(claim), claim.name_any());
                state.written.forget(&claim.uid().unwrap_or_default());
                let Some(claims) = state.by_subject.get_mut(&subject) else {
                    return Vec::new();
                };
                let before = claims.remove(&name);
                if claims.is_empty() {
                    state.by_subject.remove(&subject);
                }
                vec![Change {
                    subject,
                    before,
                    after: None,
                }]
            }
        }
    }

    /// Takes the answer to our own write of a claim (made over version `based_on`) into
    /// the index at once — only over the same claim: one of the same name created
    /// meanwhile stays — so that the write's echo changes nothing.
    pub fn wrote(&self, based_on: Option<String>, answer: &C::Claim, now: Timestamp)
    where
        C::Kept: HasUid,
    {
        let mut state = self.write();
        if let (Some(uid), Some(version)) = (answer.uid(), answer.resource_version()) {
            state.written.wrote(uid, based_on, version);
        }
        let (subject, name) = (state.claims.subject(answer), answer.name_any());
        let same = state
            .current(&subject, &name)
            .is_some_and(|kept| Some(kept.uid()) == answer.uid().as_deref());
        if same {
            state.put(answer, now);
        }
    }

    /// Takes a claim read outside the watch (afresh, to check on something the watch
    /// may not have shown yet) into the index.
    pub fn note(&self, claim: &C::Claim, now: Timestamp) {
        self.write().put(claim, now);
    }

    /// Whether a complete listing has been seen (reconciles wait until then).
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// How many claims count for `subject`, in O(1).
    pub fn count(&self, subject: &C::Subject) -> usize {
        self.read().by_subject.get(subject).map_or(0, HashMap::len)
    }

    /// The claim named `name` that counts for `subject`.
    pub fn get(&self, subject: &C::Subject, name: &str) -> Option<Arc<C::Kept>> {
        self.read().current(subject, name)
    }

    /// The claims that count for `subject`, in no particular order.
    pub fn of(&self, subject: &C::Subject) -> Vec<Arc<C::Kept>> {
        self.read()
            .by_subject
            .get(subject)
            .map(|claims| claims.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// What is kept of a claim knows the claim's uid (to tell it from a later one of the
/// same name).
pub trait HasUid {
    /// The claim's uid.
    fn uid(&self) -> &str;
}
