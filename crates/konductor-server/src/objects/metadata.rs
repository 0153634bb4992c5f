//! Object metadata the server assigns and checks: timestamps, uids, names, and the
//! validation of what clients may set — names, labels, annotations, finalizers and
//! ownerReferences — by apimachinery's rules.

use jiff::Timestamp;
use serde_json::Value;

use crate::error::FieldError;
pub use konductor_api::names::{is_dns1123_label, is_dns1123_subdomain};

/// A timestamp as this server writes `creationTimestamp` and `deletionTimestamp`:
/// RFC 3339 in UTC with microseconds. A real API server keeps whole seconds; the extra
/// precision makes barrier deadlines (`creationTimestamp + timeout`) exact, which
/// matters for sub-second timeouts, and every Kubernetes client parses it.
pub fn timestamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A random version-4 UUID, as metadata.uid.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Five random characters as Kubernetes appends to `generateName`.
pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The object's `metadata.name`, or "".
pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The object's `metadata.resourceVersion`, or "".
pub fn resource_version_of(object: &Value) -> &str {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}

/// Annotations may hold this many bytes (keys and values) in all, as in Kubernetes.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What is wrong with `value` as a qualified name (`[prefix/]name`: label keys,
/// annotation keys, finalizers), in apimachinery's words; empty when it is valid.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    let mut errors = Vec::new();
    match prefix {
        Some("") => errors.push("prefix part must be non-empty".to_owned()),
        Some(prefix) if !is_dns1123_subdomain(prefix) => errors.push(String::from(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )),
        _ => {}
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            errors.push("name part must be no more than 63 characters".to_owned());
        }
        if !is_qualified_part(name) {
            errors.push(format!("name part {QUALIFIED_NAME_RULE}"));
        }
    }
    errors
}

/// What is wrong with `value` as a label value; empty when it is valid.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qualified_part(value) {
        errors.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_owned());
    }
    errors
}

fn invalid_value(field: &str, value: &str, why: &str) -> FieldError {
    FieldError::invalid(field, format!("Invalid value: {value:?}: {why}"))
}

fn type_error(field: &str, expected: &str) -> FieldError {
    FieldError {
        reason: "FieldValueTypeInvalid",
        field: field.to_owned(),
        message: format!("Invalid value: {field} must be {expected}"),
    }
}

/// Every violation of apimachinery's rules in the metadata a client wrote — labels,
/// annotations (and their 256 KiB total), finalizers, ownerReferences — with the field
/// each names. (The name is checked with the resource's own rule at create.)
pub fn validate(metadata: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // The string fields a client may send (typed clients cannot read anything else).
    for field in [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
    ] {
        if metadata
            .get(field)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            errors.push(type_error(&format!("metadata.{field}"), "a string"));
        }
    }
    match metadata.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (key, value) in labels {
                for why in qualified_name_errors(key) {
                    errors.push(invalid_value("metadata.labels", key, &why));
                }
                match value.as_str() {
                    Some(text) => {
                        for why in label_value_errors(text) {
                            errors.push(invalid_value("metadata.labels", text, &why));
                        }
                    }
                    None => errors.push(type_error(&format!("metadata.labels.{key}"), "a string")),
                }
            }
        }
        Some(_) => errors.push(type_error("metadata.labels", "a map of strings")),
    }
    match metadata.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(annotations)) => {
            let mut total = 0usize;
            for (key, value) in annotations {
                for why in qualified_name_errors(&key.to_lowercase()) {
                    errors.push(invalid_value("metadata.annotations", key, &why));
                }
                match value.as_str() {
                    Some(text) => total += key.len() + text.len(),
                    None => errors.push(type_error(
                        &format!("metadata.annotations.{key}"),
                        "a string",
                    )),
                }
            }
            if total > MAX_ANNOTATIONS_BYTES {
                errors.push(FieldError {
                    reason: "FieldValueTooLong",
                    field: "metadata.annotations".into(),
                    message: format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
                });
            }
        }
        Some(_) => errors.push(type_error("metadata.annotations", "a map of strings")),
    }
    match metadata.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(finalizers)) => {
            for (i, finalizer) in finalizers.iter().enumerate() {
                let field = format!("metadata.finalizers[{i}]");
                match finalizer.as_str() {
                    Some(text) => {
                        for why in qualified_name_errors(text) {
                            errors.push(invalid_value(&field, text, &why));
                        }
                    }
                    None => errors.push(type_error(&field, "a string")),
                }
            }
        }
        Some(_) => errors.push(type_error("metadata.finalizers", "a list of strings")),
    }
    match metadata.get("ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(owners)) => {
            let mut controllers = 0;
            for (i, owner) in owners.iter().enumerate() {
                let field = format!("metadata.ownerReferences[{i}]");
                if !owner.is_object() {
                    errors.push(type_error(&field, "an object"));
                    continue;
                }
                for required in ["apiVersion", "kind", "name", "uid"] {
                    if owner[required].as_str().is_none_or(str::is_empty) {
                        errors.push(FieldError::required(format!("{field}.{required}")));
                    }
                }
                if owner["controller"].as_bool() == Some(true) {
                    controllers += 1;
                }
            }
            if controllers > 1 {
                errors.push(FieldError::invalid(
                    "metadata.ownerReferences",
                    "Invalid value: only one reference can have Controller set to true",
                ));
            }
        }
        Some(_) => errors.push(type_error("metadata.ownerReferences", "a list of objects")),
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(metadata: Value) -> Vec<String> {
        validate(&metadata).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn labels_follow_the_qualified_name_and_value_rules() {
        let good = serde_json::json!({"labels": {"konductor.io/barrier": "b1", "app": "", "a_b.c-d": "X_y.z-1"}});
        assert!(validate(&good).is_empty(), "{:?}", validate(&good));
        for bad in [
            serde_json::json!({"labels": {"-bad-": "x"}}),
            serde_json::json!({"labels": {"ok": "v".repeat(64)}}),
            serde_json::json!({"labels": {"ok": "-v"}}),
            serde_json::json!({"labels": {"/name": "v"}}),
            serde_json::json!({"labels": {"Example.COM/name": "v"}}),
            serde_json::json!({"labels": {"a/b/c": "v"}}),
            serde_json::json!({"labels": {"k".repeat(64): "v"}}),
            serde_json::json!({"labels": {"n": 5}}),
        ] {
            assert_eq!(fields(bad.clone()).len(), 1, "{bad}: {:?}", validate(&bad));
        }
        let message = &validate(&serde_json::json!({"labels": {"-bad-": "x"}}))[0].message;
        assert!(
            message.starts_with("Invalid value: \"-bad-\": name part must consist"),
            "{message}"
        );
    }

    #[test]
    fn annotations_finalizers_and_owners_are_checked() {
        let big = "x".repeat(MAX_ANNOTATIONS_BYTES);
        assert_eq!(
            fields(serde_json::json!({"annotations": {"a": big}})),
            ["metadata.annotations"]
        );
        assert_eq!(
            fields(serde_json::json!({"finalizers": ["example.com/ok", "not ok"]})),
            ["metadata.finalizers[1]"]
        );
        assert_eq!(
            fields(
                serde_json::json!({"ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "n"}]})
            ),
            ["metadata.ownerReferences[0].uid"]
        );
        let two_controllers = serde_json::json!({"ownerReferences": [
            {"apiVersion": "v1", "kind": "K", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "v1", "kind": "K", "name": "b", "uid": "2", "controller": true},
        ]});
        assert_eq!(fields(two_controllers), ["metadata.ownerReferences"]);
    }

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
    }
}
