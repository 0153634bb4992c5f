//! API errors and their one mapping to Kubernetes `metav1.Status` bodies.
//!
//! Every failure a client can see is an [`ApiError`]; [`ApiError::to_status`] is the
//! only place that decides reasons, codes and message wording, which follow the real
//! API server's so kube-rs and kubectl print what users already know.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A result whose error is an [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One invalid field of a rejected object (a `StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The Kubernetes cause type: `FieldValueInvalid`, `FieldValueRequired`,
    /// `FieldValueNotSupported`, `FieldValueTooLong`, `FieldValueDuplicate`,
    /// `FieldValueForbidden`, `FieldValueTypeInvalid` or `FieldValueUnknown`.
    pub reason: &'static str,
    /// The field's path, e.g. `spec.expected`.
    pub field: String,
    /// The human message, e.g. `Invalid value: 0: ... should be greater than or equal to 1`.
    pub message: String,
}

impl FieldError {
    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: message.into(),
        }
    }

    /// A `FieldValueRequired` cause.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }
}

/// Everything that can go wrong serving a request, one variant per Kubernetes reason.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound: the object (or resource) does not exist.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// `plural.group`, e.g. `barriers.konductor.io`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// 404 for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 AlreadyExists: create of a name that is taken.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// 409 Conflict: a stale resourceVersion or a failed precondition.
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {message}")]
    Conflict {
        /// `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
        /// Why, e.g. the standard "the object has been modified" sentence.
        message: String,
    },
    /// 422 Invalid: the object breaks its schema or validation rules.
    #[error("{kind} {name:?} is invalid: {}", summarize(.causes))]
    Invalid {
        /// `Kind.group`, e.g. `Barrier.konductor.io`.
        kind: String,
        /// The object's name.
        name: String,
        /// The offending fields.
        causes: Vec<FieldError>,
    },
    /// 400 BadRequest: a malformed body, query or path.
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized: no or wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 Forbidden: the request is refused whoever asks (e.g. deleting `default`).
    #[error("{resource} {name:?} is forbidden: {message}")]
    Forbidden {
        /// `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
        /// Why.
        message: String,
    },
    /// 405 MethodNotAllowed: e.g. POST to a single object.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 NotAcceptable: the client asked for a representation we cannot produce.
    #[error("{0}")]
    NotAcceptable(String),
    /// 413 RequestEntityTooLarge: the body exceeds the limit.
    #[error("Request entity too large: limit is {0}")]
    RequestEntityTooLarge(usize),
    /// 422 Invalid without field causes: e.g. a JSON patch that cannot be applied.
    #[error("{0}")]
    Unprocessable(String),
    /// 415 UnsupportedMediaType: e.g. strategic merge patch on a custom resource.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 410 Expired: a watch or continue from a resourceVersion no longer available.
    #[error("{0}")]
    Expired(String),
    /// 429 TooManyRequests: a server limit (such as the number of watches) is reached.
    #[error("{0}")]
    TooManyRequests(String),
    /// 504 Timeout: the request could not be served in time (a resourceVersion the
    /// server has not reached, a request slower than its limit).
    #[error("{0}")]
    Timeout(String),
    /// 500 InternalError: storage failed; the message says how.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn summarize(causes: &[FieldError]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    match parts.len() {
        0 => "invalid object".into(),
        1 => parts[0].clone(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

impl ApiError {
    /// The HTTP status and Kubernetes `reason` of this error.
    pub fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::RequestEntityTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::Expired(_) => (StatusCode::GONE, "Expired"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The `metav1.Status` body for this error.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. }
            | ApiError::Forbidden { resource, name, .. } => Some(resource_details(resource, name)),
            ApiError::Invalid { kind, name, causes } => {
                let (kind, group) = kind.split_once('.').unwrap_or((kind, ""));
                Some(json!({
                    "name": name,
                    "group": group,
                    "kind": kind,
                    "causes": causes.iter().map(|c| json!({
                        "reason": c.reason,
                        "message": c.message,
                        "field": c.field,
                    })).collect::<Vec<_>>(),
                }))
            }
            ApiError::TooManyRequests(_) => Some(json!({ "retryAfterSeconds": 1 })),
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// `details` for errors about one object of a resource named `plural.group`.
fn resource_details(resource: &str, name: &str) -> Value {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    json!({ "name": name, "group": group, "kind": plural })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        if code.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (code, axum::Json(self.to_status())).into_response();
        if code == StatusCode::TOO_MANY_REQUESTS {
            // As kube-apiserver: clients (client-go, kube-rs) wait this long and retry.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_cause_like_kubernetes() {
        let error = ApiError::Invalid {
            kind: "Barrier.konductor.io".into(),
            name: "b".into(),
            causes: vec![
                FieldError::invalid("spec.expected", "Invalid value: 0: must be at least 1"),
                FieldError::required("spec.holder"),
            ],
        };
        let status = error.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            "Barrier.konductor.io \"b\" is invalid: [spec.expected: Invalid value: 0: must be at least 1, spec.holder: Required value]"
        );
        assert_eq!(status["details"]["kind"], "Barrier");
        assert_eq!(status["details"]["group"], "konductor.io");
        assert_eq!(status["details"]["causes"][1]["field"], "spec.holder");
    }

    #[test]
    fn not_found_names_the_resource_and_object() {
        let status = ApiError::NotFound {
            resource: "barriers.konductor.io".into(),
            name: "x".into(),
        }
        .to_status();
        assert_eq!(status["message"], "barriers.konductor.io \"x\" not found");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["kind"], "barriers");
    }
}
