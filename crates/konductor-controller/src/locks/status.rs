//! Between the controller's caches and the lock rules: a permit as the rules see it,
//! and the JSON merge patch that turns a stored status into the one they decided.

use jiff::Timestamp;
use konductor_api::locks::PermitPhase;
use konductor_api::locks::rules::{GrantRecord, PermitRecord, Renewal};
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
        uid,
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
