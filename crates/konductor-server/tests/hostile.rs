//! Hostile input, sent as raw HTTP/1.1 bytes over a socket (no client library to tidy
//! it up): every request gets the right 4xx with a Kubernetes `Status` naming the
//! problem, nothing gets a 5xx or hangs, the server stays up, and nothing partial is
//! stored.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::TestServer;

/// The longest any one request may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

const BARRIERS: &str = "/apis/konductor.io/v1/namespaces/hostile/barriers";
const ARRIVALS: &str = "/apis/konductor.io/v1/namespaces/hostile/arrivals";
/// Where the bounded-resource tests create (namespace `default` exists from the start).
const DEFAULT_BARRIERS: &str = "/apis/konductor.io/v1/namespaces/default/barriers";
const SEED: &str = "/apis/konductor.io/v1/namespaces/hostile/barriers/seed";

/// A server's answer, as read off the socket.
struct Answer {
    code: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Speaks HTTP/1.1 by hand to the server.
struct Raw {
    address: std::net::SocketAddr,
    token: String,
}

impl Raw {
    /// Sends `head` (request line and extra header lines, without the final blank line)
    /// with the token, `Connection: close` and the body, and reads the whole answer.
    async fn send(&self, head: &str, body: &[u8], chunked: bool) -> Answer {
        let mut request = head.as_bytes().to_vec();
        request.extend_from_slice(b"\r\nHost: konductor\r\nConnection: close\r\n");
        if !head.contains("Authorization:") {
            request
                .extend_from_slice(format!("Authorization: Bearer {}\r\n", self.token).as_bytes());
        }
        if chunked {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        } else {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        }
        let exchange = async {
            let mut stream = TcpStream::connect(self.address).await.unwrap();
            let (mut reader, mut writer) = stream.split();
            let write = async {
                let _ = writer.write_all(&request).await;
                if chunked {
                    for piece in body.chunks(64 * 1024) {
                        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                        framed.extend_from_slice(piece);
                        framed.extend_from_slice(b"\r\n");
                        if writer.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                    let _ = writer.write_all(b"0\r\n\r\n").await;
                } else {
                    let _ = writer.write_all(body).await;
                }
            };
            let mut answer = Vec::new();
            let read = reader.read_to_end(&mut answer);
            let (_, read) = tokio::join!(write, read);
            read.expect("the connection was not reset before the answer was read");
            answer
        };
        let raw = tokio::time::timeout(HANG, exchange)
            .await
            .unwrap_or_else(|_| panic!("no answer within {HANG:?} to {head}"));
        parse_answer(&raw).unwrap_or_else(|| {
            panic!(
                "unreadable answer to {head}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some(Answer {
        code,
        headers: head,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One hostile request and what a real API server answers to it.
struct Case {
    what: &'static str,
    method: &'static str,
    target: String,
    content_type: &'static str,
    body: Vec<u8>,
    extra_headers: String,
    chunked: bool,
    code: u16,
    /// Words the Status message must contain (it names the problem).
    says: &'static str,
}

fn case(what: &'static str, method: &'static str, target: impl Into<String>) -> Case {
    Case {
        what,
        method,
        target: target.into(),
        content_type: "application/json",
        body: Vec::new(),
        extra_headers: String::new(),
        chunked: false,
        code: 400,
        says: "",
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn json(self, body: Value) -> Self {
        self.body(body.to_string())
    }
    fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }
    fn headers(mut self, headers: impl Into<String>) -> Self {
        self.extra_headers = headers.into();
        self
    }
    fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
    fn answers(mut self, code: u16, says: &'static str) -> Self {
        self.code = code;
        self.says = says;
        self
    }
}

/// A barrier body with `spec` and `metadata` as given.
fn barrier(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "konductor.io/v1", "kind": "Barrier", "metadata": metadata, "spec": spec})
}

fn named(name: &str) -> Value {
    json!({ "name": name })
}

fn seed_with(spec: Value) -> Value {
    barrier(named("seed"), spec)
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"apiVersion\":\"konductor.io/v1\",\"kind\":\"Barrier\",\"metadata\":{{\"name\":\"deep\"}},\"spec\":{{\"expected\":1,\"x\":{}{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const BUILT_IN_CRD: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/barriers.konductor.io";

/// A CRD body for `plural.group` with `schema` as its only version's schema.
fn crd(name: &str, group: &str, schema: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": schema}}],
        },
    })
}

/// A schema nested `depth` objects deep.
fn schema_bomb(depth: usize) -> Value {
    let mut schema = json!({"type": "string"});
    for _ in 0..depth {
        schema = json!({"type": "object", "properties": {"a": schema}});
    }
    schema
}

/// CRD bodies the server must refuse before serving anything.
fn crd_cases() -> Vec<Case> {
    let object = json!({"type": "object"});
    let with_rule = |rule: &str| {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": rule}]}}})
    };
    vec![
        case("a CRD schema nested past the schema limit", "POST", CRDS)
            .json(crd("widgets.example.com", "example.com", schema_bomb(55)))
            .answers(422, "nests deeper"),
        case("a CRD schema bomb past the decoder's limit", "POST", CRDS)
            .json(crd("widgets.example.com", "example.com", schema_bomb(100)))
            .answers(400, "recursion limit"),
        case("a CRD for Konductor's own group", "POST", CRDS)
            .json(crd("widgets.konductor.io", "konductor.io", object.clone()))
            .answers(422, "spec.group"),
        case("a CRD for a built-in group", "POST", CRDS)
            .json(crd("widgets.batch", "batch", object.clone()))
            .answers(422, "spec.group"),
        case("a CRD named other than plural.group", "POST", CRDS)
            .json(crd("gadgets.example.com", "example.com", object.clone()))
            .answers(422, "metadata.name"),
        case(
            "a CRD with a rule calling an unknown function",
            "POST",
            CRDS,
        )
        .json(crd(
            "widgets.example.com",
            "example.com",
            with_rule("self.exfiltrate()"),
        ))
        .answers(422, "exfiltrate"),
        case("a CRD with a rule that does not parse", "POST", CRDS)
            .json(crd(
                "widgets.example.com",
                "example.com",
                with_rule("self.("),
            ))
            .answers(422, "x-kubernetes-validations[0].rule"),
        case("a CRD with a $ref", "POST", CRDS)
            .json(crd(
                "widgets.example.com",
                "example.com",
                json!({"type": "object", "$ref": "http://169.254.169.254/"}),
            ))
            .answers(422, "$ref"),
        case("a CRD with a conversion webhook", "POST", CRDS)
            .json({
                let mut body = crd("widgets.example.com", "example.com", object.clone());
                body["spec"]["conversion"] = json!({"strategy": "Webhook"});
                body
            })
            .answers(422, "spec.conversion.strategy"),
        case("a CRD whose versions are not a list", "POST", CRDS)
            .json({
                let mut body = crd("widgets.example.com", "example.com", object.clone());
                body["spec"]["versions"] = json!("v1");
                body
            })
            .answers(422, "spec.versions"),
        case("a CRD whose spec is a string", "POST", CRDS)
            .json(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                         "metadata": {"name": "widgets.example.com"}, "spec": "widgets"}),
            )
            .answers(422, "spec.group"),
        case("a changed built-in CRD", "POST", CRDS)
            .json({
                let mut barriers = serde_json::to_value(&konductor_api::crd::crds()[0]).unwrap();
                barriers["spec"]["names"]["shortNames"] = json!(["b"]);
                barriers
            })
            .answers(422, "built into this server"),
        case("a delete of a built-in CRD", "DELETE", BUILT_IN_CRD)
            .answers(403, "built into this server"),
    ]
}

fn cases() -> Vec<Case> {
    let big = "x".repeat(4 * 1024 * 1024);
    vec![
        // Bodies that are not JSON or YAML, or not an object.
        case("truncated JSON", "POST", BARRIERS).body("{").answers(400, ""),
        case("not JSON at all", "POST", BARRIERS).body("hello").answers(400, ""),
        case("an array body", "POST", BARRIERS).body("[]").answers(400, ""),
        case("a null body", "POST", BARRIERS).body("null").answers(400, ""),
        case("a string body", "POST", BARRIERS).body("\"barrier\"").answers(400, ""),
        case("an empty body", "POST", BARRIERS).answers(400, ""),
        case("trailing garbage", "POST", BARRIERS)
            .body(format!("{} x", seed_with(json!({"expected": 1}))))
            .answers(400, ""),
        case("broken YAML", "POST", BARRIERS)
            .content_type("application/yaml")
            .body("metadata: [unclosed\nspec: {")
            .answers(400, ""),
        case("YAML alias bomb", "POST", BARRIERS)
            .content_type("application/yaml")
            .body(
                "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
            )
            .answers(400, ""),
        case("JSON nested 10,000 deep", "POST", BARRIERS)
            .body(nested(10_000))
            .answers(400, ""),
        case("YAML nested 10,000 deep", "POST", BARRIERS)
            .content_type("application/yaml")
            .body(format!("spec: {}{}", "[".repeat(10_000), "]".repeat(10_000)))
            .answers(400, ""),
        case("invalid UTF-8 in JSON", "POST", BARRIERS)
            .body(b"{\"metadata\":{\"name\":\"\xff\xfe\"}}".to_vec())
            .answers(400, ""),
        case("invalid UTF-8 in YAML", "POST", BARRIERS)
            .content_type("application/yaml")
            .body(b"metadata:\n  name: \xff\xfe\n".to_vec())
            .answers(400, ""),
        case("a number too large for JSON", "POST", BARRIERS)
            .body("{\"apiVersion\":\"konductor.io/v1\",\"kind\":\"Barrier\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"expected\":1e400}}")
            .answers(422, "spec.expected"),
        case("XML", "POST", BARRIERS)
            .content_type("application/xml")
            .body("<barrier/>")
            .answers(415, "application/xml"),
        case("protobuf garbage", "POST", BARRIERS)
            .content_type("application/vnd.kubernetes.protobuf")
            .body(b"k8s\x00\xff\xff\xff\xff\x0f".to_vec())
            .answers(400, ""),
        // Wrong types and out-of-range numbers.
        case("expected as a string", "POST", BARRIERS)
            .json(barrier(named("t1"), json!({"expected": "ten"})))
            .answers(422, "spec.expected"),
        case("expected as a fraction", "POST", BARRIERS)
            .json(barrier(named("t2"), json!({"expected": 1.5})))
            .answers(422, "spec.expected"),
        case("expected zero", "POST", BARRIERS)
            .json(barrier(named("t3"), json!({"expected": 0})))
            .answers(422, "spec.expected"),
        case("expected negative", "POST", BARRIERS)
            .json(barrier(named("t4"), json!({"expected": -5})))
            .answers(422, "spec.expected"),
        case("expected beyond int64", "POST", BARRIERS)
            .body("{\"apiVersion\":\"konductor.io/v1\",\"kind\":\"Barrier\",\"metadata\":{\"name\":\"t5\"},\"spec\":{\"expected\":9223372036854775808}}")
            .answers(422, "spec.expected"),
        case("expected below int64", "POST", BARRIERS)
            .body("{\"apiVersion\":\"konductor.io/v1\",\"kind\":\"Barrier\",\"metadata\":{\"name\":\"t6\"},\"spec\":{\"expected\":-9223372036854775809}}")
            .answers(422, "spec.expected"),
        case("expected a 29-digit number (a float beyond int64)", "POST", BARRIERS)
            .body("{\"apiVersion\":\"konductor.io/v1\",\"kind\":\"Barrier\",\"metadata\":{\"name\":\"t6b\"},\"spec\":{\"expected\":88888888888888888888888888880}}")
            .answers(422, "spec.expected"),
        case("expected beyond int32", "POST", BARRIERS)
            .json(barrier(named("t7"), json!({"expected": 2_147_483_648_i64})))
            .answers(422, "spec.expected"),
        case("spec as a list", "POST", BARRIERS)
            .json(barrier(named("t8"), json!([1])))
            .answers(422, "spec"),
        case("timeout that is not a duration", "POST", BARRIERS)
            .json(barrier(named("t9"), json!({"expected": 1, "timeout": "soon"})))
            .answers(422, "spec.timeout"),
        case("an unknown field, strictly", "POST", format!("{BARRIERS}?fieldValidation=Strict"))
            .json(barrier(named("t10"), json!({"expected": 1, "surprise": true})))
            .answers(400, "surprise"),
        case("metadata as a string", "POST", BARRIERS)
            .json(json!({"apiVersion": "konductor.io/v1", "kind": "Barrier", "metadata": "seed", "spec": {"expected": 1}}))
            .answers(400, "metadata"),
        case("labels as a list", "POST", BARRIERS)
            .json(barrier(json!({"name": "t11", "labels": ["a"]}), json!({"expected": 1})))
            .answers(422, "metadata.labels"),
        case("an arrival without its barrier", "POST", ARRIVALS)
            .json(json!({"apiVersion": "konductor.io/v1", "kind": "Arrival", "metadata": {"name": "a1"}, "spec": {"holder": "h"}}))
            .answers(422, "spec.barrier"),
        // Names, labels and the rest of metadata.
        case("an upper-case name", "POST", BARRIERS)
            .json(barrier(named("Seed"), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("a 254-character name", "POST", BARRIERS)
            .json(barrier(named(&"a".repeat(254)), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("a 1 MiB name", "POST", BARRIERS)
            .json(barrier(named(&"a".repeat(1024 * 1024)), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("no name", "POST", BARRIERS)
            .json(barrier(json!({}), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("a name with a slash", "POST", BARRIERS)
            .json(barrier(named("a/b"), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("a name that climbs", "POST", BARRIERS)
            .json(barrier(named(".."), json!({"expected": 1})))
            .answers(422, "metadata.name"),
        case("a bad generateName", "POST", BARRIERS)
            .json(barrier(json!({"generateName": "BAD_"}), json!({"expected": 1})))
            .answers(422, "metadata.generateName"),
        case("a label key starting with a dash", "POST", BARRIERS)
            .json(barrier(json!({"name": "l1", "labels": {"-bad-": "x"}}), json!({"expected": 1})))
            .answers(422, "metadata.labels"),
        case("a 100-character label value", "POST", BARRIERS)
            .json(barrier(json!({"name": "l2", "labels": {"a": "v".repeat(100)}}), json!({"expected": 1})))
            .answers(422, "metadata.labels"),
        case("a label key with two slashes", "POST", BARRIERS)
            .json(barrier(json!({"name": "l3", "labels": {"a/b/c": "x"}}), json!({"expected": 1})))
            .answers(422, "metadata.labels"),
        case("a label value with spaces", "POST", BARRIERS)
            .json(barrier(json!({"name": "l4", "labels": {"a": "x y"}}), json!({"expected": 1})))
            .answers(422, "metadata.labels"),
        case("300 KiB of annotations", "POST", BARRIERS)
            .json(barrier(json!({"name": "l5", "annotations": {"a": "x".repeat(300 * 1024)}}), json!({"expected": 1})))
            .answers(422, "metadata.annotations"),
        case("a finalizer with a space", "POST", BARRIERS)
            .json(barrier(json!({"name": "l6", "finalizers": ["bad finalizer"]}), json!({"expected": 1})))
            .answers(422, "metadata.finalizers"),
        case("an owner reference without uid", "POST", BARRIERS)
            .json(barrier(json!({"name": "l7", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}), json!({"expected": 1})))
            .answers(422, "metadata.ownerReferences"),
        case("another namespace in the body", "POST", BARRIERS)
            .json(barrier(json!({"name": "l8", "namespace": "default"}), json!({"expected": 1})))
            .answers(400, "namespace"),
        case("a resourceVersion on create", "POST", BARRIERS)
            .json(barrier(json!({"name": "l9", "resourceVersion": "5"}), json!({"expected": 1})))
            .answers(422, "metadata.resourceVersion"),
        // Wrong kinds, versions and namespaces.
        case("an Arrival posted as a barrier", "POST", BARRIERS)
            .json(json!({"apiVersion": "konductor.io/v1", "kind": "Arrival", "metadata": {"name": "k1"}, "spec": {"barrier": "b", "holder": "h"}}))
            .answers(400, "Arrival"),
        case("an unknown apiVersion", "POST", BARRIERS)
            .json(json!({"apiVersion": "konductor.io/v2", "kind": "Barrier", "metadata": {"name": "k2"}, "spec": {"expected": 1}}))
            .answers(400, "konductor.io/v2"),
        case("a namespace that does not exist", "POST", "/apis/konductor.io/v1/namespaces/nowhere/barriers")
            .json(barrier(named("k3"), json!({"expected": 1})))
            .answers(404, "nowhere"),
        case("an unknown version path", "GET", "/apis/konductor.io/v2/barriers").answers(404, ""),
        case("an unknown resource", "GET", "/apis/konductor.io/v1/namespaces/hostile/widgets").answers(404, ""),
        case("an update of a name that cannot exist", "PUT", format!("{BARRIERS}/Seed"))
            .json(barrier(named("Seed"), json!({"expected": 1})))
            .answers(404, "Seed"),
        case("a body named differently from the URL", "PUT", SEED)
            .json(barrier(named("other"), json!({"expected": 1})))
            .answers(400, "name"),
        // Path tricks.
        case("a path that climbs", "GET", format!("{BARRIERS}/../../../../../etc/passwd")).answers(404, ""),
        case("a namespace segment that decodes to no namespace name", "GET", "/apis/konductor.io/v1/namespaces/..%2F..%2F/barriers").answers(404, ""),
        case("an encoded climb", "GET", "/apis/konductor.io/v1/namespaces/%2e%2e/barriers/seed").answers(404, ""),
        case("a NUL in the name", "GET", format!("{BARRIERS}/se%00ed")).answers(404, ""),
        case("invalid UTF-8 in the path", "GET", format!("{BARRIERS}/%ff%fe")).answers(404, ""),
        case("too many path segments", "GET", format!("{SEED}/status/x/y")).answers(404, ""),
        case("an unknown subresource", "GET", format!("{SEED}/scale")).answers(404, ""),
        case("POST to a named object", "POST", SEED)
            .json(seed_with(json!({"expected": 1})))
            .answers(405, ""),
        case("an unknown method", "PROPFIND", SEED).answers(405, ""),
        case("a 10,000-character path", "GET", format!("{BARRIERS}/{}", "a".repeat(10_000))).answers(404, ""),
        // Huge bodies.
        case("4 MiB with Content-Length", "POST", BARRIERS)
            .json(barrier(json!({"name": "h1", "annotations": {"a": big}}), json!({"expected": 1})))
            .answers(413, "Request entity too large"),
        case("4 MiB chunked", "POST", BARRIERS)
            .body(vec![b' '; 4 * 1024 * 1024])
            .chunked()
            .answers(413, "Request entity too large"),
        // Query parameters and selectors.
        case("a label selector of only equals signs", "GET", format!("{BARRIERS}?labelSelector====")).answers(400, "labelSelector"),
        case("an unclosed set in a label selector", "GET", format!("{BARRIERS}?labelSelector=a%20in%20(b")).answers(400, "labelSelector"),
        case("a bad label value in a selector", "GET", format!("{BARRIERS}?labelSelector=a%3D-x-")).answers(400, "labelSelector"),
        case("a field selector on the spec", "GET", format!("{BARRIERS}?fieldSelector=spec.expected%3D1")).answers(400, "field label not supported"),
        case("a field selector without a value", "GET", format!("{BARRIERS}?fieldSelector=metadata.name")).answers(400, "fieldSelector"),
        case("resourceVersion=abc on a list", "GET", format!("{BARRIERS}?resourceVersion=abc")).answers(400, "resourceVersion"),
        case("an unknown resourceVersionMatch", "GET", format!("{BARRIERS}?resourceVersion=1&resourceVersionMatch=Bogus")).answers(400, "resourceVersionMatch"),
        case("resourceVersionMatch without resourceVersion", "GET", format!("{BARRIERS}?resourceVersionMatch=NotOlderThan")).answers(400, "resourceVersionMatch"),
        case("a negative limit", "GET", format!("{BARRIERS}?limit=-1")).answers(400, "limit"),
        case("a limit that is not a number", "GET", format!("{BARRIERS}?limit=ten")).answers(400, "limit"),
        case("a garbage continue token", "GET", format!("{BARRIERS}?limit=1&continue=garbage")).answers(400, "continue"),
        case("a continue token for a snapshot never taken", "GET", format!("{BARRIERS}?limit=1&continue={}", forged_continue_token())).answers(410, "continue"),
        case("an exact read of a version long gone", "GET", format!("{BARRIERS}?resourceVersion=1&resourceVersionMatch=Exact")).answers(410, ""),
        case("a watch with timeoutSeconds=abc", "GET", format!("{BARRIERS}?watch=true&timeoutSeconds=abc")).answers(400, "timeoutSeconds"),
        case("watch=maybe", "GET", format!("{BARRIERS}?watch=maybe")).answers(400, "watch"),
        case("a watch from resourceVersion=abc", "GET", format!("{BARRIERS}?watch=true&resourceVersion=abc")).answers(400, "resourceVersion"),
        case("a watch with resourceVersionMatch", "GET", format!("{BARRIERS}?watch=true&resourceVersion=1&resourceVersionMatch=Exact")).answers(400, "resourceVersionMatch"),
        case("an unknown fieldValidation", "POST", format!("{BARRIERS}?fieldValidation=Lenient"))
            .json(barrier(named("q1"), json!({"expected": 1})))
            .answers(400, "fieldValidation"),
        case("an unknown dryRun", "POST", format!("{BARRIERS}?dryRun=Some"))
            .json(barrier(named("q2"), json!({"expected": 1})))
            .answers(400, "dryRun"),
        case("an unknown propagationPolicy", "DELETE", format!("{SEED}?propagationPolicy=Sideways")).answers(400, "propagationPolicy"),
        case("gracePeriodSeconds that is not a number", "DELETE", format!("{SEED}?gracePeriodSeconds=soon")).answers(400, "gracePeriodSeconds"),
        case("an unknown includeObject", "GET", format!("{BARRIERS}?includeObject=Everything"))
            .headers("\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io")
            .answers(400, "includeObject"),
        case("a fieldManager too long", "POST", format!("{BARRIERS}?fieldManager={}", "m".repeat(200)))
            .json(barrier(named("q3"), json!({"expected": 1})))
            .answers(400, "fieldManager"),
        // Patches.
        case("a JSON patch that is not a list", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("{\"op\":\"add\"}")
            .answers(400, ""),
        case("a JSON patch with an unknown op", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("[{\"op\":\"explode\",\"path\":\"/spec\"}]")
            .answers(400, ""),
        case("a JSON patch into a missing path", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("[{\"op\":\"replace\",\"path\":\"/spec/nothing/here\",\"value\":1}]")
            .answers(422, ""),
        case("a JSON patch whose test fails", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("[{\"op\":\"test\",\"path\":\"/spec/expected\",\"value\":99}]")
            .answers(422, ""),
        case("a JSON patch that moves the spec to the root, then fails", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("[{\"op\":\"move\",\"from\":\"/spec\",\"path\":\"\"},{\"op\":\"add\",\"path\":\"/metadata/name\",\"value\":null}]")
            .answers(422, "could not be applied"),
        case("a JSON patch that removes the metadata", "PATCH", SEED)
            .content_type("application/json-patch+json")
            .body("[{\"op\":\"remove\",\"path\":\"/metadata\"}]")
            .answers(400, "name"),
        case("a merge patch making expected a string", "PATCH", SEED)
            .content_type("application/merge-patch+json")
            .body("{\"spec\":{\"expected\":\"x\"}}")
            .answers(422, "spec.expected"),
        case("a merge patch that is a list", "PATCH", SEED)
            .content_type("application/merge-patch+json")
            .body("[1,2]")
            .answers(400, "merge patch"),
        case("a strategic merge patch on a custom resource", "PATCH", SEED)
            .content_type("application/strategic-merge-patch+json")
            .body("{\"spec\":{\"expected\":2}}")
            .answers(415, "accepted media types"),
        case("a patch in XML", "PATCH", SEED)
            .content_type("application/xml")
            .body("<spec/>")
            .answers(415, "accepted media types"),
        case("an apply patch without a field manager", "PATCH", SEED)
            .content_type("application/apply-patch+yaml")
            .body("spec:\n  expected: 2\n")
            .answers(422, "fieldManager"),
        case("an apply creating an object with metadata: 5", "PATCH", format!("{BARRIERS}/fresh?fieldManager=m"))
            .content_type("application/apply-patch+yaml")
            .body("metadata: 5\nspec:\n  expected: 1\n")
            .answers(400, "metadata"),
        case("a patch that renames the object", "PATCH", SEED)
            .content_type("application/merge-patch+json")
            .body("{\"metadata\":{\"name\":\"other\"}}")
            .answers(400, "name"),
        // Stale and garbage resourceVersions.
        case("an update with a stale resourceVersion", "PUT", SEED)
            .json(barrier(json!({"name": "seed", "resourceVersion": "1"}), json!({"expected": 2})))
            .answers(409, "seed"),
        case("an update with a garbage resourceVersion", "PUT", SEED)
            .json(barrier(json!({"name": "seed", "resourceVersion": "abc"}), json!({"expected": 2})))
            .answers(422, "metadata.resourceVersion"),
        case("an update without a resourceVersion", "PUT", SEED)
            .json(seed_with(json!({"expected": 2})))
            .answers(422, "metadata.resourceVersion"),
        case("a delete with a wrong uid precondition", "DELETE", SEED)
            .json(json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-the-uid"}}))
            .answers(409, "uid"),
        case("a delete whose options are not JSON", "DELETE", SEED).body("{{").answers(400, ""),
        // Credentials.
        case("no token", "GET", BARRIERS)
            .headers("\r\nAuthorization: Basic eDp5")
            .answers(401, "Unauthorized"),
        case("a wrong token", "GET", BARRIERS)
            .headers("\r\nAuthorization: Bearer wrong")
            .answers(401, "Unauthorized"),
        case("a 32 KiB token", "GET", BARRIERS)
            .headers(format!("\r\nAuthorization: Bearer {}", "t".repeat(32 * 1024)))
            .answers(401, "Unauthorized"),
    ]
    .into_iter()
    .chain(crd_cases())
    .collect()
}

/// A well-formed continue token for a snapshot the server never took.
fn forged_continue_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"id": 987_654_321u64, "rv": 1, "ns": "hostile", "name": "a"}).to_string())
}

/// The seed objects every case may touch, as stored.
async fn stored(raw: &Raw) -> Vec<Value> {
    let mut objects = Vec::new();
    for path in [BARRIERS, ARRIVALS, CRDS] {
        let answer = raw.send(&format!("GET {path} HTTP/1.1"), b"", false).await;
        assert_eq!(
            answer.code,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let list = answer.status();
        objects.extend(list["items"].as_array().unwrap().iter().cloned());
    }
    objects
}

#[tokio::test]
async fn hostile_requests_get_the_right_status_and_change_nothing() {
    let t = TestServer::start_with(|config| config.tls = false).await;
    let raw = raw_client(&t).await;
    let namespace = raw
        .send(
            "POST /api/v1/namespaces HTTP/1.1\r\nContent-Type: application/json",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hostile"}})
                .to_string()
                .as_bytes(),
            false,
        )
        .await;
    assert_eq!(namespace.code, 201);
    let seed = raw
        .send(
            &format!("POST {BARRIERS} HTTP/1.1\r\nContent-Type: application/json"),
            seed_with(json!({"expected": 1})).to_string().as_bytes(),
            false,
        )
        .await;
    assert_eq!(seed.code, 201, "{}", String::from_utf8_lossy(&seed.body));
    let before = stored(&raw).await;

    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let head = format!(
            "{} {} HTTP/1.1\r\nContent-Type: {}{}",
            case.method, case.target, case.content_type, case.extra_headers
        );
        let answer = raw.send(&head, &case.body, case.chunked).await;
        let status = answer.status();
        let message = status["message"].as_str().unwrap_or_default();
        let problems = [
            (answer.code != case.code)
                .then(|| format!("answered {}, expected {}", answer.code, case.code)),
            (status["kind"] != "Status").then(|| "the body is not a Status".to_owned()),
            (status["code"] != case.code).then(|| format!("Status code {}", status["code"])),
            (!message.contains(case.says)).then(|| format!("message does not say {:?}", case.says)),
        ];
        let problems: Vec<String> = problems.into_iter().flatten().collect();
        if !problems.is_empty() {
            wrong.push(format!(
                "{}: {} — {}",
                case.what,
                problems.join("; "),
                truncate(&String::from_utf8_lossy(&answer.body), 300)
            ));
        }
        if case.code == 429 {
            assert!(answer.headers.contains("retry-after"), "{}", case.what);
        }
        let health = raw.send("GET /healthz HTTP/1.1", b"", false).await;
        assert_eq!(health.code, 200, "the server is down after {:?}", case.what);
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    let after = stored(&raw).await;
    assert_eq!(after, before, "hostile requests changed what is stored");
}

/// A malformed request line or oversize headers are refused by the HTTP layer itself,
/// and the server keeps serving.
#[tokio::test]
async fn malformed_http_is_refused_and_the_server_stays_up() {
    let t = TestServer::start_with(|config| config.tls = false).await;
    let raw = raw_client(&t).await;
    for garbage in [
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        format!(
            "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "h".repeat(1024 * 1024)
        )
        .into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ] {
        let exchange = async {
            let mut stream = TcpStream::connect(t.server.address).await.unwrap();
            let _ = stream.write_all(&garbage).await;
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            answer
        };
        let answer = tokio::time::timeout(HANG, exchange).await.expect("no hang");
        if let Some(answer) = parse_answer(&answer) {
            assert!(
                (400..500).contains(&answer.code),
                "answered {}",
                answer.code
            );
        }
        let health = raw.send("GET /healthz HTTP/1.1", b"", false).await;
        assert_eq!(health.code, 200);
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Starts a create whose body never finishes arriving: it holds a mutating slot until
/// the rest of its body comes (or the request timeout ends it).
async fn stalled_create(raw: &Raw) -> TcpStream {
    let mut stream = TcpStream::connect(raw.address).await.unwrap();
    let head = format!(
        "POST {DEFAULT_BARRIERS}?dryRun=All HTTP/1.1\r\nHost: konductor\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        raw.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_answer(mut stream: TcpStream) -> Answer {
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .expect("no hang")
        .unwrap();
    parse_answer(&raw).expect("a readable answer")
}

async fn raw_client(t: &TestServer) -> Raw {
    let token = std::fs::read_to_string(t.dir.path().join("token")).unwrap();
    Raw {
        address: t.server.address,
        token: token.trim().to_owned(),
    }
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_429_with_retry_after() {
    let t = TestServer::start_with(|config| {
        config.tls = false;
        config.limits.max_mutating_requests_inflight = 1;
    })
    .await;
    let raw = raw_client(&t).await;
    let stalled = stalled_create(&raw).await;
    let body = barrier(named("limited"), json!({"expected": 1})).to_string();
    // The stalled request takes the only mutating slot once the server reads its
    // head; until then a create may still get through (as a dry run, storing nothing).
    let mut refused = None;
    for _ in 0..10_000 {
        let answer = raw
            .send(
                &format!(
                    "POST {DEFAULT_BARRIERS}?dryRun=All HTTP/1.1\r\nContent-Type: application/json"
                ),
                body.as_bytes(),
                false,
            )
            .await;
        if answer.code == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(
            answer.code,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let refused = refused.expect("a create beyond the limit was refused");
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("retry-after: 1"),
        "{}",
        refused.headers
    );
    assert_eq!(refused.status()["reason"], "TooManyRequests");
    assert!(
        refused.status()["message"]
            .as_str()
            .unwrap()
            .contains("mutating")
    );
    // Reads have their own limit and still get through.
    let read = raw
        .send(&format!("GET {DEFAULT_BARRIERS} HTTP/1.1"), b"", false)
        .await;
    assert_eq!(read.code, 200);

    // Finishing the stalled body frees the slot.
    let mut stalled = stalled;
    let rest = format!("{}{}", &body[1..], " ".repeat(1000 - body.len()));
    stalled.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(read_answer(stalled).await.code, 201);
    let after = raw
        .send(
            &format!(
                "POST {DEFAULT_BARRIERS}?dryRun=All HTTP/1.1\r\nContent-Type: application/json"
            ),
            body.as_bytes(),
            false,
        )
        .await;
    assert_eq!(after.code, 201);
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_504() {
    let t = TestServer::start_with(|config| {
        config.tls = false;
        config.limits.request_timeout = Duration::from_secs(1);
    })
    .await;
    let raw = raw_client(&t).await;
    let answer = read_answer(stalled_create(&raw).await).await;
    assert_eq!(answer.code, 504);
    assert_eq!(answer.status()["reason"], "Timeout");
    assert!(
        answer.status()["message"]
            .as_str()
            .unwrap()
            .contains("time allotted"),
        "{:?}",
        answer.status()
    );
    let health = raw.send("GET /healthz HTTP/1.1", b"", false).await;
    assert_eq!(health.code, 200);
}
