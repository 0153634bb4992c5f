//! The arrivals of each barrier, in the engine's claim index
//! ([`crate::engine::claims`]): it keeps only what the rules and adoption need of each
//! arrival ([`IndexedArrival`]), not the whole object, so memory per stored arrival
//! stays small.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use konductor_api::Arrival;
use konductor_api::barrier::rules::ArrivalRecord;
use kube::ResourceExt;

use crate::engine::claims::{ClaimIndex, Claims};

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
}

/// How a barrier's Arrivals are indexed: by the barrier they name, each kept as an
/// [`IndexedArrival`].
#[derive(Default)]
pub struct ArrivalClaims;

impl Claims for ArrivalClaims {
    type Claim = Arrival;
    type Kept = IndexedArrival;
    type Subject = BarrierKey;

    fn subject(&self, arrival: &Arrival) -> BarrierKey {
        (
            arrival.namespace().unwrap_or_default(),
            arrival.spec.barrier.clone(),
        )
    }

    fn keep(&self, arrival: &Arrival, _: Option<&IndexedArrival>, _: Timestamp) -> IndexedArrival {
        IndexedArrival::of(arrival)
    }
}

/// Arrivals by barrier. Cheap to clone; clones share the index.
pub type ArrivalIndex = ClaimIndex<ArrivalClaims>;

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::ArrivalSpec;
    use kube::runtime::watcher;

    fn arrival(barrier: &str, holder: &str) -> Arrival {
        let mut arrival = Arrival::new(
            &konductor_api::arrival_name(barrier, holder),
            ArrivalSpec::succeeded(barrier, holder),
        );
        arrival.metadata.namespace = Some("ns".into());
        arrival
    }

    fn apply(index: &ArrivalIndex, event: watcher::Event<Arrival>) {
        index.apply(&event, Timestamp::UNIX_EPOCH);
    }

    fn key(namespace: &str, barrier: &str) -> BarrierKey {
        (namespace.to_owned(), barrier.to_owned())
    }

    fn holders(index: &ArrivalIndex, barrier: &str) -> Vec<String> {
        let mut holders: Vec<String> = index
            .of(&("ns".to_owned(), barrier.to_owned()))
            .iter()
            .map(|a| a.record.holder.clone())
            .collect();
        holders.sort();
        holders
    }

    #[test]
    fn is_ready_only_after_a_complete_listing() {
        let index = ArrivalIndex::new();
        apply(&index, watcher::Event::Init);
        apply(&index, watcher::Event::InitApply(arrival("b", "h1")));
        assert!(!index.is_ready());
        assert!(
            index.of(&key("ns", "b")).is_empty(),
            "a half-filled listing is not shown"
        );
        apply(&index, watcher::Event::InitDone);
        assert!(index.is_ready());
        assert_eq!(holders(&index, "b"), ["h1"]);
    }

    #[test]
    fn keeps_each_barrier_to_its_own_arrivals() {
        let index = ArrivalIndex::new();
        apply(&index, watcher::Event::InitDone);
        apply(&index, watcher::Event::Apply(arrival("b", "h1")));
        apply(&index, watcher::Event::Apply(arrival("b", "h2")));
        apply(&index, watcher::Event::Apply(arrival("c", "h1")));
        apply(&index, watcher::Event::Apply(arrival("b", "h1")));
        assert_eq!(holders(&index, "b"), ["h1", "h2"]);
        assert_eq!(index.count(&key("ns", "b")), 2);
        assert_eq!(holders(&index, "c"), ["h1"]);
        apply(&index, watcher::Event::Delete(arrival("b", "h1")));
        assert_eq!(holders(&index, "b"), ["h2"]);
        apply(&index, watcher::Event::Delete(arrival("c", "h1")));
        assert!(index.of(&key("ns", "c")).is_empty());
        assert!(index.of(&key("other", "b")).is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_at_once() {
        let index = ArrivalIndex::new();
        apply(&index, watcher::Event::InitDone);
        apply(&index, watcher::Event::Apply(arrival("b", "gone")));
        apply(&index, watcher::Event::Init);
        apply(&index, watcher::Event::InitApply(arrival("b", "h1")));
        assert_eq!(
            holders(&index, "b"),
            ["gone"],
            "the old view stays until InitDone"
        );
        apply(&index, watcher::Event::InitDone);
        assert_eq!(holders(&index, "b"), ["h1"]);
    }
}
