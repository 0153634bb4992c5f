//! `koncli barrier …`: the barrier subcommands and their arguments, one function per
//! command over the SDK's [`konductor_sdk::Barriers`], and the progress a wait shows.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use jiff::Timestamp;
use konductor_api::{Barrier, BarrierSpec, Outcome};
use konductor_sdk::{Barriers, Error, Progress, WaitOutcome};

use crate::args::{
    CreateFormat, NameArgs, OutputFormat, parse_duration, parse_holder, parse_message, parse_name,
    parse_timeout,
};
use crate::exit::{EXIT_CODES, EXIT_FAILED, EXIT_OK, EXIT_TIMED_OUT};
use crate::holder;
use crate::output::{self, Display, MachineFormat};

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
    Wait(crate::args::WaitArgs),
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
    List(crate::args::ListArgs),
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

/// `barrier arrive`.
#[derive(Args, Debug)]
pub struct ArriveArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_name)]
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

/// `barrier status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The barrier's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Output format [default: a human summary].
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// `barrier create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The barrier's name (lower-case letters, digits, '-' and '.', at most 63 characters).
    #[arg(value_parser = parse_name)]
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

/// Runs one barrier command.
pub async fn command(
    command: BarrierCommand,
    connection: &konductor_sdk::Connection,
) -> konductor_sdk::Result<u8> {
    let barriers = Barriers::new(connection);
    let reader = konductor_sdk::reading::Reader::new(connection);
    match command {
        BarrierCommand::Wait(args) => wait(&barriers, args).await,
        BarrierCommand::Arrive(args) => arrive(&barriers, args).await,
        BarrierCommand::Status(args) => {
            match args.output {
                Some(format @ (OutputFormat::Json | OutputFormat::Yaml)) => {
                    let raw = reader.get_raw(&kind(), &args.name).await?;
                    let format = MachineFormat::of(format).expect("json or yaml");
                    print!("{}", output::serialized(&raw, format));
                }
                Some(OutputFormat::Wide) => {
                    let listing = reader.table_of(&kind(), &args.name, true).await?;
                    let mut rows = vec![listing.header];
                    rows.extend(listing.rows);
                    print!("{}", output::aligned(&rows));
                }
                None => {
                    let barrier = barriers.get(&args.name).await?;
                    print!("{}", output::summary(&barrier, Timestamp::now()));
                }
            }
            Ok(EXIT_OK)
        }
        BarrierCommand::Create(args) => create(&barriers, &reader, args).await,
        BarrierCommand::Delete(args) => {
            barriers.delete(&args.name).await?;
            println!("barrier {}/{} deleted", barriers.namespace(), args.name);
            Ok(EXIT_OK)
        }
        BarrierCommand::List(args) => {
            output::list(&reader, &kind(), barriers.namespace(), &args).await
        }
        BarrierCommand::Prune(args) => prune(&barriers, args).await,
    }
}

async fn prune(barriers: &Barriers, args: PruneArgs) -> konductor_sdk::Result<u8> {
    let age = konductor_api::duration::parse_duration(&args.older_than)
        .expect("checked when parsing arguments");
    let pruned = barriers
        .prune(age, args.all_namespaces, args.dry_run)
        .await?;
    let verb = if args.dry_run {
        "would be deleted (dry run)"
    } else {
        "deleted"
    };
    for barrier in &pruned {
        let phase = barrier.status.as_ref().map(|s| s.phase).unwrap_or_default();
        println!("barrier {} ({phase}) {verb}", output::qualified(barrier));
    }
    if pruned.is_empty() {
        eprintln!(
            "No barriers finished more than {} ago{}.",
            args.older_than,
            if args.all_namespaces {
                String::new()
            } else {
                format!(" in {} namespace", barriers.namespace())
            }
        );
    }
    Ok(EXIT_OK)
}

async fn create(
    barriers: &Barriers,
    reader: &konductor_sdk::reading::Reader,
    args: CreateArgs,
) -> konductor_sdk::Result<u8> {
    let spec = BarrierSpec {
        expected: args.expected,
        quorum: args.quorum,
        timeout: args.timeout,
        ttl_after_finished: args.ttl_after_finished,
    };
    let created = barriers.create(&args.name, spec).await?;
    match args.output {
        Some(format) => {
            let format = MachineFormat::of_create(format);
            let raw = reader.get_raw(&kind(), &args.name).await?;
            print!("{}", output::serialized(&raw, format));
        }
        None => println!("barrier {} created", output::qualified(&created)),
    }
    Ok(EXIT_OK)
}

/// The Barrier kind, as `list` and `status -o` read it.
fn kind() -> konductor_sdk::reading::KindRef {
    konductor_sdk::reading::KindRef::of::<konductor_api::Barrier>("barrier", "barriers")
}

/// The holder: the flag, the argument, `$KONDUCTOR_HOLDER`, `$POD_NAME`, the hostname.
fn holder(args: &ArriveArgs) -> String {
    holder::barrier_holder(args.holder.clone().or_else(|| args.holder_arg.clone()))
}

async fn arrive(barriers: &Barriers, args: ArriveArgs) -> konductor_sdk::Result<u8> {
    let holder = holder(&args);
    let qualified = format!("{}/{}", barriers.namespace(), args.name);
    let barrier = if args.wait_for_barrier {
        if let Err(Error::NotFound { .. }) = barriers.get(&args.name).await {
            eprintln!("barrier {qualified} does not exist yet; waiting for it to be created");
        }
        barriers.wait_until_exists(&args.name, args.timeout).await?
    } else {
        barriers.get(&args.name).await?
    };
    let asked = if args.failed {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    };
    let arrived = barriers
        .arrive_at(&barrier, &holder, asked, args.message.clone())
        .await?;
    let (line, code) = output::arrival_line(&holder, &barrier, asked, arrived);
    match code {
        0 => println!("{line}"),
        _ => eprintln!("{}: {line}", crate::exit::program_name()),
    }
    Ok(code)
}

/// Shows progress while waiting.
struct Reporter {
    /// `namespace/name`.
    name: String,
    namespace: String,
    display: Display,
    last_line: String,
    started: Instant,
    /// When `--timeout` makes the wait give up.
    gives_up_at: Option<Instant>,
    /// The latest state, redrawn by the ticker.
    latest: Option<Barrier>,
}

impl Reporter {
    fn new(barriers: &Barriers, name: &str, display: Display, timeout: Option<Duration>) -> Self {
        let started = Instant::now();
        Self {
            name: format!("{}/{name}", barriers.namespace()),
            namespace: barriers.namespace().to_owned(),
            display,
            last_line: String::new(),
            started,
            gives_up_at: timeout.map(|t| started + t),
            latest: None,
        }
    }

    /// The live line: what has arrived, how long we waited, and both clocks — the
    /// barrier's own deadline and this command's `--timeout`.
    fn line(&self) -> String {
        let waited = output::short_duration(self.started.elapsed());
        let gives_up = self
            .gives_up_at
            .map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                format!(" · --timeout in {}", output::short_duration(left))
            })
            .unwrap_or_default();
        match &self.latest {
            None => format!(
                "waiting for barrier {} to be created · waited {waited}{gives_up}",
                self.name
            ),
            Some(b) => {
                let deadline = output::time_left(b, Timestamp::now())
                    .map(|l| format!(" · barrier deadline in {}", output::short_duration(l)))
                    .unwrap_or_default();
                format!(
                    "waiting for barrier {}: {} · waited {waited}{deadline}{gives_up}",
                    self.name,
                    output::counts(b)
                )
            }
        }
    }

    fn report(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Missing(absence) => {
                self.latest = None;
                let name = self.name.rsplit('/').next().unwrap_or_default();
                let line = output::absence_line("barrier", &self.namespace, name, absence);
                self.say(&line);
            }
            Progress::Reconnecting(why) => {
                self.say(&format!(
                    "lost the watch on barrier {} ({why}); reconnecting",
                    self.name
                ));
            }
            Progress::Waiting(barrier) => {
                self.latest = Some(barrier.clone());
                match &self.display {
                    Display::Live(bar) => bar.set_message(self.line()),
                    Display::Lines => {
                        let line = format!(
                            "waiting for barrier {}: {}",
                            self.name,
                            output::counts(barrier)
                        );
                        if line != self.last_line {
                            eprintln!("{line}");
                            self.last_line = line;
                        }
                    }
                    Display::Quiet => {}
                }
            }
        }
    }

    fn tick(&self) {
        if let Display::Live(bar) = &self.display {
            bar.set_message(self.line());
        }
    }

    fn say(&self, line: &str) {
        self.display.say(line);
    }

    fn finish(&self) {
        self.display.finish();
    }
}

async fn wait(barriers: &Barriers, args: crate::args::WaitArgs) -> konductor_sdk::Result<u8> {
    let qualified = format!("{}/{}", barriers.namespace(), args.name);
    let display = Display::for_stderr(args.quiet);
    let reporter =
        std::cell::RefCell::new(Reporter::new(barriers, &args.name, display, args.timeout));
    let waiting = barriers.wait(&args.name, args.timeout, |p| {
        reporter.borrow_mut().report(p)
    });
    tokio::pin!(waiting);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            result = &mut waiting => break result,
            _ = ticker.tick() => reporter.borrow().tick(),
        }
    };
    reporter.borrow().finish();
    let waited = output::short_duration(reporter.borrow().started.elapsed());
    let mut stdout = std::io::stdout();
    match result {
        Ok(WaitOutcome::Open(b)) => {
            let _ = writeln!(
                stdout,
                "barrier {qualified} is open: {} (waited {waited})",
                output::counts(&b)
            );
            Ok(EXIT_OK)
        }
        Ok(WaitOutcome::TimedOut(b)) => {
            eprintln!(
                "{}: barrier {qualified} timed out: {}",
                crate::exit::program_name(),
                condition_message(&b)
            );
            Ok(EXIT_TIMED_OUT)
        }
        Ok(WaitOutcome::Failed(b)) => {
            eprintln!(
                "{}: barrier {qualified} failed: {}",
                crate::exit::program_name(),
                failure_message(&b)
            );
            Ok(EXIT_FAILED)
        }
        Err(error) => Err(error),
    }
}

fn condition_message(barrier: &Barrier) -> String {
    barrier
        .status
        .as_ref()
        .and_then(|s| s.condition(konductor_api::CONDITION_OPEN))
        .map(|c| c.message.clone())
        .unwrap_or_else(|| output::counts(barrier))
}

/// Why a barrier failed: the invalid spec, or the failures.
fn failure_message(barrier: &Barrier) -> String {
    let status = barrier.status.as_ref();
    match status.and_then(|s| s.condition(konductor_api::CONDITION_READY)) {
        Some(ready) if ready.status == "False" => format!("invalid spec: {}", ready.message),
        _ => condition_message(barrier),
    }
}
