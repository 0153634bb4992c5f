//! What Konductor's tests and benchmarks share (an unpublished crate): an in-process
//! `konductor server` — HTTPS on a free loopback port, a fresh data directory — with or
//! without the controllers running against it, a client and an SDK connection for it,
//! restarts on the same address and data, and bounded waits; and ([`process`]) the
//! server as a child process, as a user starts it; and ([`browser`]) headless Chromium
//! over WebDriver, for the dashboard.
//!
//! The in-process server is the default feature `in-process`; the benchmark, which
//! starts servers only as processes, does without it (and without linking the server
//! and the controllers into the program that measures them).
//!
//! Use it from integration tests (`tests/`) and benchmarks, not from a crate's own unit
//! tests: the crates it builds on would then be two different builds of themselves.

pub mod browser;
#[cfg(feature = "in-process")]
mod in_process;
pub mod process;

use std::time::Duration;

#[cfg(feature = "in-process")]
pub use in_process::{Stopped, TestServer};

/// The longest an awaited outcome may take before a test calls it a hang. It measures
/// nothing: generous, for a loaded machine.
pub const HANG: Duration = Duration::from_secs(120);

/// Waits (at most [`HANG`]) until the `K` named `name` satisfies `condition`, and
/// returns it as it then was (`None` if it is absent and that satisfied `condition`).
pub async fn until<K>(
    api: kube::Api<K>,
    name: &str,
    condition: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    tokio::time::timeout(
        HANG,
        kube::runtime::wait::await_condition(api, name, move |object: Option<&K>| {
            condition(object)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} never got there"))
    .expect("watching it")
}

/// Renews the claim `name` (a Permit or a WaitGroupMember: `spec.renewTime` set to
/// now) every 300 ms, as a live holder does, until the returned handle is aborted.
/// A waiter nobody renews leaves its queue a ttl after it asked; a test that waits
/// for a grant keeps the waiter alive with this.
pub fn keep_renewing<K>(api: kube::Api<K>, name: &str) -> tokio::task::AbortHandle
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let name = name.to_owned();
    tokio::spawn(async move {
        loop {
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now(),
            );
            let patch = serde_json::json!({ "spec": { "renewTime": now } });
            api.patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap_or_else(|e| panic!("renewing {name}: {e}"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .abort_handle()
}

/// The most of `sorted` (times, oldest first) that fall in any half-open window
/// `[t, window_end(t))` starting at one of them: for checking a rate limit from outside.
pub fn most_in_any_window<T: Ord + Copy>(sorted: &[T], window_end: impl Fn(T) -> T) -> usize {
    sorted
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = window_end(start);
            sorted[i..].iter().take_while(|&&t| t < end).count()
        })
        .max()
        .unwrap_or(0)
}
