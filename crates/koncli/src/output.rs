//! How barriers are shown: the human summary, tables, JSON and YAML.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use konductor_api::Barrier;
use konductor_api::duration::format_duration;
use kube::ResourceExt;

use crate::cli::OutputFormat;

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

/// Time left until the deadline, if the barrier has one and it is in the future.
pub fn time_left(barrier: &Barrier, now: Timestamp) -> Option<Duration> {
    let deadline = barrier.status.as_ref()?.deadline.as_ref()?.0;
    Duration::try_from(deadline.duration_since(now)).ok()
}

/// The human summary of `koncli barrier status`.
pub fn summary(barrier: &Barrier, now: Timestamp) -> String {
    let mut out = String::new();
    let status = barrier.status.clone().unwrap_or_default();
    let _ = writeln!(out, "Barrier:     {}", qualified(barrier));
    let _ = writeln!(out, "Phase:       {}", barrier.phase());
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
    } else if let Some(deadline) = &status.deadline {
        let left = match time_left(barrier, now) {
            Some(left) => format!("{} left", short_duration(left)),
            None => "passed".to_owned(),
        };
        let _ = writeln!(out, "Deadline:    {} ({left})", deadline.0);
    } else {
        let _ = writeln!(out, "Deadline:    none (no timeout)");
    }
    if !status.conditions.is_empty() {
        let _ = writeln!(out, "Conditions:");
        for c in &status.conditions {
            let _ = writeln!(
                out,
                "  {:<6} {:<6} {:<13} {}",
                c.type_, c.status, c.reason, c.message
            );
        }
    }
    out
}

/// A kubectl-style table of barriers (wide adds timeout, failures and deadline).
pub fn table(barriers: &[Barrier], wide: bool, with_namespace: bool, now: Timestamp) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<&str> = Vec::new();
    if with_namespace {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "EXPECTED", "QUORUM", "ARRIVED", "PHASE"]);
    if wide {
        header.extend(["TIMEOUT", "FAILED", "TIME LEFT"]);
    }
    header.push("AGE");
    rows.push(header.iter().map(|h| (*h).to_owned()).collect());
    for b in barriers {
        let status = b.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if with_namespace {
            row.push(b.namespace().unwrap_or_default());
        }
        row.push(b.name_any());
        row.push(b.spec.expected.to_string());
        row.push(b.spec.quorum.map_or("<none>".into(), |q| q.to_string()));
        row.push(status.arrived.to_string());
        row.push(b.phase().to_string());
        if wide {
            row.push(b.spec.timeout.clone().unwrap_or_else(|| "<none>".into()));
            row.push(status.failed.to_string());
            row.push(match (b.phase(), time_left(b, now)) {
                (konductor_api::BarrierPhase::Waiting, Some(left)) => short_duration(left),
                _ => "-".into(),
            });
        }
        row.push(
            b.creation_timestamp()
                .map_or("<unknown>".into(), |t| age(t.0, now)),
        );
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
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

/// One barrier in a machine format, or `None` for the human formats.
pub fn serialized(barrier: &Barrier, format: OutputFormat) -> Option<String> {
    match format {
        OutputFormat::Json => Some(serde_json::to_string_pretty(barrier).ok()? + "\n"),
        OutputFormat::Yaml => serde_yaml::to_string(barrier).ok(),
        OutputFormat::Wide => None,
    }
}

/// Several barriers in a machine format (a `v1 List`, as kubectl prints), or `None`.
pub fn serialized_list(barriers: &[Barrier], format: OutputFormat) -> Option<String> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": barriers});
    match format {
        OutputFormat::Json => Some(serde_json::to_string_pretty(&list).ok()? + "\n"),
        OutputFormat::Yaml => serde_yaml::to_string(&list).ok(),
        OutputFormat::Wide => None,
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
        let mut b = Barrier::new("b", BarrierSpec::new(2));
        b.metadata.namespace = Some("ns".into());
        let text = table(&[b], true, true, Timestamp::now());
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("NAMESPACE   NAME   EXPECTED   QUORUM")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("ns          b      2          <none>")
        );
    }
}
