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

/// The value at a simple JSONPath (`.spec.expected`, `.metadata.creationTimestamp`).
fn at_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |value, key| value.get(key))
}

/// The value a column shows for an object.
fn cell(column: &Column, object: &Value, now: Timestamp) -> Value {
    match &column.source {
        CellSource::Path(path) => format_cell(&column.type_, at_path(object, path), now),
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

/// Formats a raw value for its column type: `date` becomes an age like `5m`.
fn format_cell(column_type: &str, value: Option<&Value>, now: Timestamp) -> Value {
    match (column_type, value) {
        (_, None | Some(Value::Null)) => Value::Null,
        ("date", Some(Value::String(text))) => match text.parse::<Timestamp>() {
            Ok(then) => {
                let age = Duration::try_from(now.duration_since(then)).unwrap_or_default();
                Value::String(konductor_api::duration::human_duration(age))
            }
            Err(_) => Value::String(text.clone()),
        },
        (_, Some(value)) => value.clone(),
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
