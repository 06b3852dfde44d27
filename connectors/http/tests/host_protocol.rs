//! Spawns the real `fcp-http` binary and drives it through fcp-proto's host codec, as a
//! supervisor would (host-protocol §3, §4). Nothing here reaches the internet: the only
//! server is one this test starts on 127.0.0.1, reached over plain http with a test-only
//! config (`allow_plain_http` and an `allow_hosts` entry for it); every other URL must
//! be refused before a connection is made.

use fcp_sdk::testing::IO_TIMEOUT;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use fcp_policy::manifest::Manifest;
use fcp_proto::host::{ErrorCode, FcpError, HandshakeRequest, InvokeRequest, ReplyBody, Request, Shaped, TokenBytes};
use fcp_proto::id::{CanonicalId, ZoneId};
use fcp_sdk::testing::Host;
use serde_json::{json, Value};

const MANIFEST: &str = include_str!("../manifest.toml");

/// Spawns with an empty environment plus `env`.
fn spawn(env: &[(&str, &str)]) -> Host {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fcp-http"));
    cmd.env_clear().env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Host::spawn(cmd)
}

/// What these tests ask of the connector beyond the shared harness.
trait HttpHost {
    /// Sends `configure`; the error code when refused.
    fn configure(&mut self, config: Value) -> Result<(), ErrorCode>;
    /// Invokes `operation` and returns its output.
    fn invoke(&mut self, operation: &str, input: Value) -> Value;
    /// Invokes `operation`, which must fail, and returns the typed error.
    fn refused(&mut self, operation: &str, input: Value) -> FcpError;
}

impl HttpHost for Host {
    fn configure(&mut self, config: Value) -> Result<(), ErrorCode> {
        let Value::Object(config) = config else { panic!("config is an object") };
        self.call(Request::Configure(config)).outcome.map(drop).map_err(|f| f.code())
    }

    fn invoke(&mut self, operation: &str, input: Value) -> Value {
        let ReplyBody::Invoke(r) = self.ok(invoke(operation, input)) else { panic!("invoke") };
        r.response.result.expect("a result")
    }

    fn refused(&mut self, operation: &str, input: Value) -> FcpError {
        let failure = self.call(invoke(operation, input)).outcome.expect_err("a failure");
        failure.typed().cloned().expect("a typed error in the envelope")
    }
}

fn id(s: &str) -> CanonicalId {
    CanonicalId::new(s).expect("canonical")
}

fn invoke(operation: &str, input: Value) -> Request {
    let zone = ZoneId::new("z:work").expect("zone");
    let r = InvokeRequest::new("req_http", id("fcp.http"), id(operation), zone, input, TokenBytes(vec![132, 77]));
    Request::Invoke(Box::new(r))
}

fn handshake() -> Request {
    Request::Handshake(HandshakeRequest::new(ZoneId::new("z:work").expect("zone"), [234; 32], [9; 32]))
}

/// One request as the local server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    line: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A plain-HTTP server on 127.0.0.1 that answers a few fixed paths, one request per
/// connection, and records what it saw. A `CONNECT` first line is accepted as a proxy
/// would, and the request inside the tunnel is answered the same way.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            // Bounded: the tests make far fewer requests than this.
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                thread::spawn(move || serve(stream, &log));
            }
        });
        Server { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen { line: line.trim_end().to_owned(), headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let Some(mut request) = read_request(&mut reader) else { return };
    if request.line.starts_with("CONNECT ") {
        log.lock().expect("lock").push(request);
        let _ = writer.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let Some(inner) = read_request(&mut reader) else { return };
        request = inner;
    }
    let path = request.line.split(' ').nth(1).unwrap_or_default().to_owned();
    let (status, extra, body) = match path.as_str() {
        "/hello" => ("200 OK", "content-type: text/plain\r\nx-test: a\r\nx-test: b\r\n", "hello from 127.0.0.1".into()),
        "/echo" => ("201 Created", "", request.body.clone()),
        "/redirect" => ("302 Found", "location: http://elsewhere.invalid/\r\n", String::new()),
        "/big" => ("200 OK", "", "x".repeat(100_000)),
        _ => ("404 Not Found", "", "no such path".into()),
    };
    log.lock().expect("lock").push(request);
    let head = format!("HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
}

#[test]
fn get_and_post_reach_an_allowed_local_server() {
    let server = Server::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut host = spawn(&[]);
    let config = json!({"allow_hosts": [format!("127.0.0.1:{}", server.port)], "allow_plain_http": true});
    assert_eq!(host.configure(config), Ok(()));
    let ReplyBody::Handshake(Shaped::Typed(_)) = host.ok(handshake()) else { panic!("typed handshake") };

    let got = host.invoke("http.get", json!({"url": format!("{base}/hello"), "headers": {"x-caller": "fcp"}}));
    assert_eq!(
        (&got["status"], &got["body"], &got["truncated"]),
        (&json!(200), &json!("hello from 127.0.0.1"), &json!(false))
    );
    assert_eq!((&got["headers"]["x-test"], &got["headers"]["content-type"]), (&json!("a, b"), &json!("text/plain")));
    let posted = host.invoke("http.post", json!({"url": format!("{base}/echo"), "body": "{\"n\": 1}"}));
    assert_eq!((&posted["status"], &posted["body"]), (&json!(201), &json!("{\"n\": 1}")));
    let missing = host.invoke("http.get", json!({"url": format!("{base}/nothing")}));
    assert_eq!(missing["status"], json!(404), "a status is data, not an error");

    // A redirect is returned, not followed: elsewhere.invalid is never asked for.
    let redirect = host.invoke("http.get", json!({"url": format!("{base}/redirect")}));
    assert_eq!(
        (&redirect["status"], &redirect["headers"]["location"]),
        (&json!(302), &json!("http://elsewhere.invalid/"))
    );
    // A body over max_response_bytes (32 KiB by default) is cut and flagged.
    let big = host.invoke("http.get", json!({"url": format!("{base}/big")}));
    assert_eq!((big["body"].as_str().map(str::len), &big["truncated"]), (Some(32 * 1024), &json!(true)));

    let seen = server.seen();
    let lines: Vec<&str> = seen.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /hello HTTP/1.1",
            "POST /echo HTTP/1.1",
            "GET /nothing HTTP/1.1",
            "GET /redirect HTTP/1.1",
            "GET /big HTTP/1.1"
        ]
    );
    assert_eq!(seen[0].headers.get("x-caller").map(String::as_str), Some("fcp"));
    assert_eq!(seen[1].body, "{\"n\": 1}");
    host.finish();
}

#[test]
fn everything_else_is_refused_without_a_connection() {
    let server = Server::start();
    let port = server.port;
    let mut host = spawn(&[]);
    // First with nothing allowed at all.
    assert_eq!(host.configure(json!({})), Ok(()));
    let ReplyBody::Handshake(Shaped::Typed(_)) = host.ok(handshake()) else { panic!("typed handshake") };
    let not_allowed = |e: &FcpError| matches!(e, FcpError::ResourceNotAllowed { .. });
    let e = host.refused("http.get", json!({"url": "https://api.github.com/zen"}));
    assert!(not_allowed(&e), "{e:?}");

    assert_eq!(host.configure(json!({"allow_hosts": [format!("127.0.0.1:{port}")]})), Ok(()));
    let invalid =
        |e: &FcpError| matches!(e, FcpError::InvalidRequest { code, .. } if *code == ErrorCode::INVALID_PARAMS);
    let e = host.refused("http.get", json!({"url": format!("http://127.0.0.1:{port}/hello")}));
    assert!(invalid(&e), "plain http is off unless configured: {e:?}");
    assert_eq!(host.configure(json!({"allow_hosts": [format!("127.0.0.1:{port}")], "allow_plain_http": true})), Ok(()));
    for url in [
        format!("http://127.0.0.1:{}/hello", port.wrapping_add(1)),
        format!("http://localhost:{port}/hello"),
        format!("http://127.1:{port}/hello"),
        "https://api.github.com/".to_owned(),
    ] {
        let e = host.refused("http.get", json!({"url": url}));
        assert!(not_allowed(&e), "{url}: {e:?}");
    }
    for input in [
        json!({"url": format!("http://user:pw@127.0.0.1:{port}/hello")}),
        json!({"url": format!("http://127.0.0.1:{port}/hello"), "headers": {"host": "api.github.com"}}),
        json!({"url": format!("http://127.0.0.1:{port}/hello"), "body": "GET has none"}),
        json!({"url": "file:///etc/passwd"}),
        json!({"url": format!("http://127.0.0.1:{port}/hello"), "method": "DELETE"}),
    ] {
        let e = host.refused("http.get", input.clone());
        assert!(invalid(&e), "{input}: {e:?}");
    }
    assert_eq!(server.seen(), [], "no refused request reached the server");

    let bad = json!({"allow_hosts": ["https://api.github.com/"]});
    assert_eq!(host.configure(bad), Err(ErrorCode::INVALID_JSON));
    host.finish();
}

/// `HTTPS_PROXY` routes the request through the proxy (the server above plays one): the
/// target name is sent in `CONNECT` and never resolved here. A bad `SSL_CERT_FILE` fails
/// configure rather than falling back to other roots.
#[test]
fn the_environment_routes_through_the_proxy() {
    let proxy = Server::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let mut host = spawn(&[("HTTPS_PROXY", proxy_url.as_str())]);
    let config = json!({"allow_hosts": ["upstream.invalid:8080"], "allow_plain_http": true});
    assert_eq!(host.configure(config), Ok(()));
    let ReplyBody::Handshake(Shaped::Typed(_)) = host.ok(handshake()) else { panic!("typed handshake") };
    let got = host.invoke("http.get", json!({"url": "http://upstream.invalid:8080/hello"}));
    assert_eq!((&got["status"], &got["body"]), (&json!(200), &json!("hello from 127.0.0.1")));
    let lines: Vec<String> = proxy.seen().into_iter().map(|s| s.line).collect();
    assert_eq!(lines, ["CONNECT upstream.invalid:8080 HTTP/1.1", "GET /hello HTTP/1.1"]);
    host.finish();

    let mut host = spawn(&[("SSL_CERT_FILE", "/nonexistent/fcp-test-ca.pem")]);
    assert_eq!(host.configure(json!({})), Err(ErrorCode::INVALID_JSON));
    host.finish();
}

/// The wire name of a host-protocol enum value, to compare with the manifest's names.
macro_rules! wire {
    ($v:expr) => {
        serde_json::to_value($v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
}

/// The binary's catalogue is the manifest's, field for field.
#[test]
fn introspection_matches_the_manifest() {
    let manifest = Manifest::parse(MANIFEST).expect("valid manifest");
    let mut host = spawn(&[]);
    let ReplyBody::Introspect(Shaped::Typed(catalogue)) = host.ok(Request::Introspect) else { panic!("typed") };
    let ids: Vec<&str> = catalogue.operations.iter().map(|op| op.id.as_str()).collect();
    let declared: Vec<&str> = manifest.operations.keys().map(CanonicalId::as_str).collect();
    assert_eq!(ids, declared);
    for op in &catalogue.operations {
        let m = &manifest.operations[&id(&op.id)];
        assert_eq!(op.capability, m.capability.as_str());
        assert_eq!(op.description.as_deref(), Some(m.description.as_str()));
        assert_eq!(wire!(op.risk_level), m.risk_level.as_str());
        assert_eq!(wire!(op.safety_tier), m.safety_tier.as_str());
        assert_eq!(wire!(op.idempotency), m.idempotency.as_str());
        assert_eq!(op.requires_approval.map(|a| wire!(a)), Some(m.requires_approval.as_str().to_owned()));
        assert_eq!((&op.input_schema, &op.output_schema), (&m.input_schema, &m.output_schema), "{}", op.id);
        let hints = m.ai_hints.as_ref().expect("manifest has ai_hints");
        assert_eq!(op.ai_hints.when_to_use, hints.when_to_use);
        assert_eq!(op.ai_hints.examples, hints.examples);
        assert_eq!(op.ai_hints.common_mistakes, hints.common_mistakes);
    }
    host.finish();
}
