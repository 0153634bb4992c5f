//! The statuses a decision of the lock rules comes out as: the lock's status of each
//! kind (phase, holders, grants, waiting, conditions) and each Permit's. Pure, like the
//! rules: the controller writes what these return and decides nothing itself.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use k8s_openapi::jiff::Timestamp;

use crate::conditions::condition;

use super::rules::{Decision, PermitDecision, PermitRecord, effective_mode};
use super::{
    CONDITION_AVAILABLE, CONDITION_GRANTED, CONDITION_LOCKED, ClaimsStatus, Grant, LockKind,
    MutexPhase, MutexStatus, PermitMode, PermitPhase, PermitStatus, RWMutexPhase, RWMutexStatus,
    SemaphorePhase, SemaphoreStatus,
};

/// What a lock's status needs to know of the lock besides the decision.
#[derive(Clone, Copy, Debug)]
pub struct LockFacts<'a> {
    /// Semaphore, Mutex or RWMutex.
    pub kind: LockKind,
    /// `spec.permits` (1 for the others).
    pub permits: i64,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The conditions as stored (their transition times are kept while they hold).
    pub previous: &'a [Condition],
    /// Why the spec is refused, if it is.
    pub refusal: Option<&'a str>,
}

/// A lock's status, typed by its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum LockStatus {
    /// A Semaphore's.
    Semaphore(SemaphoreStatus),
    /// A Mutex's.
    Mutex(MutexStatus),
    /// An RWMutex's.
    RWMutex(RWMutexStatus),
    /// A Once's.
    Once(crate::once::OnceStatus),
    /// A RateLimit's.
    RateLimit(crate::ratelimit::RateLimitStatus),
}

impl LockStatus {
    /// The status of a `kind` lock object, typed; `None` before the controller wrote
    /// one (or if what is stored is not that kind's status).
    pub fn of(kind: LockKind, lock: &kube::core::DynamicObject) -> Option<Self> {
        let status = lock.data.get("status")?;
        let typed = match kind {
            LockKind::Semaphore => {
                LockStatus::Semaphore(serde::Deserialize::deserialize(status).ok()?)
            }
            LockKind::Mutex => LockStatus::Mutex(serde::Deserialize::deserialize(status).ok()?),
            LockKind::RWMutex => LockStatus::RWMutex(serde::Deserialize::deserialize(status).ok()?),
            LockKind::Once => LockStatus::Once(serde::Deserialize::deserialize(status).ok()?),
            LockKind::RateLimit => {
                LockStatus::RateLimit(serde::Deserialize::deserialize(status).ok()?)
            }
            LockKind::Unknown => return None,
        };
        Some(typed)
    }

    /// A `kind` lock's status before the controller first wrote one.
    pub fn empty(kind: LockKind) -> Self {
        match kind {
            LockKind::Semaphore => LockStatus::Semaphore(SemaphoreStatus::default()),
            LockKind::RWMutex => LockStatus::RWMutex(RWMutexStatus::default()),
            LockKind::Once => LockStatus::Once(crate::once::OnceStatus::default()),
            LockKind::RateLimit => {
                LockStatus::RateLimit(crate::ratelimit::RateLimitStatus::default())
            }
            LockKind::Mutex | LockKind::Unknown => LockStatus::Mutex(MutexStatus::default()),
        }
    }

    /// What every kind records of its claims.
    pub fn claims(&self) -> &ClaimsStatus {
        match self {
            LockStatus::Semaphore(s) => &s.claims,
            LockStatus::Mutex(s) => &s.claims,
            LockStatus::RWMutex(s) => &s.claims,
            LockStatus::Once(s) => &s.claims,
            LockStatus::RateLimit(s) => &s.claims,
        }
    }

    /// [`LockStatus::claims`], to change.
    pub fn claims_mut(&mut self) -> &mut ClaimsStatus {
        match self {
            LockStatus::Semaphore(s) => &mut s.claims,
            LockStatus::Mutex(s) => &mut s.claims,
            LockStatus::RWMutex(s) => &mut s.claims,
            LockStatus::Once(s) => &mut s.claims,
            LockStatus::RateLimit(s) => &mut s.claims,
        }
    }

    /// Whether `self` says something `stored` does not, compared as the API server
    /// stores them (times at its microsecond precision: a status computed from a
    /// finer clock is no news).
    pub fn differs_from(&self, stored: Option<&LockStatus>) -> bool {
        stored.is_none_or(|stored| self.to_value() != stored.to_value())
    }

    /// Whether `self` differs from `other` only in who waits (the queue's order and
    /// length): a change that may wait to share the next grant's write.
    pub fn only_queue_differs(&self, other: &LockStatus) -> bool {
        let without_queue = |status: &LockStatus| {
            let mut status = status.clone();
            let claims = status.claims_mut();
            claims.waiting.clear();
            claims.waiting_count = 0;
            status.to_value()
        };
        self.differs_from(Some(other)) && without_queue(self) == without_queue(other)
    }

    /// The status as JSON, as the API server stores it.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            LockStatus::Semaphore(s) => serde_json::to_value(s),
            LockStatus::Mutex(s) => serde_json::to_value(s),
            LockStatus::RWMutex(s) => serde_json::to_value(s),
            LockStatus::Once(s) => serde_json::to_value(s),
            LockStatus::RateLimit(s) => serde_json::to_value(s),
        }
        .unwrap_or_default()
    }
}

/// The lock's `Ready` condition: whether its spec was accepted.
pub fn ready_condition(facts: &LockFacts<'_>, now: Timestamp) -> Condition {
    let accepted = match facts.refusal {
        None => Ok(("SpecAccepted", "spec accepted".to_owned())),
        Some(why) => Err(why),
    };
    crate::conditions::ready(facts.previous, accepted, facts.generation, now)
}

/// The lock's status for `decision` (over `records`, the rules' input).
pub fn lock_status(
    facts: &LockFacts<'_>,
    decision: &Decision,
    records: &[PermitRecord],
    now: Timestamp,
) -> LockStatus {
    let kind = facts.kind;
    let grants: Vec<Grant> = decision
        .holding
        .iter()
        .map(|&i| {
            let (record, decided) = (&records[i], &decision.permits[i]);
            Grant {
                holder: record.holder.clone(),
                permit: record.name.clone(),
                uid: record.uid.clone(),
                token: decided.token.unwrap_or_default(),
                mode: effective_mode(kind.admits(), record),
                granted_at: MicroTime(decided.granted_at.unwrap_or(now)),
                expires_at: decided.expires_at.map(MicroTime),
            }
        })
        .collect();
    let holders: Vec<String> = grants.iter().map(|g| g.holder.clone()).collect();
    let waiting: Vec<String> = decision
        .waiting
        .iter()
        .map(|&i| records[i].holder.clone())
        .collect();
    let locked_at = grants.iter().map(|g| g.granted_at.0).min().map(MicroTime);
    let expires_at = grants
        .iter()
        .filter_map(|g| g.expires_at.as_ref().map(|t| t.0))
        .min()
        .map(MicroTime);
    let waiting_count = i32::try_from(waiting.len()).unwrap_or(i32::MAX);
    let in_use = i64::try_from(grants.len()).unwrap_or(i64::MAX);
    let previous = facts.previous;
    let ready = ready_condition(facts, now);
    let claims = |conditions: Vec<Condition>| ClaimsStatus {
        waiting: waiting.clone(),
        waiting_count,
        grants: Some(grants.clone()),
        fencing_token: decision.last_token,
        conditions,
        observed_generation: facts.generation,
    };
    let held = |yes: bool| {
        let (reason, message) = if yes {
            ("Held", format!("held by {}", holders.join(", ")))
        } else {
            ("Free", "nobody holds it".to_owned())
        };
        condition(
            previous,
            CONDITION_LOCKED,
            yes,
            reason,
            message,
            facts.generation,
            now,
        )
    };
    match kind {
        LockKind::Semaphore => {
            let free = in_use < facts.permits;
            let available = (facts.permits - in_use).max(0);
            let (reason, message) = if free {
                (
                    "PermitFree",
                    format!("{available} of {} permits free", facts.permits),
                )
            } else {
                ("Exhausted", format!("all {} permits in use", facts.permits))
            };
            LockStatus::Semaphore(SemaphoreStatus {
                phase: if free {
                    SemaphorePhase::Available
                } else {
                    SemaphorePhase::Exhausted
                },
                in_use: i32::try_from(in_use).unwrap_or(i32::MAX),
                available: i32::try_from(available).unwrap_or(i32::MAX),
                holders,
                claims: claims(vec![
                    ready,
                    condition(
                        previous,
                        CONDITION_AVAILABLE,
                        free,
                        reason,
                        message,
                        facts.generation,
                        now,
                    ),
                ]),
            })
        }
        // A Once's status is decided by `crate::once::rules`, which takes the claims'
        // part from here only in the shape every kind shares.
        LockKind::Once => LockStatus::Once(crate::once::OnceStatus {
            claims: claims(vec![ready]),
            ..Default::default()
        }),
        // A RateLimit's window is decided by `crate::ratelimit::rules`, which takes
        // the claims' part and its holders from here.
        LockKind::RateLimit => LockStatus::RateLimit(crate::ratelimit::RateLimitStatus {
            holders,
            claims: claims(vec![ready]),
            ..Default::default()
        }),
        // (A kind this version does not know is never reconciled; shaped as a Mutex.)
        LockKind::Mutex | LockKind::Unknown => LockStatus::Mutex(MutexStatus {
            phase: if grants.is_empty() {
                MutexPhase::Unlocked
            } else {
                MutexPhase::Locked
            },
            holder: holders.first().cloned(),
            locked_at,
            expires_at,
            claims: claims(vec![ready, held(!grants.is_empty())]),
        }),
        LockKind::RWMutex => {
            let writer = grants
                .iter()
                .find(|g| g.mode == PermitMode::Exclusive)
                .map(|g| g.holder.clone());
            let readers = if writer.is_some() {
                Vec::new()
            } else {
                holders.clone()
            };
            LockStatus::RWMutex(RWMutexStatus {
                phase: match (&writer, grants.is_empty()) {
                    (Some(_), _) => RWMutexPhase::WriteLocked,
                    (None, true) => RWMutexPhase::Unlocked,
                    (None, false) => RWMutexPhase::ReadLocked,
                },
                write_holder: writer,
                read_holders: readers,
                locked_at,
                expires_at,
                claims: claims(vec![ready, held(!grants.is_empty())]),
            })
        }
    }
}

/// A permit's status for its decision (`stored`: its status as written). An Expired
/// permit keeps the token it was granted with, for the record. The Granted condition
/// keeps its transition time while its status stays the same.
pub fn permit_status(
    stored: Option<&PermitStatus>,
    decision: &PermitDecision,
    now: Timestamp,
) -> PermitStatus {
    let (granted, reason, message) = match decision.phase {
        PermitPhase::Granted => (
            true,
            "Granted",
            format!("granted with fencing token {}", decision.token.unwrap_or(0)),
        ),
        PermitPhase::Pending => (
            false,
            "Pending",
            format!("waiting at position {}", decision.position.unwrap_or(0)),
        ),
        PermitPhase::Expired | PermitPhase::Unknown => (
            false,
            "Expired",
            "not renewed within the lock's ttl".to_owned(),
        ),
    };
    let previous = stored.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let token = match decision.phase {
        PermitPhase::Expired => decision
            .token
            .or_else(|| stored.and_then(|s| s.fencing_token)),
        _ => decision.token,
    };
    PermitStatus {
        phase: decision.phase,
        position: decision.position,
        granted_at: match decision.phase {
            PermitPhase::Expired => stored.and_then(|s| s.granted_at.clone()),
            _ => decision.granted_at.map(MicroTime),
        },
        expires_at: decision.expires_at.map(MicroTime),
        fencing_token: token,
        conditions: vec![condition(
            previous,
            CONDITION_GRANTED,
            granted,
            reason,
            message,
            None,
            now,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::rules::{LockInput, Renewal, evaluate};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn record(name: &str, mode: PermitMode, created: i64) -> PermitRecord {
        PermitRecord {
            name: format!("permit-{name}"),
            uid: format!("uid-{name}"),
            holder: name.to_owned(),
            mode,
            priority: 0,
            created: at(created),
            grant: None,
            renewal: Renewal::Seen(at(created)),
        }
    }

    fn decided(kind: LockKind, permits: i64, records: &[PermitRecord]) -> (LockStatus, Decision) {
        let decision = evaluate(&LockInput {
            admits: kind.admits(),
            permits,
            ttl: std::time::Duration::from_secs(60),
            last_token: 0,
            permits_of_lock: records,
            now: at(10),
        });
        let facts = LockFacts {
            kind,
            permits,
            generation: Some(1),
            previous: &[],
            refusal: None,
        };
        (lock_status(&facts, &decision, records, at(10)), decision)
    }

    #[test]
    fn a_held_mutex_lists_its_grant_and_its_waiters_and_says_locked() {
        let records = [
            record("a", PermitMode::Exclusive, 1),
            record("b", PermitMode::Exclusive, 2),
        ];
        let (LockStatus::Mutex(status), _) = decided(LockKind::Mutex, 1, &records) else {
            panic!("a mutex's status");
        };
        assert_eq!(status.phase, MutexPhase::Locked);
        assert_eq!(status.holder.as_deref(), Some("a"));
        assert_eq!(
            (status.claims.waiting.clone(), status.claims.waiting_count),
            (vec!["b".to_owned()], 1)
        );
        let grants = status.claims.grants.unwrap();
        assert_eq!((grants[0].uid.as_str(), grants[0].token), ("uid-a", 1));
        let locked = status
            .claims
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_LOCKED)
            .unwrap();
        assert_eq!(locked.status, "True");
    }

    #[test]
    fn readers_of_an_rwmutex_leave_no_writer_and_a_semaphore_counts_what_is_free() {
        let readers = [
            record("r1", PermitMode::Shared, 1),
            record("r2", PermitMode::Shared, 2),
        ];
        let (LockStatus::RWMutex(status), _) = decided(LockKind::RWMutex, 1, &readers) else {
            panic!("an rwmutex's status");
        };
        assert_eq!(status.phase, RWMutexPhase::ReadLocked);
        assert_eq!(status.write_holder, None);
        assert_eq!(status.read_holders, ["r1", "r2"]);
        let (LockStatus::Semaphore(status), _) = decided(LockKind::Semaphore, 3, &readers) else {
            panic!("a semaphore's status");
        };
        assert_eq!((status.in_use, status.available), (2, 1));
        assert_eq!(status.phase, SemaphorePhase::Available);
    }

    #[test]
    fn a_stored_lock_reads_back_typed_whatever_its_kind() {
        let object = |kind: LockKind, body: serde_json::Value| {
            let mut lock = kube::core::DynamicObject::new("l", &kind.api_resource());
            lock.data = body;
            lock
        };
        let mutex = object(
            LockKind::Mutex,
            serde_json::json!({
                "spec": {"ttl": "30s"},
                "status": {"phase": "Locked", "holder": "a", "fencingToken": 4},
            }),
        );
        let Some(LockStatus::Mutex(status)) = LockStatus::of(LockKind::Mutex, &mutex) else {
            panic!("a mutex's status");
        };
        assert_eq!(
            (status.phase, status.holder.as_deref()),
            (MutexPhase::Locked, Some("a"))
        );
        assert_eq!(
            super::super::CommonLockStatus::of(&mutex)
                .claims
                .fencing_token,
            4
        );
        let spec = super::super::CommonLockSpec::of(&mutex).unwrap();
        assert_eq!((spec.ttl.as_str(), spec.capacity()), ("30s", 1));

        let fresh = object(
            LockKind::Semaphore,
            serde_json::json!({"spec": {"permits": 3}}),
        );
        assert_eq!(LockStatus::of(LockKind::Semaphore, &fresh), None);
        let spec = super::super::CommonLockSpec::of(&fresh).unwrap();
        assert_eq!((spec.ttl.as_str(), spec.capacity()), ("5m", 3));

        // A spec an API server without the CRD's validation let in: the field is named.
        let malformed = object(
            LockKind::Semaphore,
            serde_json::json!({"spec": {"permits": "three"}}),
        );
        let refused = super::super::CommonLockSpec::of(&malformed).unwrap_err();
        assert!(
            refused.starts_with("spec.permits: invalid type"),
            "{refused}"
        );
        let malformed = object(
            LockKind::Once,
            serde_json::json!({"spec": {"maxAttempts": []}}),
        );
        let refused =
            super::super::read_spec::<crate::once::OnceSpec>(&malformed.data["spec"]).unwrap_err();
        assert!(
            refused.starts_with("spec.maxAttempts: invalid type"),
            "{refused}"
        );
    }

    #[test]
    fn a_change_of_the_queue_alone_is_told_from_any_other() {
        let mut before = LockStatus::empty(LockKind::Mutex);
        before.claims_mut().waiting = vec!["b".into()];
        before.claims_mut().waiting_count = 1;
        let mut queued = before.clone();
        queued.claims_mut().waiting.push("c".into());
        queued.claims_mut().waiting_count = 2;
        assert!(before.only_queue_differs(&queued));
        assert!(!before.only_queue_differs(&before));
        // A time finer than the API keeps is no change.
        let mut finer = before.clone();
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let granted = |at: Timestamp| Grant {
            holder: "a".into(),
            permit: "p".into(),
            uid: "u".into(),
            token: 1,
            mode: PermitMode::Exclusive,
            granted_at: MicroTime(at),
            expires_at: None,
        };
        let mut stored = before.clone();
        stored.claims_mut().grants = Some(vec![granted(at)]);
        finer.claims_mut().grants = Some(vec![granted(
            at + k8s_openapi::jiff::SignedDuration::from_nanos(300),
        )]);
        assert!(!finer.differs_from(Some(&stored)));
        assert!(finer.differs_from(None));
        let mut granted = queued.clone();
        granted.claims_mut().fencing_token = 1;
        assert!(!before.only_queue_differs(&granted));
    }
}
