//! `meta.k8s.io/v1 Table` responses, built from a resource's printer columns, for
//! `kubectl get` (which asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! Like the real API server for custom resources: a `Name` column first, then each
//! printer column's value at its JSONPath (`date` columns as an age like `5m`), and
//! each row carries the object's metadata so `--show-labels` works.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::registry::{CellSource, Column, ResourceDef};

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    matches!(Representation::of(accept), Representation::Table(_))
}

/// What each Table row carries besides its cells (`?includeObject=`), as on
/// kube-apiserver: nothing, the object's metadata (the default), or the whole object
/// (what `kubectl get --sort-by=.status.arrived` asks for, to sort by a field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// PartialObjectMetadata.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter; absent means `Metadata`.
    pub fn parse(value: Option<&str>) -> crate::error::Result<Self> {
        match value {
            None | Some("") | Some("Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(crate::error::ApiError::BadRequest(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// The shape a client asked for with the first media type of its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table (`kubectl get`), its rows carrying what `IncludeObject`
    /// says.
    Table(IncludeObject),
    /// `meta.k8s.io/v1` PartialObjectMetadata: metadata only.
    Metadata,
}

impl Representation {
    /// Reads an `Accept` header.
    pub fn of(accept: &str) -> Self {
        let first = accept.split(',').next().unwrap_or_default();
        if !first.contains("g=meta.k8s.io") {
            Self::Object
        } else if first.contains("as=Table") {
            Self::Table(IncludeObject::default())
        } else if first.contains("as=PartialObjectMetadata") {
            Self::Metadata
        } else {
            Self::Object
        }
    }
}

/// The value at a simple JSONPath (`.lastTimestamp`, for the computed columns).
fn at_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |value, key| value.get(key))
}

/// The value a column shows for an object.
fn cell(column: &Column, object: &Value, now: Timestamp) -> Value {
    match &column.source {
        // As kube-apiserver fills a custom resource's columns: the first value the path
        // selects (not all of them, as kubectl's custom-columns joins), formatted by
        // the column's type; nothing selected, or a value of another type, is null.
        CellSource::Path(path) => {
            let first = path
                .as_ref()
                .and_then(|p| p.select(object).into_iter().next());
            format_cell(&column.type_, first, now)
        }
        CellSource::EventLastSeen => {
            let last = [".lastTimestamp", ".series.lastObservedTime", ".eventTime"]
                .iter()
                .find_map(|p| at_path(object, p).filter(|v| v.is_string()));
            format_cell("date", last, now)
        }
        CellSource::EventObject => {
            let involved = &object["involvedObject"];
            let kind = involved["kind"].as_str().unwrap_or_default().to_lowercase();
            let name = involved["name"].as_str().unwrap_or_default();
            Value::String(format!("{kind}/{name}"))
        }
    }
}

/// Formats a value for its column type as kube-apiserver's table convertor does: a
/// `string` column prints any value (objects and lists as JSON); `integer`, `number`
/// and `boolean` columns take only values of their type (a float is truncated for
/// `integer`); a `date` column shows an age like `5m` (`<invalid>` for a string that
/// is no timestamp). Anything else is null.
fn format_cell(column_type: &str, value: Option<&Value>, now: Timestamp) -> Value {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match (column_type, value) {
        ("string", Value::String(_)) => value.clone(),
        ("string", other) => Value::String(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                // Go's int64(float64) truncates toward zero.
                #[allow(clippy::cast_possible_truncation)]
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(_)) => value.clone(),
        ("date", Value::String(text)) => match text.parse::<Timestamp>() {
            Ok(then) => {
                let age = Duration::try_from(now.duration_since(then)).unwrap_or_default();
                Value::String(konductor_api::duration::human_duration(age))
            }
            Err(_) => Value::String("<invalid>".to_owned()),
        },
        _ => Value::Null,
    }
}

fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    let mut columns = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": def.name_priority,
    })];
    columns.extend(def.columns.iter().map(|c| {
        json!({
            "name": c.name,
            "type": c.type_,
            "format": "",
            "description": c.description,
            "priority": c.priority,
        })
    }));
    columns
}

fn row(def: &ResourceDef, object: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut cells = vec![object["metadata"]["name"].clone()];
    cells.extend(def.columns.iter().map(|c| cell(c, object, now)));
    let mut row = json!({ "cells": cells });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = crate::views::partial_metadata(object),
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// A Table of `objects` (a list's items), with the list's metadata.
pub fn of_list(def: &ResourceDef, list: &Value, include: IncludeObject) -> Value {
    let now = Timestamp::now();
    let rows: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| row(def, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list["metadata"],
        "columnDefinitions": column_definitions(def),
        "rows": rows,
    })
}

/// A Table of one object.
pub fn of_object(def: &ResourceDef, object: &Value, include: IncludeObject) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": object["metadata"]["resourceVersion"] },
        "columnDefinitions": column_definitions(def),
        "rows": [row(def, object, include, Timestamp::now())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn barrier_tables_follow_the_printer_columns() {
        let registry = Registry::standard();
        let def = registry.find("konductor.io", "v1", "barriers").unwrap();
        let created = Timestamp::now() - jiff::SignedDuration::from_secs(330);
        let list = json!({"metadata": {"resourceVersion": "9"}, "items": [{
            "metadata": {"name": "b", "creationTimestamp": created.to_string(), "labels": {"x": "y"}},
            "spec": {"expected": 5},
            "status": {"arrived": 3, "phase": "Waiting"},
        }]});
        let table = of_list(def, &list, IncludeObject::Metadata);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name", "Expected", "Quorum", "Arrived", "Phase", "Timeout", "Failed", "Age"
            ]
        );
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["b", 5, null, 3, "Waiting", null, null, "5m30s"])
        );
        assert_eq!(table["rows"][0]["object"]["metadata"]["labels"]["x"], "y");
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["metadata"]["resourceVersion"], "9");
        let whole = of_list(def, &list, IncludeObject::Object);
        assert_eq!(whole["rows"][0]["object"]["status"]["arrived"], 3);
        let bare = of_list(def, &list, IncludeObject::None);
        assert!(bare["rows"][0].get("object").is_none());
    }

    /// A column as a CRD's `additionalPrinterColumns` gives it.
    fn printer_column(name: &str, type_: &str, json_path: &str) -> Column {
        Column {
            name: name.into(),
            type_: type_.into(),
            source: CellSource::path(json_path),
            priority: 0,
            description: String::new(),
        }
    }

    /// Columns shaped like common operators' CRDs (cert-manager, Flux, Knative, Argo,
    /// Prometheus), filled as kube-apiserver fills them: the first match, null when
    /// nothing matches or the value has another type, typed cells.
    #[test]
    fn printer_columns_are_filled_as_kube_apiserver_fills_them() {
        let mut def = ResourceDef::clone(
            Registry::standard()
                .find("konductor.io", "v1", "barriers")
                .unwrap(),
        );
        def.columns = vec![
            printer_column(
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
            ),
            printer_column(
                "Reason",
                "string",
                ".status.conditions[?(@.type=='Ready')].reason",
            ),
            printer_column(
                "Synced",
                "string",
                r#".status.conditions[?(@.type=="Synced")].status"#,
            ),
            printer_column("First", "string", ".status.conditions[*].type"),
            printer_column("Any type", "string", "..type"),
            printer_column("Replicas", "integer", ".spec.replicas"),
            printer_column("Ratio", "integer", ".status.ratio"),
            printer_column("Ratio#", "number", ".status.ratio"),
            printer_column("Paused", "boolean", ".spec.paused"),
            printer_column("Paused?", "boolean", ".spec.pausedText"),
            printer_column("Selector", "string", ".spec.selector"),
            printer_column("Count", "string", ".spec.replicas"),
            printer_column("Renewal", "date", ".status.renewalTime"),
            printer_column("Bad date", "date", ".status.url"),
            printer_column("URL", "string", ".status.url"),
            printer_column("Missing", "string", ".status.nothing[0].here"),
            printer_column("Null", "string", ".status.none"),
        ];
        let renewal = Timestamp::now() - jiff::SignedDuration::from_secs(7200);
        let object = json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3, "paused": false, "pausedText": "false",
                "selector": {"matchLabels": {"app": "web"}}
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Deployed"},
                    {"type": "Progressing", "status": "False"}
                ],
                "ratio": 2.75,
                "renewalTime": renewal.to_string(),
                "url": "http://web.default.example.com",
                "none": null
            }
        });
        let table = of_object(&def, &object, IncludeObject::None);
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "web",
                "True",
                "Deployed",
                null,
                "Ready",
                "Ready",
                3,
                2,
                2.75,
                false,
                null,
                r#"{"matchLabels":{"app":"web"}}"#,
                "3",
                "120m",
                "<invalid>",
                "http://web.default.example.com",
                null,
                null
            ])
        );
    }

    #[test]
    fn event_tables_show_when_and_what() {
        let registry = Registry::standard();
        let def = registry.find("", "v1", "events").unwrap();
        let seen = Timestamp::now() - jiff::SignedDuration::from_secs(42);
        let event = json!({
            "metadata": {"name": "b.1"},
            "eventTime": seen.to_string(),
            "involvedObject": {"kind": "Barrier", "name": "b"},
            "type": "Normal", "reason": "Opened", "message": "open",
        });
        let table = of_object(def, &event, IncludeObject::Metadata);
        assert_eq!(table["rows"][0]["cells"][1], "42s");
        assert_eq!(table["rows"][0]["cells"][4], "barrier/b");
        assert_eq!(
            table["columnDefinitions"][0]["priority"], 1,
            "names only with -o wide"
        );
    }

    #[test]
    fn only_table_accept_headers_get_tables() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
