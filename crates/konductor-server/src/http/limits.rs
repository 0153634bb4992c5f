//! Bounds on what clients may hold at once, as kube-apiserver's
//! `--max-requests-inflight`, `--max-mutating-requests-inflight` and
//! `--request-timeout`, plus a bound on watches (in total and per client address).
//!
//! A request beyond a bound is answered at once with 429 TooManyRequests and
//! `Retry-After: 1` (clients such as client-go and kube-rs retry it); a request slower
//! than the timeout gets 504 Timeout. Watches are long-running: they count against the
//! watch bounds, not the in-flight ones, and end by their own `timeoutSeconds`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::query::Query;
use crate::error::ApiError;

/// The configurable bounds, with kube-apiserver's defaults where it has them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Read-only requests (GET and other non-mutating verbs) served at once.
    pub max_requests_inflight: usize,
    /// Mutating requests (POST, PUT, PATCH, DELETE) served at once.
    pub max_mutating_requests_inflight: usize,
    /// The longest a non-watch request may take before it is answered 504.
    pub request_timeout: Duration,
    /// Watches open at once, from all clients.
    pub max_watches: usize,
    /// Watches open at once from one client address.
    pub max_watches_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            max_watches: 10_000,
            max_watches_per_client: 5_000,
        }
    }
}

/// The live counters behind [`Limits`], shared by every request.
pub struct Admission {
    limits: Limits,
    reads: Arc<Semaphore>,
    mutations: Arc<Semaphore>,
    watches: Arc<Semaphore>,
    watches_by_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refused: AtomicU64,
}

impl Admission {
    /// Counters for these limits, all free.
    pub fn new(limits: Limits) -> Self {
        Self {
            reads: Arc::new(Semaphore::new(limits.max_requests_inflight)),
            mutations: Arc::new(Semaphore::new(limits.max_mutating_requests_inflight)),
            watches: Arc::new(Semaphore::new(limits.max_watches)),
            watches_by_client: Arc::default(),
            refused: AtomicU64::new(0),
            limits,
        }
    }

    /// Watches open now (for `/metrics`).
    pub fn open_watches(&self) -> usize {
        self.limits
            .max_watches
            .saturating_sub(self.watches.available_permits())
    }

    /// Requests and watches answered 429 since the server started (for `/metrics`:
    /// a count that keeps growing says the bounds are too tight for the load).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts one request answered 429 and says why.
    fn refuse(&self, why: String) -> ApiError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        ApiError::TooManyRequests(why)
    }

    /// Takes a watch slot for `client`, or says which bound is reached.
    pub fn open_watch(&self, client: IpAddr) -> Result<WatchSlot, ApiError> {
        let permit = self.watches.clone().try_acquire_owned().map_err(|_| {
            self.refuse(format!(
                "too many watches are open ({}); try again later",
                self.limits.max_watches
            ))
        })?;
        let mut by_client = self.watches_by_client.lock().expect("not poisoned");
        let open = by_client.entry(client).or_default();
        if *open >= self.limits.max_watches_per_client {
            return Err(self.refuse(format!(
                "too many watches are open from {client} ({}); try again later",
                self.limits.max_watches_per_client
            )));
        }
        *open += 1;
        Ok(WatchSlot {
            _permit: permit,
            client,
            watches_by_client: self.watches_by_client.clone(),
        })
    }
}

/// One open watch's place in the bounds, given back when the watch ends.
pub struct WatchSlot {
    _permit: OwnedSemaphorePermit,
    client: IpAddr,
    watches_by_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut by_client = self.watches_by_client.lock().expect("not poisoned");
        if let Some(open) = by_client.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

/// The address a request came from (unspecified when the server runs without
/// connection info, as in-process tests may).
pub fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Whether a request is a watch (long-running: bounded by the watch limits instead).
fn is_watch(request: &Request) -> bool {
    Query::parse(request.uri().query())
        .is_watch()
        .unwrap_or(false)
}

/// The middleware: holds an in-flight permit for the request's duration and answers
/// 429 when none is free, 504 when the request takes longer than the timeout.
pub async fn bound(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_watch(&request) {
        return next.run(request).await;
    }
    let admission = &state.admission;
    let (pool, what) = match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => (&admission.reads, "read-only"),
        _ => (&admission.mutations, "mutating"),
    };
    let Ok(_permit) = pool.clone().try_acquire_owned() else {
        return admission
            .refuse(format!(
                "too many {what} requests are in flight; try again later"
            ))
            .into_response();
    };
    let timeout = admission.limits.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(format!(
            "the server was unable to return a response in the time allotted ({}s), but may still be processing the request",
            timeout.as_secs_f64()
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_of_watches_and_gets_them_back() {
        let admission = Admission::new(Limits {
            max_watches: 3,
            max_watches_per_client: 2,
            ..Limits::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.open_watch(a).unwrap();
        let _second = admission.open_watch(a).unwrap();
        let refused = admission.open_watch(a).err().unwrap();
        assert!(refused.to_string().contains("from 10.0.0.1"), "{refused}");
        let _third = admission.open_watch(b).unwrap();
        assert_eq!(admission.open_watches(), 3);
        let refused = admission.open_watch(b).err().unwrap();
        assert!(refused.to_string().contains("(3)"), "{refused}");
        drop(first);
        assert_eq!(admission.open_watches(), 2);
        assert!(admission.open_watch(a).is_ok());
    }
}
