//! Resource paths: parsing `/api/v1/...` and `/apis/{group}/{version}/...` into a
//! target, and dispatching each method to the service.
//!
//! ```text
//! /apis/{g}/{v}/{plural}                                   list, watch, deletecollection (all namespaces)
//! /apis/{g}/{v}/namespaces/{ns}/{plural}                   list, watch, create, deletecollection
//! /apis/{g}/{v}/namespaces/{ns}/{plural}/{name}            get, update, patch, delete
//! /apis/{g}/{v}/namespaces/{ns}/{plural}/{name}/status     get, update, patch
//! /api/v1/namespaces/{name}[/status]                       the cluster-scoped Namespace itself
//! ```

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::query::Query;
use super::{AppState, MAX_BODY_BYTES, discovery, json_response};
use crate::error::{ApiError, FieldError, Result};
use crate::objects::{DeleteOptions, FieldValidation, Subresource};
use crate::patch::PatchType;
use crate::registry::ResourceDef;
use crate::service::{ScaleChange, Service};
use crate::table::{IncludeObject, Representation};

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `/api/v1` or `/apis/{group}/{version}`: discovery of one group-version.
    GroupVersion { group: String, version: String },
    /// A collection or an object of one resource.
    Resource {
        group: String,
        version: String,
        plural: String,
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<String>,
    },
}

/// Parses a request path into a [`Target`], or `None` when nothing is served there.
fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (group, version, rest) = match segments.first().map(String::as_str) {
        Some("api") if segments.len() >= 2 => (String::new(), segments[1].clone(), &segments[2..]),
        Some("apis") if segments.len() >= 3 => {
            (segments[1].clone(), segments[2].clone(), &segments[3..])
        }
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Target::GroupVersion { group, version });
    }
    let namespaced_path = rest[0] == "namespaces"
        && rest.len() >= 3
        && !matches!(rest[2].as_str(), "status" | "finalize");
    // A namespace segment that decodes to no namespace name (`..%2F..%2F`) addresses
    // nothing: 404, as kube-apiserver answers, rather than an empty list.
    if namespaced_path && !konductor_api::names::is_dns1123_label(&rest[1]) {
        return None;
    }
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Target::Resource {
        group,
        version,
        plural: rest[0].clone(),
        namespace,
        name: rest.get(1).cloned(),
        subresource: rest.get(2).cloned(),
    })
}

/// The fallback handler: every resource and discovery path.
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// How much of an oversize body is read (and dropped) before the 413 is sent, so the
/// client, still sending, reads the answer instead of a connection reset.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the request body, refusing more than [`MAX_BODY_BYTES`] with 413 — answered
/// once the client has finished sending (up to [`DRAIN_LIMIT`]), so it can read it.
async fn read_body(request: Request) -> Result<Bytes> {
    use futures::StreamExt;
    let mut chunks = request.into_body().into_data_stream();
    let mut body = bytes::BytesMut::new();
    let mut received = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        received += chunk.len();
        if received > DRAIN_LIMIT {
            break;
        }
        if received <= MAX_BODY_BYTES {
            body.extend_from_slice(&chunk);
        }
    }
    if received > MAX_BODY_BYTES {
        return Err(ApiError::RequestEntityTooLarge(MAX_BODY_BYTES));
    }
    Ok(body.freeze())
}

/// Decodes a create or update body by its media type: JSON, YAML, or kubectl's
/// protobuf (a Namespace). Anything else is 415, as on a real API server.
pub fn decode_body(content_type: &str, body: &[u8]) -> Result<Value> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type == crate::protobuf::MEDIA_TYPE {
        return crate::protobuf::decode(body);
    }
    let yaml = match media_type.as_str() {
        // A client that names no type is read as JSON (or YAML, which JSON is part of).
        "" | "application/json" | "*/*" => false,
        "application/yaml" | "application/x-yaml" | "text/yaml" => true,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other:?})"
            )));
        }
    };
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    let parsed = if yaml {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::BadRequest(format!("the request body could not be decoded: {e}")))
}

/// A list page as its `<Kind>List` document.
fn list_document(def: &ResourceDef, list: crate::service::List) -> Value {
    let mut metadata = serde_json::json!({ "resourceVersion": list.resource_version.to_string() });
    if let Some(token) = list.continue_token {
        metadata["continue"] = token.into();
    }
    serde_json::json!({
        "apiVersion": def.api_version(),
        "kind": def.list_kind(),
        "metadata": metadata,
        "items": list.items,
    })
}

/// Runs a blocking service call off the async runtime.
async fn blocking<T: Send + 'static>(
    service: &Service,
    call: impl FnOnce(&Service) -> Result<T> + Send + 'static,
) -> Result<T> {
    let service = service.clone();
    tokio::task::spawn_blocking(move || call(&service))
        .await
        .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}

/// Notes the request in the access record, as RBAC would name it.
fn note_access(
    state: &AppState,
    request: &Request,
    def: &ResourceDef,
    resource: String,
    named: bool,
    query: &Query,
) -> Result<()> {
    let verb = match (request.method().clone(), named) {
        (Method::GET, true) => "get",
        (Method::GET, false) if query.is_watch()? => "watch",
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => return Ok(()),
    };
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    state.traffic.request(verb, &resource, &def.group);
    state.access.note(crate::access::Access {
        agent: agent.chars().take(64).collect(),
        group: def.group.to_owned(),
        resource,
        verb,
    });
    Ok(())
}

async fn dispatch(state: AppState, request: Request) -> Result<Response> {
    let Some(target) = parse_path(request.uri().path()) else {
        return Err(ApiError::NoRoute);
    };
    let (group, version, plural, namespace, name, subresource) = match target {
        Target::GroupVersion { group, version } => {
            if request.method() != Method::GET {
                return Err(ApiError::MethodNotAllowed);
            }
            let list = discovery::resource_list(&state.service.registry(), &group, &version)
                .ok_or(ApiError::NoRoute)?;
            return Ok(json_response(StatusCode::OK, &list, &[]));
        }
        Target::Resource {
            group,
            version,
            plural,
            namespace,
            name,
            subresource,
        } => (group, version, plural, namespace, name, subresource),
    };
    let def: Arc<ResourceDef> = state
        .service
        .registry()
        .find(&group, &version, &plural)
        .cloned()
        .ok_or(ApiError::NoRoute)?;
    if def.namespaced != namespace.is_some() && name.is_some() {
        return Err(ApiError::NoRoute);
    }
    if !def.namespaced && namespace.is_some() {
        return Err(ApiError::NoRoute);
    }
    let scale = match subresource.as_deref() {
        None => false,
        Some("status") if def.status_subresource => false,
        Some("scale") if def.scale.is_some() && name.is_some() => true,
        Some(_) => return Err(ApiError::NoRoute),
    };
    let accessed = subresource
        .as_deref()
        .map_or_else(|| def.plural.clone(), |sub| format!("{}/{sub}", def.plural));
    let subresource = match subresource.as_deref() {
        Some("status") => Subresource::Status,
        _ => Subresource::Main,
    };
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    note_access(&state, &request, &def, accessed, name.is_some(), &query)?;
    let client = super::limits::client_address(&request);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let representation = match request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map_or(Representation::Object, Representation::of)
    {
        Representation::Table(_) => {
            Representation::Table(IncludeObject::parse(query.get("includeObject"))?)
        }
        other => other,
    };
    let ns = namespace.clone().unwrap_or_default();
    let validation = FieldValidation::parse(query.get("fieldValidation"))?;
    let service = match query.get("dryRun") {
        None | Some("") => state.service.clone(),
        Some("All") => state.service.dry_run(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };

    if scale {
        let name = name.unwrap_or_default();
        return scale_request(
            &service,
            def,
            ns,
            name,
            method,
            &content_type,
            request,
            &query,
        )
        .await;
    }
    match (method, name) {
        (Method::GET, None) if query.is_watch()? => {
            super::watch::serve(state, def, namespace, &query, representation, client).await
        }
        (Method::GET, None) => {
            let options = query.list_options(&def)?;
            let table_def = def.clone();
            let list_def = def.clone();
            let list = blocking(&service, move |s| {
                s.list(&def, namespace.as_deref(), &options)
            })
            .await?;
            let list = list_document(&list_def, list);
            let body = match representation {
                Representation::Table(include) => crate::table::of_list(&table_def, &list, include),
                Representation::Metadata => crate::views::partial_metadata_list(&list),
                Representation::Object => list,
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        (Method::GET, Some(name)) => {
            let table_def = def.clone();
            let object = blocking(&service, move |s| s.get(&def, &ns, &name)).await?;
            let body = match representation {
                Representation::Table(include) if subresource == Subresource::Main => {
                    std::sync::Arc::new(crate::table::of_object(&table_def, &object, include))
                }
                Representation::Metadata => {
                    std::sync::Arc::new(crate::views::partial_metadata(&object))
                }
                _ => object,
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        (Method::POST, None) if def.namespaced == namespace.is_some() => {
            query.check_write()?;
            let body = decode_body(&content_type, &read_body(request).await?)?;
            let written =
                blocking(&service, move |s| s.create(&def, &ns, body, validation)).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &written.object,
                &written.warnings,
            ))
        }
        (Method::PUT, Some(name)) => {
            query.check_write()?;
            let body = decode_body(&content_type, &read_body(request).await?)?;
            let written = blocking(&service, move |s| {
                s.replace(&def, &ns, &name, body, subresource, validation)
            })
            .await?;
            Ok(json_response(
                StatusCode::OK,
                &written.object,
                &written.warnings,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let patch_type = PatchType::from_content_type(&def, &content_type)?;
            query.check_write()?;
            if patch_type == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty)
            {
                return Err(ApiError::Invalid {
                    kind: "PatchOptions.meta.k8s.io".into(),
                    name: String::new(),
                    causes: vec![FieldError {
                        reason: "FieldValueRequired",
                        field: "fieldManager".into(),
                        message: "Required value: is required for apply patch".into(),
                    }],
                });
            }
            let body = read_body(request).await?;
            let written = blocking(&service, move |s| {
                s.patch(&def, &ns, &name, subresource, patch_type, &body, validation)
            })
            .await?;
            let status = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(status, &written.object, &written.warnings))
        }
        (Method::DELETE, Some(name)) if subresource == Subresource::Main => {
            let options = delete_options(request, &query).await?;
            let object = blocking(&service, move |s| s.delete(&def, &ns, &name, &options)).await?;
            let pending = object["metadata"].get("deletionTimestamp").is_some();
            let status = if pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(status, &object, &[]))
        }
        (Method::DELETE, None) => {
            let list = query.list_options(&def)?;
            let options = delete_options(request, &query).await?;
            let list_def = def.clone();
            let deleted = blocking(&service, move |s| {
                s.delete_collection(&def, namespace.as_deref(), &list, &options)
            })
            .await?;
            Ok(json_response(
                StatusCode::OK,
                &list_document(&list_def, deleted),
                &[],
            ))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `GET`, `PUT` or `PATCH` of an object's `/scale`.
#[allow(clippy::too_many_arguments)]
async fn scale_request(
    service: &Service,
    def: Arc<ResourceDef>,
    ns: String,
    name: String,
    method: Method,
    content_type: &str,
    request: Request,
    query: &Query,
) -> Result<Response> {
    let change = match method {
        Method::GET => {
            let scale = blocking(service, move |s| s.scale(&def, &ns, &name)).await?;
            return Ok(json_response(StatusCode::OK, &scale, &[]));
        }
        Method::PUT => {
            query.check_write()?;
            ScaleChange::Replace(decode_body(content_type, &read_body(request).await?)?)
        }
        Method::PATCH => {
            let patch_type = PatchType::from_content_type(&def, content_type)?;
            query.check_write()?;
            ScaleChange::Patch(patch_type, read_body(request).await?.to_vec())
        }
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let scale = blocking(service, move |s| s.update_scale(&def, &ns, &name, change)).await?;
    Ok(json_response(StatusCode::OK, &scale, &[]))
}

/// DeleteOptions from the body (if any) and the `propagationPolicy` query parameter.
async fn delete_options(request: Request, query: &Query) -> Result<DeleteOptions> {
    query.check_delete()?;
    let body = read_body(request).await?;
    let mut options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(policy) = query.get("propagationPolicy") {
        options.propagation_policy = Some(policy.to_owned());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        group: &str,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Target {
        Target::Resource {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn paths_parse_into_targets() {
        let cases = [
            (
                "/apis/konductor.io/v1/barriers",
                resource("konductor.io", "barriers", None, None, None),
            ),
            (
                "/apis/konductor.io/v1/namespaces/ns/barriers",
                resource("konductor.io", "barriers", Some("ns"), None, None),
            ),
            (
                "/apis/konductor.io/v1/namespaces/ns/barriers/b/status",
                resource(
                    "konductor.io",
                    "barriers",
                    Some("ns"),
                    Some("b"),
                    Some("status"),
                ),
            ),
            (
                "/api/v1/namespaces",
                resource("", "namespaces", None, None, None),
            ),
            (
                "/api/v1/namespaces/ns",
                resource("", "namespaces", None, Some("ns"), None),
            ),
            (
                "/api/v1/namespaces/ns/status",
                resource("", "namespaces", None, Some("ns"), Some("status")),
            ),
            (
                "/api/v1/namespaces/ns/events",
                resource("", "events", Some("ns"), None, None),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(parse_path(path), Some(expected), "{path}");
        }
        assert_eq!(
            parse_path("/apis/konductor.io/v1"),
            Some(Target::GroupVersion {
                group: "konductor.io".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse_path("/metrics"), None);
        assert_eq!(
            parse_path("/apis/konductor.io/v1/namespaces/ns/barriers/b/status/x"),
            None
        );
        for hostile in [
            "/apis/konductor.io/v1/namespaces/..%2F..%2F/barriers",
            "/apis/konductor.io/v1/namespaces/Default/barriers",
            "/api/v1/namespaces/a%2Fb/events",
        ] {
            assert_eq!(parse_path(hostile), None, "{hostile}");
        }
    }
}
