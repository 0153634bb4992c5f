//! Arbitrary request bodies never crash the API verbs: every create, update and patch
//! either stores a valid object or returns an error.

use std::sync::Arc;

use konductor_server::objects::{FieldValidation, Subresource};
use konductor_server::patch::PatchType;
use konductor_server::registry::Registry;
use konductor_server::service::Service;
use konductor_server::store::Store;
use konductor_server::watch::WatchHub;
use proptest::prelude::*;
use serde_json::json;

mod common;
use common::json::json_value;

fn service() -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), WatchHub::new(64)).unwrap();
    let service = Service::new(store, Arc::new(Registry::standard()));
    service.bootstrap().unwrap();
    (service, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bodies_are_stored_valid_or_refused(bodies in prop::collection::vec(json_value(), 1..6)) {
        let (service, _dir) = service();
        let registry = service.registry().clone();
        for def in registry.all() {
            let namespace = if def.namespaced { "default" } else { "" };
            let seed = match def.plural.as_str() {
                "barriers" => json!({"metadata": {"name": "seed"}, "spec": {"expected": 1}}),
                "arrivals" => json!({"metadata": {"name": "seed"}, "spec": {"barrier": "b", "holder": "h"}}),
                _ => json!({"metadata": {"name": "seed"}}),
            };
            // events.k8s.io shares the core events' bucket: the seed may exist already.
            let _ = service.create(def, namespace, seed, FieldValidation::Strict);
            for body in &bodies {
                let bytes = serde_json::to_vec(body).unwrap();
                let _ = service.create(def, namespace, body.clone(), FieldValidation::Strict);
                let _ = service.replace(def, namespace, "seed", body.clone(), Subresource::Main, FieldValidation::Strict);
                for patch_type in [PatchType::Merge, PatchType::Json, PatchType::Apply] {
                    let _ = service.patch(def, namespace, "seed", Subresource::Main, patch_type, &bytes, FieldValidation::Warn);
                }
                if def.status_subresource {
                    let _ = service.patch(def, namespace, "seed", Subresource::Status, PatchType::Merge, &bytes, FieldValidation::Warn);
                }
            }
        }
        let barriers = registry.find("konductor.io", "v1", "barriers").unwrap();
        let listed = service.list(barriers, None, &Default::default()).unwrap();
        for barrier in &listed.items {
            let expected = barrier["spec"]["expected"].as_i64();
            prop_assert!(expected.is_some_and(|e| e >= 1), "stored an invalid barrier: {barrier}");
            prop_assert!(barrier["metadata"]["uid"].is_string());
        }
    }
}
