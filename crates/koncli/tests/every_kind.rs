//! The lists of kinds outside the code follow the list of kinds (`konductor_api::kinds`):
//! every kind the controllers reconcile is a koncli command, a row of the contract's
//! matrix, played by an example script that `examples/run-all.sh` runs, and named in the
//! README's command table and in `docs/contract.md`. A new kind that misses one of
//! these fails here, naming what is missing.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The koncli command word of every reconciled kind (`barrier`, `rwmutex`, …).
fn reconciled_kinds() -> Vec<String> {
    let words: Vec<String> = konductor_api::kinds()
        .into_iter()
        .filter(|kind| kind.reconciled)
        .map(|kind| kind.word().to_owned())
        .collect();
    assert!(words.len() >= 7, "the list of kinds is read: {words:?}");
    words
}

#[test]
fn every_reconciled_kind_is_a_command_a_contract_row_an_example_and_documented() {
    let commands = koncli::cli::Cli::try_parse_checked_from(["koncli", "--help"])
        .err()
        .map(|help| help.to_string())
        .unwrap_or_default();
    let contract_rows = read("crates/koncli/tests/contract.rs");
    let run_all = read("examples/run-all.sh");
    let played: Vec<String> = run_all
        .split_whitespace()
        .map(|word| word.trim_end_matches(';'))
        .filter(|word| word.ends_with(".sh"))
        .map(|script| read(&format!("examples/{script}")))
        .collect();
    let readme = read("README.md");
    let contract_doc = read("docs/contract.md");
    let mut missing = Vec::new();
    for kind in reconciled_kinds() {
        let mut lacks = |what: &str, found: bool| {
            if !found {
                missing.push(format!("{kind}: {what}"));
            }
        };
        lacks(
            "a koncli command",
            commands
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{kind} "))),
        );
        lacks(
            "a row of the contract's matrix (crates/koncli/tests/contract.rs KINDS)",
            contract_rows.contains(&format!("word: \"{kind}\"")),
        );
        lacks(
            "an example script run by examples/run-all.sh",
            played.iter().any(|script| {
                script.lines().any(|line| {
                    let mut words = line.split_whitespace().skip_while(|w| *w != "koncli");
                    words.next().is_some() && words.any(|word| word == kind)
                })
            }),
        );
        lacks(
            "the README's command table",
            readme.contains(&format!("koncli {kind}")) || readme.contains(&format!("|{kind}")),
        );
        lacks(
            "docs/contract.md",
            contract_doc.to_lowercase().contains(&kind),
        );
    }
    assert!(
        missing.is_empty(),
        "kinds missing from a list: {missing:#?}"
    );
}
