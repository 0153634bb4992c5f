//! Random JSON documents built from the keys and values Kubernetes objects use, for
//! property tests.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Keys that mean something somewhere, and a few that mean nothing.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "generateName",
    "labels",
    "finalizers",
    "ownerReferences",
    "resourceVersion",
    "uid",
    "spec",
    "status",
    "expected",
    "quorum",
    "timeout",
    "barrier",
    "holder",
    "outcome",
    "message",
    "holderIdentity",
    "regarding",
    "note",
    "x",
    "",
];

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z0-9./_ -]{0,12}".prop_map(Value::from),
        Just(json!("konductor.io/v1")),
        Just(json!("Barrier")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..6).prop_map(|map| {
                Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}
