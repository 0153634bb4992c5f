//! The `--for` grammar of `koncli gate create` and `koncli wait`, kubectl's with one
//! object per flag: `KIND/NAME` (the kind's preset), `KIND/NAME=condition=TYPE[=STATUS]`,
//! `KIND/NAME=jsonpath=EXPR` (exists) or `KIND/NAME=jsonpath=EXPR=VALUE`. `KIND` is
//! what kubectl accepts (`job`, `jobs`, `deploy`, `databases.acme.example.com`); turning
//! it into an apiVersion and kind takes discovery, which is the caller's.

use super::{ConditionStatus, ConditionTest, GateCondition, JsonPathOp, TargetRef};
use crate::jsonpath::JsonPath;

/// One `--for`, parsed: the kind as typed, and the condition with its `ref` still to
/// be completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForArgument {
    /// The kind as typed (`job`, `deployments.apps`).
    pub resource: String,
    /// The condition; `target.name` is set, `apiVersion` and `kind` are not yet.
    pub condition: GateCondition,
}

/// Parses one `--resume` value, `KIND/NAME` (`job/b`): the resource as written (its kind
/// is resolved later, against the server) and the name; the error names what is wrong.
pub fn parse_resume(text: &str) -> Result<(String, String), String> {
    if text.contains('=') {
        return Err(format!(
            "{text:?}: expected KIND/NAME, like job/b (an object to resume takes no test)"
        ));
    }
    let parsed = parse_for(text)?;
    let resource = text.split_once('/').map(|(r, _)| r).unwrap_or_default();
    Ok((resource.to_owned(), parsed.condition.target.name))
}

/// Parses one `--for` value; the error names what is wrong.
pub fn parse_for(text: &str) -> Result<ForArgument, String> {
    let (object, test) = match text.split_once('=') {
        Some((object, test)) => (object, Some(test)),
        None => (text, None),
    };
    let (resource, name) = object
        .split_once('/')
        .filter(|(r, n)| !r.is_empty() && !n.is_empty())
        .ok_or_else(|| format!("{text:?}: expected KIND/NAME, like job/migrate"))?;
    if !crate::names::is_dns1123_subdomain(name) {
        return Err(format!("{text:?}: {name:?} is not a valid object name"));
    }
    let mut condition = GateCondition {
        target: TargetRef {
            name: name.to_owned(),
            ..TargetRef::default()
        },
        ..GateCondition::default()
    };
    match test {
        None => {}
        Some(test) => {
            if let Some(rest) = test.strip_prefix("condition=") {
                let (type_, status) = match rest.split_once('=') {
                    Some((type_, status)) => (type_, Some(status)),
                    None => (rest, None),
                };
                if type_.is_empty() {
                    return Err(format!("{text:?}: condition= needs a condition type"));
                }
                let status = match status.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true") => ConditionStatus::True,
                    Some("false") => ConditionStatus::False,
                    Some("unknown") => ConditionStatus::Unknown,
                    Some(other) => {
                        return Err(format!(
                            "{text:?}: condition status {other:?} is not True, False or Unknown"
                        ));
                    }
                };
                condition.condition = Some(ConditionTest {
                    type_: type_.to_owned(),
                    status: Some(status),
                    reason: None,
                });
            } else if let Some(rest) = test.strip_prefix("jsonpath=") {
                let (path, value) = split_path(rest);
                JsonPath::parse(path).map_err(|e| format!("{text:?}: {e}"))?;
                condition.json_path = Some(path.to_owned());
                match value {
                    Some(value) => {
                        condition.op = Some(JsonPathOp::Equals);
                        condition.value = Some(value.to_owned());
                    }
                    None => condition.op = Some(JsonPathOp::Exists),
                }
            } else {
                return Err(format!(
                    "{text:?}: after '=' expected condition=TYPE[=STATUS] or jsonpath=EXPR[=VALUE]"
                ));
            }
        }
    }
    Ok(ForArgument {
        resource: resource.to_owned(),
        condition,
    })
}

/// Splits `EXPR[=VALUE]`: a braced expression ends at its `}`; a bare one at the first
/// `=` outside brackets and quotes.
fn split_path(text: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            (None, '=') if depth == 0 => return (&text[..i], Some(&text[i + 1..])),
            _ => {}
        }
    }
    (text, None)
}

/// Why objects of a kind that a Gate (or `koncli wait`) names cannot be waited for, from
/// what discovery answered — one wording for the controller's conditions and the
/// clients' errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindUnusable {
    /// Discovery does not know the kind (a CRD not applied yet).
    NotServed {
        /// The kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// It is served cluster-scoped: only objects in a namespace can be named.
    ClusterScoped {
        /// Its resource (plural).
        plural: String,
    },
}

impl std::fmt::Display for KindUnusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KindUnusable::NotServed { kind, api_version } => write!(
                f,
                "kind {kind} in {api_version} is not served (is its CRD applied?)"
            ),
            KindUnusable::ClusterScoped { plural } => write!(
                f,
                "{plural} is cluster-scoped: only objects in a namespace can be waited for"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_of_for_parses_into_its_test() {
        let plain = parse_for("job/migrate").unwrap();
        assert_eq!(plain.resource, "job");
        assert_eq!(plain.condition.target.name, "migrate");
        assert!(plain.condition.condition.is_none() && plain.condition.json_path.is_none());

        let condition = parse_for("deploy/web=condition=Available=false").unwrap();
        let test = condition.condition.condition.unwrap();
        assert_eq!(
            (test.type_.as_str(), test.status),
            ("Available", Some(ConditionStatus::False))
        );

        let exists =
            parse_for("databases.acme.example.com/db=jsonpath={.status.endpoint}").unwrap();
        assert_eq!(exists.resource, "databases.acme.example.com");
        assert_eq!(exists.condition.op, Some(JsonPathOp::Exists));

        let filter =
            parse_for(r#"pod/p=jsonpath={.status.conditions[?(@.type=="Ready")].status}=True"#)
                .unwrap();
        assert_eq!(
            filter.condition.json_path.as_deref(),
            Some(r#"{.status.conditions[?(@.type=="Ready")].status}"#)
        );
        assert_eq!(filter.condition.value.as_deref(), Some("True"));

        let bare = parse_for("barrier/b=jsonpath=.status.phase=Open").unwrap();
        assert_eq!(bare.condition.json_path.as_deref(), Some(".status.phase"));
        assert_eq!(bare.condition.value.as_deref(), Some("Open"));
    }

    #[test]
    fn malformed_for_values_are_refused_naming_the_problem() {
        for (text, why) in [
            ("migrate", "expected KIND/NAME"),
            ("job/", "expected KIND/NAME"),
            ("job/Bad_Name", "not a valid object name"),
            ("job/x=complete", "after '='"),
            ("job/x=condition=", "needs a condition type"),
            (
                "job/x=condition=Complete=maybe",
                "not True, False or Unknown",
            ),
            ("job/x=jsonpath={.status", "without its '}'"),
        ] {
            let error = parse_for(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
