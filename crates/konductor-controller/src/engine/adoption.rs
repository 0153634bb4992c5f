//! Adoption: a claim written without its subject as owner — with kubectl, say — is made
//! the subject's (so deleting the subject deletes it) and labelled with the subject's
//! name (so `-l konductor.io/barrier=B` finds it), as ReplicaSets adopt their Pods.
//! koncli and the SDK write both themselves; adoption is for everyone else.
//!
//! A claim owned by an *earlier* subject of the same name (deleted and created again)
//! is handled as the kind says ([`Earlier`]). Every patch carries the claim's
//! resourceVersion, so a claim changed meanwhile is left for its next look.

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use crate::{Error, Result};

/// How many claims are adopted concurrently: a burst of kubectl-written claims is
/// adopted quickly without flooding the API server.
const ADOPTION_CONCURRENCY: usize = 16;

/// What happens to a claim another subject of the kind owns (an earlier one of the
/// same name, whose claims await the garbage collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// It is left alone: it does not count for this subject and goes with its owner
    /// (a barrier created again starts afresh).
    Left,
    /// It is taken over: its earlier owner's reference of the same name is replaced
    /// (a lock's holder keeps its claim when the lock is created again).
    TakenOver,
}

/// The subject that adopts: its kind, name and uid, its label key, and its rule for
/// claims of an earlier subject.
pub struct Adopter<'a> {
    /// The subject's kind (`Barrier`, `Mutex`, …).
    pub kind: &'a str,
    /// The subject's name.
    pub name: &'a str,
    /// The subject's uid.
    pub uid: &'a str,
    /// The label naming the subject on its claims.
    pub label: &'a str,
    /// What happens to claims another subject of the kind owns.
    pub earlier: Earlier,
}

/// What adoption reads of a claim.
pub struct Orphan<'a> {
    /// The claim's name.
    pub name: &'a str,
    /// Its resourceVersion (the patch's precondition).
    pub resource_version: Option<&'a str>,
    /// Its ownerReferences.
    pub owners: &'a [OwnerReference],
    /// Whether it carries the subject's label with the subject's name.
    pub labelled: bool,
}

/// A merge patch of a claim's metadata that adopts it: conditional on the version read;
/// the owner references written whole when they change, the subject's label when it
/// is missing.
#[derive(Serialize, Debug, PartialEq)]
pub struct AdoptionPatch {
    metadata: AdoptedMetadata,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct AdoptedMetadata {
    resource_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The merge patch that adopts `claim` for `adopter`, or `None` when there is nothing
/// to do.
pub fn patch(claim: &Orphan<'_>, adopter: &Adopter<'_>) -> Option<AdoptionPatch> {
    let of_kind = || claim.owners.iter().filter(|o| o.kind == adopter.kind);
    let ours = of_kind().any(|o| o.uid == adopter.uid);
    let owners: Option<Vec<OwnerReference>> = match adopter.earlier {
        _ if ours => None,
        Earlier::Left if of_kind().next().is_some() => None,
        Earlier::Left => Some(claim.owners.to_vec()),
        Earlier::TakenOver => Some(
            claim
                .owners
                .iter()
                .filter(|o| !(o.kind == adopter.kind && o.name == adopter.name))
                .cloned()
                .collect(),
        ),
    }
    .map(|mut owners| {
        owners.push(konductor_api::owner_reference(
            adopter.kind,
            adopter.name,
            adopter.uid,
        ));
        owners
    });
    if owners.is_none() && claim.labelled {
        return None;
    }
    let label = (adopter.label.to_owned(), adopter.name.to_owned());
    Some(AdoptionPatch {
        metadata: AdoptedMetadata {
            resource_version: claim.resource_version.map(str::to_owned),
            owner_references: owners,
            labels: (!claim.labelled).then(|| [label].into()),
        },
    })
}

/// Writes `patches` (claim name, patch) a handful at a time. A claim changed or
/// deleted meanwhile (409, 404) is no failure: its next event brings its next look.
pub async fn adopt<K>(
    api: &Api<K>,
    patches: impl IntoIterator<Item = (String, AdoptionPatch)>,
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let writes = patches.into_iter().map(|(name, patch)| async move {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    });
    let results: Vec<Result<()>> = futures::stream::iter(writes)
        .buffer_unordered(ADOPTION_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
        konductor_api::owner_reference(kind, name, uid)
    }

    fn adopter(earlier: Earlier) -> Adopter<'static> {
        Adopter {
            kind: "Mutex",
            name: "db",
            uid: "now",
            label: "konductor.io/mutex",
            earlier,
        }
    }

    fn claim(owners: &[OwnerReference], labelled: bool) -> Orphan<'_> {
        Orphan {
            name: "c",
            resource_version: Some("7"),
            owners,
            labelled,
        }
    }

    fn owners_in(patch: &serde_json::Value) -> Vec<(String, String)> {
        patch["metadata"]["ownerReferences"]
            .as_array()
            .map(|owners| {
                owners
                    .iter()
                    .map(|o| {
                        (
                            o["name"].as_str().unwrap_or_default().to_owned(),
                            o["uid"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn an_owned_labelled_claim_needs_nothing() {
        let owners = [owner("Mutex", "db", "now")];
        for earlier in [Earlier::Left, Earlier::TakenOver] {
            assert_eq!(patch(&claim(&owners, true), &adopter(earlier)), None);
        }
    }

    #[test]
    fn an_orphan_gets_the_owner_and_the_label_under_its_version() {
        let patch = patch(&claim(&[], false), &adopter(Earlier::Left)).expect("adopted");
        let patch = serde_json::to_value(patch).unwrap();
        assert_eq!(owners_in(&patch), [("db".to_owned(), "now".to_owned())]);
        assert_eq!(patch["metadata"]["labels"]["konductor.io/mutex"], "db");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn an_owned_claim_without_the_label_is_only_labelled() {
        let owners = [owner("Mutex", "db", "now")];
        let patch = patch(&claim(&owners, false), &adopter(Earlier::Left)).expect("labelled");
        let patch = serde_json::to_value(patch).unwrap();
        assert!(patch["metadata"].get("ownerReferences").is_none());
        assert_eq!(patch["metadata"]["labels"]["konductor.io/mutex"], "db");
    }

    #[test]
    fn an_earlier_subjects_claim_is_left_or_taken_over_as_the_kind_says() {
        let owners = [owner("Mutex", "db", "before"), owner("Job", "j", "job")];
        assert_eq!(
            patch(&claim(&owners, true), &adopter(Earlier::Left)),
            None,
            "left to the garbage collector"
        );
        let taken = patch(&claim(&owners, true), &adopter(Earlier::TakenOver)).expect("taken");
        let taken = serde_json::to_value(taken).unwrap();
        assert_eq!(
            owners_in(&taken),
            [
                ("j".to_owned(), "job".to_owned()),
                ("db".to_owned(), "now".to_owned())
            ],
            "the earlier reference is replaced, other owners stay"
        );
    }
}
