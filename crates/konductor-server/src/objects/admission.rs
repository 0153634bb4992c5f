//! Admission: what a resource's schema (and the metadata rules) make of an object about
//! to be stored — defaults, unknown fields, violations.

use serde_json::Value;

use super::{FieldValidation, invalid, name_of};
use crate::error::{ApiError, Result};
use crate::registry::ResourceDef;

/// Checks an object about to be stored: the metadata rules of every resource (when
/// the metadata is new or changed), then the resource's schema, if it has one —
/// defaults, unknown fields (per `validation`), the schema and its CEL rules. Returns
/// the warnings to send for dropped unknown fields.
pub fn admit(
    def: &ResourceDef,
    object: &mut Value,
    old: Option<&Value>,
    validation: FieldValidation,
) -> Result<Vec<String>> {
    if old.is_none_or(|old| old.get("metadata") != object.get("metadata")) {
        let errors = super::metadata::validate(&object["metadata"]);
        if !errors.is_empty() {
            return Err(invalid(def, name_of(object), errors));
        }
    }
    let Some(schema) = def.schema.as_deref() else {
        return Ok(Vec::new());
    };
    let unknown = schema.prune(object, old);
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        return Err(strict_error(def, &unknown));
    }
    schema.apply_defaults(object, old);
    schema.normalize_integers(object, old);
    let errors = schema.validate(object, old);
    if !errors.is_empty() {
        return Err(invalid(def, name_of(object), errors));
    }
    Ok(match validation {
        FieldValidation::Warn => unknown
            .into_iter()
            .map(|field| format!("unknown field \"{field}\""))
            .collect(),
        _ => Vec::new(),
    })
}

/// The 400 a real API server returns for unknown fields under `fieldValidation=Strict`.
fn strict_error(def: &ResourceDef, unknown: &[String]) -> ApiError {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::BadRequest(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = def.kind,
        version = def.version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::tests::{barriers, created};

    #[test]
    fn strict_validation_refuses_unknown_fields_and_warn_reports_them() {
        let def = barriers();
        let mut object = created();
        object["spec"]["colour"] = "red".into();
        let err = admit(&def, &mut object.clone(), None, FieldValidation::Strict).unwrap_err();
        assert!(
            err.to_string().contains("unknown field \"spec.colour\""),
            "{err}"
        );
        let warnings = admit(&def, &mut object, None, FieldValidation::Warn).unwrap();
        assert_eq!(warnings, ["unknown field \"spec.colour\""]);
        assert!(object["spec"].get("colour").is_none());
    }

    #[test]
    fn whole_floats_in_integer_fields_are_stored_as_integers() {
        let def = barriers();
        let mut object = created();
        object["spec"]["expected"] = serde_json::json!(2.0);
        admit(&def, &mut object, None, FieldValidation::Strict).unwrap();
        assert_eq!(object["spec"]["expected"].as_i64(), Some(2));
        let barrier: konductor_api::Barrier = serde_json::from_value(object).unwrap();
        assert_eq!(barrier.spec.expected, 2);

        let mut huge = created();
        huge["spec"]["expected"] = serde_json::json!(8.9e28);
        let refused = admit(&def, &mut huge, None, FieldValidation::Strict).unwrap_err();
        assert!(refused.to_string().contains("spec.expected"), "{refused}");
    }
}
