//! The Konductor SDK: barriers from Rust, through the Kubernetes API (a real cluster or
//! `konductor server`). `koncli` is built on it.
//!
//! # Layout
//! - [`connect`](mod@connect): kubeconfig / context / namespace resolution, as kubectl does it.
//! - [`barrier`]: [`Barriers`] — `create`, `get`, `list`, `delete`, `arrive`, `wait`,
//!   and `stage` (wait at one barrier, work, arrive at the next).
//! - [`locks`]: [`locks::Locks`] — acquire a Semaphore, Mutex or RWMutex as a
//!   [`locks::Guard`] that renews in the background, says when the grant is lost, and
//!   releases on drop.
//! - [`waitgroup`]: [`waitgroup::WaitGroups`] — `add`, `done`, `seal`, `wait`, and
//!   `run` (a worker's member held, renewed and marked done with the outcome).
//! - [`gate`]: [`gate::Gates`] (create, wait, override) and [`gate::WaitFor`] — wait
//!   for conditions on any resources with no Gate object.
//! - `claims`: what every kind's claims share — ask under a deterministic name (or
//!   find the holder's earlier claim), withdraw only the claim read.
//! - [`watching`]: how every watch notices a dead connection and reconnects.
//! - [`reading`]: any kind's objects as stored (raw JSON) and as `kubectl get` shows
//!   them (the server's Table).
//! - [`waiting`]: the one way every kind's `wait` waits — for creation too, through
//!   reconnects, bounded by the caller's timeout.
//! - [`error`]: one-sentence errors naming the barrier and the cause.
//!
//! ```no_run
//! # async fn example() -> konductor_sdk::Result<()> {
//! use konductor_api::Outcome;
//! use konductor_sdk::{Barriers, ConnectOptions, WaitOutcome, connect};
//!
//! let barriers = Barriers::new(&connect(&ConnectOptions::default()).await?);
//! barriers.arrive("extract-complete", "extract-1", Outcome::Succeeded, None).await?;
//! if let WaitOutcome::Open(_) = barriers.wait("extract-complete", None, |_| {}).await? {
//!     println!("all extracts are done");
//! }
//! # Ok(())
//! # }
//! ```

pub mod barrier;
pub mod claims;
pub mod connect;
pub mod error;
pub mod gate;
pub mod locks;
pub mod once;
mod patches;
pub mod reading;
mod subjects;
pub mod waitgroup;
pub mod waiting;
pub mod watching;

pub use barrier::{Arrived, Barriers, Progress, WaitOutcome};
pub use connect::{ConnectOptions, Connection, connect};
pub use error::{Error, Result};
pub use once::{Onces, Ran};
pub use subjects::Ensured;
pub use waiting::Absence;
