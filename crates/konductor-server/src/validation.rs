//! Validation of custom resources against their CRD's `openAPIV3Schema`, as the real
//! API server does it: defaulting, pruning of unknown fields, the OpenAPI schema
//! (checked with the `jsonschema` crate) and the `x-kubernetes-validations` CEL rules
//! (checked with `kube-cel`). Messages follow the real server's wording, naming the
//! field (`spec.expected: Invalid value: 0: spec.expected in body should be greater
//! than or equal to 1`).

use serde_json::{Map, Value};

use crate::error::FieldError;

/// A compiled CRD schema.
///
/// Compiled per top-level property (`metadata`, `spec`, `status`, …) as well as for
/// the root itself, so an update only prunes, defaults and checks the properties it
/// changed: a status write does not walk the spec's CEL rules again, and the cost of a
/// write follows what it changes. Skipping unchanged properties is sound because they
/// were admitted when stored, and it is what Kubernetes' validation ratcheting allows.
pub struct Schema {
    /// The CRD's `openAPIV3Schema`, as written (served in OpenAPI documents).
    openapi: Value,
    /// The root alone (its type and required properties, not their contents).
    shell: jsonschema::Validator,
    /// CEL rules on the root object itself, if any (then run on every write).
    root_cel: Option<kube_cel::CompiledSchema>,
    /// Each declared top-level property.
    properties: Vec<Property>,
}

/// One top-level property's compiled schema.
struct Property {
    name: String,
    /// Its schema as written (for pruning and defaults).
    openapi: Value,
    /// Its schema as standard JSON Schema (draft 4), compiled.
    json_schema: jsonschema::Validator,
    /// Its `x-kubernetes-validations` CEL rules, compiled once; `None` when it has none.
    cel: Option<kube_cel::CompiledSchema>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

fn compile_json_schema(openapi: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&to_json_schema(openapi))
        .map_err(|e| e.to_string())
}

/// Whether a schema has CEL rules anywhere inside.
fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_cel_rules)
        }
        Value::Array(items) => items.iter().any(has_cel_rules),
        _ => false,
    }
}

/// Whether `name` differs between the object and the stored one (always, for creates).
fn changed(name: &str, object: &Value, old: Option<&Value>) -> bool {
    old.is_none_or(|old| old.get(name) != object.get(name))
}

impl Schema {
    /// Compiles a CRD `openAPIV3Schema`.
    pub fn compile(openapi: Value) -> Result<Self, String> {
        let declared = openapi
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut shell = openapi.clone();
        if let Some(props) = shell.get_mut("properties").and_then(Value::as_object_mut) {
            for schema in props.values_mut() {
                *schema = Value::Object(Map::new());
            }
        }
        let root_rules = openapi.get("x-kubernetes-validations").is_some();
        let properties = declared
            .into_iter()
            .map(|(name, schema)| {
                Ok(Property {
                    json_schema: compile_json_schema(&schema)?,
                    cel: has_cel_rules(&schema).then(|| kube_cel::compile_schema(&schema)),
                    name,
                    openapi: schema,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            shell: compile_json_schema(&shell)?,
            root_cel: root_rules.then(|| kube_cel::compile_schema(&openapi)),
            properties,
            openapi,
        })
    }

    /// The schema as written in the CRD.
    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// The properties an update changed (all of them for a create).
    fn changed_properties<'a>(
        &'a self,
        object: &'a Value,
        old: Option<&'a Value>,
    ) -> impl Iterator<Item = &'a Property> + 'a {
        self.properties
            .iter()
            .filter(move |p| changed(&p.name, object, old))
    }

    /// Writes whole-valued floats in integer fields as integers (`1.0` → `1`), as
    /// kube-apiserver stores them (Go prints a whole float64 without a fraction) — in
    /// the properties that changed from `old`. Typed clients could not read `1.0` as an
    /// integer; values beyond int64 are left for [`Schema::validate`] to refuse.
    pub fn normalize_integers(&self, object: &mut Value, old: Option<&Value>) {
        let names: Vec<String> = self
            .changed_properties(object, old)
            .map(|p| p.name.clone())
            .collect();
        let Some(map) = object.as_object_mut() else {
            return;
        };
        for property in self.properties.iter().filter(|p| names.contains(&p.name)) {
            if let Some(value) = map.get_mut(&property.name) {
                normalize_value(&property.openapi, value);
            }
        }
    }

    /// Fills in the schema's `default`s, as the API server does before storing — in
    /// the properties that changed from `old` (all of them for a create).
    pub fn apply_defaults(&self, object: &mut Value, old: Option<&Value>) {
        let Some(map) = object.as_object() else {
            return;
        };
        let mut defaulted = Vec::new();
        for property in &self.properties {
            match map.get(&property.name) {
                None => {
                    if let Some(default) = property.openapi.get("default") {
                        let value = kube_cel::apply_defaults(&property.openapi, default);
                        defaulted.push((property.name.clone(), value));
                    }
                }
                Some(value) if changed(&property.name, object, old) => {
                    let value = kube_cel::apply_defaults(&property.openapi, value);
                    defaulted.push((property.name.clone(), value));
                }
                Some(_) => {}
            }
        }
        if let Some(map) = object.as_object_mut() {
            map.extend(defaulted);
        }
    }

    /// Removes fields the schema does not declare and returns their paths
    /// (`spec.foo`), for `fieldValidation=Strict` errors and `Warn` warnings — in the
    /// properties that changed from `old`. `apiVersion`, `kind` and `metadata` are
    /// always kept.
    pub fn prune(&self, object: &mut Value, old: Option<&Value>) -> Vec<String> {
        let mut unknown = Vec::new();
        let Some(map) = object.as_object_mut() else {
            return unknown;
        };
        map.retain(|key, value| {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                return true;
            }
            match self.properties.iter().find(|p| p.name == *key) {
                Some(property) => {
                    if old.is_none_or(|old| old.get(key) != Some(value)) {
                        prune_value(&property.openapi, value, key, &mut unknown);
                    }
                    true
                }
                None => {
                    unknown.push(key.clone());
                    false
                }
            }
        });
        unknown
    }

    /// Checks `object` (already defaulted and pruned) against the schema and its CEL
    /// rules; `old` is the stored object for updates (transition rules use it).
    /// Returns every violation, or nothing when valid.
    ///
    /// On updates, only the properties that changed are checked, and violations at
    /// fields whose value did not change are forgiven, as Kubernetes' validation
    /// ratcheting does: an object stored before a rule existed (or written past
    /// validation) can still get status updates and unrelated edits.
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = self.violations(object, old);
        if let Some(old) = old {
            errors.retain(|e| value_at(object, &e.field) != value_at(old, &e.field));
        }
        errors
    }

    fn violations(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = self
            .shell
            .iter_errors(object)
            .map(|e| schema_error(&e, ""))
            .collect();
        for property in self.changed_properties(object, old) {
            if let Some(value) = object.get(&property.name) {
                errors.extend(
                    property
                        .json_schema
                        .iter_errors(value)
                        .map(|e| schema_error(&e, &property.name)),
                );
                integer_errors(&property.openapi, value, &property.name, &mut errors);
            }
        }
        // CEL rules assume the structure is right; Kubernetes skips them otherwise too.
        if !errors.is_empty() {
            return errors;
        }
        for property in self.changed_properties(object, old) {
            if let (Some(cel), Some(value)) = (&property.cel, object.get(&property.name)) {
                let old_value = old.and_then(|o| o.get(&property.name));
                errors.extend(cel_errors(cel, value, old_value, &property.name, object));
            }
        }
        if let Some(cel) = &self.root_cel {
            errors.extend(cel_errors(cel, object, old, "", object));
        }
        errors
    }
}

/// The CEL rules of `cel` over `value` (at `prefix` in `object`), as field errors.
fn cel_errors(
    cel: &kube_cel::CompiledSchema,
    value: &Value,
    old: Option<&Value>,
    prefix: &str,
    object: &Value,
) -> Vec<FieldError> {
    let Err(failures) = kube_cel::validate_compiled(cel, value, old) else {
        return Vec::new();
    };
    failures
        .into_vec()
        .into_iter()
        .map(|failure| {
            let relative = failure.field_path.trim_start_matches('.');
            let field = match (prefix.is_empty(), relative.is_empty()) {
                (true, _) => relative.to_owned(),
                (false, true) => prefix.to_owned(),
                (false, false) if relative.starts_with('[') => format!("{prefix}{relative}"),
                (false, false) => format!("{prefix}.{relative}"),
            };
            FieldError {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: {}",
                    render(value_at(object, &field).unwrap_or(&Value::Null)),
                    failure.message
                ),
                field,
            }
        })
        .collect()
}

/// Rewrites whole-valued floats within int64 in integer fields (at any depth) as
/// integers.
fn normalize_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Number(number) if schema.get("type").and_then(Value::as_str) == Some("integer") => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && float >= i64::MIN as f64
                && float < i64::MAX as f64
            {
                // Exact: a whole f64 inside i64's range converts without loss.
                #[allow(clippy::cast_possible_truncation)]
                let whole = float as i64;
                *value = Value::from(whole);
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map.iter_mut() {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    normalize_value(child_schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items
                    .iter_mut()
                    .for_each(|item| normalize_value(item_schema, item));
            }
        }
        _ => {}
    }
}

/// Integers the API server could not hold: beyond int64 (JSON allows any size), or
/// beyond int32 where the schema says `format: int32` — stored, they would show as
/// floats and no client could decode them.
fn integer_errors(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Number(number) if schema.get("type").and_then(Value::as_str) == Some("integer") => {
            let format = schema
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or("int64");
            let fits = match format {
                "int32" => number.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                _ => number.as_i64().is_some(),
            };
            // Fractions are the schema's `type: integer` error; whole numbers that do not
            // fit (integers, or floats beyond int64) are this one.
            let whole = number.is_i64()
                || number.is_u64()
                || number.as_f64().is_some_and(|f| f.fract() == 0.0);
            if !fits && whole {
                errors.push(FieldError::invalid(
                    path,
                    format!("Invalid value: {number}: {path} in body must be of type {format}"),
                ));
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    integer_errors(child_schema, child, &format!("{path}.{key}"), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    integer_errors(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// Recursively prunes `value` under `schema`, recording unknown field paths.
fn prune_value(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                map.retain(|key, child| match props.get(key) {
                    Some(child_schema) => {
                        prune_value(child_schema, child, &format!("{path}.{key}"), unknown);
                        true
                    }
                    None => {
                        unknown.push(format!("{path}.{key}"));
                        false
                    }
                });
            } else if let Some(additional) = schema.get("additionalProperties")
                && additional.is_object()
            {
                for (key, child) in map.iter_mut() {
                    prune_value(additional, child, &format!("{path}.{key}"), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Rewrites an OpenAPI v3 schema into standard JSON Schema: `nullable: true` becomes a
/// `null` alternative in `type`, and Kubernetes extensions are dropped.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if key.starts_with("x-kubernetes-") || key == "nullable" {
                    continue;
                }
                let converted = match key.as_str() {
                    "properties" | "definitions" => Value::Object(
                        value
                            .as_object()
                            .map(|props| {
                                props
                                    .iter()
                                    .map(|(k, v)| (k.clone(), to_json_schema(v)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    "items" | "additionalProperties" | "not" => to_json_schema(value),
                    "allOf" | "anyOf" | "oneOf" => Value::Array(
                        value
                            .as_array()
                            .map(|a| a.iter().map(to_json_schema).collect())
                            .unwrap_or_default(),
                    ),
                    _ => value.clone(),
                };
                out.insert(key.clone(), converted);
            }
            if map.get("nullable").and_then(Value::as_bool) == Some(true)
                && let Some(Value::String(t)) = out.get("type").cloned()
            {
                out.insert("type".into(), Value::Array(vec![t.into(), "null".into()]));
                if let Some(Value::Array(options)) = out.get_mut("enum") {
                    options.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `/spec/items/0/name` → `spec.items[0].name`.
fn pointer_to_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

/// The value at a field path as errors name it (`spec.quorum`, `spec.items[2].name`).
fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        let (key, indices) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            current = current.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// Renders a value as Kubernetes messages do: strings quoted, numbers bare.
fn render(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "object".into(),
        Value::Array(_) => "array".into(),
        other => other.to_string(),
    }
}

/// Translates one JSON Schema violation into a Kubernetes field error; `prefix` is the
/// top-level property the validated value sits under ("" for the root).
fn schema_error(error: &jsonschema::ValidationError<'_>, prefix: &str) -> FieldError {
    use jsonschema::error::ValidationErrorKind as Kind;
    let path = match (prefix, pointer_to_path(error.instance_path().as_str())) {
        ("", relative) => relative,
        (prefix, relative) if relative.is_empty() => prefix.to_owned(),
        (prefix, relative) if relative.starts_with('[') => format!("{prefix}{relative}"),
        (prefix, relative) => format!("{prefix}.{relative}"),
    };
    let instance = error.instance();
    let value = render(instance);
    let invalid =
        |detail: String| FieldError::invalid(&path, format!("Invalid value: {value}: {detail}"));
    match error.kind() {
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let field = if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            FieldError::required(field)
        }
        Kind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .find(|t| t != "null")
                    .unwrap_or_default(),
            };
            FieldError {
                reason: "FieldValueTypeInvalid",
                field: path.clone(),
                message: format!(
                    "Invalid value: {value}: {path} in body must be of type {expected}: {value}"
                ),
            }
        }
        Kind::Minimum { limit } => invalid(bound(&path, "greater than or equal to", limit)),
        Kind::Maximum { limit } => invalid(bound(&path, "less than or equal to", limit)),
        Kind::ExclusiveMinimum { limit } => invalid(bound(&path, "greater than", limit)),
        Kind::ExclusiveMaximum { limit } => invalid(bound(&path, "less than", limit)),
        Kind::MinLength { limit } => invalid(format!(
            "{path} in body should be at least {limit} chars long"
        )),
        Kind::MaxLength { limit } => FieldError {
            reason: "FieldValueTooLong",
            field: path.clone(),
            message: format!("Too long: may not be more than {limit} bytes"),
        },
        Kind::Pattern { pattern } => invalid(format!("{path} in body should match '{pattern}'")),
        Kind::Enum { options } => FieldError {
            reason: "FieldValueNotSupported",
            field: path.clone(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                options
                    .as_array()
                    .map(|o| o
                        .iter()
                        .filter(|v| !v.is_null())
                        .map(render)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
        },
        Kind::MinItems { limit } => {
            invalid(format!("{path} in body should have at least {limit} items"))
        }
        Kind::MaxItems { limit } => FieldError {
            reason: "FieldValueTooMany",
            field: path.clone(),
            message: format!("Too many: must have at most {limit} items"),
        },
        _ => invalid(error.to_string()),
    }
}

/// The message for a numeric bound: `spec.expected in body should be greater than or
/// equal to 1`.
fn bound(path: &str, relation: &str, limit: &Value) -> String {
    format!("{path} in body should be {relation} {}", number(limit))
}

/// Renders a schema limit without a needless `.0` (`1`, not `1.0`).
fn number(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn barrier_schema() -> std::sync::Arc<Schema> {
        Registry::standard()
            .find("konductor.io", "v1", "barriers")
            .unwrap()
            .schema
            .clone()
            .unwrap()
    }

    fn arrival_schema() -> std::sync::Arc<Schema> {
        Registry::standard()
            .find("konductor.io", "v1", "arrivals")
            .unwrap()
            .schema
            .clone()
            .unwrap()
    }

    fn barrier(spec: Value) -> Value {
        json!({"apiVersion": "konductor.io/v1", "kind": "Barrier", "metadata": {"name": "b"}, "spec": spec})
    }

    fn errors(spec: Value) -> Vec<FieldError> {
        barrier_schema().validate(&barrier(spec), None)
    }

    #[test]
    fn a_valid_barrier_passes() {
        assert!(errors(json!({"expected": 5, "quorum": 4, "timeout": "30m"})).is_empty());
    }

    #[test]
    fn expected_below_one_names_the_field() {
        let e = errors(json!({"expected": 0}));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "spec.expected");
        assert_eq!(
            e[0].message,
            "Invalid value: 0: spec.expected in body should be greater than or equal to 1"
        );
    }

    #[test]
    fn quorum_above_expected_is_refused_by_the_cel_rule() {
        let e = errors(json!({"expected": 3, "quorum": 4}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "spec.quorum");
        assert!(
            e[0].message
                .contains("quorum must not be greater than expected"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn a_bad_timeout_breaks_the_pattern() {
        let e = errors(json!({"expected": 3, "timeout": "soon"}));
        assert_eq!(e[0].field, "spec.timeout");
        assert!(
            e[0].message
                .starts_with("Invalid value: \"soon\": spec.timeout in body should match")
        );
    }

    #[test]
    fn wrong_types_and_missing_fields_are_reported() {
        let e = errors(json!({"expected": "five"}));
        assert_eq!(e[0].reason, "FieldValueTypeInvalid");
        assert!(
            e[0].message.contains("must be of type integer"),
            "{}",
            e[0].message
        );
        let e = errors(json!({}));
        assert_eq!(e[0], FieldError::required("spec.expected"));
    }

    #[test]
    fn long_barrier_names_are_refused() {
        let mut object = barrier(json!({"expected": 1}));
        object["metadata"]["name"] = json!("x".repeat(64));
        let e = barrier_schema().validate(&object, None);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "metadata.name");
    }

    #[test]
    fn arrival_holders_are_bounded_and_immutable() {
        let schema = arrival_schema();
        let arrival = |holder: &str| json!({"apiVersion": "konductor.io/v1", "kind": "Arrival", "metadata": {"name": "a"}, "spec": {"barrier": "b", "holder": holder}});
        assert!(schema.validate(&arrival("h"), None).is_empty());
        assert_eq!(schema.validate(&arrival(""), None)[0].field, "spec.holder");
        let long = schema.validate(&arrival(&"h".repeat(254)), None);
        assert_eq!(long[0].reason, "FieldValueTooLong");
        let changed = schema.validate(&arrival("other"), Some(&arrival("h")));
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(changed[0].message.contains("holder is immutable"));
    }

    #[test]
    fn updates_forgive_violations_in_fields_they_do_not_change() {
        let stored = barrier(json!({"expected": 3, "quorum": 5}));
        let mut with_status = stored.clone();
        with_status["status"] = json!({"phase": "Failed"});
        assert!(
            barrier_schema()
                .validate(&with_status, Some(&stored))
                .is_empty()
        );
        let mut changed = stored.clone();
        changed["spec"]["quorum"] = json!(6);
        assert_eq!(
            barrier_schema().validate(&changed, Some(&stored))[0].field,
            "spec.quorum"
        );
        assert_eq!(barrier_schema().validate(&stored, None).len(), 1);
    }

    #[test]
    fn errors_inside_a_property_name_the_whole_path() {
        let stored = barrier(json!({"expected": 3}));
        let mut updated = stored.clone();
        updated["status"] = json!({"arrived": "three", "arrivals": ["a", 7]});
        let mut fields: Vec<String> = barrier_schema()
            .validate(&updated, Some(&stored))
            .into_iter()
            .map(|e| e.field)
            .collect();
        fields.sort();
        assert_eq!(fields, ["status.arrivals[1]", "status.arrived"]);
    }

    #[test]
    fn updates_check_only_what_they_change() {
        let stored = barrier(json!({"expected": 3, "quorum": 5, "colour": "red"}));
        let mut status_only = stored.clone();
        status_only["status"] = json!({"phase": "Waiting", "colour": "blue"});
        let schema = barrier_schema();
        let unknown = schema.prune(&mut status_only, Some(&stored));
        assert_eq!(
            unknown,
            ["status.colour"],
            "the unchanged spec is not pruned again"
        );
        assert_eq!(status_only["spec"]["colour"], "red");
        assert!(schema.validate(&status_only, Some(&stored)).is_empty());
        let mut spec_changed = stored.clone();
        spec_changed["spec"]["expected"] = json!(4);
        let errors = schema.validate(&spec_changed, Some(&stored));
        assert!(
            errors.is_empty(),
            "quorum itself did not change: {errors:?}"
        );
        spec_changed["spec"]["quorum"] = json!(6);
        assert_eq!(
            schema.validate(&spec_changed, Some(&stored))[0].field,
            "spec.quorum"
        );
    }

    #[test]
    fn integers_beyond_what_the_server_holds_are_refused() {
        let huge: Value = serde_json::from_str("9223372036854775808").unwrap();
        let e = errors(json!({"expected": huge}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "spec.expected");
        assert!(
            e[0].message.contains("must be of type int32"),
            "{}",
            e[0].message
        );
        let e = errors(json!({"expected": 4_294_967_296_i64}));
        assert_eq!(e[0].field, "spec.expected");
        assert!(errors(json!({"expected": 2_147_483_647})).is_empty());
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut object = barrier(json!({"expected": 1, "colour": "red"}));
        object["extra"] = json!(1);
        let unknown = barrier_schema().prune(&mut object, None);
        assert_eq!(unknown, ["extra", "spec.colour"]);
        assert_eq!(object["spec"], json!({"expected": 1}));
    }

    #[test]
    fn defaults_fill_in_the_outcome() {
        let mut arrival = json!({"spec": {"barrier": "b", "holder": "h"}});
        arrival_schema().apply_defaults(&mut arrival, None);
        assert_eq!(arrival["spec"]["outcome"], "Succeeded");
    }
}
