//! A held claim kept alive — a lock's Permit, a WaitGroup member — whatever its kind:
//! renewed in the background, every renewal answered in time or counted against the
//! claim ([`Chain`]), the timing that says until when it can be trusted ([`Timing`]),
//! and why it was lost ([`Loss`]).
//!
//! The controller expires a claim a ttl after the last renewal it saw, and reads it
//! afresh before it takes it away. So a holder that counts from when its last
//! *acknowledged* renewal was *sent* — which the controller saw no earlier — and stops
//! a margin before a ttl has passed is gone before anyone else can be granted what it
//! held. That holds as long as its renewals were acknowledged without a gap since the
//! grant was made; a claim whose acknowledgements had a gap (a partition, an outage)
//! checks with a fresh read that it still holds before it trusts it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::Notify;

use crate::patches::SpecPatch;

/// The timing a holder keeps for a lock's ttl (`docs/locks.md`, "What a holder can rely
/// on"): renew six times per ttl; stop using the grant a fifth of the ttl before a ttl
/// has passed since the last acknowledged renewal was sent; give a command half that
/// margin between SIGTERM and SIGKILL; abandon a renewal once its answer could no
/// longer keep the grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The lock's `spec.ttl`.
    pub ttl: Duration,
    /// How often the claim is renewed.
    pub renew_every: Duration,
    /// How long before the ttl could run out the holder stops using the grant.
    pub margin: Duration,
    /// Between SIGTERM and SIGKILL when `run` stops a command (half the margin, so the
    /// command is gone with time to spare).
    pub grace: Duration,
    /// How long one renewal may take before it is abandoned.
    pub request_timeout: Duration,
}

impl Timing {
    /// The timing for a lock whose ttl is `ttl`.
    pub fn for_ttl(ttl: Duration) -> Self {
        let margin = ttl / 5;
        Self {
            ttl,
            renew_every: ttl / 6,
            margin,
            grace: margin / 2,
            request_timeout: ttl - margin,
        }
    }

    /// The time a grant is trusted after the renewal that keeps it was sent.
    pub fn trusted_for(&self) -> Duration {
        self.ttl - self.margin
    }

    /// How late every answer may come without the holder losing its grant:
    /// renewals go out every `renew_every`, so the newest acknowledged one is at most
    /// `renew_every` plus the delay old when the next is answered.
    pub fn tolerated_delay(&self) -> Duration {
        self.trusted_for().saturating_sub(self.renew_every)
    }

    /// How late every answer may come when, besides, one renewal is lost.
    pub fn tolerated_delay_with_one_lost(&self) -> Duration {
        self.trusted_for().saturating_sub(self.renew_every * 2)
    }
}

/// What is known of the claim's acknowledgements.
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    /// When the claim's first write (its create, or the first renewal of a claim found
    /// already there) was sent.
    pub started: Instant,
    /// Whether this process created the claim (a claim found already there has a past
    /// this process does not know).
    pub created_here: bool,
    /// When the newest acknowledged write was sent.
    pub last_ack_sent: Instant,
    /// Since when acknowledgements have come without a gap (`started` if never broken).
    pub unbroken_since: Instant,
    /// When a fresh read of the lock last confirmed the grant.
    pub confirmed_at: Option<Instant>,
}

impl Chain {
    /// A chain whose first acknowledged write was sent at `sent`.
    pub fn new(sent: Instant, created_here: bool) -> Self {
        Self {
            started: sent,
            created_here,
            last_ack_sent: sent,
            unbroken_since: sent,
            confirmed_at: None,
        }
    }

    /// Until when the grant can be trusted (a margin before the ttl could run out).
    pub fn trusted_until(&self, timing: &Timing) -> Instant {
        self.last_ack_sent + timing.trusted_for()
    }

    /// Notes that a write sent at `sent` was acknowledged at `now`.
    pub fn acknowledged(&mut self, sent: Instant, now: Instant, timing: &Timing) {
        if sent <= self.last_ack_sent {
            return;
        }
        if now >= self.trusted_until(timing) {
            // The trust ran out before this answer came: a gap.
            self.unbroken_since = now;
        }
        self.last_ack_sent = sent;
    }

    /// Whether a grant seen now can be used without asking the lock again: the claim
    /// was created here and acknowledged without a gap ever since (so no grant made
    /// since can have been taken away unnoticed), or the lock confirmed it after the
    /// last gap.
    pub fn grant_is_trusted(&self) -> bool {
        (self.created_here && self.unbroken_since == self.started)
            || self
                .confirmed_at
                .is_some_and(|at| at >= self.unbroken_since)
    }
}

/// Why a grant was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loss {
    /// The server did not acknowledge a renewal in time: the newest acknowledged one was
    /// sent `since` ago, and a grant is trusted only `trusted_for` after it.
    Jeopardy {
        /// How long ago the newest acknowledged renewal was sent.
        since: Duration,
        /// How long a grant is trusted after a renewal was sent.
        trusted_for: Duration,
    },
    /// The controller expired the grant (no renewal seen within the ttl).
    Expired,
    /// The Permit (or the lock) was deleted.
    Deleted,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use konductor_api::duration::human_duration;
        match self {
            Loss::Jeopardy { since, trusted_for } => write!(
                f,
                "the server acknowledged no renewal in time (the last acknowledged one was sent {} ago; a grant is trusted for {} after it)",
                human_duration(*since),
                human_duration(*trusted_for)
            ),
            Loss::Expired => {
                f.write_str("the grant expired (no renewal reached the controller within the ttl)")
            }
            Loss::Deleted => f.write_str("its permit (or the lock) was deleted"),
        }
    }
}

/// Calls `renew_once` every `renew_every` of `timing` (and whenever `renew_now` is
/// notified) until dropped. Renewals do not wait for each other: a slow answer does not
/// hold the next renewal back. Every held claim (a Permit, a WaitGroup member) is
/// renewed this way.
pub(crate) async fn renew_periodically<F, Fut>(
    timing: &Timing,
    renew_now: Option<&Notify>,
    mut renew_once: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + timing.renew_every,
        timing.renew_every,
    );
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let asked = || async {
        match renew_now {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = every.tick() => in_flight.push(renew_once()),
            () = asked() => in_flight.push(renew_once()),
            Some(()) = in_flight.next() => {}
        }
    }
}

/// What one renewal came to.
pub(crate) enum Renewal<K> {
    /// The server acknowledged it: the claim as it now is.
    Acknowledged(K),
    /// The claim is gone, or replaced by another of its name.
    Gone,
    /// No answer in time, or an error worth no more than a retry.
    Unanswered,
}

/// Bumps `spec.renewTime` of the claim `name` — only the one with `uid`: a
/// precondition — giving up after `request_timeout`.
pub(crate) async fn send_renewal<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    timing: &Timing,
) -> Renewal<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = SpecPatch::of_uid(
        uid,
        crate::patches::Renewal {
            renew_time: MicroTime(Timestamp::now()),
        },
    );
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    match tokio::time::timeout(timing.request_timeout, api.patch(name, &params, &patch)).await {
        Ok(Ok(claim)) => Renewal::Acknowledged(claim),
        Ok(Err(kube::Error::Api(status))) if matches!(status.code, 404 | 409) => Renewal::Gone,
        Ok(Err(error)) => {
            tracing::debug!(%error, claim = name, "renewing the claim");
            Renewal::Unanswered
        }
        Err(_) => {
            tracing::debug!(claim = name, "a renewal went unanswered; abandoned");
            Renewal::Unanswered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn the_timing_of_the_shortest_ttl_leaves_room_for_slow_answers() {
        let timing = Timing::for_ttl(konductor_api::locks::MIN_TTL);
        assert_eq!(timing.renew_every.as_millis(), 333);
        assert_eq!(timing.margin, Duration::from_millis(400));
        assert_eq!(timing.grace, Duration::from_millis(200));
        // Answers 1.2 s late, or 0.9 s late with a renewal lost, keep the grant.
        assert!(timing.tolerated_delay() >= Duration::from_millis(1200));
        assert!(timing.tolerated_delay_with_one_lost() >= Duration::from_millis(900));
        // The command is killed before the ttl can run out: SIGKILL comes a grace
        // after the trust ends, with time to spare for the kill itself.
        assert!(timing.trusted_for() + timing.grace < timing.ttl);
    }

    #[test]
    fn a_grant_is_trusted_while_acknowledgements_come_without_a_gap() {
        let timing = Timing::for_ttl(TTL);
        let start = Instant::now();
        let mut chain = Chain::new(start, true);
        assert!(chain.grant_is_trusted());
        // Renewals answered in time move the trust on.
        chain.acknowledged(
            start + Duration::from_secs(2),
            start + Duration::from_secs(3),
            &timing,
        );
        assert_eq!(
            chain.trusted_until(&timing),
            start + Duration::from_secs(10)
        );
        assert!(chain.grant_is_trusted());
        // An answer that comes after the trust ran out: a gap.
        chain.acknowledged(
            start + Duration::from_secs(9),
            start + Duration::from_secs(11),
            &timing,
        );
        assert!(!chain.grant_is_trusted());
        // A fresh read of the lock after the gap restores it.
        chain.confirmed_at = Some(start + Duration::from_secs(12));
        assert!(chain.grant_is_trusted());
    }

    #[test]
    fn an_older_answer_changes_nothing_and_a_claim_found_there_is_not_trusted_blindly() {
        let timing = Timing::for_ttl(TTL);
        let start = Instant::now();
        let mut chain = Chain::new(start, true);
        chain.acknowledged(
            start + Duration::from_secs(4),
            start + Duration::from_secs(5),
            &timing,
        );
        chain.acknowledged(
            start + Duration::from_secs(2),
            start + Duration::from_secs(6),
            &timing,
        );
        assert_eq!(chain.last_ack_sent, start + Duration::from_secs(4));
        assert!(!Chain::new(start, false).grant_is_trusted());
    }
}
