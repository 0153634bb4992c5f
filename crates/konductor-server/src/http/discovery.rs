//! API discovery documents, generated from the registry: what kubectl and kube-rs read
//! to learn which resources exist, their kinds, scopes, verbs and short names.
//!
//! Both forms kube-apiserver serves: the aggregated one (`apidiscovery.k8s.io/v2`, one
//! answer from `/api` or `/apis` describing every resource, what kubectl asks for
//! first), and the legacy one (`APIVersions`/`APIGroupList`, then one `APIResourceList`
//! per group-version).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
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

/// The media type of aggregated discovery documents.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client accepts aggregated discovery (`v2`; the older `v2beta1` is not
/// served, and a client asking only for it gets the legacy form, as it would accept).
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let parameters: Vec<&str> = media.split(';').map(str::trim).collect();
            parameters.contains(&"g=apidiscovery.k8s.io")
                && parameters.contains(&"v=v2")
                && parameters.contains(&"as=APIGroupDiscoveryList")
        })
}

/// A group's versions in registry order, each with its resources' discovery entries.
type VersionsOf<'a> = Vec<(&'a str, Vec<Value>)>;

/// The aggregated document of the core group (`core`) or of every named group.
fn aggregated(registry: &Registry, core: bool) -> Response {
    let mut groups: Vec<(&str, VersionsOf)> = Vec::new();
    for def in registry.all() {
        if def.group.is_empty() != core {
            continue;
        }
        let versions = match groups.iter_mut().find(|(g, _)| *g == def.group) {
            Some((_, versions)) => versions,
            None => {
                groups.push((&def.group, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        let resources = match versions.iter_mut().find(|(v, _)| *v == def.version) {
            Some((_, resources)) => resources,
            None => {
                versions.push((&def.version, Vec::new()));
                &mut versions.last_mut().expect("just pushed").1
            }
        };
        resources.push(aggregated_resource(def));
    }
    let mut items: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|(version, resources)| {
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    if !core {
        items.push(json!({
            "metadata": {"name": ACCESS_REVIEW_GROUP, "creationTimestamp": null},
            "versions": [{"version": ACCESS_REVIEW_VERSION, "freshness": "Current", "resources": [{
                "resource": "selfsubjectaccessreviews",
                "responseKind": {"group": ACCESS_REVIEW_GROUP, "version": ACCESS_REVIEW_VERSION, "kind": "SelfSubjectAccessReview"},
                "scope": "Cluster",
                "singularResource": "selfsubjectaccessreview",
                "verbs": ["create"],
            }]}],
        }));
    }
    let document = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    let mut response = Json(document).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    response
}

/// One resource of an aggregated discovery document, with its subresources.
fn aggregated_resource(def: &ResourceDef) -> Value {
    let subresources: Vec<Value> = subresources(def)
        .into_iter()
        .map(|(name, kind)| {
            json!({"subresource": name, "responseKind": kind, "verbs": SUBRESOURCE_VERBS})
        })
        .collect();
    let mut resource = with_names(
        json!({
            "resource": def.plural,
            "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
            "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": def.singular,
            "verbs": VERBS,
        }),
        def,
    );
    if !subresources.is_empty() {
        resource["subresources"] = json!(subresources);
    }
    resource
}

/// The verbs of every subresource served (`status`, `scale`).
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// The subresources of a resource, each with the group-version-kind it answers in: its
/// own kind for `status`, autoscaling/v1 Scale for `scale`.
fn subresources(def: &ResourceDef) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if def.status_subresource {
        out.push((
            "status",
            json!({"group": def.group, "version": def.version, "kind": def.kind}),
        ));
    }
    if def.scale.is_some() {
        out.push((
            "scale",
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        ));
    }
    out
}

/// A discovery entry with the resource's short names and categories, when it has any.
fn with_names(mut entry: Value, def: &ResourceDef) -> Value {
    if !def.short_names.is_empty() {
        entry["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        entry["categories"] = json!(def.categories);
    }
    entry
}

/// `GET /api`: the core group's versions (or, aggregated, its resources).
pub async fn core_versions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(&state.service.registry(), true);
    }
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }))
    .into_response()
}

/// `GET /apis`: every named group (or, aggregated, their resources).
pub async fn groups(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let registry = state.service.registry();
    if wants_aggregated(&headers) {
        return aggregated(&registry, false);
    }
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
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
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
    with_names(
        json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": VERBS,
        }),
        def,
    )
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
        for (name, kind) in subresources(def) {
            let mut entry = json!({
                "name": format!("{}/{name}", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": kind["kind"],
                "verbs": SUBRESOURCE_VERBS,
            });
            // A subresource answering in another group names it, as kube-apiserver does.
            if kind["group"] != def.group.as_str() {
                entry["group"] = kind["group"].clone();
                entry["version"] = kind["version"].clone();
            }
            resources.push(entry);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": defs[0].api_version(),
        "resources": resources,
    }))
}
