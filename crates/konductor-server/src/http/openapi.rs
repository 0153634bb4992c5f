//! OpenAPI v3 documents, generated from the registry and the CRD schemas: what
//! `kubectl apply` reads to learn that the server validates fields itself (the
//! `fieldValidation` parameter on write operations), and what `kubectl explain` reads
//! to describe fields.
//!
//! - `GET /openapi/v3`: the index, one entry per group-version.
//! - `GET /openapi/v3/api/v1`, `GET /openapi/v3/apis/{group}/{version}`: one document.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceDef};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The document key of a group-version: `api/v1` or `apis/{group}/{version}`.
fn key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The component name of a kind: reversed group, version, kind
/// (`io.konductor.v1.Barrier`, `io.k8s.api.core.v1.Event` for the core group).
fn schema_name(def: &ResourceDef, kind: &str) -> String {
    let group = if def.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        def.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{kind}", def.version)
}

/// A stable hash of a document, for the index's cache-busting `hash` parameter.
fn hash(document: &Value) -> String {
    let text = document.to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016X}")
}

/// `GET /openapi/v3`.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, version) in registry.group_versions() {
        let key = key(group, version);
        let document = document(registry, group, version).unwrap_or(Value::Null);
        paths.insert(
            key.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&document)) }),
        );
    }
    json!({ "paths": paths })
}

fn gvk(def: &ResourceDef, kind: &str) -> Value {
    json!([{ "group": def.group, "version": def.version, "kind": kind }])
}

/// The schema of one resource's objects: the CRD schema with `apiVersion`, `kind` and
/// `metadata` added, or an open object for built-in types.
fn object_schema(def: &ResourceDef) -> Value {
    let mut schema = match &def.schema {
        Some(schema) => schema.openapi().clone(),
        None => json!({
            "type": "object",
            "description": format!("{} (served by konductor server; fields are not described here).", def.kind),
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    };
    let properties = schema
        .as_object_mut()
        .expect("schemas are objects")
        .entry("properties")
        .or_insert_with(|| json!({}));
    properties["apiVersion"] = json!({
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    });
    properties["kind"] = json!({
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents.",
    });
    properties["metadata"] = json!({
        "allOf": [{ "$ref": format!("#/components/schemas/{OBJECT_META}") }],
        "default": {},
        "description": "Standard object's metadata.",
    });
    schema["x-kubernetes-group-version-kind"] = gvk(def, &def.kind);
    schema
}

fn list_schema(def: &ResourceDef) -> Value {
    json!({
        "type": "object",
        "description": format!("{} is a list of {}.", def.list_kind(), def.kind),
        "required": ["items"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "items": {
                "type": "array",
                "items": { "$ref": format!("#/components/schemas/{}", schema_name(def, &def.kind)) },
            },
            "metadata": { "allOf": [{ "$ref": format!("#/components/schemas/{LIST_META}") }] },
        },
        "x-kubernetes-group-version-kind": gvk(def, &def.list_kind()),
    })
}

fn parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// The path parameters of `path` (`{namespace}`, `{name}`), declared on its path item as
/// kube-apiserver declares them: OpenAPI tools refuse a path whose template names a
/// parameter no operation declares.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = match name {
                "namespace" => "object name and auth scope, such as for teams and projects",
                _ => "name of the object",
            };
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": description,
                "schema": { "type": "string", "uniqueItems": true },
            })
        })
        .collect()
}

/// The operations of the path `path`, each tagged with the resource's
/// group-version-kind; `suffix` keeps operation ids unique within the document (a
/// status path's `get` is not the object's).
fn operations(
    def: &ResourceDef,
    path: &str,
    verbs: &[(&str, &str)],
    write_parameters: &[Value],
    suffix: &str,
) -> Value {
    let reference =
        json!({ "$ref": format!("#/components/schemas/{}", schema_name(def, &def.kind)) });
    let mut item = Map::new();
    item.insert("parameters".to_owned(), Value::Array(path_parameters(path)));
    for (method, action) in verbs {
        let mut operation = json!({
            "operationId": format!("{action}{}{suffix}", def.kind),
            "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": reference } } } },
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": { "group": def.group, "version": def.version, "kind": def.kind },
        });
        if matches!(*method, "post" | "put" | "patch") {
            operation["parameters"] = Value::Array(write_parameters.to_vec());
            operation["requestBody"] =
                json!({ "content": { "application/json": { "schema": reference } } });
        }
        item.insert((*method).to_owned(), operation);
    }
    Value::Object(item)
}

/// The OpenAPI v3 document of one group-version, or `None` if it is not served.
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let write_parameters = [
        parameter(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        parameter(
            "fieldManager",
            "A name associated with the actor or entity that is making these changes.",
        ),
        parameter(
            "fieldValidation",
            "How the server treats unknown fields: Ignore, Warn (default) or Strict.",
        ),
    ];
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        OBJECT_META.to_owned(),
        json!({
            "type": "object",
            "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
            "properties": {
                "name": { "type": "string", "description": "Name must be unique within a namespace." },
                "namespace": { "type": "string", "description": "Namespace defines the space within which each name must be unique." },
                "labels": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Map of string keys and values that can be used to organize and categorize objects." },
                "annotations": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Annotations is an unstructured key value map stored with a resource." },
                "generateName": { "type": "string", "description": "A prefix used by the server to generate a unique name." },
                "uid": { "type": "string", "description": "UID is the unique in time and space value for this object." },
                "resourceVersion": { "type": "string", "description": "An opaque value that represents the internal version of this object." },
                "generation": { "type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state." },
                "creationTimestamp": { "type": "string", "format": "date-time", "description": "The time this object was created." },
                "finalizers": { "type": "array", "items": { "type": "string" }, "description": "Must be empty before the object is deleted from the registry." },
                "ownerReferences": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }, "description": "List of objects depended by this object." },
            },
        }),
    );
    schemas.insert(
        LIST_META.to_owned(),
        json!({
            "type": "object",
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "properties": {
                "resourceVersion": { "type": "string" },
                "continue": { "type": "string" },
            },
        }),
    );
    for def in &defs {
        let base = format!("/{}", key(&def.group, &def.version));
        let (collection, object) = if def.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", def.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural),
            )
        } else {
            (
                format!("{base}/{}", def.plural),
                format!("{base}/{}/{{name}}", def.plural),
            )
        };
        let listing = operations(
            def,
            &collection,
            &[
                ("get", "list"),
                ("post", "post"),
                ("delete", "deletecollection"),
            ],
            &write_parameters,
            "",
        );
        paths.insert(collection, listing);
        let one = operations(
            def,
            &object,
            &[
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            ],
            &write_parameters,
            "",
        );
        paths.insert(object.clone(), one);
        if def.status_subresource {
            let status = format!("{object}/status");
            let operations = operations(
                def,
                &status,
                &[("get", "get"), ("put", "put"), ("patch", "patch")],
                &write_parameters,
                "Status",
            );
            paths.insert(status, operations);
        }
        schemas.insert(schema_name(def, &def.kind), object_schema(def));
        schemas.insert(schema_name(def, &def.list_kind()), list_schema(def));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{}.0", super::discovery::KUBERNETES_MINOR) },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_points_at_every_group_version() {
        let index = index(&Registry::standard());
        let url = index["paths"]["apis/konductor.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("/openapi/v3/apis/konductor.io/v1?hash="),
            "{url}"
        );
        assert!(index["paths"]["api/v1"].is_object());
    }

    #[test]
    fn write_operations_declare_field_validation_and_schemas_carry_their_kind() {
        let doc = document(&Registry::standard(), "konductor.io", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/konductor.io/v1/namespaces/{namespace}/barriers/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Barrier");
        let barrier = &doc["components"]["schemas"]["io.konductor.v1.Barrier"];
        assert_eq!(
            barrier["x-kubernetes-group-version-kind"][0]["kind"],
            "Barrier"
        );
        assert!(barrier["properties"]["spec"]["properties"]["expected"]["description"].is_string());
        assert!(document(&Registry::standard(), "nope", "v1").is_none());
    }

    #[test]
    fn every_path_declares_its_parameters_and_every_operation_id_is_unique() {
        let registry = Registry::standard();
        for (group, version) in registry.group_versions() {
            let doc = document(&registry, group, version).unwrap();
            let mut ids = std::collections::HashSet::new();
            for (path, item) in doc["paths"].as_object().unwrap() {
                let declared: Vec<&str> = item["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let templated: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, templated, "{path}");
                for (method, operation) in item.as_object().unwrap() {
                    if method == "parameters" {
                        continue;
                    }
                    let id = operation["operationId"].as_str().unwrap();
                    assert!(ids.insert(id.to_owned()), "{group}/{version}: {id} twice");
                }
            }
            assert!(!ids.is_empty());
        }
    }
}
