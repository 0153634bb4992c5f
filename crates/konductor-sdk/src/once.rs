//! Once: run a piece of work once per key across any number of replicas.
//!
//! [`Onces::run`] is the whole recipe: it creates the Once if absent, claims it for a
//! key and either runs the work — as the one executor, with a fencing token, cancelled
//! if the grant is lost — and records its outcome, or returns without running because
//! the work is already done for that key (by this process or another). The claim is a
//! Permit on the Once, renewed and watched exactly as a lock's (see [`crate::locks`]):
//! a claim not renewed within the Once's ttl is taken over by the next waiter.
//!
//! ```no_run
//! # async fn example(connection: konductor_sdk::Connection) -> konductor_sdk::Result<()> {
//! use konductor_sdk::once::{Onces, Ran};
//! let onces = Onces::new(&connection);
//! let ran = onces
//!     .run("db-migrate", Some("v42"), "web-7f9c", |token| async move {
//!         // migrate, storing `token` with the result
//!         Ok::<_, String>(token)
//!     })
//!     .await?;
//! if let Ran::AlreadyDone(done) = ran {
//!     println!("already migrated with token {}", done.fencing_token);
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use konductor_api::Outcome;
use konductor_api::locks::{LockKind, PermitMode};
use konductor_api::once::{
    Attempt, AttemptOutcome, CompletedKey, KeyStanding, Once, OnceSpec, OnceStatus,
    ReportedOutcome, effective_key,
};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::connect::Connection;
use crate::error::{Error, Result};
use crate::locks::{Claim, Guard, Locks, Loss, Progress, Wait};
use crate::patches::SpecPatch;
use crate::subjects::Subjects;
use crate::watching::follow_until;

/// The Onces of one namespace.
#[derive(Clone)]
pub struct Onces {
    subjects: Subjects<Once>,
    locks: Locks,
}

/// How a key ended, as the Once remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The work succeeded for the key.
    Succeeded(CompletedKey),
    /// Every allowed attempt failed.
    Failed(CompletedKey),
}

/// What claiming a Once came to.
pub enum Claimed {
    /// This claim executes: do the work, then [`Executor::report`].
    Execute(Box<Executor>),
    /// The key is finished: nothing to run.
    Finished(Finished),
}

/// What [`Onces::run`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran<T> {
    /// This call ran the work, with this fencing token, and it succeeded.
    Executed {
        /// The token the work ran under.
        token: i64,
        /// What the work returned.
        value: T,
    },
    /// The work was already done for the key: nothing ran.
    AlreadyDone(CompletedKey),
}

/// The one executor of a Once's key: holds the grant (renewed in the background) until
/// it reports.
pub struct Executor {
    guard: Guard,
    onces: Onces,
    name: String,
    key: String,
}

impl Executor {
    /// The fencing token to store with the work's result.
    pub fn token(&self) -> i64 {
        self.guard.token()
    }

    /// The key this executor runs the work for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The timing this executor keeps (renewals, margin, grace).
    pub fn timing(&self) -> crate::locks::Timing {
        self.guard.timing()
    }

    /// Gives the claim back without reporting (the work did not run, or was stopped):
    /// the attempt is recorded as lost and the next waiter may run.
    pub async fn abandon(self) {
        if let Err(error) = self.guard.release().await {
            tracing::warn!(%error, once = %self.name, "giving the claim back");
        }
    }

    /// Gives back a claim whose grant was lost: one quick try, so the caller exits
    /// promptly (the claim expires by itself anyway).
    pub async fn abandon_lost(self) {
        self.guard.release_lost().await;
    }

    /// Marks the claim interrupting: the work got a signal. From now on its end (or its
    /// claim's expiry, if this process is killed) is an interruption, which does not
    /// count toward `maxAttempts` (up to `maxInterruptions`).
    pub async fn mark_interrupting(&self) {
        self.guard.mark_interrupting().await;
    }

    /// Reports that the work was interrupted (it got a signal and did not succeed
    /// after it), as [`Executor::report`] does: the attempt is recorded as
    /// Interrupted.
    pub async fn report_interrupted(
        self,
        exit_code: Option<i32>,
        message: Option<String>,
    ) -> Result<Attempt> {
        self.report_outcome(Outcome::Failed, exit_code, message, true)
            .await
    }

    /// Resolves when the grant is lost (see [`Loss`]): stop the work.
    pub async fn lost(&self) -> Loss {
        self.guard.lost().await
    }

    /// Reports the work's outcome on the claim, waits until the Once records it and
    /// gives the claim back; returns the attempt as recorded (`late` if the grant had
    /// already expired: then it changed nothing).
    pub async fn report(
        self,
        result: Outcome,
        exit_code: Option<i32>,
        message: Option<String>,
    ) -> Result<Attempt> {
        self.report_outcome(result, exit_code, message, false).await
    }

    async fn report_outcome(
        self,
        result: Outcome,
        exit_code: Option<i32>,
        message: Option<String>,
        interrupted: bool,
    ) -> Result<Attempt> {
        let token = self.token();
        let outcome = ReportedOutcome {
            result,
            fencing_token: token,
            exit_code,
            message: message.map(|m| truncate(&m, konductor_api::once::MAX_OUTCOME_MESSAGE_LEN)),
            interrupted,
        };
        let permits: Api<konductor_api::locks::Permit> = Api::namespaced(
            self.onces.subjects.client.clone(),
            &self.onces.subjects.namespace,
        );
        let body = SpecPatch::new(crate::patches::Outcome { outcome: &outcome });
        // Through an outage the report is retried (the claim is renewed meanwhile) for
        // up to the ttl; if it cannot be made, the claim is given back, so the next
        // waiter need not wait for it to expire.
        let started = std::time::Instant::now();
        loop {
            match permits
                .patch(
                    self.guard.permit(),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await
            {
                Ok(_) => break,
                // An answer from the server is final; no answer is, once the ttl passed.
                Err(error)
                    if matches!(error, kube::Error::Api(_))
                        || started.elapsed() >= self.guard.timing().ttl =>
                {
                    let error = self
                        .onces
                        .subjects
                        .request(&self.name, "patch", "permits")
                        .error(error);
                    self.abandon().await;
                    return Err(error);
                }
                Err(error) => {
                    tracing::debug!(%error, once = %self.name, "reporting the outcome; retrying");
                    tokio::time::sleep(REPORT_RETRY).await;
                }
            }
        }
        let recorded = follow_until(
            self.onces.subjects.api.clone(),
            &self.name,
            move |once: &Once| {
                once.status
                    .as_ref()
                    .is_some_and(|s| reported_attempt(s, token).is_some())
            },
        );
        let once = recorded.await.map_err(|e| {
            self.onces.subjects.refused(
                &self.name,
                format!("waiting for the outcome to be recorded: {e}"),
            )
        })?;
        let attempt = once
            .as_ref()
            .and_then(|o| o.status.as_ref())
            .and_then(|s| reported_attempt(s, token))
            .cloned()
            .ok_or_else(|| self.onces.subjects.not_found(&self.name))?;
        self.guard.release().await?;
        Ok(attempt)
    }
}

/// The attempt with `token` that an executor's report produced (not the Lost entry
/// recorded when its grant expired first).
fn reported_attempt(status: &OnceStatus, token: i64) -> Option<&Attempt> {
    status
        .history
        .iter()
        .rev()
        .find(|a| a.fencing_token == token && a.outcome != AttemptOutcome::Lost)
}

/// `text` as one shell word: as it is when that is safe, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl Onces {
    /// Onces in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            subjects: Subjects::new(connection, "once", "onces"),
            locks: Locks::new(connection),
        }
    }

    /// The namespace these Onces live in.
    pub fn namespace(&self) -> &str {
        &self.subjects.namespace
    }

    /// Creates a Once. [`Error::AlreadyExists`] if the name is taken, [`Error::Invalid`]
    /// (naming the field) if the server refuses the spec.
    pub async fn create(&self, name: &str, spec: OnceSpec) -> Result<Once> {
        self.subjects.create(&Once::new(name, spec)).await
    }

    /// The Once `name`, created from `spec` if it does not exist yet (an existing one is
    /// left as it is).
    pub async fn ensure(&self, name: &str, spec: OnceSpec) -> Result<crate::Ensured<Once>> {
        self.subjects.ensure(&Once::new(name, spec)).await
    }

    /// The Once `name`. [`Error::NotFound`] if absent.
    pub async fn get(&self, name: &str) -> Result<Once> {
        self.subjects.get(name).await
    }

    /// Deletes a Once (its claims go with it): the work may run again.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.subjects.delete(name).await
    }

    /// The Onces of the namespace (or of every namespace), by namespace and name.
    pub async fn list(&self, all_namespaces: bool) -> Result<Vec<Once>> {
        self.subjects.list(all_namespaces).await
    }

    /// Lets `key` (`None`: the current key) run again: it is no longer remembered as
    /// finished, and if it is the current key its attempts start from 0. A key that
    /// *succeeded* is re-armed only with `force` (its work will run again); a key that
    /// is not finished has nothing to reset. Refused while an executor runs the key.
    /// Written over the version read, so it never undoes a decision the controller
    /// made meanwhile. Returns the Once as written and the key reset.
    pub async fn reset(
        &self,
        name: &str,
        key: Option<&str>,
        force: bool,
    ) -> Result<(Once, String)> {
        loop {
            let once = self.get(name).await?;
            let status = once.status.clone().unwrap_or_default();
            let key = key.map_or_else(|| status.key.clone(), str::to_owned);
            if status.executor.is_some() && status.key == key {
                return Err(self.subjects.refused(
                    name,
                    format!(
                        "{} is running key {key:?} (token {}): wait for it to finish, or delete the Once",
                        status.executor.as_deref().unwrap_or_default(),
                        status.claims.fencing_token
                    ),
                ));
            }
            match status.standing_of(&key) {
                KeyStanding::Succeeded(_) if !force => {
                    return Err(self.subjects.refused(
                        name,
                        format!(
                            "key {key:?} succeeded: resetting it makes its work run again; add --force if that is what you want"
                        ),
                    ));
                }
                KeyStanding::Open => {
                    return Err(self.subjects.refused(
                        name,
                        format!("key {key:?} is not finished: nothing to reset"),
                    ));
                }
                KeyStanding::Succeeded(_) | KeyStanding::Failed(_) => {}
            }
            let mut reset = once.clone();
            reset.status = Some(status.reset(&key));
            match self
                .subjects
                .api
                .replace_status(name, &PostParams::default(), &reset)
                .await
            {
                Ok(written) => return Ok((written, key)),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => {
                    return Err(self
                        .subjects
                        .request(name, "update", "onces/status")
                        .error(error));
                }
            }
        }
    }

    /// The key a claim for `key` asks for on `once`: `key`, else the Once's `spec.key`.
    fn key_for(once: &Once, key: Option<&str>) -> String {
        effective_key(key, once.spec.key.as_deref())
    }

    /// Claims the Once `name` for `key` as `holder` (the Once must exist: see
    /// [`Onces::ensure`]). Returns at once if the key is finished; otherwise waits
    /// (telling `progress` where the claim stands) until this claim is granted or the
    /// key is finished by another, or `cancel` completes ([`Error::LockCancelled`]).
    pub async fn claim(
        &self,
        name: &str,
        key: Option<&str>,
        holder: &str,
        progress: impl FnMut(&Progress),
        cancel: impl Future<Output = ()>,
    ) -> Result<Claimed> {
        let once = self.get(name).await?;
        let key = Self::key_for(&once, key);
        if let Some(finished) = finished(once.status.as_ref(), &key) {
            return Ok(Claimed::Finished(finished));
        }
        let claim = Claim {
            key: (!key.is_empty()).then(|| key.clone()),
            ..Claim::new(LockKind::Once, name, holder, PermitMode::Exclusive)
        };
        let watched_key = key.clone();
        let done = follow_until(self.subjects.api.clone(), name, move |once: &Once| {
            finished(once.status.as_ref(), &watched_key).is_some()
        });
        tokio::select! {
            acquired = self.locks.acquire_with(&claim, Wait::Forever, progress, cancel) => {
                Ok(Claimed::Execute(Box::new(Executor {
                    guard: acquired?,
                    onces: self.clone(),
                    name: name.to_owned(),
                    key,
                })))
            }
            seen = done => {
                // The claim is withdrawn now, not left queued until its ttl (the
                // caller may exit at once).
                if let Err(error) = self.locks.release(&claim).await {
                    tracing::debug!(%error, once = name, "withdrawing the claim");
                }
                let once = seen.map_err(|e| self.subjects.refused(name, format!("watching: {e}")))?;
                let Some(once) = once else {
                    return Err(self.subjects.not_found(name));
                };
                finished(once.status.as_ref(), &key)
                    .map(Claimed::Finished)
                    .ok_or_else(|| self.subjects.refused(name, "the key is not finished after all"))
            }
        }
    }

    /// Runs `work` once for `key` across every process that calls this: creates the
    /// Once if absent, and either runs `work` (given the fencing token) as the one
    /// executor and records its outcome, or returns [`Ran::AlreadyDone`] when the key
    /// is done already. Fails with [`Error::WorkFailed`] when the work failed here (the
    /// next waiter will try), [`Error::FailedForGood`] when every attempt failed, and
    /// [`Error::GrantLost`] when the grant was lost while the work ran (the work's
    /// future is dropped then).
    pub async fn run<F, Fut, T>(
        &self,
        name: &str,
        key: Option<&str>,
        holder: &str,
        work: F,
    ) -> Result<Ran<T>>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = std::result::Result<T, String>>,
    {
        // The key is this claim's, not the Once's: made on first use, the Once has no
        // spec.key (which would make that key current again once it is forgotten).
        self.ensure(name, OnceSpec::default()).await?;
        let executor = match self
            .claim(name, key, holder, |_| {}, std::future::pending())
            .await?
        {
            Claimed::Finished(Finished::Succeeded(done)) => return Ok(Ran::AlreadyDone(done)),
            Claimed::Finished(Finished::Failed(failed)) => {
                return Err(self.failed_for_good(name, &failed));
            }
            Claimed::Execute(executor) => executor,
        };
        let token = executor.token();
        let result = tokio::select! {
            result = work(token) => result,
            loss = executor.lost() => {
                return Err(Error::GrantLost {
                    kind: "once",
                    namespace: self.subjects.namespace.clone(),
                    name: name.to_owned(),
                    loss: loss.to_string(),
                });
            }
        };
        match result {
            Ok(value) => {
                executor.report(Outcome::Succeeded, None, None).await?;
                Ok(Ran::Executed { token, value })
            }
            Err(message) => {
                executor
                    .report(Outcome::Failed, None, Some(message.clone()))
                    .await?;
                Err(Error::WorkFailed {
                    namespace: self.subjects.namespace.clone(),
                    name: name.to_owned(),
                    message,
                })
            }
        }
    }

    /// The error for a key that failed for good, with the exact command that allows a
    /// new try of that key.
    pub fn failed_for_good(&self, name: &str, failed: &CompletedKey) -> Error {
        Error::FailedForGood {
            kind: "once",
            namespace: self.subjects.namespace.clone(),
            name: name.to_owned(),
            what: format!("for key {:?}", failed.key),
            message: format!(
                "every allowed attempt failed (`koncli -n {} once reset {name} --key {}` allows a new try)",
                self.subjects.namespace,
                shell_word(&failed.key)
            ),
        }
    }

    /// Waits (watching) until `key` (`None`: the Once's `spec.key`) is finished, for
    /// at most `timeout`; `None` when the timeout passed first. A Once that does not
    /// exist yet (or is deleted while waited on) is waited for; `progress` hears why.
    pub async fn wait(
        &self,
        name: &str,
        key: Option<&str>,
        timeout: Option<Duration>,
        progress: impl FnMut(crate::waiting::Progress<'_, Once>),
    ) -> Result<Option<Finished>> {
        let is_finished =
            |once: &Once| finished(once.status.as_ref(), &Self::key_for(once, key)).is_some();
        match self
            .subjects
            .wait_until(name, timeout, progress, is_finished, |_| String::new())
            .await
        {
            Ok(once) => Ok(finished(once.status.as_ref(), &Self::key_for(&once, key))),
            Err(Error::StillWaiting { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// The pause between attempts to report an outcome through an outage.
const REPORT_RETRY: Duration = Duration::from_millis(200);

/// Whether `key` is finished, as `status` remembers it.
fn finished(status: Option<&OnceStatus>, key: &str) -> Option<Finished> {
    match status?.standing_of(key) {
        KeyStanding::Succeeded(done) => Some(Finished::Succeeded(done)),
        KeyStanding::Failed(failed) => Some(Finished::Failed(failed)),
        KeyStanding::Open => None,
    }
}
