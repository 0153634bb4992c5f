//! `GET /metrics`: the server's own figures in Prometheus text format, plus whatever
//! the process adds (the in-process controller registers its metrics here).
//!
//! Like a real API server's `/metrics`, it needs the bearer token.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::store::StoreStats;

/// Renders extra metrics text at scrape time.
pub type MetricsSource = Box<dyn Fn() -> String + Send + Sync>;

/// Extra metrics sources, shared between the server and whoever registers them.
#[derive(Clone, Default)]
pub struct ExtraMetrics {
    sources: Arc<Mutex<Vec<MetricsSource>>>,
}

impl ExtraMetrics {
    /// Adds a source, rendered after the server's own metrics on every scrape.
    pub fn add(&self, source: MetricsSource) {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(source);
    }

    fn render(&self) -> String {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|source| source())
            .collect()
    }
}

/// What the server reports about itself.
pub struct ServerFigures {
    /// Writes and commits of the store.
    pub store: StoreStats,
    /// The newest committed resourceVersion.
    pub resource_version: u64,
    /// Watch streams open now.
    pub watches: usize,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The whole `/metrics` document.
pub fn render(figures: &ServerFigures, extra: &ExtraMetrics) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "konductor_server_watches",
        "gauge",
        "Watch streams open.",
        figures.watches as u64,
    );
    metric(
        &mut out,
        "konductor_server_writes_total",
        "counter",
        "Objects written or deleted.",
        figures.store.writes,
    );
    metric(
        &mut out,
        "konductor_server_commits_total",
        "counter",
        "Durable transactions (one fsync each); concurrent writes share one.",
        figures.store.commits,
    );
    metric(
        &mut out,
        "konductor_server_resource_version",
        "gauge",
        "The newest committed resourceVersion.",
        figures.resource_version,
    );
    out.push_str(&extra.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_own_figures_then_extra_sources() {
        let extra = ExtraMetrics::default();
        extra.add(Box::new(|| "konductor_reconciles_total 3\n".into()));
        let text = render(
            &ServerFigures {
                store: StoreStats {
                    writes: 10,
                    commits: 4,
                },
                resource_version: 42,
                watches: 2,
            },
            &extra,
        );
        assert!(text.contains("\nkonductor_server_watches 2\n"), "{text}");
        assert!(text.contains("\nkonductor_server_commits_total 4\n"));
        assert!(text.ends_with("konductor_reconciles_total 3\n"));
    }
}
