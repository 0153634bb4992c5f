//! `GET /metrics`: the server's own figures in Prometheus text format, plus whatever
//! the process adds (the in-process controller registers its metrics here).
//!
//! Like a real API server's `/metrics`, it needs the bearer token.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

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
            .map(|source| without_eof(source()))
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
    /// Requests and watches refused (429) because a bound was reached.
    pub refused: u64,
}

/// A Prometheus text document without its closing `# EOF` line.
fn without_eof(mut text: String) -> String {
    if let Some(body) = text.strip_suffix("# EOF\n") {
        text.truncate(body.len());
    }
    text
}

/// The whole `/metrics` document: the server's figures (through `prometheus-client`,
/// as the controller's are), then every extra source's, then one `# EOF`.
pub fn render(figures: &ServerFigures, extra: &ExtraMetrics) -> String {
    let mut registry = Registry::with_prefix("konductor_server");
    let gauge = |value: u64| ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(
        "watches",
        "Watch streams open",
        gauge(figures.watches as u64),
    );
    registry.register(
        "writes",
        "Objects written or deleted",
        ConstCounter::new(figures.store.writes),
    );
    registry.register(
        "commits",
        "Durable transactions (one fsync each); concurrent writes share one",
        ConstCounter::new(figures.store.commits),
    );
    registry.register(
        "requests_refused",
        "Requests and watches answered 429 TooManyRequests because an in-flight or watch bound was reached",
        ConstCounter::new(figures.refused),
    );
    registry.register(
        "resource_version",
        "The newest committed resourceVersion",
        gauge(figures.resource_version),
    );
    let mut own = String::new();
    encode(&mut own, &registry).expect("writing to a String cannot fail");
    let mut out = without_eof(own);
    out.push_str(&without_eof(extra.render()));
    out.push_str("# EOF\n");
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
                refused: 5,
            },
            &extra,
        );
        assert!(text.contains("\nkonductor_server_watches 2\n"), "{text}");
        assert!(
            text.contains("\nkonductor_server_commits_total 4\n"),
            "{text}"
        );
        assert!(
            text.contains("\nkonductor_server_writes_total 10\n"),
            "{text}"
        );
        assert!(
            text.contains("\nkonductor_server_requests_refused_total 5\n"),
            "{text}"
        );
        assert!(
            text.ends_with("konductor_reconciles_total 3\n# EOF\n"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
