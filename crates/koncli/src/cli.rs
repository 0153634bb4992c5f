//! The command line: every flag and argument, documented for `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit codes, shown in `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit codes (every non-zero exit prints one line on stderr saying why):
  0  success; `wait`: the barrier is Open; `arrive`: the arrival (or failure) is
     recorded, or was already recorded as asked
  1  error: barrier not found, forbidden, invalid, credentials refused, server
     unreachable at the start, ...; `arrive --failed` for a holder that already
     arrived (its arrival stands)
  2  usage error: unknown flag, missing or invalid argument
  3  `wait`: the barrier timed out (phase Timeout)
  4  `wait`: the barrier failed (phase Failed: failures made it unreachable, or its spec is invalid)
  5  `wait`, `arrive --wait-for-barrier`, lock commands: --timeout passed first
  6  `lock`/`acquire`/`rlock` without --wait: the lock is held by others (busy)
  7  `run`: the grant was lost (renewals unacknowledged, expired, or its claim
     deleted); the command was stopped
  126/127  `run`: the command is not executable / not found (nothing was acquired)
  130/143  a lock command interrupted by SIGINT/SIGTERM while waiting (the claim
     was withdrawn)
  `run` otherwise exits with the command's own code (128+N if a signal N ended it)";

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

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Work with barriers.
    #[command(subcommand)]
    Barrier(BarrierCommand),
    /// Limit how many holders run at once (Semaphore).
    #[command(subcommand)]
    Semaphore(SemaphoreCommand),
    /// Let one holder run at a time (Mutex).
    #[command(subcommand)]
    Mutex(MutexCommand),
    /// Let many readers or one writer run (RWMutex).
    #[command(subcommand)]
    Rwmutex(RwmutexCommand),
    /// Print a shell completion script, e.g. `koncli completion bash > /etc/bash_completion.d/koncli`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Started by `run` between itself and the command (not for direct use).
    #[command(name = "__supervise", hide = true)]
    Supervise(SuperviseArgs),
}

/// `semaphore` commands. `acquire`/`release` are also spelled `lock`/`unlock`.
#[derive(Subcommand, Debug)]
pub enum SemaphoreCommand {
    /// Take one of the semaphore's permits and print the fencing token; the grant stays
    /// after koncli exits, until `release` or until it expires a ttl later (nothing
    /// renews it: to hold it around a command, use `run`). Needs an identity (--holder
    /// or $KONDUCTOR_HOLDER), the same for `release`.
    #[command(visible_alias = "lock", after_help = EXIT_CODES)]
    Acquire(AcquireArgs),
    /// Give the permit back (delete this holder's claim, granted or queued).
    #[command(visible_alias = "unlock")]
    Release(ReleaseArgs),
    /// Run a command while holding one of the semaphore's permits (see `run --help`).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Show the semaphore: phase, holders, waiting, last fencing token.
    Status(LockStatusArgs),
    /// Create a semaphore.
    Create(SemaphoreCreateArgs),
    /// Delete the semaphore (its claims go with it).
    Delete(LockNameArgs),
    /// List semaphores.
    List(LockListArgs),
}

/// `mutex` commands. `lock`/`unlock` are also spelled `acquire`/`release`.
#[derive(Subcommand, Debug)]
pub enum MutexCommand {
    /// Take the mutex and print the fencing token; the grant stays after koncli exits,
    /// until `unlock` or until it expires a ttl later (nothing renews it: to hold it
    /// around a command, use `run`). Needs an identity (--holder or
    /// $KONDUCTOR_HOLDER), the same for `unlock`.
    #[command(visible_alias = "acquire", after_help = EXIT_CODES)]
    Lock(AcquireArgs),
    /// Give the mutex back (delete this holder's claim, granted or queued).
    #[command(visible_alias = "release")]
    Unlock(ReleaseArgs),
    /// Run a command while holding the mutex (see `run --help`).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Show the mutex: phase, holder, waiting, last fencing token.
    Status(LockStatusArgs),
    /// Create a mutex.
    Create(LockCreateArgs),
    /// Delete the mutex (its claims go with it).
    Delete(LockNameArgs),
    /// List mutexes.
    List(LockListArgs),
}

/// `rwmutex` commands: `lock`/`unlock` for the write side (also spelled
/// `acquire`/`release`), `rlock`/`runlock` for the read side.
#[derive(Subcommand, Debug)]
pub enum RwmutexCommand {
    /// Take the write side (alone) and print the fencing token; the grant stays after
    /// koncli exits, until `unlock` or until it expires a ttl later. Needs an identity
    /// (--holder or $KONDUCTOR_HOLDER), the same for `unlock`.
    #[command(visible_alias = "acquire", after_help = EXIT_CODES)]
    Lock(AcquireArgs),
    /// Take the read side (beside other readers) and print the fencing token.
    #[command(after_help = EXIT_CODES)]
    Rlock(AcquireArgs),
    /// Give the write side back.
    #[command(visible_alias = "release")]
    Unlock(ReleaseArgs),
    /// Give the read side back.
    Runlock(ReleaseArgs),
    /// Run a command while holding the read (--read) or write side (see `run --help`).
    #[command(after_help = RUN_HELP)]
    Run(RwRunArgs),
    /// Show the rwmutex: phase, writer or readers, waiting, last fencing token.
    Status(LockStatusArgs),
    /// Create an rwmutex.
    Create(LockCreateArgs),
    /// Delete the rwmutex (its claims go with it).
    Delete(LockNameArgs),
    /// List rwmutexes.
    List(LockListArgs),
}

/// What `run` does, for its `--help`.
pub const RUN_HELP: &str = "\
run acquires the lock (waiting; --timeout gives up, exit 5), then runs the command
with $KONDUCTOR_FENCING_TOKEN in its environment, in a process group of its own, and
renews the claim six times per ttl while it runs. SIGINT and SIGTERM are forwarded to
the command; when it exits, anything it left running in its group is stopped and the
lock released, and koncli exits with the command's code (128+N if signal N ended it).

The command never outlives its grant: if renewals go unacknowledged until a fifth of
the ttl is left before the grant could expire (a partition, a server down), or the
grant expires or its claim is deleted, the command's process group gets SIGTERM, then
SIGKILL a tenth of the ttl later, and koncli exits 7. It never outlives koncli either:
if koncli is killed (even with SIGKILL), the command is stopped the same way.
Pass $KONDUCTOR_FENCING_TOKEN to what the lock protects, for what time cannot cover
(a paused process). Each run is a holder of its own (--holder to name it).

Exit codes: the command's own; 5 --timeout passed before the grant; 7 the grant was
lost; 126/127 the command cannot be run (nothing was acquired); 130/143 interrupted
while waiting (the claim was withdrawn); 1 an error (lock not found, ...).";

/// `list` of locks.
#[derive(Args, Debug)]
pub struct LockListArgs {
    /// List them in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Print the list in this format [default: a table].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// `lock`, `acquire`, `rlock`.
#[derive(Args, Debug)]
pub struct AcquireArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
    /// Who takes it [default: $KONDUCTOR_HOLDER; one of the two is required: two
    /// scripts on one host, or two containers in one pod, must not share a grant by
    /// accident].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Wait for the grant instead of failing (exit 6) when the lock is busy.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, wait at most this long (a Go duration; 0s takes a free lock and
    /// gives up on a busy one), then exit 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait")]
    pub timeout: Option<Duration>,
    /// Higher is granted first (FIFO among equals; may be negative).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
}

/// `unlock`, `release`, `runlock`.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
    /// Whose claim [default: $KONDUCTOR_HOLDER; one of the two is required].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
}

/// `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
    /// Who holds it [default: a new identity for every run: $POD_NAME or the hostname,
    /// with a random suffix].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Give up waiting for the grant after this long (a Go duration), exiting 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Higher is granted first (FIFO among equals; may be negative).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `rwmutex run`.
#[derive(Args, Debug)]
pub struct RwRunArgs {
    /// Hold the read side (beside other readers).
    #[arg(long, conflicts_with = "write")]
    pub read: bool,
    /// Hold the write side (alone; the default).
    #[arg(long)]
    pub write: bool,
    /// What to run, and how.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `status` of a lock.
#[derive(Args, Debug)]
pub struct LockStatusArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
    /// Print the object in this format [default: a human summary].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// Lock commands that take only a name.
#[derive(Args, Debug)]
pub struct LockNameArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
}

/// `create` of a mutex or rwmutex.
#[derive(Args, Debug)]
pub struct LockCreateArgs {
    /// The lock's name.
    #[arg(value_parser = parse_lock_name)]
    pub name: String,
    /// How long a claim lives without renewal (a Go duration, at least 2s; default 5m).
    /// Holders renew six times per ttl; a holder cut off stops its command a fifth of
    /// the ttl before the grant can expire, so the ttl bounds how long a dead holder
    /// blocks the lock.
    #[arg(long, value_name = "DURATION", value_parser = parse_lock_ttl)]
    pub ttl: Option<String>,
}

/// `semaphore create`.
#[derive(Args, Debug)]
pub struct SemaphoreCreateArgs {
    /// How many may hold the semaphore at once (at least 1).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub permits: i32,
    /// The rest, as for the other locks.
    #[command(flatten)]
    pub lock: LockCreateArgs,
}

/// `__supervise` (hidden): what `run` starts between itself and the command.
#[derive(Args, Debug)]
pub struct SuperviseArgs {
    /// The process id of the `koncli … run` that started this supervisor.
    #[arg(long)]
    pub parent: i32,
    /// Between SIGTERM and SIGKILL when the parent dies, in milliseconds.
    #[arg(long)]
    pub grace_ms: u64,
    /// The process group to hand the terminal back to when the command exits.
    #[arg(long)]
    pub terminal_owner: Option<i32>,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// Barrier commands.
#[derive(Subcommand, Debug)]
pub enum BarrierCommand {
    /// Wait until a barrier opens (exit 0), times out (3) or fails (4).
    ///
    /// Watches the barrier (no polling) and returns as soon as it opens. If the barrier
    /// does not exist yet (or its namespace does not, or it is deleted meanwhile), says
    /// so once and waits for it to be created. If a working watch breaks for a transient
    /// reason (connection lost, server busy or failing), says so and reconnects with
    /// backoff; credentials refused, permission denied, or the namespace or barrier kind
    /// gone end the wait with exit 1. On a terminal, shows a live progress line; in a
    /// pipe, a plain line per change; with --quiet, only the final line.
    #[command(after_help = EXIT_CODES)]
    Wait(WaitArgs),
    /// Record that this process arrived at a barrier (or failed: --failed).
    ///
    /// The holder is --holder, else the HOLDER argument, else $KONDUCTOR_HOLDER, else
    /// $POD_NAME, else the hostname. Arriving twice with the same holder succeeds and
    /// counts once.
    Arrive(ArriveArgs),
    /// Show a barrier: phase, arrivals, failures, deadline, conditions.
    Status(StatusArgs),
    /// Create a barrier.
    Create(CreateArgs),
    /// Delete a barrier (its arrivals go with it).
    Delete(NameArgs),
    /// List barriers.
    List(ListArgs),
    /// Delete finished barriers (Open, Timeout or Failed) older than --older-than.
    ///
    /// Age counts from when a barrier finished (status.finishedAt, else its creation).
    /// Waiting barriers are never pruned. A process that arrives at or waits for a
    /// pruned barrier finds none (`wait` then waits for it to be created again).
    #[command(
        after_help = "Examples:\n  koncli barrier prune --older-than 24h --dry-run\n  koncli barrier prune --older-than 1h -A"
    )]
    Prune(PruneArgs),
}

/// `barrier prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Prune barriers finished at least this long ago (a Go duration: 30m, 24h).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub older_than: String,
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

/// `barrier wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_barrier_name)]
    pub name: String,
    /// Give up after this long (a Go duration: 30s, 15m, 1h30m), exiting with code 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// No progress: print only the final line ("… is open", or why not).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `barrier arrive`.
#[derive(Args, Debug)]
pub struct ArriveArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_barrier_name)]
    pub name: String,
    /// Who is arriving (same as --holder).
    #[arg(value_name = "HOLDER", conflicts_with = "holder", value_parser = parse_holder)]
    pub holder_arg: Option<String>,
    /// Who is arriving [default: $KONDUCTOR_HOLDER, else $POD_NAME, else the hostname].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Report that this holder failed and will not arrive, so the barrier can fail early
    /// instead of timing out. If it arrives later after all (a retried Job), the
    /// arrival replaces the failure report.
    #[arg(long)]
    pub failed: bool,
    /// Why it failed (with --failed).
    #[arg(long, requires = "failed", value_name = "TEXT", value_parser = parse_message)]
    pub message: Option<String>,
    /// If the barrier does not exist yet, wait for it instead of failing.
    #[arg(long)]
    pub wait_for_barrier: bool,
    /// With --wait-for-barrier, wait at most this long for it (a Go duration).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "wait_for_barrier")]
    pub timeout: Option<Duration>,
}

/// Output formats of `status` and `list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The full object(s) as JSON.
    Json,
    /// The full object(s) as YAML.
    Yaml,
    /// A table with more columns.
    Wide,
}

/// `barrier status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_barrier_name)]
    pub name: String,
    /// Output format [default: a human summary].
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `barrier create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The barrier's name (lower-case letters, digits, '-' and '.', at most 63 characters).
    #[arg(value_parser = parse_barrier_name)]
    pub name: String,
    /// How many processes are expected to arrive (at least 1).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub expected: i32,
    /// How many successful arrivals open the barrier [default: expected].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub quorum: Option<i32>,
    /// How long to wait for enough arrivals, from creation (a Go duration: 30s, 15m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<String>,
    /// Delete the barrier (and its arrivals) this long after it opens, times out or
    /// fails (a Go duration: 10m, 1h). Processes arriving later find no barrier.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub ttl_after_finished: Option<String>,
    /// Print the created object in this format.
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// Output formats of `create`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateFormat {
    /// The created object as JSON.
    Json,
    /// The created object as YAML.
    Yaml,
}

/// Commands that take only a name.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_barrier_name)]
    pub name: String,
}

/// `barrier list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// List barriers in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format [default: a table].
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// The longest barrier name: an Arrival's `spec.barrier` holds at most 63 characters.
const MAX_BARRIER_NAME: usize = 63;
/// The longest holder (`spec.holder` of an Arrival).
const MAX_HOLDER: usize = 253;
/// The longest failure message (`spec.message` of an Arrival).
const MAX_MESSAGE: usize = 1024;

fn parse_barrier_name(text: &str) -> Result<String, String> {
    if text.len() > MAX_BARRIER_NAME {
        return Err(format!(
            "must be at most {MAX_BARRIER_NAME} characters (it has {})",
            text.len()
        ));
    }
    if !konductor_api::names::is_dns1123_subdomain(text) {
        return Err("must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit (e.g. 'etl-stage-1')".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_lock_name(text: &str) -> Result<String, String> {
    parse_barrier_name(text)
}

fn parse_lock_ttl(text: &str) -> Result<String, String> {
    let ttl = parse_duration(text)?;
    if ttl < konductor_api::locks::MIN_TTL {
        return Err(format!(
            "must be at least {}: a holder renews six times per ttl and must stop its command before it runs out",
            konductor_api::duration::format_duration(konductor_api::locks::MIN_TTL)
        ));
    }
    Ok(text.to_owned())
}

fn parse_namespace(text: &str) -> Result<String, String> {
    if konductor_api::names::is_dns1123_label(text) {
        Ok(text.to_owned())
    } else {
        Err("must consist of lower-case letters, digits or '-', start and end with a letter or digit, and be at most 63 characters (e.g. 'batch-jobs')".to_owned())
    }
}

fn parse_holder(text: &str) -> Result<String, String> {
    match text.chars().count() {
        0 => Err("must not be empty".to_owned()),
        n if n > MAX_HOLDER => Err(format!(
            "must be at most {MAX_HOLDER} characters (it has {n})"
        )),
        _ => Ok(text.to_owned()),
    }
}

fn parse_message(text: &str) -> Result<String, String> {
    match text.chars().count() {
        n if n > MAX_MESSAGE => Err(format!(
            "must be at most {MAX_MESSAGE} characters (it has {n})"
        )),
        _ => Ok(text.to_owned()),
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
        if let Command::Barrier(BarrierCommand::Create(create)) = &self.command
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    konductor_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_timeout(text: &str) -> Result<String, String> {
    parse_duration(text).map(|_| text.to_owned())
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
