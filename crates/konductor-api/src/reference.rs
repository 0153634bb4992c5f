//! The API reference (`docs/reference/api.md`), generated from the CRDs — themselves
//! generated from the Rust types — so it cannot drift from what the API server
//! enforces: every kind, every field with its type, default, validation and
//! description. A test fails when the committed file differs; regenerate it with
//! `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p konductor-api reference`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::crd::crds;

/// The whole API reference as Markdown.
pub fn api_markdown() -> String {
    let mut out = String::from(
        "# API reference\n\n\
         Generated from the CRDs (`config/crd/`, themselves generated from the Rust types in \
         `crates/konductor-api`); do not edit — `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p \
         konductor-api reference` rewrites it. Semantics: [semantics.md](../semantics.md), \
         [locks.md](../locks.md).\n",
    );
    for crd in crds() {
        let crd = serde_json::to_value(&crd).unwrap_or_default();
        let spec = &crd["spec"];
        let version = &spec["versions"][0];
        let kind = spec["names"]["kind"].as_str().unwrap_or_default();
        let _ = write!(
            out,
            "\n## {kind}\n\n`{}/{}`, {} (`{}`",
            spec["group"].as_str().unwrap_or_default(),
            version["name"].as_str().unwrap_or_default(),
            spec["scope"].as_str().unwrap_or_default().to_lowercase(),
            spec["names"]["plural"].as_str().unwrap_or_default(),
        );
        for short in spec["names"]["shortNames"].as_array().into_iter().flatten() {
            let _ = write!(out, ", `{}`", short.as_str().unwrap_or_default());
        }
        out.push_str(")\n\n");
        let schema = &version["schema"]["openAPIV3Schema"];
        if let Some(description) = schema["description"].as_str() {
            let _ = writeln!(out, "{description}\n");
        }
        if let Some(columns) = version["additionalPrinterColumns"].as_array() {
            let names: Vec<String> = columns
                .iter()
                .map(|c| {
                    let wide = if c["priority"].as_i64().unwrap_or(0) > 0 {
                        " (wide)"
                    } else {
                        ""
                    };
                    format!("{}{wide}", c["name"].as_str().unwrap_or_default())
                })
                .collect();
            let _ = writeln!(out, "`kubectl get` columns: {}.\n", names.join(", "));
        }
        out.push_str(
            "| field | type | default | validation | description |\n| --- | --- | --- | --- | --- |\n",
        );
        for part in ["spec", "status"] {
            let required = is_required(schema, part);
            fields(&mut out, part, &schema["properties"][part], required);
        }
        for rule in schema["properties"]["spec"]["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "\nRule on `spec`: `{}` — {}",
                rule["rule"].as_str().unwrap_or_default(),
                rule["message"].as_str().unwrap_or_default()
            );
        }
    }
    out
}

fn is_required(parent: &Value, name: &str) -> bool {
    parent["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|n| n == name))
}

/// One row per field under `schema` (at `path`), depth first.
fn fields(out: &mut String, path: &str, schema: &Value, required: bool) {
    if schema.is_null() {
        return;
    }
    let _ = writeln!(
        out,
        "| `{path}` | {} | {} | {} | {} |",
        type_of(schema),
        schema
            .get("default")
            .map_or(String::new(), |d| format!("`{d}`")),
        validation(schema, required),
        cell(schema["description"].as_str().unwrap_or_default()),
    );
    let (children, prefix) = match schema["type"].as_str() {
        Some("array") => (&schema["items"], format!("{path}[]")),
        _ => (schema, path.to_owned()),
    };
    if let Some(properties) = children["properties"].as_object() {
        for (name, child) in properties {
            fields(
                out,
                &format!("{prefix}.{name}"),
                child,
                is_required(children, name),
            );
        }
    }
}

fn type_of(schema: &Value) -> String {
    let base = match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("array"), _) => format!("[]{}", type_of(&schema["items"])),
        (Some(t), Some(f)) => format!("{t} ({f})"),
        (Some(t), None) => t.to_owned(),
        (None, _) if schema["x-kubernetes-int-or-string"] == true => "int or string".into(),
        (None, _) => "any".into(),
    };
    if schema["nullable"] == true {
        format!("{base}, optional")
    } else {
        base
    }
}

fn validation(schema: &Value, required: bool) -> String {
    let mut rules = Vec::new();
    if required {
        rules.push("required".to_owned());
    }
    for (key, word) in [
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("maxItems", "items ≤"),
    ] {
        if let Some(v) = schema.get(key) {
            // JSON Schema bounds are numbers; whole ones read better without ".0".
            let v = match v.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                _ => v.to_string(),
            };
            rules.push(format!("{word} {v}"));
        }
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        rules.push(format!("pattern `{}`", pattern.replace('|', "\\|")));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        rules.push(format!("one of {}", values.join(", ")));
    }
    rules.join("; ")
}

/// Text fit for one table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_api_reference_is_generated_from_the_crds() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/api.md");
        let generated = api_markdown();
        if std::env::var_os("KONDUCTOR_WRITE_REFERENCE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date with the CRDs; regenerate it with \
             `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p konductor-api reference`",
            path.display()
        );
    }

    #[test]
    fn every_field_of_every_kind_is_there() {
        let reference = api_markdown();
        for needle in [
            "## Barrier",
            "## Permit",
            "| `spec.ttlAfterFinished` | string, optional |",
            "| `spec.expected` | integer (int32) |  | required; ≥ 1 |",
            "| `status.failures[].holder` |",
            "`kubectl get` columns: Expected, Quorum, Arrived, Phase, Timeout (wide)",
        ] {
            assert!(reference.contains(needle), "{needle} missing");
        }
    }
}
