//! The CustomResourceDefinitions, generated from the Rust types: the one source of truth
//! for a real API server (`config/crd/`) and for the embedded one.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::barrier::MAX_BARRIER_NAME_LEN;
use crate::locks::{MAX_LOCK_NAME_LEN, Mutex, Permit, RWMutex, Semaphore};
use crate::{Arrival, Barrier};

/// Every CRD: the Barrier and its Arrival, then the locks and their Permit.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        tidy(limit_name_length(Barrier::crd(), MAX_BARRIER_NAME_LEN)),
        tidy(Arrival::crd()),
        tidy(limit_name_length(Semaphore::crd(), MAX_LOCK_NAME_LEN)),
        tidy(limit_name_length(Mutex::crd(), MAX_LOCK_NAME_LEN)),
        tidy(limit_name_length(RWMutex::crd(), MAX_LOCK_NAME_LEN)),
        tidy(Permit::crd()),
    ]
}

/// Restricts `metadata.name` to `max` characters in the CRD's schema (names of
/// barriers double as label values).
fn limit_name_length(mut crd: CustomResourceDefinition, max: usize) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let name = JSONSchemaProps {
            type_: Some("string".into()),
            max_length: Some(i64::try_from(max).unwrap_or(i64::MAX)),
            ..JSONSchemaProps::default()
        };
        let metadata = JSONSchemaProps {
            type_: Some("object".into()),
            properties: Some(std::collections::BTreeMap::from([(
                "name".to_owned(),
                name,
            )])),
            ..JSONSchemaProps::default()
        };
        schema
            .properties
            .get_or_insert_with(Default::default)
            .insert("metadata".to_owned(), metadata);
    }
    crd
}

/// Unwraps the line breaks rustdoc comments leave in descriptions (keeping paragraph
/// breaks), so `kubectl explain` can wrap the text itself.
fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(text) if key == "description" => {
                            *text = text
                                .split("\n\n")
                                .map(|paragraph| paragraph.replace('\n', " "))
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        other => walk(other),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    walk(&mut value);
    serde_json::from_value(value).expect("tidying descriptions keeps the CRD valid")
}

/// The file name (under `config/crd/`) and YAML of each CRD, exactly as committed.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"));
            (name, to_yaml(&crd))
        })
        .collect()
}

/// Every CRD as one multi-document YAML stream (what `konductor crd` prints).
pub fn crds_yaml() -> String {
    crd_files()
        .into_iter()
        .map(|(_, yaml)| yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml::to_string(crd).expect("a CRD always serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `config/crd/` at the workspace root.
    fn committed_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crd")
    }

    #[test]
    fn committed_crds_match_the_rust_types() {
        for (name, yaml) in crd_files() {
            let path = committed_dir().join(&name);
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run `cargo run --bin konductor -- crd --write config/crd`",
                    path.display()
                )
            });
            assert!(
                committed == yaml,
                "{} is out of date with the Rust types; regenerate it with \
                 `cargo run --bin konductor -- crd --write config/crd`",
                path.display()
            );
        }
    }

    #[test]
    fn descriptions_have_no_hard_line_breaks() {
        let yaml = serde_json::to_string(&crds()).unwrap();
        assert!(
            yaml.contains("how many are enough, and how long to wait"),
            "{yaml}"
        );
    }

    #[test]
    fn crds_are_namespaced_with_a_status_subresource() {
        for crd in crds() {
            assert_eq!(crd.spec.group, "konductor.io");
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1");
            assert!(version.subresources.as_ref().unwrap().status.is_some());
        }
    }

    #[test]
    fn the_barrier_crd_carries_its_validation_and_columns() {
        let yaml = to_yaml(&crds()[0]);
        for needle in [
            "minimum: 1",
            "self.quorum <= self.expected",
            "maxLength: 63",
            "pattern: ^([0-9]+(\\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+$",
            "- Waiting\n",
            "- Timeout\n",
            "name: Expected",
            "name: Quorum",
            "name: Arrived",
            "name: Phase",
            "name: Age",
            "- bar\n",
        ] {
            assert!(
                yaml.contains(needle),
                "Barrier CRD lacks {needle:?}:\n{yaml}"
            );
        }
    }

    #[test]
    fn the_arrival_crd_limits_its_strings_and_keeps_them_immutable() {
        let yaml = to_yaml(&crds()[1]);
        for needle in [
            "minLength: 1",
            "maxLength: 253",
            "maxLength: 1024",
            "self == oldSelf",
            "- Succeeded\n",
            "- Failed\n",
        ] {
            assert!(
                yaml.contains(needle),
                "Arrival CRD lacks {needle:?}:\n{yaml}"
            );
        }
    }
}
