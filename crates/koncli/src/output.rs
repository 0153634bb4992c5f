//! How koncli shows things: a barrier's summary and table, aligned tables for any
//! kind, JSON and YAML, and progress while a command waits.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use konductor_api::duration::format_duration;
use konductor_api::{Barrier, BarrierPhase, Outcome};
use konductor_sdk::{Absence, Arrived};
use kube::ResourceExt;

use crate::args::OutputFormat;

/// A duration rounded to whole seconds, in Go notation (`17m48s`).
pub fn short_duration(duration: Duration) -> String {
    format_duration(Duration::from_secs(duration.as_secs()))
}

/// kubectl's age notation: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    konductor_api::duration::human_duration(elapsed)
}

/// `namespace/name`.
pub fn qualified(barrier: &Barrier) -> String {
    format!(
        "{}/{}",
        barrier.namespace().unwrap_or_default(),
        barrier.name_any()
    )
}

/// Arrived / required / expected, e.g. `3/4 arrived (5 expected)`.
pub fn counts(barrier: &Barrier) -> String {
    let arrived = barrier.status.as_ref().map_or(0, |s| s.arrived);
    let required = barrier.spec.required();
    if required == barrier.spec.expected {
        format!("{arrived}/{required} arrived")
    } else {
        format!(
            "{arrived}/{required} arrived (quorum of {} expected)",
            barrier.spec.expected
        )
    }
}

/// `5 expected, quorum 4, timeout 30m`.
fn spec_line(barrier: &Barrier) -> String {
    let mut line = format!("{} expected", barrier.spec.expected);
    if let Some(quorum) = barrier.spec.quorum {
        let _ = write!(line, ", quorum {quorum}");
    }
    if let Some(timeout) = &barrier.spec.timeout {
        let _ = write!(line, ", timeout {timeout}");
    }
    line
}

/// Time left until the deadline, if the barrier has one and it is in the future.
pub fn time_left(barrier: &Barrier, now: Timestamp) -> Option<Duration> {
    let deadline = barrier.status.as_ref()?.lifecycle.deadline.as_ref()?.0;
    Duration::try_from(deadline.duration_since(now)).ok()
}

/// The progress line for a waited-for `kind` `namespace/name` that is not there.
pub fn absence_line(kind: &str, namespace: &str, name: &str, absence: Absence) -> String {
    absence.line(kind, namespace, name)
}

/// A spec flag given on the command line whose value differs from the stored object's
/// (the object exists, so the flag changes nothing).
pub struct Differs {
    /// The flag, as typed (`--max-failed`).
    pub flag: &'static str,
    /// The spec field it sets (`maxFailed`).
    pub field: &'static str,
    /// The value given.
    pub given: serde_json::Value,
    /// The value stored, which is kept.
    pub kept: serde_json::Value,
}

/// The difference between a flag's value (if it was given) and the stored one.
pub fn differs<T: k8s_openapi::serde::Serialize + PartialEq>(
    flag: &'static str,
    field: &'static str,
    given: Option<T>,
    kept: T,
) -> Option<Differs> {
    let given = given.filter(|given| *given != kept)?;
    Some(Differs {
        flag,
        field,
        given: serde_json::to_value(given).unwrap_or_default(),
        kept: serde_json::to_value(kept).unwrap_or_default(),
    })
}

/// Warns, for each flag that differs from the existing `resource` `namespace/name`'s
/// spec, that the stored value is kept, and how to change it.
pub fn warn_kept(resource: &str, namespace: &str, name: &str, differences: &[Differs]) {
    for d in differences {
        let kept = match &d.kept {
            serde_json::Value::Null => "unset".to_owned(),
            value => value.to_string(),
        };
        let patch = serde_json::json!({ "spec": { d.field: d.given } });
        eprintln!(
            "{}: warning: {resource} {namespace}/{name} exists with spec.{} {kept}: {} {} is ignored (to change it: kubectl patch {resource} {name} -n {namespace} --type=merge -p '{patch}')",
            crate::exit::program_name(),
            d.field,
            d.flag,
            d.given,
        );
    }
}

/// Says that a `run` made `resource` `namespace/name` on first use (informational).
pub fn say_created(resource: &str, namespace: &str, name: &str) {
    eprintln!("created {resource} {namespace}/{name} (first use)");
}

/// The line `arrive` prints and its exit code: 0 when the arrival was recorded, or was
/// already recorded as asked; 1 when what was asked is not what stands. `barrier` is
/// the barrier as read just before arriving, to say whether the arrival still counts.
pub fn arrival_line(
    holder: &str,
    barrier: &Barrier,
    asked: Outcome,
    arrived: Arrived,
) -> (String, u8) {
    let at = qualified(barrier);
    let recorded = |what: String| (format!("{what}{}", state_note(barrier, asked)), 0);
    match (arrived, asked) {
        (Arrived::Recorded, Outcome::Succeeded) => {
            recorded(format!("{holder} arrived at barrier {at}"))
        }
        (Arrived::Recorded, Outcome::Failed) => {
            recorded(format!("reported failure of {holder} at barrier {at}"))
        }
        (Arrived::RecordedAfterFailure, _) => recorded(format!(
            "{holder} arrived at barrier {at}, replacing its earlier failure report"
        )),
        (Arrived::AlreadyRecorded(Outcome::Succeeded), Outcome::Succeeded) => (
            format!("{holder} had already arrived at barrier {at} (counted once)"),
            0,
        ),
        (Arrived::AlreadyRecorded(Outcome::Failed), Outcome::Failed) => (
            format!("{holder} had already reported failure at barrier {at}"),
            0,
        ),
        (Arrived::AlreadyRecorded(Outcome::Succeeded), Outcome::Failed) => (
            format!(
                "{holder} has already arrived at barrier {at}: its arrival stands, a failure reported after it is not recorded"
            ),
            1,
        ),
        (Arrived::AlreadyRecorded(Outcome::Failed), Outcome::Succeeded) => (
            format!("{holder} had reported failure at barrier {at}; its arrival was not recorded"),
            1,
        ),
        (Arrived::AlreadyRecorded(Outcome::Unknown), _) | (_, Outcome::Unknown) => (
            format!(
                "{holder} has an outcome at barrier {at} this koncli cannot read (a newer version wrote it)"
            ),
            1,
        ),
    }
}

/// Whether an arrival recorded now still matters: the barrier may have settled, or
/// have all the arrivals it expects, already. Empty when it counts as usual.
fn state_note(barrier: &Barrier, asked: Outcome) -> String {
    let Some(status) = &barrier.status else {
        return String::new();
    };
    match status.phase {
        BarrierPhase::Open => "; the barrier was already open (the arrival is recorded)".into(),
        BarrierPhase::Timeout => {
            "; the barrier had already timed out (the arrival is recorded; raising its timeout can revive it)".into()
        }
        BarrierPhase::Failed => "; the barrier had already failed (the arrival is recorded)".into(),
        BarrierPhase::Waiting
            if asked == Outcome::Succeeded && status.arrived >= barrier.spec.expected =>
        {
            format!(
                "; {} of {} expected had already arrived (this one is recorded beyond them)",
                status.arrived, barrier.spec.expected
            )
        }
        BarrierPhase::Waiting | BarrierPhase::Unknown => String::new(),
    }
}

/// The human summary of `koncli barrier status`. Shows what the server reports and
/// computes nothing that could contradict it: without a status from the controller it
/// says so.
pub fn summary(barrier: &Barrier, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Barrier:     {}", qualified(barrier));
    let Some(status) = barrier.status.clone() else {
        let _ = writeln!(out, "Spec:        {}", spec_line(barrier));
        let _ = writeln!(
            out,
            "Status:      none reported yet: is a controller running? (`konductor operator` in a cluster; `konductor server` runs one unless --no-controller)"
        );
        return out;
    };
    if let (Some(observed), Some(generation)) = (
        status.lifecycle.observed_generation,
        barrier.metadata.generation,
    ) && observed < generation
    {
        let _ = writeln!(
            out,
            "Note:        this status describes spec generation {observed}; the spec is at generation {generation}: is a controller running?"
        );
    }
    let _ = writeln!(out, "Phase:       {}", status.phase);
    let _ = writeln!(
        out,
        "Arrived:     {} of {} required ({} expected)",
        status.arrived,
        barrier.spec.required(),
        barrier.spec.expected
    );
    let failures = if status.failures.is_empty() {
        "0".to_owned()
    } else {
        let who: Vec<String> = status
            .failures
            .iter()
            .map(|f| match &f.message {
                Some(m) => format!("{} ({m})", f.holder),
                None => f.holder.clone(),
            })
            .collect();
        format!("{}: {}", status.failed, who.join(", "))
    };
    let _ = writeln!(out, "Failures:    {failures}");
    let arrivals = if status.arrivals.is_empty() {
        "none yet".to_owned()
    } else {
        status.arrivals.join(", ")
    };
    let _ = writeln!(out, "Arrivals:    {arrivals}");
    if let Some(opened) = &status.opened_at {
        let _ = writeln!(out, "Opened at:   {}", opened.0);
    } else if let Some(deadline) = &status.lifecycle.deadline {
        let left = match time_left(barrier, now) {
            Some(left) => format!("{} left", short_duration(left)),
            None => "passed".to_owned(),
        };
        let _ = writeln!(out, "Deadline:    {} ({left})", deadline.0);
    } else {
        let _ = writeln!(out, "Deadline:    none (no timeout)");
    }
    if !status.lifecycle.conditions.is_empty() {
        let _ = writeln!(out, "Conditions:");
        for c in &status.lifecycle.conditions {
            let _ = writeln!(
                out,
                "  {:<6} {:<6} {:<13} {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    out
}

/// Rows (the first is the header) as kubectl prints a table: columns left-aligned, three
/// spaces apart.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    out
}

/// An object as the server sent it (JSON as stored: every digit of its timestamps), in
/// a machine format.
pub fn serialized(raw: &serde_json::Value, format: MachineFormat) -> String {
    match format {
        MachineFormat::Json => serde_json::to_string_pretty(raw).unwrap_or_default() + "\n",
        MachineFormat::Yaml => serde_yaml::to_string(raw).unwrap_or_default(),
    }
}

/// A `BarrierList` as the server sent it, printed as kubectl does: a `v1 List`.
pub fn serialized_list(mut raw: serde_json::Value, format: MachineFormat) -> String {
    let items = raw
        .get_mut("items")
        .map(serde_json::Value::take)
        .unwrap_or_else(|| serde_json::json!([]));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    serialized(&list, format)
}

/// The machine formats (`-o json`, `-o yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineFormat {
    /// JSON, indented.
    Json,
    /// YAML.
    Yaml,
}

impl MachineFormat {
    /// The machine format of `-o`, if it is one.
    pub fn of(format: OutputFormat) -> Option<Self> {
        match format {
            OutputFormat::Json => Some(Self::Json),
            OutputFormat::Yaml => Some(Self::Yaml),
            OutputFormat::Wide => None,
        }
    }

    /// The machine format of `create -o` (always one).
    pub fn of_create(format: crate::args::CreateFormat) -> Self {
        match format {
            crate::args::CreateFormat::Json => Self::Json,
            crate::args::CreateFormat::Yaml => Self::Yaml,
        }
    }
}

/// `list` of any kind: the server's table as `kubectl get` prints it (`-o wide`: every
/// column), or the list as JSON or YAML (a `v1 List` of the stored objects).
pub async fn list(
    reader: &konductor_sdk::reading::Reader,
    kind: &konductor_sdk::reading::KindRef,
    namespace: &str,
    args: &crate::args::ListArgs,
) -> konductor_sdk::Result<u8> {
    if let Some(format) = args.output.and_then(MachineFormat::of) {
        let raw = reader.list_raw(kind, args.all_namespaces).await?;
        print!("{}", serialized_list(raw, format));
        return Ok(crate::exit::EXIT_OK);
    }
    let wide = args.output == Some(OutputFormat::Wide);
    let listing = reader.table(kind, args.all_namespaces, wide).await?;
    if listing.rows.is_empty() {
        if args.all_namespaces {
            eprintln!("No {} found.", kind.plural);
        } else {
            eprintln!("No {} found in {namespace} namespace.", kind.plural);
        }
    } else {
        let mut rows = vec![listing.header];
        rows.extend(listing.rows);
        print!("{}", aligned(&rows));
    }
    Ok(crate::exit::EXIT_OK)
}

/// `status -o json|yaml` of any kind: the object as stored, every digit of every
/// timestamp kept.
pub async fn print_stored(
    reader: &konductor_sdk::reading::Reader,
    kind: &konductor_sdk::reading::KindRef,
    name: &str,
    format: crate::args::CreateFormat,
) -> konductor_sdk::Result<u8> {
    let raw = reader.get_raw(kind, name).await?;
    print!("{}", serialized(&raw, MachineFormat::of_create(format)));
    Ok(crate::exit::EXIT_OK)
}

/// What `create` prints: the object as JSON or YAML with `-o`, else kubectl's line
/// (`once.konductor.io/NAME created`).
pub fn print_created<K>(object: &K, format: Option<crate::args::CreateFormat>)
where
    K: kube::Resource<DynamicType = ()> + k8s_openapi::serde::Serialize,
{
    match format {
        Some(format) => print_object(object, format),
        None => println!(
            "{}/{} created",
            resource_name::<K>(),
            object.meta().name.as_deref().unwrap_or_default()
        ),
    }
}

/// What `delete` prints: kubectl's line (`once.konductor.io "NAME" deleted`).
pub fn print_deleted<K: kube::Resource<DynamicType = ()>>(name: &str) {
    println!("{} \"{name}\" deleted", resource_name::<K>());
}

/// A kind as kubectl names it in what it prints: `once.konductor.io`.
fn resource_name<K: kube::Resource<DynamicType = ()>>() -> String {
    format!("{}.{}", K::kind(&()).to_lowercase(), K::group(&()))
}

/// Prints `object` as JSON or YAML (a command's `-o`).
pub fn print_object<T: k8s_openapi::serde::Serialize>(
    object: &T,
    format: crate::args::CreateFormat,
) {
    print!(
        "{}",
        serialized(
            &serde_json::to_value(object).unwrap_or_default(),
            MachineFormat::of_create(format)
        )
    );
}

/// How a wait shows its progress on stderr.
pub enum Display {
    /// A live line, redrawn (a terminal).
    Live(indicatif::ProgressBar),
    /// A plain line per change (a pipe, a log).
    Lines,
    /// Nothing but the final line (`--quiet`).
    Quiet,
}

impl Display {
    /// A live line when stderr is a terminal, plain lines otherwise; nothing if `quiet`.
    pub fn for_stderr(quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Live(bar)
        } else {
            Display::Lines
        }
    }

    /// Prints a line above the live line (or as a line of its own).
    pub fn say(&self, line: &str) {
        match self {
            Display::Live(bar) => bar.println(line),
            Display::Lines => eprintln!("{line}"),
            Display::Quiet => {}
        }
    }

    /// Clears the live line.
    pub fn finish(&self) {
        if let Display::Live(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use konductor_api::{BarrierSpec, BarrierStatus};

    #[test]
    fn ages_read_like_kubectl() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let at = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        assert_eq!(age(t0, at(5)), "5s");
        assert_eq!(age(t0, at(600)), "10m");
        assert_eq!(age(t0, at(3 * 3600)), "3h");
        assert_eq!(age(t0, at(3 * 86400)), "3d");
        assert_eq!(age(at(10), t0), "0s", "clock skew shows as new");
    }

    #[test]
    fn the_summary_names_phase_counts_and_arrivals() {
        let mut b = Barrier::new("stage-1", BarrierSpec::new(5).with_quorum(4));
        b.metadata.namespace = Some("default".into());
        b.status = Some(BarrierStatus {
            arrived: 3,
            arrivals: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        });
        let text = summary(&b, Timestamp::now());
        assert!(text.contains("Barrier:     default/stage-1"));
        assert!(text.contains("Phase:       Waiting"));
        assert!(text.contains("Arrived:     3 of 4 required (5 expected)"));
        assert!(text.contains("Arrivals:    a, b, c"));
        assert_eq!(counts(&b), "3/4 arrived (quorum of 5 expected)");
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["NAME".to_owned(), "QUORUM".to_owned(), "PHASE".to_owned()],
            vec!["b".to_owned(), String::new(), "Waiting".to_owned()],
        ];
        assert_eq!(
            aligned(&rows),
            "NAME   QUORUM   PHASE\nb               Waiting\n"
        );
    }
}
