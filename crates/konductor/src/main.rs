//! `konductor`: the control-plane binary. Thin glue: parse arguments, set up logging,
//! call a library, map the result to an exit code.

mod embedded;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use konductor_controller::gate::watches::{GateKinds, parse_gate_kind};
use konductor_controller::kinds::Settings;
use konductor_controller::leader::LeaseConfig;
use konductor_controller::operator::{self, OperatorConfig};
use konductor_server::http::limits::Limits;

/// Konductor control plane: Kubernetes-native coordination for Jobs and Pods —
/// barriers, and locks (Semaphore, Mutex, RWMutex).
#[derive(Parser)]
#[command(name = "konductor", version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of human-readable text (level from RUST_LOG, default info).
    #[arg(long, global = true)]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (Barrier, Arrival, Semaphore, Mutex, RWMutex,
    /// Once, Permit, WaitGroup, WaitGroupMember, Gate) as YAML.
    ///
    /// For a cluster: `konductor crd | kubectl apply -f -` (or `kubectl apply -k
    /// config/`). `konductor server` serves these kinds already; nothing to apply there.
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Copy the embedded server's database to a new file, consistently, while the server
    /// runs (or not).
    ///
    /// One read transaction (SQLite's VACUUM INTO), so the copy is the state after some
    /// committed write, never half of one. To restore: stop the server, replace
    /// DIR/konductor.db with the copy (delete konductor.db-wal and konductor.db-shm),
    /// start it. The token, certificates and kubeconfig stay in DIR.
    Backup {
        /// The server's data directory.
        #[arg(long, value_name = "DIR", default_value = ".konductor")]
        data_dir: PathBuf,
        /// The file to write (must not exist; written with mode 0600).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Run the embedded control plane: a Kubernetes API server for Konductor's kinds
    /// (barriers and arrivals; semaphores, mutexes, rwmutexes, onces and their
    /// permits; waitgroups and their members; gates), stored in SQLite, with the
    /// controller of every kind inside — and any CRD applied to it, Jobs, Deployments
    /// and ConfigMaps. No cluster needed.
    ///
    /// It serves HTTPS with a self-signed CA, writes DIR/kubeconfig (server URL, CA,
    /// bearer token, namespace `default`; mode 0600) and prints the
    /// `export KUBECONFIG=...` line that points kubectl, koncli and any kube client at
    /// it. A second server on the same DIR refuses to start. Stop it with Ctrl-C or
    /// SIGTERM.
    Server(ServerArgs),
    /// Run the controllers of every kind against a cluster (in-cluster config or
    /// kubeconfig), with leader election so only one replica acts at a time.
    ///
    /// Serves /healthz, /readyz and Prometheus /metrics on --probe-address.
    Operator(OperatorArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// Directory for the database, token, certificates and kubeconfig.
    #[arg(long, value_name = "DIR", default_value = konductor_server::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address to listen on: an IP address or a host name (`localhost:6443`) with a
    /// port. Port 0 picks a free port (the chosen address is printed and written to the
    /// kubeconfig). Addresses other than loopback require --expose.
    #[arg(long, value_name = "HOST:PORT", default_value = konductor_server::DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// Allow a --listen address other than loopback, exposing the API to the network
    /// (always over HTTPS with the bearer token; refused with --insecure-http).
    #[arg(long, alias = "tls", conflicts_with = "insecure_http")]
    expose: bool,
    /// Serve plain HTTP on loopback. kubectl will not authenticate over plain HTTP (it
    /// never sends tokens without TLS); kube-rs clients such as koncli will.
    #[arg(long)]
    insecure_http: bool,
    /// Do not run the controllers inside the server (barriers then never change phase
    /// and locks are never granted unless another controller runs against it).
    #[arg(long)]
    no_controller: bool,
    /// Kinds Gates may resume besides Jobs, JobSets and Argo Workflows, as
    /// `resource.group` (`pipelines.ci.example.com`), comma-separated or repeated: only
    /// kinds whose boolean `spec.suspend` means "create nothing yet".
    #[arg(long, value_name = "RESOURCE.GROUP", value_delimiter = ',', value_parser = parse_gate_kind)]
    resume_kinds: Vec<String>,
    /// Read-only requests served at once; more are answered 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_requests_inflight, value_parser = parse_count)]
    max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) served at once; more are
    /// answered 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_mutating_requests_inflight, value_parser = parse_count)]
    max_mutating_requests_inflight: usize,
    /// The longest a request other than a watch may take; slower ones are answered 504.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    request_timeout: Duration,
    /// Watches open at once from all clients; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_watches, value_parser = parse_count)]
    max_watches: usize,
    /// Watches open at once from one client address; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_watches_per_client, value_parser = parse_count)]
    max_watches_per_client: usize,
}

#[derive(Args)]
struct OperatorArgs {
    /// Kubeconfig to use; without it, the in-cluster config or $KUBECONFIG / ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "konductor-operator")]
    lease_name: String,
    /// Namespace of the Lease [default: $POD_NAMESPACE, else the context's namespace].
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long the lease is valid without renewal; a standby takes over about this long
    /// after the leader dies.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// This replica's identity in the lease [default: $POD_NAME, else hostname plus a
    /// random suffix].
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Where to serve /healthz, /readyz and /metrics [default: 0.0.0.0:8080 in a pod,
    /// where the kubelet and Prometheus reach it; 127.0.0.1:8080 elsewhere].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
    probe_address: Option<SocketAddr>,
    /// Kinds Gates may name besides the presets' (Jobs, Deployments, Konductor's own),
    /// as `resource.group` (`databases.acme.example.com`; `configmaps` for the core
    /// group), comma-separated or repeated. The operator reads only these (grant them
    /// in its ClusterRole too).
    #[arg(long, value_name = "RESOURCE.GROUP", value_delimiter = ',', value_parser = parse_gate_kind)]
    gate_kinds: Vec<String>,
    /// Kinds Gates may resume besides Jobs, JobSets and Argo Workflows, as
    /// `resource.group` (`pipelines.ci.example.com`), comma-separated or repeated: only
    /// kinds whose boolean `spec.suspend` means "create nothing yet". The operator reads
    /// and patches these (grant get, list, watch and patch in its ClusterRole too).
    #[arg(long, value_name = "RESOURCE.GROUP", value_delimiter = ',', value_parser = parse_gate_kind)]
    resume_kinds: Vec<String>,
}

/// `HOST:PORT` with HOST an IP address or a name; a name is resolved, preferring a
/// loopback address among those it has.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("{text:?} is not HOST:PORT with a host that resolves: {e}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.ip().is_loopback())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    konductor_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// A whole number of at least 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A Go duration longer than zero.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be longer than 0s".to_owned()),
        duration => Ok(duration),
    }
}

/// mimalloc: the server allocates and frees many small JSON values per request; glibc's
/// allocator spent a fifth of the server's CPU on them (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let result = match cli.command {
        Command::Crd { write: None } => {
            print!("{}", konductor_api::crd::crds_yaml());
            Ok(())
        }
        Command::Crd { write: Some(dir) } => write_crds(&dir),
        Command::Backup { data_dir, to } => backup(&data_dir, &to),
        Command::Server(args) => run_async(server(args)),
        Command::Operator(args) => run_async(run_operator(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("konductor: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// `konductor backup`: a consistent copy of the data dir's database.
fn backup(data_dir: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let database = data_dir.join("konductor.db");
    if !database.is_file() {
        anyhow::bail!(
            "{} not found: is {} a konductor server data dir (--data-dir)?",
            database.display(),
            data_dir.display()
        );
    }
    konductor_server::store::backup(&database, to)
        .with_context(|| format!("backing up {} to {}", database.display(), to.display()))?;
    eprintln!("backed up {} to {}", database.display(), to.display());
    Ok(())
}

/// An error and its causes in one line, each cause said once (errors often repeat
/// their source's text in their own message).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`). Colours only on a
/// terminal, and never with `NO_COLOR` set.
fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run_async(future: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(future)
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    if !args.listen.ip().is_loopback() && !args.expose {
        return Err(konductor_server::ServerError::InsecureListen(args.listen).into());
    }
    if args.insecure_http {
        tracing::warn!(
            "--insecure-http: kubectl will not work against this server (it never sends a token over plain HTTP); kube-rs clients such as koncli will"
        );
    }
    let config = konductor_server::Config {
        data_dir: args.data_dir,
        listen: args.listen,
        tls: !args.insecure_http,
        limits: Limits {
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
            request_timeout: args.request_timeout,
            max_watches: args.max_watches,
            max_watches_per_client: args.max_watches_per_client,
        },
        ..konductor_server::Config::default()
    };
    // The server's controller may read every kind the server serves.
    let gate_kinds = GateKinds::any(&args.resume_kinds).map_err(anyhow::Error::msg)?;
    let controller = (!args.no_controller).then_some(Settings { gate_kinds });
    embedded::run(config, controller, shutdown).await
}

async fn run_operator(args: OperatorArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    let namespace = args
        .lease_namespace
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    let identity = args.identity.unwrap_or_else(default_identity);
    let lease = LeaseConfig {
        name: args.lease_name,
        namespace,
        identity,
        lease_duration: args.lease_duration,
        renew_period: (args.lease_duration / 3).max(Duration::from_millis(100)),
    };
    tracing::info!(identity = %lease.identity, lease = %lease.name, namespace = %lease.namespace, "starting operator");
    operator::run(
        client,
        OperatorConfig {
            lease,
            probe_address: args.probe_address.unwrap_or_else(default_probe_address),
            settings: settings(&args.gate_kinds, &args.resume_kinds)?,
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// The operator's controllers' settings from its flags.
fn settings(gate_kinds: &[String], resume_kinds: &[String]) -> anyhow::Result<Settings> {
    Ok(Settings {
        gate_kinds: GateKinds::with(gate_kinds, resume_kinds).map_err(anyhow::Error::msg)?,
    })
}

/// All interfaces in a pod (`KUBERNETES_SERVICE_HOST` is set there), loopback on a
/// laptop.
fn default_probe_address() -> SocketAddr {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        SocketAddr::from(([0, 0, 0, 0], 8080))
    } else {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
}

/// The hostname plus a random suffix, so two replicas on one host differ.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "konductor".to_owned());
    let mut bytes = [0u8; 3];
    let _ = getrandom::fill(&mut bytes);
    format!(
        "{host}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed at once (not when the
/// future is first polled), so a signal that comes during start-up still shuts down
/// gracefully (an operator releases its lease) instead of killing the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, yaml) in konductor_api::crd::config_crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_committed_konductor_reference_is_generated_from_clap() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/reference/konductor.md");
        let generated = koncli::reference::cli_markdown(super::Cli::command());
        for needle in [
            "### `konductor server`",
            "`--data-dir <DIR>`",
            "### `konductor operator`",
        ] {
            assert!(generated.contains(needle), "{needle} missing");
        }
        koncli::reference::check_committed(&path, &generated).unwrap();
    }
}
