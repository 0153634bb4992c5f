//! The `/scale` subresource of custom resources that declare one: an
//! `autoscaling/v1` Scale read from, and written to, the paths the CRD names
//! (`kubectl scale`, HorizontalPodAutoscalers and KEDA use it).

use serde_json::{Value, json};

use crate::error::{ApiError, FieldError, Result};
use crate::registry::{ResourceDef, ScaleSpec};

/// A simple JSON path (`.spec.replicas`) as a JSON pointer (`/spec/replicas`).
fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

fn spec_of(def: &ResourceDef) -> Result<&ScaleSpec> {
    def.scale.as_ref().ok_or(ApiError::NoRoute)
}

/// The Scale of `object`: its name and version, desired and observed replicas, and
/// the label selector when the resource publishes one.
pub fn of(def: &ResourceDef, object: &Value) -> Result<Value> {
    let spec = spec_of(def)?;
    let metadata = &object["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {
            "replicas": object.pointer(&pointer(&spec.spec_replicas_path)).cloned().unwrap_or(json!(0)),
        },
        "status": {
            "replicas": object.pointer(&pointer(&spec.status_replicas_path)).cloned().unwrap_or(json!(0)),
        },
    });
    if let Some(namespace) = metadata.get("namespace") {
        scale["metadata"]["namespace"] = namespace.clone();
    }
    if let Some(selector) = spec
        .label_selector_path
        .as_deref()
        .and_then(|path| object.pointer(&pointer(path)))
    {
        scale["status"]["selector"] = selector.clone();
    }
    Ok(scale)
}

/// `object` with the desired replicas of `scale` written at the resource's spec path,
/// and the Scale's `resourceVersion` (if any) as the write's precondition.
pub fn apply(def: &ResourceDef, object: &Value, scale: &Value) -> Result<Value> {
    let spec = spec_of(def)?;
    let replicas = match &scale["spec"]["replicas"] {
        Value::Number(n)
            if n.as_i64()
                .is_some_and(|r| (0..=i64::from(i32::MAX)).contains(&r)) =>
        {
            n.clone()
        }
        other => {
            return Err(ApiError::Invalid {
                kind: "Scale.autoscaling".into(),
                name: object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                causes: vec![FieldError::invalid(
                    "spec.replicas",
                    format!(
                        "Invalid value: {other}: must be a whole number between 0 and 2147483647"
                    ),
                )],
            });
        }
    };
    let mut next = object.clone();
    set(&mut next, &spec.spec_replicas_path, Value::Number(replicas));
    let version = scale["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    let metadata = &mut next["metadata"];
    if version.is_empty() {
        if let Some(map) = metadata.as_object_mut() {
            map.remove("resourceVersion");
        }
    } else {
        metadata["resourceVersion"] = version.into();
    }
    Ok(next)
}

/// Sets the value at a simple JSON path, creating the objects on the way.
fn set(object: &mut Value, path: &str, value: Value) {
    let mut current = object;
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = json!({});
        }
        if i == parts.len() - 1 {
            current[*part] = value;
            return;
        }
        current = &mut current[*part];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ResourceDef {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.size",
                        "statusReplicasPath": ".status.ready",
                        "labelSelectorPath": ".status.selector",
                    }},
                }],
            },
        });
        crate::registry::served_resources(&crd).unwrap().remove(0)
    }

    #[test]
    fn a_scale_reads_the_declared_paths() {
        let object = json!({
            "metadata": {"name": "w", "namespace": "default", "resourceVersion": "7"},
            "spec": {"size": 3},
            "status": {"ready": 2, "selector": "app=w"},
        });
        let scale = of(&def(), &object).unwrap();
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["replicas"], 2);
        assert_eq!(scale["status"]["selector"], "app=w");
        assert_eq!(scale["metadata"]["namespace"], "default");
    }

    #[test]
    fn applying_a_scale_sets_the_spec_path_and_keeps_its_version_as_precondition() {
        let object = json!({"metadata": {"name": "w", "resourceVersion": "7"}});
        let scale = json!({"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 4}});
        let next = apply(&def(), &object, &scale).unwrap();
        assert_eq!(next["spec"]["size"], 4);
        assert_eq!(next["metadata"]["resourceVersion"], "5");
        let negative = json!({"spec": {"replicas": -1}});
        let refused = apply(&def(), &object, &negative).unwrap_err();
        assert!(refused.to_string().contains("spec.replicas"), "{refused}");
    }
}
