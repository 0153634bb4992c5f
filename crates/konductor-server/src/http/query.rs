//! Query parameters: decoded once (`form_urlencoded`), each checked the way
//! kube-apiserver checks it, so a malformed parameter is a 400 that names it instead of
//! being silently ignored or loosely read. Parameters the server does not know are
//! ignored, as Kubernetes does.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::{ApiError, Result};
use crate::registry::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::service::{ListOptions, VersionMatch};

/// A request's query parameters.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

fn bad(parameter: &str, value: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("{parameter}: Invalid value: {value:?}: {why}"))
}

impl Query {
    /// Decodes a query string (`a=b&c=d`, percent- and plus-encoded).
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// A parameter's raw value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A boolean parameter (`true`/`false`, `1`/`0`; absent or empty is false).
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(bad(name, other, "must be true or false")),
        }
    }

    /// A non-negative integer parameter.
    pub fn count(&self, name: &str) -> Result<Option<u64>> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| bad(name, text, "must be a non-negative integer")),
        }
    }

    /// `resourceVersion`: absent, or a version this server could have written.
    pub fn resource_version(&self) -> Result<Option<u64>> {
        self.count("resourceVersion")
    }

    /// Whether this GET is a watch.
    pub fn is_watch(&self) -> Result<bool> {
        self.flag("watch")
    }

    /// `timeoutSeconds` of a watch.
    pub fn timeout(&self) -> Result<Option<Duration>> {
        Ok(self.count("timeoutSeconds")?.map(Duration::from_secs))
    }

    /// The options of a list (or of a watch's selection) of `def`.
    pub fn list_options(&self, def: &ResourceDef) -> Result<ListOptions> {
        let resource_version = self.resource_version()?;
        let version_match = match self.get("resourceVersionMatch") {
            None | Some("") => None,
            Some(_) if resource_version.is_none() => {
                return Err(ApiError::BadRequest(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                ));
            }
            Some("NotOlderThan") => Some(VersionMatch::NotOlderThan),
            Some("Exact") => Some(VersionMatch::Exact),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        };
        if version_match == Some(VersionMatch::Exact) && resource_version == Some(0) {
            return Err(ApiError::BadRequest(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"".into(),
            ));
        }
        Ok(ListOptions {
            labels: LabelSelector::parse(self.get("labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(
                self.get("fieldSelector").unwrap_or_default(),
                &def.field_labels,
            )?,
            limit: self
                .count("limit")?
                .filter(|l| *l > 0)
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            continue_token: self
                .get("continue")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            resource_version,
            version_match,
        })
    }

    /// Refuses parameters a watch cannot honour on this server.
    pub fn check_watch(&self) -> Result<()> {
        if self
            .get("resourceVersionMatch")
            .is_some_and(|m| !m.is_empty())
        {
            return Err(ApiError::BadRequest(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch"
                    .into(),
            ));
        }
        if self.flag("sendInitialEvents")? {
            return Err(ApiError::BadRequest(
                "sendInitialEvents: Forbidden: this server does not support streaming lists; list, then watch from the list's resourceVersion".into(),
            ));
        }
        self.flag("allowWatchBookmarks")?;
        self.timeout()?;
        Ok(())
    }

    /// Checks the parameters every write takes that are not read elsewhere.
    pub fn check_write(&self) -> Result<()> {
        if let Some(manager) = self.get("fieldManager")
            && manager.len() > 128
        {
            return Err(bad(
                "fieldManager",
                manager,
                "must be no more than 128 characters",
            ));
        }
        self.flag("pretty")?;
        Ok(())
    }

    /// Checks a delete's extra parameters.
    pub fn check_delete(&self) -> Result<()> {
        self.count("gracePeriodSeconds")?;
        self.flag("orphanDependents")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn barriers() -> std::sync::Arc<ResourceDef> {
        Registry::standard()
            .find("konductor.io", "v1", "barriers")
            .unwrap()
            .clone()
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let q = Query::parse(Some(
            "labelSelector=konductor.io%2Fbarrier%3Db1&limit=5&x&y=a+b",
        ));
        assert_eq!(q.get("labelSelector"), Some("konductor.io/barrier=b1"));
        assert_eq!(q.get("limit"), Some("5"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("y"), Some("a b"));
    }

    #[test]
    fn malformed_parameters_are_bad_requests_naming_them() {
        let def = barriers();
        for (query, names) in [
            ("resourceVersion=abc", "resourceVersion"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("resourceVersionMatch=Exact", "resourceVersionMatch"),
            (
                "resourceVersion=5&resourceVersionMatch=Sometimes",
                "resourceVersionMatch",
            ),
            (
                "fieldSelector=spec.expected%3D1",
                "field label not supported",
            ),
            ("labelSelector=%3D%3D%3D", "labelSelector"),
        ] {
            let error = Query::parse(Some(query)).list_options(&def).unwrap_err();
            assert!(error.to_string().contains(names), "{query}: {error}");
        }
        for (query, names) in [
            ("timeoutSeconds=abc", "timeoutSeconds"),
            ("allowWatchBookmarks=maybe", "allowWatchBookmarks"),
            ("resourceVersionMatch=NotOlderThan", "resourceVersionMatch"),
            ("sendInitialEvents=true", "sendInitialEvents"),
        ] {
            let error = Query::parse(Some(query)).check_watch().unwrap_err();
            assert!(error.to_string().contains(names), "{query}: {error}");
        }
        let error = Query::parse(Some("watch=yes")).is_watch().unwrap_err();
        assert!(error.to_string().contains("watch"), "{error}");
    }

    #[test]
    fn well_formed_parameters_pass() {
        let options = Query::parse(Some(
            "resourceVersion=7&resourceVersionMatch=NotOlderThan&limit=2&fieldSelector=metadata.name%3Db",
        ))
        .list_options(&barriers())
        .unwrap();
        assert_eq!(options.resource_version, Some(7));
        assert_eq!(options.limit, Some(2));
        assert!(Query::parse(Some("watch=1")).is_watch().unwrap());
        assert!(
            Query::parse(Some("timeoutSeconds=30&allowWatchBookmarks=true"))
                .check_watch()
                .is_ok()
        );
    }
}
