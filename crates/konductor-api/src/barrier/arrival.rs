//! The `Arrival` custom resource: one object per process arriving at a barrier.
//!
//! Each arrival is its own object so concurrent arrivals never conflict on the Barrier,
//! and a Job's ServiceAccount needs only `create arrivals` and `get/watch barriers`.
//! Its name is derived from (barrier, holder) by [`arrival_name`], so arriving twice is
//! the same create and the API server's AlreadyExists makes it idempotent.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The longest holder string accepted in `spec.holder`.
pub const MAX_HOLDER_LEN: usize = 253;

/// The longest message accepted in `spec.message`.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// One process's arrival (or reported failure) at a barrier in the same namespace.
// Clippy mistakes the repeated `type_ = "string"` inside kube's `printcolumn(...)`
// arguments for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "konductor.io",
    version = "v1",
    kind = "Arrival",
    plural = "arrivals",
    singular = "arrival",
    shortname = "arr",
    category = "konductor",
    namespaced,
    status = "ArrivalStatus",
    derive = "PartialEq",
    doc = "An Arrival records that one process (the holder) reached a Barrier, or reports that it failed and will never arrive.",
    printcolumn(name = "Barrier", type_ = "string", json_path = ".spec.barrier"),
    printcolumn(name = "Holder", type_ = "string", json_path = ".spec.holder"),
    printcolumn(name = "Outcome", type_ = "string", json_path = ".spec.outcome"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ArrivalSpec {
    /// Name of the Barrier (in the same namespace) this process arrives at. Immutable.
    #[schemars(length(min = 1, max = crate::barrier::MAX_BARRIER_NAME_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("barrier is immutable"))]
    pub barrier: String,

    /// Who arrived: a pod name, hostname or any identifier unique among the barrier's
    /// participants. A holder counts once however often it arrives. Immutable.
    #[schemars(length(min = 1, max = MAX_HOLDER_LEN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("holder is immutable"))]
    pub holder: String,

    /// `Succeeded` (the default) counts toward opening; `Failed` reports that this
    /// holder will never arrive, so the barrier can fail early instead of timing out.
    #[serde(default)]
    pub outcome: Outcome,

    /// Optional free text, e.g. why the holder failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: Option<String>,
}

impl Arrival {
    /// The Arrival a holder records, as every Konductor client writes it: named by
    /// [`arrival_name`] (so arriving twice is the same create), labelled with its
    /// barrier ([`crate::BARRIER_LABEL`]) and owned by the barrier with `barrier_uid`.
    pub fn at_barrier(spec: ArrivalSpec, barrier_uid: &str) -> Self {
        let mut arrival = Self::new(&arrival_name(&spec.barrier, &spec.holder), spec);
        arrival.metadata.labels = Some(
            [(
                crate::BARRIER_LABEL.to_owned(),
                arrival.spec.barrier.clone(),
            )]
            .into(),
        );
        arrival.metadata.owner_references = Some(vec![crate::owner_reference(
            "Barrier",
            arrival.spec.barrier.clone(),
            barrier_uid,
        )]);
        arrival
    }
}

impl ArrivalSpec {
    /// A successful arrival of `holder` at `barrier`.
    pub fn succeeded(barrier: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            barrier: barrier.into(),
            holder: holder.into(),
            outcome: Outcome::Succeeded,
            message: None,
        }
    }

    /// A failure report from `holder` at `barrier`.
    pub fn failed(
        barrier: impl Into<String>,
        holder: impl Into<String>,
        message: Option<String>,
    ) -> Self {
        Self {
            barrier: barrier.into(),
            holder: holder.into(),
            outcome: Outcome::Failed,
            message,
        }
    }
}

/// Whether a holder arrived or reported that it failed.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum Outcome {
    /// The holder arrived; it counts toward opening the barrier.
    #[default]
    Succeeded,
    /// The holder failed and will not arrive; it lowers the number of possible arrivals.
    Failed,
    /// A value this version does not know (written by a newer version).
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// The status of an arrival. Empty for now: an Arrival's meaning is all in its spec and
/// the Barrier's status. The subresource exists so that status can be added later
/// without widening what a Job's ServiceAccount may write.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct ArrivalStatus {}

/// The longest part of an arrival name taken from the barrier name.
const BARRIER_PART_LEN: usize = 24;
/// The longest part of an arrival name taken from the holder.
const HOLDER_PART_LEN: usize = 24;

/// The deterministic name of `holder`'s Arrival at `barrier`.
///
/// The result is a valid DNS-1123 label (at most 63 characters of `a-z`, `0-9` and `-`,
/// starting and ending alphanumeric) whatever the inputs: `<barrier>-<holder>-<hash>`,
/// where the readable parts are sanitised and shortened and `<hash>` is 13 characters
/// of a 64-bit FNV-1a hash of the exact (barrier, holder) pair, so holders that
/// sanitise to the same text (`Pod.A` and `pod-a`) still get distinct names.
///
/// ```
/// use konductor_api::arrival_name;
/// assert_eq!(arrival_name("extract", "worker-1"), arrival_name("extract", "worker-1"));
/// assert_ne!(arrival_name("extract", "Worker.1"), arrival_name("extract", "worker-1"));
/// assert!(arrival_name("extract", "worker-1").starts_with("extract-worker-1-"));
/// ```
pub fn arrival_name(barrier: &str, holder: &str) -> String {
    claim_name(barrier, holder)
}

/// The deterministic name of `holder`'s claim on `owner` (an Arrival at a barrier, a
/// Permit on a lock): `<owner>-<holder>-<hash>`, as [`arrival_name`] describes.
pub(crate) fn claim_name(owner: &str, holder: &str) -> String {
    let mut name = String::with_capacity(63);
    for part in [
        sanitise(owner, BARRIER_PART_LEN),
        sanitise(holder, HOLDER_PART_LEN),
    ] {
        if !part.is_empty() {
            name.push_str(&part);
            name.push('-');
        }
    }
    let hash = fnv1a64(owner.as_bytes(), holder.as_bytes());
    name.push_str(&base32(hash));
    name
}

/// Lower-cases `text`, maps every run of characters outside `a-z0-9` to one `-`, trims
/// dashes from both ends and truncates to `max` characters (trimming again).
fn sanitise(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(max);
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(max).collect();
    trimmed.trim_end_matches('-').to_owned()
}

/// FNV-1a over `barrier`, a separator byte that cannot occur in UTF-8, and `holder`, so
/// (`ab`, `c`) and (`a`, `bc`) hash differently.
fn fnv1a64(barrier: &[u8], holder: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    barrier
        .iter()
        .chain(&[0xff])
        .chain(holder)
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        })
}

/// The 64 bits of `value` as 13 characters of lowercase RFC 4648 base32 (`a-z2-7`).
fn base32(value: u64) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..13)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn is_dns1123_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn names_are_readable_for_ordinary_holders() {
        let name = arrival_name("extract-complete", "extract-job-3-x7k2p");
        assert!(
            name.starts_with("extract-complete-extract-job-3-x7k2p-"),
            "{name}"
        );
        assert!(is_dns1123_label(&name));
    }

    #[test]
    fn awkward_holders_still_give_valid_distinct_names() {
        let long = "x".repeat(300);
        let holders = [
            "Worker.One",
            "worker-one",
            "worker.one",
            "WORKER_ONE",
            long.as_str(),
            "ワーカー",
            "🚀",
            "---",
            "",
            "a",
            "ip-10-0-0-1.ec2.internal",
        ];
        let mut seen = HashSet::new();
        for holder in holders {
            let name = arrival_name("stage-1", holder);
            assert!(is_dns1123_label(&name), "{holder:?} gave {name:?}");
            assert!(seen.insert(name.clone()), "{holder:?} collided: {name}");
        }
    }

    #[test]
    fn a_holder_that_sanitises_to_nothing_keeps_the_barrier_part() {
        let name = arrival_name("b", "ワーカー");
        assert!(name.starts_with("b-"), "{name}");
        assert_eq!(name.len(), 2 + 13);
    }

    #[test]
    fn the_separator_keeps_split_points_apart() {
        assert_ne!(arrival_name("ab", "c"), arrival_name("a", "bc"));
    }

    #[test]
    fn names_are_stable_across_releases() {
        // The name is part of the protocol: arrivals written by an older koncli must be
        // found by a newer one. Changing this value breaks idempotence across versions.
        assert_eq!(arrival_name("b", "h"), "b-h-p5ua6dejalrfs");
    }

    proptest! {
        #[test]
        fn every_name_is_a_dns_label(barrier in "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]", holder in "\\PC{0,300}") {
            let name = arrival_name(&barrier, &holder);
            prop_assert!(is_dns1123_label(&name), "{:?}", name);
            prop_assert_eq!(name, arrival_name(&barrier, &holder));
        }

        #[test]
        fn distinct_holders_get_distinct_names(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(arrival_name("x", &a), arrival_name("x", &b));
        }
    }
}
