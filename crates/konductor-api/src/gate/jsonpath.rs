//! The JSONPath subset a Gate's `jsonPath` test reads objects with — the one `kubectl
//! wait --for=jsonpath=…` users write: fields (`.status.phase`, `['a.b']`), indexes
//! (`[0]`, `[-1]`), every element (`[*]`) and filters on a field
//! (`[?(@.type=="Ready")]`, `!=`), with or without the enclosing `{…}`.

use serde_json::Value;

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        field: Vec<String>,
        equal: bool,
        value: String,
    },
}

impl JsonPath {
    /// Parses `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let inner = text.trim();
        let inner = match inner.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| format!("{text:?}: a '{{' without its '}}'"))?,
            None => inner,
        };
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let mut steps = Vec::new();
        let mut rest = inner;
        if !rest.is_empty() && !rest.starts_with(['.', '[']) {
            let (name, after) = field_name(rest);
            steps.push(Step::Field(name.to_owned()));
            rest = after;
        }
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let (name, after) = field_name(after);
                if name.is_empty() {
                    return Err(format!("{text:?}: a '.' not followed by a field name"));
                }
                steps.push(Step::Field(name.to_owned()));
                rest = after;
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = closing_bracket(after)
                    .ok_or_else(|| format!("{text:?}: a '[' without its ']'"))?;
                steps.push(bracket(&after[..end]).map_err(|e| format!("{text:?}: {e}"))?);
                rest = &after[end + 1..];
            } else {
                return Err(format!("{text:?}: unexpected {:?}", rest));
            }
        }
        if steps.is_empty() {
            return Err(format!("{text:?}: an empty path"));
        }
        Ok(Self { steps })
    }

    /// The values the path selects in `object` (none when it leads nowhere).
    pub fn select<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![object];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in current {
                match step {
                    Step::Field(name) => next.extend(value.get(name.as_str())),
                    Step::Index(i) => {
                        if let Some(items) = value.as_array() {
                            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                            let at = if *i < 0 { len + i } else { *i };
                            next.extend(usize::try_from(at).ok().and_then(|at| items.get(at)));
                        }
                    }
                    Step::All => match value {
                        Value::Array(items) => next.extend(items),
                        Value::Object(fields) => next.extend(fields.values()),
                        _ => {}
                    },
                    Step::Filter {
                        field,
                        equal,
                        value: wanted,
                    } => {
                        for item in value.as_array().into_iter().flatten() {
                            let found = field
                                .iter()
                                .try_fold(item, |v, name| v.get(name.as_str()))
                                .map(render);
                            if (found.as_deref() == Some(wanted.as_str())) == *equal {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for step in &self.steps {
            match step {
                Step::Field(name) => write!(f, ".{name}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
                Step::All => f.write_str("[*]")?,
                Step::Filter {
                    field,
                    equal,
                    value,
                } => write!(
                    f,
                    "[?(@.{} {} {value:?})]",
                    field.join("."),
                    if *equal { "==" } else { "!=" }
                )?,
            }
        }
        f.write_str("}")
    }
}

/// A selected value as a test compares it: a string as itself, anything else as JSON
/// (`3`, `true`, `null`).
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field name up to the next `.` or `[`.
fn field_name(text: &str) -> (&str, &str) {
    let end = text.find(['.', '[']).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// Where the `]` closing a bracket opened just before `text` is (quotes respected).
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

/// One bracketed step: `*`, an index, a quoted field name or a filter.
fn bracket(inside: &str) -> Result<Step, String> {
    let inside = inside.trim();
    if inside == "*" {
        return Ok(Step::All);
    }
    if let Some(quoted) = unquote(inside) {
        return Ok(Step::Field(quoted.to_owned()));
    }
    if let Some(filter) = inside.strip_prefix('?') {
        let filter = filter.trim();
        let filter = filter
            .strip_prefix('(')
            .and_then(|f| f.strip_suffix(')'))
            .unwrap_or(filter)
            .trim();
        let (left, equal, right) = if let Some((l, r)) = filter.split_once("==") {
            (l, true, r)
        } else if let Some((l, r)) = filter.split_once("!=") {
            (l, false, r)
        } else {
            return Err(format!(
                "filter [{inside}]: only @.field==\"value\" and != are supported"
            ));
        };
        let field = left
            .trim()
            .strip_prefix("@.")
            .ok_or_else(|| format!("filter [{inside}]: the left side must be @.field"))?;
        let right = right.trim();
        let value = unquote(right).map_or_else(|| right.to_owned(), str::to_owned);
        return Ok(Step::Filter {
            field: field.split('.').map(str::to_owned).collect(),
            equal,
            value,
        });
    }
    inside
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("[{inside}]: expected an index, *, a quoted name or ?(…)"))
}

fn unquote(text: &str) -> Option<&str> {
    ['"', '\''].iter().find_map(|q| {
        text.strip_prefix(*q)
            .and_then(|t| t.strip_suffix(*q))
            .filter(|t| !t.contains(*q))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(path: &str, object: &Value) -> Vec<String> {
        JsonPath::parse(path)
            .unwrap()
            .select(object)
            .into_iter()
            .map(render)
            .collect()
    }

    #[test]
    fn paths_as_kubectl_users_write_them_select_the_same_values() {
        let object = json!({
            "status": {
                "phase": "Running",
                "replicas": 3,
                "ready": true,
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "False"}
                ],
                "a.b": "dotted"
            }
        });
        for path in [
            "{.status.phase}",
            ".status.phase",
            "status.phase",
            "$.status.phase",
        ] {
            assert_eq!(select(path, &object), ["Running"], "{path}");
        }
        assert_eq!(select(".status.replicas", &object), ["3"]);
        assert_eq!(select(".status.ready", &object), ["true"]);
        assert_eq!(
            select(
                r#"{.status.conditions[?(@.type=="Available")].status}"#,
                &object
            ),
            ["True"]
        );
        assert_eq!(
            select(".status.conditions[?(@.type!='Available')].type", &object),
            ["Progressing"]
        );
        assert_eq!(
            select(".status.conditions[-1].type", &object),
            ["Progressing"]
        );
        assert_eq!(
            select(".status.conditions[*].status", &object),
            ["True", "False"]
        );
        assert_eq!(select(".status['a.b']", &object), ["dotted"]);
        assert!(select(".status.missing.deeper", &object).is_empty());
        assert!(select(".status.conditions[7]", &object).is_empty());
    }

    #[test]
    fn malformed_paths_are_refused_saying_why() {
        for (path, why) in [
            ("{.status", "without its '}'"),
            (".status[0", "without its ']'"),
            (".status..phase", "not followed by a field name"),
            (".status[?(@.type>1)]", "only @.field"),
            (".status[abc]", "expected an index"),
            ("", "an empty path"),
        ] {
            let error = JsonPath::parse(path).unwrap_err();
            assert!(error.contains(why), "{path}: {error}");
        }
    }

    #[test]
    fn a_parsed_path_prints_in_the_braced_form() {
        let path = JsonPath::parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(
            path.to_string(),
            r#"{.status.conditions[?(@.type == "Ready")].status}"#
        );
        assert_eq!(JsonPath::parse(&path.to_string()).unwrap(), path);
    }
}
