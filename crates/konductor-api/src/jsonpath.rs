//! The JSONPath of Kubernetes (client-go's `jsonpath`, one expression): what a Gate's
//! `jsonPath` test reads objects with — as `kubectl wait --for=jsonpath=…` users write
//! it — and what the embedded server fills printer columns with, as kube-apiserver
//! does. Fields (`.status.phase`, `['a.b']`, `.*`), indexes (`[0]`, `[-1]`), slices
//! (`[1:3]`, `[::2]`), unions (`[0,2]`, `['a','b']`), every element (`[*]`), recursive
//! descent (`..name`) and filters (`[?(@.type=="Ready")]`, `!=`, `<`, `<=`, `>`, `>=`,
//! and `[?(@.field)]` for presence), with or without the enclosing `{…}`.

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
    /// `..`: the value and everything under it, depth first.
    Descend,
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `[a,b]`: each of these steps, in order.
    Union(Vec<Step>),
    Filter {
        field: Vec<String>,
        /// `None`: the field only has to be there (`[?(@.field)]`).
        test: Option<(Comparison, String)>,
    },
}

/// How a filter compares a field with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    /// The operators, longest first (so `<=` is not read as `<`).
    const ALL: [(&'static str, Comparison); 6] = [
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ];

    fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("==", |(s, _)| s)
    }

    /// Whether `found` compares as wanted with `wanted`: numbers as numbers, anything
    /// else as text (order only between numbers, as client-go does).
    fn holds(self, found: &Value, wanted: &str) -> bool {
        let numbers = found.as_f64().zip(wanted.parse::<f64>().ok());
        match (self, numbers) {
            (Comparison::Equal, Some((a, b))) => a == b,
            (Comparison::NotEqual, Some((a, b))) => a != b,
            (Comparison::Equal, None) => render(found) == wanted,
            (Comparison::NotEqual, None) => render(found) != wanted,
            (Comparison::Less, Some((a, b))) => a < b,
            (Comparison::LessOrEqual, Some((a, b))) => a <= b,
            (Comparison::Greater, Some((a, b))) => a > b,
            (Comparison::GreaterOrEqual, Some((a, b))) => a >= b,
            (_, None) => false,
        }
    }
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
            if let Some(after) = rest.strip_prefix("..") {
                steps.push(Step::Descend);
                let (name, after) = field_name(after);
                match name {
                    "" if after.starts_with('[') => {}
                    "" => return Err(format!("{text:?}: a '..' not followed by a field name")),
                    "*" => steps.push(Step::All),
                    name => steps.push(Step::Field(name.to_owned())),
                }
                rest = after;
            } else if let Some(after) = rest.strip_prefix('.') {
                let (name, after) = field_name(after);
                match name {
                    "" => return Err(format!("{text:?}: a '.' not followed by a field name")),
                    "*" => steps.push(Step::All),
                    name => steps.push(Step::Field(name.to_owned())),
                }
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

    /// The values the path selects in `object`, in document order (none when it
    /// leads nowhere).
    pub fn select<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![object];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in current {
                apply(step, value, &mut next);
            }
            current = next;
        }
        current
    }
}

/// Adds what `step` selects in `value` to `out`.
fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => out.extend(value.get(name.as_str())),
        Step::Index(i) => {
            if let Some(items) = value.as_array() {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if *i < 0 { len + i } else { *i };
                out.extend(usize::try_from(at).ok().and_then(|at| items.get(at)));
            }
        }
        Step::All => match value {
            Value::Array(items) => out.extend(items),
            Value::Object(fields) => out.extend(fields.values()),
            _ => {}
        },
        Step::Descend => descend(value, out),
        Step::Slice(start, end, by) => {
            let Some(items) = value.as_array() else {
                return;
            };
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
            let (from, to) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(len)));
            let by = usize::try_from(by.unwrap_or(1).max(1)).unwrap_or(1);
            let (from, to) = (
                usize::try_from(from).unwrap_or(0),
                usize::try_from(to).unwrap_or(0),
            );
            if from < to {
                out.extend(items[from..to].iter().step_by(by));
            }
        }
        Step::Union(steps) => {
            for step in steps {
                apply(step, value, out);
            }
        }
        Step::Filter { field, test } => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let found = field.iter().try_fold(item, |v, name| v.get(name.as_str()));
                let keep = match (found, test) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(found), Some((comparison, wanted))) => comparison.holds(found, wanted),
                };
                if keep {
                    out.push(item);
                }
            }
        }
    }
}

/// `value` and every value under it, depth first (the object before its fields).
fn descend<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(value);
    match value {
        Value::Array(items) => items.iter().for_each(|v| descend(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| descend(v, out)),
        _ => {}
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        let mut steps = self.steps.iter().peekable();
        while let Some(step) = steps.next() {
            match step {
                // `..` stands before the step it searches for.
                Step::Descend => match steps.peek() {
                    Some(Step::Field(name)) => {
                        write!(f, "..{name}")?;
                        steps.next();
                    }
                    _ => f.write_str("..")?,
                },
                step => write_step(f, step, true)?,
            }
        }
        f.write_str("}")
    }
}

/// One step as written; `bracketed`: standing alone (a union's members are not).
fn write_step(f: &mut std::fmt::Formatter<'_>, step: &Step, bracketed: bool) -> std::fmt::Result {
    let (open, close) = if bracketed { ("[", "]") } else { ("", "") };
    match step {
        Step::Field(name) if bracketed => write!(f, ".{name}"),
        Step::Field(name) => write!(f, "'{name}'"),
        Step::Index(i) => write!(f, "{open}{i}{close}"),
        Step::All => write!(f, "{open}*{close}"),
        Step::Descend => f.write_str(".."),
        Step::Slice(start, end, by) => {
            let part = |p: &Option<i64>| p.map(|p| p.to_string()).unwrap_or_default();
            write!(f, "{open}{}:{}", part(start), part(end))?;
            if let Some(by) = by {
                write!(f, ":{by}")?;
            }
            f.write_str(close)
        }
        Step::Union(steps) => {
            f.write_str("[")?;
            for (i, step) in steps.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write_step(f, step, false)?;
            }
            f.write_str("]")
        }
        Step::Filter { field, test } => match test {
            None => write!(f, "[?(@.{})]", field.join(".")),
            Some((comparison, value)) => write!(
                f,
                "[?(@.{} {} {value:?})]",
                field.join("."),
                comparison.symbol()
            ),
        },
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

/// One bracketed step: `*`, an index, a slice, a quoted field name, a union of those,
/// or a filter.
fn bracket(inside: &str) -> Result<Step, String> {
    let inside = inside.trim();
    if let Some(filter) = inside.strip_prefix('?') {
        return filter_step(inside, filter);
    }
    let parts = split_union(inside);
    if parts.len() > 1 {
        return parts
            .iter()
            .map(|part| single(part))
            .collect::<Result<Vec<_>, _>>()
            .map(Step::Union)
            .map_err(|e| format!("[{inside}]: {e}"));
    }
    single(inside)
}

/// One member of a bracket: `*`, an index, a slice or a quoted name.
fn single(inside: &str) -> Result<Step, String> {
    let inside = inside.trim();
    if inside == "*" {
        return Ok(Step::All);
    }
    if let Some(quoted) = unquote(inside) {
        return Ok(Step::Field(quoted.to_owned()));
    }
    if inside.contains(':') {
        let bound = |part: &str| {
            let part = part.trim();
            (!part.is_empty())
                .then(|| part.parse::<i64>())
                .transpose()
                .map_err(|_| format!("[{inside}]: a slice's bounds are numbers"))
        };
        let parts: Vec<&str> = inside.split(':').collect();
        return match parts.as_slice() {
            [start, end] => Ok(Step::Slice(bound(start)?, bound(end)?, None)),
            [start, end, by] => Ok(Step::Slice(bound(start)?, bound(end)?, bound(by)?)),
            _ => Err(format!(
                "[{inside}]: a slice is [start:end] or [start:end:step]"
            )),
        };
    }
    inside
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("[{inside}]: expected an index, a slice, *, a quoted name or ?(…)"))
}

/// `a,b,'c,d'` split at the commas outside quotes.
fn split_union(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A filter: `?(@.field OP value)` or `?(@.field)`.
fn filter_step(inside: &str, filter: &str) -> Result<Step, String> {
    let filter = filter.trim();
    let filter = filter
        .strip_prefix('(')
        .and_then(|f| f.strip_suffix(')'))
        .unwrap_or(filter)
        .trim();
    let found = Comparison::ALL
        .iter()
        .filter_map(|(symbol, comparison)| filter.find(symbol).map(|at| (at, *symbol, *comparison)))
        .min_by_key(|(at, symbol, _)| (*at, std::cmp::Reverse(symbol.len())));
    let (left, test) = match found {
        Some((at, symbol, comparison)) => {
            let right = filter[at + symbol.len()..].trim();
            let value = unquote(right).map_or_else(|| right.to_owned(), str::to_owned);
            (&filter[..at], Some((comparison, value)))
        }
        None => (filter, None),
    };
    let field = left
        .trim()
        .strip_prefix("@.")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| format!("filter [{inside}]: the left side must be @.field"))?;
    Ok(Step::Filter {
        field: field.split('.').map(str::to_owned).collect(),
        test,
    })
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
            (".status.", "not followed by a field name"),
            (".status..", "not followed by a field name"),
            (".status[?(type>1)]", "the left side must be @.field"),
            (".status[abc]", "expected an index"),
            (".status[1:x]", "bounds are numbers"),
            ("", "an empty path"),
        ] {
            let error = JsonPath::parse(path).unwrap_err();
            assert!(error.contains(why), "{path}: {error}");
        }
    }

    #[test]
    fn recursive_descent_slices_unions_and_comparisons_select_as_client_go_does() {
        let object = json!({
            "status": {
                "replicas": 3,
                "conditions": [
                    {"type": "Ready", "status": "True", "count": 1},
                    {"type": "Synced", "status": "False", "count": 5},
                    {"type": "Healthy", "status": "True", "count": 10}
                ]
            }
        });
        assert_eq!(select("..type", &object), ["Ready", "Synced", "Healthy"]);
        assert_eq!(
            select(".status.conditions[0:2].type", &object),
            ["Ready", "Synced"]
        );
        assert_eq!(
            select(".status.conditions[::2].type", &object),
            ["Ready", "Healthy"]
        );
        assert_eq!(
            select(".status.conditions[-2:].type", &object),
            ["Synced", "Healthy"]
        );
        assert_eq!(
            select(".status.conditions[0,2].type", &object),
            ["Ready", "Healthy"]
        );
        assert_eq!(
            select(".status.conditions[0]['type','status']", &object),
            ["Ready", "True"]
        );
        assert_eq!(
            select(".status.conditions[?(@.count > 1)].type", &object),
            ["Synced", "Healthy"]
        );
        assert_eq!(
            select(".status.conditions[?(@.count<=5)].type", &object),
            ["Ready", "Synced"]
        );
        assert_eq!(
            select(".status.conditions[?(@.count)].count", &object).len(),
            3
        );
        assert!(select(".status.conditions[?(@.missing)]", &object).is_empty());
        assert_eq!(select(".status.*", &object).len(), 2);
    }

    #[test]
    fn a_parsed_path_prints_in_the_braced_form() {
        for text in [
            "{..type}",
            "{.a[1:3:2]}",
            "{.a[0,2]}",
            "{.a[?(@.n >= \"2\")]}",
            "{.a[?(@.n)]}",
        ] {
            let path = JsonPath::parse(text).unwrap();
            assert_eq!(JsonPath::parse(&path.to_string()).unwrap(), path, "{text}");
        }
        let path = JsonPath::parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(
            path.to_string(),
            r#"{.status.conditions[?(@.type == "Ready")].status}"#
        );
        assert_eq!(JsonPath::parse(&path.to_string()).unwrap(), path);
    }
}
