//! `koncli gate …` (Gate objects, [`konductor_sdk::gate::Gates`]) and `koncli wait`
//! (the same conditions with no Gate object, [`konductor_sdk::gate::WaitFor`]).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use konductor_api::gate::target::{parse_for, parse_resume};
use konductor_api::gate::{
    Gate, GateCondition, GateMatch, GateOverride, GatePhase, GateSpec, GateStatus, WhenMissing,
};
use konductor_sdk::Connection;
use konductor_sdk::gate::{Gates, WaitFor, condition_for, resume_target, resume_warning};

use crate::args::{
    CreateFormat, ListArgs, NameArgs, StatusArgs, parse_duration, parse_name, parse_timeout,
};
use crate::exit::{EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_TIMED_OUT};
use crate::output::{self, Display};
use konductor_sdk::waiting::Progress;

/// The `--for` grammar, for `--help`.
pub const FOR_HELP: &str = "\
--for KIND/NAME                        the kind's preset: job Complete (a Failed job
                                       fails the wait), deployment Available at its
                                       current generation, barrier Open, once
                                       Succeeded, waitgroup Done, gate Open, mutex and
                                       rwmutex Unlocked, semaphore Available
--for KIND/NAME=condition=TYPE[=STATUS]  a status condition (STATUS default True)
--for KIND/NAME=jsonpath=EXPR            EXPR selects a value
--for KIND/NAME=jsonpath=EXPR=VALUE      a selected value equals VALUE
KIND is what kubectl accepts: job, jobs, deploy, jobs.batch, jobs.v1.batch, databases.acme.example.com.
Objects are in the namespace (-n); one not created yet is waited for. A status older
than its object's spec (status.observedGeneration below metadata.generation) never
counts. --fail-on takes the same forms: any that holds fails the wait at once.";

/// `gate` commands.
#[derive(Subcommand, Debug)]
pub enum GateCommand {
    /// Create a Gate: it opens once its conditions hold (all, or with --any one).
    #[command(after_help = FOR_HELP)]
    Create(CreateArgs),
    /// Wait until the Gate is finished: exit 0 when Open, 4 when Failed, 3 when it
    /// timed out, 5 when --timeout passes first.
    Wait(crate::args::WaitArgs),
    /// Show the Gate: phase, and a row per condition (met, since, message).
    Status(StatusArgs),
    /// Open the Gate now, whatever its conditions say (spec.override: Open).
    Open(NameArgs),
    /// Keep the Gate closed, whatever its conditions say (spec.override: Closed).
    Close(NameArgs),
    /// Remove the override: the conditions decide again.
    Auto(NameArgs),
    /// Delete a Gate.
    Delete(NameArgs),
    /// List Gates.
    List(ListArgs),
}

/// A `--for` or `--fail-on` value, checked for its grammar (the kind is resolved
/// later, against the server).
fn parse_for_argument(text: &str) -> Result<String, String> {
    parse_for(text).map(|_| text.to_owned())
}

/// A `--resume` value, checked for its grammar (the kind is resolved later).
fn parse_resume_argument(text: &str) -> Result<String, String> {
    parse_resume(text).map(|_| text.to_owned())
}

/// The conditions of a Gate or a wait, on the command line.
#[derive(Args, Debug)]
pub struct ConditionArgs {
    /// A condition (repeat for more); see below for the forms.
    #[arg(long = "for", value_name = "KIND/NAME[=TEST]", required = true, value_parser = parse_for_argument)]
    pub conditions: Vec<String>,
    /// One condition met is enough [default: all of them].
    #[arg(long, conflicts_with = "min_met")]
    pub any: bool,
    /// How many conditions must be met.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=64))]
    pub min_met: Option<i32>,
    /// A failure test (repeat for more): when it holds, fail at once.
    #[arg(long = "fail-on", value_name = "KIND/NAME[=TEST]", value_parser = parse_for_argument)]
    pub fail_on: Vec<String>,
    /// Each condition counts only once its test has held this long without a break (a
    /// Go duration).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub stable_for: Option<String>,
    /// Fail when an object named by --for does not exist (or is deleted before its
    /// condition is met) instead of waiting for it to be created.
    #[arg(long)]
    pub fail_if_missing: bool,
}

impl ConditionArgs {
    /// The spec these arguments describe, with every kind resolved by discovery.
    async fn spec(&self, connection: &Connection) -> konductor_sdk::Result<GateSpec> {
        let mut spec = GateSpec {
            match_: if self.any {
                GateMatch::Any
            } else {
                GateMatch::All
            },
            min_met: self.min_met,
            ..GateSpec::default()
        };
        for text in &self.conditions {
            let mut condition = condition_for(connection, text).await?;
            condition.stable_for = self.stable_for.clone();
            if self.fail_if_missing {
                condition.when_missing = Some(WhenMissing::Fail);
            }
            spec.conditions.push(condition);
        }
        for text in &self.fail_on {
            spec.fail_when.push(condition_for(connection, text).await?);
        }
        Ok(spec)
    }
}

/// `gate create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The Gate's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Its conditions.
    #[command(flatten)]
    pub conditions: ConditionArgs,
    /// An object to resume when the Gate opens (repeat for more): a Job (JobSet, Argo
    /// Workflow) created with spec.suspend: true and the annotation
    /// konductor.io/resume-by: NAME (its opt-in). Nothing is resumed if the Gate fails.
    #[arg(long = "resume", value_name = "KIND/NAME", value_parser = parse_resume_argument)]
    pub resume: Vec<String>,
    /// How long the Gate may wait, from its creation, before it times out (a Go
    /// duration) [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<String>,
    /// Print the created object in this format [default: a line].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// `koncli wait`: conditions with no Gate object.
#[derive(Args, Debug)]
#[command(after_help = FOR_HELP)]
pub struct WaitForArgs {
    /// What to wait for.
    #[command(flatten)]
    pub conditions: ConditionArgs,
    /// Wait at most this long (a Go duration), then exit 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// No progress on stderr; only the final line.
    #[arg(short, long)]
    pub quiet: bool,
}

type Code = konductor_sdk::Result<u8>;

/// Runs one `gate` command.
pub async fn command(command: GateCommand, connection: &Connection) -> Code {
    let gates = Gates::new(connection);
    let reader = konductor_sdk::reading::Reader::new(connection);
    let qualified = |name: &str| format!("{}/{name}", gates.namespace());
    match command {
        GateCommand::Create(args) => {
            let mut spec = GateSpec {
                timeout: args.timeout.clone(),
                ..args.conditions.spec(connection).await?
            };
            for text in &args.resume {
                spec.resume.push(resume_target(connection, text).await?);
            }
            let gate = gates.create(&args.name, spec).await?;
            output::print_created(&gate, args.output);
            for target in &gate.spec.resume {
                if let Some(why) = resume_warning(connection, &args.name, target).await {
                    eprintln!(
                        "{}: warning: gate {}/{}: {why}",
                        crate::exit::program_name(),
                        gates.namespace(),
                        args.name
                    );
                }
            }
            warn_unreadable(&gates, &args.name).await;
            Ok(EXIT_OK)
        }
        GateCommand::Wait(args) => {
            let what = format!("gate {}", qualified(&args.name));
            let display = Display::for_stderr(args.quiet);
            let started = Instant::now();
            let mut last_line = String::new();
            let namespace = gates.namespace();
            let result = gates
                .wait(&args.name, args.timeout, |progress| match progress {
                    Progress::Waiting(gate) => {
                        let status = gate.status.clone().unwrap_or_default();
                        report(&display, &what, &status, &mut last_line);
                    }
                    Progress::Missing(absence) => {
                        let line = output::absence_line("gate", namespace, &args.name, absence);
                        display.say(&line);
                        last_line = line;
                    }
                    Progress::Reconnecting(why) => {
                        display.say(&format!("lost the watch on {what} ({why}); reconnecting"));
                    }
                })
                .await;
            display.finish();
            let gate = result?;
            Ok(finish(
                &what,
                &gate.status.unwrap_or_default(),
                started.elapsed(),
            ))
        }
        GateCommand::Status(args) => match args.output {
            Some(format) => output::print_stored(&reader, &kind(), &args.name, format).await,
            None => {
                let gate = gates.get(&args.name).await?;
                print!("{}", summary(&gate, gates.namespace()));
                Ok(EXIT_OK)
            }
        },
        GateCommand::Open(args) => overridden(&gates, &args.name, Some(GateOverride::Open)).await,
        GateCommand::Close(args) => {
            overridden(&gates, &args.name, Some(GateOverride::Closed)).await
        }
        GateCommand::Auto(args) => overridden(&gates, &args.name, None).await,
        GateCommand::Delete(args) => {
            gates.delete(&args.name).await?;
            output::print_deleted::<Gate>(&args.name);
            Ok(EXIT_OK)
        }
        GateCommand::List(args) => output::list(&reader, &kind(), gates.namespace(), &args).await,
    }
}

/// How long `gate create` waits for the controller's first look at the objects.
const FIRST_LOOK: Duration = Duration::from_secs(3);

/// Warns at once about each condition whose object the controller cannot read (a kind
/// not served, or one it may not read): the Gate would wait on it silently.
async fn warn_unreadable(gates: &Gates, name: &str) {
    let Some(gate) = gates.first_look(name, FIRST_LOOK).await else {
        return;
    };
    for result in gate
        .status
        .iter()
        .flat_map(|s| &s.results)
        .filter(|r| r.unreadable)
    {
        eprintln!(
            "{}: warning: gate {}/{name}: {}: {} (the Gate waits until it can read it)",
            crate::exit::program_name(),
            gates.namespace(),
            result.target,
            result.message
        );
    }
}

/// The Gate kind, as `list` and `status -o` read it.
fn kind() -> konductor_sdk::reading::KindRef {
    konductor_sdk::reading::KindRef::of::<Gate>("gate", "gates")
}

async fn overridden(gates: &Gates, name: &str, value: Option<GateOverride>) -> Code {
    gates.set_override(name, value).await?;
    let what = match value {
        Some(GateOverride::Open) => "opened by override",
        Some(GateOverride::Closed) => "held closed by override",
        None => "handed back to its conditions",
    };
    println!("gate {}/{name} {what}", gates.namespace());
    Ok(EXIT_OK)
}

/// `koncli wait --for …`.
pub async fn wait_for(args: WaitForArgs, connection: &Connection) -> Code {
    let spec = args.conditions.spec(connection).await?;
    let what = spec
        .conditions
        .iter()
        .map(|c: &GateCondition| c.target.to_string())
        .collect::<Vec<_>>()
        .join(if spec.match_ == GateMatch::Any && spec.min_met.is_none() {
            " or "
        } else {
            " and "
        });
    let mut waiting = WaitFor::new(connection);
    for condition in spec.conditions {
        waiting = waiting.condition(condition);
    }
    for condition in spec.fail_when {
        waiting = waiting.fail_when(condition);
    }
    if spec.match_ == GateMatch::Any {
        waiting = waiting.any();
    }
    if let Some(n) = spec.min_met {
        waiting = waiting.min_met(n);
    }
    let display = Display::for_stderr(args.quiet);
    let started = Instant::now();
    let mut last_line = String::new();
    let result = waiting
        .wait(args.timeout, |status| {
            report(&display, &what, status, &mut last_line);
        })
        .await;
    display.finish();
    Ok(finish(&what, &result?, started.elapsed()))
}

/// Progress on stderr: a line whenever where it stands changes.
fn report(display: &Display, what: &str, status: &GateStatus, last_line: &mut String) {
    let line = format!("{}: {}", status.phase, status.summary());
    if line != *last_line && !status.phase.is_finished() {
        display.say(&format!("{what}: {line}"));
    }
    *last_line = line;
}

/// The final line and the exit code of a wait.
fn finish(what: &str, status: &GateStatus, waited: Duration) -> u8 {
    let waited = output::short_duration(waited);
    let summary = status.summary();
    let code = match status.phase {
        GatePhase::Open => EXIT_OK,
        GatePhase::Failed => EXIT_FAILED,
        GatePhase::Timeout => EXIT_TIMED_OUT,
        GatePhase::Waiting | GatePhase::Unknown => EXIT_ERROR,
    };
    let line = format!("{what}: {}: {summary} (waited {waited})", status.phase);
    if code == EXIT_OK {
        let _ = writeln!(std::io::stdout(), "{line}");
    } else {
        eprintln!("{}: {line}", crate::exit::program_name());
    }
    code
}

/// The human summary of a Gate: a line, then a row per condition.
pub fn summary(gate: &Gate, namespace: &str) -> String {
    let status = gate.status.clone().unwrap_or_default();
    let mut text = format!(
        "gate {namespace}/{}: {} · {} of {} met ({} required){}\n{}\n",
        kube::ResourceExt::name_any(gate),
        status.phase,
        status.met,
        status.total,
        status.required,
        match gate.spec.override_ {
            Some(GateOverride::Open) => " · override Open",
            Some(GateOverride::Closed) => " · override Closed",
            None => "",
        },
        status.summary()
    );
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut rows = vec![vec![
        "CONDITION".to_owned(),
        "TEST".to_owned(),
        "MET".to_owned(),
        "SINCE".to_owned(),
        "MESSAGE".to_owned(),
    ]];
    for result in &status.results {
        rows.push(vec![
            result.target.clone(),
            result.test.clone(),
            if result.failed {
                "failed".to_owned()
            } else {
                result.met.to_string()
            },
            result
                .since
                .as_ref()
                .map_or("-".to_owned(), |t| output::age(t.0, now)),
            result.message.clone(),
        ]);
    }
    text.push_str(&output::aligned(&rows));
    if !status.resume.is_empty() {
        let mut rows = vec![vec![
            "RESUME".to_owned(),
            "STATE".to_owned(),
            "RESUMED".to_owned(),
            "MESSAGE".to_owned(),
        ]];
        for result in &status.resume {
            rows.push(vec![
                result.target.to_string(),
                format!("{:?}", result.state),
                result
                    .resumed_at
                    .as_ref()
                    .map_or("-".to_owned(), |t| output::age(t.0, now)),
                result.message.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&output::aligned(&rows));
    }
    text
}
