//! SDK errors: one sentence each, naming the barrier and the cause, ready to show a
//! user as they are.

use std::time::Duration;

use konductor_api::duration::format_duration;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The barrier does not exist.
    #[error("barrier {namespace}/{barrier} not found")]
    NotFound {
        /// Namespace looked in.
        namespace: String,
        /// Barrier name.
        barrier: String,
    },
    /// The barrier already exists (create).
    #[error("barrier {namespace}/{barrier} already exists")]
    AlreadyExists {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
    },
    /// RBAC forbids the request.
    #[error("barrier {namespace}/{barrier}: forbidden: cannot {verb} {resource}: {message}")]
    Forbidden {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
        /// The verb refused (`get`, `create`, `watch`, …).
        verb: &'static str,
        /// The resource (`barriers`, `arrivals`).
        resource: &'static str,
        /// The server's message.
        message: String,
    },
    /// The server refused the credentials (401).
    #[error(
        "barrier {namespace}/{barrier}: unauthorized: the API server refused the credentials in the kubeconfig"
    )]
    Unauthorized {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
    },
    /// The server rejected the object as invalid (422).
    #[error("barrier {namespace}/{barrier}: invalid: {message}")]
    Invalid {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
        /// The server's message, naming the field.
        message: String,
    },
    /// The API server could not be reached.
    #[error("barrier {namespace}/{barrier}: cannot reach the API server at {url}: {reason}")]
    Unreachable {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
        /// The server URL from the kubeconfig.
        url: String,
        /// Why (connection refused, TLS failure, …).
        reason: String,
    },
    /// Waiting took longer than the caller allowed.
    #[error(
        "barrier {namespace}/{barrier}: still not open after {}",
        format_duration(Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)))
    )]
    WaitTimeout {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// Any other answer from the API server.
    #[error("barrier {namespace}/{barrier}: {message}")]
    Api {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        barrier: String,
        /// The server's message.
        message: String,
    },
    /// A lock request failed: the lock does not exist, the server refused, …
    #[error("{kind} {namespace}/{lock}: {message}")]
    Lock {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        lock: String,
        /// What went wrong.
        message: String,
    },
    /// The lock is held and the caller did not want to wait.
    #[error("{kind} {namespace}/{lock} is busy (held by others; not waiting)")]
    LockBusy {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        lock: String,
    },
    /// Waiting for the grant took longer than the caller allowed.
    #[error("{kind} {namespace}/{lock}: not granted within the timeout")]
    LockTimeout {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        lock: String,
    },
    /// The grant expired (it was not renewed within the lock's ttl) or was revoked.
    #[error("{kind} {namespace}/{lock}: the grant was lost (expired or its permit deleted)")]
    LockLost {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        lock: String,
    },
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load the Kubernetes configuration: {0}")]
    Config(String),
}

/// A result whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a request was doing when it failed, to name it in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub namespace: &'a str,
    pub barrier: &'a str,
    pub verb: &'static str,
    pub resource: &'static str,
    pub url: &'a str,
}

impl Request<'_> {
    /// Translates a kube error into the SDK's error for this request.
    pub fn error(&self, error: kube::Error) -> Error {
        let namespace = self.namespace.to_owned();
        let barrier = self.barrier.to_owned();
        match error {
            kube::Error::Api(status) => match status.code {
                404 if status.message.starts_with("namespaces") => Error::Api {
                    message: format!("namespace {namespace} not found"),
                    namespace,
                    barrier,
                },
                404 => Error::NotFound { namespace, barrier },
                409 if self.verb == "create" && self.resource == "barriers" => {
                    Error::AlreadyExists { namespace, barrier }
                }
                401 => Error::Unauthorized { namespace, barrier },
                403 => Error::Forbidden {
                    namespace,
                    barrier,
                    verb: self.verb,
                    resource: self.resource,
                    message: status.message.clone(),
                },
                422 => Error::Invalid {
                    namespace,
                    barrier,
                    message: status.message.clone(),
                },
                _ => Error::Api {
                    namespace,
                    barrier,
                    message: status.message.clone(),
                },
            },
            other => {
                let reason = root_cause(&other);
                Error::Unreachable {
                    namespace,
                    barrier,
                    url: self.url.to_owned(),
                    reason,
                }
            }
        }
    }
}

/// The innermost message of an error chain (e.g. "Connection refused (os error 111)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verb: &'static str, resource: &'static str) -> Request<'static> {
        Request {
            namespace: "jobs",
            barrier: "extract-complete",
            verb,
            resource,
            url: "https://10.0.0.1:6443",
        }
    }

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "Reason").with_code(code),
        ))
    }

    #[test]
    fn forbidden_names_the_verb_and_resource() {
        let error = request("create", "arrivals").error(api(403, "arrivals.konductor.io is forbidden: User \"system:serviceaccount:jobs:etl\" cannot create resource \"arrivals\""));
        let text = error.to_string();
        assert!(
            text.starts_with("barrier jobs/extract-complete: forbidden: cannot create arrivals:"),
            "{text}"
        );
    }

    #[test]
    fn each_status_becomes_a_sentence_about_the_barrier() {
        let cases = [
            (
                request("get", "barriers").error(api(404, "not found")),
                "barrier jobs/extract-complete not found",
            ),
            (
                request("create", "barriers").error(api(409, "exists")),
                "barrier jobs/extract-complete already exists",
            ),
            (
                request("create", "barriers").error(api(422, "spec.expected: Invalid value: 0")),
                "barrier jobs/extract-complete: invalid: spec.expected: Invalid value: 0",
            ),
            (
                request("get", "barriers").error(api(401, "Unauthorized")),
                "barrier jobs/extract-complete: unauthorized: the API server refused the credentials in the kubeconfig",
            ),
            (
                request("create", "arrivals").error(api(404, "namespaces \"jobs\" not found")),
                "barrier jobs/extract-complete: namespace jobs not found",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }
}
