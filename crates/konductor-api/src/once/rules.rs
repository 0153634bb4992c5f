//! The Once rules: one pure function, [`evaluate`], from a Once and its claims to who
//! executes, what the attempts came to and which key the Once is about. The controller
//! only writes its answer; nothing else decides.
//!
//! 1. **One key at a time.** The Once is about `status.key` until that key is finished
//!    (Succeeded, or Failed for good); only then, or before anything ran for it, does
//!    it move on: to `spec.key` if set and not finished, else to the key of the oldest
//!    live claim asking for an unfinished key. Keys never interleave.
//! 2. **Single flight.** At most one claim holds a grant (`status.grants`), with a
//!    fencing token above every token issued before.
//! 3. **Grant** the first live claim for the current key (priority, then age, then
//!    name) that has reported nothing, while nobody executes, the key is not finished
//!    and fewer than `maxAttempts` attempts were made; each grant is an attempt.
//! 4. **End of an attempt**: the executor reports an outcome with its token on its
//!    claim (Succeeded: the key is finished — nobody runs it again; Failed: the next
//!    claim may be granted), or its claim is not renewed within the ttl (controller's
//!    clock, as for locks) or deleted before it reported: Lost. Every end goes into
//!    `status.history` (the last [`super::HISTORY_LEN`]).
//! 5. **Failed for good** when an attempt ends and `maxAttempts` were made (or the
//!    limit was lowered below the attempts made).
//! 6. **Late outcomes**: an outcome reported with a token other than the executor's in
//!    force is recorded in the history as late and changes nothing (once; one older
//!    than every attempt a full history lists is not recorded).
//! 7. **Finished keys are remembered** (`status.completedKeys`, the last
//!    [`super::COMPLETED_KEYS_LEN`]), so a claim for one of them is answered from
//!    there and never granted.
//! 8. **Liveness** of waiting claims as for locks: one not renewed within the ttl is
//!    Expired (not granted) and removed after
//!    [`crate::locks::EXPIRED_PERMIT_RETENTION`].
//!
//! Evaluating the answer again at the same moment changes nothing: a fixed point.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use super::{
    Attempt, AttemptOutcome, COMPLETED_KEYS_LEN, CONDITION_DONE, CompletedKey, HISTORY_LEN,
    OncePhase, OnceStatus, ReportedOutcome, effective_key,
};
use crate::Outcome;
use crate::conditions::condition;
use crate::locks::rules::{Decision, PermitDecision, PermitRecord, Transition, expiry, removal};
use crate::locks::status::{LockFacts, ready_condition};
use crate::locks::{Grant, LockKind, PermitMode, PermitPhase};

/// One claim on a Once, as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The Permit, as the lock rules see one.
    pub permit: PermitRecord,
    /// The key it asks for (`None`: the Once's `spec.key`).
    pub key: Option<String>,
    /// What its executor reported, if anything.
    pub outcome: Option<ReportedOutcome>,
    /// Whether its holder said its work was interrupted (`spec.interrupting`).
    pub interrupting: bool,
}

/// A Once and its claims at one moment.
#[derive(Clone, Debug)]
pub struct OnceInput<'a> {
    /// `spec.key`.
    pub key: Option<&'a str>,
    /// `spec.maxAttempts`.
    pub max_attempts: i32,
    /// `spec.maxInterruptions`.
    pub max_interruptions: i32,
    /// `spec.ttl`.
    pub ttl: Duration,
    /// The status as stored.
    pub status: &'a OnceStatus,
    /// Every claim on the Once.
    pub claims: &'a [ClaimRecord],
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Now, on the controller's clock.
    pub now: Timestamp,
}

/// Everything [`evaluate`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct OnceDecision {
    /// The claims' decisions, in the lock rules' shape (so their statuses, removal,
    /// Events and next look are written as a lock's are).
    pub claims: Decision,
    /// The Once's status.
    pub status: OnceStatus,
}

/// How the executor's attempt ended this time.
enum Ending<'a> {
    Reported(&'a ReportedOutcome),
    Lost(&'static str),
    /// Marked interrupting, then not renewed within the ttl (its koncli was killed
    /// after the signal, as kubelet does after the grace period).
    Interrupted,
}

/// Records that the current key finished with `phase`.
fn finish_key(status: &mut OnceStatus, phase: OncePhase, now: Timestamp) {
    status.phase = phase;
    status.completed_at = Some(MicroTime(now));
    let key = status.key.clone();
    status.completed_keys.retain(|c| c.key != key);
    status.completed_keys.push(CompletedKey {
        key,
        phase,
        completed_at: MicroTime(now),
        fencing_token: status.claims.fencing_token,
    });
    let excess = status
        .completed_keys
        .len()
        .saturating_sub(COMPLETED_KEYS_LEN);
    status.completed_keys.drain(..excess);
}

fn attempt_of(outcome: &ReportedOutcome) -> AttemptOutcome {
    match outcome.result {
        Outcome::Succeeded => AttemptOutcome::Succeeded,
        Outcome::Failed if outcome.interrupted => AttemptOutcome::Interrupted,
        Outcome::Failed | Outcome::Unknown => AttemptOutcome::Failed,
    }
}

/// Decides who executes the Once; see the module documentation for the rules.
pub fn evaluate(input: &OnceInput<'_>) -> OnceDecision {
    let (claims, now, ttl) = (input.claims, input.now, input.ttl);
    let alive = |c: &ClaimRecord| expiry(c.permit.renewal, ttl).is_some_and(|e| now < e);
    let key_of = |c: &ClaimRecord| effective_key(c.key.as_deref(), input.key);
    let mut status = input.status.clone();
    if status.phase == OncePhase::Unknown {
        status.phase = OncePhase::Pending;
    }
    let mut decisions: Vec<PermitDecision> = claims
        .iter()
        .map(|c| PermitDecision {
            phase: PermitPhase::Pending,
            position: None,
            token: None,
            granted_at: None,
            expires_at: expiry(c.permit.renewal, ttl).filter(|_| alive(c)),
            remove: false,
        })
        .collect();
    let mut transitions = Vec::new();
    let grant = status
        .claims
        .grants
        .as_ref()
        .and_then(|g| g.first())
        .cloned();
    status.claims.fencing_token = grant.as_ref().map_or(status.claims.fencing_token, |g| {
        g.token.max(status.claims.fencing_token)
    });

    // Rule 4: the executor's attempt, if it ended.
    let mut executor = None;
    if let Some(grant) = &grant {
        let found = claims.iter().position(|c| c.permit.uid == grant.uid);
        let ending = match found {
            None => Some(Ending::Lost(
                "its claim was deleted before it reported an outcome",
            )),
            Some(i) => match &claims[i].outcome {
                Some(outcome) if outcome.fencing_token == grant.token => {
                    Some(Ending::Reported(outcome))
                }
                _ if !alive(&claims[i]) => {
                    decisions[i].phase = PermitPhase::Expired;
                    transitions.push(Transition::Expired {
                        holder: claims[i].permit.holder.clone(),
                        permit: i,
                    });
                    Some(if claims[i].interrupting {
                        Ending::Interrupted
                    } else {
                        Ending::Lost("its claim was not renewed within the ttl")
                    })
                }
                _ => None,
            },
        };
        match ending {
            None => executor = found,
            Some(ending) => {
                let (outcome, exit_code, mut message) = match ending {
                    Ending::Reported(o) => (attempt_of(o), o.exit_code, o.message.clone()),
                    Ending::Lost(why) => (AttemptOutcome::Lost, None, Some(why.to_owned())),
                    Ending::Interrupted => (
                        AttemptOutcome::Interrupted,
                        None,
                        Some(
                            "interrupted, and its executor stopped renewing its claim before it withdrew"
                                .to_owned(),
                        ),
                    ),
                };
                if outcome == AttemptOutcome::Interrupted {
                    status.interruptions += 1;
                    let note = if status.interruptions <= input.max_interruptions {
                        status.attempts = (status.attempts - 1).max(0);
                        format!(
                            "interruption {} of {} allowed: does not count toward maxAttempts",
                            status.interruptions, input.max_interruptions
                        )
                    } else {
                        format!(
                            "interrupted {} times, more than maxInterruptions {}: counts as an attempt",
                            status.interruptions, input.max_interruptions
                        )
                    };
                    message = Some(match message {
                        Some(said) => format!("{said} ({note})"),
                        None => note,
                    });
                }
                status.history.push(Attempt {
                    key: status.key.clone(),
                    holder: grant.holder.clone(),
                    fencing_token: grant.token,
                    started_at: Some(grant.granted_at.clone()),
                    finished_at: MicroTime(now),
                    outcome,
                    exit_code,
                    message,
                    late: false,
                });
                status.claims.grants = Some(Vec::new());
                status.executor = None;
                if outcome == AttemptOutcome::Succeeded {
                    finish_key(&mut status, OncePhase::Succeeded, now);
                } else {
                    status.phase = OncePhase::Pending;
                }
            }
        }
    } else if status.phase == OncePhase::Running {
        // Running without a grant in force (a status edited by hand): nobody executes.
        status.phase = OncePhase::Pending;
        status.executor = None;
    }

    // Rule 6: late outcomes are recorded once and change nothing. Once the history is
    // full, an outcome older than every attempt it still lists has fallen out of it
    // (or never fit): it is not recorded again, so the answer stays a fixed point.
    let forgotten_below = (status.history.len() >= HISTORY_LEN)
        .then(|| {
            status
                .history
                .iter()
                .filter(|a| !a.late)
                .map(|a| a.fencing_token)
                .min()
        })
        .flatten();
    for claim in claims {
        let Some(outcome) = &claim.outcome else {
            continue;
        };
        let in_force =
            executor.is_some() && grant.as_ref().map(|g| g.token) == Some(outcome.fencing_token);
        let recorded = status.history.iter().any(|a| {
            a.fencing_token == outcome.fencing_token
                && (a.late || a.outcome != AttemptOutcome::Lost)
        });
        let forgotten = forgotten_below.is_some_and(|oldest| outcome.fencing_token < oldest);
        if in_force || recorded || forgotten || outcome.fencing_token > status.claims.fencing_token
        {
            continue;
        }
        status.history.push(Attempt {
            key: key_of(claim),
            holder: claim.permit.holder.clone(),
            fencing_token: outcome.fencing_token,
            started_at: None,
            finished_at: MicroTime(now),
            outcome: attempt_of(outcome),
            exit_code: outcome.exit_code,
            message: outcome.message.clone(),
            late: true,
        });
    }
    let excess = status.history.len().saturating_sub(HISTORY_LEN);
    status.history.drain(..excess);

    // Rule 5: no attempts left.
    if executor.is_none()
        && status.phase == OncePhase::Pending
        && status.attempts >= input.max_attempts.max(1)
    {
        finish_key(&mut status, OncePhase::Failed, now);
    }

    // Rule 1: which key.
    let finished =
        |status: &OnceStatus, key: &str| status.completed_keys.iter().any(|c| c.key == key);
    let asked_for = |key: &str| {
        claims
            .iter()
            .any(|c| alive(c) && c.outcome.is_none() && key_of(c) == key)
    };
    let idle = executor.is_none()
        && (status.phase.is_finished()
            || (status.phase == OncePhase::Pending && !asked_for(&status.key)));
    if idle {
        // A spec.key not taken into account yet (a new Once, or one edited since).
        let from_spec = input
            .key
            .filter(|k| !k.is_empty() && status.spec_key.as_deref() != Some(*k))
            .filter(|k| !finished(&status, k))
            .map(str::to_owned);
        let mut asked: Vec<&ClaimRecord> = claims
            .iter()
            .filter(|c| alive(c) && c.outcome.is_none() && !finished(&status, &key_of(c)))
            .collect();
        asked.sort_by(|a, b| {
            (a.permit.created, &a.permit.name).cmp(&(b.permit.created, &b.permit.name))
        });
        let next = from_spec.or_else(|| asked.first().map(|c| key_of(c)));
        if let Some(next) = next.filter(|next| *next != status.key || status.phase.is_finished()) {
            status.start_key(next);
        }
        status.spec_key = input.key.filter(|k| !k.is_empty()).map(str::to_owned);
    }

    // Rule 3: grant.
    let mut queue: Vec<usize> = (0..claims.len())
        .filter(|&i| {
            let c = &claims[i];
            Some(i) != executor && alive(c) && c.outcome.is_none() && key_of(c) == status.key
        })
        .collect();
    queue.sort_by(|&a, &b| {
        let (a, b) = (&claims[a].permit, &claims[b].permit);
        b.priority
            .cmp(&a.priority)
            .then(a.created.cmp(&b.created))
            .then(a.name.cmp(&b.name))
    });
    if executor.is_none()
        && status.phase == OncePhase::Pending
        && let Some(&next) = queue.first()
    {
        queue.remove(0);
        let claim = &claims[next].permit;
        status.claims.fencing_token += 1;
        status.attempts += 1;
        status.phase = OncePhase::Running;
        status.executor = Some(claim.holder.clone());
        status.started_at = Some(MicroTime(now));
        status.completed_at = None;
        status.claims.grants = Some(vec![Grant {
            holder: claim.holder.clone(),
            permit: claim.name.clone(),
            uid: claim.uid.clone(),
            token: status.claims.fencing_token,
            mode: PermitMode::Exclusive,
            granted_at: MicroTime(now),
            expires_at: decisions[next].expires_at.map(MicroTime),
        }]);
        transitions.push(Transition::Granted {
            holder: claim.holder.clone(),
            token: status.claims.fencing_token,
            permit: next,
        });
        executor = Some(next);
    }
    if status.phase.is_finished() {
        queue.clear();
    }
    if let Some(i) = executor {
        let decision = &mut decisions[i];
        decision.phase = PermitPhase::Granted;
        decision.token = Some(status.claims.fencing_token);
        decision.granted_at = status
            .claims
            .grants
            .as_ref()
            .and_then(|g| g.first())
            .map(|g| g.granted_at.0);
        if let Some(grant) = status.claims.grants.as_mut().and_then(|g| g.first_mut()) {
            grant.expires_at = decision.expires_at.map(MicroTime);
        }
    }
    for (place, &i) in queue.iter().enumerate() {
        decisions[i].position = Some(i32::try_from(place + 1).unwrap_or(i32::MAX));
    }

    // Rule 8: dead claims.
    let removal = |c: &ClaimRecord| removal(c.permit.renewal, ttl);
    for (claim, decision) in claims.iter().zip(decisions.iter_mut()) {
        if !alive(claim) {
            decision.phase = PermitPhase::Expired;
            decision.remove = now >= removal(claim);
        }
    }
    let next_look = claims
        .iter()
        .zip(&decisions)
        .filter_map(|(c, d)| match d.expires_at {
            Some(expires) => Some(expires),
            None if !d.remove => Some(removal(c)),
            None => None,
        })
        .min();

    status.claims.waiting = queue
        .iter()
        .map(|&i| claims[i].permit.holder.clone())
        .collect();
    status.claims.waiting_count = i32::try_from(queue.len()).unwrap_or(i32::MAX);
    if status.claims.grants.is_none() {
        status.claims.grants = Some(Vec::new());
    }
    // Claims for other keys wait for the current one: the condition says so, so a
    // waiter (and `kubectl describe`) can see what it waits behind.
    let waiting_for_others = claims
        .iter()
        .filter(|c| alive(c) && c.outcome.is_none() && key_of(c) != status.key)
        .filter(|c| !status.completed_keys.iter().any(|k| k.key == key_of(c)))
        .count();
    let previous = input.status.claims.conditions.clone();
    let facts = LockFacts {
        kind: LockKind::Once,
        permits: 1,
        generation: input.generation,
        previous: &previous,
        refusal: None,
    };
    let (done_reason, done_message) = match status.phase {
        OncePhase::Succeeded => (
            "Succeeded",
            format!("the work succeeded for key {:?}", status.key),
        ),
        OncePhase::Failed => (
            "Failed",
            format!(
                "all {} attempts failed for key {:?}",
                status.attempts, status.key
            ),
        ),
        OncePhase::Running => (
            "Running",
            format!(
                "{} runs it for key {:?}{}",
                status.executor.as_deref().unwrap_or_default(),
                status.key,
                match waiting_for_others {
                    0 => String::new(),
                    n => format!("; {n} claim(s) for other keys wait for it to finish"),
                }
            ),
        ),
        OncePhase::Pending | OncePhase::Unknown => ("Pending", "nobody runs it yet".to_owned()),
    };
    status.claims.conditions = vec![
        ready_condition(&facts, now),
        condition(
            &previous,
            CONDITION_DONE,
            status.phase == OncePhase::Succeeded,
            done_reason,
            done_message,
            input.generation,
            now,
        ),
    ];
    status.claims.observed_generation = input.generation;
    let holding = executor.into_iter().collect();
    OnceDecision {
        claims: Decision {
            permits: decisions,
            holding,
            waiting: queue,
            last_token: status.claims.fencing_token,
            transitions,
            next_look,
        },
        status,
    }
}

#[cfg(test)]
mod tests;
