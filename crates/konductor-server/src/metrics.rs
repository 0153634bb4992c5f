//! `GET /metrics`: the server's own figures in Prometheus text format, plus whatever
//! the process adds (the in-process controller registers its metrics here).
//!
//! Like a real API server's `/metrics`, it needs the bearer token.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
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

/// A resource as the watch metrics name it: `permits.konductor.io`, `pods` (core).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// The resource's plural, then its group after a dot (none for the core group).
    pub resource: String,
}

/// A request as the request metrics name it: its verb as RBAC names it and its resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// The resource (`permits.konductor.io`, `pods`).
    pub resource: String,
    /// `status` or `scale` for a subresource, else empty.
    pub subresource: String,
}

/// What clients cost the server: the requests it served by verb and resource, and what
/// its watches send, by resource — each event (and its bytes) sent to each watcher, so
/// that a claim like "a handover wakes one waiter" is measured, not argued. Clones
/// share the counts.
#[derive(Clone, Default)]
pub struct Traffic {
    requests: Family<RequestLabels, Counter>,
    events: Family<ResourceLabel, Counter>,
    bytes: Family<ResourceLabel, Counter>,
}

impl Traffic {
    /// Counts one request of `verb` on `resource` (`plural` or `plural/subresource`)
    /// in `group`.
    pub fn request(&self, verb: &'static str, resource: &str, group: &str) {
        let (plural, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let labels = RequestLabels {
            verb,
            resource: resource_name(plural, group),
            subresource: subresource.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// The counters of one watch of `plural` in `group`: taken once when the watch
    /// starts, so counting an event costs two atomic additions.
    pub fn of(&self, plural: &str, group: &str) -> WatchSent {
        let label = ResourceLabel {
            resource: resource_name(plural, group),
        };
        WatchSent {
            events: self.events.get_or_create(&label).clone(),
            bytes: self.bytes.get_or_create(&label).clone(),
        }
    }
}

/// A resource as the metrics name it: `permits.konductor.io`, `pods` (core group).
fn resource_name(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// One watch's share of [`Traffic`].
pub struct WatchSent {
    events: Counter,
    bytes: Counter,
}

impl WatchSent {
    /// Counts one event of `bytes` bytes sent (bookmarks are not events).
    pub fn event(&self, bytes: usize) {
        self.events.inc();
        self.bytes.inc_by(bytes as u64);
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
    /// Requests served and watch events sent, by resource.
    pub traffic: Traffic,
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
        "requests",
        "API requests served, by verb and resource (a watch counts once, when it starts)",
        figures.traffic.requests.clone(),
    );
    registry.register(
        "watch_events_sent",
        "Watch events sent to watchers (each event once per watch it is sent on; bookmarks not counted), by resource",
        figures.traffic.events.clone(),
    );
    registry.register(
        "watch_event_bytes_sent",
        "Bytes of the watch events counted in konductor_server_watch_events_sent_total, by resource",
        figures.traffic.bytes.clone(),
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
        let traffic = Traffic::default();
        let permits = traffic.of("permits", "konductor.io");
        permits.event(100);
        permits.event(50);
        traffic.of("pods", "").event(7);
        traffic.request("create", "permits", "konductor.io");
        traffic.request("create", "permits", "konductor.io");
        traffic.request("patch", "mutexes/status", "konductor.io");
        let text = render(
            &ServerFigures {
                store: StoreStats {
                    writes: 10,
                    commits: 4,
                },
                resource_version: 42,
                watches: 2,
                refused: 5,
                traffic,
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
        for line in [
            "konductor_server_watch_events_sent_total{resource=\"permits.konductor.io\"} 2",
            "konductor_server_watch_event_bytes_sent_total{resource=\"permits.konductor.io\"} 150",
            "konductor_server_watch_events_sent_total{resource=\"pods\"} 1",
            "konductor_server_requests_total{verb=\"create\",resource=\"permits.konductor.io\",subresource=\"\"} 2",
            "konductor_server_requests_total{verb=\"patch\",resource=\"mutexes.konductor.io\",subresource=\"status\"} 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in {text}");
        }
        assert!(
            text.ends_with("konductor_reconciles_total 3\n# EOF\n"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
