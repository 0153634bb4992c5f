//! `koncli`: the command-line client for barriers (placeholder until the SDK lands).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Wait at, arrive at and inspect Konductor barriers.
#[derive(Parser)]
#[command(name = "koncli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Barrier commands: wait, arrive, status, create, delete, list (not implemented yet).
    Barrier {
        /// The barrier command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let Cli {
        command: Command::Barrier { args },
    } = Cli::parse();
    let verb = args.first().map(String::as_str).unwrap_or("");
    eprintln!("koncli: `koncli barrier {verb}` is not implemented yet");
    ExitCode::FAILURE
}
