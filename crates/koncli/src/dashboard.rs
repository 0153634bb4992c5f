//! `koncli dashboard`: serves the live page of `konductor-dashboard` with the user's own
//! kubeconfig — on loopback, behind a one-time token — until interrupted.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use konductor_sdk::Connection;

use crate::{EXIT_ERROR, EXIT_OK, EXIT_USAGE};

/// `koncli dashboard`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
The page is read-only: it lists and watches with your credentials, as `kubectl get -w`
would, and can change nothing. What they may not list is shown as \"not visible to
you\". The URL printed carries a one-time token, exchanged on first use for a session
cookie; keep it private. Exit 130 on Ctrl-C (143 on SIGTERM).

Examples:
  koncli dashboard                      # this namespace, http://127.0.0.1:8080
  koncli dashboard -A --open            # every namespace, opened in your browser
  koncli dashboard --listen 127.0.0.1:0 # any free port")]
pub struct DashboardArgs {
    /// Where to serve the page. Loopback only, unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS:PORT")]
    pub listen: SocketAddr,
    /// Show every namespace (else -n, or the context's namespace).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Open the URL in the default browser (xdg-open, or open on macOS).
    #[arg(long)]
    pub open: bool,
    /// Listen beyond loopback (with --listen 0.0.0.0:PORT): anyone who reaches the port
    /// with the URL reads every Konductor object your credentials can list. Needs
    /// --tls-cert and --tls-key.
    #[arg(long)]
    pub allow_remote: bool,
    /// The TLS certificate (PEM) to serve with.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A host name browsers reach the dashboard by, besides its address (repeatable);
    /// requests naming any other host are refused.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
}

/// Serves the dashboard until interrupted.
pub async fn serve(args: DashboardArgs, connection: &Connection) -> konductor_sdk::Result<u8> {
    let namespace = (!args.all_namespaces).then(|| connection.namespace.clone());
    let options = konductor_dashboard::Options {
        listen: args.listen,
        namespace: namespace.clone(),
        tls: args.tls_cert.zip(args.tls_key),
        allow_remote: args.allow_remote,
        hosts: args.hosts,
    };
    let dashboard = match konductor_dashboard::start(connection.client.clone(), options).await {
        Ok(dashboard) => dashboard,
        Err(error) => {
            eprintln!("{}: {error}", crate::program_name());
            return Ok(match error {
                konductor_dashboard::Error::Usage { .. } => EXIT_USAGE,
                konductor_dashboard::Error::Io(_) => EXIT_ERROR,
            });
        }
    };
    let scope = match &namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".to_owned(),
    };
    // Written without println!: a closed stdout (a piped reader gone) must not stop
    // the dashboard.
    let _ = writeln!(
        std::io::stdout(),
        "Konductor dashboard: {scope} of {} (reads only, with your credentials).\n\
         Open this URL (it carries a token: keep it private):\n\n    {}\n\n\
         Ctrl-C stops it.",
        connection.url,
        dashboard.url
    );
    let _ = std::io::stdout().flush();
    if args.open {
        open(&dashboard.url);
    }
    match dashboard.serve().await {
        Ok(()) => Ok(EXIT_OK),
        Err(error) => {
            eprintln!("{}: {error}", crate::program_name());
            Ok(EXIT_ERROR)
        }
    }
}

/// Opens `url` in the default browser, saying so if that fails.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = opened {
        eprintln!(
            "{}: could not open a browser ({opener}: {e}); open the URL above yourself",
            crate::program_name()
        );
    }
}
