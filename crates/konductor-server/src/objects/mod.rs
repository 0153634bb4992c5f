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
//!
//! Split by concern: `options` (what a request asks), [`metadata`] (uids, names,
//! timestamps, metadata validation), `admission` (schema defaults and validation);
//! this file holds the lifecycle itself.

mod admission;
pub mod metadata;
mod options;

pub use admission::admit;
pub use metadata::{
    is_dns1123_label, is_dns1123_subdomain, name_of, new_uid, resource_version_of, timestamp,
};
pub use options::{DeleteOptions, FieldValidation, Preconditions, Subresource};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError, Result};
use crate::registry::ResourceDef;
use crate::store::Write;
use metadata::random_suffix;

pub(crate) fn invalid(def: &ResourceDef, name: &str, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        kind: def.qualified_kind(),
        name: name.to_owned(),
        causes,
    }
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
    match map.get("metadata") {
        None | Some(Value::Null) => {
            map.insert("metadata".into(), json!({}));
        }
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "metadata: must be an object, not {}",
                json_type_name(other)
            )));
        }
    }
    Ok(())
}

/// How JSON calls the type of `value`, for error messages.
fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The rule a name must follow for `def`, if `name` breaks it (`prefix`: a
/// `generateName`, which may end in a dash since a suffix follows).
fn name_rule_broken(def: &ResourceDef, name: &str, prefix: bool) -> Option<&'static str> {
    let checked = if prefix {
        name.trim_end_matches('-')
    } else {
        name
    };
    // Names are DNS subdomains, but a namespace's is a label (it appears in hosts).
    let (valid, rule) = if def.storage != crate::key::NAMESPACES {
        (
            is_dns1123_subdomain(checked),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )
    } else {
        (
            is_dns1123_label(checked),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        )
    };
    // A prefix of dashes only is fine: the random suffix makes the name.
    let acceptable = valid || (prefix && checked.is_empty());
    (!acceptable).then_some(rule)
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
    let mut causes = Vec::new();
    if let Some(prefix) = metadata["generateName"].as_str()
        && let Some(rule) = name_rule_broken(def, prefix, true)
    {
        causes.push(FieldError::invalid(
            "metadata.generateName",
            format!("Invalid value: {prefix:?}: {rule}"),
        ));
    }
    if metadata["name"].as_str().unwrap_or_default().is_empty() {
        match metadata["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => {
                metadata["name"] = format!("{prefix}{}", random_suffix()).into();
            }
            _ => causes.push(FieldError {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }),
        }
    }
    let name = metadata["name"].as_str().unwrap_or_default().to_owned();
    if !name.is_empty()
        && let Some(rule) = name_rule_broken(def, &name, false)
    {
        causes.push(FieldError::invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: {rule}"),
        ));
    }
    match metadata["resourceVersion"].as_str() {
        None | Some("" | "0") => {}
        Some(version) => causes.push(FieldError::invalid(
            "metadata.resourceVersion",
            format!("Invalid value: {version:?}: must not be set on objects to be created"),
        )),
    }
    if !causes.is_empty() {
        return Err(invalid(def, &name, causes));
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
    let incoming_name = incoming["metadata"]["name"].as_str().unwrap_or_default();
    if incoming_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({incoming_name}) does not match the name on the URL ({name})"
        )));
    }
    let requested_version = resource_version_of(&incoming);
    if !requested_version.is_empty() && requested_version.parse::<u64>().is_err() {
        return Err(invalid(
            def,
            &name,
            vec![FieldError::invalid(
                "metadata.resourceVersion",
                format!(
                    "Invalid value: {requested_version:?}: must be a resourceVersion this server returned"
                ),
            )],
        ));
    }
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
    // A uid in the request is a precondition too, as kube-apiserver's store makes it:
    // a write meant for an object must not land on a later one of the same name.
    if let Some(uid) = incoming["metadata"]["uid"].as_str()
        && !uid.is_empty()
        && Some(uid) != current["metadata"]["uid"].as_str()
    {
        return Err(ApiError::Conflict {
            resource: def.qualified_plural(),
            name: name.clone(),
            message: format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        });
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
pub(crate) mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::sync::Arc;

    pub(crate) fn barriers() -> Arc<ResourceDef> {
        Registry::standard()
            .find("konductor.io", "v1", "barriers")
            .unwrap()
            .clone()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap()
    }

    pub(crate) fn created() -> Value {
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
    fn a_uid_in_the_request_must_be_the_objects() {
        let current = created();
        let uid = current["metadata"]["uid"].as_str().unwrap().to_owned();
        let other =
            json!({"metadata": {"name": "b", "uid": "not-it"}, "status": {"phase": "Open"}});
        let err =
            prepare_update(&barriers(), &current, other, Subresource::Status, false).unwrap_err();
        assert!(matches!(err, ApiError::Conflict { .. }), "{err}");
        assert!(
            err.to_string().contains("Precondition failed: UID"),
            "{err}"
        );
        let same = json!({"metadata": {"name": "b", "uid": uid}, "status": {"phase": "Open"}});
        assert!(prepare_update(&barriers(), &current, same, Subresource::Status, false).is_ok());
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
}
