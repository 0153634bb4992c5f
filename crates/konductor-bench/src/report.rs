//! Figures: what one measurement printed, as a JSON line the moment it is known and as a
//! row of the closing table, with the target it is held against.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// A bound a figure should respect (the targets), on one of its values.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `value <= limit`.
    AtMost(&'static str, f64),
    /// `value >= limit`.
    AtLeast(&'static str, f64),
}

impl Target {
    fn key(self) -> &'static str {
        match self {
            Target::AtMost(key, _) | Target::AtLeast(key, _) => key,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(key, limit) => format!("{key} <= {limit}"),
            Target::AtLeast(key, limit) => format!("{key} >= {limit}"),
        }
    }

    fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(_, limit) => value <= limit,
            Target::AtLeast(_, limit) => value >= limit,
        }
    }
}

/// One measured figure: a name and named values (`p50_ms`, `arrivals_per_s`, ...).
#[derive(Debug, Clone)]
pub struct Figure {
    /// Dotted name, e.g. `release.koncli.n100`.
    pub name: String,
    /// The values, in print order.
    pub values: Vec<(&'static str, f64)>,
    /// What the figure is held against, if anything.
    pub target: Option<Target>,
    /// A short free-text note (sizes, caveats).
    pub note: String,
}

impl Figure {
    /// A figure without values yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: Vec::new(),
            target: None,
            note: String::new(),
        }
    }

    /// Adds a value.
    #[must_use]
    pub fn value(mut self, key: &'static str, value: f64) -> Self {
        self.values.push((key, value));
        self
    }

    /// Adds p50/p99/max (milliseconds) and the sample count of latency samples.
    #[must_use]
    pub fn latencies(self, samples_ms: &[f64]) -> Self {
        let sorted = sorted(samples_ms);
        self.value("p50_ms", quantile(&sorted, 0.5))
            .value("p99_ms", quantile(&sorted, 0.99))
            .value("max_ms", sorted.last().copied().unwrap_or(f64::NAN))
            .value("samples", sorted.len() as f64)
    }

    /// Sets the target.
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Whether the target is met (`None` without a target).
    pub fn met(&self) -> Option<bool> {
        let target = self.target?;
        Some(self.get(target.key()).is_some_and(|v| target.met(v)))
    }

    /// The figure as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("figure".into(), json!(self.name));
        for (key, value) in &self.values {
            map.insert((*key).into(), rounded(*value));
        }
        if let Some(target) = self.target {
            map.insert("target".into(), json!(target.describe()));
            map.insert("met".into(), json!(self.met()));
        }
        if !self.note.is_empty() {
            map.insert("note".into(), json!(self.note));
        }
        Value::Object(map)
    }
}

/// JSON numbers with three decimals at most (NaN, for "not measured", becomes null).
fn rounded(value: f64) -> Value {
    if value.is_finite() {
        json!((value * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// Collects figures, printing each as a JSON line as soon as it is recorded.
#[derive(Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    /// Prints `figure` as a JSON line and keeps it for the table.
    pub fn record(&mut self, figure: Figure) {
        println!("{}", figure.to_json());
        self.figures.push(figure);
    }

    /// The figures recorded so far whose name starts with `prefix`.
    pub fn starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Figure> {
        self.figures
            .iter()
            .filter(move |f| f.name.starts_with(prefix))
    }

    /// The closing Markdown table.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| figure | values | target | met |\n| --- | --- | --- | --- |\n");
        for figure in &self.figures {
            let values = figure
                .values
                .iter()
                .map(|(k, v)| format!("{k} {}", human(*v)))
                .collect::<Vec<_>>()
                .join(", ");
            let values = if figure.note.is_empty() {
                values
            } else {
                format!("{values} ({})", figure.note)
            };
            let target = figure.target.map(Target::describe).unwrap_or_default();
            let met = match figure.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            let _ = writeln!(out, "| {} | {values} | {target} | {met} |", figure.name);
        }
        out
    }
}

/// A number for people: integers without decimals, others with up to two.
fn human(value: f64) -> String {
    if !value.is_finite() {
        "n/a".into()
    } else if (value.fract() == 0.0 && value.abs() < 1e12) || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Sorted copy of samples.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The nearest-rank quantile `q` of sorted samples (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&samples, 0.5), 50.0);
        assert_eq!(quantile(&samples, 0.99), 99.0);
        assert_eq!(quantile(&samples, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn figures_check_their_targets() {
        let figure = Figure::new("x")
            .latencies(&[1.0, 2.0, 3.0])
            .target(Target::AtMost("p99_ms", 2.5));
        assert_eq!(figure.met(), Some(false));
        let json = figure.to_json();
        assert_eq!(json["p50_ms"], 2.0);
        assert_eq!(json["target"], "p99_ms <= 2.5");
        assert_eq!(json["met"], false);
        assert_eq!(Figure::new("y").value("rate", 10.0).met(), None);
    }
}
