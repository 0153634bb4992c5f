//! A real browser for the dashboard's tests and bench: headless Chromium driven over
//! the W3C WebDriver protocol by Debian's `chromedriver` (packages `chromium` and
//! `chromium-driver`, installed by `.ci/run`), and [`get`], a plain HTTP/1.1 request
//! with exactly the headers given — for the requests a browser would never send (a
//! foreign `Host`, no cookie).
//!
//! Blocking and dependency-free on purpose: a few JSON requests to a process on
//! loopback need no HTTP stack.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The chromedriver and Chromium binaries (Debian's paths), overridable with
/// `KONDUCTOR_CHROMEDRIVER` and `KONDUCTOR_CHROMIUM`.
fn binaries() -> (String, String) {
    (
        std::env::var("KONDUCTOR_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
        std::env::var("KONDUCTOR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    )
}

/// An HTTP response: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request to `address` with exactly `headers` (no `Host` unless
/// given) and an optional JSON body, and reads the whole response.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let mut raw = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        // Some servers (chromedriver) keep the connection open despite
        // `Connection: close`: read exactly the body.
        raw.resize(length, 0);
        reader.read_exact(&mut raw)?;
    } else {
        reader.read_to_end(&mut raw)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    })
}

/// A plain GET of `url` (`http://host:port/path?query`) with exactly `headers`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let address: SocketAddr = authority
        .parse()
        .map_err(|_| std::io::Error::other(format!("not an address: {authority}")))?;
    request(
        address,
        "GET",
        if path.is_empty() { "/" } else { path },
        headers,
        None,
    )
}

/// Headless Chromium, one WebDriver session; both end when it is dropped.
pub struct Browser {
    driver: Child,
    address: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session in
    /// a fresh profile, `width`×`height` pixels.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        let (driver_binary, chromium) = binaries();
        for binary in [&driver_binary, &chromium] {
            if !Path::new(binary).exists() {
                return Err(format!(
                    "{binary} is missing: install Debian's chromium and chromium-driver \
                     (.ci/run does)"
                ));
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {driver_binary}: {e}"))?;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
            _profile: profile,
        };
        let started = Instant::now();
        let host = address.to_string();
        while request(address, "GET", "/status", &[("Host", &host)], None).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("chromedriver did not answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ]);
        let created = browser.command(
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}}),
        )?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {created}"))?
            .to_owned();
        Ok(browser)
    }

    fn command(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        let response = request(
            self.address,
            method,
            path,
            &[("Host", &self.address.to_string())],
            Some(body),
        )
        .map_err(|e| format!("chromedriver {path}: {e}"))?;
        let value: Value = serde_json::from_str(&response.body)
            .map_err(|e| format!("chromedriver {path}: {e}: {}", response.body))?;
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if response.status >= 400 {
            return Err(format!("chromedriver {path}: {value}"));
        }
        Ok(value)
    }

    /// Loads `url` (waiting for its load event).
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command(
            "POST",
            &format!("/session/{}/url", self.session),
            &json!({"url": url}),
        )
        .map(drop)
    }

    /// The page's current URL.
    pub fn url(&self) -> Result<String, String> {
        let value = self.command("GET", &format!("/session/{}/url", self.session), &json!({}))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and
    /// returns what it returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value, String> {
        self.command(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            &json!({"script": script, "args": args}),
        )
    }

    /// Runs `script` asynchronously: it ends by calling its last argument with the
    /// result (waiting at most ten minutes).
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value, String> {
        self.command(
            "POST",
            &format!("/session/{}/timeouts", self.session),
            &json!({"script": 600_000}),
        )?;
        self.command(
            "POST",
            &format!("/session/{}/execute/async", self.session),
            &json!({"script": script, "args": args}),
        )
    }

    /// Runs `script` until it returns something other than `null`/`false`, at most
    /// `limit`, re-checking on every animation frame in the page (no sleeps here);
    /// returns that value.
    pub fn wait_for(&self, script: &str, args: &[Value], limit: Duration) -> Result<Value, String> {
        let asynchronous = format!(
            "const done = arguments[arguments.length - 1];\n\
             const args = Array.prototype.slice.call(arguments, 0, -1);\n\
             const check = function () {{ {script} }};\n\
             const deadline = Date.now() + {ms};\n\
             const step = () => {{\n\
               let value = null;\n\
               try {{ value = check.apply(null, args); }} catch (e) {{ value = null; }}\n\
               if (value !== null && value !== undefined && value !== false) done(value);\n\
               else if (Date.now() > deadline) done({{timedOut: true}});\n\
               else requestAnimationFrame(step);\n\
             }};\n\
             step();",
            ms = limit.as_millis()
        );
        let value = self.execute_async(&asynchronous, args)?;
        if value.get("timedOut") == Some(&Value::Bool(true)) {
            return Err(format!("not seen within {limit:?}: {script}"));
        }
        Ok(value)
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        let value = self.command(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            &json!({}),
        )?;
        let png = decode_base64(value.as_str().unwrap_or_default())?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &format!("/session/{}", self.session), &json!({}));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (screenshots), without a dependency for it.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return Err("a screenshot that is not base64".into()),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}

/// A `koncli dashboard` process listening on a free loopback port, and the URL (with
/// its token) it printed; killed when dropped.
pub struct DashboardProcess {
    /// The process.
    pub child: Child,
    /// The URL it printed.
    pub url: String,
}

impl DashboardProcess {
    /// Starts `koncli dashboard ARGS…` against `kubeconfig` (on `--listen
    /// 127.0.0.1:0` unless ARGS say where) and reads its URL; the rest of what it
    /// prints is drained.
    pub fn start(koncli: &Path, kubeconfig: &Path, args: &[&str]) -> Result<Self, String> {
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(koncli)
            .arg("dashboard")
            .args(listen)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {} dashboard: {e}", koncli.display()))?;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut url = None;
        for line in lines.by_ref().map_while(Result::ok) {
            let line = line.trim();
            if line.starts_with("http://") || line.starts_with("https://") {
                url = Some(line.to_owned());
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        match url {
            Some(url) => Ok(Self { child, url }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err("koncli dashboard printed no URL".into())
            }
        }
    }
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
