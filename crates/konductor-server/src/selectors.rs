//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field
//! selectors (`metadata.name=x`, `involvedObject.uid!=y`) as list and watch take them.

use serde_json::Value;

use crate::error::{ApiError, Result};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRequirement>);

/// Splits at commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn bad_selector(text: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement {text:?}: {why}"))
}

fn parse_set(key: &str, rest: &str, whole: &str) -> Result<(String, Vec<String>)> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad_selector(whole, "expected a parenthesised list of values"))?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    Ok((key.to_owned(), values))
}

impl LabelSelector {
    /// Parses a selector string; empty selects everything.
    pub fn parse(text: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::NotExists(key.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("==") {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once('=') {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                let (key, values) = parse_set(key.trim(), rest, part)?;
                LabelRequirement::NotIn(key, values)
            } else if let Some((key, rest)) = part.split_once(" in ") {
                let (key, values) = parse_set(key.trim(), rest, part)?;
                LabelRequirement::In(key, values)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                LabelRequirement::Exists(part.to_owned())
            } else {
                return Err(bad_selector(part, "unknown operator"));
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
        })
    }
}

/// A parsed field selector: `path=value` / `path==value` / `path!=value` terms over
/// dotted paths into the object (`metadata.name`, `involvedObject.kind`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector string; empty selects everything.
    pub fn parse(text: &str) -> Result<Self> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = part.split_once('=') {
                (p, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid field selector {part:?}: expected path=value or path!=value"
                )));
            };
            let path = path.trim();
            // Kubernetes offers no field selectors into spec or status of these
            // resources, and watches rely on that (they keep only the rest of an
            // object's previous state).
            if path.starts_with("spec.") || path.starts_with("status.") {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {path}"
                )));
            }
            terms.push((path.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// The one object name this selector allows (`metadata.name=x`), if it has such a
    /// term: a watch with it needs only that object's events.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(path, equal, _)| *equal && path == "metadata.name")
            .map(|(_, _, value)| value.as_str())
    }

    /// Whether the object satisfies every term. A missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let field = path
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (field == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns", "labels": labels}, "involvedObject": {"kind": "Barrier"}})
    }

    #[test]
    fn a_name_term_singles_out_one_object() {
        assert_eq!(
            FieldSelector::parse("metadata.name=b1").unwrap().name(),
            Some("b1")
        );
        assert_eq!(
            FieldSelector::parse("metadata.name!=b1").unwrap().name(),
            None
        );
        assert_eq!(
            FieldSelector::parse("involvedObject.name=b1")
                .unwrap()
                .name(),
            None
        );
    }

    #[test]
    fn field_selectors_into_spec_or_status_are_refused() {
        for text in ["spec.expected=1", "status.phase=Open"] {
            let error = FieldSelector::parse(text).unwrap_err();
            assert!(
                error.to_string().contains("field label not supported"),
                "{error}"
            );
        }
    }

    #[test]
    fn equality_and_set_based_label_selectors() {
        let o = object(json!({"konductor.io/barrier": "b1", "tier": "web"}));
        for (selector, expected) in [
            ("", true),
            ("konductor.io/barrier=b1", true),
            ("konductor.io/barrier==b1", true),
            ("konductor.io/barrier=b2", false),
            ("tier!=db", true),
            ("tier in (web, db)", true),
            ("tier notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("tier=web,konductor.io/barrier in (b1,b2)", true),
        ] {
            assert_eq!(
                LabelSelector::parse(selector).unwrap().matches(&o),
                expected,
                "{selector}"
            );
        }
    }

    #[test]
    fn bad_label_selectors_are_bad_requests() {
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("a < 3").is_err());
    }

    #[test]
    fn field_selectors_follow_dotted_paths() {
        let o = object(json!({}));
        for (selector, expected) in [
            ("metadata.name=n1", true),
            ("metadata.name!=n1", false),
            ("metadata.namespace==ns,involvedObject.kind=Barrier", true),
            ("involvedObject.uid=", true),
            ("involvedObject.uid=x", false),
        ] {
            assert_eq!(
                FieldSelector::parse(selector).unwrap().matches(&o),
                expected,
                "{selector}"
            );
        }
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
