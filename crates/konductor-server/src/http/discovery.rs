//! API discovery documents, generated from the registry: what kubectl and kube-rs read
//! to learn which resources exist, their kinds, scopes, verbs and short names.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::registry::{Registry, ResourceDef};

/// The Kubernetes version this server reports: the API conventions it follows.
pub const KUBERNETES_MINOR: &str = "32";

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-konductor.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// `GET /api`: the core group's versions.
pub async fn core_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }))
}

/// `GET /apis`: every named group.
pub async fn groups(State(state): State<AppState>) -> Json<Value> {
    let registry = state.service.registry();
    // One entry per group, listing its versions (the first served is preferred).
    let mut by_group: Vec<(&str, Vec<Value>)> = Vec::new();
    for (group, version) in registry
        .group_versions()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .chain([(ACCESS_REVIEW_GROUP, ACCESS_REVIEW_VERSION)])
    {
        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
        match by_group.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(gv),
            None => by_group.push((group, vec![gv])),
        }
    }
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(group, versions)| {
            json!({"name": group, "preferredVersion": versions[0].clone(), "versions": versions})
        })
        .collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// The verbs every resource supports.
const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_entry(def: &ResourceDef) -> Value {
    let mut entry = json!({
        "name": def.plural,
        "singularName": def.singular,
        "namespaced": def.namespaced,
        "kind": def.kind,
        "verbs": VERBS,
    });
    if !def.short_names.is_empty() {
        entry["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        entry["categories"] = json!(def.categories);
    }
    entry
}

/// The group of SelfSubjectAccessReview (`kubectl auth can-i`).
pub const ACCESS_REVIEW_GROUP: &str = "authorization.k8s.io";
/// Its version.
pub const ACCESS_REVIEW_VERSION: &str = "v1";

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth
/// can-i`): the server has one token with full access, so whoever can ask may. The
/// review comes back with its status, in JSON whatever it was sent in (kubectl sends
/// protobuf, and reads JSON).
pub async fn access_review(body: axum::body::Bytes) -> Json<Value> {
    let mut review = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    review["apiVersion"] = json!(format!("{ACCESS_REVIEW_GROUP}/{ACCESS_REVIEW_VERSION}"));
    review["kind"] = json!("SelfSubjectAccessReview");
    review["status"] = json!({
        "allowed": true,
        "reason": "konductor server has one bearer token, and it may do everything",
    });
    Json(review)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: the resources of one group-version,
/// or `None` when the server does not serve it.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    if (group, version) == (ACCESS_REVIEW_GROUP, ACCESS_REVIEW_VERSION) {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{ACCESS_REVIEW_GROUP}/{ACCESS_REVIEW_VERSION}"),
            "resources": [{
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": false,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }],
        }));
    }
    let defs = registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for def in &defs {
        resources.push(resource_entry(def));
        if def.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if def.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": defs[0].api_version(),
        "resources": resources,
    }))
}
