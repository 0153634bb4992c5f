//! Label selectors and field selectors, as list and watch take them, with
//! apimachinery's grammar and errors.
//!
//! Label selectors: comma-separated requirements — `key`, `!key`, `key=value`,
//! `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1` —
//! with keys checked as qualified names and values as label values.
//!
//! Field selectors: `field=value`, `field==value`, `field!=value`, over the fields the
//! resource supports (its field labels: `metadata.name` and `metadata.namespace` for
//! custom resources, `involvedObject.name` and friends for events). Anything else is a
//! 400 "field label not supported", as on a real API server — never silently ignored.

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::objects::metadata::{label_value_errors, qualified_name_errors};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRequirement>);

/// A token of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(text) => format!("identifier {text:?}"),
            Token::Not => "'!'".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::In => "'in'".into(),
            Token::NotIn => "'notin'".into(),
            Token::GreaterThan => "'>'".into(),
            Token::LessThan => "'<'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
        }
    }
}

fn bad_label_selector(text: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!(
        "labelSelector {text:?}: unable to parse requirement: {why}"
    ))
}

/// Splits a label selector into tokens.
fn tokens(text: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '>' => Token::GreaterThan,
            '<' => Token::LessThan,
            '!' if chars.peek().is_some_and(|(_, n)| *n == '=') => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Not,
            '=' if chars.peek().is_some_and(|(_, n)| *n == '=') => {
                chars.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            _ => {
                let mut end = start + c.len_utf8();
                while let Some((i, n)) = chars.peek().copied() {
                    if n.is_whitespace() || "()!=,<>".contains(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                Token::Identifier(text[start..end].to_owned())
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// A cursor over the tokens of one selector.
struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self, expected: &str) -> Result<Token> {
        let token = self.tokens.get(self.at).cloned().ok_or_else(|| {
            bad_label_selector(
                self.text,
                format!("found end of input, expected: {expected}"),
            )
        })?;
        self.at += 1;
        Ok(token)
    }

    fn unexpected(&self, found: &Token, expected: &str) -> ApiError {
        bad_label_selector(
            self.text,
            format!("found {}, expected: {expected}", found.describe()),
        )
    }

    fn key(&mut self) -> Result<String> {
        match self.next("identifier")? {
            Token::Identifier(key) => {
                if let Some(why) = qualified_name_errors(&key).first() {
                    return Err(bad_label_selector(
                        self.text,
                        format!("key: Invalid value: {key:?}: {why}"),
                    ));
                }
                Ok(key)
            }
            other => Err(self.unexpected(&other, "identifier")),
        }
    }

    fn value(&mut self) -> Result<String> {
        let value = match self.peek() {
            Some(Token::Identifier(value)) => {
                let value = value.clone();
                self.at += 1;
                value
            }
            // `key=` selects the empty value.
            _ => String::new(),
        };
        if let Some(why) = label_value_errors(&value).first() {
            return Err(bad_label_selector(
                self.text,
                format!("values[0]: Invalid value: {value:?}: {why}"),
            ));
        }
        Ok(value)
    }

    fn set(&mut self) -> Result<Vec<String>> {
        match self.next("'('")? {
            Token::Open => {}
            other => return Err(self.unexpected(&other, "'('")),
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Close) => {
                    self.at += 1;
                    break;
                }
                Some(Token::Comma) => self.at += 1,
                Some(Token::Identifier(_)) => values.push(self.value()?),
                Some(other) => return Err(self.unexpected(&other.clone(), "identifier or ')'")),
                None => {
                    return Err(bad_label_selector(
                        self.text,
                        "found end of input, expected: ')'",
                    ));
                }
            }
        }
        if values.is_empty() {
            return Err(bad_label_selector(
                self.text,
                "values: Required value: for 'in', 'notin' operators, values set can't be empty",
            ));
        }
        Ok(values)
    }

    fn integer(&mut self) -> Result<i64> {
        match self.next("integer")? {
            Token::Identifier(text) => text.parse().map_err(|_| {
                bad_label_selector(
                    self.text,
                    format!("values[0]: Invalid value: {text:?}: for 'Gt', 'Lt' operators, the value must be an integer"),
                )
            }),
            other => Err(self.unexpected(&other, "integer")),
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(LabelRequirement::NotExists(self.key()?));
        }
        let key = self.key()?;
        Ok(match self.peek() {
            None | Some(Token::Comma) => LabelRequirement::Exists(key),
            Some(Token::Equals | Token::DoubleEquals) => {
                self.at += 1;
                LabelRequirement::Equals(key, self.value()?)
            }
            Some(Token::NotEquals) => {
                self.at += 1;
                LabelRequirement::NotEquals(key, self.value()?)
            }
            Some(Token::In) => {
                self.at += 1;
                LabelRequirement::In(key, self.set()?)
            }
            Some(Token::NotIn) => {
                self.at += 1;
                LabelRequirement::NotIn(key, self.set()?)
            }
            Some(Token::GreaterThan) => {
                self.at += 1;
                LabelRequirement::GreaterThan(key, self.integer()?)
            }
            Some(Token::LessThan) => {
                self.at += 1;
                LabelRequirement::LessThan(key, self.integer()?)
            }
            Some(other) => {
                return Err(self.unexpected(
                    &other.clone(),
                    "'=', '==', '!=', 'in', 'notin', '>', '<', ',' or end of input",
                ));
            }
        })
    }
}

impl LabelSelector {
    /// Parses a selector string; empty selects everything. A malformed selector is a
    /// 400 naming `labelSelector` and what was found where.
    pub fn parse(text: &str) -> Result<Self> {
        let mut tokens = tokens(text)?;
        // `in` and `notin` are operators only right after a key.
        for i in 1..tokens.len() {
            if let (Token::Identifier(_), Token::Identifier(word)) = (&tokens[i - 1], &tokens[i]) {
                let operator = match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => continue,
                };
                tokens[i] = operator;
            }
        }
        let mut parser = Parser {
            text,
            tokens,
            at: 0,
        };
        let mut requirements = Vec::new();
        while parser.peek().is_some() {
            requirements.push(parser.requirement()?);
            match parser.peek() {
                None => break,
                Some(Token::Comma) => {
                    parser.at += 1;
                    if parser.peek().is_none() {
                        return Err(bad_label_selector(
                            text,
                            "found end of input, expected: identifier",
                        ));
                    }
                }
                Some(other) => return Err(parser.unexpected(&other.clone(), "','")),
            }
        }
        Ok(Self(requirements))
    }

    /// A label value every selected object has (the first `key=value` requirement),
    /// if there is one: a watch with it needs only the events of objects with (or,
    /// before the write, with) that label.
    pub fn required_value(&self) -> Option<(&str, &str)> {
        self.0.iter().find_map(|r| match r {
            LabelRequirement::Equals(key, value) => Some((key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let number = |key: &str| label(key).and_then(|v| v.parse::<i64>().ok());
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
            LabelRequirement::GreaterThan(k, n) => number(k).is_some_and(|v| v > *n),
            LabelRequirement::LessThan(k, n) => number(k).is_some_and(|v| v < *n),
        })
    }
}

/// One field selector term: the stored path it reads, whether it must equal (or
/// differ from) the value, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    path: String,
    equal: bool,
    value: String,
}

/// A parsed field selector over a resource's supported field labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldTerm>);

impl FieldSelector {
    /// Parses a selector string; empty selects everything. `labels` are the field
    /// labels the resource supports, each with the stored path it reads (the same, but
    /// for converted views such as events.k8s.io's `regarding.name`).
    pub fn parse(text: &str, labels: &[(String, String)]) -> Result<Self> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = part.split_once('=') {
                (p, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "fieldSelector: invalid selector {part:?}: expected field=value or field!=value"
                )));
            };
            let label = label.trim();
            let Some((_, path)) = labels.iter().find(|(served, _)| served == label) else {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {label}"
                )));
            };
            terms.push(FieldTerm {
                path: path.clone(),
                equal,
                value: value.trim().to_owned(),
            });
        }
        Ok(Self(terms))
    }

    /// The one object name this selector allows (`metadata.name=x`), if it has such a
    /// term: a watch with it needs only that object's events.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|t| t.equal && t.path == "metadata.name")
            .map(|t| t.value.as_str())
    }

    /// Whether the object satisfies every term. A missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|term| {
            let field = term
                .path
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (field == term.value) == term.equal
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

    fn event_labels() -> Vec<(String, String)> {
        [
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.uid",
        ]
        .into_iter()
        .map(|l| (l.to_owned(), l.to_owned()))
        .collect()
    }

    fn fields(text: &str) -> Result<FieldSelector> {
        FieldSelector::parse(text, &event_labels())
    }

    #[test]
    fn a_name_term_singles_out_one_object() {
        assert_eq!(fields("metadata.name=b1").unwrap().name(), Some("b1"));
        assert_eq!(fields("metadata.name!=b1").unwrap().name(), None);
        assert_eq!(fields("involvedObject.kind=b1").unwrap().name(), None);
    }

    #[test]
    fn fields_the_resource_does_not_label_are_refused() {
        for text in ["spec.expected=1", "status.phase=Open", "metadata.labels=x"] {
            let error = fields(text).unwrap_err();
            assert!(
                error.to_string().contains("field label not supported"),
                "{error}"
            );
        }
    }

    #[test]
    fn equality_set_and_comparison_label_selectors() {
        let o = object(json!({"konductor.io/barrier": "b1", "tier": "web", "replicas": "3"}));
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
            ("replicas>2", true),
            ("replicas<3", false),
            ("tier=", false),
            ("missing=", false),
        ] {
            assert_eq!(
                LabelSelector::parse(selector).unwrap().matches(&o),
                expected,
                "{selector}"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests_that_say_why() {
        for (selector, says) in [
            ("===", "found '=='"),
            ("a in x", "expected: '('"),
            ("a in ()", "can't be empty"),
            ("a in (b", "expected: ')'"),
            ("a < x", "must be an integer"),
            ("-bad-=x", "name part must consist"),
            ("a=-bad-", "a valid label must be"),
            ("a=b,", "end of input"),
            ("a b", "expected: '='"),
            ("a=b c", "expected: ','"),
        ] {
            let error = LabelSelector::parse(selector).unwrap_err().to_string();
            assert!(error.contains("labelSelector"), "{selector}: {error}");
            assert!(error.contains(says), "{selector}: {error}");
        }
    }

    #[test]
    fn field_selectors_follow_their_paths() {
        let o = object(json!({}));
        for (selector, expected) in [
            ("metadata.name=n1", true),
            ("metadata.name!=n1", false),
            ("metadata.namespace==ns,involvedObject.kind=Barrier", true),
            ("involvedObject.uid=", true),
            ("involvedObject.uid=x", false),
        ] {
            assert_eq!(
                fields(selector).unwrap().matches(&o),
                expected,
                "{selector}"
            );
        }
        assert!(fields("nonsense").is_err());
        let renamed = vec![(
            "regarding.kind".to_owned(),
            "involvedObject.kind".to_owned(),
        )];
        let selector = FieldSelector::parse("regarding.kind=Barrier", &renamed).unwrap();
        assert!(selector.matches(&o), "a view's label reads the stored path");
    }
}
