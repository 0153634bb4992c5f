//! Who may read the dashboard, decided for every request before anything else: the
//! printed URL's one-time token is exchanged for an HttpOnly, SameSite=Strict session
//! cookie (and the browser sent on to the same URL without it, so the token stays out
//! of history and `Referer`); a request with neither is refused. `Host` must name the
//! dashboard itself (a DNS-rebinding page's requests carry its own name), a present
//! `Origin` must be the dashboard's, cross-site fetches are refused, and only reads
//! (GET, HEAD) exist. Pure: no I/O, every rule unit-tested.

use subtle::ConstantTimeEq;

/// The headers every response carries: a strict Content-Security-Policy (scripts,
/// styles and connections only from the dashboard itself, no framing), no sniffing,
/// no referrer, no caching.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// The query parameter that carries the token in the printed URL.
pub const TOKEN_PARAMETER: &str = "token";

/// The secrets of one dashboard and the names it answers to.
#[derive(Clone)]
pub struct Access {
    token: String,
    session: String,
    cookie: String,
    hosts: Vec<String>,
    secure: bool,
}

/// What a request carries that [`Access::check`] looks at.
#[derive(Default, Debug)]
pub struct Asked<'a> {
    /// `GET`, `HEAD`…
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, if any (without `?`).
    pub query: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The `Sec-Fetch-Site` header.
    pub fetch_site: Option<&'a str>,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// The token was right: set this cookie and send the browser to `location`.
    Exchange {
        /// The `Set-Cookie` header.
        set_cookie: String,
        /// Where to: the same path and query, without the token.
        location: String,
    },
    /// Refuse it with this status and a line saying why.
    Refuse(u16, &'static str),
}

/// 32 random bytes as hex.
fn secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Access {
    /// A fresh token and session for a dashboard on `port`, answering to `hosts`
    /// (`name:port`, as browsers send `Host`), over TLS if `secure`.
    pub fn new(port: u16, hosts: Vec<String>, secure: bool) -> Self {
        Self {
            token: secret(),
            session: secret(),
            // Cookies are not kept apart by port: two dashboards on one host each
            // need their own name.
            cookie: format!("konductor-dashboard-{port}"),
            hosts,
            secure,
        }
    }

    /// The token the printed URL carries.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What to do with `asked`.
    pub fn check(&self, asked: &Asked<'_>) -> Verdict {
        let Some(host) = asked.host.filter(|h| self.hosts.iter().any(|a| a == h)) else {
            return Verdict::Refuse(403, "the Host header names another site (DNS rebinding?)");
        };
        if let Some(origin) = asked.origin {
            let scheme = if self.secure { "https" } else { "http" };
            if origin != format!("{scheme}://{host}") {
                return Verdict::Refuse(403, "requests from another origin are refused");
            }
        }
        if matches!(asked.fetch_site, Some("cross-site" | "same-site")) {
            return Verdict::Refuse(403, "requests from another site are refused");
        }
        if !matches!(asked.method, "GET" | "HEAD") {
            return Verdict::Refuse(405, "the dashboard only reads");
        }
        let mut others = Vec::new();
        let mut token = None;
        for pair in asked.query.unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some((TOKEN_PARAMETER, value)) => token = Some(value),
                _ if !pair.is_empty() => others.push(pair),
                _ => {}
            }
        }
        if let Some(token) = token {
            if !same(token, &self.token) {
                return Verdict::Refuse(403, "wrong token: open the URL koncli dashboard printed");
            }
            let secure = if self.secure { "; Secure" } else { "" };
            let query = if others.is_empty() {
                String::new()
            } else {
                format!("?{}", others.join("&"))
            };
            return Verdict::Exchange {
                set_cookie: format!(
                    "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
                    self.cookie, self.session
                ),
                location: format!("{}{query}", asked.path),
            };
        }
        let has_session = asked
            .cookie
            .unwrap_or_default()
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .any(|(name, value)| name == self.cookie && same(value, &self.session));
        if has_session {
            Verdict::Allow
        } else {
            Verdict::Refuse(
                401,
                "no session: open the URL koncli dashboard printed (it carries the token)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(
            8080,
            vec!["127.0.0.1:8080".into(), "localhost:8080".into()],
            false,
        )
    }

    fn get<'a>(path: &'a str, query: Option<&'a str>) -> Asked<'a> {
        Asked {
            method: "GET",
            path,
            query,
            host: Some("127.0.0.1:8080"),
            ..Asked::default()
        }
    }

    fn cookie_of(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Exchange { set_cookie, .. } => {
                set_cookie.split(';').next().unwrap().to_owned()
            }
            other => panic!("no exchange: {other:?}"),
        }
    }

    #[test]
    fn the_token_is_exchanged_for_a_strict_http_only_cookie_and_dropped_from_the_url() {
        let access = access();
        let query = format!("a=1&token={}&b=2", access.token());
        let verdict = access.check(&get("/", Some(&query)));
        let Verdict::Exchange {
            set_cookie,
            location,
        } = &verdict
        else {
            panic!("{verdict:?}")
        };
        assert_eq!(location, "/?a=1&b=2");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
        assert!(
            !set_cookie.contains(access.token()),
            "the cookie is not the token"
        );
        let cookie = cookie_of(&verdict);
        let mut asked = get("/events", None);
        asked.cookie = Some(&cookie);
        assert_eq!(access.check(&asked), Verdict::Allow);
    }

    #[test]
    fn neither_token_nor_cookie_is_refused_and_a_wrong_one_too() {
        let access = access();
        assert!(matches!(
            access.check(&get("/", None)),
            Verdict::Refuse(401, _)
        ));
        assert!(matches!(
            access.check(&get("/", Some("token=nope"))),
            Verdict::Refuse(403, _)
        ));
        let mut asked = get("/", None);
        asked.cookie = Some("konductor-dashboard-8080=forged");
        assert!(matches!(access.check(&asked), Verdict::Refuse(401, _)));
    }

    #[test]
    fn a_foreign_host_origin_or_site_is_refused_even_with_the_token() {
        let access = access();
        let query = format!("token={}", access.token());
        let mut asked = get("/", Some(&query));
        asked.host = Some("evil.example:8080");
        assert!(matches!(access.check(&asked), Verdict::Refuse(403, _)));
        let mut asked = get("/", Some(&query));
        asked.host = None;
        assert!(matches!(access.check(&asked), Verdict::Refuse(403, _)));
        let mut asked = get("/", Some(&query));
        asked.origin = Some("http://evil.example");
        assert!(matches!(access.check(&asked), Verdict::Refuse(403, _)));
        let mut asked = get("/", Some(&query));
        asked.fetch_site = Some("cross-site");
        assert!(matches!(access.check(&asked), Verdict::Refuse(403, _)));
        let mut asked = get("/", Some(&query));
        asked.origin = Some("http://127.0.0.1:8080");
        asked.fetch_site = Some("same-origin");
        assert!(matches!(access.check(&asked), Verdict::Exchange { .. }));
    }

    #[test]
    fn only_reads_are_served() {
        let access = access();
        let query = format!("token={}", access.token());
        let mut asked = get("/", Some(&query));
        asked.method = "POST";
        assert!(matches!(access.check(&asked), Verdict::Refuse(405, _)));
    }

    #[test]
    fn tls_dashboards_set_secure_cookies_and_expect_https_origins() {
        let access = Access::new(8443, vec!["dash.example:8443".into()], true);
        let query = format!("token={}", access.token());
        let mut asked = get("/", Some(&query));
        asked.host = Some("dash.example:8443");
        asked.origin = Some("https://dash.example:8443");
        let Verdict::Exchange { set_cookie, .. } = access.check(&asked) else {
            panic!()
        };
        assert!(set_cookie.ends_with("; Secure"));
    }
}
