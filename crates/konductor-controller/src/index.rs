//! The arrivals of each barrier, indexed by barrier and kept current from the arrival
//! watch stream, so a reconcile touches only its own barrier's arrivals — never a scan
//! of every arrival in the cluster.
//!
//! It keeps only what the rules and adoption need of each arrival ([`IndexedArrival`]),
//! not the whole object, so memory per stored arrival stays small.
//!
//! It follows kube-runtime's watcher protocol: `Init` starts a fresh listing, `InitApply`
//! fills it, `InitDone` swaps it in (so a re-list after a broken watch never shows a
//! half-filled view), `Apply`/`Delete` change one arrival. Until the first `InitDone`
//! the index is not ready and reconciles wait, as with a reflector.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use konductor_api::Arrival;
use konductor_api::rules::ArrivalRecord;
use kube::ResourceExt;
use kube::runtime::watcher;

/// A barrier's identity within the cluster: namespace and name.
pub type BarrierKey = (String, String);

/// What the controller keeps of one arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedArrival {
    /// The Arrival's name.
    pub name: String,
    /// Its resourceVersion (a precondition when adopting it).
    pub resource_version: Option<String>,
    /// Its ownerReferences (which barrier owns it, if any).
    pub owners: Vec<OwnerReference>,
    /// Whether it carries the `konductor.io/barrier` label naming its barrier.
    pub labelled: bool,
    /// What the rules need: holder, outcome, message, arrival time.
    pub record: ArrivalRecord,
}

impl IndexedArrival {
    /// The parts of `arrival` the controller uses.
    pub fn of(arrival: &Arrival) -> Self {
        Self {
            name: arrival.name_any(),
            resource_version: arrival.resource_version(),
            owners: arrival.owner_references().to_vec(),
            labelled: arrival.labels().get(konductor_api::BARRIER_LABEL)
                == Some(&arrival.spec.barrier),
            record: ArrivalRecord {
                holder: arrival.spec.holder.clone(),
                outcome: arrival.spec.outcome,
                message: arrival.spec.message.clone(),
                arrived_at: arrival.creation_timestamp().map(|t| t.0),
            },
        }
    }

    /// Whether some Barrier owns it.
    pub fn has_barrier_owner(&self) -> bool {
        self.owners.iter().any(|o| o.kind == "Barrier")
    }
}

/// Arrivals of one barrier, by name.
type Arrivals = HashMap<String, Arc<IndexedArrival>>;

/// Arrivals by barrier. Cheap to clone; clones share the index.
#[derive(Clone, Default)]
pub struct ArrivalIndex {
    state: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    /// Each barrier's arrivals.
    by_barrier: HashMap<BarrierKey, Arrivals>,
    /// The listing being filled after `Init`, swapped in at `InitDone`.
    relisting: Option<HashMap<BarrierKey, Arrivals>>,
    /// Whether a complete listing has been seen.
    ready: bool,
}

/// The barrier an arrival counts for.
fn barrier_key(arrival: &Arrival) -> BarrierKey {
    (
        arrival.namespace().unwrap_or_default(),
        arrival.spec.barrier.clone(),
    )
}

fn insert(map: &mut HashMap<BarrierKey, Arrivals>, arrival: &Arrival) {
    map.entry(barrier_key(arrival))
        .or_default()
        .insert(arrival.name_any(), Arc::new(IndexedArrival::of(arrival)));
}

impl ArrivalIndex {
    /// An empty index, not ready until a listing completes.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one watcher event. O(1) per event (a re-list swaps in at once).
    pub fn apply(&self, event: &watcher::Event<Arrival>) {
        let mut state = self.write();
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(arrival) => {
                let relisting = state.relisting.get_or_insert_with(HashMap::new);
                insert(relisting, arrival);
            }
            watcher::Event::InitDone => {
                if let Some(listing) = state.relisting.take() {
                    state.by_barrier = listing;
                }
                state.ready = true;
            }
            watcher::Event::Apply(arrival) => insert(&mut state.by_barrier, arrival),
            watcher::Event::Delete(arrival) => {
                let key = barrier_key(arrival);
                if let Some(arrivals) = state.by_barrier.get_mut(&key) {
                    arrivals.remove(&arrival.name_any());
                    if arrivals.is_empty() {
                        state.by_barrier.remove(&key);
                    }
                }
            }
        }
    }

    /// Whether a complete listing has been seen (reconciles wait until then).
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    /// How many arrivals name barrier `name` in `namespace` (an upper bound on how
    /// many holders arrived), in O(1).
    pub fn count(&self, namespace: &str, name: &str) -> usize {
        self.read()
            .by_barrier
            .get(&(namespace.to_owned(), name.to_owned()))
            .map_or(0, HashMap::len)
    }

    /// The arrivals naming barrier `name` in `namespace`, in no particular order.
    pub fn of(&self, namespace: &str, name: &str) -> Vec<Arc<IndexedArrival>> {
        self.read()
            .by_barrier
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|arrivals| arrivals.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::ArrivalSpec;

    fn arrival(barrier: &str, holder: &str) -> Arrival {
        let mut arrival = Arrival::new(
            &konductor_api::arrival_name(barrier, holder),
            ArrivalSpec::succeeded(barrier, holder),
        );
        arrival.metadata.namespace = Some("ns".into());
        arrival
    }

    fn holders(index: &ArrivalIndex, barrier: &str) -> Vec<String> {
        let mut holders: Vec<String> = index
            .of("ns", barrier)
            .iter()
            .map(|a| a.record.holder.clone())
            .collect();
        holders.sort();
        holders
    }

    #[test]
    fn is_ready_only_after_a_complete_listing() {
        let index = ArrivalIndex::new();
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(arrival("b", "h1")));
        assert!(!index.is_ready());
        assert!(
            index.of("ns", "b").is_empty(),
            "a half-filled listing is not shown"
        );
        index.apply(&watcher::Event::InitDone);
        assert!(index.is_ready());
        assert_eq!(holders(&index, "b"), ["h1"]);
    }

    #[test]
    fn keeps_each_barrier_to_its_own_arrivals() {
        let index = ArrivalIndex::new();
        index.apply(&watcher::Event::InitDone);
        index.apply(&watcher::Event::Apply(arrival("b", "h1")));
        index.apply(&watcher::Event::Apply(arrival("b", "h2")));
        index.apply(&watcher::Event::Apply(arrival("c", "h1")));
        index.apply(&watcher::Event::Apply(arrival("b", "h1")));
        assert_eq!(holders(&index, "b"), ["h1", "h2"]);
        assert_eq!(index.count("ns", "b"), 2);
        assert_eq!(holders(&index, "c"), ["h1"]);
        index.apply(&watcher::Event::Delete(arrival("b", "h1")));
        assert_eq!(holders(&index, "b"), ["h2"]);
        index.apply(&watcher::Event::Delete(arrival("c", "h1")));
        assert!(index.of("ns", "c").is_empty());
        assert!(index.of("other", "b").is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_at_once() {
        let index = ArrivalIndex::new();
        index.apply(&watcher::Event::InitDone);
        index.apply(&watcher::Event::Apply(arrival("b", "gone")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(arrival("b", "h1")));
        assert_eq!(
            holders(&index, "b"),
            ["gone"],
            "the old view stays until InitDone"
        );
        index.apply(&watcher::Event::InitDone);
        assert_eq!(holders(&index, "b"), ["h1"]);
    }
}
