//! `koncli once …`: run a command once per key across replicas ([`konductor_sdk::once`]).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use clap::{Args, Subcommand};
use konductor_api::Outcome;
use konductor_api::locks::LockKind;
use konductor_api::once::{AttemptOutcome, MAX_ATTEMPTS_LIMIT, Once, OnceSpec, OnceStatus};
use konductor_sdk::Error;
use konductor_sdk::once::{Claimed, Finished, Onces};

use crate::args::{CreateFormat, NameArgs, StatusArgs, parse_duration, parse_holder, parse_name};
use crate::exit::{
    EXIT_ERROR, EXIT_FAILED_FOR_GOOD, EXIT_LOST, EXIT_NOT_DONE, EXIT_OK, EXIT_WAIT_TIMEOUT,
    program_name,
};
use crate::locks::WaitReporter;
use crate::output;
use crate::run::{Ran, check_runnable, supervised};
use crate::signals::Interrupts;
use konductor_sdk::waiting::Progress;

/// `once` commands.
#[derive(Subcommand, Debug)]
pub enum OnceCommand {
    /// Run a command once for a key, whichever replica gets there first (see `run --help`).
    #[command(after_help = RUN_HELP)]
    Run(OnceRunArgs),
    /// Wait until the work is done for a key: exit 0 when it succeeded, 8 when it failed
    /// for good, 5 when --timeout passes first.
    Wait(OnceWaitArgs),
    /// Say whether the work is done for a key, without waiting: exit 0 when it
    /// succeeded, 9 when it is not done (yet), 8 when it failed for good.
    Check(OnceKeyArgs),
    /// Show the Once: phase, key, executor, attempts and their history.
    Status(StatusArgs),
    /// Create a Once.
    Create(OnceCreateArgs),
    /// Delete the Once (its claims go with it): the work may run again.
    Delete(NameArgs),
    /// List Onces.
    List(crate::args::ListArgs),
    /// Let a key run again after it failed for good (--key, default the current key):
    /// its attempts start from 0. Re-arming a key that succeeded needs --force (its
    /// work will run again). Refused while an executor runs the key.
    Reset(OnceResetArgs),
}

/// `once reset`.
#[derive(Args, Debug)]
pub struct OnceResetArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The key to re-arm [default: the Once's current key].
    #[arg(long, value_parser = parse_key)]
    pub key: Option<String>,
    /// Re-arm a key that succeeded: its work will run again.
    #[arg(long)]
    pub force: bool,
}

/// What `once run` does, for its `--help`.
pub const RUN_HELP: &str = "\
once run creates the Once if it does not exist, then claims it for the key. The first
claim is granted: it runs the command with $KONDUCTOR_FENCING_TOKEN in its environment
(supervised as `mutex run` does: renewed, stopped if the grant is lost or koncli dies)
and reports its exit code as the outcome. Every other run waits for that outcome:
success, and they exit 0 without running anything; failure, and the next one runs, up
to --max-attempts. A run for a key that is already done exits 0 at once. An executor
that dies is taken over after the ttl, with a higher fencing token.

At most one executor at a time, fenced, with the outcome recorded: a command that dies
after doing its work but before koncli reports it runs again, so make it idempotent or
store $KONDUCTOR_FENCING_TOKEN with its result.

The key is this run's only: a Once made on first use gets no spec.key, so it is never
held to a key nobody asks for. An existing Once keeps its spec; a flag that differs
from it is warned about.

Interrupted is not failed: SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the
command; the claim is marked interrupting at once and renewed until the command is
gone. If the command then exits 0 the work succeeded; otherwise the attempt is
recorded as interrupted and does not count toward maxAttempts — up to
maxInterruptions (default 3), after which interruptions count.

Exit codes: 0 done (by this run or another: nothing ran); the command's own when it
failed or was interrupted here (128+N if signal N ended it; the last stderr line says
it is the command's); 8 every allowed attempt failed (nothing ran; the message gives
the `once reset … --key K` that allows a new try); 5 --timeout passed first; 7 the
grant was lost while the command ran; 126/127 the command cannot be run; 130/143
interrupted while waiting; 1 an error.";

/// `once run`.
#[derive(Args, Debug)]
pub struct OnceRunArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The key to run, and the Once's spec when this run creates it.
    #[command(flatten)]
    pub spec: OnceSpecArgs,
    /// Give up waiting after this long (a Go duration), exiting 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Who runs it [default: a new identity for every run: $POD_NAME or the hostname,
    /// with a random suffix].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A Once's spec on the command line (`create`; `run`, which creates the Once if absent).
#[derive(Args, Debug)]
pub struct OnceSpecArgs {
    /// The key: the version of the work (a migration hash, an app version). `run` runs
    /// it [default: the Once's spec.key]; `create` makes it the key claims ask for when
    /// they name none.
    #[arg(long, value_parser = parse_key)]
    pub key: Option<String>,
    /// Attempts allowed for a key [default: 3].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=i64::from(MAX_ATTEMPTS_LIMIT)))]
    pub max_attempts: Option<i32>,
    /// How long an executor's claim lives without renewal (a Go duration, at least 2s)
    /// [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = parse_once_ttl)]
    pub ttl: Option<Duration>,
    /// Interruptions of one key that do not count toward --max-attempts [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=i64::from(MAX_ATTEMPTS_LIMIT)))]
    pub max_interruptions: Option<i32>,
}

/// A Once's ttl: a Go duration of at least 2s (what the server would refuse, refused
/// here as a usage error naming the flag).
fn parse_once_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < konductor_api::locks::MIN_TTL {
        return Err(format!(
            "must be at least {}: an executor renews its claim several times per ttl",
            konductor_api::duration::format_duration(konductor_api::locks::MIN_TTL)
        ));
    }
    Ok(ttl)
}

impl OnceSpecArgs {
    /// The spec these arguments give (defaults for what they leave out); `key` says
    /// whether `--key` is the Once's spec.key (`create`) or only the claim's (`run`).
    fn spec(&self, key: bool) -> OnceSpec {
        let default = OnceSpec::default();
        OnceSpec {
            key: self.key.clone().filter(|_| key),
            max_attempts: self.max_attempts.unwrap_or(default.max_attempts),
            ttl: self
                .ttl
                .map_or(default.ttl, konductor_api::duration::format_duration),
            max_interruptions: self.max_interruptions.unwrap_or(default.max_interruptions),
        }
    }

    /// The flags given that differ from `stored`'s spec (the key is a run's own).
    fn differences(&self, stored: &OnceSpec) -> Vec<output::Differs> {
        let ttl = self
            .ttl
            .filter(|given| {
                konductor_api::duration::parse_duration(&stored.ttl).ok() != Some(*given)
            })
            .map(konductor_api::duration::format_duration);
        [
            output::differs(
                "--max-attempts",
                "maxAttempts",
                self.max_attempts,
                stored.max_attempts,
            ),
            output::differs("--ttl", "ttl", ttl, stored.ttl.clone()),
            output::differs(
                "--max-interruptions",
                "maxInterruptions",
                self.max_interruptions,
                stored.max_interruptions,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// `once wait`: every kind's wait arguments, and the key.
#[derive(Args, Debug)]
pub struct OnceWaitArgs {
    /// The Once, how long at most, progress or not.
    #[command(flatten)]
    pub wait: crate::args::WaitArgs,
    /// The key [default: the Once's spec.key].
    #[arg(long, value_parser = parse_key)]
    pub key: Option<String>,
}

/// A Once and a key.
#[derive(Args, Debug)]
pub struct OnceKeyArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The key [default: the Once's spec.key].
    #[arg(long, value_parser = parse_key)]
    pub key: Option<String>,
}

/// `once create`.
#[derive(Args, Debug)]
pub struct OnceCreateArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Its spec.
    #[command(flatten)]
    pub spec: OnceSpecArgs,
    /// Print the created object in this format [default: a line].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// A key: at most 253 characters.
fn parse_key(text: &str) -> Result<String, String> {
    if text.len() > konductor_api::once::MAX_KEY_LEN {
        return Err(format!(
            "must be at most {} characters",
            konductor_api::once::MAX_KEY_LEN
        ));
    }
    Ok(text.to_owned())
}

type Outcome8 = konductor_sdk::Result<u8>;

/// Runs one `once` command.
pub async fn command(command: OnceCommand, connection: &konductor_sdk::Connection) -> Outcome8 {
    let onces = Onces::new(connection);
    let reader = konductor_sdk::reading::Reader::new(connection);
    match command {
        OnceCommand::Run(args) => run(&onces, args).await,
        OnceCommand::Wait(args) => wait(&onces, args).await,
        OnceCommand::Check(args) => check(&onces, args).await,
        OnceCommand::Status(args) => match args.output {
            Some(format) => output::print_stored(&reader, &kind(), &args.name, format).await,
            None => status(&onces, args).await,
        },
        OnceCommand::Create(args) => {
            let spec = args.spec.spec(true);
            let once = onces.create(&args.name, spec).await?;
            output::print_created(&once, args.output);
            Ok(EXIT_OK)
        }
        OnceCommand::Delete(args) => {
            onces.delete(&args.name).await?;
            output::print_deleted::<Once>(&args.name);
            Ok(EXIT_OK)
        }
        OnceCommand::List(args) => output::list(&reader, &kind(), onces.namespace(), &args).await,
        OnceCommand::Reset(args) => {
            let (_, key) = onces
                .reset(&args.name, args.key.as_deref(), args.force)
                .await?;
            println!(
                "once.konductor.io/{} reset: key {key:?} may run again",
                args.name
            );
            Ok(EXIT_OK)
        }
    }
}

/// What a finished key means for a command's exit code, said on stderr.
fn finished_code(onces: &Onces, name: &str, finished: &Finished) -> u8 {
    match finished {
        Finished::Succeeded(done) => {
            eprintln!(
                "once {}/{name} (key {:?}) already done (fencing token {}); nothing to run",
                onces.namespace(),
                done.key,
                done.fencing_token
            );
            EXIT_OK
        }
        Finished::Failed(failed) => {
            eprintln!(
                "{}: {}",
                program_name(),
                onces.failed_for_good(name, failed)
            );
            EXIT_FAILED_FOR_GOOD
        }
    }
}

async fn run(onces: &Onces, args: OnceRunArgs) -> Outcome8 {
    let (program, _) = args.command.split_first().expect("clap requires a command");
    if let Err((code, why)) = check_runnable(program) {
        eprintln!("{}: {why}", program_name());
        return Ok(code);
    }
    let holder = crate::holder::run_identity(args.holder);
    let ensured = onces.ensure(&args.name, args.spec.spec(false)).await?;
    if ensured.created {
        output::say_created("once", onces.namespace(), &args.name);
    } else {
        let differences = args.spec.differences(&ensured.object.spec);
        output::warn_kept("once", onces.namespace(), &args.name, &differences);
    }
    let mut interrupts = Interrupts::new();
    let timed_out = Cell::new(false);
    let claimed = {
        let cancel = async {
            match args.timeout {
                Some(limit) => tokio::select! {
                    () = interrupts.first() => {}
                    () = tokio::time::sleep(limit) => timed_out.set(true),
                },
                None => interrupts.first().await,
            }
        };
        let mut reporter = WaitReporter::new(LockKind::Once, onces.namespace(), &args.name, true);
        let latest = RefCell::new(None);
        reporter
            .around(
                &latest,
                onces.claim(
                    &args.name,
                    args.spec.key.as_deref(),
                    &holder,
                    |p| *latest.borrow_mut() = Some(p.clone()),
                    cancel,
                ),
            )
            .await
    };
    let executor = match claimed {
        Ok(Claimed::Finished(finished)) => return Ok(finished_code(onces, &args.name, &finished)),
        Ok(Claimed::Execute(executor)) => executor,
        Err(Error::LockCancelled { .. }) if timed_out.get() => {
            eprintln!(
                "{}: once {}/{}: not done and not granted within the timeout",
                program_name(),
                onces.namespace(),
                args.name
            );
            return Ok(EXIT_WAIT_TIMEOUT);
        }
        Err(Error::LockCancelled { .. }) => return Ok(interrupts.withdrawn()),
        Err(error) => return Err(error),
    };
    let what = format!("once {}/{}", onces.namespace(), args.name);
    let ran = supervised(
        &args.command,
        &crate::run::token_env(executor.token()),
        executor.timing(),
        executor.lost(),
        &mut interrupts,
        &what,
        executor.mark_interrupting(),
    )
    .await;
    let (attempt, then) = match ran {
        Ran::Succeeded => (
            executor.report(Outcome::Succeeded, Some(0), None).await?,
            "",
        ),
        Ran::Failed(code) => (
            executor
                .report(
                    Outcome::Failed,
                    Some(i32::from(code)),
                    Some(format!("{program} exited with code {code}")),
                )
                .await?,
            "the attempt is recorded as failed",
        ),
        Ran::Interrupted(code) => (
            executor
                .report_interrupted(
                    Some(i32::from(code)),
                    Some(format!("{program} was interrupted (exit code {code})")),
                )
                .await?,
            "the attempt is recorded as interrupted",
        ),
        Ran::Lost => {
            executor.abandon_lost().await;
            return Ok(EXIT_LOST);
        }
        Ran::NotStarted => {
            executor.abandon().await;
            return Ok(EXIT_ERROR);
        }
    };
    if attempt.late {
        eprintln!(
            "{}: {what}: the outcome was recorded late (the grant had expired) and changed nothing",
            program_name()
        );
        return Ok(EXIT_LOST);
    }
    Ok(ran.report(&what, program, then))
}

async fn wait(onces: &Onces, args: OnceWaitArgs) -> Outcome8 {
    let name = &args.wait.name;
    let namespace = onces.namespace();
    let display = output::Display::for_stderr(args.wait.quiet);
    let mut last_line = String::new();
    let waited = onces
        .wait(name, args.key.as_deref(), args.wait.timeout, |progress| {
            let line = match progress {
                Progress::Missing(absence) => {
                    output::absence_line("once", namespace, name, absence)
                }
                Progress::Reconnecting(why) => {
                    format!("lost the watch on once {namespace}/{name} ({why}); reconnecting")
                }
                Progress::Waiting(once) => {
                    let status = once.status.clone().unwrap_or_default();
                    let key = if status.key.is_empty() {
                        String::new()
                    } else {
                        format!("key {:?} is ", status.key)
                    };
                    format!(
                        "waiting for once {namespace}/{name}: {key}{}",
                        phase_word(status.phase)
                    )
                }
            };
            if line != last_line {
                display.say(&line);
            }
            last_line = line;
        })
        .await;
    display.finish();
    match waited? {
        Some(Finished::Succeeded(_)) => Ok(EXIT_OK),
        Some(finished) => Ok(finished_code(onces, name, &finished)),
        None => {
            eprintln!(
                "{}: once {}/{name}: not done within the timeout",
                program_name(),
                onces.namespace()
            );
            Ok(EXIT_WAIT_TIMEOUT)
        }
    }
}

async fn check(onces: &Onces, args: OnceKeyArgs) -> Outcome8 {
    let once = onces.get(&args.name).await?;
    let key = konductor_api::once::effective_key(args.key.as_deref(), once.spec.key.as_deref());
    let status = once.status.unwrap_or_default();
    match status.standing_of(&key) {
        konductor_api::once::KeyStanding::Succeeded(done) => {
            println!(
                "done: key {:?} succeeded (fencing token {})",
                done.key, done.fencing_token
            );
            Ok(EXIT_OK)
        }
        konductor_api::once::KeyStanding::Failed(failed) => {
            println!(
                "failed: every allowed attempt at key {:?} failed",
                failed.key
            );
            Ok(EXIT_FAILED_FOR_GOOD)
        }
        konductor_api::once::KeyStanding::Open => {
            let now = if status.key == key {
                status.phase.to_string()
            } else {
                "not started".to_owned()
            };
            println!("not done: key {key:?} is {}", now.to_lowercase());
            Ok(EXIT_NOT_DONE)
        }
    }
}

/// The Once kind, as `list` and `status -o` read it.
fn kind() -> konductor_sdk::reading::KindRef {
    konductor_sdk::reading::KindRef::of::<Once>("once", "onces")
}

async fn status(onces: &Onces, args: StatusArgs) -> Outcome8 {
    let once = onces.get(&args.name).await?;
    print!("{}", summary(&once, onces.namespace()));
    Ok(EXIT_OK)
}

/// A phase in a sentence: `running`, `pending`.
fn phase_word(phase: konductor_api::once::OncePhase) -> String {
    phase.as_str().to_lowercase()
}

/// The human summary of a Once.
pub fn summary(once: &Once, namespace: &str) -> String {
    let status: OnceStatus = once.status.clone().unwrap_or_default();
    let mut text = format!(
        "once {namespace}/{}: {} · key {:?} · attempts {}/{}{}\n",
        kube::ResourceExt::name_any(once),
        status.phase,
        status.key,
        status.attempts,
        once.spec.max_attempts,
        if status.interruptions > 0 {
            format!(" · interrupted {} time(s)", status.interruptions)
        } else {
            String::new()
        }
    );
    if let Some(executor) = &status.executor {
        text.push_str(&format!(
            "executor: {executor} (fencing token {})\n",
            status.claims.fencing_token
        ));
    }
    if !status.claims.waiting.is_empty() {
        text.push_str(&format!("waiting: {}\n", status.claims.waiting.join(", ")));
    }
    for attempt in &status.history {
        let outcome = match attempt.outcome {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Unknown => "unknown",
        };
        text.push_str(&format!(
            "  token {} · key {:?} · {} · {outcome}{}{}\n",
            attempt.fencing_token,
            attempt.key,
            attempt.holder,
            if attempt.late { " (late)" } else { "" },
            attempt
                .message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    text
}
