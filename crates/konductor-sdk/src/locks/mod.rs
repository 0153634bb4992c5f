//! Locks from Rust: hold a Semaphore permit, a Mutex, or one side of an RWMutex, kept
//! alive in the background and released when the [`Guard`] goes.
//!
//! Acquiring creates the holder's Permit (named by `permit_name`, so asking twice is
//! the same create; owned by the lock, so deleting the lock releases it; labelled with
//! this client's [`CLIENT_LABEL`]), renews it while it waits and while it holds, and
//! learns of its grant from its Permit's status, which the controller writes right
//! after the lock's — the client watches its own Permits and nothing else, so what a
//! waiter receives does not grow with the queue. The lock is read when the claim is
//! made, and again every so often while it waits (its place in the queue, a refusal),
//! never watched. A grant is only as good as the last renewal the
//! server acknowledged: [`Guard::lost`] resolves — stop using what the lock protects —
//! a margin before a ttl has passed since that renewal was sent ([`Timing`]), or when
//! the grant expires or the Permit is deleted. Dropping the guard (or
//! [`Guard::release`]) deletes the Permit; giving up a wait withdraws the claim.
//!
//! ```no_run
//! # async fn example() -> konductor_sdk::Result<()> {
//! use konductor_sdk::locks::{Claim, Locks, Wait};
//! use konductor_sdk::{ConnectOptions, connect};
//!
//! let locks = Locks::new(&connect(&ConnectOptions::default()).await?);
//! let guard = locks.acquire(&Claim::mutex("db-migrate", "job-7"), Wait::Forever).await?;
//! println!("migrating with fencing token {}", guard.token());
//! guard.release().await?;
//! # Ok(())
//! # }
//! ```

mod claim;
mod several;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use konductor_api::locks::{
    CLIENT_LABEL, LockKind, Permit, PermitMode, PermitPhase, PermitSpec, permit_name,
};
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::{Client, ResourceExt};
use tokio::sync::watch as channel;

use self::claim::Session;
use self::watch::{ClaimWatch, LockPresence, LockView, Seen, version_number};
use crate::claims::held::Chain;
pub use crate::claims::held::{Loss, Timing};
use crate::claims::{Asked, ask, withdraw};
use crate::connect::Connection;
use crate::error::{Error, Request, Result};
use crate::patches::{LabelPatch, SpecPatch};
use crate::subjects::Subjects;
pub use several::{Held, in_global_order};

/// What to ask for: which lock, as whom, how.
#[derive(Clone, Debug)]
pub struct Claim {
    /// Which kind of the lock family.
    pub kind: LockKind,
    /// The lock's name.
    pub lock: String,
    /// Who asks.
    pub holder: String,
    /// Exclusive, or Shared (an RWMutex read lock).
    pub mode: PermitMode,
    /// Higher is granted first.
    pub priority: i32,
    /// A claim on a Once: the key it asks to have run (`None`: the Once's `spec.key`).
    pub key: Option<String>,
}

impl Claim {
    /// A claim of a `kind` lock (any kind of the lock family) by `holder`.
    pub fn new(kind: LockKind, lock: &str, holder: &str, mode: PermitMode) -> Self {
        Self {
            kind,
            lock: lock.to_owned(),
            holder: holder.to_owned(),
            mode,
            priority: 0,
            key: None,
        }
    }

    /// One of a Semaphore's permits.
    pub fn semaphore(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::Semaphore, lock, holder, PermitMode::Exclusive)
    }

    /// A Mutex.
    pub fn mutex(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::Mutex, lock, holder, PermitMode::Exclusive)
    }

    /// An RWMutex for reading (beside other readers).
    pub fn read(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::RWMutex, lock, holder, PermitMode::Shared)
    }

    /// An RWMutex for writing (alone).
    pub fn write(lock: &str, holder: &str) -> Self {
        Self::new(LockKind::RWMutex, lock, holder, PermitMode::Exclusive)
    }

    /// Sets the priority (higher is granted first).
    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The name of this claim's Permit.
    pub fn permit_name(&self) -> String {
        permit_name(self.kind, &self.lock, &self.holder)
    }
}

/// How long [`Locks::acquire`] waits for the grant.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Until it is granted.
    Forever,
    /// Not at all: if the claim is queued, withdraw it and fail with [`Error::LockBusy`].
    No,
    /// At most this long, then withdraw and fail with [`Error::LockTimeout`]. The
    /// controller's first answer is always awaited (within [`NO_ANSWER`]), so a zero
    /// wait still takes a free lock.
    AtMost(Duration),
}

/// How long a claim waits for the controller's first answer before concluding that
/// no controller is running.
pub const NO_ANSWER: Duration = Duration::from_secs(10);

/// The longest pause between attempts to reconnect a lock's watches.
const RECONNECT_CAP: Duration = Duration::from_millis(500);

/// How long the watch of a client's claims stays open after its last follower goes, so
/// that a process taking locks again and again does not set it up every time.
const WATCH_LINGER: Duration = Duration::from_secs(30);

/// How often a waiting claim reads its lock again — for its place in the queue and
/// whether the controller still accepts the lock's spec: its renewal period, within
/// these bounds (the grant itself comes through the claim's own Permit, at once).
const LOCK_REREAD: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(30));

/// How long a claim waits before it first reads its lock again: most grants come
/// sooner, and cost no read.
const FIRST_REREAD: Duration = Duration::from_secs(1);

/// Giving a claim back (releasing or withdrawing) retries a delete the server did not
/// answer for at most this long (or the lock's ttl, if shorter: the claim expires then
/// anyway).
const GIVE_BACK_BOUND: Duration = Duration::from_secs(30);

/// How long giving back a grant that was already lost may take: the holder exits
/// within a second of stopping its command (see [`Guard::release_lost`]).
pub const LOST_RELEASE_BOUND: Duration = Duration::from_millis(200);

/// Where a waiting claim stands, for progress reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Whether the controller has answered the claim yet.
    pub answered: bool,
    /// Its place in the queue (1 is next), when the lock's status shows it (the lock is
    /// read a second after the claim is made, then every renewal period — at most
    /// every 30 s — while the claim waits; none before).
    pub position: Option<usize>,
    /// How many wait in all.
    pub waiting: usize,
    /// Who holds the lock.
    pub holders: Vec<String>,
    /// Set while a watch is reconnecting: why it broke.
    pub reconnecting: Option<String>,
}

/// The locks of one namespace.
#[derive(Clone)]
pub struct Locks {
    client: Client,
    namespace: String,
    url: String,
    permits: Api<Permit>,
    /// This client's value of [`CLIENT_LABEL`] on the Permits it makes.
    id: Arc<str>,
    /// The watch of this client's Permits, while one is followed (and a while after).
    watch: Arc<std::sync::Mutex<Option<Arc<ClaimWatch>>>>,
}

/// A value of [`CLIENT_LABEL`] no other client has: the process, the time and a
/// count.
fn client_id() -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{nanos:x}-{count}", std::process::id())
}

/// Where a claim stands, from everything seen of it.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// Granted with this token (by the lock's status or the Permit's own).
    Granted { token: i64 },
    /// The controller has queued it.
    Queued,
    /// No answer yet.
    Undecided,
    /// The Permit (or the lock) went.
    Gone(&'static str),
}

/// What one claim has seen so far.
struct Follow {
    /// Whether the watch has shown this Permit (after which its absence means deleted).
    shown: bool,
    /// Whether the controller has answered the claim (queued or granted it).
    answered: bool,
    /// The resourceVersion the Permit was created (or found) at: a lock status older than
    /// it cannot have judged it.
    since: Option<u64>,
    /// The claim's latest read of its lock.
    lock: LockPresence,
}

impl Follow {
    /// Where the claim on the Permit `name` (`uid`) stands; `gone` when a renewal found
    /// it gone.
    fn standing(
        &mut self,
        name: &str,
        uid: &str,
        gone: bool,
        holder: &str,
        seen: &Seen,
    ) -> Standing {
        if gone {
            return Standing::Gone("its permit was deleted");
        }
        let permit = seen.permits.get(name);
        let ours = permit.filter(|p| p.uid().as_deref() == Some(uid));
        match (permit, ours) {
            (_, Some(_)) => self.shown = true,
            // Another Permit of the same name: a later one means ours went; before ours
            // was shown, it is an earlier one whose deletion the watch has not shown yet
            // (a renewal would find a later one: the uid is its precondition).
            (Some(_), None) if self.shown => {
                return Standing::Gone("its permit was deleted (another took its name)");
            }
            (None, _) if self.shown => return Standing::Gone("its permit was deleted"),
            _ => {}
        }
        let lock = match &self.lock {
            LockPresence::Present(lock) => Some(lock),
            LockPresence::Absent => return Standing::Gone("the lock was deleted"),
            LockPresence::Unknown => None,
        };
        if let Some(lock) = lock
            && let Some(grant) = lock.grant_of(uid)
        {
            return Standing::Granted { token: grant.token };
        }
        // Only this Permit's own status counts: an earlier one's says nothing of it.
        let own = ours.and_then(|p| p.status.as_ref());
        if let Some(status) = own
            && status.phase == PermitPhase::Granted
            && let Some(token) = status.fencing_token
        {
            return Standing::Granted { token };
        }
        if self.answered {
            // Queued or not no longer matters: only a grant (or a loss) does.
            return Standing::Queued;
        }
        let judged_by_lock = lock.is_some_and(|lock| {
            lock.version
                .zip(self.since)
                .is_some_and(|(lock, since)| lock > since)
                && lock.status.claims.waiting.iter().any(|w| w == holder)
        });
        let queued_by_permit =
            own.is_some_and(|s| s.phase == PermitPhase::Pending && s.position.is_some());
        if judged_by_lock || queued_by_permit {
            Standing::Queued
        } else {
            Standing::Undecided
        }
    }
}

fn progress_of(claim: &Claim, lock: &LockPresence, seen: &Seen, answered: bool) -> Progress {
    let (lock, holders) = match lock {
        LockPresence::Present(lock) => (Some(&lock.status), lock.holders()),
        _ => (None, Vec::new()),
    };
    Progress {
        answered,
        position: lock
            .and_then(|s| s.claims.waiting.iter().position(|h| *h == claim.holder))
            .map(|p| p + 1),
        waiting: lock.map_or(0, |s| s.claims.waiting.len()),
        holders,
        reconnecting: seen.reconnecting.clone(),
    }
}

impl Locks {
    /// Locks in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            client: connection.client.clone(),
            namespace: connection.namespace.clone(),
            url: connection.url.clone(),
            permits: Api::namespaced(connection.client.clone(), &connection.namespace),
            id: client_id().into(),
            watch: Arc::default(),
        }
    }

    fn request<'a>(
        &'a self,
        claim: &'a Claim,
        verb: &'static str,
        resource: &'static str,
    ) -> Request<'a> {
        Request {
            kind: claim.kind.word(),
            namespace: &self.namespace,
            name: &claim.lock,
            verb,
            resource,
            url: &self.url,
        }
    }

    fn failed(&self, claim: &Claim, message: impl Into<String>) -> Error {
        Error::Api {
            kind: claim.kind.word(),
            namespace: self.namespace.clone(),
            name: claim.lock.clone(),
            message: message.into(),
        }
    }

    /// The watch of this client's Permits, started if nobody here follows one now.
    fn watch(&self) -> Arc<ClaimWatch> {
        let mut slot = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(watch) = &*slot {
            return watch.clone();
        }
        let watch = Arc::new(ClaimWatch::start(
            &self.client,
            &self.namespace,
            &self.id,
            RECONNECT_CAP,
        ));
        *slot = Some(watch.clone());
        // Closed once nobody has followed it for WATCH_LINGER (when only the slot holds it).
        let (slot, idle) = (Arc::downgrade(&self.watch), Arc::downgrade(&watch));
        tokio::spawn(async move {
            let mut unused_since: Option<tokio::time::Instant> = None;
            loop {
                tokio::time::sleep(WATCH_LINGER / 4).await;
                let (Some(slot), Some(watch)) = (slot.upgrade(), idle.upgrade()) else {
                    return;
                };
                let mut slot = slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // The slot's and this task's references are the only ones: unused.
                if Arc::strong_count(&watch) > 2 {
                    unused_since = None;
                    continue;
                }
                let since = *unused_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WATCH_LINGER {
                    *slot = None;
                    return;
                }
            }
        });
        watch
    }

    /// The claim's lock, read now. [`Error::NotFound`] if it does not exist.
    async fn lock_of(&self, claim: &Claim) -> Result<LockView> {
        let lock = self.of_kind(claim.kind).get(&claim.lock).await?;
        Ok(LockView::of(&lock))
    }

    /// The claim's lock read again within `bound`: `None` when the read failed or took
    /// longer (the caller goes on with what it knew).
    async fn reread(&self, claim: &Claim, bound: Duration) -> Option<LockPresence> {
        let locks = self.of_kind(claim.kind).api;
        match tokio::time::timeout(bound, locks.get_opt(&claim.lock)).await {
            Ok(Ok(Some(lock))) => Some(LockPresence::Present(LockView::of(&lock))),
            Ok(Ok(None)) => Some(LockPresence::Absent),
            Ok(Err(error)) => {
                tracing::debug!(%error, lock = %claim.lock, "reading the lock");
                None
            }
            Err(_) => None,
        }
    }

    /// Creates the claim's Permit (or finds the one this holder already has: then says
    /// so with `true`), owned by `lock`.
    async fn ask(&self, claim: &Claim, lock: &LockView) -> Result<(Permit, Chain, bool)> {
        let name = claim.permit_name();
        let mut permit = Permit::for_lock(
            PermitSpec::new(claim.kind, &claim.lock, &claim.holder)
                .with_mode(claim.mode)
                .with_priority(claim.priority)
                .with_key(claim.key.clone()),
            &lock.uid,
        );
        permit.spec.renew_time = Some(MicroTime(Timestamp::now()));
        permit
            .labels_mut()
            .insert(CLIENT_LABEL.to_owned(), self.id.to_string());
        for _ in 0..3 {
            let sent = Instant::now();
            let existing = match ask(&self.permits, &permit)
                .await
                .map_err(|f| self.request(claim, f.verb, "permits").error(f.error))?
            {
                Asked::Created(created) => return Ok((created, Chain::new(sent, true), false)),
                Asked::Found(existing) => existing,
                Asked::Vanished => continue, // released meanwhile: ask again
            };
            let expired = existing
                .status
                .as_ref()
                .is_some_and(|s| s.phase == PermitPhase::Expired);
            if !expired {
                // This holder's claim, made before: carried on (its past unknown here, so
                // not trusted until renewed and confirmed), and followed by this client.
                self.take_over(claim, &existing).await?;
                let now = Instant::now();
                let mut chain = Chain::new(now, false);
                chain.last_ack_sent = now.checked_sub(lock.ttl).unwrap_or(now);
                return Ok((existing, chain, true));
            }
            // An expired claim of this holder: asked anew (at the back of the queue).
            let _ = withdraw(
                &self.permits,
                &name,
                existing.uid().as_deref(),
                Duration::ZERO,
            )
            .await;
        }
        Err(self.failed(
            claim,
            format!("could not create permit {name}: it keeps being re-created"),
        ))
    }

    /// Labels a claim made by another client (an earlier process of the same holder) as
    /// this client's, so this client's watch sees it.
    async fn take_over(&self, claim: &Claim, existing: &Permit) -> Result<()> {
        if existing.labels().get(CLIENT_LABEL).map(String::as_str) == Some(&*self.id) {
            return Ok(());
        }
        let uid = existing.uid().unwrap_or_default();
        let patch = LabelPatch::of_uid(&uid, CLIENT_LABEL, &self.id);
        match self
            .permits
            .patch(
                &existing.name_any(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone meanwhile: the wait finds it gone.
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
            Err(error) => Err(self.request(claim, "patch", "permits").error(error)),
        }
    }

    /// Asks for the lock and waits (as `wait` says) until it is granted. Asking again
    /// for a claim this holder already has carries it on ([`Guard::reentered`]).
    pub async fn acquire(&self, claim: &Claim, wait: Wait) -> Result<Guard> {
        self.acquire_with(claim, wait, |_| {}, std::future::pending())
            .await
    }

    /// [`Locks::acquire`], telling `progress` where the claim stands while it waits, and
    /// giving up when `cancel` completes (a signal, say): the claim is then withdrawn
    /// (as it is when the wait times out or fails) and the error is
    /// [`Error::LockCancelled`].
    ///
    /// Fails at once with [`Error::NotFound`] if the lock does not exist and with
    /// [`Error::LockRefused`] if the controller refuses its spec; without an answer from
    /// a controller within [`NO_ANSWER`], [`Wait::No`] fails with
    /// [`Error::NoController`] (and waits report it in [`Progress::answered`]).
    pub async fn acquire_with(
        &self,
        claim: &Claim,
        wait: Wait,
        mut progress: impl FnMut(&Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Guard> {
        let lock = self.lock_of(claim).await?;
        if let Some(why) = lock.refusal() {
            return Err(self.refused(claim, why));
        }
        let watch = self.watch();
        let timing = Timing::for_ttl(lock.ttl);
        let (permit, chain, reentered) = self.ask(claim, &lock).await?;
        let session = Session::new(self.permits.clone(), &permit, timing, watch, chain);
        let renewer = tokio::spawn(session.clone().renew());
        if reentered {
            session.renew_soon();
        }
        let mut pending = PendingClaim {
            session: Some(session.clone()),
            renewer: Some(renewer),
        };
        let mut follow = Follow {
            shown: false,
            answered: false,
            since: version_number(permit.resource_version().as_deref()),
            lock: LockPresence::Present(lock),
        };
        let outcome = self
            .wait_for_grant(claim, wait, &session, &mut follow, &mut progress, cancel)
            .await;
        match outcome {
            Ok(token) => {
                let (session, renewer) = pending.disarm();
                Ok(Guard::start(
                    self, claim, session, renewer, token, reentered,
                ))
            }
            Err(error) => {
                pending.give_back().await;
                Err(error)
            }
        }
    }

    fn refused(&self, claim: &Claim, why: String) -> Error {
        Error::LockRefused {
            kind: claim.kind.word(),
            namespace: self.namespace.clone(),
            name: claim.lock.clone(),
            message: why,
        }
    }

    /// Waits until the claim's grant can be used; its token.
    async fn wait_for_grant(
        &self,
        claim: &Claim,
        wait: Wait,
        session: &Session,
        follow: &mut Follow,
        progress: &mut impl FnMut(&Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<i64> {
        tokio::pin!(cancel);
        let started = Instant::now();
        let reread_every = session
            .timing
            .renew_every
            .clamp(LOCK_REREAD.0, LOCK_REREAD.1);
        // A claim granted within FIRST_REREAD never reads its lock again; one that waits
        // reads it then (its place and the holders, for progress), and every
        // `reread_every` after.
        let mut next_reread = started + FIRST_REREAD;
        let mut early_rereads = 0;
        let mut read_since = LockPresence::Unknown;
        let mut changes = session.watch.subscribe(&session.name);
        let mut last_progress: Option<Progress> = None;
        // A fresh read that did not confirm the grant is not repeated until something
        // changes.
        let mut unconfirmed = false;
        loop {
            let now = Instant::now();
            let (standing, report, refused) = {
                let seen = session.watch.seen();
                let standing = follow.standing(
                    &session.name,
                    &session.uid,
                    session.is_gone(),
                    &claim.holder,
                    &seen,
                );
                follow.answered |= standing != Standing::Undecided;
                (
                    standing,
                    progress_of(claim, &read_since, &seen, follow.answered),
                    seen.refused.clone(),
                )
            };
            if let Some(why) = refused {
                return Err(self.failed(
                    claim,
                    format!("the server refuses to show the lock's permits: {why}"),
                ));
            }
            if let LockPresence::Present(lock) = &follow.lock
                && let Some(why) = lock.refusal()
            {
                return Err(self.refused(claim, why));
            }
            match standing {
                Standing::Gone(why) => {
                    // A lock deleted takes its Permits with it: say which went.
                    let lock_gone = matches!(follow.lock, LockPresence::Absent)
                        || matches!(
                            self.reread(claim, session.timing.request_timeout).await,
                            Some(LockPresence::Absent)
                        );
                    let why = if lock_gone {
                        "the lock was deleted"
                    } else {
                        why
                    };
                    return Err(self.failed(claim, format!("no longer waiting: {why}")));
                }
                Standing::Granted { token } => {
                    let (trusted, fresh) = {
                        let chain = session.chain();
                        (
                            chain.grant_is_trusted(),
                            now < chain.trusted_until(&session.timing),
                        )
                    };
                    if trusted && fresh {
                        return Ok(token);
                    }
                    if !fresh {
                        // Learned of it too late to trust it: renew first.
                        session.renew_soon();
                    } else if !unconfirmed {
                        // Acknowledgements had a gap since the claim was made: is the
                        // grant still there? A fresh read of the lock says.
                        if let Some(read) = self.reread(claim, session.timing.request_timeout).await
                        {
                            follow.lock.offer(read);
                        }
                        let listed = matches!(&follow.lock, LockPresence::Present(lock)
                            if lock.grant_of(&session.uid).is_some_and(|g| g.token == token));
                        if listed {
                            session.chain().confirmed_at = Some(Instant::now());
                        } else {
                            unconfirmed = true;
                        }
                        continue;
                    }
                }
                Standing::Queued | Standing::Undecided => {
                    let waited = now - started;
                    let answered = follow.answered;
                    match wait {
                        Wait::No if standing == Standing::Queued => {
                            return Err(Error::LockBusy {
                                kind: claim.kind.word(),
                                namespace: self.namespace.clone(),
                                name: claim.lock.clone(),
                                holders: self.holders_now(claim, session, follow).await,
                            });
                        }
                        Wait::AtMost(limit) if answered && waited >= limit => {
                            return Err(Error::LockTimeout {
                                kind: claim.kind.word(),
                                namespace: self.namespace.clone(),
                                name: claim.lock.clone(),
                                holders: self.holders_now(claim, session, follow).await,
                            });
                        }
                        Wait::No | Wait::AtMost(_) if !answered && waited >= NO_ANSWER => {
                            return Err(Error::NoController {
                                kind: claim.kind.word(),
                                namespace: self.namespace.clone(),
                                name: claim.lock.clone(),
                                waited,
                            });
                        }
                        _ => {}
                    }
                    if last_progress.as_ref() != Some(&report) {
                        progress(&report);
                        last_progress = Some(report);
                    }
                }
            }
            // Look again on any change of the Permit, when the lock is due to be read
            // again, and at the next moment something is due.
            let next_due = match wait {
                Wait::AtMost(limit) if follow.answered => started + limit,
                _ if !follow.answered => started + NO_ANSWER,
                _ => now + Duration::from_secs(3600),
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(self.failed(claim, "the watch of its permit ended"));
                    }
                    unconfirmed = false;
                }
                () = tokio::time::sleep_until(next_reread.into()) => {
                    if let Some(read) = self.reread(claim, session.timing.request_timeout).await {
                        follow.lock.offer(read.clone());
                        read_since.offer(read);
                    }
                    // The lock's waiting list is written a moment after the claim's
                    // own status (later under load): a read that does not list it yet
                    // is tried again a second later, a few times.
                    let listed = matches!(&follow.lock, LockPresence::Present(lock)
                        if lock.status.claims.waiting.contains(&claim.holder));
                    next_reread = if !listed && early_rereads < 5 {
                        early_rereads += 1;
                        Instant::now() + FIRST_REREAD
                    } else {
                        Instant::now() + reread_every
                    };
                    unconfirmed = false;
                }
                () = tokio::time::sleep_until(next_due.into()) => {}
                () = &mut cancel => {
                    return Err(Error::LockCancelled {
                        kind: claim.kind.word(),
                        namespace: self.namespace.clone(),
                        name: claim.lock.clone(),
                    });
                }
            }
        }
    }

    /// Who holds the claim's lock, for a busy or timed-out claim's error: read now (the
    /// last read may be a renewal period old).
    async fn holders_now(
        &self,
        claim: &Claim,
        session: &Session,
        follow: &mut Follow,
    ) -> Vec<String> {
        if let Some(read) = self.reread(claim, session.timing.request_timeout).await {
            follow.lock.offer(read);
        }
        match &follow.lock {
            LockPresence::Present(lock) => lock.holders(),
            _ => Vec::new(),
        }
    }

    /// The `kind` locks of this namespace, through the path every kind's objects take.
    fn of_kind(&self, kind: LockKind) -> Subjects<DynamicObject> {
        Subjects::lock(&self.client, &self.url, &self.namespace, kind)
    }

    /// Creates a `kind` lock from its `spec` (a Semaphore's needs `permits`).
    /// [`Error::AlreadyExists`] if the name is taken, [`Error::Invalid`] (naming the
    /// field) if the server refuses the spec.
    pub async fn create(
        &self,
        kind: LockKind,
        name: &str,
        spec: &impl serde::Serialize,
    ) -> Result<DynamicObject> {
        /// A lock object's content beside its metadata.
        #[derive(serde::Serialize)]
        struct Content<'a, S: serde::Serialize> {
            spec: &'a S,
        }
        let mut object = DynamicObject::new(name, &kind.api_resource());
        object.data =
            serde_json::to_value(Content { spec }).map_err(|e| Error::Config(e.to_string()))?;
        self.of_kind(kind).create(&object).await
    }

    /// Deletes a `kind` lock; its Permits go with it. [`Error::NotFound`] if absent.
    pub async fn delete(&self, kind: LockKind, name: &str) -> Result<()> {
        self.of_kind(kind).delete(name).await
    }

    /// The `kind` lock `name` as the API server stores it. [`Error::NotFound`] if absent.
    pub async fn get(&self, kind: LockKind, name: &str) -> Result<DynamicObject> {
        self.of_kind(kind).get(name).await
    }

    /// The `kind` locks of the namespace (or of every namespace), by namespace and name.
    pub async fn list(&self, kind: LockKind, all_namespaces: bool) -> Result<Vec<DynamicObject>> {
        self.of_kind(kind).list(all_namespaces).await
    }

    /// The namespace these locks live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Releases `holder`'s claim on a lock (deletes its Permit, granted or not); says
    /// whether there was one. [`Error::NotFound`] if the lock itself does not exist.
    pub async fn release(&self, claim: &Claim) -> Result<bool> {
        match self
            .permits
            .delete(&claim.permit_name(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.of_kind(claim.kind)
                    .api
                    .get_metadata(&claim.lock)
                    .await
                    .map_err(|e| self.request(claim, "get", claim.kind.plural()).error(e))?;
                Ok(false)
            }
            Err(error) => Err(self.request(claim, "delete", "permits").error(error)),
        }
    }
}

/// A claim not granted yet: withdrawn unless disarmed — at once by [`PendingClaim::give_back`],
/// or in the background if the acquire is dropped mid-wait.
struct PendingClaim {
    session: Option<Arc<Session>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl PendingClaim {
    fn disarm(&mut self) -> (Arc<Session>, tokio::task::JoinHandle<()>) {
        (
            self.session.take().expect("disarmed once"),
            self.renewer.take().expect("disarmed once"),
        )
    }

    async fn give_back(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        if let Some(session) = self.session.take() {
            let bound = GIVE_BACK_BOUND.min(session.timing.ttl);
            if let Err(error) =
                withdraw(&session.permits, &session.name, Some(&session.uid), bound).await
            {
                tracing::warn!(%error, permit = %session.name, "withdrawing the claim");
            }
        }
    }
}

impl Drop for PendingClaim {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        if let (Some(session), Ok(runtime)) =
            (self.session.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let bound = GIVE_BACK_BOUND.min(session.timing.ttl);
                let _ = withdraw(&session.permits, &session.name, Some(&session.uid), bound).await;
            });
        }
    }
}

/// A granted lock: renewed in the background while it lives, released when dropped.
pub struct Guard {
    kind: LockKind,
    lock: String,
    namespace: String,
    session: Arc<Session>,
    token: i64,
    reentered: bool,
    lost: channel::Receiver<Option<Loss>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    given_back: bool,
}

impl Guard {
    fn start(
        locks: &Locks,
        claim: &Claim,
        session: Arc<Session>,
        renewer: tokio::task::JoinHandle<()>,
        token: i64,
        reentered: bool,
    ) -> Self {
        let (lost_sender, lost) = channel::channel(None);
        let keeper = tokio::spawn(keep(session.clone(), lost_sender));
        Self {
            kind: claim.kind,
            lock: claim.lock.clone(),
            namespace: locks.namespace.clone(),
            session,
            token,
            reentered,
            lost,
            tasks: vec![renewer, keeper],
            given_back: false,
        }
    }

    /// The grant's fencing token: pass it to what the lock protects.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The lock's kind.
    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// The lock's name.
    pub fn lock(&self) -> &str {
        &self.lock
    }

    /// The lock's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Permit's name.
    pub fn permit(&self) -> &str {
        &self.session.name
    }

    /// The timing this holder keeps (renewals, margin, grace).
    pub fn timing(&self) -> Timing {
        self.session.timing
    }

    /// Whether this holder already had a claim on the lock when it asked (it carried
    /// that claim on instead of making a new one).
    pub fn reentered(&self) -> bool {
        self.reentered
    }

    /// Why the grant was lost, once it is.
    pub fn loss(&self) -> Option<Loss> {
        self.lost.borrow().clone()
    }

    /// Resolves when the grant is lost (see [`Loss`]): stop using what the lock
    /// protects. It resolves a margin before the controller could expire the grant when
    /// renewals go unanswered, and stays resolved.
    pub async fn lost(&self) -> Loss {
        let mut lost = self.lost.clone();
        // The borrow ends here, so the future stays Send.
        let seen = lost
            .wait_for(Option::is_some)
            .await
            .map(|loss| loss.clone());
        match seen {
            Ok(loss) => loss.unwrap_or(Loss::Deleted),
            Err(_) => std::future::pending().await,
        }
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Stops renewing and watching, but keeps the grant: the Permit stays until it is
    /// deleted (`koncli mutex unlock`) or expires after the lock's ttl. For holders that
    /// outlive this process, such as a script between `lock` and `unlock`.
    pub fn detach(mut self) -> i64 {
        self.stop();
        self.given_back = true;
        self.token
    }

    /// Marks the claim *interrupting* (`spec.interrupting`): the work under the grant
    /// got a signal. Renewal goes on; for a Once, the attempt's end — or an expiry from
    /// now on — is then an interruption rather than a failure. Best effort: a failed
    /// write is logged (the end the holder reports says the same).
    pub async fn mark_interrupting(&self) {
        let patch = SpecPatch::of_uid(
            &self.session.uid,
            crate::patches::Interrupting { interrupting: true },
        );
        if let Err(error) = self
            .session
            .permits
            .patch(
                &self.session.name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(%error, permit = %self.session.name, "marking the claim interrupting");
        }
    }

    /// Releases the lock now (deletes the Permit), retrying while the server does not
    /// answer (at most 30 s, or the ttl if shorter); says whether that worked.
    pub async fn release(self) -> Result<()> {
        let bound = GIVE_BACK_BOUND.min(self.session.timing.ttl);
        self.release_within(bound).await
    }

    /// Gives a lost grant back: one quick try ([`LOST_RELEASE_BOUND`]) — the server was
    /// likely unreachable, and the claim expires by itself anyway; the holder must not
    /// linger for it.
    pub async fn release_lost(self) {
        if let Err(error) = self.release_within(LOST_RELEASE_BOUND).await {
            tracing::debug!(%error, "giving a lost grant back");
        }
    }

    async fn release_within(mut self, bound: Duration) -> Result<()> {
        self.stop();
        self.given_back = true;
        withdraw(
            &self.session.permits,
            &self.session.name,
            Some(&self.session.uid),
            bound,
        )
        .await
        .map_err(|message| Error::Api {
            kind: self.kind.word(),
            namespace: self.namespace.clone(),
            name: self.lock.clone(),
            message: format!("releasing: {message}"),
        })
    }
}

impl Drop for Guard {
    /// Released when dropped (in the background, if a runtime is still running).
    fn drop(&mut self) {
        self.stop();
        if self.given_back {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let session = self.session.clone();
            runtime.spawn(async move {
                let bound = GIVE_BACK_BOUND.min(session.timing.ttl);
                let _ = withdraw(&session.permits, &session.name, Some(&session.uid), bound).await;
            });
        }
    }
}

/// Watches a held grant until it is lost, then says why: its renewals went
/// unanswered too long, or its Permit was deleted or expired.
async fn keep(session: Arc<Session>, lost: channel::Sender<Option<Loss>>) {
    let mut changes = session.watch.subscribe(&session.name);
    let mut shown = false;
    loop {
        let now = Instant::now();
        let (last_ack_sent, trusted_until) = {
            let chain = session.chain();
            (chain.last_ack_sent, chain.trusted_until(&session.timing))
        };
        let loss = if now >= trusted_until {
            Some(Loss::Jeopardy {
                since: now - last_ack_sent,
                trusted_for: session.timing.trusted_for(),
            })
        } else if session.is_gone() {
            Some(Loss::Deleted)
        } else {
            let seen = session.watch.seen();
            let permit = seen.permits.get(&session.name);
            let ours = permit.filter(|p| p.uid().as_deref() == Some(session.uid.as_str()));
            shown |= ours.is_some();
            match (permit, ours) {
                // Another Permit of the same name after ours was shown: ours went. (Before,
                // it is an earlier one whose deletion the watch has not shown yet.)
                (Some(_), None) | (None, _) if shown => Some(Loss::Deleted),
                (_, Some(p))
                    if p.status
                        .as_ref()
                        .is_some_and(|s| s.phase == PermitPhase::Expired) =>
                {
                    Some(Loss::Expired)
                }
                _ => None,
            }
        };
        if let Some(loss) = loss {
            let _ = lost.send(Some(loss));
            return;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(trusted_until.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::locks::{PermitSpec, PermitStatus};

    fn permit(uid: &str, phase: PermitPhase, token: Option<i64>) -> Permit {
        let mut permit = Permit::new("mutex-m-a-x", PermitSpec::new(LockKind::Mutex, "m", "a"));
        permit.metadata.uid = Some(uid.to_owned());
        permit.status = Some(PermitStatus {
            phase,
            fencing_token: token,
            ..PermitStatus::default()
        });
        permit
    }

    fn seen_with(permit: Permit) -> Seen {
        let mut seen = Seen::default();
        seen.permits.insert(permit.name_any(), permit);
        seen
    }

    fn follow() -> Follow {
        Follow {
            shown: false,
            answered: false,
            since: None,
            lock: LockPresence::Unknown,
        }
    }

    #[test]
    fn an_earlier_permit_of_the_same_name_says_nothing_of_a_new_claim() {
        // The holder released (uid old, granted with token 7) and asked again (uid new):
        // the watch has not shown the release yet.
        let seen = seen_with(permit("old", PermitPhase::Granted, Some(7)));
        let standing = follow().standing("mutex-m-a-x", "new", false, "a", &seen);
        assert_eq!(standing, Standing::Undecided);
    }

    #[test]
    fn once_shown_a_claim_replaced_under_its_name_is_gone() {
        let mut follow = follow();
        let shown = seen_with(permit("new", PermitPhase::Pending, None));
        assert_eq!(
            follow.standing("mutex-m-a-x", "new", false, "a", &shown),
            Standing::Undecided
        );
        let replaced = seen_with(permit("later", PermitPhase::Pending, None));
        assert!(matches!(
            follow.standing("mutex-m-a-x", "new", false, "a", &replaced),
            Standing::Gone(_)
        ));
        let granted = seen_with(permit("new", PermitPhase::Granted, Some(3)));
        assert_eq!(
            super::tests::follow().standing("mutex-m-a-x", "new", false, "a", &granted),
            Standing::Granted { token: 3 }
        );
    }
}
