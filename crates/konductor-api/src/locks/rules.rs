//! The lock rules: one pure function, [`evaluate`], from a lock and its permits to
//! which permits hold it, which wait and in what order, and which expired — for all
//! three kinds. The controller only translates its answer into status writes and
//! Events; nothing else decides a grant.
//!
//! 1. **Queue order**: priority (high first), then creation time, then name.
//! 2. **Grants** from the head of the queue while the kind allows: a Semaphore while
//!    fewer than `permits` hold it, a Mutex while nobody does; an RWMutex grants an
//!    Exclusive (write) request only when nothing is held, and Shared (read) requests
//!    while no writer holds it — stopping at the first request it cannot grant, so a
//!    waiting writer stops later readers from barging in.
//! 3. **Fencing tokens**: each grant takes the lock's next token, strictly increasing
//!    and never reused (never below a token any grant carries).
//! 4. **Liveness**: every claim, waiting or granted, is alive while the controller has
//!    seen its renewal within the last `ttl` — on the controller's own clock, from when
//!    it saw `renewTime` change (or first saw the permit: after a controller restart
//!    every claim counts as just renewed, except one it finds already Expired). A grant
//!    whose claim is no longer alive is Expired at exactly that moment and no longer
//!    counts; a waiting claim that is no longer alive is Expired and leaves the queue,
//!    so a dead waiter is never granted. A renewal seen later makes a claim alive again:
//!    it rejoins the queue at its place, and a grant it gets then carries a new token.
//! 5. **Release** is deleting the permit: it is simply no longer in the input.
//! 6. **Shrinking** a Semaphore below what is in use revokes nobody; grants wait.
//! 7. **Removal**: a claim Expired for [`super::EXPIRED_PERMIT_RETENTION`] is removed.
//! 8. Hence: never more holders than the lock allows.
//!
//! Which permits hold the lock is an input (the grants the lock's status lists) as well
//! as an output: the lock's status is where a grant becomes real. Evaluating the answer
//! again at the same moment changes nothing: it is a fixed point.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{EXPIRED_PERMIT_RETENTION, PermitMode, PermitPhase};

/// What the controller has seen of a permit's renewals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Its `renewTime` was last seen to change at this moment (or the permit was first
    /// seen then, not Expired).
    Seen(Timestamp),
    /// It was first seen at this moment already Expired, and not renewed since.
    ExpiredWhenFirstSeen(Timestamp),
}

/// A grant in force, as the lock's status lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// Its fencing token.
    pub token: i64,
    /// When it was granted.
    pub granted_at: Timestamp,
}

/// One permit as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermitRecord {
    /// The Permit object's name (the tie-breaker in the queue).
    pub name: String,
    /// Its uid (a Permit created again under the same name is another claim).
    pub uid: String,
    /// Who claims the lock.
    pub holder: String,
    /// Exclusive, or Shared (RWMutex readers).
    pub mode: PermitMode,
    /// Higher is granted first.
    pub priority: i32,
    /// When the permit was created (queue order within a priority).
    pub created: Timestamp,
    /// The grant it holds, if the lock's status lists one for it.
    pub grant: Option<GrantRecord>,
    /// What the controller has seen of its renewals.
    pub renewal: Renewal,
}

/// How a lock admits holders: all the rules need to know of its kind
/// ([`super::LockKind::admits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admits {
    /// Up to `permits` holders at once (a Semaphore).
    Counted,
    /// One holder at a time (a Mutex, and the kinds held like one).
    OneHolder,
    /// Many readers (Shared) or one writer (Exclusive) (an RWMutex).
    ReadersOrOneWriter,
    /// Nobody (a kind this version does not know).
    Nobody,
    /// Up to `permits` holders at once, possibly none (a RateLimit, whose rules pass
    /// how many its window allows now).
    UpTo,
}

/// A lock and its permits at one moment.
#[derive(Clone, Debug)]
pub struct LockInput<'a> {
    /// How the lock admits holders.
    pub admits: Admits,
    /// How many may hold it at once: `spec.permits` for a Semaphore (1 for the others,
    /// whatever is passed).
    pub permits: i64,
    /// How long a claim lives without a renewal seen.
    pub ttl: Duration,
    /// The last fencing token issued (the lock's status).
    pub last_token: i64,
    /// Every permit of the lock.
    pub permits_of_lock: &'a [PermitRecord],
    /// Now, on the controller's clock — one that never steps (see the controller).
    pub now: Timestamp,
}

/// What the rules decided about one permit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermitDecision {
    /// Pending, Granted or Expired.
    pub phase: PermitPhase,
    /// Place in the queue while Pending (1 is next).
    pub position: Option<i32>,
    /// The grant's fencing token (while granted).
    pub token: Option<i64>,
    /// When it was granted.
    pub granted_at: Option<Timestamp>,
    /// When the claim expires unless a renewal is seen before (while alive).
    pub expires_at: Option<Timestamp>,
    /// Expired long enough: delete the permit.
    pub remove: bool,
}

/// A change worth an Event on the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `holder` was granted the lock with `token`.
    Granted {
        /// Who.
        holder: String,
        /// With which fencing token.
        token: i64,
        /// The permit (an index into the input).
        permit: usize,
    },
    /// `holder`'s grant expired: it was not renewed for the ttl.
    Expired {
        /// Who.
        holder: String,
        /// The permit (an index into the input).
        permit: usize,
    },
}

/// Everything [`evaluate`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// One decision per input permit, in input order.
    pub permits: Vec<PermitDecision>,
    /// Indices (into the input) of the permits holding the lock, in token order.
    pub holding: Vec<usize>,
    /// Indices of the permits waiting, in queue order.
    pub waiting: Vec<usize>,
    /// The last fencing token issued, after this decision's grants.
    pub last_token: i64,
    /// What changed, for Events.
    pub transitions: Vec<Transition>,
    /// When to evaluate again without any change: the earliest moment a claim expires
    /// or an expired one is due for removal.
    pub next_look: Option<Timestamp>,
}

impl Decision {
    /// Whether a permit holding the lock holds it exclusively (an RWMutex writer, a
    /// Mutex holder).
    pub fn held_exclusively(&self, input: &LockInput<'_>) -> bool {
        !matches!(input.admits, Admits::Counted | Admits::UpTo)
            && self.holding.iter().any(|&i| {
                effective_mode(input.admits, &input.permits_of_lock[i]) == PermitMode::Exclusive
            })
    }
}

/// The mode that counts: only an RWMutex has Shared holders.
pub fn effective_mode(admits: Admits, permit: &PermitRecord) -> PermitMode {
    match admits {
        Admits::ReadersOrOneWriter => permit.mode,
        Admits::Counted | Admits::OneHolder | Admits::Nobody | Admits::UpTo => {
            PermitMode::Exclusive
        }
    }
}

fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    let duration = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// When a claim stops being alive unless a renewal is seen: `ttl` after the last
/// renewal seen (`None` if it was first seen Expired and never renewed since).
pub fn expiry(renewal: Renewal, ttl: Duration) -> Option<Timestamp> {
    match renewal {
        Renewal::Seen(at) => Some(plus(at, ttl)),
        Renewal::ExpiredWhenFirstSeen(_) => None,
    }
}

/// When an expired claim is due for removal.
pub(crate) fn removal(renewal: Renewal, ttl: Duration) -> Timestamp {
    let dead_since = match renewal {
        Renewal::Seen(at) => plus(at, ttl),
        Renewal::ExpiredWhenFirstSeen(at) => at,
    };
    plus(dead_since, EXPIRED_PERMIT_RETENTION)
}

/// Decides which permits hold the lock; see the module documentation for the rules.
pub fn evaluate(input: &LockInput<'_>) -> Decision {
    let permits = input.permits_of_lock;
    let capacity = match input.admits {
        Admits::Counted => input.permits.max(1),
        Admits::UpTo => input.permits.max(0),
        Admits::OneHolder | Admits::ReadersOrOneWriter => 1,
        // A newer version's kind: nothing is granted to it here.
        Admits::Nobody => 0,
    };
    let alive = |p: &PermitRecord| expiry(p.renewal, input.ttl).is_some_and(|e| input.now < e);
    let mut decisions: Vec<PermitDecision> = permits
        .iter()
        .map(|p| PermitDecision {
            phase: PermitPhase::Pending,
            position: None,
            token: p.grant.map(|g| g.token),
            granted_at: p.grant.map(|g| g.granted_at),
            expires_at: expiry(p.renewal, input.ttl).filter(|_| alive(p)),
            remove: false,
        })
        .collect();
    let mut transitions = Vec::new();
    // Tokens already handed out are never handed out again, even if the lock's counter
    // was lost.
    let mut last_token = permits
        .iter()
        .filter_map(|p| p.grant.map(|g| g.token))
        .fold(input.last_token, i64::max);

    // Rule 4: claims not renewed for the ttl expire, exactly at the deadline.
    let mut holding: Vec<usize> = Vec::new();
    let mut queue: Vec<usize> = Vec::new();
    for (i, permit) in permits.iter().enumerate() {
        match (permit.grant.is_some(), alive(permit)) {
            (true, true) => {
                decisions[i].phase = PermitPhase::Granted;
                holding.push(i);
            }
            (true, false) => {
                decisions[i] = PermitDecision {
                    phase: PermitPhase::Expired,
                    token: None,
                    granted_at: None,
                    ..decisions[i].clone()
                };
                transitions.push(Transition::Expired {
                    holder: permit.holder.clone(),
                    permit: i,
                });
            }
            (false, true) => queue.push(i),
            (false, false) => {
                decisions[i].phase = PermitPhase::Expired;
                decisions[i].remove = input.now >= removal(permit.renewal, input.ttl);
            }
        }
    }
    holding.sort_by_key(|&i| (permits[i].grant.map_or(i64::MAX, |g| g.token), i));

    // Rule 1: the queue.
    queue.sort_by(|&a, &b| {
        let (a, b) = (&permits[a], &permits[b]);
        b.priority
            .cmp(&a.priority)
            .then(a.created.cmp(&b.created))
            .then(a.name.cmp(&b.name))
    });

    // Rules 2, 3 and 6: grant from the head while the kind allows.
    let rw = input.admits == Admits::ReadersOrOneWriter;
    let mut writer_holds = holding
        .iter()
        .any(|&i| rw && permits[i].mode == PermitMode::Exclusive);
    let mut granted = 0;
    for &i in &queue {
        let held = i64::try_from(holding.len()).unwrap_or(i64::MAX);
        let allowed = match (input.admits, effective_mode(input.admits, &permits[i])) {
            // A newer version's mode, whatever the kind: never granted (the queue
            // waits behind it).
            _ if permits[i].mode == PermitMode::Unknown => false,
            (_, PermitMode::Unknown) => false,
            (Admits::ReadersOrOneWriter, PermitMode::Exclusive) => held == 0,
            (Admits::ReadersOrOneWriter, PermitMode::Shared) => !writer_holds,
            _ => held < capacity,
        };
        if !allowed {
            break;
        }
        last_token += 1;
        let decision = &mut decisions[i];
        decision.phase = PermitPhase::Granted;
        decision.token = Some(last_token);
        decision.granted_at = Some(input.now);
        writer_holds |= rw && permits[i].mode == PermitMode::Exclusive;
        holding.push(i);
        granted += 1;
        transitions.push(Transition::Granted {
            holder: permits[i].holder.clone(),
            token: last_token,
            permit: i,
        });
    }
    let waiting: Vec<usize> = queue[granted..].to_vec();
    for (place, &i) in waiting.iter().enumerate() {
        let decision = &mut decisions[i];
        decision.position = Some(i32::try_from(place + 1).unwrap_or(i32::MAX));
        // A waiter's place is its own; an earlier grant's token is not.
        decision.token = None;
        decision.granted_at = None;
    }
    let next_look = permits
        .iter()
        .zip(&decisions)
        .filter_map(|(p, d)| match d.expires_at {
            Some(expires) => Some(expires),
            None if !d.remove => Some(removal(p.renewal, input.ttl)),
            None => None,
        })
        .min();
    Decision {
        permits: decisions,
        holding,
        waiting,
        last_token,
        transitions,
        next_look,
    }
}

#[cfg(test)]
impl PermitRecord {
    /// For tests: `holder`'s exclusive claim `name` (uid `uid-HOLDER`), made and last
    /// renewed at `created`, not granted.
    pub(crate) fn queued(name: &str, holder: &str, created: Timestamp) -> Self {
        PermitRecord {
            name: name.to_owned(),
            uid: format!("uid-{holder}"),
            holder: holder.to_owned(),
            mode: PermitMode::Exclusive,
            priority: 0,
            created,
            grant: None,
            renewal: Renewal::Seen(created),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::LockKind;
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(10);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn pending(name: &str, created: i64) -> PermitRecord {
        PermitRecord::queued(name, name, at(created))
    }

    fn shared(name: &str, created: i64) -> PermitRecord {
        PermitRecord {
            mode: PermitMode::Shared,
            ..pending(name, created)
        }
    }

    fn granted(name: &str, created: i64, token: i64) -> PermitRecord {
        PermitRecord {
            grant: Some(GrantRecord {
                token,
                granted_at: at(created),
            }),
            ..pending(name, created)
        }
    }

    fn input(kind: LockKind, permits: i64, records: &[PermitRecord], now: i64) -> LockInput<'_> {
        LockInput {
            admits: kind.admits(),
            permits,
            ttl: TTL,
            last_token: 0,
            permits_of_lock: records,
            now: at(now),
        }
    }

    /// The records after applying `decision` (what the controller writes back: the
    /// lock's status lists the grants in force).
    fn applied(records: &[PermitRecord], decision: &Decision) -> Vec<PermitRecord> {
        records
            .iter()
            .zip(&decision.permits)
            .map(|(record, d)| PermitRecord {
                grant: (d.phase == PermitPhase::Granted).then(|| GrantRecord {
                    token: d.token.unwrap(),
                    granted_at: d.granted_at.unwrap(),
                }),
                ..record.clone()
            })
            .collect()
    }

    fn holders(records: &[PermitRecord], decision: &Decision) -> Vec<String> {
        decision
            .holding
            .iter()
            .map(|&i| records[i].holder.clone())
            .collect()
    }

    #[test]
    fn a_claim_in_a_mode_this_version_does_not_know_is_never_granted() {
        let records = [
            PermitRecord {
                mode: PermitMode::Unknown,
                ..pending("new", 1)
            },
            pending("old", 2),
        ];
        for kind in [LockKind::Mutex, LockKind::RWMutex, LockKind::Semaphore] {
            let decision = evaluate(&input(kind, 2, &records, 5));
            assert!(decision.holding.is_empty(), "{kind:?}");
        }
        let decision = evaluate(&input(LockKind::Unknown, 2, &[pending("a", 1)], 5));
        assert!(decision.holding.is_empty());
    }

    #[test]
    fn a_semaphore_grants_up_to_its_permits_in_arrival_order() {
        let records = [pending("c", 3), pending("a", 1), pending("b", 2)];
        let decision = evaluate(&input(LockKind::Semaphore, 2, &records, 5));
        assert_eq!(holders(&records, &decision), ["a", "b"]);
        assert_eq!(decision.waiting, [0]);
        assert_eq!(decision.permits[0].position, Some(1));
        assert_eq!(decision.last_token, 2);
    }

    #[test]
    fn a_mutex_grants_one_and_the_next_on_release() {
        let records = [pending("a", 1), pending("b", 2)];
        let decision = evaluate(&input(LockKind::Mutex, 5, &records, 5));
        assert_eq!(holders(&records, &decision), ["a"]);
        let after = applied(&records, &decision);
        // a releases: its permit is deleted.
        let released = [after[1].clone()];
        let next = evaluate(&LockInput {
            last_token: decision.last_token,
            ..input(LockKind::Mutex, 1, &released, 6)
        });
        assert_eq!(holders(&released, &next), ["b"]);
        assert_eq!(next.permits[0].token, Some(2));
    }

    #[test]
    fn higher_priority_goes_first_then_fifo() {
        let mut urgent = pending("urgent", 9);
        urgent.priority = 5;
        let records = [pending("early", 1), urgent, pending("late", 5)];
        let decision = evaluate(&input(LockKind::Mutex, 1, &records, 10));
        assert_eq!(holders(&records, &decision), ["urgent"]);
        assert_eq!(decision.permits[0].position, Some(1));
        assert_eq!(decision.permits[2].position, Some(2));
    }

    #[test]
    fn equal_times_are_ordered_by_name() {
        let records = [pending("b", 1), pending("a", 1)];
        let decision = evaluate(&input(LockKind::Mutex, 1, &records, 2));
        assert_eq!(holders(&records, &decision), ["a"]);
    }

    #[test]
    fn readers_share_and_a_writer_waits_for_them() {
        let records = [shared("r1", 1), shared("r2", 2), pending("w", 3)];
        let decision = evaluate(&input(LockKind::RWMutex, 1, &records, 4));
        assert_eq!(holders(&records, &decision), ["r1", "r2"]);
        assert_eq!(decision.waiting, [2]);
    }

    #[test]
    fn a_waiting_writer_stops_later_readers() {
        let records = [shared("r1", 1), pending("w", 2), shared("r2", 3)];
        let decision = evaluate(&input(LockKind::RWMutex, 1, &records, 4));
        assert_eq!(holders(&records, &decision), ["r1"]);
        assert_eq!(decision.waiting, [1, 2]);
        // r1 releases: the writer goes first, alone.
        let after = applied(&records, &decision);
        let rest = [after[1].clone(), after[2].clone()];
        let next = evaluate(&LockInput {
            last_token: decision.last_token,
            ..input(LockKind::RWMutex, 1, &rest, 5)
        });
        assert_eq!(holders(&rest, &next), ["w"]);
        assert_eq!(next.waiting, [1]);
    }

    #[test]
    fn a_writer_holds_alone() {
        let records = [pending("w", 1), shared("r", 2)];
        let decision = evaluate(&input(LockKind::RWMutex, 1, &records, 3));
        assert_eq!(holders(&records, &decision), ["w"]);
        assert!(decision.held_exclusively(&input(LockKind::RWMutex, 1, &records, 3)));
    }

    #[test]
    fn tokens_keep_rising_past_the_lock_counter_and_the_grants() {
        let records = [granted("old", 1, 41), pending("new", 2)];
        let decision = evaluate(&LockInput {
            last_token: 7,
            ..input(LockKind::Semaphore, 2, &records, 3)
        });
        assert_eq!(decision.permits[1].token, Some(42));
        assert_eq!(decision.last_token, 42);
    }

    #[test]
    fn a_grant_expires_exactly_a_ttl_after_the_last_renewal_seen() {
        let mut held = granted("a", 0, 1);
        held.renewal = Renewal::Seen(at(5));
        let records = [held, pending("b", 6)];
        let before = evaluate(&LockInput {
            last_token: 1,
            ..input(LockKind::Mutex, 1, &records, 14)
        });
        assert_eq!(before.permits[0].phase, PermitPhase::Granted);
        assert_eq!(before.permits[0].expires_at, Some(at(15)));
        assert_eq!(before.next_look, Some(at(15)));
        let at_deadline = evaluate(&LockInput {
            last_token: 1,
            ..input(LockKind::Mutex, 1, &records, 15)
        });
        assert_eq!(at_deadline.permits[0].phase, PermitPhase::Expired);
        assert_eq!(holders(&records, &at_deadline), ["b"]);
        assert_eq!(
            at_deadline.transitions,
            [
                Transition::Expired {
                    holder: "a".into(),
                    permit: 0
                },
                Transition::Granted {
                    holder: "b".into(),
                    token: 2,
                    permit: 1
                }
            ]
        );
    }

    #[test]
    fn a_waiter_not_renewed_for_its_ttl_leaves_the_queue_and_is_never_granted() {
        let mut held = granted("holder", 0, 1);
        held.renewal = Renewal::Seen(at(20));
        let dead = pending("dead", 1); // last renewed at 1
        let mut alive = pending("alive", 2);
        alive.renewal = Renewal::Seen(at(19));
        let records = [held, dead, alive];
        let decision = evaluate(&LockInput {
            last_token: 1,
            ..input(LockKind::Mutex, 1, &records, 21)
        });
        assert_eq!(decision.permits[1].phase, PermitPhase::Expired);
        assert_eq!(decision.permits[1].position, None);
        assert_eq!(decision.waiting, [2]);
        assert_eq!(decision.permits[2].position, Some(1));
        // The holder releases: the live waiter is next, the dead one never.
        let rest = [records[1].clone(), records[2].clone()];
        let next = evaluate(&LockInput {
            last_token: 1,
            ..input(LockKind::Mutex, 1, &rest, 22)
        });
        assert_eq!(holders(&rest, &next), ["alive"]);
        assert!(
            next.transitions
                .iter()
                .all(|t| !matches!(t, Transition::Expired { .. })),
            "a waiter leaving is no expired grant"
        );
    }

    #[test]
    fn a_renewal_seen_later_brings_an_expired_waiter_back_at_its_place() {
        let mut held = granted("holder", 0, 1);
        held.renewal = Renewal::Seen(at(30));
        let mut early = pending("early", 1);
        early.renewal = Renewal::Seen(at(30)); // renewed again after it had expired
        let mut late = pending("late", 5);
        late.renewal = Renewal::Seen(at(29));
        let records = [held, late, early];
        let decision = evaluate(&LockInput {
            last_token: 1,
            ..input(LockKind::Mutex, 1, &records, 31)
        });
        assert_eq!(
            decision.waiting,
            [2, 1],
            "early keeps its place ahead of late"
        );
    }

    #[test]
    fn a_permit_first_seen_expired_stays_expired_until_renewed_and_is_then_removed() {
        let mut found = pending("found", 0);
        found.renewal = Renewal::ExpiredWhenFirstSeen(at(100));
        let records = [found];
        let decision = evaluate(&input(LockKind::Mutex, 1, &records, 100));
        assert_eq!(decision.permits[0].phase, PermitPhase::Expired);
        assert!(decision.holding.is_empty());
        let removal_due = at(100)
            .checked_add(SignedDuration::try_from(EXPIRED_PERMIT_RETENTION).unwrap())
            .unwrap();
        assert_eq!(decision.next_look, Some(removal_due));
        assert!(!decision.permits[0].remove);
        let later = evaluate(&LockInput {
            now: removal_due,
            ..input(LockKind::Mutex, 1, &records, 0)
        });
        assert!(later.permits[0].remove);
    }

    #[test]
    fn shrinking_a_semaphore_revokes_nobody() {
        let records: Vec<PermitRecord> = (0..3).map(|i| pending(&format!("p{i}"), i)).collect();
        let decision = evaluate(&input(LockKind::Semaphore, 3, &records, 5));
        let held = applied(&records, &decision);
        let mut more = held.clone();
        more.push(pending("late", 6));
        let shrunk = evaluate(&LockInput {
            last_token: decision.last_token,
            ..input(LockKind::Semaphore, 1, &more, 7)
        });
        assert_eq!(shrunk.holding.len(), 3);
        assert_eq!(shrunk.waiting, [3]);
        assert!(shrunk.transitions.is_empty());
    }

    fn record_strategy() -> impl Strategy<Value = PermitRecord> {
        (0..4i32, 0..20i64, any::<bool>(), 0..30i64, any::<bool>()).prop_map(
            |(priority, created, is_shared, renewed, found_expired)| PermitRecord {
                name: String::new(),
                uid: String::new(),
                holder: String::new(),
                mode: if is_shared {
                    PermitMode::Shared
                } else {
                    PermitMode::Exclusive
                },
                priority,
                created: at(created),
                grant: None,
                renewal: if found_expired {
                    Renewal::ExpiredWhenFirstSeen(at(created))
                } else {
                    Renewal::Seen(at(created.max(renewed)))
                },
            },
        )
    }

    /// A consistent lock: names unique, grants as the rules would have made them (at
    /// time 0, from nothing granted), then `now` anywhere up to 40s later.
    fn lock_strategy() -> impl Strategy<Value = (LockKind, i64, Vec<PermitRecord>, i64)> {
        (
            prop_oneof![
                Just(LockKind::Semaphore),
                Just(LockKind::Mutex),
                Just(LockKind::RWMutex)
            ],
            1..4i64,
            prop::collection::vec(record_strategy(), 0..12),
            0..40i64,
        )
            .prop_map(|(kind, permits, mut records, now)| {
                for (i, record) in records.iter_mut().enumerate() {
                    record.name = format!("p{i:02}");
                    record.holder = format!("h{i:02}");
                }
                let first = evaluate(&LockInput {
                    admits: kind.admits(),
                    permits,
                    ttl: TTL,
                    last_token: 0,
                    permits_of_lock: &records,
                    now: at(0),
                });
                let settled = applied(&records, &first);
                (kind, permits, settled, now)
            })
    }

    fn allowed_holders(kind: LockKind, permits: i64) -> usize {
        match kind {
            LockKind::Semaphore => usize::try_from(permits).unwrap(),
            _ => 1,
        }
    }

    proptest! {
        #[test]
        fn never_more_holders_than_the_lock_allows((kind, permits, records, now) in lock_strategy()) {
            let decision = evaluate(&input(kind, permits, &records, now));
            let exclusive = decision.holding.iter().filter(|&&i| effective_mode(kind.admits(), &records[i]) == PermitMode::Exclusive).count();
            match kind {
                LockKind::RWMutex => {
                    prop_assert!(exclusive <= 1);
                    prop_assert!(exclusive == 0 || decision.holding.len() == 1, "a writer never shares");
                }
                _ => prop_assert!(decision.holding.len() <= allowed_holders(kind, permits)),
            }
        }

        #[test]
        fn grants_follow_the_queue((kind, permits, records, now) in lock_strategy()) {
            let decision = evaluate(&input(kind, permits, &records, now));
            let key = |i: usize| (-records[i].priority, records[i].created, records[i].name.clone());
            for (i, d) in decision.permits.iter().enumerate() {
                let newly_granted = records[i].grant.is_none() && d.phase == PermitPhase::Granted;
                if newly_granted {
                    for &w in &decision.waiting {
                        prop_assert!(key(w) > key(i), "{} waits although it is ahead of {}", records[w].name, records[i].name);
                    }
                }
            }
            if kind == LockKind::RWMutex {
                // A waiting writer: no reader queued behind it was granted now.
                if let Some(&writer) = decision.waiting.iter().find(|&&w| records[w].mode == PermitMode::Exclusive) {
                    for (i, d) in decision.permits.iter().enumerate() {
                        if records[i].grant.is_none() && d.phase == PermitPhase::Granted {
                            prop_assert!(key(i) < key(writer));
                        }
                    }
                }
            }
        }

        #[test]
        fn tokens_strictly_increase_and_are_never_reused((kind, permits, records, now) in lock_strategy(), last in 0..100i64) {
            let before: Vec<i64> = records.iter().filter_map(|r| r.grant.map(|g| g.token)).collect();
            let decision = evaluate(&LockInput { last_token: last, ..input(kind, permits, &records, now) });
            let mut new_tokens = Vec::new();
            for (i, d) in decision.permits.iter().enumerate() {
                if records[i].grant.is_none() && let Some(token) = d.token {
                    new_tokens.push(token);
                }
            }
            let floor = before.iter().copied().fold(last, i64::max);
            for token in &new_tokens {
                prop_assert!(*token > floor);
            }
            let mut sorted = new_tokens.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), new_tokens.len());
            prop_assert!(decision.last_token >= floor);
        }

        #[test]
        fn a_claim_expires_only_after_a_ttl_of_silence((kind, permits, records, now) in lock_strategy()) {
            let decision = evaluate(&input(kind, permits, &records, now));
            for (i, d) in decision.permits.iter().enumerate() {
                let deadline = expiry(records[i].renewal, TTL);
                if d.phase == PermitPhase::Expired && let Some(deadline) = deadline {
                    prop_assert!(at(now) >= deadline);
                }
                if deadline.is_some_and(|deadline| at(now) < deadline) {
                    prop_assert_ne!(d.phase, PermitPhase::Expired);
                }
            }
        }

        #[test]
        fn a_claim_not_alive_is_never_granted((kind, permits, records, now) in lock_strategy()) {
            let decision = evaluate(&input(kind, permits, &records, now));
            for (i, d) in decision.permits.iter().enumerate() {
                let alive = expiry(records[i].renewal, TTL).is_some_and(|e| at(now) < e);
                if !alive {
                    prop_assert_ne!(d.phase, PermitPhase::Granted);
                    prop_assert!(!decision.waiting.contains(&i));
                }
            }
        }

        #[test]
        fn the_answer_is_a_fixed_point((kind, permits, records, now) in lock_strategy()) {
            let first = evaluate(&input(kind, permits, &records, now));
            let written = applied(&records, &first);
            let again = evaluate(&LockInput { last_token: first.last_token, ..input(kind, permits, &written, now) });
            prop_assert!(again.transitions.is_empty(), "{:?}", again.transitions);
            prop_assert_eq!(&again.permits, &first.permits);
            prop_assert_eq!(again.last_token, first.last_token);
        }
    }
}
