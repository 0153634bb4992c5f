//! `konductor`: the control-plane binary. Thin glue: parse arguments, call a library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Konductor control plane: Kubernetes-native barriers for Jobs and Pods.
#[derive(Parser)]
#[command(name = "konductor", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Barrier and Arrival CustomResourceDefinitions as YAML.
    ///
    /// Apply them to a cluster with `konductor crd | kubectl apply -f -`.
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Run the embedded control plane (not implemented yet).
    Server,
    /// Run the barrier controller against a cluster (not implemented yet).
    Operator,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { write: None } => {
            print!("{}", konductor_api::crd::crds_yaml());
            Ok(())
        }
        Command::Crd { write: Some(dir) } => write_crds(&dir),
        Command::Server => not_yet("server"),
        Command::Operator => not_yet("operator"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("konductor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, yaml) in konductor_api::crd::crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn not_yet(what: &str) -> anyhow::Result<()> {
    anyhow::bail!("`konductor {what}` is not implemented yet")
}
