//! `koncli semaphore|mutex|rwmutex …`: the lock subcommands and their arguments, the
//! lock verbs over the SDK's [`konductor_sdk::locks`], and what every lock-family
//! `run` ([`crate::hold`]) shares with them: the claim a command makes, a lock made on
//! first use ([`FirstUse`]), `--if-busy`, progress while waiting, exit codes.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use konductor_api::locks::status::LockStatus;
use konductor_api::locks::{
    CONDITION_READY, CommonLockSpec, CommonLockStatus, LockKind, PermitMode,
};
use konductor_sdk::locks::{Claim, Locks, NO_ANSWER, Progress, Wait};
use konductor_sdk::{Connection, Error};
use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::args::{NameArgs, StatusArgs, parse_duration, parse_holder, parse_name};
use crate::exit::{EXIT_BUSY, EXIT_CODES, EXIT_ERROR, EXIT_OK, EXIT_USAGE, EXIT_WAIT_TIMEOUT};
use crate::output;

/// `semaphore` commands. `acquire`/`release` are also spelled `lock`/`unlock`.
#[derive(Subcommand, Debug)]
pub enum SemaphoreCommand {
    /// Take one of the semaphore's permits and print the fencing token; the grant stays
    /// after koncli exits, until `release` or until it expires a ttl later (nothing
    /// renews it: to hold it around a command, use `run`). Needs an identity (--holder
    /// or $KONDUCTOR_HOLDER), the same for `release`.
    #[command(visible_alias = "lock", after_help = EXIT_CODES)]
    Acquire(SemaphoreAcquireArgs),
    /// Give the permit back (delete this holder's claim, granted or queued).
    #[command(visible_alias = "unlock")]
    Release(ReleaseArgs),
    /// Run a command while holding one of the semaphore's permits (see `run --help`).
    #[command(after_help = RUN_HELP)]
    Run(SemaphoreRunArgs),
    /// Show the semaphore: phase, holders, waiting, last fencing token.
    Status(StatusArgs),
    /// Create a semaphore.
    Create(SemaphoreCreateArgs),
    /// Delete the semaphore (its claims go with it).
    Delete(NameArgs),
    /// List semaphores.
    List(crate::args::ListArgs),
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
    Status(StatusArgs),
    /// Create a mutex.
    Create(LockCreateArgs),
    /// Delete the mutex (its claims go with it).
    Delete(NameArgs),
    /// List mutexes.
    List(crate::args::ListArgs),
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
    Status(StatusArgs),
    /// Create an rwmutex.
    Create(LockCreateArgs),
    /// Delete the rwmutex (its claims go with it).
    Delete(NameArgs),
    /// List rwmutexes.
    List(crate::args::ListArgs),
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

A lock that does not exist is created on first use (\"created mutex NS/NAME (first
use)\" on stderr, so a mistyped name shows), with --ttl (default 5m) and, for a
semaphore, --permits N (required then); --no-create refuses instead (exit 1). An
existing lock keeps its spec: a flag that differs is a warning.

--if-busy says what to do when the lock cannot be had at once: wait (the default),
skip (exit 10 without running the command: a skip is not a success; --skip-exit 0 for
a cron job that wants it green) or fail (exit 6).

Exit codes: the command's own; 5 --timeout passed before the grant; 6 busy (--if-busy
fail); 7 the grant was lost; 10 skipped (--if-busy skip); 126/127 the command cannot
be run (nothing was acquired); 130/143 interrupted while waiting (the claim was
withdrawn); 1 an error (lock not found with --no-create, ...).";

/// `lock`, `acquire`, `rlock`.
#[derive(Args, Debug)]
pub struct AcquireArgs {
    /// The lock's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Who takes it [default: $KONDUCTOR_HOLDER; one of the two is required: two
    /// scripts on one host, or two containers in one pod, must not share a grant by
    /// accident].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Whether and how long to wait, and in what order.
    #[command(flatten)]
    pub waiting: TakeWait,
    /// Creating the lock on first use.
    #[command(flatten)]
    pub first_use: FirstUseArgs,
}

/// Whether a take waits for a busy lock, how long, and its priority (`lock`, `acquire`,
/// `rlock`, `ratelimit take`).
#[derive(Args, Debug)]
pub struct TakeWait {
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

impl TakeWait {
    /// How long to wait for the grant.
    pub fn wait(&self) -> Wait {
        match (self.wait, self.timeout) {
            (false, _) => Wait::No,
            (true, None) => Wait::Forever,
            (true, Some(limit)) => Wait::AtMost(limit),
        }
    }
}

/// `semaphore acquire|lock`.
#[derive(Args, Debug)]
pub struct SemaphoreAcquireArgs {
    /// How many may hold the semaphore at once, if it is created on first use.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..), conflicts_with = "no_create")]
    pub permits: Option<i32>,
    /// The rest, as for the other locks.
    #[command(flatten)]
    pub take: AcquireArgs,
}

/// Whether (and how) a lock that does not exist is created by the command that uses it.
#[derive(Args, Debug, Clone, Default)]
pub struct FirstUseArgs {
    /// The ttl of a lock created on first use (a Go duration, at least 2s) [default:
    /// 5m]; an existing lock keeps its own (a warning says so if it differs).
    #[arg(long, value_name = "DURATION", value_parser = parse_lock_ttl)]
    pub ttl: Option<String>,
    /// Refuse (exit 1) instead of creating a lock that does not exist.
    #[arg(long, conflicts_with = "ttl")]
    pub no_create: bool,
}

/// What `run` does when a lock cannot be had at once (`--if-busy`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IfBusy {
    /// Wait for it (the default).
    #[default]
    Wait,
    /// Do not run the command: exit 10 (or --skip-exit).
    Skip,
    /// Do not run the command: exit 6.
    Fail,
}

/// `--if-busy` and `--skip-exit`.
#[derive(Args, Debug, Clone)]
pub struct IfBusyArgs {
    /// When a lock cannot be had at once: wait, skip (exit 10, not run) or fail (exit 6).
    #[arg(long, value_enum, default_value_t = IfBusy::Wait)]
    pub if_busy: IfBusy,
    /// The exit code of a skip (--if-busy skip) [default: 10].
    #[arg(long, value_name = "CODE", default_value_t = crate::exit::EXIT_SKIPPED)]
    pub skip_exit: u8,
}

impl IfBusyArgs {
    /// How long to wait for the grant, given `--timeout`; a usage error for `--timeout`
    /// with a policy that does not wait.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Wait, String> {
        match (self.if_busy, timeout) {
            (IfBusy::Wait, None) => Ok(Wait::Forever),
            (IfBusy::Wait, Some(limit)) => Ok(Wait::AtMost(limit)),
            (_, Some(_)) => Err("--timeout applies only to --if-busy wait".into()),
            (_, None) => Ok(Wait::No),
        }
    }

    /// The exit code for a lock found busy under this policy (said on stderr), or
    /// `None` when waiting was asked for (so busy is not an outcome).
    pub fn busy(&self, error: &Error) -> Option<u8> {
        let Error::LockBusy { kind, holders, .. } = error else {
            return None;
        };
        match self.if_busy {
            IfBusy::Wait => None,
            IfBusy::Fail => {
                eprintln!("{}: {error}", crate::exit::program_name());
                Some(EXIT_BUSY)
            }
            IfBusy::Skip => {
                eprintln!(
                    "{}: skipped: {} (--if-busy skip; the command did not run)",
                    crate::exit::program_name(),
                    konductor_sdk::error::busy_reason(kind, holders)
                );
                Some(self.skip_exit)
            }
        }
    }
}

/// `unlock`, `release`, `runlock`.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The lock's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Whose claim [default: $KONDUCTOR_HOLDER; one of the two is required].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
}

/// `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The lock's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Who holds it, how long to wait, what to do when busy, and the command.
    #[command(flatten)]
    pub how: RunHow,
}

/// How any `run` of the lock family holds its lock(s) around a command — the flags
/// `KIND run NAME` and `run --hold` share.
#[derive(Args, Debug)]
pub struct RunHow {
    /// Who holds it [default: a new identity for every run: $POD_NAME or the hostname,
    /// with a random suffix].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// Give up waiting for the grant after this long in all (a Go duration), exiting 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Higher is granted first (FIFO among equals; may be negative).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// What to do when a lock is busy.
    #[command(flatten)]
    pub if_busy: IfBusyArgs,
    /// Creating a lock on first use.
    #[command(flatten)]
    pub first_use: FirstUseArgs,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `semaphore run`.
#[derive(Args, Debug)]
pub struct SemaphoreRunArgs {
    /// How many may hold the semaphore at once, if it is created on first use.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..), conflicts_with = "no_create")]
    pub permits: Option<i32>,
    /// What to run, and how.
    #[command(flatten)]
    pub run: RunArgs,
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

/// `create` of a mutex or rwmutex.
#[derive(Args, Debug)]
pub struct LockCreateArgs {
    /// The lock's name.
    #[arg(value_parser = parse_name)]
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

/// A lock's ttl: a Go duration of at least the minimum ttl.
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

/// What a lock command ends with: an exit code, or an error to print.
pub type Outcome = konductor_sdk::Result<u8>;

/// A lock command line: a verb of this module, or `run`.
pub enum Request {
    /// Any verb but `run`.
    Verb(Verb),
    /// `run` (see [`crate::run`](mod@crate::run)), with a Semaphore's permits for
    /// first use.
    Run(RunArgs, PermitMode, Sizing),
}

/// A lock command, whatever the kind spells it.
pub enum Verb {
    /// `lock`, `acquire`, `rlock` (and a RateLimit's `take`), with what a lock made on
    /// first use is sized with.
    Take(AcquireArgs, PermitMode, Sizing),
    /// `unlock`, `release`, `runlock`.
    GiveBack(ReleaseArgs, PermitMode),
    /// `status`.
    Status(StatusArgs),
    /// `create`, with a Semaphore's permits or a RateLimit's window.
    Create(LockCreateArgs, Sizing),
    /// `delete`.
    Delete(String),
    /// `list`.
    List(crate::args::ListArgs),
}

impl From<SemaphoreCommand> for Request {
    fn from(command: SemaphoreCommand) -> Self {
        match command {
            SemaphoreCommand::Acquire(args) => Request::Verb(Verb::Take(
                args.take,
                PermitMode::Exclusive,
                Sizing::permits(args.permits),
            )),
            SemaphoreCommand::Release(args) => {
                Request::Verb(Verb::GiveBack(args, PermitMode::Exclusive))
            }
            SemaphoreCommand::Run(args) => Request::Run(
                args.run,
                PermitMode::Exclusive,
                Sizing::permits(args.permits),
            ),
            SemaphoreCommand::Status(args) => Request::Verb(Verb::Status(args)),
            SemaphoreCommand::Create(args) => {
                Request::Verb(Verb::Create(args.lock, Sizing::permits(Some(args.permits))))
            }
            SemaphoreCommand::Delete(args) => Request::Verb(Verb::Delete(args.name)),
            SemaphoreCommand::List(args) => Request::Verb(Verb::List(args)),
        }
    }
}

impl From<MutexCommand> for Request {
    fn from(command: MutexCommand) -> Self {
        match command {
            MutexCommand::Lock(args) => {
                Request::Verb(Verb::Take(args, PermitMode::Exclusive, Sizing::default()))
            }
            MutexCommand::Unlock(args) => {
                Request::Verb(Verb::GiveBack(args, PermitMode::Exclusive))
            }
            MutexCommand::Run(args) => Request::Run(args, PermitMode::Exclusive, Sizing::default()),
            MutexCommand::Status(args) => Request::Verb(Verb::Status(args)),
            MutexCommand::Create(args) => Request::Verb(Verb::Create(args, Sizing::default())),
            MutexCommand::Delete(args) => Request::Verb(Verb::Delete(args.name)),
            MutexCommand::List(args) => Request::Verb(Verb::List(args)),
        }
    }
}

impl From<RwmutexCommand> for Request {
    fn from(command: RwmutexCommand) -> Self {
        match command {
            RwmutexCommand::Lock(args) => {
                Request::Verb(Verb::Take(args, PermitMode::Exclusive, Sizing::default()))
            }
            RwmutexCommand::Rlock(args) => {
                Request::Verb(Verb::Take(args, PermitMode::Shared, Sizing::default()))
            }
            RwmutexCommand::Unlock(args) => {
                Request::Verb(Verb::GiveBack(args, PermitMode::Exclusive))
            }
            RwmutexCommand::Runlock(args) => {
                Request::Verb(Verb::GiveBack(args, PermitMode::Shared))
            }
            RwmutexCommand::Run(args) if args.read => {
                Request::Run(args.run, PermitMode::Shared, Sizing::default())
            }
            RwmutexCommand::Run(args) => {
                Request::Run(args.run, PermitMode::Exclusive, Sizing::default())
            }
            RwmutexCommand::Status(args) => Request::Verb(Verb::Status(args)),
            RwmutexCommand::Create(args) => Request::Verb(Verb::Create(args, Sizing::default())),
            RwmutexCommand::Delete(args) => Request::Verb(Verb::Delete(args.name)),
            RwmutexCommand::List(args) => Request::Verb(Verb::List(args)),
        }
    }
}

/// A usage error found after parsing.
fn usage(message: &str) -> Outcome {
    eprintln!("{}: {message} (see --help)", crate::exit::program_name());
    Ok(EXIT_USAGE)
}

/// Runs one lock command for a `kind` lock.
pub async fn command(kind: LockKind, verb: Verb, connection: &Connection) -> Outcome {
    let locks = Locks::new(connection);
    match verb {
        Verb::Take(args, mode, sizing) => take(kind, mode, &locks, args, sizing).await,
        Verb::GiveBack(args, mode) => give_back(kind, mode, &locks, args).await,
        Verb::Create(args, sizing) => {
            let made = FirstUse {
                no_create: false,
                ttl: args.ttl,
                sizing,
            };
            let spec = made.spec(kind, &locks, &args.name)?;
            locks.create(kind, &args.name, &spec).await?;
            println!(
                "{} {}/{} created",
                kind.word(),
                locks.namespace(),
                args.name
            );
            Ok(EXIT_OK)
        }
        Verb::Delete(name) => {
            locks.delete(kind, &name).await?;
            println!("{} {}/{name} deleted", kind.word(), locks.namespace());
            Ok(EXIT_OK)
        }
        Verb::List(args) => {
            let reader = konductor_sdk::reading::Reader::new(connection);
            output::list(&reader, &kind_ref(kind), locks.namespace(), &args).await
        }
        Verb::Status(args) => match args.output {
            Some(format) => {
                let reader = konductor_sdk::reading::Reader::new(connection);
                output::print_stored(&reader, &kind_ref(kind), &args.name, format).await
            }
            None => {
                let lock = locks.get(kind, &args.name).await?;
                print!("{}", summary(kind, &lock));
                Ok(EXIT_OK)
            }
        },
    }
}

/// The claim a command makes: an RWMutex's reader shares it; every other holder holds
/// its lock alone.
pub fn claim(kind: LockKind, mode: PermitMode, name: &str, holder: &str, priority: i32) -> Claim {
    let mode = match (kind, mode) {
        (LockKind::RWMutex, PermitMode::Shared) => PermitMode::Shared,
        _ => PermitMode::Exclusive,
    };
    Claim::new(kind, name, holder, mode).with_priority(priority)
}

/// The exit code for a lock that was not granted, or the error to print.
pub fn refused(error: Error) -> Outcome {
    let code = match &error {
        Error::LockBusy { .. } => EXIT_BUSY,
        Error::LockTimeout { .. } => EXIT_WAIT_TIMEOUT,
        Error::NoController { .. } | Error::LockRefused { .. } => EXIT_ERROR,
        _ => return Err(error),
    };
    eprintln!("{}: {error}", crate::exit::program_name());
    Ok(code)
}

/// The verb as a user typed it, for messages.
fn verb_word(kind: LockKind, mode: PermitMode, taking: bool) -> String {
    let verb = match (kind, mode, taking) {
        (LockKind::Semaphore, _, true) => "acquire",
        (LockKind::Semaphore, _, false) => "release",
        (_, PermitMode::Shared, true) => "rlock",
        (_, PermitMode::Shared, false) => "runlock",
        (_, PermitMode::Exclusive | PermitMode::Unknown, true) => "lock",
        (_, PermitMode::Exclusive | PermitMode::Unknown, false) => "unlock",
    };
    format!("{} {verb}", kind.word())
}

async fn take(
    kind: LockKind,
    mode: PermitMode,
    locks: &Locks,
    args: AcquireArgs,
    sizing: Sizing,
) -> Outcome {
    let holder = match crate::holder::lock_identity(args.holder, &verb_word(kind, mode, true)) {
        Ok(holder) => holder,
        Err(why) => return usage(&why),
    };
    let claim = claim(kind, mode, &args.name, &holder, args.waiting.priority);
    let wait = args.waiting.wait();
    let first_use = FirstUse::of(&args.first_use, sizing);
    let mut interrupted = crate::signals::Interrupts::new();
    let taken = acquire_first_use(
        locks,
        &claim,
        wait,
        args.waiting.wait,
        &mut interrupted,
        &first_use,
    )
    .await;
    match taken {
        Ok(guard) => {
            if guard.reentered() {
                eprintln!(
                    "{}: {holder} already had a claim on {} {}/{}; carried it on",
                    crate::exit::program_name(),
                    kind.word(),
                    locks.namespace(),
                    args.name
                );
            }
            println!("{}", guard.detach());
            Ok(EXIT_OK)
        }
        Err(Error::LockCancelled { .. }) => Ok(interrupted.withdrawn()),
        Err(error) => refused(error),
    }
}

async fn give_back(kind: LockKind, mode: PermitMode, locks: &Locks, args: ReleaseArgs) -> Outcome {
    let holder = match crate::holder::lock_identity(args.holder, &verb_word(kind, mode, false)) {
        Ok(holder) => holder,
        Err(why) => return usage(&why),
    };
    let claim = claim(kind, mode, &args.name, &holder, 0);
    if locks.release(&claim).await? {
        println!(
            "{} {}/{} released by {holder}",
            kind.word(),
            locks.namespace(),
            args.name
        );
    } else {
        println!(
            "{holder} held no claim on {} {}/{}",
            kind.word(),
            locks.namespace(),
            args.name
        );
    }
    Ok(EXIT_OK)
}

/// What a lock is made with beyond its ttl: a Semaphore's permits, a RateLimit's
/// window.
#[derive(Clone, Debug, Default)]
pub struct Sizing {
    /// A Semaphore's `--permits`.
    pub permits: Option<i32>,
    /// A RateLimit's `--limit`, `--window` and `--max-concurrent`.
    pub rate: Option<RateArgs>,
}

impl Sizing {
    /// A Semaphore's permits, if given.
    pub fn permits(permits: Option<i32>) -> Self {
        Self {
            permits,
            rate: None,
        }
    }

    fn given(&self) -> bool {
        self.permits.is_some() || self.rate.is_some()
    }
}

/// A RateLimit's size: how many grants per window, and how many at once (given
/// together, or not at all).
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct RateArgs {
    /// At most this many grants in any window (at least 1).
    #[arg(long, requires = "window", value_parser = clap::value_parser!(i32).range(1..=i64::from(konductor_api::ratelimit::MAX_LIMIT)))]
    pub limit: Option<i32>,
    /// The window (a Go duration, at least 1s: `1h`, `1m`).
    #[arg(long, requires = "limit", value_name = "DURATION", value_parser = parse_window)]
    pub window: Option<String>,
    /// Also at most this many holders at once [default: no bound].
    #[arg(long, requires = "limit", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub max_concurrent: Option<i32>,
}

impl RateArgs {
    /// The size, if given (`--limit` and `--window` come together).
    pub fn given(self) -> Option<Self> {
        self.limit.is_some().then_some(self)
    }
}

/// A RateLimit's window: a Go duration of at least a second.
fn parse_window(text: &str) -> Result<String, String> {
    if parse_duration(text)? < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(text.to_owned())
}

/// What a command that uses a lock may create if it does not exist (`--ttl`,
/// `--permits`, a RateLimit's `--limit`/`--window`, `--no-create`).
#[derive(Clone, Debug, Default)]
pub struct FirstUse {
    /// Refuse instead of creating.
    pub no_create: bool,
    /// The ttl given.
    pub ttl: Option<String>,
    /// A Semaphore's permits or a RateLimit's window, if given.
    pub sizing: Sizing,
}

impl FirstUse {
    /// From the flags.
    pub fn of(args: &FirstUseArgs, sizing: Sizing) -> Self {
        Self {
            no_create: args.no_create,
            ttl: args.ttl.clone(),
            sizing,
        }
    }

    /// The spec of a `kind` lock made with these flags, or why it cannot be (a
    /// Semaphore needs its permits, a RateLimit its window).
    fn spec(&self, kind: LockKind, locks: &Locks, name: &str) -> Result<serde_json::Value, Error> {
        let missing = |what: &str| Error::Api {
            kind: kind.word(),
            namespace: locks.namespace().to_owned(),
            name: name.to_owned(),
            message: format!(
                "not found: give {what} to create it on first use (or `koncli {} create NAME {what}`)",
                kind.word()
            ),
        };
        let ttl = self
            .ttl
            .clone()
            .unwrap_or_else(|| konductor_api::locks::DEFAULT_TTL.to_owned());
        let mut spec = serde_json::json!({ "ttl": ttl });
        match kind {
            LockKind::Semaphore => {
                let permits = self.sizing.permits.ok_or_else(|| missing("--permits N"))?;
                spec["permits"] = permits.into();
            }
            LockKind::RateLimit => {
                let rate = self
                    .sizing
                    .rate
                    .as_ref()
                    .ok_or_else(|| missing("--limit N --window D"))?;
                spec["limit"] = rate.limit.into();
                spec["window"] = rate.window.clone().into();
                if let Some(max) = rate.max_concurrent {
                    spec["maxConcurrent"] = max.into();
                }
            }
            _ => {}
        }
        Ok(spec)
    }

    /// Creates the `kind` lock `name` if it does not exist (saying so); warns about
    /// each flag given that differs from an existing lock's spec.
    async fn ensure(&self, kind: LockKind, locks: &Locks, name: &str) -> konductor_sdk::Result<()> {
        if self.ttl.is_some() || self.sizing.given() {
            match locks.get(kind, name).await {
                Ok(stored) => {
                    self.warn_differences(kind, locks, name, &stored);
                    return Ok(());
                }
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let spec = self.spec(kind, locks, name)?;
        match locks.create(kind, name, &spec).await {
            Ok(_) => output::say_created(kind.word(), locks.namespace(), name),
            // Made by another first user meanwhile.
            Err(Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Warns about each flag given whose value differs from `stored`'s spec (kept).
    fn warn_differences(&self, kind: LockKind, locks: &Locks, name: &str, stored: &DynamicObject) {
        let stored = |key: &str| stored.data["spec"].get(key).cloned().unwrap_or_default();
        let given = |value: Option<serde_json::Value>| value;
        let rate = self.sizing.rate.as_ref();
        let flags = [
            ("--ttl", "ttl", given(self.ttl.clone().map(Into::into))),
            ("--permits", "permits", self.sizing.permits.map(Into::into)),
            (
                "--limit",
                "limit",
                rate.and_then(|r| r.limit).map(Into::into),
            ),
            (
                "--window",
                "window",
                rate.and_then(|r| r.window.clone()).map(Into::into),
            ),
            (
                "--max-concurrent",
                "maxConcurrent",
                rate.and_then(|r| r.max_concurrent).map(Into::into),
            ),
        ];
        let differences: Vec<output::Differs> = flags
            .into_iter()
            .filter_map(|(flag, field, value)| output::differs(flag, field, value, stored(field)))
            .collect();
        output::warn_kept(kind.word(), locks.namespace(), name, &differences);
    }
}

/// [`acquire_reporting`], creating the lock first if it does not exist and `first_use`
/// allows: a lock missing when asked for is created (or, with flags given, checked
/// before) and asked for again.
pub async fn acquire_first_use(
    locks: &Locks,
    claim: &Claim,
    wait: Wait,
    waiting: bool,
    interrupts: &mut crate::signals::Interrupts,
    first_use: &FirstUse,
) -> konductor_sdk::Result<konductor_sdk::locks::Guard> {
    if first_use.no_create {
        return acquire_reporting(locks, claim, wait, waiting, interrupts).await;
    }
    if first_use.ttl.is_some() || first_use.sizing.given() {
        first_use.ensure(claim.kind, locks, &claim.lock).await?;
        return acquire_reporting(locks, claim, wait, waiting, interrupts).await;
    }
    match acquire_reporting(locks, claim, wait, waiting, interrupts).await {
        Err(Error::NotFound { .. }) => {
            first_use.ensure(claim.kind, locks, &claim.lock).await?;
            acquire_reporting(locks, claim, wait, waiting, interrupts).await
        }
        other => other,
    }
}

/// Acquires `claim` as `wait` says, showing progress on stderr if `waiting`, and
/// withdrawing the claim at the first SIGINT or SIGTERM caught by `interrupts`.
pub async fn acquire_reporting(
    locks: &Locks,
    claim: &Claim,
    wait: Wait,
    waiting: bool,
    interrupts: &mut crate::signals::Interrupts,
) -> konductor_sdk::Result<konductor_sdk::locks::Guard> {
    let mut reporter = WaitReporter::new(claim.kind, locks.namespace(), &claim.lock, waiting);
    let latest = std::cell::RefCell::new(None);
    reporter
        .around(
            &latest,
            locks.acquire_with(
                claim,
                wait,
                |p| *latest.borrow_mut() = Some(p.clone()),
                interrupts.first(),
            ),
        )
        .await
}

/// Shows progress while a lock command waits: on a terminal a live line (position,
/// holders, how long it waited), in a pipe a plain line per change; and says so once
/// when no controller has answered after a while.
pub struct WaitReporter {
    what: String,
    display: Option<output::Display>,
    started: Instant,
    last_line: String,
    hinted: bool,
}

impl WaitReporter {
    /// A reporter for the `kind` lock `name`; silent unless `waiting`.
    pub fn new(kind: LockKind, namespace: &str, name: &str, waiting: bool) -> Self {
        Self {
            what: format!("{} {namespace}/{name}", kind.word()),
            display: waiting.then(|| output::Display::for_stderr(false)),
            started: Instant::now(),
            last_line: String::new(),
            hinted: false,
        }
    }

    fn line(&self, progress: &Progress, live: bool) -> String {
        let mut line = format!("waiting for {}", self.what);
        if let Some(position) = progress.position {
            line.push_str(&format!(": position {position} of {}", progress.waiting));
        }
        if !progress.holders.is_empty() {
            line.push_str(&format!(" · held by {}", progress.holders.join(", ")));
        }
        if live {
            line.push_str(&format!(
                " · waited {}",
                output::short_duration(self.started.elapsed())
            ));
        }
        line
    }

    fn tick(&mut self, latest: Option<Progress>) {
        let Some(display) = &self.display else {
            return;
        };
        let Some(progress) = latest else {
            return;
        };
        if !progress.answered && !self.hinted && self.started.elapsed() >= NO_ANSWER {
            self.hinted = true;
            display.say(&format!(
                "no lock controller has answered the claim on {} after {} — is one running? (`konductor server` runs one; on a cluster, `konductor operator`)",
                self.what,
                output::short_duration(self.started.elapsed())
            ));
        }
        if let Some(why) = &progress.reconnecting {
            let line = format!("lost the watch on {} ({why}); reconnecting", self.what);
            if line != self.last_line {
                display.say(&line);
                self.last_line = line;
            }
            return;
        }
        match display {
            output::Display::Live(bar) => bar.set_message(self.line(&progress, true)),
            _ => {
                let line = self.line(&progress, false);
                if line != self.last_line {
                    display.say(&line);
                    self.last_line = line;
                }
            }
        }
    }

    /// Drives `waiting` to its end, reporting the progress it leaves in `latest`.
    pub async fn around<T>(
        &mut self,
        latest: &std::cell::RefCell<Option<Progress>>,
        waiting: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(waiting);
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let result = loop {
            tokio::select! {
                result = &mut waiting => break result,
                _ = ticker.tick() => self.tick(latest.borrow().clone()),
            }
        };
        if let Some(display) = &self.display {
            display.finish();
        }
        result
    }
}

/// A lock kind, as `list` and `status -o` read it.
fn kind_ref(kind: LockKind) -> konductor_sdk::reading::KindRef {
    konductor_sdk::reading::KindRef {
        word: kind.word(),
        plural: kind.plural(),
        resource: kind.api_resource(),
    }
}

/// What koncli shows of a lock, read through the kind's typed status.
struct View {
    phase: String,
    /// `Holders:` in the summary.
    holders_line: String,
    waiting: Vec<String>,
    token: i64,
    /// Why the controller refuses the spec, if it does.
    refusal: Option<String>,
    ttl: String,
}

impl View {
    fn of(kind: LockKind, lock: &DynamicObject) -> Self {
        // (A spec the controller cannot read is reported in its Ready condition.)
        let spec = CommonLockSpec::of(lock).unwrap_or_default();
        let none = |names: &[String]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        let Some(status) = LockStatus::of(kind, lock) else {
            return Self {
                phase: "-".to_owned(),
                holders_line: "none".to_owned(),
                waiting: Vec::new(),
                token: 0,
                refusal: None,
                ttl: spec.ttl,
            };
        };
        let (phase, holders_line) = match &status {
            LockStatus::Semaphore(s) => (
                format!("{:?}", s.phase),
                format!(
                    "{} of {} in use: {}",
                    s.in_use,
                    spec.capacity(),
                    none(&s.holders)
                ),
            ),
            LockStatus::RateLimit(s) => {
                let window = lock.data["spec"]["window"].as_str().unwrap_or("-");
                let limit = &lock.data["spec"]["limit"];
                let next = s
                    .next_slot_at
                    .as_ref()
                    .map_or(String::new(), |t| format!(" · next slot at {}", t.0));
                (
                    format!("{:?}", s.phase),
                    format!(
                        "{} of {limit} used in the last {window}{next} · holding: {}",
                        s.used,
                        none(&s.holders)
                    ),
                )
            }
            LockStatus::RWMutex(s) => {
                let line = match &s.write_holder {
                    Some(writer) => format!("{writer} (writing)"),
                    None if s.read_holders.is_empty() => "none".to_owned(),
                    None => format!("{} (reading)", s.read_holders.join(", ")),
                };
                (format!("{:?}", s.phase), line)
            }
            // One holder at a time: the phase as stored, and whom its grant is to.
            other => {
                let holders: Vec<String> = other
                    .claims()
                    .grants
                    .iter()
                    .flatten()
                    .map(|g| g.holder.clone())
                    .collect();
                let phase = CommonLockStatus::of(lock).phase;
                (phase.unwrap_or_else(|| "-".to_owned()), none(&holders))
            }
        };
        let claims = status.claims();
        let (waiting, token, conditions) = (
            claims.waiting.clone(),
            claims.fencing_token,
            &claims.conditions,
        );
        let refusal = conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY && c.status == "False")
            .map(|c| c.message.clone());
        Self {
            phase: if refusal.is_some() {
                "InvalidSpec".to_owned()
            } else {
                phase
            },
            holders_line,
            waiting,
            token,
            refusal,
            ttl: spec.ttl,
        }
    }
}

/// A few lines about a lock.
fn summary(kind: LockKind, lock: &DynamicObject) -> String {
    let view = View::of(kind, lock);
    let phase = match (&view.refusal, view.phase.as_str()) {
        (Some(why), _) => format!("InvalidSpec: {why} (nothing will be granted)"),
        (None, "-") => "none reported yet: is a controller running?".to_owned(),
        (None, phase) => phase.to_owned(),
    };
    let waiting = if view.waiting.is_empty() {
        "none".to_owned()
    } else {
        view.waiting.join(", ")
    };
    format!(
        "{} {}/{}\n  Phase:         {phase}\n  Holders:       {}\n  Waiting:       {waiting}\n  Fencing token: {}\n  TTL:           {}\n",
        kind.word(),
        lock.namespace().unwrap_or_default(),
        lock.name_any(),
        view.holders_line,
        view.token,
        view.ttl,
    )
}
