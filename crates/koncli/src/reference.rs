//! The command-line references (`docs/reference/koncli.md`, `docs/reference/konductor.md`),
//! generated from the clap definitions so they cannot drift from what the programs
//! accept: every command, argument and flag with its help, default and allowed values.
//! Tests fail when a committed file differs; `KONDUCTOR_WRITE_REFERENCE=1 cargo test
//! reference` rewrites them.

use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command};

/// The reference of `command` (a program's whole command line) as Markdown.
pub fn cli_markdown(mut command: Command) -> String {
    command.build();
    let name = command.get_name().to_owned();
    let mut out = format!(
        "# `{name}` command-line reference\n\n\
         Generated from the program's clap definitions; do not edit — \
         `KONDUCTOR_WRITE_REFERENCE=1 cargo test reference` rewrites it. \
         `{name} <command> --help` shows the same.\n"
    );
    section(&mut out, &command, &name, 2);
    out
}

fn section(out: &mut String, command: &Command, path: &str, depth: usize) {
    let heading = "#".repeat(depth.min(6));
    let _ = writeln!(out, "\n{heading} `{path}`\n");
    let about = command
        .get_long_about()
        .or_else(|| command.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    if !about.is_empty() {
        let _ = writeln!(out, "{}\n", about.trim());
    }
    let usage = command
        .clone()
        .bin_name(path)
        .render_usage()
        .to_string()
        .replacen("Usage: ", "", 1);
    let _ = writeln!(out, "```text\n{}\n```\n", usage.trim());
    let args: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        // Global flags are listed once, on the program.
        .filter(|a| depth == 2 || !a.is_global_set())
        .collect();
    if !args.is_empty() {
        out.push_str("| argument | meaning |\n| --- | --- |\n");
        for arg in args {
            let _ = writeln!(out, "| {} | {} |", arg_name(arg), arg_help(arg));
        }
        out.push('\n');
    }
    if let Some(after) = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
    {
        let _ = writeln!(out, "```text\n{}\n```\n", after.to_string().trim());
    }
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        section(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

fn arg_name(arg: &Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    let takes_value = !matches!(
        arg.get_action(),
        ArgAction::SetTrue
            | ArgAction::SetFalse
            | ArgAction::Count
            | ArgAction::Help
            | ArgAction::Version
    );
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    let text = if names.is_empty() {
        value
    } else if takes_value {
        format!("{} {value}", names.join(", "))
    } else {
        names.join(", ")
    };
    format!("`{text}`")
}

fn arg_help(arg: &Arg) -> String {
    let mut help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
        .replace('|', "\\|");
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !possible.is_empty() {
        let _ = write!(help, " One of {}.", possible.join(", "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() {
        let _ = write!(help, " Default: `{}`.", defaults.join(" "));
    }
    if arg.is_global_set() {
        help.push_str(" (Global: goes before or after the command.)");
    }
    help
}

/// Compares `generated` with the committed file at `path` (under the workspace root),
/// rewriting it first when `KONDUCTOR_WRITE_REFERENCE` is set; the message says how to
/// regenerate it.
pub fn check_committed(path: &std::path::Path, generated: &str) -> Result<(), String> {
    if std::env::var_os("KONDUCTOR_WRITE_REFERENCE").is_some() {
        std::fs::write(path, generated).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == generated {
        Ok(())
    } else {
        Err(format!(
            "{} is out of date with the command line; regenerate it with \
             `KONDUCTOR_WRITE_REFERENCE=1 cargo test reference`",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn the_committed_koncli_reference_is_generated_from_clap() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/koncli.md");
        check_committed(&path, &cli_markdown(Cli::command())).unwrap();
    }

    #[test]
    fn every_command_and_flag_is_there() {
        let reference = cli_markdown(Cli::command());
        for needle in [
            "### `koncli barrier`",
            "#### `koncli barrier prune`",
            "`--older-than <DURATION>`",
            "#### `koncli mutex run`",
            "`-n, --namespace <NAMESPACE>`",
        ] {
            assert!(reference.contains(needle), "{needle} missing");
        }
    }
}
