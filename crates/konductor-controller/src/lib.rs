//! The Konductor controllers — one per kind, each wired to one shared engine — and the
//! operator around them.
//!
//! # Layout
//! - [`engine`]: what every kind shares: the workers and their error policy, the claim
//!   index, own writes, adoption, Events within a budget; metrics by kind.
//! - [`barrier`]: the Barrier kind — its Arrivals' index and its reconcile, via
//!   `konductor_api::barrier::rules`.
//! - [`locks`]: the lock kinds (Semaphore, Mutex, RWMutex) and their Permits, via
//!   `konductor_api::locks::rules`.
//! - [`once`]: the Once kind, wired to the lock controller (its claims are Permits):
//!   its stored spec and status and its claims to `konductor_api::once::rules`.
//! - [`ratelimit`]: the RateLimit kind, wired to the lock controller as the Once is:
//!   its window decided by `konductor_api::ratelimit::rules`.
//! - [`waitgroup`]: the WaitGroup kind — its members' index, their expiry and its
//!   reconcile, via `konductor_api::waitgroup::rules`.
//! - [`gate`]: the Gate kind — a watch per kind its conditions name, and its
//!   reconcile, via `konductor_api::gate::rules`.
//! - this file: **the list of kinds** ([`run`] joins every kind's controller, with the
//!   [`Settings`] they take); [`kinds::Background`] runs them in this process.
//! - [`clock`]: wall-clock readings that never step (lock expiry).
//! - [`queue`]: the reconcile queue (deduplicating, immediate, timed requeues).
//! - [`metrics`]: Prometheus metrics.
//! - [`leader`]: Lease-based leader election (get + update, no apply needed).
//! - [`operator`]: leader election + controllers + probe endpoints, for
//!   `konductor operator`.
//!
//! `konductor server` runs [`run`] in-process against itself, through the
//! same kube client code as in a cluster.

pub mod barrier;
pub mod clock;
pub mod engine;
pub mod gate;
pub mod kinds;
pub mod leader;
pub mod locks;
pub mod metrics;
pub mod once;
pub mod operator;
pub mod queue;
pub mod ratelimit;
pub mod waitgroup;

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::engine::subject;
use crate::metrics::Metrics;

/// What the controllers are told beyond their client.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The kinds Gates may name (the presets' kinds unless more are given).
    pub gate_kinds: gate::watches::GateKinds,
}

/// **The list of kinds the controllers serve**: runs every kind's controller for all
/// namespaces until `shutdown` resolves — the barriers' ([`barrier`]), the locks' and
/// Onces' ([`locks`]), the wait groups' ([`waitgroup`]) and the gates' ([`gate`]). A new
/// kind is one more line here.
pub async fn run(
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let shutdown = futures::FutureExt::shared(shutdown);
    let lock_family = [
        locks::lock_kinds(),
        vec![once::family(), ratelimit::family()],
    ]
    .concat();
    let locks = locks::run(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        lock_family,
        shutdown.clone(),
    );
    let wait_groups = subject::run::<waitgroup::WaitGroupKind>(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        (),
        shutdown.clone(),
    );
    let gates = subject::run::<gate::GateKind>(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
        settings.gate_kinds,
        shutdown.clone(),
    );
    let barriers = subject::run::<barrier::BarrierKind>(client, reporter, metrics, (), shutdown);
    futures::join!(barriers, locks, wait_groups, gates);
    Ok(())
}

/// What can go wrong in the controller and operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{}", describe(.0))]
    Kube(#[from] kube::Error),
    /// A barrier without a creation timestamp (the deadline counts from it).
    #[error("barrier has no creationTimestamp")]
    MissingCreationTimestamp,
    /// The probe address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// A kube error in one readable line: the API server's own message and reason for a
/// refused request (not a dump of its Status), the error chain otherwise.
/// A watch error in one plain sentence (kube's `Display` of an API answer carries a
/// debug dump of the whole Status): what condition messages and Events may say.
pub fn describe_watch(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as Watch;
    match error {
        Watch::InitialListFailed(e) | Watch::WatchStartFailed(e) | Watch::WatchFailed(e) => {
            describe(e)
        }
        Watch::WatchError(status) => format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        ),
        other => other.to_string(),
    }
}

fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!(
            "the API server answered {} {}: {}",
            status.code, status.reason, status.message
        ),
        other => {
            let mut line = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !line.contains(&text) {
                    line.push_str(": ");
                    line.push_str(&text);
                }
                source = cause.source();
            }
            line
        }
    }
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::MissingCreationTimestamp => "missing_creation_timestamp",
            Error::Bind { .. } => "bind",
        }
    }

    /// Whether this is a 409 Conflict (someone else wrote first; retry at once).
    pub fn is_conflict(&self) -> bool {
        self.metric_label() == "conflict"
    }
}

/// A result whose error is the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
