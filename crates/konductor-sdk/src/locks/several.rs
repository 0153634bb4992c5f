//! Several locks held at once ([`Locks::hold_all`]) without deadlock: the claims are
//! taken one after another in **one global order** — (namespace, kind, name) — whatever
//! order the caller listed them in, so two holders that need the same locks ask for
//! them in the same order and one of them always gets them all. A holder waits for a
//! later lock while it holds the earlier ones; the order is what makes that safe.
//!
//! Losing any one grant is losing them all ([`Held::lost`]); giving up (a timeout, a
//! busy lock under [`Wait::No`], a cancel) gives back every claim made so far.

use std::time::Duration;

use konductor_api::locks::LockKind;

use super::{Claim, Guard, Locks, Progress, Wait};
use crate::claims::held::{Loss, Timing};
use crate::error::{Error, Result};

/// Where a claim sits in the global order: namespace, kind, name.
fn order_key<'a>(namespace: &'a str, claim: &'a Claim) -> (&'a str, &'static str, &'a str) {
    (namespace, claim.kind.word(), &claim.lock)
}

/// `claims` in the global order (within `namespace`); naming a lock twice — even once
/// to read and once to write — is [`Error::Usage`].
pub fn in_global_order(namespace: &str, claims: &[Claim]) -> Result<Vec<Claim>> {
    let mut ordered = claims.to_vec();
    ordered.sort_by(|a, b| order_key(namespace, a).cmp(&order_key(namespace, b)));
    for pair in ordered.windows(2) {
        if order_key(namespace, &pair[0]) == order_key(namespace, &pair[1]) {
            return Err(Error::Usage {
                argument: format!("{}/{}", pair[0].kind.word(), pair[0].lock),
                message: "the same lock is named twice: hold each lock once".into(),
            });
        }
    }
    Ok(ordered)
}

/// Several granted locks, in the global order: renewed while they live, released when
/// dropped (each as its [`Guard`]).
pub struct Held {
    guards: Vec<Guard>,
}

impl Held {
    /// Grants taken in the global order (by [`Locks::hold_all`], or one by one by a
    /// caller that reports on each).
    pub fn new(guards: Vec<Guard>) -> Self {
        Self { guards }
    }

    /// The grants, in the global order.
    pub fn guards(&self) -> &[Guard] {
        &self.guards
    }

    /// The fencing token of the first lock in the global order.
    pub fn token(&self) -> i64 {
        self.guards.first().map_or(0, Guard::token)
    }

    /// The strictest timing of the locks held (the shortest ttl's): what a holder of
    /// all of them must keep to.
    pub fn timing(&self) -> Timing {
        self.guards
            .iter()
            .map(Guard::timing)
            .min_by_key(|t| t.ttl)
            .unwrap_or_else(|| Timing::for_ttl(Duration::from_secs(300)))
    }

    /// Resolves when any grant is lost, with which lock (its kind and name) and why:
    /// then stop using what any of them protects.
    pub async fn lost(&self) -> (LockKind, String, Loss) {
        let losses = self.guards.iter().map(|guard| {
            Box::pin(async move { (guard.kind(), guard.lock().to_owned(), guard.lost().await) })
        });
        if self.guards.is_empty() {
            return std::future::pending().await;
        }
        futures::future::select_all(losses).await.0
    }

    /// Marks every claim *interrupting* (see [`Guard::mark_interrupting`]).
    pub async fn mark_interrupting(&self) {
        futures::future::join_all(self.guards.iter().map(Guard::mark_interrupting)).await;
    }

    /// Releases every lock, in the reverse of the order they were taken; the first
    /// error, if any (every release is tried).
    pub async fn release(self) -> Result<()> {
        let mut first_error = None;
        for guard in self.guards.into_iter().rev() {
            if let Err(error) = guard.release().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Gives lost grants back: one quick try each (see [`Guard::release_lost`]).
    pub async fn release_lost(self) {
        futures::future::join_all(self.guards.into_iter().map(Guard::release_lost)).await;
    }
}

impl Locks {
    /// Holds every lock `claims` name (all in this namespace), taken one by one in the
    /// global order ([`in_global_order`]); `wait` bounds the whole (a deadline shared by
    /// all; [`Wait::No`]: each must be free at once). On any failure every claim made
    /// so far is given back.
    pub async fn hold_all(&self, claims: &[Claim], wait: Wait) -> Result<Held> {
        self.hold_all_with(claims, wait, |_, _| {}, std::future::pending())
            .await
    }

    /// [`Locks::hold_all`], telling `progress` which claim waits and where it stands,
    /// and giving up when `cancel` completes ([`Error::LockCancelled`]).
    pub async fn hold_all_with(
        &self,
        claims: &[Claim],
        wait: Wait,
        mut progress: impl FnMut(&Claim, &Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Held> {
        let ordered = in_global_order(&self.namespace, claims)?;
        let deadline = match wait {
            Wait::AtMost(limit) => Some(tokio::time::Instant::now() + limit),
            Wait::Forever | Wait::No => None,
        };
        tokio::pin!(cancel);
        let mut guards = Vec::with_capacity(ordered.len());
        for claim in &ordered {
            let this_wait = match (wait, deadline) {
                (Wait::AtMost(_), Some(deadline)) => {
                    Wait::AtMost(deadline.saturating_duration_since(tokio::time::Instant::now()))
                }
                (other, _) => other,
            };
            let taken = self
                .acquire_with(claim, this_wait, |p| progress(claim, p), cancel.as_mut())
                .await;
            match taken {
                Ok(guard) => guards.push(guard),
                Err(error) => {
                    // Best effort: an unreleased claim expires after its ttl anyway.
                    let _ = Held::new(guards).release().await;
                    return Err(error);
                }
            }
        }
        Ok(Held { guards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_ordered_by_kind_then_name_whatever_order_they_came_in() {
        let given = [
            Claim::semaphore("gpus", "h"),
            Claim::mutex("db", "h"),
            Claim::read("cfg", "h"),
            Claim::mutex("cache", "h"),
        ];
        let mut reversed = given.clone();
        reversed.reverse();
        for claims in [&given[..], &reversed[..]] {
            let ordered: Vec<String> = in_global_order("default", claims)
                .unwrap()
                .iter()
                .map(|c| format!("{}/{}", c.kind.word(), c.lock))
                .collect();
            assert_eq!(
                ordered,
                ["mutex/cache", "mutex/db", "rwmutex/cfg", "semaphore/gpus"]
            );
        }
    }

    #[test]
    fn a_lock_named_twice_is_a_usage_error_even_read_and_write() {
        let twice = [Claim::read("cfg", "h"), Claim::write("cfg", "h")];
        let error = in_global_order("default", &twice).unwrap_err();
        assert!(
            matches!(&error, Error::Usage { argument, .. } if argument == "rwmutex/cfg"),
            "{error}"
        );
        let distinct = [Claim::mutex("x", "h"), Claim::semaphore("x", "h")];
        assert_eq!(in_global_order("default", &distinct).unwrap().len(), 2);
    }
}
