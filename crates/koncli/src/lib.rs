//! `koncli`: the command-line client for barriers, built on `konductor-sdk`.
//!
//! # Layout
//! - [`cli`]: the clap definitions (flags, help, exit codes).
//! - [`output`]: the human summary, tables, JSON and YAML.
//! - this file: one function per command, and the mapping of outcomes to exit codes.

pub mod cli;
pub mod output;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use cli::{ArriveArgs, BarrierCommand, Cli, Command, CreateArgs, ListArgs, OutputFormat, WaitArgs};
use jiff::Timestamp;
use konductor_api::{Barrier, BarrierSpec, Outcome};
use konductor_sdk::{Arrived, Barriers, ConnectOptions, Error, Progress, WaitOutcome, connect};

/// Exit code: the barrier is open / the command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (not found, forbidden, invalid, unreachable, …).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the barrier timed out.
pub const EXIT_BARRIER_TIMEOUT: u8 = 3;
/// Exit code: the barrier failed.
pub const EXIT_BARRIER_FAILED: u8 = 4;
/// Exit code: `wait --timeout` passed first.
pub const EXIT_WAIT_TIMEOUT: u8 = 5;

/// Runs a parsed command line and returns the process exit code (one of the `EXIT_`
/// constants).
pub async fn run(cli: Cli) -> u8 {
    let options = ConnectOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        namespace: cli.namespace.clone(),
    };
    let result = match cli.command {
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "koncli", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Barrier(command) => match connect(&options).await {
            Ok(connection) => barrier(command, Barriers::new(&connection)).await,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(code) => code,
        Err(Error::WaitTimeout { .. }) => EXIT_WAIT_TIMEOUT,
        Err(error) => {
            eprintln!("koncli: {error}");
            EXIT_ERROR
        }
    }
}

async fn barrier(command: BarrierCommand, barriers: Barriers) -> konductor_sdk::Result<u8> {
    match command {
        BarrierCommand::Wait(args) => wait(&barriers, args).await,
        BarrierCommand::Arrive(args) => arrive(&barriers, args).await,
        BarrierCommand::Status(args) => {
            let barrier = barriers.get(&args.name).await?;
            match args.output.and_then(|f| output::serialized(&barrier, f)) {
                Some(text) => print!("{text}"),
                None if args.output == Some(OutputFormat::Wide) => {
                    print!(
                        "{}",
                        output::table(&[barrier], true, false, Timestamp::now())
                    );
                }
                None => print!("{}", output::summary(&barrier, Timestamp::now())),
            }
            Ok(EXIT_OK)
        }
        BarrierCommand::Create(args) => create(&barriers, args).await,
        BarrierCommand::Delete(args) => {
            barriers.delete(&args.name).await?;
            println!("barrier {}/{} deleted", barriers.namespace(), args.name);
            Ok(EXIT_OK)
        }
        BarrierCommand::List(args) => list(&barriers, args).await,
    }
}

async fn create(barriers: &Barriers, args: CreateArgs) -> konductor_sdk::Result<u8> {
    let spec = BarrierSpec {
        expected: args.expected,
        quorum: args.quorum,
        timeout: args.timeout,
    };
    let created = barriers.create(&args.name, spec).await?;
    match args.output.and_then(|f| output::serialized(&created, f)) {
        Some(text) => print!("{text}"),
        None => println!("barrier {} created", output::qualified(&created)),
    }
    Ok(EXIT_OK)
}

async fn list(barriers: &Barriers, args: ListArgs) -> konductor_sdk::Result<u8> {
    let items = if args.all_namespaces {
        barriers.list_all_namespaces().await?
    } else {
        barriers.list().await?
    };
    if let Some(text) = args.output.and_then(|f| output::serialized_list(&items, f)) {
        print!("{text}");
    } else if items.is_empty() {
        if args.all_namespaces {
            eprintln!("No barriers found.");
        } else {
            eprintln!("No barriers found in {} namespace.", barriers.namespace());
        }
    } else {
        let wide = args.output == Some(OutputFormat::Wide);
        print!(
            "{}",
            output::table(&items, wide, args.all_namespaces, Timestamp::now())
        );
    }
    Ok(EXIT_OK)
}

/// The holder: the flag, the argument, `$KONDUCTOR_HOLDER`, `$POD_NAME`, the hostname.
fn holder(args: &ArriveArgs) -> String {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    args.holder
        .clone()
        .or_else(|| args.holder_arg.clone())
        .or_else(|| from_env("KONDUCTOR_HOLDER"))
        .or_else(|| from_env("POD_NAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .or_else(|| from_env("HOSTNAME"))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

async fn arrive(barriers: &Barriers, args: ArriveArgs) -> konductor_sdk::Result<u8> {
    let holder = holder(&args);
    let qualified = format!("{}/{}", barriers.namespace(), args.name);
    if args.wait_for_barrier {
        if let Err(Error::NotFound { .. }) = barriers.get(&args.name).await {
            eprintln!("barrier {qualified} does not exist yet; waiting for it to be created");
        }
        barriers.wait_until_exists(&args.name, args.timeout).await?;
    }
    let outcome = if args.failed {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    };
    match barriers
        .arrive(&args.name, &holder, outcome, args.message.clone())
        .await?
    {
        Arrived::Recorded if args.failed => {
            println!("reported failure of {holder} at barrier {qualified}");
        }
        Arrived::Recorded => println!("{holder} arrived at barrier {qualified}"),
        Arrived::AlreadyRecorded(Outcome::Succeeded) => {
            println!("{holder} had already arrived at barrier {qualified} (counted once)");
        }
        Arrived::AlreadyRecorded(Outcome::Failed) => {
            println!("{holder} had already reported failure at barrier {qualified}");
        }
    }
    Ok(EXIT_OK)
}

/// Shows progress while waiting: a live line on a terminal, plain lines otherwise.
struct Reporter {
    name: String,
    bar: Option<indicatif::ProgressBar>,
    last_line: String,
    started: Instant,
    /// The latest state, redrawn by the ticker.
    latest: Option<Barrier>,
    /// Whether the barrier was reported missing.
    missing: bool,
}

impl Reporter {
    fn new(name: String, live: bool) -> Self {
        let bar = live.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            name,
            bar,
            last_line: String::new(),
            started: Instant::now(),
            latest: None,
            missing: false,
        }
    }

    fn line(&self) -> String {
        let elapsed = output::short_duration(self.started.elapsed());
        match &self.latest {
            None => format!(
                "waiting for barrier {} to be created ({elapsed} elapsed)",
                self.name
            ),
            Some(b) => {
                let left = output::time_left(b, Timestamp::now())
                    .map(|l| format!(", {} left", output::short_duration(l)))
                    .unwrap_or_default();
                format!(
                    "waiting for barrier {}: {} ({elapsed} elapsed{left})",
                    self.name,
                    output::counts(b)
                )
            }
        }
    }

    fn report(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Missing => {
                self.latest = None;
                self.missing = true;
                let line = format!(
                    "barrier {} does not exist yet; waiting for it to be created",
                    self.name
                );
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
                match &self.bar {
                    Some(bar) => bar.set_message(self.line()),
                    None => {
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
                }
            }
        }
    }

    fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.line());
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn wait(barriers: &Barriers, args: WaitArgs) -> konductor_sdk::Result<u8> {
    let qualified = format!("{}/{}", barriers.namespace(), args.name);
    let live = !args.quiet && std::io::stderr().is_terminal();
    let reporter = std::cell::RefCell::new(Reporter::new(qualified.clone(), live));
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
    let elapsed = output::short_duration(reporter.borrow().started.elapsed());
    let mut stdout = std::io::stdout();
    match result {
        Ok(WaitOutcome::Open(b)) => {
            let _ = writeln!(
                stdout,
                "barrier {qualified} is open: {} after {elapsed}",
                output::counts(&b)
            );
            Ok(EXIT_OK)
        }
        Ok(WaitOutcome::TimedOut(b)) => {
            eprintln!(
                "koncli: barrier {qualified} timed out: {}",
                condition_message(&b)
            );
            Ok(EXIT_BARRIER_TIMEOUT)
        }
        Ok(WaitOutcome::Failed(b)) => {
            eprintln!(
                "koncli: barrier {qualified} failed: {}",
                failure_message(&b)
            );
            Ok(EXIT_BARRIER_FAILED)
        }
        Err(error @ Error::WaitTimeout { .. }) => {
            eprintln!("koncli: {error}");
            Err(error)
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
