//! A lock's claim kept alive: its Permit renewed in the background (the held-claim
//! machinery every kind shares is [`crate::claims::held`]), each acknowledged renewal
//! offered to the client's watch of its claims.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use konductor_api::locks::Permit;
use kube::api::Api;
use tokio::sync::Notify;

use super::watch::ClaimWatch;
use crate::claims::held::{Chain, Renewal, Timing, renew_periodically, send_renewal};

/// A claim being kept: its Permit, its chain of acknowledgements, and the task renewing
/// it.
pub struct Session {
    pub permits: Api<Permit>,
    pub name: String,
    pub uid: String,
    pub timing: Timing,
    pub watch: Arc<ClaimWatch>,
    chain: Mutex<Chain>,
    /// Set when a renewal found the Permit gone (or replaced).
    gone: AtomicBool,
    renew_now: Notify,
}

impl Session {
    /// A session for the Permit `name` (`uid`) whose first write was sent at `sent`.
    pub fn new(
        permits: Api<Permit>,
        permit: &Permit,
        timing: Timing,
        watch: Arc<ClaimWatch>,
        chain: Chain,
    ) -> Arc<Self> {
        use kube::ResourceExt;
        Arc::new(Self {
            permits,
            name: permit.name_any(),
            uid: permit.uid().unwrap_or_default(),
            timing,
            watch,
            chain: Mutex::new(chain),
            gone: AtomicBool::new(false),
            renew_now: Notify::new(),
        })
    }

    /// The chain as it stands.
    pub fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a renewal found the Permit gone.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Asks for a renewal now (besides the regular ones).
    pub fn renew_soon(&self) {
        self.renew_now.notify_one();
    }

    /// Renews the claim every `renew_every` (and when asked) until dropped.
    pub async fn renew(self: Arc<Self>) {
        renew_periodically(&self.timing, Some(&self.renew_now), || self.renew_once()).await;
    }

    /// One renewal, abandoned after `request_timeout`.
    async fn renew_once(&self) {
        let sent = Instant::now();
        match send_renewal(&self.permits, &self.name, &self.uid, &self.timing).await {
            Renewal::Acknowledged(permit) => {
                self.chain()
                    .acknowledged(sent, Instant::now(), &self.timing);
                self.watch.offer_permit(permit);
            }
            Renewal::Gone => {
                self.gone.store(true, Ordering::SeqCst);
                self.watch.poke(&self.name);
            }
            Renewal::Unanswered => {}
        }
    }
}
