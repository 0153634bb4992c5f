//! Conversions between a resource's stored shape and the shape a client asked for.
//!
//! Events are stored once, as core v1 Events, and also served as events.k8s.io/v1
//! Events (what kube-runtime's recorder writes): `regarding` ↔ `involvedObject`,
//! `note` ↔ `message`, `reportingController` ↔ `reportingComponent`, and the
//! `deprecated*` fields ↔ `source`, `firstTimestamp`, `lastTimestamp`, `count`. This is
//! how `kubectl describe` (core v1) sees events the controller records (events.k8s.io).
//!
//! A custom resource served in several versions is stored once, in its storage
//! version; the others see the same object under their own `apiVersion`.

use serde_json::{Map, Value};

use crate::registry::{ResourceDef, View};

/// Field renames between events.k8s.io/v1 (left) and core v1 (right).
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Converts a stored object into the shape `def` serves.
pub fn to_view(def: &ResourceDef, stored: &Value) -> Value {
    match def.view {
        View::Native => stored.clone(),
        View::EventsV1 => rename(stored, |(v1, core)| (core, v1), &def.api_version()),
        View::Relabelled { .. } => relabel(stored, &def.api_version()),
    }
}

/// An object as `meta.k8s.io/v1` PartialObjectMetadata: its metadata alone, what a
/// client asks for with `Accept: application/json;as=PartialObjectMetadata;…` (a
/// client that needs a barrier's uid need not download every holder).
pub fn partial_metadata(object: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

/// A list as PartialObjectMetadataList.
pub fn partial_metadata_list(list: &Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(partial_metadata)
        .collect();
    serde_json::json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list["metadata"],
        "items": items,
    })
}

/// Converts an object in the shape `def` serves into the stored shape.
pub fn to_storage(def: &ResourceDef, object: &Value) -> Value {
    match &def.view {
        View::Native => object.clone(),
        View::EventsV1 => rename(object, |(v1, core)| (v1, core), "v1"),
        View::Relabelled { stored_api_version } => relabel(object, stored_api_version),
    }
}

/// The same object under another `apiVersion`.
fn relabel(object: &Value, api_version: &str) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
    }
    out
}

/// Renames top-level Event fields, each pair of [`EVENT_RENAMES`] turned into
/// `(from, to)` by `direction`, and sets `apiVersion` and `kind` of the result.
fn rename(
    object: &Value,
    direction: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
    api_version: &str,
) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let renames: Vec<(&str, &str)> = EVENT_RENAMES.iter().map(|pair| direction(*pair)).collect();
    let mut out: Map<String, Value> = map
        .iter()
        .map(|(key, value)| {
            let target = renames
                .iter()
                .find(|(from, _)| from == key)
                .map_or(key.as_str(), |(_, to)| to);
            (target.to_owned(), value.clone())
        })
        .collect();
    out.insert("apiVersion".into(), api_version.into());
    out.insert("kind".into(), "Event".into());
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let registry = Registry::standard();
        let v1 = registry.find("events.k8s.io", "v1", "events").unwrap();
        let recorded = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "b.1", "namespace": "default"},
            "regarding": {"kind": "Barrier", "name": "b"},
            "note": "opened", "reason": "Opened", "type": "Normal",
            "reportingController": "konductor", "eventTime": "2026-01-01T00:00:00.000000Z",
        });
        let stored = to_storage(v1, &recorded);
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "b");
        assert_eq!(stored["message"], "opened");
        assert_eq!(stored["reportingComponent"], "konductor");
        assert!(stored.get("note").is_none());
        assert_eq!(to_view(v1, &stored), recorded);
        let core = registry.find("", "v1", "events").unwrap();
        assert_eq!(to_view(core, &stored), stored);
    }
}
