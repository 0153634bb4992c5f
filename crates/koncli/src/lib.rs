//! `koncli`: the command-line client for barriers, locks, Onces and WaitGroups, built on
//! `konductor-sdk`.
//!
//! # Layout
//! - [`cli`]: the top-level command line (global flags, parsing and checks).
//! - [`args`]: what every kind's arguments share (output formats, checks of names,
//!   holders, messages, durations).
//! - [`exit`]: the exit codes (and their table for `--help`), and the name koncli goes
//!   by in messages.
//! - [`barrier`]: the `barrier` subcommands, one function each, and a wait's progress.
//! - [`output`]: the human summary, tables, JSON and YAML.
//! - [`holder`]: who a command acts as (stable for barriers, unique for locks).
//! - [`locks`]: the `semaphore`, `mutex` and `rwmutex` subcommands and verbs.
//! - [`once`]: the `once` subcommands.
//! - [`ratelimit`]: the `ratelimit` subcommands (lock verbs, and `take`).
//! - [`hold`]: every `run` of the lock family: `KIND run NAME` and `run --hold`
//!   (several locks around one command).
//! - [`run`](mod@run): the supervision every `… run` shares (a lock's, a Once's, a
//!   member's): the command never outlives its claim or koncli.
//! - [`waitgroup`]: the `waitgroup` subcommands.
//! - [`gate`]: the `gate` subcommands and `wait`.
//! - [`signals`]: SIGINT/SIGTERM while waiting (the claim is withdrawn).
//! - [`dashboard`]: `koncli dashboard`, the live page in a browser.
//! - this file: **the list of commands** ([`Command`], one per kind) and [`run()`],
//!   which dispatches a command line to its kind and maps errors to exit codes.

pub mod args;
pub mod barrier;
pub mod cli;
pub mod dashboard;
pub mod exit;
pub mod gate;
pub mod hold;
pub mod holder;
pub mod locks;
pub mod once;
pub mod output;
pub mod ratelimit;
pub mod reference;
pub mod run;
pub mod signals;
pub mod waitgroup;

use std::io::Write;

use clap::CommandFactory;
use clap::Subcommand;
use cli::Cli;
use konductor_api::locks::LockKind;
use konductor_sdk::{ConnectOptions, Error, connect};

pub use exit::*;

/// **The list of commands**, one per kind (and the few that are no kind's): what
/// `koncli` does, dispatched by [`run()`].
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Work with barriers.
    #[command(subcommand)]
    Barrier(crate::barrier::BarrierCommand),
    /// Limit how many holders run at once (Semaphore).
    #[command(subcommand)]
    Semaphore(crate::locks::SemaphoreCommand),
    /// Let one holder run at a time (Mutex).
    #[command(subcommand)]
    Mutex(crate::locks::MutexCommand),
    /// Let many readers or one writer run (RWMutex).
    #[command(subcommand)]
    Rwmutex(crate::locks::RwmutexCommand),
    /// Let at most N start in any window (RateLimit).
    #[command(subcommand)]
    Ratelimit(crate::ratelimit::RateLimitCommand),
    /// Run a piece of work once per key across replicas (Once).
    #[command(subcommand)]
    Once(crate::once::OnceCommand),
    /// Wait for a dynamic set of named members to finish (WaitGroup).
    #[command(subcommand, visible_alias = "wg")]
    Waitgroup(crate::waitgroup::WaitGroupCommand),
    /// Wait until conditions on other resources hold, as a Gate object (Gate).
    #[command(subcommand)]
    Gate(crate::gate::GateCommand),
    /// Run a command while holding several locks (--hold, repeated), taken in one
    /// global order so that two such runs never deadlock.
    Run(crate::hold::HoldArgs),
    /// Wait until conditions on resources hold, with no Gate object: several
    /// resources, --any for OR, --fail-on to stop at the first failure, objects not
    /// created yet waited for. Exit 0 when met, 4 when failed, 5 when --timeout passes.
    Wait(crate::gate::WaitForArgs),
    /// Serve a live, read-only page of every kind in the namespace (or -A) — who
    /// holds, who waits, what blocks what — on loopback, with your credentials.
    Dashboard(crate::dashboard::DashboardArgs),
    /// Print a shell completion script, e.g. `koncli completion bash > /etc/bash_completion.d/koncli`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs a parsed command line and returns the process exit code (one of the `EXIT_`
/// constants).
pub async fn run(cli: Cli) -> u8 {
    let options = ConnectOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        namespace: cli.namespace.clone(),
    };
    // `run` and the lock verbs withdraw their claims on a signal themselves; every
    // other command, interrupted, says so and exits as a shell reports the signal.
    let own_signals = matches!(
        &cli.command,
        Command::Semaphore(_)
            | Command::Mutex(_)
            | Command::Rwmutex(_)
            | Command::Run(_)
            | Command::Ratelimit(_)
            | Command::Once(once::OnceCommand::Run(_))
            | Command::Waitgroup(waitgroup::WaitGroupCommand::Run(_))
    );
    let mut interrupts = (!own_signals).then(signals::Interrupts::new);
    let work = dispatch(cli.command, &options);
    let result = match &mut interrupts {
        None => work.await,
        Some(interrupts) => tokio::select! {
            result = work => result,
            () = interrupts.first() => {
                eprintln!("{}: interrupted", program_name());
                return interrupts.exit_code();
            }
        },
    };
    match result {
        Ok(code) => code,
        // Every failing exit prints one line saying why.
        Err(error) => {
            eprintln!("{}: {error}", program_name());
            match error {
                Error::WaitTimeout { .. }
                | Error::NotCreated { .. }
                | Error::StillWaiting { .. }
                | Error::ConditionsNotMet { .. } => EXIT_WAIT_TIMEOUT,
                Error::Usage { .. } => EXIT_USAGE,
                _ => EXIT_ERROR,
            }
        }
    }
}

/// Runs one command, its kind's way.
async fn dispatch(command: Command, options: &ConnectOptions) -> konductor_sdk::Result<u8> {
    let options = options.clone();
    match command {
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "koncli", &mut script);
            let _ = std::io::stdout().write_all(&script);
            Ok(EXIT_OK)
        }
        Command::Barrier(command) => match connect(&options).await {
            Ok(connection) => barrier::command(command, &connection).await,
            Err(error) => Err(error),
        },
        Command::Semaphore(command) => lock(LockKind::Semaphore, command.into(), &options).await,
        Command::Mutex(command) => lock(LockKind::Mutex, command.into(), &options).await,
        Command::Rwmutex(command) => lock(LockKind::RWMutex, command.into(), &options).await,
        Command::Ratelimit(command) => match connect(&options).await {
            Ok(connection) => ratelimit::command(command, &connection).await,
            Err(error) => Err(error),
        },
        Command::Once(command) => match connect(&options).await {
            Ok(connection) => once::command(command, &connection).await,
            Err(error) => Err(error),
        },
        Command::Waitgroup(command) => match connect(&options).await {
            Ok(connection) => waitgroup::command(command, &connection).await,
            Err(error) => Err(error),
        },
        Command::Gate(command) => match connect(&options).await {
            Ok(connection) => gate::command(command, &connection).await,
            Err(error) => Err(error),
        },
        Command::Run(args) => match connect(&options).await {
            Ok(connection) => hold::run(args, &connection).await,
            Err(error) => Err(error),
        },
        Command::Wait(args) => match connect(&options).await {
            Ok(connection) => gate::wait_for(args, &connection).await,
            Err(error) => Err(error),
        },
        Command::Dashboard(args) => match connect(&options).await {
            Ok(connection) => dashboard::serve(args, &connection).await,
            Err(error) => Err(error),
        },
    }
}

async fn lock(
    kind: LockKind,
    request: locks::Request,
    options: &ConnectOptions,
) -> konductor_sdk::Result<u8> {
    let connection = connect(options).await?;
    match request {
        locks::Request::Run(args, mode, sizing) => {
            hold::run_one(
                kind,
                mode,
                &konductor_sdk::locks::Locks::new(&connection),
                args,
                sizing,
            )
            .await
        }
        locks::Request::Verb(verb) => locks::command(kind, verb, &connection).await,
    }
}
