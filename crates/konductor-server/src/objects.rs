//! Object lifecycle rules of the Kubernetes API, independent of HTTP and storage:
//! what create, update, status update, patch and delete do to an object's metadata.
//!
//! - create: assigns `uid`, `creationTimestamp`, `generation: 1`; expands
//!   `generateName`; drops a `status` the client sent when the resource has a status
//!   subresource.
//! - update of the main resource: keeps the stored status (status subresource), bumps
//!   `generation` only when something outside metadata and status changed.
//! - update of `/status`: takes only the status from the request.
//! - `metadata.resourceVersion` in a request is a precondition (409 Conflict when stale);
//!   custom resources require it on `PUT`.
//! - delete: honours preconditions and finalizers (`deletionTimestamp` first, the real
//!   delete once the last finalizer is removed).

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError, Result};
use crate::registry::ResourceDef;
use crate::store::Write;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (spec, metadata).
    Main,
    /// The `/status` subresource.
    Status,
}

/// How unknown fields are treated (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields and tell the client in a `Warning` header (the default).
    Warn,
    /// Refuse the request (422) when there are unknown fields.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; absent means `Warn`, as on a real API server.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// `DeleteOptions` as far as this server honours them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    /// uid / resourceVersion the object must still have.
    #[serde(default)]
    pub preconditions: Option<Preconditions>,
    /// `Background` (default), `Foreground` or `Orphan`.
    #[serde(default)]
    pub propagation_policy: Option<String>,
    /// `["All"]` for a dry run (kube clients send it in the body rather than the query).
    #[serde(default)]
    pub dry_run: Vec<String>,
}

/// Delete preconditions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    /// The uid the object must have.
    pub uid: Option<String>,
    /// The resourceVersion the object must have.
    pub resource_version: Option<String>,
}

/// A timestamp as this server writes `creationTimestamp` and `deletionTimestamp`:
/// RFC 3339 in UTC with microseconds. A real API server keeps whole seconds; the extra
/// precision makes barrier deadlines (`creationTimestamp + timeout`) exact, which
/// matters for sub-second timeouts, and every Kubernetes client parses it.
pub fn timestamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A random version-4 UUID, as metadata.uid.
pub fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Five random characters as Kubernetes appends to `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Whether `name` is a DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`,
/// alphanumeric at both ends, at most 253 characters).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `name` is a DNS-1123 label (a subdomain without dots, at most 63 characters).
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns1123_subdomain(name)
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        kind: def.qualified_kind(),
        name: name.to_owned(),
        causes,
    }
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

/// Checks that the request body is an object of this resource's kind and fills in
/// `apiVersion`/`kind` when the client left them out.
fn check_type(def: &ResourceDef, object: &mut Value) -> Result<()> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    };
    let expected_version = def.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_version => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != def.kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => {}
    }
    map.insert("apiVersion".into(), expected_version.into());
    map.insert("kind".into(), def.kind.clone().into());
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// Prepares a new object for storage: type, name, namespace and server-set metadata.
pub fn prepare_create(
    def: &ResourceDef,
    namespace: &str,
    mut object: Value,
    now: Timestamp,
) -> Result<Value> {
    check_type(def, &mut object)?;
    let metadata = &mut object["metadata"];
    if metadata["name"].as_str().unwrap_or_default().is_empty() {
        match metadata["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => {
                metadata["name"] = format!("{prefix}{}", random_suffix()).into();
            }
            _ => {
                return Err(invalid(
                    def,
                    "",
                    vec![FieldError {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
        }
    }
    let name = metadata["name"].as_str().unwrap_or_default().to_owned();
    let valid_name = if def.namespaced {
        is_dns1123_subdomain(&name)
    } else {
        is_dns1123_label(&name)
    };
    if !valid_name {
        let rule = if def.namespaced {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        };
        return Err(invalid(
            def,
            &name,
            vec![FieldError::invalid(
                "metadata.name",
                format!("Invalid value: {name:?}: {rule}"),
            )],
        ));
    }
    if def.namespaced {
        match metadata["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => metadata["namespace"] = namespace.into(),
        }
    } else if let Some(map) = metadata.as_object_mut() {
        map.remove("namespace");
    }
    let map = metadata.as_object_mut().expect("metadata is an object");
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        map.remove(server_owned);
    }
    map.insert("uid".into(), new_uid().into());
    map.insert("creationTimestamp".into(), timestamp(now).into());
    map.insert("generation".into(), 1.into());
    if def.status_subresource
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    if def.kind == "Namespace" && def.group.is_empty() {
        object["status"] = json!({"phase": "Active"});
    }
    Ok(object)
}

/// Applies the request's view of an existing object (a `PUT` body, or the current object
/// with a patch applied) to `current`, keeping what the server owns.
///
/// `require_version`: whether a missing `metadata.resourceVersion` is an error (`PUT`
/// of a custom resource) rather than "no precondition" (patches, built-in types).
pub fn prepare_update(
    def: &ResourceDef,
    current: &Value,
    mut incoming: Value,
    subresource: Subresource,
    require_version: bool,
) -> Result<Value> {
    check_type(def, &mut incoming)?;
    let name = name_of(current).to_owned();
    match incoming["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != name => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    let requested_version = resource_version_of(&incoming);
    if requested_version.is_empty() {
        if require_version && !def.unconditional_update {
            return Err(invalid(
                def,
                &name,
                vec![FieldError::invalid(
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
    } else if requested_version != resource_version_of(current) {
        return Err(conflict(def, &name));
    }

    let mut next = match subresource {
        Subresource::Main => {
            let mut next = incoming;
            if def.status_subresource {
                match current.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            next
        }
        Subresource::Status => {
            let mut next = current.clone();
            match incoming.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    if let Some(map) = next.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            next
        }
    };
    // Server-owned metadata always comes from the stored object.
    for owned in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match current["metadata"].get(owned) {
            Some(value) => next["metadata"][owned] = value.clone(),
            None => {
                if let Some(map) = next["metadata"].as_object_mut() {
                    map.remove(owned);
                }
            }
        }
    }
    if content_changed(current, &next) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        next["metadata"]["generation"] = (generation + 1).into();
    }
    Ok(next)
}

/// Whether anything outside `metadata` and `status` differs (what bumps generation).
/// Compares in place: no copies of either object.
fn content_changed(a: &Value, b: &Value) -> bool {
    fn outside(object: &Value) -> Option<Vec<(&String, &Value)>> {
        object.as_object().map(|map| {
            map.iter()
                .filter(|(key, _)| !matches!(key.as_str(), "metadata" | "status"))
                .collect()
        })
    }
    outside(a) != outside(b)
}

/// The 409 for a stale resourceVersion.
pub fn conflict(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: def.qualified_plural(),
        name: name.to_owned(),
        message: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// Runs the resource's schema over an object about to be stored: defaults, unknown
/// fields (per `validation`), then the schema and CEL rules. Returns the warnings to
/// send for dropped unknown fields.
pub fn admit(
    def: &ResourceDef,
    object: &mut Value,
    old: Option<&Value>,
    validation: FieldValidation,
) -> Result<Vec<String>> {
    let Some(schema) = def.schema.as_deref() else {
        return Ok(Vec::new());
    };
    let unknown = schema.prune(object, old);
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        return Err(strict_error(def, &unknown));
    }
    schema.apply_defaults(object, old);
    let errors = schema.validate(object, old);
    if !errors.is_empty() {
        return Err(invalid(def, name_of(object), errors));
    }
    Ok(match validation {
        FieldValidation::Warn => unknown
            .into_iter()
            .map(|field| format!("unknown field \"{field}\""))
            .collect(),
        _ => Vec::new(),
    })
}

/// The 400 a real API server returns for unknown fields under `fieldValidation=Strict`.
fn strict_error(def: &ResourceDef, unknown: &[String]) -> ApiError {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::BadRequest(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = def.kind,
        version = def.version,
    ))
}

/// Decides what a delete does to `current`: checks preconditions, then either marks the
/// object for deletion (finalizers pending) or deletes it.
pub fn decide_delete(
    def: &ResourceDef,
    current: Value,
    options: &DeleteOptions,
    now: Timestamp,
) -> Result<Write> {
    let name = name_of(&current).to_owned();
    if let Some(pre) = &options.preconditions {
        let uid = current["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(expected) = &pre.uid
            && expected != uid
        {
            return Err(ApiError::Conflict {
                resource: def.qualified_plural(),
                name,
                message: format!(
                    "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                ),
            });
        }
        let rv = resource_version_of(&current);
        if let Some(expected) = &pre.resource_version
            && expected != rv
        {
            return Err(ApiError::Conflict {
                resource: def.qualified_plural(),
                name,
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {rv}"
                ),
            });
        }
    }
    let has_finalizers = current["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        return Ok(Write::Delete);
    }
    if current["metadata"].get("deletionTimestamp").is_some() {
        return Ok(Write::Unchanged(current));
    }
    let mut marked = current;
    marked["metadata"]["deletionTimestamp"] = timestamp(now).into();
    marked["metadata"]["deletionGracePeriodSeconds"] = 0.into();
    Ok(Write::Put(marked))
}

/// After an update: an object marked for deletion whose last finalizer was just removed
/// is deleted for real.
pub fn finish_if_finalized(object: Value) -> Write {
    let marked = object["metadata"].get("deletionTimestamp").is_some();
    let pending = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if marked && !pending {
        Write::Delete
    } else {
        Write::Put(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::sync::Arc;

    fn barriers() -> Arc<ResourceDef> {
        Registry::standard()
            .find("konductor.io", "v1", "barriers")
            .unwrap()
            .clone()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap()
    }

    fn created() -> Value {
        let mut object = prepare_create(
            &barriers(),
            "default",
            json!({"metadata": {"name": "b"}, "spec": {"expected": 2}, "status": {"phase": "Open"}}),
            now(),
        )
        .unwrap();
        object["metadata"]["resourceVersion"] = "7".into();
        object
    }

    #[test]
    fn create_sets_server_metadata_and_drops_status() {
        let object = created();
        assert_eq!(object["apiVersion"], "konductor.io/v1");
        assert_eq!(object["kind"], "Barrier");
        assert_eq!(object["metadata"]["namespace"], "default");
        assert_eq!(object["metadata"]["generation"], 1);
        assert_eq!(
            object["metadata"]["creationTimestamp"],
            "2025-06-15T15:06:40.000000Z"
        );
        assert_eq!(object["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(object.get("status").is_none());
    }

    #[test]
    fn generate_name_gets_a_random_suffix() {
        let object = prepare_create(
            &barriers(),
            "ns",
            json!({"metadata": {"generateName": "job-"}, "spec": {"expected": 1}}),
            now(),
        )
        .unwrap();
        let name = name_of(&object);
        assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    }

    #[test]
    fn names_must_be_dns_subdomains() {
        let err = prepare_create(
            &barriers(),
            "ns",
            json!({"metadata": {"name": "Bad_Name"}, "spec": {"expected": 1}}),
            now(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("metadata.name: Invalid value: \"Bad_Name\""),
            "{err}"
        );
    }

    #[test]
    fn a_mismatched_namespace_is_a_bad_request() {
        let err = prepare_create(
            &barriers(),
            "ns",
            json!({"metadata": {"name": "b", "namespace": "other"}, "spec": {"expected": 1}}),
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)));
    }

    #[test]
    fn spec_updates_bump_generation_and_keep_status() {
        let mut current = created();
        current["status"] = json!({"phase": "Waiting"});
        let incoming = json!({"metadata": {"name": "b", "resourceVersion": "7"}, "spec": {"expected": 3}, "status": {"phase": "Open"}});
        let next =
            prepare_update(&barriers(), &current, incoming, Subresource::Main, true).unwrap();
        assert_eq!(next["metadata"]["generation"], 2);
        assert_eq!(next["status"]["phase"], "Waiting");
        assert_eq!(next["spec"]["expected"], 3);
    }

    #[test]
    fn label_changes_do_not_bump_generation() {
        let current = created();
        let mut incoming = current.clone();
        incoming["metadata"]["labels"] = json!({"a": "b"});
        let next =
            prepare_update(&barriers(), &current, incoming, Subresource::Main, true).unwrap();
        assert_eq!(next["metadata"]["generation"], 1);
        assert_eq!(next["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn status_updates_ignore_spec_and_metadata() {
        let current = created();
        let incoming = json!({"metadata": {"name": "b", "labels": {"x": "y"}}, "spec": {"expected": 99}, "status": {"phase": "Open"}});
        let next =
            prepare_update(&barriers(), &current, incoming, Subresource::Status, false).unwrap();
        assert_eq!(next["spec"]["expected"], 2);
        assert_eq!(next["status"]["phase"], "Open");
        assert!(next["metadata"].get("labels").is_none());
        assert_eq!(next["metadata"]["generation"], 1);
    }

    #[test]
    fn stale_versions_conflict_and_custom_resources_need_one_on_put() {
        let current = created();
        let stale =
            json!({"metadata": {"name": "b", "resourceVersion": "6"}, "spec": {"expected": 3}});
        assert!(matches!(
            prepare_update(&barriers(), &current, stale, Subresource::Main, true),
            Err(ApiError::Conflict { .. })
        ));
        let unversioned = json!({"metadata": {"name": "b"}, "spec": {"expected": 3}});
        let err = prepare_update(
            &barriers(),
            &current,
            unversioned.clone(),
            Subresource::Main,
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("must be specified for an update"));
        assert!(
            prepare_update(&barriers(), &current, unversioned, Subresource::Main, false).is_ok()
        );
    }

    #[test]
    fn finalizers_delay_deletion_until_removed() {
        let mut current = created();
        current["metadata"]["finalizers"] = json!(["example.com/x"]);
        let Write::Put(marked) =
            decide_delete(&barriers(), current, &DeleteOptions::default(), now()).unwrap()
        else {
            panic!("expected the object to be marked");
        };
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        let mut released = marked.clone();
        released["metadata"]["finalizers"] = json!([]);
        assert!(matches!(finish_if_finalized(released), Write::Delete));
        assert!(matches!(finish_if_finalized(marked), Write::Put(_)));
    }

    #[test]
    fn delete_preconditions_are_checked() {
        let options = DeleteOptions {
            preconditions: Some(Preconditions {
                uid: Some("other".into()),
                resource_version: None,
            }),
            ..DeleteOptions::default()
        };
        let err = decide_delete(&barriers(), created(), &options, now()).unwrap_err();
        assert!(
            err.to_string().contains("Precondition failed: UID"),
            "{err}"
        );
    }

    #[test]
    fn strict_validation_refuses_unknown_fields_and_warn_reports_them() {
        let def = barriers();
        let mut object = created();
        object["spec"]["colour"] = "red".into();
        let err = admit(&def, &mut object.clone(), None, FieldValidation::Strict).unwrap_err();
        assert!(
            err.to_string().contains("unknown field \"spec.colour\""),
            "{err}"
        );
        let warnings = admit(&def, &mut object, None, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, ["unknown field \"spec.colour\""]);
        assert!(object["spec"].get("colour").is_none());
    }

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
    }
}
