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
//!    and never reused (the lock's counter is written before the permits that carry
//!    its tokens).
//! 4. **Expiry**: a grant whose renewal the controller has not seen for `ttl` — counted
//!    on the controller's clock from the later of the grant and the last renewal it
//!    saw — is Expired at exactly that moment and no longer counts.
//! 5. **Release** is deleting the permit: it is simply no longer in the input.
//! 6. **Shrinking** a Semaphore below what is in use revokes nobody; grants wait.
//! 7. Hence: never more holders than the lock allows.
//!
//! Evaluating its own answer again (at the same moment) changes nothing: the statuses
//! written back are a fixed point.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{LockKind, PermitMode, PermitPhase};

/// One permit as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermitRecord {
    /// The Permit object's name (the tie-breaker in the queue).
    pub name: String,
    /// Who claims the lock.
    pub holder: String,
    /// Exclusive, or Shared (RWMutex readers).
    pub mode: PermitMode,
    /// Higher is granted first.
    pub priority: i32,
    /// When the permit was created (queue order within a priority).
    pub created: Timestamp,
    /// Its phase as last written.
    pub phase: PermitPhase,
    /// Its fencing token, once granted.
    pub token: Option<i64>,
    /// When it was granted.
    pub granted_at: Option<Timestamp>,
    /// When the controller last saw its `renewTime` change (or, after a controller
    /// restart, when it first saw the permit): the ttl counts from here.
    pub renewal_seen: Timestamp,
}

/// A lock and its permits at one moment.
#[derive(Clone, Debug)]
pub struct LockInput<'a> {
    /// Semaphore, Mutex or RWMutex.
    pub kind: LockKind,
    /// How many may hold it at once: `spec.permits` for a Semaphore (1 for the others,
    /// whatever is passed).
    pub permits: i64,
    /// How long a grant lives without a renewal seen.
    pub ttl: Duration,
    /// The last fencing token issued (the lock's status).
    pub last_token: i64,
    /// Every permit of the lock.
    pub permits_of_lock: &'a [PermitRecord],
    /// Now, on the controller's clock.
    pub now: Timestamp,
}

/// What the rules decided about one permit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermitDecision {
    /// Pending, Granted or Expired.
    pub phase: PermitPhase,
    /// Place in the queue while Pending (1 is next).
    pub position: Option<i32>,
    /// The grant's fencing token.
    pub token: Option<i64>,
    /// When it was granted.
    pub granted_at: Option<Timestamp>,
    /// When the grant expires unless a renewal is seen before.
    pub expires_at: Option<Timestamp>,
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
    },
    /// `holder`'s grant expired: it was not renewed for the ttl.
    Expired {
        /// Who.
        holder: String,
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
    /// When to evaluate again without any change: the earliest expiry of a grant.
    pub next_look: Option<Timestamp>,
}

impl Decision {
    /// Whether a permit holding the lock holds it exclusively (an RWMutex writer, a
    /// Mutex holder).
    pub fn held_exclusively(&self, input: &LockInput<'_>) -> bool {
        input.kind != LockKind::Semaphore
            && self.holding.iter().any(|&i| {
                effective_mode(input.kind, &input.permits_of_lock[i]) == PermitMode::Exclusive
            })
    }
}

/// The mode that counts: only an RWMutex has Shared holders.
fn effective_mode(kind: LockKind, permit: &PermitRecord) -> PermitMode {
    match kind {
        LockKind::RWMutex => permit.mode,
        LockKind::Semaphore | LockKind::Mutex => PermitMode::Exclusive,
    }
}

/// When a grant expires unless a renewal is seen: `ttl` after the later of the grant
/// and the last renewal seen.
fn expiry(permit: &PermitRecord, ttl: Duration) -> Timestamp {
    let since = permit.granted_at.map_or(permit.renewal_seen, |granted| {
        granted.max(permit.renewal_seen)
    });
    let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX);
    since.checked_add(ttl).unwrap_or(Timestamp::MAX)
}

/// Decides which permits hold the lock; see the module documentation for the rules.
pub fn evaluate(input: &LockInput<'_>) -> Decision {
    let permits = input.permits_of_lock;
    let capacity = match input.kind {
        LockKind::Semaphore => input.permits.max(1),
        LockKind::Mutex | LockKind::RWMutex => 1,
    };
    let mut decisions: Vec<PermitDecision> = permits
        .iter()
        .map(|p| PermitDecision {
            phase: p.phase,
            position: None,
            token: p.token,
            granted_at: p.granted_at,
            expires_at: None,
        })
        .collect();
    let mut transitions = Vec::new();
    // Tokens already handed out are never handed out again, even if the lock's counter
    // was lost.
    let mut last_token = permits
        .iter()
        .filter_map(|p| p.token)
        .fold(input.last_token, i64::max);

    // Rule 4: grants not renewed for the ttl expire, exactly at the deadline.
    let mut holding: Vec<usize> = Vec::new();
    for (i, permit) in permits.iter().enumerate() {
        if permit.phase != PermitPhase::Granted {
            continue;
        }
        let expires = expiry(permit, input.ttl);
        if input.now >= expires {
            decisions[i].phase = PermitPhase::Expired;
            transitions.push(Transition::Expired {
                holder: permit.holder.clone(),
            });
        } else {
            decisions[i].expires_at = Some(expires);
            holding.push(i);
        }
    }
    holding.sort_by_key(|&i| (permits[i].token.unwrap_or(i64::MAX), i));

    // Rule 1: the queue.
    let mut queue: Vec<usize> = (0..permits.len())
        .filter(|&i| permits[i].phase == PermitPhase::Pending)
        .collect();
    queue.sort_by(|&a, &b| {
        let (a, b) = (&permits[a], &permits[b]);
        b.priority
            .cmp(&a.priority)
            .then(a.created.cmp(&b.created))
            .then(a.name.cmp(&b.name))
    });

    // Rules 2, 3 and 6: grant from the head while the kind allows.
    let mut writer_holds = holding
        .iter()
        .any(|&i| input.kind == LockKind::RWMutex && permits[i].mode == PermitMode::Exclusive);
    let mut granted = 0;
    for &i in &queue {
        let held = i64::try_from(holding.len()).unwrap_or(i64::MAX);
        let allowed = match (input.kind, effective_mode(input.kind, &permits[i])) {
            (LockKind::RWMutex, PermitMode::Exclusive) => held == 0,
            (LockKind::RWMutex, PermitMode::Shared) => !writer_holds,
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
        decision.expires_at = Some(expiry(
            &PermitRecord {
                granted_at: Some(input.now),
                ..permits[i].clone()
            },
            input.ttl,
        ));
        writer_holds |= input.kind == LockKind::RWMutex && permits[i].mode == PermitMode::Exclusive;
        holding.push(i);
        granted += 1;
        transitions.push(Transition::Granted {
            holder: permits[i].holder.clone(),
            token: last_token,
        });
    }
    let waiting: Vec<usize> = queue[granted..].to_vec();
    for (place, &i) in waiting.iter().enumerate() {
        decisions[i].position = Some(i32::try_from(place + 1).unwrap_or(i32::MAX));
    }
    let next_look = holding
        .iter()
        .filter_map(|&i| decisions[i].expires_at)
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(10);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn pending(name: &str, created: i64) -> PermitRecord {
        PermitRecord {
            name: name.to_owned(),
            holder: name.to_owned(),
            mode: PermitMode::Exclusive,
            priority: 0,
            created: at(created),
            phase: PermitPhase::Pending,
            token: None,
            granted_at: None,
            renewal_seen: at(created),
        }
    }

    fn shared(name: &str, created: i64) -> PermitRecord {
        PermitRecord {
            mode: PermitMode::Shared,
            ..pending(name, created)
        }
    }

    fn input(kind: LockKind, permits: i64, records: &[PermitRecord], now: i64) -> LockInput<'_> {
        LockInput {
            kind,
            permits,
            ttl: TTL,
            last_token: 0,
            permits_of_lock: records,
            now: at(now),
        }
    }

    /// The records after applying `decision` (what the controller writes back).
    fn applied(records: &[PermitRecord], decision: &Decision) -> Vec<PermitRecord> {
        records
            .iter()
            .zip(&decision.permits)
            .map(|(record, d)| PermitRecord {
                phase: d.phase,
                token: d.token,
                granted_at: d.granted_at,
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
    fn tokens_keep_rising_past_the_lock_counter_and_the_permits() {
        let mut old = pending("old", 1);
        old.phase = PermitPhase::Granted;
        old.token = Some(41);
        old.granted_at = Some(at(1));
        let records = [old, pending("new", 2)];
        let decision = evaluate(&LockInput {
            last_token: 7,
            ..input(LockKind::Semaphore, 2, &records, 3)
        });
        assert_eq!(decision.permits[1].token, Some(42));
        assert_eq!(decision.last_token, 42);
    }

    #[test]
    fn a_grant_expires_exactly_a_ttl_after_the_last_renewal_seen() {
        let mut held = pending("a", 0);
        held.phase = PermitPhase::Granted;
        held.token = Some(1);
        held.granted_at = Some(at(0));
        held.renewal_seen = at(5);
        let records = [held, pending("b", 1)];
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
                Transition::Expired { holder: "a".into() },
                Transition::Granted {
                    holder: "b".into(),
                    token: 2
                }
            ]
        );
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

    #[test]
    fn an_expired_permit_stays_expired_and_does_not_count() {
        let mut gone = pending("gone", 0);
        gone.phase = PermitPhase::Expired;
        gone.token = Some(3);
        let records = [gone, pending("next", 1)];
        let decision = evaluate(&input(LockKind::Mutex, 1, &records, 2));
        assert_eq!(decision.permits[0].phase, PermitPhase::Expired);
        assert_eq!(holders(&records, &decision), ["next"]);
        assert_eq!(decision.permits[1].token, Some(4));
    }

    fn record_strategy() -> impl Strategy<Value = PermitRecord> {
        (
            0..4i32,
            0..20i64,
            any::<bool>(),
            prop_oneof![
                Just(PermitPhase::Pending),
                Just(PermitPhase::Granted),
                Just(PermitPhase::Expired)
            ],
            0..30i64,
        )
            .prop_map(
                |(priority, created, is_shared, phase, renewed)| PermitRecord {
                    name: String::new(),
                    holder: String::new(),
                    mode: if is_shared {
                        PermitMode::Shared
                    } else {
                        PermitMode::Exclusive
                    },
                    priority,
                    created: at(created),
                    phase,
                    token: None,
                    granted_at: (phase != PermitPhase::Pending).then(|| at(created)),
                    renewal_seen: at(created.max(renewed)),
                },
            )
    }

    /// A consistent lock: names unique, granted permits with distinct tokens, and no
    /// more holders than the kind allows (as the rules would have left it).
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
                // Make the granted ones a state the rules could have produced: start from
                // nothing granted and let the rules grant.
                let queued: Vec<PermitRecord> = records
                    .iter()
                    .map(|r| PermitRecord {
                        phase: if r.phase == PermitPhase::Expired {
                            PermitPhase::Expired
                        } else {
                            PermitPhase::Pending
                        },
                        token: None,
                        granted_at: None,
                        ..r.clone()
                    })
                    .collect();
                let first = evaluate(&LockInput {
                    kind,
                    permits,
                    ttl: TTL,
                    last_token: 0,
                    permits_of_lock: &queued,
                    now: at(0),
                });
                let settled = applied(&queued, &first);
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
            let exclusive = decision.holding.iter().filter(|&&i| effective_mode(kind, &records[i]) == PermitMode::Exclusive).count();
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
                let newly_granted = records[i].phase == PermitPhase::Pending && d.phase == PermitPhase::Granted;
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
                        if records[i].phase == PermitPhase::Pending && d.phase == PermitPhase::Granted {
                            prop_assert!(key(i) < key(writer));
                        }
                    }
                }
            }
        }

        #[test]
        fn tokens_strictly_increase_and_are_never_reused((kind, permits, records, now) in lock_strategy(), last in 0..100i64) {
            let before: Vec<i64> = records.iter().filter_map(|r| r.token).collect();
            let decision = evaluate(&LockInput { last_token: last, ..input(kind, permits, &records, now) });
            let mut new_tokens = Vec::new();
            for (i, d) in decision.permits.iter().enumerate() {
                if records[i].token.is_none() && let Some(token) = d.token {
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
        fn expiry_only_after_a_ttl_of_silence((kind, permits, records, now) in lock_strategy()) {
            let decision = evaluate(&input(kind, permits, &records, now));
            for (i, d) in decision.permits.iter().enumerate() {
                if records[i].phase == PermitPhase::Granted && d.phase == PermitPhase::Expired {
                    prop_assert!(at(now) >= expiry(&records[i], TTL));
                }
                if records[i].phase == PermitPhase::Granted && at(now) < expiry(&records[i], TTL) {
                    prop_assert_eq!(d.phase, PermitPhase::Granted);
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
