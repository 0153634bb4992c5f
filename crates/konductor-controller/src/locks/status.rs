//! Translating the rules' decision into statuses: the lock's status of each kind, the
//! permits' statuses, and the JSON merge patch that turns what is stored into them.
//! Statuses are built as the API crate's typed structs; nothing here decides a grant.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use konductor_api::locks::rules::PermitDecision;
use konductor_api::locks::rules::{Decision, GrantRecord, PermitRecord, Renewal};
use konductor_api::locks::{
    CONDITION_AVAILABLE, CONDITION_GRANTED, CONDITION_LOCKED, CONDITION_READY, Grant, LockKind,
    MutexPhase, MutexStatus, PermitMode, PermitPhase, PermitStatus, RWMutexPhase, RWMutexStatus,
    SemaphorePhase, SemaphoreStatus,
};
use kube::ResourceExt;
use serde_json::{Map, Value};

use super::cache::{IndexedPermit, LockState};

/// The rules' view of one permit of `lock`. A grant is what the lock's status lists for
/// the permit's uid (a status written before grants were listed there: what the
/// permit's own status says). A permit whose own status says it was granted, which
/// the lock no longer lists and whose renewal this controller has not seen change,
/// lost that grant before this controller started: it counts as found Expired.
pub fn record_of(indexed: &IndexedPermit, lock: &LockState) -> PermitRecord {
    let permit = &indexed.permit;
    let uid = permit.uid().unwrap_or_default();
    let own = permit.status.as_ref();
    let grant = match lock.grants() {
        Some(grants) => grants.iter().find(|g| g.uid == uid).map(|g| GrantRecord {
            token: g.token,
            granted_at: g.granted_at.0,
        }),
        None => own
            .filter(|s| s.phase == PermitPhase::Granted)
            .and_then(|s| {
                Some(GrantRecord {
                    token: s.fencing_token?,
                    granted_at: s.granted_at.as_ref()?.0,
                })
            }),
    };
    let dropped = lock.grants().is_some()
        && grant.is_none()
        && own.is_some_and(|s| s.phase == PermitPhase::Granted);
    let renewal = match indexed.renewal {
        Renewal::Seen(first) if dropped && !indexed.renewed_since_first_seen => {
            Renewal::ExpiredWhenFirstSeen(first)
        }
        other => other,
    };
    PermitRecord {
        name: permit.name_any(),
        holder: permit.spec.holder.clone(),
        mode: permit.spec.mode,
        priority: permit.spec.priority,
        created: permit
            .creation_timestamp()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        grant,
        renewal,
    }
}

/// A condition of `type_`, keeping the transition time of `previous` while its status
/// stays the same.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// The lock's `Ready` condition: whether its spec was accepted.
pub fn ready_condition(lock: &LockState, now: Timestamp) -> Condition {
    let (accepted, reason, message) = match &lock.ttl {
        Ok(_) => (true, "SpecAccepted", "spec accepted".to_owned()),
        Err(why) => (false, "InvalidSpec", why.clone()),
    };
    condition(
        &lock.common.conditions,
        CONDITION_READY,
        accepted,
        reason,
        message,
        lock.generation,
        now,
    )
}

/// The lock's status for `decision`, as JSON.
pub fn lock_status(
    kind: LockKind,
    lock: &LockState,
    decision: &Decision,
    records: &[PermitRecord],
    permits: &[IndexedPermit],
    now: Timestamp,
) -> Value {
    let grants: Vec<Grant> = decision
        .holding
        .iter()
        .map(|&i| {
            let (record, decided) = (&records[i], &decision.permits[i]);
            Grant {
                holder: record.holder.clone(),
                permit: record.name.clone(),
                uid: permits[i].permit.uid().unwrap_or_default(),
                token: decided.token.unwrap_or_default(),
                mode: konductor_api::locks::rules::effective_mode(kind, record),
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
    let previous = &lock.common.conditions;
    let ready = ready_condition(lock, now);
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
            lock.generation,
            now,
        )
    };
    let status = match kind {
        LockKind::Semaphore => {
            let free = in_use < lock.permits;
            let available = (lock.permits - in_use).max(0);
            let (reason, message) = if free {
                (
                    "PermitFree",
                    format!("{available} of {} permits free", lock.permits),
                )
            } else {
                ("Exhausted", format!("all {} permits in use", lock.permits))
            };
            serde_json::to_value(SemaphoreStatus {
                phase: if free {
                    SemaphorePhase::Available
                } else {
                    SemaphorePhase::Exhausted
                },
                in_use: i32::try_from(in_use).unwrap_or(i32::MAX),
                available: i32::try_from(available).unwrap_or(i32::MAX),
                holders,
                waiting,
                waiting_count,
                grants: Some(grants),
                fencing_token: decision.last_token,
                conditions: vec![
                    ready,
                    condition(
                        previous,
                        CONDITION_AVAILABLE,
                        free,
                        reason,
                        message,
                        lock.generation,
                        now,
                    ),
                ],
                observed_generation: lock.generation,
            })
        }
        LockKind::Mutex => serde_json::to_value(MutexStatus {
            phase: if grants.is_empty() {
                MutexPhase::Unlocked
            } else {
                MutexPhase::Locked
            },
            holder: holders.first().cloned(),
            locked_at,
            expires_at,
            waiting,
            waiting_count,
            conditions: vec![ready, held(!grants.is_empty())],
            grants: Some(grants),
            fencing_token: decision.last_token,
            observed_generation: lock.generation,
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
            serde_json::to_value(RWMutexStatus {
                phase: match (&writer, grants.is_empty()) {
                    (Some(_), _) => RWMutexPhase::WriteLocked,
                    (None, true) => RWMutexPhase::Unlocked,
                    (None, false) => RWMutexPhase::ReadLocked,
                },
                write_holder: writer,
                read_holders: readers,
                locked_at,
                expires_at,
                waiting,
                waiting_count,
                conditions: vec![ready, held(!grants.is_empty())],
                grants: Some(grants),
                fencing_token: decision.last_token,
                observed_generation: lock.generation,
            })
        }
    };
    status.unwrap_or(Value::Null)
}

/// A permit's status for its decision, as JSON. An Expired permit keeps the token it
/// was granted with, for the record. The Granted condition keeps its transition time
/// while its status stays the same.
pub fn permit_status(indexed: &IndexedPermit, decision: &PermitDecision, now: Timestamp) -> Value {
    let stored = indexed.permit.status.as_ref();
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
        PermitPhase::Expired => (
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
    let status = PermitStatus {
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
    };
    serde_json::to_value(status).unwrap_or(Value::Null)
}

/// The JSON merge patch (RFC 7386) that turns `stored` into `wanted`; `None` when they
/// are the same. Fields `wanted` lacks become `null` (removed); arrays are replaced.
pub fn merge_patch(stored: &Value, wanted: &Value) -> Option<Value> {
    match (stored, wanted) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) => {
                        if let Some(change) = merge_patch(before, value) {
                            patch.insert(key.clone(), change);
                        }
                    }
                    None if value.is_null() => {}
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_carries_only_the_difference_and_nulls_what_went() {
        let stored = json!({"phase": "Locked", "holder": "a", "waiting": ["b"], "conditions": [{"type": "Ready"}]});
        let wanted =
            json!({"phase": "Unlocked", "waiting": ["b"], "conditions": [{"type": "Ready"}]});
        assert_eq!(
            merge_patch(&stored, &wanted),
            Some(json!({"phase": "Unlocked", "holder": null}))
        );
        assert_eq!(merge_patch(&wanted, &wanted), None);
        assert_eq!(
            merge_patch(&Value::Null, &json!({"phase": "Unlocked"})),
            Some(json!({"phase": "Unlocked"}))
        );
    }
}
