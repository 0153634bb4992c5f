//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): what the server accepts as a
//! CRD and the status it gives one (the resources a CRD makes it serve are the
//! registry's: [`crate::registry::served_resources`]).
//!
//! A CRD is an object like any other (stored, watched, listed); what is special happens
//! around its writes, in [`crate::service`]: [`admit`] checks it and sets its status
//! before it is stored, and after every committed write the registry is rebuilt from
//! the stored CRDs ([`crate::registry::served_resources`] turns each into
//! [`crate::registry::ResourceDef`]s), so a kind is
//! served the moment its CRD is created and no longer once it is deleted.
//!
//! Refused, each with a 422 naming the field: a name other than `<plural>.<group>`,
//! a group this server serves itself (Konductor's own CRDs are accepted when identical
//! to the built-in ones), conversion webhooks, not exactly one storage version, schema
//! keywords Kubernetes forbids (`$ref`, `patternProperties`, …), schemas nested deeper
//! than [`MAX_SCHEMA_DEPTH`], and CEL rules that do not parse or call a function this
//! server cannot evaluate.

use serde_json::{Value, json};

use crate::error::FieldError;
use crate::registry::storage_version;
use crate::validation::Schema;

pub use crate::registry::CRDS;

/// How deeply a CRD's schema may nest (each `properties`, `items` or
/// `additionalProperties` level counts): deeper schemas are refused, not walked.
pub const MAX_SCHEMA_DEPTH: usize = 48;

/// Schema keywords a structural schema may not use (as kube-apiserver refuses them).
const FORBIDDEN_KEYWORDS: &[&str] = &[
    "$ref",
    "$schema",
    "id",
    "definitions",
    "dependencies",
    "additionalItems",
    "patternProperties",
];

/// Printer column types kube-apiserver accepts.
const COLUMN_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];

/// Groups this server serves from built-in types: no CRD may claim them.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
];

/// Checks a CRD about to be stored (`old`: the stored one, for updates) and sets its
/// status (accepted names, stored versions, `NamesAccepted` and `Established`).
/// `built_in`: the server's own CRD of the same name, if there is one — then only that
/// exact definition is accepted.
pub fn admit(
    crd: &mut Value,
    old: Option<&Value>,
    built_in: Option<&Value>,
) -> Result<(), Vec<FieldError>> {
    default_spec(crd);
    let mut errors = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(built_in) = built_in {
        let mut expected = built_in["spec"].clone();
        default_spec_value(&mut expected);
        if let Some((path, detail)) = first_difference(&expected, spec, "spec") {
            errors.push(FieldError::invalid(
                path,
                format!(
                    "Forbidden: {name} is built into this server; only its built-in definition is accepted ({detail})"
                ),
            ));
            return Err(errors);
        }
        // The built-in definition is valid as it is: nothing more to check.
        crd["status"] = accepted_status(crd, old);
        return Ok(());
    } else if group == konductor_api::GROUP || BUILT_IN_GROUPS.contains(&group) {
        errors.push(FieldError::invalid(
            "spec.group",
            format!(
                "Invalid value: {group:?}: the group is served by this server's built-in types"
            ),
        ));
    }
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    check_spec(spec, &mut errors);
    if let Some(old) = old {
        for (field, path) in [
            ("spec.group", "/spec/group"),
            ("spec.scope", "/spec/scope"),
            ("spec.names.plural", "/spec/names/plural"),
            ("spec.names.kind", "/spec/names/kind"),
        ] {
            if old.pointer(path) != crd.pointer(path) {
                errors.push(FieldError::invalid(
                    field,
                    format!(
                        "Invalid value: {}: field is immutable",
                        crd.pointer(path).unwrap_or(&Value::Null)
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    crd["status"] = accepted_status(crd, old);
    Ok(())
}

/// Whether a stored CRD holds exactly the definition `built_in` makes (defaults
/// included).
pub fn defines_the_same(stored: &Value, built_in: &Value) -> bool {
    let mut expected = built_in["spec"].clone();
    default_spec_value(&mut expected);
    first_difference(&expected, &stored["spec"], "spec").is_none()
}

/// Fills in what kube-apiserver defaults in a CRD's spec: the singular name and list
/// kind, and `conversion.strategy: None`.
fn default_spec(crd: &mut Value) {
    if crd.get("spec").is_some_and(Value::is_object) {
        default_spec_value(&mut crd["spec"]);
    }
}

fn default_spec_value(spec: &mut Value) {
    let Some(kind) = spec["names"]["kind"].as_str().map(str::to_owned) else {
        return;
    };
    let names = &mut spec["names"];
    if names.get("singular").is_none_or(Value::is_null) {
        names["singular"] = kind.to_lowercase().into();
    }
    if names.get("listKind").is_none_or(Value::is_null) {
        names["listKind"] = format!("{kind}List").into();
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec["conversion"] = json!({ "strategy": "None" });
    }
}

/// The first place two JSON values differ, as a field path and what differs there.
fn first_difference(expected: &Value, actual: &Value, path: &str) -> Option<(String, String)> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let child = format!("{path}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => first_difference(e, a, &child),
                    (Some(_), None) => Some((child, "missing here".to_owned())),
                    (None, Some(_)) => Some((child, "not in the built-in definition".into())),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (e, a))| first_difference(e, a, &format!("{path}[{i}]"))),
        // `1.0` and `1` are one number (a YAML file writes what a generator wrote as a
        // float without its fraction).
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        (e, a) if e == a => None,
        (e, a) => Some((
            path.to_owned(),
            format!("built-in: {}, here: {}", short(e), short(a)),
        )),
    }
}

/// A value cut to a length that fits in a message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

/// The checks on a CRD's spec that do not depend on what is stored.
fn check_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    let group = spec["group"].as_str().unwrap_or_default();
    if group.is_empty() {
        errors.push(FieldError::required("spec.group"));
    } else if !crate::objects::is_dns1123_subdomain(group) || !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            format!("Invalid value: {group:?}: should be a domain with at least one dot"),
        ));
    }
    let names = &spec["names"];
    for field in ["plural", "singular"] {
        match names[field].as_str() {
            None | Some("") if field == "plural" => {
                errors.push(FieldError::required("spec.names.plural"));
            }
            Some(value) if !value.is_empty() && !crate::objects::is_dns1123_label(value) => {
                errors.push(FieldError::invalid(
                    format!("spec.names.{field}"),
                    format!("Invalid value: {value:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
                ));
            }
            _ => {}
        }
    }
    for field in ["kind", "listKind"] {
        match names[field].as_str() {
            None | Some("") => errors.push(FieldError::required(format!("spec.names.{field}"))),
            Some(kind) if !is_kind_name(kind) => errors.push(FieldError::invalid(
                format!("spec.names.{field}"),
                format!("Invalid value: {kind:?}: may have mixed case, but should otherwise match: ^[a-z]([-a-z0-9]*[a-z0-9])?$"),
            )),
            Some(_) => {}
        }
    }
    for field in ["shortNames", "categories"] {
        for (i, value) in names[field].as_array().into_iter().flatten().enumerate() {
            if !value.as_str().is_some_and(crate::objects::is_dns1123_label) {
                errors.push(FieldError::invalid(
                    format!("spec.names.{field}[{i}]"),
                    format!("Invalid value: {value}: must be a lowercase RFC 1123 label"),
                ));
            }
        }
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        Some(other) => errors.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!(
                "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
        }),
        None => errors.push(FieldError::required("spec.scope")),
    }
    match spec["conversion"]["strategy"].as_str() {
        None | Some("None") => {}
        Some(strategy) => errors.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.conversion.strategy".into(),
            message: format!("Unsupported value: {strategy:?}: konductor server does not call conversion webhooks; supported values: \"None\""),
        }),
    }
    check_versions(spec, errors);
}

/// Whether a kind name is acceptable: a letter, then letters, digits or dashes.
fn is_kind_name(kind: &str) -> bool {
    let lower = kind.to_ascii_lowercase();
    lower.len() <= 63
        && lower.starts_with(|c: char| c.is_ascii_lowercase())
        && !lower.ends_with('-')
        && lower
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_versions(spec: &Value, errors: &mut Vec<FieldError>) {
    let Some(versions) = spec["versions"].as_array().filter(|v| !v.is_empty()) else {
        errors.push(FieldError::required("spec.versions"));
        return;
    };
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            format!("Invalid value: {storage} storage versions: must have exactly one version marked as storage version"),
        ));
    }
    let mut seen = Vec::new();
    let mut rules = cel_support::Checker::new();
    for (i, version) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = version["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errors.push(FieldError::required(format!("{at}.name")));
        } else if !crate::objects::is_dns1123_label(name) {
            errors.push(FieldError::invalid(
                format!("{at}.name"),
                format!("Invalid value: {name:?}: must be a lowercase RFC 1123 label"),
            ));
        } else if seen.contains(&name) {
            errors.push(FieldError {
                reason: "FieldValueDuplicate",
                field: format!("{at}.name"),
                message: format!("Duplicate value: {name:?}"),
            });
        }
        seen.push(name);
        for flag in ["served", "storage"] {
            if !version[flag].is_boolean() {
                errors.push(FieldError::required(format!("{at}.{flag}")));
            }
        }
        let schema_at = format!("{at}.schema.openAPIV3Schema");
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) if schema.is_object() => {
                if schema["type"].as_str() != Some("object") {
                    errors.push(FieldError::invalid(
                        format!("{schema_at}.type"),
                        "Invalid value: must be object at the root",
                    ));
                }
                check_schema(schema, &schema_at, 0, &mut rules, errors);
                if errors.is_empty()
                    && let Err(message) = Schema::compile(schema.clone())
                {
                    errors.push(FieldError::invalid(
                        schema_at.clone(),
                        format!("Invalid value: the schema does not compile: {message}"),
                    ));
                }
            }
            _ => errors.push(FieldError::required(schema_at)),
        }
        check_subresources(version, &at, errors);
        for (c, column) in version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let column_at = format!("{at}.additionalPrinterColumns[{c}]");
            for field in ["name", "jsonPath"] {
                if column[field].as_str().is_none_or(str::is_empty) {
                    errors.push(FieldError::required(format!("{column_at}.{field}")));
                }
            }
            if let Some(path) = column["jsonPath"].as_str().filter(|p| !p.is_empty()) {
                let why = if path.starts_with('.') {
                    konductor_api::jsonpath::JsonPath::parse(path).err()
                } else {
                    Some("must be a simple json path starting with .".to_owned())
                };
                if let Some(why) = why {
                    errors.push(FieldError {
                        reason: "FieldValueInvalid",
                        field: format!("{column_at}.jsonPath"),
                        message: format!("Invalid value: {path:?}: {why}"),
                    });
                }
            }
            let type_ = column["type"].as_str().unwrap_or_default();
            if !COLUMN_TYPES.contains(&type_) {
                errors.push(FieldError {
                    reason: "FieldValueNotSupported",
                    field: format!("{column_at}.type"),
                    message: format!("Unsupported value: {type_:?}: supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\""),
                });
            }
        }
    }
}

fn check_subresources(version: &Value, at: &str, errors: &mut Vec<FieldError>) {
    let scale = &version["subresources"]["scale"];
    if scale.is_null() {
        return;
    }
    for field in ["specReplicasPath", "statusReplicasPath"] {
        match scale[field].as_str() {
            None | Some("") => errors.push(FieldError::required(format!(
                "{at}.subresources.scale.{field}"
            ))),
            Some(path) if !path.starts_with('.') => errors.push(FieldError::invalid(
                format!("{at}.subresources.scale.{field}"),
                format!("Invalid value: {path:?}: should be a json path starting with ."),
            )),
            Some(_) => {}
        }
    }
}

/// Walks a schema: forbidden keywords, depth, and every CEL rule.
fn check_schema(
    schema: &Value,
    at: &str,
    depth: usize,
    rules: &mut cel_support::Checker,
    errors: &mut Vec<FieldError>,
) {
    if depth > MAX_SCHEMA_DEPTH {
        errors.push(FieldError::invalid(
            at,
            format!("Invalid value: the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"),
        ));
        return;
    }
    let Some(map) = schema.as_object() else {
        if !schema.is_boolean() {
            errors.push(FieldError::invalid(
                at,
                "Invalid value: must be a schema object",
            ));
        }
        return;
    };
    for keyword in FORBIDDEN_KEYWORDS {
        if map.contains_key(*keyword) {
            errors.push(FieldError {
                reason: "FieldValueForbidden",
                field: format!("{at}.{keyword}"),
                message: format!("Forbidden: {keyword} is not supported in structural schemas"),
            });
        }
    }
    for (r, rule) in map
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let rule_at = format!("{at}.x-kubernetes-validations[{r}]");
        match rule["rule"].as_str() {
            Some(text) => {
                if let Err(message) = rules.check(text) {
                    errors.push(FieldError::invalid(
                        format!("{rule_at}.rule"),
                        format!("Invalid value: {text:?}: {message}"),
                    ));
                }
            }
            None => errors.push(FieldError::required(format!("{rule_at}.rule"))),
        }
        if let Some(text) = rule["messageExpression"].as_str()
            && let Err(message) = rules.check(text)
        {
            errors.push(FieldError::invalid(
                format!("{rule_at}.messageExpression"),
                format!("Invalid value: {text:?}: {message}"),
            ));
        }
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_schema(
                child,
                &format!("{at}.properties[{name}]"),
                depth + 1,
                rules,
                errors,
            );
        }
    }
    for keyword in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get(keyword).filter(|c| c.is_object()) {
            check_schema(child, &format!("{at}.{keyword}"), depth + 1, rules, errors);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in map
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_schema(
                child,
                &format!("{at}.{keyword}[{i}]"),
                depth + 1,
                rules,
                errors,
            );
        }
    }
}

/// Which CEL this server can evaluate: a rule is parsed, and every function it calls is
/// looked up in the same function set object validation uses.
mod cel_support {
    use kube_cel::KubeCelExt;
    use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
    use kube_cel::cel::{Context, ExecutionError, Program};

    /// Checks the rules of one CRD: the function set is built once, and each function
    /// name looked up once.
    pub struct Checker {
        context: Context<'static>,
        known: std::collections::HashMap<String, bool>,
    }

    impl Checker {
        /// A checker with the function set object validation uses.
        pub fn new() -> Self {
            Self {
                context: Context::default().with_all(),
                known: std::collections::HashMap::new(),
            }
        }

        /// `Ok` when `rule` parses and every function it calls can be evaluated here.
        pub fn check(&mut self, rule: &str) -> Result<(), String> {
            let program = Program::compile(rule).map_err(|e| format!("compilation failed: {e}"))?;
            let mut calls = Vec::new();
            collect_calls(&program.expression().expr, &mut calls);
            for call in calls {
                let context = &self.context;
                let known = *self
                    .known
                    .entry(call.clone())
                    .or_insert_with(|| known(context, &call));
                if !known {
                    let function = call.rsplit('.').next().unwrap_or(&call);
                    return Err(format!(
                        "compilation failed: function {function:?} is not supported by konductor server's CEL"
                    ));
                }
            }
            Ok(())
        }
    }

    /// Whether calling `call` (a function, or `namespace.function`) reaches a function:
    /// any error but an undeclared reference to it means the function exists.
    fn known(context: &Context, call: &str) -> bool {
        let Ok(probe) = Program::compile(&format!("{call}()")) else {
            return false;
        };
        let function = call.rsplit('.').next().unwrap_or(call);
        !matches!(
            probe.execute(context),
            Err(ExecutionError::UndeclaredReference(name)) if name.as_str() == function
        )
    }

    /// The named functions `expr` calls (operators are built into the evaluator), with
    /// their namespace when called as `namespace.function(…)`.
    fn collect_calls(expr: &Expr, calls: &mut Vec<String>) {
        let mut visit = |e: &IdedExpr| collect_calls(&e.expr, calls);
        match expr {
            Expr::Call(call) => {
                let named = call
                    .func_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !call.func_name.starts_with('_');
                if let Some(target) = &call.target {
                    visit(target);
                }
                for arg in &call.args {
                    visit(arg);
                }
                if named {
                    let name = match call.target.as_deref().map(|t| &t.expr) {
                        Some(Expr::Ident(namespace)) if namespace == "optional" => {
                            format!("{namespace}.{}", call.func_name)
                        }
                        _ => call.func_name.clone(),
                    };
                    calls.push(name);
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    visit(part);
                }
            }
            Expr::List(list) => list.elements.iter().for_each(visit),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        visit(&e.key);
                        visit(&e.value);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        visit(&f.value);
                    }
                }
            }
            Expr::Select(select) => visit(&select.operand),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
}

/// The status kube-apiserver's CRD controllers give an accepted CRD.
fn accepted_status(crd: &Value, old: Option<&Value>) -> Value {
    let spec = &crd["spec"];
    let storage = storage_version(spec).unwrap_or_default().to_owned();
    let mut stored: Vec<Value> = old
        .and_then(|o| o["status"]["storedVersions"].as_array())
        .cloned()
        .unwrap_or_default();
    if !stored.iter().any(|v| v.as_str() == Some(&storage)) {
        stored.push(storage.into());
    }
    let since = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|c| c.first())
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map_or_else(
            || crate::objects::timestamp(jiff::Timestamp::now()),
            str::to_owned,
        );
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": "True",
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    json!({
        "acceptedNames": spec["names"],
        "storedVersions": stored,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    })
}

#[cfg(test)]
mod tests;
