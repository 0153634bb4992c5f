//! `koncli ratelimit …`: at most N grants in any window. A RateLimit is a member of
//! the lock family, so its verbs are the lock verbs of [`crate::locks`] — `run` holds
//! a grant around a command, `status`, `create`, `delete`, `list` — plus `take`, which
//! takes one slot of the window and prints its fencing token (nothing is held after).

use clap::{Args, Subcommand};
use konductor_api::locks::{LockKind, PermitMode};
use konductor_sdk::locks::Locks;
use konductor_sdk::{Connection, Error};

use crate::args::{NameArgs, StatusArgs, parse_holder, parse_name};
use crate::exit::{EXIT_CODES, EXIT_OK};
use crate::locks::{
    FirstUse, FirstUseArgs, LockCreateArgs, Outcome, RUN_HELP, RateArgs, RunArgs, Sizing, TakeWait,
    Verb, acquire_first_use, refused,
};
use crate::signals::Interrupts;

/// `ratelimit` commands.
#[derive(Subcommand, Debug)]
pub enum RateLimitCommand {
    /// Run a command with one grant of the rate limit, held while it runs (see
    /// `run --help`): at most --limit such grants start in any --window.
    #[command(after_help = RUN_HELP)]
    Run(RateRunArgs),
    /// Take one slot of the window and print its fencing token: the grant is counted
    /// and given back at once (nothing is held). Busy (no slot now) exits 6; --wait
    /// waits for the next slot.
    #[command(after_help = EXIT_CODES)]
    Take(TakeArgs),
    /// Show the rate limit: used in the window, next slot, holders, waiting.
    Status(StatusArgs),
    /// Create a rate limit.
    Create(RateCreateArgs),
    /// Delete the rate limit (its claims go with it).
    Delete(NameArgs),
    /// List rate limits.
    List(crate::args::ListArgs),
}

/// `ratelimit run`.
#[derive(Args, Debug)]
pub struct RateRunArgs {
    /// The rate limit's size, if it is created on first use.
    #[command(flatten)]
    pub rate: RateArgs,
    /// What to run, and how.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `ratelimit take`.
#[derive(Args, Debug)]
pub struct TakeArgs {
    /// The rate limit's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Who takes the slot [default: a new identity: $POD_NAME or the hostname, with a
    /// random suffix].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Whether to wait for a slot when the window is full (else exit 6), how long, and
    /// in what order.
    #[command(flatten)]
    pub waiting: TakeWait,
    /// The rate limit's size, if it is created on first use.
    #[command(flatten)]
    pub rate: RateArgs,
    /// Creating it on first use.
    #[command(flatten)]
    pub first_use: FirstUseArgs,
}

/// `ratelimit create`.
#[derive(Args, Debug)]
pub struct RateCreateArgs {
    /// Its size.
    #[command(flatten)]
    pub rate: RateArgs,
    /// Its name and ttl, as for the locks.
    #[command(flatten)]
    pub lock: LockCreateArgs,
}

/// Runs one `ratelimit` command.
pub async fn command(command: RateLimitCommand, connection: &Connection) -> Outcome {
    let kind = LockKind::RateLimit;
    let sized = |rate: RateArgs| Sizing {
        permits: None,
        rate: rate.given(),
    };
    match command {
        RateLimitCommand::Run(args) => {
            let locks = Locks::new(connection);
            crate::hold::run_one(
                kind,
                PermitMode::Exclusive,
                &locks,
                args.run,
                sized(args.rate),
            )
            .await
        }
        RateLimitCommand::Take(args) => take(&Locks::new(connection), args).await,
        RateLimitCommand::Status(args) => {
            crate::locks::command(kind, Verb::Status(args), connection).await
        }
        RateLimitCommand::Create(args) => {
            if args.rate.limit.is_none() {
                eprintln!(
                    "{}: ratelimit create needs --limit N and --window D (see --help)",
                    crate::exit::program_name()
                );
                return Ok(crate::exit::EXIT_USAGE);
            }
            let verb = Verb::Create(args.lock, sized(args.rate));
            crate::locks::command(kind, verb, connection).await
        }
        RateLimitCommand::Delete(args) => {
            crate::locks::command(kind, Verb::Delete(args.name), connection).await
        }
        RateLimitCommand::List(args) => {
            crate::locks::command(kind, Verb::List(args), connection).await
        }
    }
}

/// `ratelimit take`: one grant, counted in the window, given back at once.
async fn take(locks: &Locks, args: TakeArgs) -> Outcome {
    let holder = crate::holder::run_identity(args.holder);
    let claim = crate::locks::claim(
        LockKind::RateLimit,
        PermitMode::Exclusive,
        &args.name,
        &holder,
        args.waiting.priority,
    );
    let wait = args.waiting.wait();
    let first_use = FirstUse::of(
        &args.first_use,
        Sizing {
            permits: None,
            rate: args.rate.given(),
        },
    );
    let mut interrupts = Interrupts::new();
    let taken = acquire_first_use(
        locks,
        &claim,
        wait,
        args.waiting.wait,
        &mut interrupts,
        &first_use,
    )
    .await;
    match taken {
        Ok(guard) => {
            let token = guard.token();
            // The grant's time is in the window's record; holding it longer would only
            // count against maxConcurrent.
            guard.release().await?;
            println!("{token}");
            Ok(EXIT_OK)
        }
        Err(Error::LockCancelled { .. }) => Ok(interrupts.withdrawn()),
        Err(error) => refused(error),
    }
}
