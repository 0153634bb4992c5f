//! The CustomResourceDefinitions, generated from the Rust types: the one source of truth
//! for a real API server (`config/crd/`) and for the embedded one. Each kind's module
//! registers its resources as [`KindEntry`]s (its `kinds()`); [`crate::kinds`] lists
//! them all.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};

/// What one party does with objects of a kind, as RBAC verbs: on the objects, and on
/// their status subresource.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Verbs on the objects.
    pub verbs: &'static [&'static str],
    /// Verbs on their status.
    pub status_verbs: &'static [&'static str],
}

/// One of Konductor's kinds, with what every generated list needs of it.
#[derive(Clone, Debug)]
pub struct KindEntry {
    /// Its CRD.
    pub crd: CustomResourceDefinition,
    /// What the controllers (the operator) do with its objects.
    pub controller: Access,
    /// What a workload using koncli or the SDK does with them (a Job's
    /// ServiceAccount; setting the objects up is left to whoever does).
    pub workload: Access,
    /// Whether the controllers reconcile objects of this kind (a subject: a barrier, a
    /// lock), rather than read them as a subject's claims.
    pub reconciled: bool,
    /// Whether its objects reach a state a Gate can wait for — a phase that means done
    /// (or, for a lock, free): every reconciled kind has a Gate preset except one that
    /// never does (a RateLimit only ever is Available or Limited, for now).
    pub gate_preset: bool,
    /// Kinds beyond Konductor's own that both the controllers and the workloads read
    /// for this one (a Gate: the kinds its presets name), as (API group, resource).
    pub also_reads: Vec<(&'static str, &'static str)>,
    /// Kinds beyond Konductor's own that the controllers read and patch for this one
    /// (a Gate: the suspended workloads it resumes), as (API group, resource).
    pub also_resumes: Vec<(&'static str, &'static str)>,
}

/// Read-only verbs.
pub(crate) const READ: &[&str] = &["get", "list", "watch"];

/// No access.
pub(crate) const NONE: Access = Access {
    verbs: &[],
    status_verbs: &[],
};

impl KindEntry {
    /// An entry for `crd` (its descriptions tidied for `kubectl explain`, and
    /// `metadata.name` limited to `max_name_len` if given): read-only to both parties,
    /// reconciled, reading nothing else, until the kind says otherwise.
    pub(crate) fn of(crd: CustomResourceDefinition, max_name_len: Option<usize>) -> Self {
        let crd = match max_name_len {
            Some(max) => limit_name_length(crd, max),
            None => crd,
        };
        let read = Access {
            verbs: READ,
            ..NONE
        };
        Self {
            crd: tidy(crd),
            controller: read,
            workload: read,
            reconciled: true,
            gate_preset: true,
            also_reads: Vec::new(),
            also_resumes: Vec::new(),
        }
    }

    /// The kind as metrics and logs name it: its singular (`barrier`, `rwmutex`).
    pub fn word(&self) -> &str {
        self.crd.spec.names.singular.as_deref().unwrap_or_default()
    }
}

/// Every CRD, in the order of [`crate::kinds`].
pub fn crds() -> Vec<CustomResourceDefinition> {
    crate::kinds().into_iter().map(|kind| kind.crd).collect()
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

/// The CRD files and `kustomization.yaml` listing them: everything `konductor crd
/// --write config/crd` writes.
pub fn config_crd_files() -> Vec<(String, String)> {
    let mut files = crd_files();
    let mut kustomization = String::from(
        "# Generated by `konductor crd --write config/crd`, like the CRD files; do not edit.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n",
    );
    for (name, _) in &files {
        kustomization.push_str(&format!("- {name}\n"));
    }
    files.push(("kustomization.yaml".to_owned(), kustomization));
    files
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
        for (name, yaml) in config_crd_files() {
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

    /// kube-apiserver's budget for one CEL rule's estimated cost, and for a CRD's rules
    /// together (each times how often it can run: the product of the `maxItems` of the
    /// lists around it) — `StaticEstimatedCostLimit` and `StaticEstimatedCRDCostLimit`.
    const RULE_BUDGET: u64 = 10_000_000;
    const CRD_BUDGET: u64 = 100_000_000;

    /// The most bytes a schema node can hold, as kube-apiserver's estimator sees it:
    /// strings need `maxLength` (or an enum), lists `maxItems` — without them the
    /// estimate is unbounded, and a rule that can reach the node is refused.
    fn max_size(node: &serde_json::Value, path: &str) -> Result<u64, String> {
        match node["type"].as_str() {
            Some("string") => {
                if let Some(values) = node["enum"].as_array() {
                    return Ok(values
                        .iter()
                        .filter_map(|v| v.as_str())
                        .map(|v| v.len() as u64)
                        .max()
                        .unwrap_or(0));
                }
                node["maxLength"]
                    .as_u64()
                    .ok_or_else(|| format!("{path}: a string a rule reaches needs maxLength"))
            }
            Some("integer" | "number" | "boolean") => Ok(8),
            Some("array") => {
                let items = node["maxItems"]
                    .as_u64()
                    .ok_or_else(|| format!("{path}: a list a rule reaches needs maxItems"))?;
                Ok(items * max_size(&node["items"], &format!("{path}[]"))?)
            }
            _ => {
                let mut total = 0;
                if let Some(properties) = node["properties"].as_object() {
                    for (name, child) in properties {
                        total += max_size(child, &format!("{path}.{name}"))?;
                    }
                }
                Ok(total)
            }
        }
    }

    /// A rule's estimated cost, for the operations our rules use: comparing `self`
    /// with `oldSelf` or parsing it (`duration(self)`) walks it (0.1 per byte, rounded
    /// up, as cel-go's traversal cost); `has`, `<=`, `||` and literals cost 1 each.
    fn rule_cost(rule: &str, size: u64) -> u64 {
        let walks = rule.matches("== oldSelf").count() + rule.matches("duration(self)").count();
        let steps = rule.matches("has(").count()
            + rule.matches("<=").count()
            + rule.matches(">=").count()
            + rule.matches("||").count()
            + rule.matches("duration('").count();
        walks as u64 * size.div_ceil(10) + steps as u64 + 1
    }

    /// Every rule in `node` and below: (path, rule, estimated cost, cardinality).
    fn rules_in(
        node: &serde_json::Value,
        path: &str,
        cardinality: u64,
        found: &mut Vec<(String, String, u64, u64)>,
    ) -> Result<(), String> {
        for rule in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let text = rule["rule"].as_str().unwrap_or_default().to_owned();
            let size = max_size(node, path)?;
            found.push((
                path.to_owned(),
                text.clone(),
                rule_cost(&text, size),
                cardinality,
            ));
        }
        if let Some(properties) = node["properties"].as_object() {
            for (name, child) in properties {
                rules_in(child, &format!("{path}.{name}"), cardinality, found)?;
            }
        }
        if node["type"] == "array" && node["items"].is_object() {
            let items = &node["items"];
            if items.to_string().contains("x-kubernetes-validations") {
                let times = node["maxItems"]
                    .as_u64()
                    .ok_or_else(|| format!("{path}: a list with rules inside needs maxItems"))?;
                rules_in(items, &format!("{path}[]"), cardinality * times, found)?;
            }
        }
        Ok(())
    }

    #[test]
    fn every_cel_rule_fits_kube_apiservers_cost_budget() {
        for crd in crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let schema = serde_json::to_value(
                crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .unwrap(),
            )
            .unwrap();
            let mut found = Vec::new();
            rules_in(&schema, "", 1, &mut found).unwrap_or_else(|why| panic!("{name}: {why}"));
            assert!(!found.is_empty(), "{name} has rules");
            let mut total = 0;
            for (path, rule, cost, cardinality) in &found {
                assert!(*cost <= RULE_BUDGET, "{name}{path}: {rule} costs {cost}");
                total += cost * cardinality;
            }
            assert!(total <= CRD_BUDGET, "{name}: {total}");
        }
    }

    #[test]
    fn an_unbounded_string_under_a_rule_is_caught() {
        let node = serde_json::json!({"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]});
        let mut found = Vec::new();
        assert!(
            rules_in(&node, ".holder", 1, &mut found)
                .unwrap_err()
                .contains("maxLength")
        );
        assert_eq!(rule_cost("self == oldSelf", 253), 27);
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
