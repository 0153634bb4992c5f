//! The HTTP layer: axum routers and handlers that translate requests into
//! [`Service`] calls and results into Kubernetes responses.
//! No SQL and no object rules here.
//!
//! - `discovery`: `/version`, `/api`, `/apis`, group-version resource lists.
//! - `resources`: every verb on every resource path, parsed from the URL.
//! - `watch`: the `?watch=true` streams.
//!
//! Every path but the health checks and `/version` needs the bearer token; request
//! bodies are limited to [`MAX_BODY_BYTES`]; `limits` bounds what is in flight.

mod discovery;
pub mod limits;
mod openapi;
mod query;
mod resources;
mod watch;

pub use resources::decode_body;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::service::Service;

/// The largest request body accepted (as the real API server's 3 MiB limit).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The API verbs.
    pub service: Service,
    /// The bearer token every API request must carry.
    pub token: Arc<String>,
    /// The bounds on requests and watches in flight.
    pub admission: Arc<limits::Admission>,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: std::time::Duration,
    /// Metrics added by the process (the in-process controller's).
    pub extra_metrics: crate::metrics::ExtraMetrics,
    /// Which clients used which verbs on which resources.
    pub access: crate::access::AccessLog,
    /// Requests served and watch events sent, by resource (for `/metrics`).
    pub traffic: crate::metrics::Traffic,
}

/// The router for the whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route("/version", get(discovery::version))
        .route("/metrics", get(metrics))
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            axum::routing::post(discovery::access_review),
        )
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_document))
        .fallback(resources::handle)
        // Authentication runs first: a request without the token holds no permit.
        .layer(middleware::from_fn_with_state(state.clone(), limits::bound))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        // One span and log line per request at debug level: RUST_LOG=tower_http=debug.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A bug must never take the server down or leave a client without an answer: a panic
/// in a handler becomes a 500 Status (and an error log).
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!(
        "the server hit a bug handling this request: {detail}"
    ))
    .into_response()
}

async fn health() -> &'static str {
    "ok"
}

/// Ready when storage answers and the watch hub is up.
async fn ready(State(state): State<AppState>) -> Response {
    let service = state.service.clone();
    let storage_ok = tokio::task::spawn_blocking(move || {
        service
            .store()
            .list(crate::registry::NAMESPACES, None, None, Some(1))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    if storage_ok {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()
    }
}

/// `GET /metrics` (authenticated, as on a real API server).
async fn metrics(State(state): State<AppState>) -> Response {
    let figures = crate::metrics::ServerFigures {
        store: state.service.store().stats(),
        resource_version: state.service.store().resource_version(),
        watches: state.admission.open_watches(),
        refused: state.admission.refused(),
        traffic: state.traffic.clone(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&figures, &state.extra_metrics),
    )
        .into_response()
}

/// `GET /openapi/v3`.
async fn openapi_index(State(state): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &openapi::index(&state.service.registry()),
        &[],
    )
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
async fn openapi_document(
    State(state): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return ApiError::NoRoute.into_response(),
    };
    match openapi::document(&state.service.registry(), group, version) {
        Some(document) => json_response(StatusCode::OK, &document, &[]),
        None => ApiError::NoRoute.into_response(),
    }
}

/// Paths anyone may read, as on a real API server (`system:public-info-viewer`).
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

/// Rejects requests without the right bearer token (401 Status).
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        // Constant time: how long a refusal takes says nothing about the token.
        Some(token) if bool::from(token.as_bytes().ct_eq(state.token.as_bytes())) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// A JSON response with `Warning` headers for each warning.
fn json_response(status: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, value);
        }
    }
    (status, headers, body.to_string()).into_response()
}
