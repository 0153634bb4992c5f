//! `koncli waitgroup …`: fan-out / fan-in with named members
//! ([`konductor_sdk::waitgroup`]).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use konductor_api::waitgroup::{
    MAX_ATTEMPTS, MAX_MEMBER_ID_LEN, MAX_MEMBERS, MemberFailure, MemberOutcome, WaitGroup,
    WaitGroupPhase, WaitGroupSpec,
};
use konductor_sdk::waitgroup::{Hold, Marked, WaitGroups};

use crate::args::{
    CreateFormat, ListArgs, NameArgs, StatusArgs, parse_duration, parse_holder, parse_message,
    parse_name,
};
use crate::exit::{
    EXIT_ERROR, EXIT_FAILED, EXIT_FAILED_FOR_GOOD, EXIT_OK, EXIT_TIMED_OUT, program_name,
};
use crate::output::{self, Display};
use crate::run::{Ran, check_runnable, supervised};
use crate::signals::Interrupts;
use konductor_sdk::waiting::Progress;

/// `waitgroup` commands.
#[derive(Subcommand, Debug)]
pub enum WaitGroupCommand {
    /// Add members by ID (creating the WaitGroup if it does not exist). Adding a member
    /// that is already there changes nothing, so a retry is safe.
    Add(AddArgs),
    /// Mark a member done (adding it if needed): it succeeded, or with --failed it
    /// failed. Marking it again with the same result changes nothing.
    Done(DoneArgs),
    /// Say that every member has been added: the group is Done once they all finish.
    Seal(NameArgs),
    /// Wait until the group is finished: exit 0 when Done, 4 when Failed (too many
    /// members failed), 3 when it timed out, 5 when --timeout passes first.
    Wait(crate::args::WaitArgs),
    /// Run a command as a member: add it, hold it (renewed with the group's memberTTL),
    /// run the command, and mark the member done with the command's exit code.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Show the group: phase, counts, pending members and failures.
    Status(StatusArgs),
    /// Create a WaitGroup.
    Create(CreateArgs),
    /// Delete a WaitGroup (its members go with it).
    Delete(NameArgs),
    /// List WaitGroups.
    List(ListArgs),
}

/// What `waitgroup run` does, for its `--help`.
pub const RUN_HELP: &str = "\
waitgroup run adds the member (creating the WaitGroup from the spec flags if it does not
exist; an existing group keeps its spec, and a flag that differs is warned about), takes
it as its holder and runs the command under a supervisor. Exit code 0 marks the member
done; any other marks the attempt failed, with the exit code and a message. A member
fails for good after the group's memberAttempts failed attempts (default 1); a retry
before then runs the command again. A sealed group takes no new member: an ID it does
not have is refused.

Interrupted is not failed: SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the
command; the member is marked interrupting at once and renewed until the command is
gone. If the command then exits 0 the member is done; otherwise it goes back to pending
(a retry runs it again) — up to the group's maxInterruptions (default 3), after which
an interruption counts as a failed attempt.

With the group's memberTTL set, the member is renewed while the command runs: a worker
that dies without a word fails its attempt after the ttl instead of hanging the group;
if renewals go unacknowledged for too long the command is stopped (SIGTERM, then
SIGKILL) and run exits 7.

Exit codes: 0 the member is done (by this run, or already: nothing ran); the command's
own code otherwise (128+N if signal N ended it; the last stderr line says it is the
command's); 8 the member had failed for good (nothing ran); 7 the hold was lost;
126/127 the command cannot be run; 1 an error.";

/// A WaitGroup's spec on the command line (`create`; `add` and `run`, which create the
/// group if absent).
#[derive(Args, Debug, Default)]
pub struct SpecArgs {
    /// How many members make the group complete [default: none — it is complete when
    /// sealed].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=i64::from(MAX_MEMBERS)))]
    pub expected: Option<i32>,
    /// How many members may fail with the group still Done [default: 0].
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=i64::from(MAX_MEMBERS)))]
    pub max_failed: Option<i32>,
    /// How long a held member (`waitgroup run`) lives without renewal before it counts
    /// as failed (a Go duration, at least 2s) [default: held members never expire].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub member_ttl: Option<Duration>,
    /// How long the group may take, from its creation, before it times out (a Go
    /// duration) [default: no limit].
    #[arg(long = "group-timeout", value_name = "DURATION", value_parser = crate::args::parse_timeout)]
    pub group_timeout: Option<String>,
    /// Delete the group this long after it finished (a Go duration).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::parse_timeout)]
    pub ttl_after_finished: Option<String>,
    /// How many failed attempts a member gets before it fails for good: a retry of a
    /// failed member (`waitgroup run` again) runs it again until then [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=i64::from(MAX_ATTEMPTS)))]
    pub member_attempts: Option<i32>,
    /// How many interruptions (SIGINT/SIGTERM/SIGHUP/SIGQUIT while the command ran) of
    /// one member do not count as failed attempts [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=i64::from(MAX_ATTEMPTS)))]
    pub max_interruptions: Option<i32>,
}

impl SpecArgs {
    fn spec(&self) -> WaitGroupSpec {
        let default = WaitGroupSpec::default();
        WaitGroupSpec {
            expected: self.expected,
            sealed: false,
            max_failed: self.max_failed.unwrap_or(default.max_failed),
            member_ttl: self.member_ttl_text(),
            timeout: self.group_timeout.clone(),
            ttl_after_finished: self.ttl_after_finished.clone(),
            member_attempts: self.member_attempts.unwrap_or(default.member_attempts),
            max_interruptions: self.max_interruptions.unwrap_or(default.max_interruptions),
        }
    }

    fn member_ttl_text(&self) -> Option<String> {
        self.member_ttl
            .map(konductor_api::duration::format_duration)
    }

    /// The flags given that differ from `stored`'s spec.
    fn differences(&self, stored: &WaitGroupSpec) -> Vec<output::Differs> {
        let duration = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| konductor_api::duration::parse_duration(t).ok())
        };
        let member_ttl = self
            .member_ttl
            .filter(|given| Some(*given) != duration(&stored.member_ttl))
            .map(konductor_api::duration::format_duration);
        let timeout = self
            .group_timeout
            .clone()
            .filter(|given| duration(&Some(given.clone())) != duration(&stored.timeout));
        let ttl_after = self
            .ttl_after_finished
            .clone()
            .filter(|given| duration(&Some(given.clone())) != duration(&stored.ttl_after_finished));
        [
            output::differs(
                "--expected",
                "expected",
                self.expected.map(Some),
                stored.expected,
            ),
            output::differs(
                "--max-failed",
                "maxFailed",
                self.max_failed,
                stored.max_failed,
            ),
            output::differs(
                "--member-ttl",
                "memberTTL",
                member_ttl.map(Some),
                stored.member_ttl.clone(),
            ),
            output::differs(
                "--group-timeout",
                "timeout",
                timeout.map(Some),
                stored.timeout.clone(),
            ),
            output::differs(
                "--ttl-after-finished",
                "ttlAfterFinished",
                ttl_after.map(Some),
                stored.ttl_after_finished.clone(),
            ),
            output::differs(
                "--member-attempts",
                "memberAttempts",
                self.member_attempts,
                stored.member_attempts,
            ),
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

/// The WaitGroup `name`, created from `spec` if absent (said so); an existing one's
/// spec is kept, and the flags that differ from it are warned about.
async fn ensure(groups: &WaitGroups, name: &str, spec: &SpecArgs) -> konductor_sdk::Result<()> {
    let ensured = groups.ensure(name, spec.spec()).await?;
    if ensured.created {
        output::say_created("waitgroup", groups.namespace(), name);
    } else {
        let differences = spec.differences(&ensured.object.spec);
        output::warn_kept("waitgroup", groups.namespace(), name, &differences);
    }
    Ok(())
}

/// A member ID: not empty, at most 253 characters.
fn parse_member(text: &str) -> Result<String, String> {
    match text.len() {
        0 => Err("must not be empty".to_owned()),
        n if n > MAX_MEMBER_ID_LEN => Err(format!(
            "must be at most {MAX_MEMBER_ID_LEN} characters (it has {n})"
        )),
        _ => Ok(text.to_owned()),
    }
}

/// `waitgroup add`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("ids").required(true).multiple(false))]
pub struct AddArgs {
    /// The WaitGroup's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Member IDs to add (repeat the flag, or separate with commas).
    #[arg(long = "member", value_name = "ID", value_delimiter = ',', value_parser = parse_member, group = "ids")]
    pub members: Vec<String>,
    /// Add N members with generated IDs, as the original WaitGroup's `add N` did.
    /// Retrying such a command adds N more: prefer --member.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000), group = "ids")]
    pub delta: Option<u32>,
    /// The spec of the group, if this creates it.
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// `waitgroup done`.
#[derive(Args, Debug)]
pub struct DoneArgs {
    /// The WaitGroup's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The member's ID.
    #[arg(long = "member", value_name = "ID", value_parser = parse_member)]
    pub member: String,
    /// The member failed (default: it succeeded).
    #[arg(long)]
    pub failed: bool,
    /// Why, for a failure.
    #[arg(long, value_parser = parse_message)]
    pub message: Option<String>,
    /// The exit code of the member's work, to record with the outcome.
    #[arg(long)]
    pub exit_code: Option<i32>,
}

/// `waitgroup run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The WaitGroup's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The member's ID.
    #[arg(long = "member", value_name = "ID", value_parser = parse_member)]
    pub member: String,
    /// Who runs it [default: $POD_NAME or the hostname, with a random suffix].
    #[arg(long, value_parser = parse_holder)]
    pub holder: Option<String>,
    /// The spec of the group, if this creates it.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `waitgroup create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The WaitGroup's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Its spec.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Create it sealed (its members are added before it… or there are none).
    #[arg(long)]
    pub sealed: bool,
    /// Print the created object in this format [default: a line].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

type Code = konductor_sdk::Result<u8>;

/// Runs one `waitgroup` command.
pub async fn command(command: WaitGroupCommand, connection: &konductor_sdk::Connection) -> Code {
    let groups = WaitGroups::new(connection);
    let reader = konductor_sdk::reading::Reader::new(connection);
    match command {
        WaitGroupCommand::Add(args) => add(&groups, args).await,
        WaitGroupCommand::Done(args) => done(&groups, args).await,
        WaitGroupCommand::Seal(args) => {
            let group = groups.seal(&args.name).await?;
            println!(
                "waitgroup {}/{} sealed: {} members added",
                groups.namespace(),
                args.name,
                group.status.map_or(0, |s| s.added)
            );
            Ok(EXIT_OK)
        }
        WaitGroupCommand::Wait(args) => wait(&groups, args).await,
        WaitGroupCommand::Run(args) => run(&groups, args).await,
        WaitGroupCommand::Status(args) => match args.output {
            Some(format) => output::print_stored(&reader, &kind(), &args.name, format).await,
            None => {
                let group = groups.get(&args.name).await?;
                print!("{}", summary(&group, groups.namespace()));
                Ok(EXIT_OK)
            }
        },
        WaitGroupCommand::Create(args) => {
            let spec = WaitGroupSpec {
                sealed: args.sealed,
                ..args.spec.spec()
            };
            let group = groups.create(&args.name, spec).await?;
            output::print_created(&group, args.output);
            Ok(EXIT_OK)
        }
        WaitGroupCommand::Delete(args) => {
            groups.delete(&args.name).await?;
            output::print_deleted::<WaitGroup>(&args.name);
            Ok(EXIT_OK)
        }
        WaitGroupCommand::List(args) => {
            output::list(&reader, &kind(), groups.namespace(), &args).await
        }
    }
}

async fn add(groups: &WaitGroups, args: AddArgs) -> Code {
    let ids = match args.delta {
        Some(n) => {
            eprintln!(
                "{}: --delta {n}: adding {n} members with generated IDs; retrying this command adds {n} more (use --member ID… to make retries safe)",
                program_name()
            );
            let prefix = format!("m-{}", crate::holder::nonce());
            (1..=n).map(|i| format!("{prefix}-{i}")).collect()
        }
        None => args.members,
    };
    ensure(groups, &args.name, &args.spec).await?;
    let added = groups.add(&args.name, &ids).await?;
    let mut line = format!(
        "waitgroup {}/{}: added {} member(s)",
        groups.namespace(),
        args.name,
        added.created.len()
    );
    if !added.existing.is_empty() {
        line.push_str(&format!(
            "; {} already there ({})",
            added.existing.len(),
            shortened(&added.existing)
        ));
    }
    if args.delta.is_some() {
        line.push_str(&format!(": {}", shortened(&added.created)));
    }
    println!("{line}");
    Ok(EXIT_OK)
}

/// The first few of `ids`, and how many more.
fn shortened(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
    match ids.len() - shown.len() {
        0 => shown.join(", "),
        more => format!("{}, … {more} more", shown.join(", ")),
    }
}

async fn done(groups: &WaitGroups, args: DoneArgs) -> Code {
    let outcome = if args.failed {
        MemberOutcome::failed(args.exit_code, args.message)
    } else {
        MemberOutcome {
            message: args.message,
            ..MemberOutcome::succeeded(args.exit_code)
        }
    };
    let word = if args.failed { "failed" } else { "done" };
    let marked = groups.done(&args.name, &args.member, outcome).await?;
    println!(
        "waitgroup {}/{}: member {} {word}{}",
        groups.namespace(),
        args.name,
        args.member,
        if marked == Marked::AlreadyRecorded {
            " (already recorded)"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

/// One line on where the group stands.
fn progress_line(group: &WaitGroup) -> String {
    let status = group.status.clone().unwrap_or_default();
    format!("{}: {}", group.phase(), status.summary())
}

async fn wait(groups: &WaitGroups, args: crate::args::WaitArgs) -> Code {
    let namespace = groups.namespace();
    let qualified = format!("{namespace}/{}", args.name);
    let display = Display::for_stderr(args.quiet);
    let started = Instant::now();
    let mut last_line = String::new();
    let result = groups
        .wait(&args.name, args.timeout, |progress| {
            let line = match progress {
                Progress::Missing(absence) => {
                    output::absence_line("waitgroup", namespace, &args.name, absence)
                }
                Progress::Reconnecting(why) => {
                    format!("lost the watch on waitgroup {qualified} ({why}); reconnecting")
                }
                Progress::Waiting(group) => {
                    format!("waitgroup {qualified}: {}", progress_line(group))
                }
            };
            if line != last_line {
                display.say(&line);
            }
            last_line = line;
        })
        .await;
    display.finish();
    let group = result?;
    let waited = output::short_duration(started.elapsed());
    let summary = group.status.clone().unwrap_or_default().summary();
    match group.phase() {
        WaitGroupPhase::Done => {
            let _ = writeln!(
                std::io::stdout(),
                "waitgroup {qualified} is done: {summary} (waited {waited})"
            );
            Ok(EXIT_OK)
        }
        WaitGroupPhase::Failed => {
            eprintln!(
                "{}: waitgroup {qualified} failed: {summary}",
                program_name()
            );
            Ok(EXIT_FAILED)
        }
        WaitGroupPhase::Timeout => {
            eprintln!(
                "{}: waitgroup {qualified} timed out: {summary}",
                program_name()
            );
            Ok(EXIT_TIMED_OUT)
        }
        WaitGroupPhase::Waiting | WaitGroupPhase::Unknown => Ok(EXIT_ERROR),
    }
}

/// How long `run` gives a command between SIGTERM and SIGKILL when the group has no
/// memberTTL (and the hold cannot be lost): on an interrupt only.
const DEFAULT_RUN_TTL: Duration = Duration::from_secs(30);

async fn run(groups: &WaitGroups, args: RunArgs) -> Code {
    let (program, _) = args.command.split_first().expect("clap requires a command");
    if let Err((code, why)) = check_runnable(program) {
        eprintln!("{}: {why}", program_name());
        return Ok(code);
    }
    let holder = crate::holder::run_identity(args.holder);
    ensure(groups, &args.name, &args.spec).await?;
    let what = format!(
        "waitgroup {}/{} member {}",
        groups.namespace(),
        args.name,
        args.member
    );
    let held = match groups.hold(&args.name, &args.member, &holder).await? {
        Hold::Held(held) => held,
        Hold::Done => {
            eprintln!("{what} already done; nothing to run");
            return Ok(EXIT_OK);
        }
        Hold::Failed(failure) => {
            eprintln!("{}: {what} {}", program_name(), failed_for_good(&failure));
            return Ok(EXIT_FAILED_FOR_GOOD);
        }
    };
    let timing = held
        .timing()
        .unwrap_or_else(|| konductor_sdk::claims::held::Timing::for_ttl(DEFAULT_RUN_TTL));
    let mut interrupts = Interrupts::new();
    let ran = supervised(
        &args.command,
        &[],
        timing,
        held.lost(),
        &mut interrupts,
        &what,
        held.mark_interrupting(),
    )
    .await;
    let then = match ran {
        Ran::Succeeded => {
            held.done(MemberOutcome::succeeded(Some(0))).await?;
            "member done"
        }
        Ran::Failed(code) => {
            let outcome = MemberOutcome::failed(
                Some(i32::from(code)),
                Some(format!("{program} exited with code {code}")),
            );
            held.done(outcome).await?;
            "member failed"
        }
        Ran::Interrupted(code) => {
            held.withdraw_interrupted(
                Some(i32::from(code)),
                Some(format!("{program} was interrupted (exit code {code})")),
            )
            .await?;
            "member withdrawn: pending again"
        }
        Ran::Lost | Ran::NotStarted => {
            held.abandon();
            return Ok(ran.code());
        }
    };
    Ok(ran.report(&what, program, then))
}

/// Why a member failed for good, and how many attempts it had.
fn failed_for_good(failure: &MemberFailure) -> String {
    format!(
        "failed for good after {} failed attempt(s): {}",
        failure.attempts.max(1),
        failure.message.as_deref().unwrap_or("failed")
    )
}

/// The human summary of a WaitGroup.
pub fn summary(group: &WaitGroup, namespace: &str) -> String {
    let status = group.status.clone().unwrap_or_default();
    let mut text = format!(
        "waitgroup {namespace}/{}: {} · {} added · {} done · {} failed · {} pending{}\n{}\n",
        kube::ResourceExt::name_any(group),
        status.phase,
        status.added,
        status.done,
        status.failed,
        status.counter,
        if group.spec.sealed { " · sealed" } else { "" },
        status.summary()
    );
    if !status.pending.is_empty() {
        text.push_str(&format!("pending: {}\n", status.pending.join(", ")));
    }
    for failure in &status.failures {
        text.push_str(&format!(
            "failed: {}{}{}\n",
            failure.member,
            if failure.expired { " (expired)" } else { "" },
            failure
                .message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if status.late > 0 {
        text.push_str(&format!(
            "late: {} member(s) added after it was Done (not counted)\n",
            status.late
        ));
    }
    text
}

/// The WaitGroup kind, as `list` and `status -o` read it.
fn kind() -> konductor_sdk::reading::KindRef {
    konductor_sdk::reading::KindRef::of::<WaitGroup>("waitgroup", "waitgroups")
}
