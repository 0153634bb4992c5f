//! `koncli dashboard` in a real browser: a `koncli dashboard` process against a server
//! holding objects of every kind, loaded in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`). The test asserts what a person would
//! see — a barrier's bar moving on an arrival, a Mutex's holder changing on release, a
//! Gate's condition turning met — and that requests without the token or cookie, or
//! naming a foreign Host or Origin, are refused. Screenshots are saved beside the test
//! binaries; `KONDUCTOR_WRITE_SCREENSHOT=1` also writes `docs/dashboard.png`
//! (`scripts/dashboard-screenshot.sh`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::Env;
use konductor_testing::browser::{self, Browser, DashboardProcess};
use serde_json::{Value, json};

/// The longest the page may take to show a change in CI (the bench measures the real
/// figure, well under a second).
const SEEN: Duration = Duration::from_secs(5);

fn dashboard(env: &Env, args: &[&str]) -> DashboardProcess {
    let koncli = std::path::Path::new(env!("CARGO_BIN_EXE_koncli"));
    DashboardProcess::start(koncli, &env.kubeconfig(), args).unwrap()
}

/// The URL without its token, and the token.
fn split(url: &str) -> (String, String) {
    let (base, token) = url.split_once("?token=").unwrap();
    (base.to_owned(), token.to_owned())
}

/// Waits until the text of `selector` (in the panel `key`) contains `text`; returns it.
fn see(browser: &Browser, key: &str, selector: &str, text: &str) -> String {
    let script = "const [key, selector, text] = arguments; \
                  const panel = document.querySelector(`[data-key=\"${key}\"]`); \
                  if (!panel) return null; \
                  const found = [...panel.querySelectorAll(selector)].map(e => e.textContent).join(' | '); \
                  return found.includes(text) ? found : null;";
    let seen = browser
        .wait_for(script, &[json!(key), json!(selector), json!(text)], SEEN)
        .unwrap_or_else(|e| {
            screenshot(browser, "failure.png");
            let shown = browser
                .execute(
                    "const p = document.querySelector(`[data-key=\"${arguments[0]}\"]`); \
                     return p ? p.innerText : document.body.innerText;",
                    &[json!(key)],
                )
                .unwrap_or_default();
            let state = browser
                .execute("const x = new XMLHttpRequest(); x.open('GET', '/object/' + arguments[0], false); x.send(); return JSON.stringify(state.panels.get(arguments[0])) + '\\n' + x.responseText;", &[json!(key)])
                .unwrap_or_default();
            panic!("{key} {selector} never showed {text:?}: {e}\nshown: {shown}\npanel: {state}")
        });
    seen.as_str().unwrap_or_default().to_owned()
}

fn screenshot(browser: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    browser.screenshot(&dir.join(name)).unwrap();
    if name == "overview.png" && std::env::var_os("KONDUCTOR_WRITE_SCREENSHOT").is_some() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        browser.screenshot(&docs).unwrap();
    }
}

/// Objects of every kind, made as users make them: with koncli.
async fn every_kind(env: &Env) -> Vec<tokio::process::Child> {
    env.ok(&["barrier", "create", "etl", "--expected", "3"])
        .await;
    env.ok(&["barrier", "arrive", "etl", "--holder", "extract"])
        .await;
    env.ok(&["mutex", "lock", "db", "--holder", "alice", "--ttl", "10m"])
        .await;
    env.ok(&[
        "semaphore",
        "create",
        "gpus",
        "--permits",
        "2",
        "--ttl",
        "10m",
    ])
    .await;
    for trainer in ["trainer-0", "trainer-1"] {
        env.ok(&["semaphore", "acquire", "gpus", "--holder", trainer])
            .await;
    }
    env.ok(&[
        "rwmutex", "rlock", "cache", "--holder", "reader-1", "--ttl", "10m",
    ])
    .await;
    env.ok(&[
        "ratelimit",
        "create",
        "deploys",
        "--limit",
        "5",
        "--window",
        "1h",
    ])
    .await;
    env.ok(&["ratelimit", "take", "deploys", "--holder", "deploy-1"])
        .await;
    env.ok(&["once", "run", "migrate", "--key", "v1", "--", "true"])
        .await;
    env.ok(&["waitgroup", "create", "ingest", "--expected", "3"])
        .await;
    for member in ["file-1", "file-2", "file-3"] {
        env.ok(&["waitgroup", "add", "ingest", "--member", member])
            .await;
    }
    env.ok(&["waitgroup", "done", "ingest", "--member", "file-1"])
        .await;
    env.ok(&[
        "waitgroup",
        "done",
        "ingest",
        "--member",
        "file-2",
        "--failed",
        "--message",
        "bad row 7",
    ])
    .await;
    env.ok(&["gate", "create", "load", "--for", "barrier/etl"])
        .await;
    // Two more trainers queue for the two GPUs, in this order.
    let mut waiting = Vec::new();
    for trainer in ["trainer-2", "trainer-3"] {
        let mut queued = env.koncli(&[
            "semaphore",
            "acquire",
            "gpus",
            "--wait",
            "--holder",
            trainer,
        ]);
        waiting.push(queued.kill_on_drop(true).spawn().unwrap());
        let permits: kube::Api<konductor_api::locks::Permit> = env.api();
        konductor_testing::until(
            permits,
            &konductor_api::locks::permit_name(
                konductor_api::locks::LockKind::Semaphore,
                "gpus",
                trainer,
            ),
            |p| p.is_some(),
        )
        .await;
    }
    waiting
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_sees_every_kind_live_in_a_real_browser() {
    let env = Env::start().await;
    let _waiting = every_kind(&env).await;
    let dashboard = dashboard(&env, &[]);
    let browser = tokio::task::block_in_place(|| Browser::start(1400, 2300)).unwrap();
    let browser = std::sync::Arc::new(browser);
    let url = dashboard.url.clone();
    let on = |f: Box<dyn FnOnce(&Browser) + Send>| {
        let browser = browser.clone();
        tokio::task::block_in_place(move || f(&browser))
    };

    // The printed URL's token is exchanged for a cookie and dropped from the address.
    on(Box::new(move |b| {
        b.goto(&url).unwrap();
        let now = b.url().unwrap();
        assert!(
            !now.contains("token"),
            "the token left the address bar: {now}"
        );
        b.wait_for(
            "return document.body.dataset.ready === 'true' || null;",
            &[],
            SEEN,
        )
        .unwrap();
        for kind in [
            "Barrier",
            "Semaphore",
            "Mutex",
            "RWMutex",
            "RateLimit",
            "Once",
            "WaitGroup",
            "Gate",
        ] {
            b.wait_for(
                "return document.querySelector(`[data-key^=\"${arguments[0]}/default/\"]`) ? true : null;",
                &[json!(kind)],
                SEEN,
            )
            .unwrap_or_else(|e| panic!("no {kind} panel: {e}"));
        }
        let expected = [
            ("Barrier/default/etl", ".arrived", "1 of 3 arrived"),
            ("Mutex/default/db", ".holders .holder", "alice"),
            ("Semaphore/default/gpus", ".in-use", "2 of 2 in use"),
            // The queue, in the order it will be granted.
            (
                "Semaphore/default/gpus",
                ".queue .holder",
                "trainer-2 | trainer-3",
            ),
            ("RWMutex/default/cache", ".holders td", "read"),
            ("RateLimit/default/deploys", ".rate", "1 of 5 used in 1h"),
            ("Once/default/migrate", ".key", "v1"),
            ("WaitGroup/default/ingest", ".failures", "file-2: bad row 7"),
            ("WaitGroup/default/ingest", ".counts", "1 done"),
            ("Gate/default/load", ".met-cell", "not met"),
            // Every panel names the commands that show its object.
            (
                "Mutex/default/db",
                "footer code",
                "koncli mutex status db -n default",
            ),
        ];
        for (key, selector, text) in expected {
            see(b, key, selector, text);
        }
    }));

    // A Mutex's holder changes on release: bob waits in the queue, then holds it.
    let mut bob = env
        .koncli(&[
            "mutex", "lock", "db", "--wait", "--holder", "bob", "--ttl", "10m",
        ])
        .spawn()
        .unwrap();
    on(Box::new(|b| {
        see(b, "Mutex/default/db", ".queue .holder", "bob");
    }));
    env.ok(&["mutex", "unlock", "db", "--holder", "alice"])
        .await;
    on(Box::new(|b| {
        see(b, "Mutex/default/db", ".holders .holder", "bob");
        let holders = see(b, "Mutex/default/db", ".holders .holder", "bob");
        assert!(
            !holders.contains("alice"),
            "alice still shown holding: {holders}"
        );
    }));
    assert!(bob.wait().await.unwrap().success());

    // A barrier's bar moves on an arrival; the last one opens it and meets the Gate's
    // condition.
    env.ok(&["barrier", "arrive", "etl", "--holder", "transform"])
        .await;
    on(Box::new(|b| {
        see(b, "Barrier/default/etl", ".arrived", "2 of 3 arrived");
        let width = b
            .execute(
                "return document.querySelector('[data-key=\"Barrier/default/etl\"] .bar .fill').style.width;",
                &[],
            )
            .unwrap();
        assert_eq!(width, json!("66.6667%"), "the bar is two thirds full");
        screenshot(b, "overview.png");
    }));
    env.ok(&["barrier", "arrive", "etl", "--holder", "load"])
        .await;
    on(Box::new(|b| {
        see(b, "Barrier/default/etl", ".phase", "Open");
        see(b, "Gate/default/load", ".met-cell", "✓ met");
        see(b, "Gate/default/load", ".phase", "Open");
        screenshot(b, "gate-open.png");
    }));

    // Every object links to its YAML.
    let base = split(&dashboard.url).0;
    on(Box::new(move |b| {
        b.goto(&format!("{base}object/Barrier/default/etl"))
            .unwrap();
        let text = b.execute("return document.body.innerText;", &[]).unwrap();
        let text = text.as_str().unwrap();
        assert!(
            text.contains("kind: Barrier") && text.contains("name: etl"),
            "{text}"
        );
        assert!(!text.contains("managedFields"), "{text}");
    }));

    // A kind the credentials may not list reads "not visible to you", not "empty".
    // (The server refusing a list is mapped to this state by `live`'s own tests.)
    let base = split(&dashboard.url).0;
    on(Box::new(move |b| {
        b.goto(&base).unwrap();
        b.wait_for(
            "return document.body.dataset.ready === 'true' || null;",
            &[],
            SEEN,
        )
        .unwrap();
        b.execute(
            "receive(JSON.stringify({seq: 1e9, snapshot: false, panels: [], removed: [], \
              visibility: Object.assign({}, state.visibility, \
                {Semaphore: {state: 'forbidden', message: 'semaphores is forbidden'}})}));",
            &[],
        )
        .unwrap();
        let seen = b
            .wait_for(
                "const s = document.getElementById('kind-Semaphore'); \
                 return s && s.textContent.includes('not visible to you') ? s.textContent : null;",
                &[],
                SEEN,
            )
            .unwrap();
        assert!(
            !seen.as_str().unwrap().contains("gpus"),
            "a hidden kind shows no objects"
        );
        let row = b
            .execute("return document.querySelector('#overview-table tr[data-kind=\"Semaphore\"]').textContent;", &[])
            .unwrap();
        assert!(
            row.as_str().unwrap().contains("not visible to you"),
            "{row}"
        );
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_the_token_or_from_another_site_are_refused() {
    let env = Env::start().await;
    let dashboard = dashboard(&env, &[]);
    let (base, token) = split(&dashboard.url);
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let get = |path: &str, headers: &[(&str, &str)]| {
        browser::get(&format!("{base}{}", path.trim_start_matches('/')), headers)
            .unwrap_or_else(|e| panic!("GET {path} {headers:?}: {e}"))
    };

    let none = get("/", &[("Host", &host)]);
    assert_eq!(none.status, 401, "{}", none.body);
    let feed = get("/events", &[("Host", &host)]);
    assert_eq!(feed.status, 401);
    let wrong = get("/?token=0000", &[("Host", &host)]);
    assert_eq!(wrong.status, 403);

    let with_token = format!("/?token={token}");
    let foreign_host = get(&with_token, &[("Host", "attacker.example")]);
    assert_eq!(foreign_host.status, 403, "{}", foreign_host.body);
    let foreign_origin = get(
        &with_token,
        &[("Host", &host), ("Origin", "http://attacker.example")],
    );
    assert_eq!(foreign_origin.status, 403);

    let exchanged = get(&with_token, &[("Host", &host)]);
    assert_eq!(exchanged.status, 303);
    assert_eq!(exchanged.header("location"), Some("/"));
    let cookie = exchanged.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let csp = exchanged.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );

    let session = cookie.split(';').next().unwrap().to_owned();
    let page = get("/", &[("Host", &host), ("Cookie", &session)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<script src=\"/app.js\""));
    let rebinding = get("/", &[("Host", "attacker.example"), ("Cookie", &session)]);
    assert_eq!(
        rebinding.status, 403,
        "a valid cookie does not help a foreign Host"
    );
    let cross_site = get(
        "/",
        &[
            ("Host", &host),
            ("Cookie", &session),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(cross_site.status, 403);
    let write = browser::request(
        host.parse().unwrap(),
        "POST",
        "/events",
        &[("Host", &host), ("Cookie", &session)],
        Some(&Value::Null),
    )
    .unwrap();
    assert_eq!(write.status, 405, "the dashboard only reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn listening_beyond_loopback_needs_the_flag_and_tls() {
    let env = Env::start().await;
    let open = env.run(&["dashboard", "--listen", "0.0.0.0:0"]).await;
    common::assert_exit(&open, 2);
    common::assert_said(&open, "--listen: 0.0.0.0:0 is beyond loopback");
    let plain = env
        .run(&["dashboard", "--listen", "0.0.0.0:0", "--allow-remote"])
        .await;
    common::assert_exit(&plain, 2);
    common::assert_said(&plain, "--allow-remote: needs --tls-cert and --tls-key");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let busy = env.run(&["dashboard", "--listen", &address]).await;
    common::assert_exit(&busy, 1);
    common::assert_said(&busy, &format!("cannot listen on {address}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_it_serves_over_tls_with_secure_cookies_to_the_named_host() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = konductor_server::security::tls_material(dir.path(), "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let (cert, key) = (dir.path().join("dash.crt"), dir.path().join("dash.key"));
    std::fs::write(&cert, &tls.cert_pem).unwrap();
    std::fs::write(&key, &tls.key_pem).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let served = dashboard(
        &env,
        &[
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
            "--host",
            "localhost",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let url = served.url.clone();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let ca = dir.path().join("tls/ca.crt");
    let port = url
        .trim_start_matches("https://localhost:")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let curl = |url: &str| {
        let output = Command::new("curl")
            .args(["-s", "-i", "--http1.1", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), url])
            .output()
            .expect("curl is on the PATH");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let curl_http2 = |url: &str| {
        let output = Command::new("curl")
            .args(["-s", "-i", "--http2", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), url])
            .output()
            .expect("curl is on the PATH");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let exchanged = curl(&url);
    assert!(exchanged.starts_with("HTTP/1.1 303"), "{exchanged}");
    assert!(
        exchanged.contains("HttpOnly; SameSite=Strict; Secure"),
        "{exchanged}"
    );
    let refused = curl(&format!("https://localhost:{port}/"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // Over HTTP/2, as browsers speak TLS, the host comes as `:authority`.
    let exchanged = curl_http2(&url);
    assert!(exchanged.starts_with("HTTP/2 303"), "{exchanged}");
    let foreign = Command::new("curl")
        .args(["-s", "-i", "--http2", "--cacert"])
        .arg(&ca)
        .args([
            "--connect-to",
            &format!("attacker.example:{port}:127.0.0.1:{port}"),
            "-k",
        ])
        .arg(url.replace("localhost", "attacker.example"))
        .output()
        .unwrap();
    let foreign = String::from_utf8_lossy(&foreign.stdout);
    assert!(foreign.starts_with("HTTP/2 403"), "{foreign}");
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_it_says_so_and_exits_as_the_signal_says() {
    let env = Env::start().await;
    let mut served = dashboard(&env, &[]);
    let pid = served.child.id().to_string();
    let signal = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signal.success());
    let status = served.child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
}
