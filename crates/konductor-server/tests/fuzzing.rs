//! The fuzz targets' short form for CI: each entry point of
//! `konductor_server::fuzzing` on random and structured inputs (proptest), and on
//! every input a fuzzer ever crashed on (`fuzz/regressions/<target>/`), so a fixed
//! crash stays fixed. The long runs are `cargo +nightly fuzz run <target>` (see
//! docs/reliability.md).

mod common;

use common::json::json_value;
use konductor_server::fuzzing;
use proptest::prelude::*;

/// A selector byte (or two) in front of a body, as the targets read their input.
fn framed(prefix: Vec<u8>, body: &str) -> Vec<u8> {
    let mut data = prefix;
    data.extend_from_slice(body.as_bytes());
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn create_requests_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::create_request(&data);
    }

    #[test]
    fn create_requests_on_json(prefix in prop::collection::vec(any::<u8>(), 2), body in json_value()) {
        fuzzing::create_request(&framed(prefix.clone(), &body.to_string()));
        if let Ok(yaml) = serde_yaml::to_string(&body) {
            fuzzing::create_request(&framed(vec![1, prefix[1]], &yaml));
        }
    }

    #[test]
    fn create_requests_on_barrier_like_json(expected in any::<i64>(), extra in json_value(), name in "[a-z0-9.-]{0,70}") {
        let body = serde_json::json!({
            "apiVersion": "konductor.io/v1",
            "kind": "Barrier",
            "metadata": {"name": name, "labels": extra.clone()},
            "spec": {"expected": expected, "quorum": extra.clone(), "timeout": extra},
        });
        fuzzing::create_request(&framed(vec![0, 0], &body.to_string()));
    }

    #[test]
    fn patches_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::patch_request(&data);
    }

    #[test]
    fn patches_on_json(kind in any::<u8>(), body in json_value()) {
        fuzzing::patch_request(&framed(vec![kind], &body.to_string()));
    }

    #[test]
    fn json_patches_on_operations(ops in prop::collection::vec(
        (prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test"]),
         prop::sample::select(vec!["/spec/expected", "/spec", "/metadata/name", "/metadata/uid", "/status/arrived", "/metadata/labels/app", "/spec/quorum", "/x", ""]),
         json_value()),
        0..4)
    ) {
        let patch: Vec<_> = ops.into_iter().map(|(op, path, value)| {
            serde_json::json!({"op": op, "path": path, "from": "/spec", "value": value})
        }).collect();
        for kind in [1u8, 0x81] {
            fuzzing::patch_request(&framed(vec![kind], &serde_json::Value::from(patch.clone()).to_string()));
        }
    }

    #[test]
    fn selectors_on_random_text(text in "[a-z0-9=!,()./ _-]{0,40}|[ -~]{0,40}|\\PC{0,20}") {
        fuzzing::selectors(text.as_bytes());
    }

    #[test]
    fn durations_on_random_text(text in "[0-9.]{0,8}(ns|us|µs|ms|s|m|h|d|){0,3}[0-9.]{0,8}(ns|us|ms|s|m|h)?|\\PC{0,12}") {
        fuzzing::duration(text.as_bytes());
    }

    #[test]
    fn protobuf_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::protobuf(&data);
        let mut framed = b"k8s\x00".to_vec();
        framed.extend_from_slice(&data);
        fuzzing::protobuf(&framed);
    }
}

/// Every input a fuzzer crashed on, replayed through its target.
#[test]
fn every_recorded_crash_stays_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in fuzzing::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} still fails on {}", path.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} recorded crash inputs");
}
