//! `konductor`: the control-plane binary. Thin glue: parse arguments, set up logging,
//! call a library, map the result to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Konductor control plane: Kubernetes-native barriers for Jobs and Pods.
#[derive(Parser)]
#[command(name = "konductor", version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,

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
    /// Run the embedded control plane: a Kubernetes API server for barriers and
    /// arrivals, stored in SQLite, with no cluster needed.
    ///
    /// It serves HTTPS with a self-signed CA, writes DIR/kubeconfig (server URL, CA,
    /// bearer token, namespace `default`; mode 0600) and prints the
    /// `export KUBECONFIG=...` line that points kubectl, koncli and any kube client at
    /// it. A second server on the same DIR refuses to start. Stop it with Ctrl-C or
    /// SIGTERM.
    #[command(long_about)]
    Server {
        /// Directory for the database, token, certificates and kubeconfig.
        #[arg(long, value_name = "DIR", default_value = konductor_server::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Address to listen on. Port 0 picks a free port (the chosen address is printed
        /// and written to the kubeconfig). Addresses other than loopback require --tls.
        #[arg(long, value_name = "HOST:PORT", default_value = konductor_server::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Serve HTTPS (the default on loopback); required to listen on any other address.
        #[arg(long, conflicts_with = "insecure_http")]
        tls: bool,
        /// Serve plain HTTP on loopback. kubectl will not authenticate over plain HTTP
        /// (it never sends tokens without TLS); kube-rs clients such as koncli will.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Run the barrier controller against a cluster (not implemented yet).
    Operator,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let result = match cli.command {
        Command::Crd { write: None } => {
            print!("{}", konductor_api::crd::crds_yaml());
            Ok(())
        }
        Command::Crd { write: Some(dir) } => write_crds(&dir),
        Command::Server {
            data_dir,
            listen,
            tls,
            insecure_http,
        } => {
            if !listen.ip().is_loopback() && !tls {
                Err(konductor_server::ServerError::InsecureListen(listen).into())
            } else {
                serve(konductor_server::Config {
                    data_dir,
                    listen,
                    tls: !insecure_http,
                    ..konductor_server::Config::default()
                })
            }
        }
        Command::Operator => Err(anyhow::anyhow!(
            "`konductor operator` is not implemented yet"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("konductor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(config: konductor_server::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(konductor_server::run(config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
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
