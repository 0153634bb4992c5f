//! `?watch=true` streams: newline-delimited `{"type": ..., "object": ...}` events.
//!
//! Each watch is the response body itself: a stream that reads the hub (never the
//! database, except for the initial state of a watch without a resourceVersion) and is
//! polled by the connection as fast as the client takes its lines — no task or channel
//! in between, so an event reaches a watcher with one wake-up. It ends when
//! `timeoutSeconds` passes, when the client goes away (the body is dropped), or when it
//! falls too far behind the hub — then it sends a 410 Expired ERROR event so the client
//! re-lists.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::query::Query;
use crate::error::{ApiError, Result};
use crate::registry::{ResourceDef, View};
use crate::service::{ListOptions, Service, WatchStart};
use crate::table::Representation;
use crate::views::to_view;
use crate::watch::{EventType, WatchEvent};

/// Watches end after this long when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One watch's parameters.
struct WatchRequest {
    def: Arc<ResourceDef>,
    namespace: Option<String>,
    options: ListOptions,
    timeout: Duration,
    bookmarks: bool,
    /// The shape each object is sent in: itself, a one-row Table (`kubectl get -w`) or
    /// its metadata.
    representation: Representation,
}

impl WatchRequest {
    /// The wire form of an object for this watch.
    fn render(&self, stored: &Value) -> Value {
        let view = to_view(&self.def, stored);
        match self.representation {
            Representation::Table(include) => crate::table::of_object(&self.def, &view, include),
            Representation::Metadata => crate::views::partial_metadata(&view),
            Representation::Object => view,
        }
    }
}

/// Starts a watch and returns its streaming response.
pub async fn serve(
    state: AppState,
    def: Arc<ResourceDef>,
    namespace: Option<String>,
    query: &Query,
    representation: Representation,
    client: std::net::IpAddr,
) -> Result<Response> {
    query.check_watch()?;
    let permit = state.admission.open_watch(client)?;
    let options = query.list_options(&def)?;
    let timeout = query.timeout()?.unwrap_or(DEFAULT_TIMEOUT);
    let request = WatchRequest {
        def,
        namespace,
        options,
        timeout,
        bookmarks: query.flag("allowWatchBookmarks")?,
        representation,
    };
    let start = {
        let service = state.service.clone();
        let def = request.def.clone();
        let namespace = request.namespace.clone();
        let options = request.options.clone();
        tokio::task::spawn_blocking(move || service.watch(&def, namespace.as_deref(), &options))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let sent = state.traffic.of(&request.def.plural, &request.def.group);
    let body = match start {
        Ok(start) => Body::from_stream(events(
            request,
            start,
            state.bookmark_interval,
            (permit, sent),
        )),
        // As kube-apiserver: a watch from a version too old to resume is a 200 stream
        // with one 410 ERROR event. Clients (kube-rs, client-go) re-list on that
        // event; on an HTTP 410 kube-rs retries the same version forever.
        Err(expired @ ApiError::Expired(_)) => {
            Body::from(line("ERROR", &expired.to_status()).unwrap_or_else(|e| match e {}))
        }
        Err(other) => return Err(other),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response())
}

fn line(event_type: &str, object: &Value) -> Result<Bytes, Infallible> {
    raw_line(event_type, &object.to_string())
}

/// A watch line around an already-serialized object.
fn raw_line(event_type: &str, object_json: &str) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(format!(
        "{{\"type\":\"{event_type}\",\"object\":{object_json}}}\n"
    )))
}

/// What a hub event looks like to this watch, if it sees it at all: with a selector,
/// an object that starts matching is ADDED and one that stops matching is DELETED.
fn translate(request: &WatchRequest, event: &WatchEvent) -> Option<Result<Bytes, Infallible>> {
    if !Service::event_in_scope(&request.def, request.namespace.as_deref(), event) {
        return None;
    }
    let matches_now = request.options.matches(&event.object);
    let event_type = match event.event_type {
        EventType::Added => matches_now.then_some("ADDED")?,
        EventType::Deleted => matches_now.then_some("DELETED")?,
        EventType::Modified => {
            let matched_before = event
                .previous
                .as_deref()
                .is_some_and(|p| request.options.matches(p));
            match (matched_before, matches_now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
    };
    Some(match request.def.view {
        View::Native
            if request.representation == Representation::Object
                && event_type == event.event_type.as_str() =>
        {
            Ok(event.line())
        }
        View::Native if request.representation == Representation::Object => {
            raw_line(event_type, event.object_json())
        }
        _ => line(event_type, &request.render(&event.object)),
    })
}

/// The watch's lines: the initial objects, the backlog, then live events, bookmarks
/// and, if it falls behind, the 410 that ends it. Holds its watch slot while alive, and
/// counts every event it sends (bookmarks are not events).
fn events(
    request: WatchRequest,
    start: WatchStart,
    bookmark_interval: Duration,
    (permit, sent): (super::limits::WatchSlot, crate::metrics::WatchSent),
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let counted = move |chunk: Result<Bytes, Infallible>| {
        if let Ok(bytes) = &chunk {
            sent.event(bytes.len());
        }
        chunk
    };
    async_stream::stream! {
        let _permit = permit;
        let mut last_rv = start.resource_version;
        for object in &start.initial {
            yield counted(line("ADDED", &to_view(&request.def, object)));
        }
        let WatchStart {
            subscription: crate::watch::Subscription { backlog, mut live },
            ..
        } = start;
        for event in backlog {
            last_rv = event.resource_version;
            if let Some(chunk) = translate(&request, &event) {
                yield counted(chunk);
            }
        }
        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(bookmark_interval);
        bookmarks.tick().await;
        loop {
            let outgoing = tokio::select! {
                _ = &mut deadline => break,
                _ = bookmarks.tick(), if request.bookmarks => {
                    Some(line("BOOKMARK", &json!({
                        "kind": request.def.kind,
                        "apiVersion": request.def.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string()},
                    })))
                }
                event = live.recv() => match event {
                    Ok(event) if event.resource_version <= last_rv => None,
                    Ok(event) => {
                        last_rv = event.resource_version;
                        translate(&request, &event).map(&counted)
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::Expired(format!(
                            "the watch fell too far behind at resourceVersion {last_rv}; list again"
                        ));
                        yield counted(line("ERROR", &gone.to_status()));
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
            };
            if let Some(chunk) = outgoing {
                yield chunk;
            }
        }
    }
}
