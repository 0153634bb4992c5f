//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), server-side apply
//! (reduced to create-or-merge), and strategic merge patch — refused with 415 for
//! custom resources as Kubernetes does, and a JSON merge for the built-in types served
//! here (Lease, Event, Namespace), whose fields have no merge keys that would differ.

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::registry::ResourceDef;

/// The patch formats a client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type`, or 415 naming the accepted ones.
    pub fn from_content_type(def: &ResourceDef, content_type: &str) -> Result<Self> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let patch_type = match media_type {
            "application/merge-patch+json" => Self::Merge,
            "application/json-patch+json" => Self::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => Self::Apply,
            "application/strategic-merge-patch+json" if def.strategic_merge => Self::StrategicMerge,
            _ => {
                let mut accepted = vec![
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ];
                if def.strategic_merge {
                    accepted.push("application/strategic-merge-patch+json");
                }
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: {}",
                    accepted.join(", ")
                )));
            }
        };
        Ok(patch_type)
    }
}

/// Parses the body of an apply patch (YAML or JSON) into an object.
pub fn parse_apply_body(body: &[u8]) -> Result<Value> {
    let value: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "an apply patch must be an object".into(),
        ));
    }
    Ok(value)
}

/// Applies a patch body to `target`.
pub fn apply(patch_type: PatchType, target: &Value, body: &[u8]) -> Result<Value> {
    let mut result = target.clone();
    match patch_type {
        PatchType::Merge | PatchType::StrategicMerge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "a merge patch must be a JSON object".into(),
                ));
            }
            json_patch::merge(&mut result, &patch);
        }
        PatchType::Apply => {
            let patch = parse_apply_body(body)?;
            json_patch::merge(&mut result, &patch);
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding JSON patch: {e}")))?;
            // Without json-patch's rollback: `result` is a copy, dropped on error, and
            // the rollback itself panics when undoing a move to the document's root
            // (fuzz/regressions/patch_request/json-patch-undo-of-a-move-to-the-root).
            json_patch::patch_unsafe(&mut result, &patch).map_err(|e| {
                // As kube-apiserver: a well-formed patch that does not apply is 422.
                ApiError::Unprocessable(format!("the JSON patch could not be applied: {e}"))
            })?;
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn merge_and_json_patches_apply() {
        let target = json!({"spec": {"expected": 1, "timeout": "1m"}});
        let merged = apply(PatchType::Merge, &target, br#"{"spec":{"timeout":"1h"}}"#).unwrap();
        assert_eq!(merged["spec"], json!({"expected": 1, "timeout": "1h"}));
        let patched = apply(
            PatchType::Json,
            &target,
            br#"[{"op":"replace","path":"/spec/expected","value":3}]"#,
        )
        .unwrap();
        assert_eq!(patched["spec"]["expected"], 3);
    }

    #[test]
    fn strategic_merge_is_refused_for_custom_resources_only() {
        let registry = Registry::standard();
        let barriers = registry.find("konductor.io", "v1", "barriers").unwrap();
        let leases = registry
            .find("coordination.k8s.io", "v1", "leases")
            .unwrap();
        let err = PatchType::from_content_type(barriers, "application/strategic-merge-patch+json")
            .unwrap_err();
        assert!(matches!(err, ApiError::UnsupportedMediaType(_)));
        assert_eq!(
            PatchType::from_content_type(leases, "application/strategic-merge-patch+json").unwrap(),
            PatchType::StrategicMerge
        );
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let merged = apply(
            PatchType::Apply,
            &json!({}),
            b"spec:\n  holderIdentity: me\n",
        )
        .unwrap();
        assert_eq!(merged["spec"]["holderIdentity"], "me");
    }
}
