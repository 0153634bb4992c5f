//! What a request asks of a write beyond its body: which subresource, how unknown
//! fields are treated, and the options of a delete.

use serde::Deserialize;

use crate::error::{ApiError, Result};

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
