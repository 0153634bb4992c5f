//! Entry points for fuzzers and property tests. Each takes arbitrary bytes, runs one
//! piece of request handling exactly as the server does, and panics only when an
//! invariant breaks — a decoder or rule that panics is such a break too.
//!
//! The cargo-fuzz targets under `fuzz/` are one line around these; the proptests in
//! `tests/fuzzing.rs` feed them random bytes and every input a fuzzer ever crashed
//! on (`fuzz/regressions/`), so a fixed crash stays fixed in CI.
//!
//! Invariants checked on every input:
//! - an error is a 4xx (the client's fault), never a 5xx;
//! - an object that passes decoding, metadata rules and admission can be admitted
//!   again unchanged (admission is idempotent), and a Barrier or Arrival that passes
//!   decodes into its Rust type, so the controller can read everything the API
//!   accepts;
//! - a patch never changes an object's name or uid;
//! - a duration that parses prints back to the same duration.

use std::sync::LazyLock;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::objects::{self, FieldValidation, Subresource};
use crate::patch::{self, PatchType};
use crate::registry::{Registry, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::standard);

/// The media types a body may come in (the first input byte picks one).
const MEDIA_TYPES: [&str; 5] = [
    "application/json",
    "application/yaml",
    crate::protobuf::MEDIA_TYPE,
    "",
    "text/plain",
];

/// The resources requests are aimed at (the second input byte picks one).
const RESOURCES: [(&str, &str, &str); 5] = [
    ("konductor.io", "v1", "barriers"),
    ("konductor.io", "v1", "arrivals"),
    ("coordination.k8s.io", "v1", "leases"),
    ("", "v1", "events"),
    ("", "v1", "namespaces"),
];

fn def(group: &str, version: &str, plural: &str) -> &'static ResourceDef {
    REGISTRY
        .find(group, version, plural)
        .expect("a served resource")
}

fn pick<T: Copy>(choices: &[T], byte: Option<&u8>) -> T {
    choices[usize::from(byte.copied().unwrap_or(0)) % choices.len()]
}

/// Panics unless `error` is the client's fault.
fn assert_client_error(error: &ApiError, input: &[u8]) {
    let (code, _) = error.code_and_reason();
    assert!(
        code.is_client_error(),
        "{code} for input {:?}: {error}",
        String::from_utf8_lossy(input)
    );
}

/// Panics unless an admitted object is readable as what the controller expects.
fn assert_readable(def: &ResourceDef, object: &Value) {
    let typed = match def.plural.as_str() {
        "barriers" => serde_json::from_value::<konductor_api::Barrier>(object.clone()).err(),
        "arrivals" => serde_json::from_value::<konductor_api::Arrival>(object.clone()).err(),
        _ => None,
    };
    if let Some(error) = typed {
        panic!(
            "admitted a {} that does not decode ({error}): {object}",
            def.kind
        );
    }
}

/// A create: decode the body by media type, prepare its metadata, admit it.
pub fn create_request(data: &[u8]) {
    let media_type = pick(&MEDIA_TYPES, data.first());
    let (group, version, plural) = pick(&RESOURCES, data.get(1));
    let body = data.get(2..).unwrap_or_default();
    let def = def(group, version, plural);
    let namespace = if def.namespaced { "default" } else { "" };
    let now = Timestamp::UNIX_EPOCH;
    let admitted = crate::http::decode_body(media_type, body)
        .and_then(|object| objects::prepare_create(def, namespace, object, now))
        .and_then(|mut object| {
            objects::admit(def, &mut object, None, FieldValidation::Strict).map(|_| object)
        });
    match admitted {
        Err(error) => assert_client_error(&error, data),
        Ok(object) => {
            assert_readable(def, &object);
            let mut again = object.clone();
            objects::admit(def, &mut again, None, FieldValidation::Strict)
                .unwrap_or_else(|e| panic!("admission is not idempotent ({e}): {object}"));
            assert_eq!(again, object, "admitting twice changed the object");
        }
    }
}

/// A stored barrier that patches apply to.
fn stored_barrier() -> Value {
    json!({
        "apiVersion": "konductor.io/v1",
        "kind": "Barrier",
        "metadata": {
            "name": "b",
            "namespace": "default",
            "uid": "00000000-0000-4000-8000-000000000000",
            "resourceVersion": "7",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "etl"},
        },
        "spec": {"expected": 3, "timeout": "5m"},
        "status": {"phase": "Waiting", "arrived": 1},
    })
}

/// A patch of a stored barrier: apply it (the first byte picks the patch type and
/// whether it targets the status), then update and admit the result.
pub fn patch_request(data: &[u8]) {
    let selector = data.first().copied().unwrap_or(0);
    let patch_type = pick(
        &[PatchType::Merge, PatchType::Json, PatchType::Apply],
        Some(&selector),
    );
    let subresource = if selector & 0x80 == 0 {
        Subresource::Main
    } else {
        Subresource::Status
    };
    let body = data.get(1..).unwrap_or_default();
    let def = def("konductor.io", "v1", "barriers");
    let current = stored_barrier();
    let updated = patch::apply(patch_type, &current, body)
        .and_then(|patched| objects::prepare_update(def, &current, patched, subresource, false))
        .and_then(|mut object| {
            objects::admit(def, &mut object, Some(&current), FieldValidation::Warn).map(|_| object)
        });
    match updated {
        Err(error) => assert_client_error(&error, data),
        Ok(object) => {
            assert_readable(def, &object);
            assert_eq!(object["metadata"]["name"], current["metadata"]["name"]);
            assert_eq!(object["metadata"]["uid"], current["metadata"]["uid"]);
        }
    }
}

/// Label and field selectors: parse, then match against a barrier.
pub fn selectors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let barrier = stored_barrier();
    let def = def("konductor.io", "v1", "barriers");
    match LabelSelector::parse(&text) {
        Ok(selector) => {
            selector.matches(&barrier);
        }
        Err(error) => assert_client_error(&error, data),
    }
    match FieldSelector::parse(&text, &def.field_labels) {
        Ok(selector) => {
            selector.matches(&barrier);
        }
        Err(error) => assert_client_error(&error, data),
    }
}

/// Go durations (`spec.timeout`, `--timeout`): what parses prints back the same.
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = konductor_api::duration::parse_duration(&text) {
        let printed = konductor_api::duration::format_duration(parsed);
        let reparsed = konductor_api::duration::parse_duration(&printed)
            .unwrap_or_else(|e| panic!("{text:?} parsed but its print {printed:?} does not: {e}"));
        assert_eq!(reparsed, parsed, "{text:?} → {printed:?}");
    }
}

/// kubectl's protobuf bodies: decode (a Namespace, or a 4xx).
pub fn protobuf(data: &[u8]) {
    match crate::protobuf::decode(data) {
        Ok(object) => assert!(object.is_object(), "decoded to a non-object: {object}"),
        Err(error) => assert_client_error(&error, data),
    }
}

/// One entry point: it takes the raw input and panics if an invariant breaks.
pub type Target = fn(&[u8]);

/// Every entry point by name, as the fuzz targets and regression files are named.
pub const TARGETS: [(&str, Target); 5] = [
    ("create_request", create_request),
    ("patch_request", patch_request),
    ("selectors", selectors),
    ("duration", duration),
    ("protobuf", protobuf),
];
