//! The dashboard's routes, every one behind [`crate::access`] and carrying its
//! security headers:
//!
//! - `/` — the page; `/app.js`, `/app.css` — its script and style (embedded);
//! - `/events` — the live feed: server-sent events, a snapshot first and then each
//!   batch of changes (no polling);
//! - `/object/Kind/namespace/name` — one object's YAML, as stored.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::access::{Access, Asked, SECURITY_HEADERS, Verdict};
use crate::live::Live;

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// What every request is served from.
#[derive(Clone)]
pub struct Served {
    /// Who may read.
    pub access: Access,
    /// The live picture.
    pub live: Live,
    /// The namespace shown (`None`: all).
    pub scope: Option<String>,
}

/// The dashboard's router.
pub fn router(served: Served) -> Router {
    Router::new().fallback(handle).with_state(served)
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(State(served): State<Served>, request: Request) -> Response {
    let headers = request.headers();
    // HTTP/2 (a browser over TLS) names the host in `:authority`, which arrives in the
    // URI rather than as a Host header.
    let authority = request.uri().authority().map(|a| a.as_str());
    let asked = Asked {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        host: header(headers, header::HOST).or(authority),
        origin: header(headers, header::ORIGIN),
        cookie: header(headers, header::COOKIE),
        fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
    };
    let mut response = match served.access.check(&asked) {
        Verdict::Refuse(status, why) => text(status, why),
        Verdict::Exchange {
            set_cookie,
            location,
        } => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            insert(&mut response, header::LOCATION, &location);
            insert(&mut response, header::SET_COOKIE, &set_cookie);
            response
        }
        Verdict::Allow => route(&served, request.uri().path()),
    };
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn text(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    asset(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

fn asset(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn route(served: &Served, path: &str) -> Response {
    match path {
        "/" => {
            let scope = served.scope.as_deref().unwrap_or("");
            let page = PAGE.replace("{{namespace}}", &escape(scope));
            asset(StatusCode::OK, "text/html; charset=utf-8", page)
        }
        "/app.js" => asset(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
        "/app.css" => asset(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/events" => feed(served.live.clone()),
        _ => match path.strip_prefix("/object/") {
            Some(key) => yaml(&served.live, key),
            None => text(404, "no such page"),
        },
    }
}

/// HTML-escapes `s` for an attribute or text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn feed(live: Live) -> Response {
    let stream = futures::stream::unfold(live.feed(), |mut feed| async move {
        let message = feed.next().await;
        Some((Ok::<_, Infallible>(Event::default().data(message)), feed))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn yaml(live: &Live, key: &str) -> Response {
    match live.object(key) {
        Some(object) => match serde_yaml::to_string(&object) {
            Ok(yaml) => asset(StatusCode::OK, "text/plain; charset=utf-8", yaml),
            Err(e) => text(500, &e.to_string()),
        },
        None => text(404, "no such object (deleted, or not visible to you)"),
    }
}
