//! The house's own rules, checked: no module of any crate imports, through others, a
//! module that imports it (a circle makes every part of it depend on all of it).
//!
//! A file's imports are the `crate::…`, `super::…` and `self::…` paths it uses outside
//! `#[cfg(test)]` code, each resolved to the module file that defines it; `mod`
//! declarations and `pub use` re-exports are not imports, and neither is the crate root
//! (`lib.rs`: crate-wide constants every module may use).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A source file's module path within its crate (`["locks", "status"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of `text` that is not test code, comments or string literals.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if text[i..].starts_with("/*") {
            i = text[i + 2..].find("*/").map_or(bytes.len(), |n| i + n + 4);
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The module paths `code` refers to, from module `here` (`crate::a::b`, `super::c`,
/// `self::d`, and the groups of `use crate::{a, b::c}`).
fn referenced(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("pub use") || line.starts_with("pub(crate) use") {
            continue;
        }
        for (start, _) in line.match_indices("crate::") {
            if start > 0 && line[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            found.extend(paths(&line[start + "crate::".len()..], Vec::new()));
        }
        for (prefix, base) in [
            ("super::", here.len().saturating_sub(1)),
            ("self::", here.len()),
        ] {
            for (start, _) in line.match_indices(prefix) {
                if start > 0 && line[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let mut rest = &line[start + prefix.len()..];
                let mut base = base;
                while let Some(more) = rest.strip_prefix("super::") {
                    base = base.saturating_sub(1);
                    rest = more;
                }
                found.extend(paths(rest, here[..base].to_vec()));
            }
        }
    }
    found
}

/// The paths at the start of `text` (after a `crate::`), below `base`: `a::b::C` or a
/// `{…}` group of them.
fn paths(text: &str, base: Vec<String>) -> Vec<Vec<String>> {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        let mut part_start = 0;
        let mut depth = 0;
        let inner = &group[..end];
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths(inner[part_start..i].trim(), base.clone()));
                    part_start = i + 1;
                }
                _ => {}
            }
        }
        out.extend(paths(inner[part_start..].trim(), base));
        return out;
    }
    let mut path = base;
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let segment = &rest[..end];
        if segment.is_empty() {
            break;
        }
        path.push(segment.to_owned());
        match rest[end..].strip_prefix("::") {
            Some(more) if more.starts_with('{') => return paths(more, path),
            Some(more) => rest = more,
            None => break,
        }
    }
    vec![path]
}

/// The module file a path lands in: its longest prefix that is a module.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// The circles among one crate's module files, as lists of module paths.
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    // Files of test modules (`rules/tests.rs`) are tests.
    files.retain(|f| f.file_name().is_some_and(|n| n != "tests.rs"));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let here = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for path in referenced(&code(&text), &here) {
            if let Some(target) = resolve(&path, &modules)
                && target != here
                && !target.is_empty()
            {
                edges.entry(here.clone()).or_default().insert(target);
            }
        }
    }
    // A module is in a circle if it reaches itself.
    let mut found: Vec<Vec<String>> = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> =
            vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let circle: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                    let mut key = circle.clone();
                    key.sort();
                    if !found.iter().any(|c| {
                        let mut k = c.clone();
                        k.sort();
                        k == key
                    }) {
                        found.push(circle);
                    }
                } else if seen.insert(next.clone()) {
                    let mut trail = trail.clone();
                    trail.push(next.clone());
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    found
}

#[test]
fn no_crate_has_a_module_circle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut report = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        for circle in circles(&src) {
            report.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                circle.join(" -> ")
            ));
        }
    }
    assert!(report.is_empty(), "module circles:\n{}", report.join("\n"));
}

#[test]
fn the_check_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B(crate::a::A);\n").unwrap();
    assert_eq!(circles(src).len(), 1);
    std::fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert!(circles(src).is_empty());
}
