//! The command line: the top-level flags and how a command line is parsed and checked.
//! The commands themselves — one per kind — are listed in [`crate::Command`]; each
//! kind's subcommands and their arguments are in its own module.

use std::path::PathBuf;

use clap::Parser;

pub use crate::Command;
use crate::exit::EXIT_CODES;

/// Coordinate Jobs, Pods, CI steps and scripts: barriers (wait for each other) and
/// locks (take turns: semaphore, mutex, rwmutex).
///
/// Talks to the Kubernetes API of the current kubeconfig context (a cluster, or
/// `konductor server`), or to the cluster the pod runs in.
#[derive(Parser, Debug)]
#[command(name = "koncli", version, about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Path to the kubeconfig file [default: $KUBECONFIG, ~/.kube/config, or in-cluster].
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace [default: the context's namespace; in a pod, the pod's namespace].
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

fn parse_namespace(text: &str) -> Result<String, String> {
    if konductor_api::names::is_dns1123_label(text) {
        Ok(text.to_owned())
    } else {
        Err("must consist of lower-case letters, digits or '-', start and end with a letter or digit, and be at most 63 characters (e.g. 'batch-jobs')".to_owned())
    }
}

impl Cli {
    /// Parses the command line like [`clap::Parser::try_parse`], then checks what
    /// single arguments cannot: `--quorum` at most `--expected`.
    pub fn try_parse_checked() -> Result<Self, clap::Error> {
        Self::try_parse_checked_from(std::env::args_os())
    }

    /// [`Cli::try_parse_checked`] on the given arguments (the first is the program).
    /// Run as `kubectl-konductor` (kubectl's plugin convention: `kubectl konductor …`
    /// runs it), help and usage say `kubectl konductor`.
    pub fn try_parse_checked_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let mut command = <Self as clap::CommandFactory>::command();
        if args
            .first()
            .is_some_and(|program| crate::exit::is_kubectl_plugin(program))
        {
            command = command.bin_name(crate::exit::KUBECTL_PLUGIN_NAME);
        }
        let matches = command.try_get_matches_from(args)?;
        let cli = <Self as clap::FromArgMatches>::from_arg_matches(&matches)?;
        cli.check()?;
        Ok(cli)
    }

    fn check(&self) -> Result<(), clap::Error> {
        if let Command::Barrier(crate::barrier::BarrierCommand::Create(create)) = &self.command
            && let Some(quorum) = create.quorum
            && quorum > create.expected
        {
            return Err(<Self as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--quorum {quorum} is more than --expected {}: a barrier cannot need more arrivals than it expects",
                    create.expected
                ),
            ));
        }
        Ok(())
    }
}

/// A usage error as one line (clap's own output adds usage and tips on more lines),
/// for the exit-code promise: every non-zero exit prints one line saying why.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let said: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:"))
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    let text = said.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{}: {text} (see --help)", crate::exit::program_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn as_a_kubectl_plugin_help_says_kubectl_konductor() {
        let help = Cli::try_parse_checked_from(["/usr/local/bin/kubectl-konductor", "--help"])
            .err()
            .unwrap()
            .render()
            .to_string();
        assert!(help.contains("Usage: kubectl konductor"), "{help}");
        let plain = Cli::try_parse_checked_from(["koncli", "--help"])
            .err()
            .unwrap()
            .render()
            .to_string();
        assert!(plain.contains("Usage: koncli"), "{plain}");
        let parsed = Cli::try_parse_checked_from([
            "kubectl-konductor",
            "barrier",
            "create",
            "b",
            "--expected",
            "2",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }

    #[test]
    fn the_seed_spellings_parse() {
        for args in [
            &[
                "koncli",
                "barrier",
                "wait",
                "extract-complete",
                "--timeout=30m",
            ][..],
            &["koncli", "barrier", "arrive", "extract-complete"],
            &["koncli", "barrier", "status", "extract-complete"],
            &[
                "koncli",
                "barrier",
                "create",
                "b",
                "--expected",
                "5",
                "--quorum",
                "4",
                "--timeout",
                "1h",
            ],
            &["koncli", "-n", "team", "barrier", "list", "-o", "wide"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn an_empty_holder_or_a_table_after_create_is_a_usage_error() {
        for args in [
            &["koncli", "barrier", "arrive", "b", ""][..],
            &["koncli", "barrier", "arrive", "b", "--holder="],
            &[
                "koncli",
                "barrier",
                "create",
                "b",
                "--expected",
                "1",
                "-o",
                "wide",
            ],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn bad_values_name_the_argument() {
        let err =
            Cli::try_parse_from(["koncli", "barrier", "wait", "b", "--timeout=abc"]).unwrap_err();
        assert!(err.to_string().contains("--timeout"), "{err}");
        let err = Cli::try_parse_from(["koncli", "barrier", "create", "b", "--expected", "0"])
            .unwrap_err();
        assert!(err.to_string().contains("--expected"), "{err}");
    }
}
