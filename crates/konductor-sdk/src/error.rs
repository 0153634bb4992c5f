//! SDK errors: one sentence each, naming the object (kind, namespace, name) and the
//! cause, ready to show a user as they are — one mapping of kube's errors for every
//! kind.

use std::time::Duration;

use konductor_api::duration::format_duration;

/// Everything an SDK call can fail with. Each variant about an object names its kind
/// (`barrier`, `mutex`, …), namespace and name, so every kind reads the same.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// `barrier`, `semaphore`, `mutex`, `rwmutex`.
        kind: &'static str,
        /// Namespace looked in.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The object already exists (create).
    #[error("{kind} {namespace}/{name} already exists")]
    AlreadyExists {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// RBAC forbids the request.
    #[error("{kind} {namespace}/{name}: forbidden: cannot {verb} {resource}: {message}")]
    Forbidden {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The verb refused (`get`, `create`, `watch`, …).
        verb: &'static str,
        /// The resource (`barriers`, `arrivals`, `permits`, …).
        resource: &'static str,
        /// The server's message.
        message: String,
    },
    /// The server refused the credentials (401).
    #[error(
        "{kind} {namespace}/{name}: unauthorized: the API server refused the credentials in the kubeconfig"
    )]
    Unauthorized {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The server rejected the object as invalid (422).
    #[error("{kind} {namespace}/{name}: invalid: {message}")]
    Invalid {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The server's message, naming the field.
        message: String,
    },
    /// The API server could not be reached. Said the same way by every command,
    /// whatever it was about.
    #[error("cannot reach the API server at {url}: {reason}")]
    Unreachable {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The server URL from the kubeconfig.
        url: String,
        /// Why (connection refused, TLS failure, …).
        reason: String,
    },
    /// Every allowed attempt at some work failed (a Once's key: `koncli once reset`
    /// allows a new try): retrying as asked will not run it again.
    #[error("{kind} {namespace}/{name}: failed for good {what}: {message}")]
    FailedForGood {
        /// The kind of the object the work belongs to (`once`).
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// Which work, in words (`for key "v2"`).
        what: String,
        /// What the last attempt said, and how to allow a new try.
        message: String,
    },
    /// The work given to a Once failed (it was recorded as a failed attempt).
    #[error("once {namespace}/{name}: the work failed: {message}")]
    WorkFailed {
        /// Namespace.
        namespace: String,
        /// The Once's name.
        name: String,
        /// The work's error.
        message: String,
    },
    /// A grant was lost while its holder worked: the work was stopped.
    #[error("{kind} {namespace}/{name}: the grant was lost: {loss}")]
    GrantLost {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        loss: String,
    },
    /// Waiting for a barrier took longer than the caller allowed.
    #[error(
        "barrier {namespace}/{name}: still not open after {}",
        format_duration(Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)))
    )]
    WaitTimeout {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        name: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// Waiting for a barrier to be created took longer than the caller allowed.
    #[error(
        "barrier {namespace}/{name} does not exist: not created within {}",
        format_duration(Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)))
    )]
    NotCreated {
        /// Namespace.
        namespace: String,
        /// Barrier name.
        name: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// Waiting for an object to finish took longer than the caller allowed.
    #[error(
        "{kind} {namespace}/{name}: still {state} after {}",
        format_duration(Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)))
    )]
    StillWaiting {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Where it stood when the wait gave up (`Waiting: 3 of 20 members pending`).
        state: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// Any other answer from the API server, or a watch that ended.
    #[error("{kind} {namespace}/{name}: {message}")]
    Api {
        /// Its kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The server's message.
        message: String,
    },
    /// Waiting for conditions with no Gate object (`koncli wait --for`) took longer
    /// than the caller allowed.
    #[error(
        "{what}: still {state} after {}",
        format_duration(Duration::from_millis(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)))
    )]
    ConditionsNotMet {
        /// The conditions, as given (`job/a and job/b`).
        what: String,
        /// Where they stood when the wait gave up.
        state: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// The lock is held and the caller did not want to wait.
    #[error(
        "{kind} {namespace}/{name} is busy: {} (not waiting)",
        busy_reason(kind, holders)
    )]
    LockBusy {
        /// `semaphore`, `mutex`, `rwmutex` or `ratelimit`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        name: String,
        /// Who holds it, as its status said.
        holders: Vec<String>,
    },
    /// Waiting for the grant took longer than the caller allowed.
    #[error("{kind} {namespace}/{name}: not granted within the timeout{}", if holders.is_empty() { String::new() } else { format!(" (held by {})", holders.join(", ")) })]
    LockTimeout {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        name: String,
        /// Who held it when the wait gave up.
        holders: Vec<String>,
    },
    /// No controller answered the claim: nothing grants locks here.
    #[error(
        "{kind} {namespace}/{name}: no answer from a lock controller within {} — is one running? (`konductor server` runs one unless started with --no-controller; on a cluster, `konductor operator`)",
        format_duration(*waited)
    )]
    NoController {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        name: String,
        /// How long it waited for an answer.
        waited: Duration,
    },
    /// The controller refuses the lock's spec: nothing will be granted.
    #[error("{kind} {namespace}/{name}: invalid spec, nothing will be granted: {message}")]
    LockRefused {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        name: String,
        /// The lock's Ready condition's message.
        message: String,
    },
    /// The wait for a grant was cancelled (the claim was withdrawn).
    #[error("{kind} {namespace}/{name}: cancelled while waiting; the claim was withdrawn")]
    LockCancelled {
        /// `semaphore`, `mutex` or `rwmutex`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Lock name.
        name: String,
    },
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load the Kubernetes configuration: {0}")]
    Config(String),
    /// An argument the caller gave cannot be used as given (a `--for` test its kind
    /// cannot have, a test that does not parse): a usage error, not a failure.
    #[error("{argument}: {message}")]
    Usage {
        /// The argument, as given (`--for configmaps/cm1`).
        argument: String,
        /// What is wrong with it.
        message: String,
    },
    /// An argument names something the server does not have (a kind it does not
    /// serve, a cluster-scoped kind where a namespaced one is needed).
    #[error("{argument}: {message}")]
    Argument {
        /// The argument, as given.
        argument: String,
        /// Why it cannot be used.
        message: String,
    },
}

/// A result whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a request was doing when it failed, to name it in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub verb: &'static str,
    pub resource: &'static str,
    pub url: &'a str,
}

impl Request<'_> {
    /// Whether the request was about the named object itself — its resource is the
    /// kind's plural (`barriers`, `mutexes`) — rather than one of its claims.
    fn is_about_the_object(&self) -> bool {
        self.resource.starts_with(self.kind)
    }

    /// Translates a kube error into the SDK's error for this request.
    pub fn error(&self, error: kube::Error) -> Error {
        let (kind, namespace, name) = (self.kind, self.namespace.to_owned(), self.name.to_owned());
        match error {
            kube::Error::Api(status) => match status.code {
                404 if status.message.starts_with("namespaces") => Error::Api {
                    message: format!("namespace {namespace} not found"),
                    kind,
                    namespace,
                    name,
                },
                // No such resource type at all (kube-apiserver's and konductor
                // server's words): its CRD is not installed.
                404 if status.message == "the server could not find the requested resource" => {
                    Error::Api {
                        message: format!(
                            "the API server does not serve {} (is the CRD {}.konductor.io installed?)",
                            self.resource, self.resource
                        ),
                        kind,
                        namespace,
                        name,
                    }
                }
                404 => Error::NotFound {
                    kind,
                    namespace,
                    name,
                },
                409 if self.verb == "create" && self.is_about_the_object() => {
                    Error::AlreadyExists {
                        kind,
                        namespace,
                        name,
                    }
                }
                401 => Error::Unauthorized {
                    kind,
                    namespace,
                    name,
                },
                403 => Error::Forbidden {
                    kind,
                    namespace,
                    name,
                    verb: self.verb,
                    resource: self.resource,
                    message: status.message.clone(),
                },
                422 => Error::Invalid {
                    kind,
                    namespace,
                    name,
                    message: status.message.clone(),
                },
                _ => Error::Api {
                    kind,
                    namespace,
                    name,
                    message: status.message.clone(),
                },
            },
            other => {
                let reason = root_cause(&other);
                Error::Unreachable {
                    kind,
                    namespace,
                    name,
                    url: self.url.to_owned(),
                    reason,
                }
            }
        }
    }
}

/// Why a lock of `kind` held by `holders` could not be had at once, in words: who holds
/// it, or — a RateLimit — that its window is full.
pub fn busy_reason(kind: &str, holders: &[String]) -> String {
    match (kind, holders.is_empty()) {
        ("ratelimit", true) => "no slot free in its window now".to_owned(),
        ("ratelimit", false) => format!(
            "no slot free in its window now (held by {})",
            holders.join(", ")
        ),
        (_, true) => "held by others".to_owned(),
        (_, false) => format!("held by {}", holders.join(", ")),
    }
}

/// `error`, or — when it says an object was not found and its namespace does not exist
/// (as far as the caller may read namespaces) — that the namespace is missing: the
/// contract names which of the two is not there.
pub(crate) async fn explain_not_found(client: &kube::Client, error: Error) -> Error {
    let Error::NotFound {
        kind,
        namespace,
        name,
    } = &error
    else {
        return error;
    };
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    match namespaces.get_metadata(namespace).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Error::Api {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            message: format!("namespace {namespace} not found"),
        },
        _ => error,
    }
}

/// A kube error in one plain sentence: the server's own message for an answer (kube's
/// `Display` of one carries a debug dump of the whole Status), else the innermost
/// cause (`Connection refused (os error 111)`).
pub fn plain(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => root_cause(other),
    }
}

/// A watch error in one plain sentence (see [`plain`]).
pub fn plain_watch(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as Watch;
    match error {
        Watch::InitialListFailed(e) | Watch::WatchStartFailed(e) | Watch::WatchFailed(e) => {
            plain(e)
        }
        Watch::WatchError(status) => format!("{} ({})", status.message, status.code),
        other => root_cause(other),
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
            kind: "barrier",
            namespace: "jobs",
            name: "extract-complete",
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
                request("create", "arrivals").error(api(409, "exists")),
                "barrier jobs/extract-complete: exists",
            ),
            (
                request("create", "arrivals").error(api(404, "namespaces \"jobs\" not found")),
                "barrier jobs/extract-complete: namespace jobs not found",
            ),
            (
                request("get", "barriers")
                    .error(api(404, "the server could not find the requested resource")),
                "barrier jobs/extract-complete: the API server does not serve barriers (is the CRD barriers.konductor.io installed?)",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }
}
