//! Typed merge patches of specs: the few fields of a spec a verb changes (a member's
//! outcome, a claim's renewal, a Gate's override) — and a claim's client label —
//! each patch naming its fields in Rust — a test checks each against the spec type it
//! writes — never as JSON literals. A
//! field set to `None` is written as `null`: a merge patch removes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde::Serialize;

/// A merge patch of `spec`'s fields, conditional on the object's uid (not one created
/// again under its name) or resourceVersion (not changed since it was read), if given.
#[derive(Serialize, Debug)]
pub(crate) struct SpecPatch<'a, S> {
    /// What the write is conditional on.
    #[serde(skip_serializing_if = "Precondition::is_none")]
    metadata: Precondition<'a>,
    /// The fields to write.
    spec: S,
}

/// What a patch is conditional on.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Precondition<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<&'a str>,
}

impl Precondition<'_> {
    fn is_none(&self) -> bool {
        self.uid.is_none() && self.resource_version.is_none()
    }
}

impl<'a, S> SpecPatch<'a, S> {
    /// Writes `spec`'s fields whatever the object's version.
    pub(crate) fn new(spec: S) -> Self {
        Self {
            metadata: Precondition::default(),
            spec,
        }
    }

    /// Writes them only to the object with this uid.
    pub(crate) fn of_uid(uid: &'a str, spec: S) -> Self {
        Self {
            metadata: Precondition {
                uid: Some(uid),
                ..Precondition::default()
            },
            spec,
        }
    }

    /// Writes them only over this resourceVersion (a conflict otherwise).
    pub(crate) fn over_version(version: Option<&'a str>, spec: S) -> Self {
        Self {
            metadata: Precondition {
                resource_version: version,
                ..Precondition::default()
            },
            spec,
        }
    }
}

/// A claim's outcome (a WaitGroup member's, a Once executor's report).
#[derive(Serialize, Debug)]
pub(crate) struct Outcome<'a, O> {
    pub(crate) outcome: &'a O,
}

/// A claim marked interrupting (its work got a signal).
#[derive(Serialize, Debug)]
pub(crate) struct Interrupting {
    pub(crate) interrupting: bool,
}

/// A claim's renewal.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Renewal {
    pub(crate) renew_time: MicroTime,
}

/// A merge patch setting one label on the object with `uid` (a claim carried on by
/// another client takes that client's label, so the client's watch of its own claims
/// sees it).
#[derive(Serialize, Debug)]
pub(crate) struct LabelPatch<'a> {
    metadata: LabelledMetadata<'a>,
}

#[derive(Serialize, Debug)]
struct LabelledMetadata<'a> {
    uid: &'a str,
    labels: std::collections::BTreeMap<&'a str, &'a str>,
}

impl<'a> LabelPatch<'a> {
    /// Sets `key` to `value` on the object with `uid` only.
    pub(crate) fn of_uid(uid: &'a str, key: &'a str, value: &'a str) -> Self {
        Self {
            metadata: LabelledMetadata {
                uid,
                labels: [(key, value)].into(),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use konductor_api::locks::PermitSpec;

    /// The fields of `T`'s schema.
    fn fields<T: schemars::JsonSchema>() -> Vec<String> {
        schemars::schema_for!(T)
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every field `patch` writes is one of `T`'s.
    pub(crate) fn writes_fields_of<T: schemars::JsonSchema>(patch: impl Serialize) {
        let known = fields::<T>();
        let body = serde_json::to_value(SpecPatch::of_uid("u", patch)).unwrap();
        let written = body["spec"].as_object().unwrap();
        assert!(!written.is_empty());
        for field in written.keys() {
            assert!(
                known.contains(field),
                "spec.{field} is not a field of {}",
                std::any::type_name::<T>()
            );
        }
    }

    #[test]
    fn every_claim_patch_writes_only_fields_of_a_permit_spec() {
        let renewal = Renewal {
            renew_time: MicroTime(k8s_openapi::jiff::Timestamp::now()),
        };
        writes_fields_of::<PermitSpec>(renewal);
        writes_fields_of::<PermitSpec>(Interrupting { interrupting: true });
        let outcome = konductor_api::once::ReportedOutcome {
            result: konductor_api::Outcome::Succeeded,
            fencing_token: 1,
            exit_code: None,
            message: None,
            interrupted: false,
        };
        writes_fields_of::<PermitSpec>(Outcome { outcome: &outcome });
    }

    #[test]
    fn a_patch_is_conditional_only_when_asked_and_unset_fields_are_removed() {
        let body =
            serde_json::to_value(SpecPatch::new(Interrupting { interrupting: true })).unwrap();
        assert_eq!(body, serde_json::json!({"spec": {"interrupting": true}}));
        let body =
            serde_json::to_value(SpecPatch::of_uid("u", Interrupting { interrupting: true }))
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"metadata": {"uid": "u"}, "spec": {"interrupting": true}})
        );
    }
}
