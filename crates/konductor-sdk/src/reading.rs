//! Reading any kind's objects for people, as kubectl shows them: the stored JSON as it
//! is (every digit of every timestamp: a typed object keeps whole seconds of
//! `creationTimestamp`), and the API server's Table — the CRD's printer columns,
//! filled by the server — for `list`. One path for every kind.

use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;

use crate::connect::Connection;
use crate::error::{Error, Request, Result};

/// A kind as its objects are read: its word and plural for messages, and its API
/// resource.
#[derive(Clone, Debug)]
pub struct KindRef {
    /// As messages name it (`once`, `mutex`).
    pub word: &'static str,
    /// Its plural (`onces`, `mutexes`).
    pub plural: &'static str,
    /// Its API resource (group, version, plural).
    pub resource: ApiResource,
}

impl KindRef {
    /// The kind of `K`, named `word` (plural `plural`) in messages.
    pub fn of<K: kube::Resource<DynamicType = ()>>(
        word: &'static str,
        plural: &'static str,
    ) -> Self {
        Self {
            word,
            plural,
            resource: ApiResource::erase::<K>(&()),
        }
    }
}

/// A table as `kubectl get` prints it: the header (upper-cased column names, `NAMESPACE`
/// first across namespaces) and a row of cells per object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Column names.
    pub header: Vec<String>,
    /// One row per object.
    pub rows: Vec<Vec<String>>,
}

/// Reads objects of any kind in the connection's namespace.
#[derive(Clone)]
pub struct Reader {
    connection: Connection,
}

/// What `kubectl get` asks for: a Table, else the plain list.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

impl Reader {
    /// A reader for the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            connection: connection.clone(),
        }
    }

    fn api(&self, kind: &KindRef, all_namespaces: bool) -> Api<DynamicObject> {
        let client = self.connection.client.clone();
        if all_namespaces {
            Api::all_with(client, &kind.resource)
        } else {
            Api::namespaced_with(client, &self.connection.namespace, &kind.resource)
        }
    }

    fn request<'a>(&'a self, kind: &KindRef, name: &'a str, verb: &'static str) -> Request<'a> {
        Request {
            kind: kind.word,
            namespace: &self.connection.namespace,
            name,
            verb,
            resource: kind.plural,
            url: &self.connection.url,
        }
    }

    async fn fetch(&self, kind: &KindRef, name: &str, path: &str, accept: &str) -> Result<Value> {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())
            .expect("a valid request");
        let text = match self.connection.client.request_text(request).await {
            Ok(text) => text,
            Err(e) => {
                let error = self.request(kind, name, "get").error(e);
                return Err(crate::error::explain_not_found(&self.connection.client, error).await);
            }
        };
        serde_json::from_str(&text).map_err(|e| Error::Api {
            kind: kind.word,
            namespace: self.connection.namespace.clone(),
            name: name.to_owned(),
            message: format!("the API server sent something that is not JSON: {e}"),
        })
    }

    /// The object `name` as the API server stores it. [`Error::NotFound`] if absent.
    pub async fn get_raw(&self, kind: &KindRef, name: &str) -> Result<Value> {
        let path = format!("{}/{name}", self.api(kind, false).resource_url());
        self.fetch(kind, name, &path, "application/json").await
    }

    /// The objects of the namespace (or of all namespaces) as the API server stores
    /// them: its list, JSON for JSON.
    pub async fn list_raw(&self, kind: &KindRef, all_namespaces: bool) -> Result<Value> {
        let path = self.api(kind, all_namespaces).resource_url().to_owned();
        self.fetch(kind, "*", &path, "application/json").await
    }

    /// The object `name` as `kubectl get KIND NAME` shows it (a one-row table).
    pub async fn table_of(&self, kind: &KindRef, name: &str, wide: bool) -> Result<Listing> {
        let path = format!("{}/{name}", self.api(kind, false).resource_url());
        let table = self.fetch(kind, name, &path, TABLE).await?;
        Ok(listing(&table, false, wide))
    }

    /// The objects as `kubectl get` shows them (with `-o wide`: `wide`): the server's
    /// Table, its printer columns and cells as it filled them.
    pub async fn table(&self, kind: &KindRef, all_namespaces: bool, wide: bool) -> Result<Listing> {
        let path = self.api(kind, all_namespaces).resource_url().to_owned();
        let table = self.fetch(kind, "*", &path, TABLE).await?;
        Ok(listing(&table, all_namespaces, wide))
    }
}

/// A server Table as kubectl prints it: columns of priority 0 (all with `wide`),
/// names upper-cased, `NAMESPACE` first across namespaces, cells as text (an empty
/// cell for a null, as kubectl prints one).
pub fn listing(table: &Value, all_namespaces: bool, wide: bool) -> Listing {
    let columns: Vec<(usize, String)> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, c)| (i, c["name"].as_str().unwrap_or_default().to_uppercase()))
        .collect();
    let mut header: Vec<String> = columns.iter().map(|(_, name)| name.clone()).collect();
    if all_namespaces {
        header.insert(0, "NAMESPACE".to_owned());
    }
    let rows = table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let mut cells: Vec<String> = columns
                .iter()
                .map(|(i, _)| cell_text(&row["cells"][*i]))
                .collect();
            if all_namespaces {
                let namespace = row["object"]["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default();
                cells.insert(0, namespace.to_owned());
            }
            cells
        })
        .collect();
    Listing { header, rows }
}

/// A cell as kubectl prints it.
fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_prints_as_kubectl_prints_it() {
        let table = json!({
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Quorum", "priority": 0},
                {"name": "Timeout", "priority": 1},
                {"name": "Ready", "priority": 0}
            ],
            "rows": [{
                "cells": ["b", null, "30m", true],
                "object": {"metadata": {"namespace": "ci"}}
            }]
        });
        assert_eq!(
            listing(&table, false, false),
            Listing {
                header: vec!["NAME".into(), "QUORUM".into(), "READY".into()],
                rows: vec![vec!["b".into(), String::new(), "true".into()]],
            }
        );
        let wide = listing(&table, true, true);
        assert_eq!(wide.header[0], "NAMESPACE");
        assert_eq!(wide.rows[0], ["ci", "b", "", "30m", "true"]);
    }
}
