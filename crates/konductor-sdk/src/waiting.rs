//! The one way every kind's `wait` waits for its object: watch it (never poll) until
//! a condition holds, waiting for it to be created (or created again) when it is not
//! there, riding out a broken watch, and giving up at the caller's timeout — but only
//! after the object's current state is known, so `--timeout 0s` on a finished object
//! reports it finished.
//!
//! Which errors end a wait: failing to list at all (the server unreachable at the
//! start, credentials refused, permission denied, the kind not served) ends it at once;
//! a working watch that breaks for a reason retrying can help (connection lost, 429,
//! 5xx) is re-established with backoff, and the caller hears
//! [`Progress::Reconnecting`].

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use crate::error::{Error, Request, Result};

/// Why a waited-for object is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// It has not been created (yet).
    NotCreated,
    /// It was deleted while being waited on (a reset, cleanup, or its
    /// `ttlAfterFinished`).
    Deleted,
    /// Its namespace does not exist (yet).
    NoNamespace,
}

impl Absence {
    /// The progress line for `kind` `namespace/name` being absent this way.
    pub fn line(self, kind: &str, namespace: &str, name: &str) -> String {
        match self {
            Absence::NotCreated => {
                format!("waiting for {kind} {namespace}/{name} to be created")
            }
            Absence::Deleted => {
                format!("{kind} {namespace}/{name} was deleted; waiting for it to be created again")
            }
            Absence::NoNamespace => format!(
                "namespace {namespace} does not exist; waiting for it and {kind} {namespace}/{name} to be created"
            ),
        }
    }
}

/// What a wait reports while it waits.
#[derive(Debug, Clone)]
pub enum Progress<'a, K> {
    /// The object is not there; the wait continues until it exists (again).
    Missing(Absence),
    /// The object exists and the condition does not hold yet.
    Waiting(&'a K),
    /// The watch broke after it had worked (e.g. the API server restarted); it is being
    /// re-established with backoff. The text says why.
    Reconnecting(String),
}

/// How a wait ended without an error.
#[derive(Debug, Clone)]
pub enum Waited<K> {
    /// The condition holds for the object as it is now.
    Finished(K),
    /// The timeout passed first; the object as last seen, if it was seen.
    TimedOut(Option<K>),
}

/// How long a wait with a client timeout still waits for the object's current state
/// (so `--timeout 0s` on a finished object reports it finished, not timed out).
const FIRST_ANSWER_GRACE: Duration = Duration::from_secs(10);

/// The longest pause between attempts to reconnect a wait's watch.
const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// Whether a watch error is worth retrying: the connection broke, the server is busy
/// (429) or failing (5xx). Credentials refused, permission denied, the namespace or
/// resource gone are permanent: retrying cannot help.
fn is_transient(error: &watcher::Error) -> bool {
    let kube_error = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) => return status.code == 429 || status.code >= 500,
        _ => return true,
    };
    match kube_error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// The deadline a wait applies: the caller's, but never before the object's state is
/// first known (then at most [`FIRST_ANSWER_GRACE`] after the start).
fn wait_limit(started: Instant, timeout: Option<Duration>, known: bool) -> Option<Instant> {
    timeout.map(|limit| {
        if known {
            started + limit
        } else {
            started + limit.max(FIRST_ANSWER_GRACE)
        }
    })
}

/// The object a wait is about, and how to name it in errors.
pub(crate) struct Waiting<'a, K> {
    /// Its kind's API in its namespace.
    pub api: Api<K>,
    /// Namespaces (to tell a missing namespace from a missing object).
    pub namespaces: Api<Namespace>,
    /// The request, for errors (verb `watch`, the kind's plural).
    pub request: Request<'a>,
}

impl<K> Waiting<'_, K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    /// Waits until `finished` holds for the object (see the module documentation);
    /// `progress` hears every version on the way, and why the object is missing.
    pub async fn until(
        &self,
        timeout: Option<Duration>,
        mut progress: impl FnMut(Progress<'_, K>),
        finished: impl Fn(&K) -> bool,
    ) -> Result<Waited<K>> {
        let started = Instant::now();
        let name = self.request.name;
        let config = crate::watching::watch_config().fields(&format!("metadata.name={name}"));
        let mut events = watcher(self.api.clone(), config)
            .backoff(crate::watching::CappedBackoff::new(RECONNECT_CAP))
            .boxed();
        let mut present = false;
        let mut told_missing = false;
        let mut connected = false;
        let mut last: Option<K> = None;
        loop {
            let next = events.next();
            let event = match wait_limit(started, timeout, connected) {
                None => next.await,
                Some(at) => match tokio::time::timeout_at(at.into(), next).await {
                    Ok(event) => event,
                    Err(_) => return Ok(Waited::TimedOut(last)),
                },
            };
            let Some(event) = event else {
                return Err(self.ended("the watch ended unexpectedly"));
            };
            let event = match event {
                Ok(event) => event,
                // Failing to connect at all is an error (a wrong server, no
                // permission); losing a working watch is retried when it can help.
                Err(error) if connected && is_transient(&error) => {
                    progress(Progress::Reconnecting(self.watch_error(error).to_string()));
                    continue;
                }
                Err(error) => return Err(self.watch_error(error)),
            };
            let object = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                watcher::Event::Delete(_) => {
                    present = false;
                    last = None;
                    progress(Progress::Missing(Absence::Deleted));
                    continue;
                }
                watcher::Event::Init => {
                    present = false;
                    continue;
                }
                watcher::Event::InitDone => {
                    connected = true;
                    if !present && !told_missing {
                        progress(Progress::Missing(self.absence().await));
                        told_missing = true;
                    }
                    continue;
                }
            };
            present = true;
            if finished(&object) {
                return Ok(Waited::Finished(object));
            }
            progress(Progress::Waiting(&object));
            last = Some(object);
        }
    }

    /// Why an object that is not listed is missing: its namespace may not exist (when
    /// the namespace can be read at all; a Job's ServiceAccount usually cannot).
    async fn absence(&self) -> Absence {
        match self.namespaces.get(self.request.namespace).await {
            Err(kube::Error::Api(status)) if status.code == 404 => Absence::NoNamespace,
            _ => Absence::NotCreated,
        }
    }

    fn ended(&self, message: &str) -> Error {
        Error::Api {
            kind: self.request.kind,
            namespace: self.request.namespace.to_owned(),
            name: self.request.name.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The SDK error for a watch error. A 404 on the list itself means the kind is not
    /// served (its CRD is not installed): said so, rather than "not found".
    fn watch_error(&self, error: watcher::Error) -> Error {
        match error {
            watcher::Error::InitialListFailed(kube::Error::Api(status))
                if status.code == 404 && !status.message.starts_with("namespaces") =>
            {
                self.ended(&format!(
                    "the API server does not serve {} (is the CRD {}.konductor.io installed?)",
                    self.request.resource, self.request.resource
                ))
            }
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => self.request.error(e),
            watcher::Error::WatchError(status) => self.request.error(kube::Error::Api(status)),
            other => self.ended(&other.to_string()),
        }
    }
}
