//! Status conditions (the metav1.Condition shape) as every kind's rules write them: a
//! condition keeps its transition time while its status stays the same.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `type` of the condition every kind writes saying whether its spec was accepted, so
/// that `kubectl wait --for=condition=Ready` works on any Konductor object.
pub const CONDITION_READY: &str = "Ready";

/// Reason of the `Ready` condition (and of the failed phase) when the spec is invalid.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// The `Ready` condition: `accepted` (its reason and message) when the spec was
/// accepted, otherwise why not (reason [`REASON_INVALID_SPEC`]).
pub(crate) fn ready(
    previous: &[Condition],
    accepted: Result<(&str, String), &str>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let (status, reason, message) = match accepted {
        Ok((reason, message)) => (true, reason, message),
        Err(why) => (false, REASON_INVALID_SPEC, why.to_owned()),
    };
    condition(
        previous,
        CONDITION_READY,
        status,
        reason,
        message,
        generation,
        now,
    )
}

/// A condition of `type_`, keeping the transition time of `previous` while its status
/// stays the same (a new one is cut to whole seconds, all a `Time` keeps, so the status
/// read back equals the one computed).
pub(crate) fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(to_seconds(now)), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// `ts` cut to whole seconds.
fn to_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}
