//! `koncli once …`: run a command once per key across replicas ([`konductor_sdk::once`]).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use clap::{Args, Subcommand};
use konductor_api::Outcome;
use konductor_api::locks::LockKind;
use konductor_api::once::{AttemptOutcome, MAX_ATTEMPTS_LIMIT, Once, OnceSpec, OnceStatus};
use konductor_sdk::Error;
use konductor_sdk::once::{Claimed, Finished, Onces};

use crate::args::{CreateFormat, parse_duration, parse_holder, parse_name};
use crate::exit::{
    EXIT_ERROR, EXIT_LOST, EXIT_NOT_DONE, EXIT_OK, EXIT_ONCE_FAILED, EXIT_WAIT_TIMEOUT,
    program_name,
};
use crate::locks::WaitReporter;
use crate::output;
use crate::run::{Ran, check_runnable, supervised};
use crate::signals::Interrupts;

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
    Status(OnceStatusArgs),
    /// Create a Once.
    Create(OnceCreateArgs),
    /// Delete the Once (its claims go with it): the work may run again.
    Delete(OnceNameArgs),
    /// List Onces.
    List(OnceListArgs),
    /// Let the current key run again (after it failed for good, or to redo it): its
    /// attempts start from 0. Refused while an executor runs.
    Reset(OnceNameArgs),
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

Exit codes: 0 done (by this run or another); the command's own when it failed here; 8
every allowed attempt failed (`once reset` allows a new try); 5 --timeout passed first;
7 the grant was lost while the command ran; 126/127 the command cannot be run; 130/143
interrupted while waiting; 1 an error.";

/// A Once's name.
#[derive(Args, Debug)]
pub struct OnceNameArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
}

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
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<Duration>,
}

impl OnceSpecArgs {
    /// The spec these arguments give (defaults for what they leave out).
    fn spec(&self) -> OnceSpec {
        let default = OnceSpec::default();
        OnceSpec {
            key: self.key.clone(),
            max_attempts: self.max_attempts.unwrap_or(default.max_attempts),
            ttl: self
                .ttl
                .map_or(default.ttl, konductor_api::duration::format_duration),
        }
    }
}

/// `once wait`.
#[derive(Args, Debug)]
pub struct OnceWaitArgs {
    /// The Once and the key.
    #[command(flatten)]
    pub once: OnceKeyArgs,
    /// Wait at most this long (a Go duration), then exit 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
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

/// `once status`.
#[derive(Args, Debug)]
pub struct OnceStatusArgs {
    /// The Once's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Print the whole object in this format [default: a summary].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
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

/// `once list`.
#[derive(Args, Debug)]
pub struct OnceListArgs {
    /// List them in all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Print the list in this format [default: a table].
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
pub async fn command(command: OnceCommand, onces: Onces) -> Outcome8 {
    match command {
        OnceCommand::Run(args) => run(&onces, args).await,
        OnceCommand::Wait(args) => wait(&onces, args).await,
        OnceCommand::Check(args) => check(&onces, args).await,
        OnceCommand::Status(args) => status(&onces, args).await,
        OnceCommand::Create(args) => {
            let spec = args.spec.spec();
            let once = onces.create(&args.name, spec).await?;
            match args.output {
                Some(format) => output::print_object(&once, format),
                None => println!("once.konductor.io/{} created", args.name),
            }
            Ok(EXIT_OK)
        }
        OnceCommand::Delete(args) => {
            onces.delete(&args.name).await?;
            println!("once.konductor.io \"{}\" deleted", args.name);
            Ok(EXIT_OK)
        }
        OnceCommand::List(args) => list(&onces, args).await,
        OnceCommand::Reset(args) => {
            let once = onces.reset(&args.name).await?;
            let key = once.status.map(|s| s.key).unwrap_or_default();
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
                "{}: once {}/{name}: already done for key {:?} (fencing token {}); nothing to run",
                program_name(),
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
            EXIT_ONCE_FAILED
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
    onces.ensure(&args.name, args.spec.spec()).await?;
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
        Err(Error::LockCancelled { .. }) => return Ok(interrupts.exit_code()),
        Err(error) => return Err(error),
    };
    let what = format!("once {}/{}", onces.namespace(), args.name);
    let ran = supervised(
        &args.command,
        Some(executor.token()),
        executor.timing(),
        executor.lost(),
        &mut interrupts,
        &what,
    )
    .await;
    let code = match ran {
        Ran::Exited(code) => code,
        Ran::Lost => {
            executor.abandon().await;
            return Ok(EXIT_LOST);
        }
        Ran::NotStarted => {
            executor.abandon().await;
            return Ok(EXIT_ERROR);
        }
    };
    let (result, message) = if code == 0 {
        (Outcome::Succeeded, None)
    } else {
        (
            Outcome::Failed,
            Some(format!("{program} exited with code {code}")),
        )
    };
    let attempt = executor
        .report(result, Some(i32::from(code)), message)
        .await?;
    if attempt.late {
        eprintln!(
            "{}: {what}: the outcome was recorded late (the grant had expired) and changed nothing",
            program_name()
        );
        return Ok(EXIT_LOST);
    }
    Ok(code)
}

async fn wait(onces: &Onces, args: OnceWaitArgs) -> Outcome8 {
    let name = &args.once.name;
    match onces
        .wait(name, args.once.key.as_deref(), args.timeout)
        .await?
    {
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
            Ok(EXIT_ONCE_FAILED)
        }
        konductor_api::once::KeyStanding::Open => {
            let now = if status.key == key {
                format!("{:?}", status.phase)
            } else {
                "not started".to_owned()
            };
            println!("not done: key {key:?} is {}", now.to_lowercase());
            Ok(EXIT_NOT_DONE)
        }
    }
}

async fn status(onces: &Onces, args: OnceStatusArgs) -> Outcome8 {
    let once = onces.get(&args.name).await?;
    if let Some(format) = args.output {
        output::print_object(&once, format);
        return Ok(EXIT_OK);
    }
    print!("{}", summary(&once, onces.namespace()));
    Ok(EXIT_OK)
}

/// The human summary of a Once.
pub fn summary(once: &Once, namespace: &str) -> String {
    let status: OnceStatus = once.status.clone().unwrap_or_default();
    let mut text = format!(
        "once {namespace}/{}: {:?} · key {:?} · attempts {}/{}\n",
        kube::ResourceExt::name_any(once),
        status.phase,
        status.key,
        status.attempts,
        once.spec.max_attempts
    );
    if let Some(executor) = &status.executor {
        text.push_str(&format!(
            "executor: {executor} (fencing token {})\n",
            status.fencing_token
        ));
    }
    if !status.waiting.is_empty() {
        text.push_str(&format!("waiting: {}\n", status.waiting.join(", ")));
    }
    for attempt in &status.history {
        let outcome = match attempt.outcome {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Lost => "lost",
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

async fn list(onces: &Onces, args: OnceListArgs) -> Outcome8 {
    let items = onces.list(args.all_namespaces).await?;
    output::print_listing(
        &items,
        args.output,
        "onces",
        (!args.all_namespaces).then_some(onces.namespace()),
        &["KEY", "PHASE", "EXECUTOR", "ATTEMPTS"],
        |once: &Once| {
            let status = once.status.clone().unwrap_or_default();
            vec![
                status.key,
                format!("{:?}", status.phase),
                status.executor.unwrap_or_else(|| "<none>".to_owned()),
                status.attempts.to_string(),
            ]
        },
    );
    Ok(EXIT_OK)
}
