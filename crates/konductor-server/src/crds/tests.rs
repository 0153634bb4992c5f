use serde_json::{Value, json};

use super::*;
use crate::registry::{View, served_resources};

/// A small valid CRD: `widgets.example.com`, namespaced, one version with a rule.
fn widget() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"size": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.size >= 0", "message": "no negative sizes"}],
                    }},
                }},
            }],
        },
    })
}

fn refusal(crd: &mut Value) -> String {
    let errors = admit(crd, None, None).unwrap_err();
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_accepted_crd_is_established_with_its_names_defaulted() {
    let mut crd = widget();
    admit(&mut crd, None, None).unwrap();
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Established")
        .unwrap();
    assert_eq!(established["status"], "True");
}

#[test]
fn the_name_must_be_plural_dot_group() {
    let mut crd = widget();
    crd["metadata"]["name"] = "gadgets.example.com".into();
    let message = refusal(&mut crd);
    assert!(message.contains("metadata.name"), "{message}");
    assert!(message.contains("spec.names.plural"), "{message}");
}

#[test]
fn groups_served_by_the_server_itself_are_refused() {
    for group in ["konductor.io", "batch", "apiextensions.k8s.io"] {
        let mut crd = widget();
        crd["spec"]["group"] = group.into();
        crd["metadata"]["name"] = format!("widgets.{group}").into();
        let message = refusal(&mut crd);
        assert!(message.contains("spec.group"), "{group}: {message}");
    }
}

#[test]
fn a_built_in_crd_is_accepted_unchanged_and_a_changed_one_names_the_difference() {
    let built_in = crate::registry::built_in_crds()[0].clone();
    let mut same = built_in.clone();
    admit(&mut same, None, Some(&built_in)).unwrap();
    let mut changed = built_in.clone();
    changed["spec"]["names"]["shortNames"] = json!(["x"]);
    let errors = admit(&mut changed, None, Some(&built_in)).unwrap_err();
    assert_eq!(errors[0].field, "spec.names.shortNames[0]", "{errors:?}");
    assert!(errors[0].message.contains("built into this server"));
}

#[test]
fn an_admitted_built_in_crd_defines_the_same_as_the_built_in_one() {
    let built_in = crate::registry::built_in_crds()[0].clone();
    let mut stored = built_in.clone();
    admit(&mut stored, None, Some(&built_in)).unwrap();
    assert!(defines_the_same(&stored, &built_in));
    stored["spec"]["names"]["shortNames"] = json!(["x"]);
    assert!(!defines_the_same(&stored, &built_in));
}

#[test]
fn conversion_webhooks_and_storage_version_counts_are_refused() {
    let mut webhook = widget();
    webhook["spec"]["conversion"] = json!({"strategy": "Webhook"});
    assert!(refusal(&mut webhook).contains("spec.conversion.strategy"));

    let mut two = widget();
    let mut v2 = two["spec"]["versions"][0].clone();
    v2["name"] = "v2".into();
    two["spec"]["versions"].as_array_mut().unwrap().push(v2);
    assert!(refusal(&mut two).contains("exactly one version marked as storage"));
}

#[test]
fn forbidden_keywords_and_deep_schemas_are_refused_by_path() {
    let mut with_ref = widget();
    with_ref["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["$ref"] =
        "#/x".into();
    let message = refusal(&mut with_ref);
    assert!(
        message.contains("openAPIV3Schema.properties[spec].$ref"),
        "{message}"
    );

    let mut deep = json!({"type": "string"});
    for _ in 0..=MAX_SCHEMA_DEPTH {
        deep = json!({"type": "object", "properties": {"a": deep}});
    }
    let mut bomb = widget();
    bomb["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = deep;
    assert!(refusal(&mut bomb).contains("nests deeper"));
}

#[test]
fn cel_rules_that_do_not_parse_or_call_unknown_functions_are_refused() {
    let rules = |rule: &str| {
        let mut crd = widget();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
            [0]["rule"] = rule.into();
        crd
    };
    let message = refusal(&mut rules("self.size >="));
    assert!(
        message.contains("x-kubernetes-validations[0].rule"),
        "{message}"
    );
    let message = refusal(&mut rules("self.size.frobnicate() > 0"));
    assert!(message.contains("\"frobnicate\""), "{message}");
    for supported in [
        "self.size >= 0 && has(self.size)",
        "[1, 2].all(x, x > 0) && size([1]) == 1",
        "'abc'.startsWith('a') && 'abc'.matches('^a')",
        "optional.of(1).hasValue()",
        "self.size <= int(quantity('1k').asApproximateFloat())",
    ] {
        admit(&mut rules(supported), None, None).unwrap_or_else(|e| panic!("{supported}: {e:?}"));
    }
}

#[test]
fn group_scope_and_plural_are_immutable() {
    let mut stored = widget();
    admit(&mut stored, None, None).unwrap();
    let mut changed = stored.clone();
    changed["spec"]["scope"] = "Cluster".into();
    let errors = admit(&mut changed, Some(&stored), None).unwrap_err();
    assert_eq!(errors[0].field, "spec.scope");
}

#[test]
fn every_served_version_is_a_resource_over_one_bucket() {
    let mut crd = widget();
    let mut beta = crd["spec"]["versions"][0].clone();
    beta["name"] = "v1beta1".into();
    beta["storage"] = false.into();
    crd["spec"]["versions"].as_array_mut().unwrap().push(beta);
    admit(&mut crd, None, None).unwrap();
    let defs = served_resources(&crd).unwrap();
    assert_eq!(defs.len(), 2);
    assert!(defs.iter().all(|d| d.storage == "example.com/widgets"));
    assert_eq!(defs[0].view, View::Native);
    assert_eq!(
        defs[1].view,
        View::Relabelled {
            stored_api_version: "example.com/v1".into()
        }
    );
    assert_eq!(defs[0].short_names, ["wd"]);
}
