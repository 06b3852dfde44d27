//! `mitm::intercept` end to end over real TLS on both legs, without mocks.
//!
//! The upstream is a real HTTPS server on 127.0.0.1 (tokio-rustls + hyper, its certificate
//! from a test CA made with rcgen, given to the proxy as `Upstream` roots) that records
//! the headers it receives. The connector is a real hyper client over tokio-rustls that
//! trusts only the jail CA's PEM and verifies the name it dials; it talks to `intercept`
//! over an in-memory duplex pipe.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fcp_egress::mitm::{
    intercept, Auth, Blame, BodyEnd, CaParams, Credential, CredentialSet, DenyReason, Ended, JailCa, Limits, MitmError,
    MitmEvent, Outcome, Report, Upstream,
};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use zeroize::Zeroizing;

const HOST: &str = "api.fcp.test";
const SECRET: &str = "ghp_REAL-secret-0123456789abcdef";
const PLACEHOLDER: &str = "FCP_PLACEHOLDER_TOKEN";

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA of the test's own, and a leaf for `name` signed by it.
struct TestPki {
    roots: Arc<RootCertStore>,
    leaf: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

fn test_pki(name: &str) -> TestPki {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("test upstream CA {}", SERIAL.fetch_add(1, Ordering::SeqCst)));
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_owned()]).expect("leaf params").signed_by(&leaf_key, &issuer);
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("add root");
    TestPki {
        roots: Arc::new(roots),
        leaf: leaf.expect("leaf cert").der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// What the upstream received.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: HeaderMap,
}

/// A real HTTPS server on 127.0.0.1.
struct TestUpstream {
    addr: SocketAddr,
    pki: TestPki,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    async fn start() -> TestUpstream {
        let pki = test_pki(HOST);
        let mut config = ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![pki.leaf.clone()], PrivateKeyDer::Pkcs8(pki.leaf_key.clone_key()))
            .expect("upstream config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (seen, accepted) = (seen.clone(), accepted.clone());
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = service_fn(move |request| {
                            let seen = seen.clone();
                            async move { Ok::<_, std::convert::Infallible>(respond(&seen, request)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        TestUpstream { addr, pki, seen, accepted, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn verified(&self) -> Upstream {
        Upstream::new(self.pki.roots.clone(), Vec::new()).expect("upstream roots")
    }
}

/// The upstream's routes.
fn respond(seen: &Mutex<Vec<Seen>>, request: Request<Incoming>) -> Response<Chunks> {
    let target = request.uri().path_and_query().map(|pq| pq.to_string()).unwrap_or_default();
    seen.lock().expect("seen").push(Seen { target: target.clone(), headers: request.headers().clone() });
    let n: usize = target.split("n=").nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    let auth = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let mut response = Response::new(Chunks::new(vec![Bytes::from_static(b"ok")], Duration::ZERO, true));
    match request.uri().path() {
        "/echo" => {
            // The secret comes back in a header and in a body split mid-secret across
            // two chunks sent 20 ms apart.
            let mut body = b"you sent: ".to_vec();
            body.extend_from_slice(&auth);
            body.extend_from_slice(b" -- end");
            let cut = b"you sent: Bearer ghp_REAL".len().min(body.len());
            let (first, second) = body.split_at(cut);
            *response.body_mut() = Chunks::new(
                vec![Bytes::copy_from_slice(first), Bytes::copy_from_slice(second)],
                Duration::from_millis(20),
                false,
            );
            if let Ok(value) = HeaderValue::from_bytes(&auth) {
                response.headers_mut().insert("x-echo-auth", value);
            }
        }
        "/big" => {
            let chunks = (0..n.div_ceil(1024)).map(|i| Bytes::from(vec![b'x'; 1024.min(n - i * 1024)])).collect();
            *response.body_mut() = Chunks::new(chunks, Duration::ZERO, false);
        }
        "/big-cl" => *response.body_mut() = Chunks::new(vec![Bytes::from(vec![b'x'; n])], Duration::ZERO, true),
        "/slow" => {
            let chunks = vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")];
            *response.body_mut() = Chunks::new(chunks, Duration::from_secs(3), false);
        }
        "/redirect" => {
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
        }
        _ => {}
    }
    response
}

/// A body of fixed chunks, each its own frame, optionally `gap` apart; with `exact` it
/// announces its length (Content-Length), else it is sent chunked.
struct Chunks {
    chunks: VecDeque<Bytes>,
    gap: Duration,
    exact: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Chunks {
    fn new(chunks: Vec<Bytes>, gap: Duration, exact: bool) -> Chunks {
        Chunks { chunks: chunks.into(), gap, exact, sleep: None }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let Some(chunk) = self.chunks.pop_front() else { return Poll::Ready(None) };
        if !self.gap.is_zero() {
            self.sleep = Some(Box::pin(tokio::time::sleep(self.gap)));
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

/// The credential the tests inject: a bearer token bound to `hosts`.
fn github(hosts: &[&str], placeholder: Option<&str>) -> Credential {
    Credential {
        id: "github".into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        auth: Auth::Bearer(Zeroizing::new(SECRET.into())),
        placeholder: placeholder.map(str::to_owned),
    }
}

fn set(credentials: Vec<Credential>, default: Option<&str>) -> CredentialSet {
    CredentialSet::new(credentials, default).expect("credential set")
}

/// A connector's connection through `intercept`.
struct Connector {
    sender: SendRequest<Full<Bytes>>,
    events: Arc<Mutex<Vec<MitmEvent>>>,
    proxy: JoinHandle<Result<Report, MitmError>>,
}

/// What the connector saw of one request.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, hyper::Error>,
}

impl Connector {
    async fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::get(target).header(header::HOST, HOST);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).expect("request");
        let response = self.sender.send_request(request).await.expect("response head");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map(|collected| collected.to_bytes());
        Answer { status: parts.status, headers: parts.headers, body }
    }

    /// Closes the connector's side and returns what `intercept` returned.
    async fn finish(self) -> (Result<Report, MitmError>, Vec<MitmEvent>) {
        drop(self.sender);
        let result = tokio::time::timeout(Duration::from_secs(10), self.proxy)
            .await
            .expect("intercept ends when the connector goes")
            .expect("intercept task");
        let events = self.events.lock().expect("events").clone();
        (result, events)
    }
}

struct Setup {
    server_name: &'static str,
    dial_name: &'static str,
    ca: CaParams,
    /// The connector skips certificate verification (to reach checks behind it).
    accept_any_certificate: bool,
    upstream: Upstream,
    credentials: CredentialSet,
    limits: Limits,
}

impl Setup {
    fn new(upstream: &TestUpstream, credentials: CredentialSet) -> Setup {
        Setup {
            server_name: HOST,
            dial_name: HOST,
            ca: CaParams::default(),
            accept_any_certificate: false,
            upstream: upstream.verified(),
            credentials,
            limits: Limits::default(),
        }
    }

    /// Starts `intercept` for `server_name` toward `target`, and a connector that dials
    /// `dial_name` trusting only the jail CA's PEM. Err is the connector's TLS failure,
    /// with what `intercept` returned.
    async fn connect(self, target: SocketAddr) -> Result<Connector, (std::io::Error, Result<Report, MitmError>)> {
        let ca = JailCa::generate_with("test-jail", &self.ca, SystemTime::now()).expect("jail CA");
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.ca_pem().as_bytes()) {
            roots.add(cert.expect("jail CA PEM")).expect("jail CA root");
        }
        let (connector_io, proxy_io) = tokio::io::duplex(64 * 1024);
        let events = Arc::new(Mutex::new(Vec::new()));
        let proxy = tokio::spawn({
            let events = events.clone();
            let Setup { server_name, upstream, credentials, limits, .. } = self;
            async move {
                intercept(proxy_io, server_name, target, &ca, &upstream, &credentials, &limits, |event| {
                    events.lock().expect("events").push(event)
                })
                .await
            }
        });
        let mut config = ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        if self.accept_any_certificate {
            config.dangerous().set_certificate_verifier(Arc::new(AcceptAnyCertificate(ring())));
        }
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = ServerName::try_from(self.dial_name).expect("dial name");
        let tls = match TlsConnector::from(Arc::new(config)).connect(name, connector_io).await {
            Ok(tls) => tls,
            Err(error) => {
                let result = tokio::time::timeout(Duration::from_secs(10), proxy)
                    .await
                    .expect("intercept ends after a failed handshake")
                    .expect("intercept task");
                return Err((error, result));
            }
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("h1");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connector { sender, events, proxy })
    }
}

/// A connector that verifies nothing: only to show what the proxy checks on its own.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn connect(setup: Setup, upstream: &TestUpstream) -> Connector {
    match setup.connect(upstream.addr).await {
        Ok(connector) => connector,
        Err((error, result)) => panic!("connector TLS failed: {error}; intercept: {result:?}"),
    }
}

fn denied(event: &MitmEvent) -> Option<DenyReason> {
    match event.outcome {
        Outcome::Denied { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn injects_the_bound_credential_and_strips_the_id() {
    let upstream = TestUpstream::start().await;
    let mut connector = connect(Setup::new(&upstream, set(vec![github(&[HOST], None)], None)), &upstream).await;

    let answer = connector.get("/v1/repos?token=in-the-query", &[("X-Fcp-Credential-Id", "github")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.expect("body"), "ok");
    // A second request reuses the upstream connection.
    assert_eq!(connector.get("/again", &[("x-fcp-credential-id", "github")]).await.status, StatusCode::OK);

    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.headers.get(header::AUTHORIZATION).expect("auth"), &format!("Bearer {SECRET}"));
        assert!(!request.headers.contains_key("x-fcp-credential-id"), "{:?}", request.headers);
        assert_eq!(request.headers.get(header::HOST).expect("host"), HOST);
        assert_eq!(request.headers.get(header::ACCEPT_ENCODING).expect("accept-encoding"), "identity");
    }
    assert_eq!(seen[0].target, "/v1/repos?token=in-the-query");

    let (result, events) = connector.finish().await;
    let report = result.expect("report");
    assert_eq!((report.requests, report.forwarded, report.injected), (2, 2, 2));
    assert_eq!(report.upstream_connections, 1);
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(
        events[0],
        MitmEvent {
            method: "GET".into(),
            host: HOST.into(),
            path: "/v1/repos".into(),
            credential_id: Some("github".into()),
            outcome: Outcome::Forwarded {
                status: 200,
                request_bytes: 0,
                response_bytes: 2,
                redacted: 0,
                end: BodyEnd::Complete
            },
        }
    );
}

#[tokio::test]
async fn an_unknown_id_is_refused_and_nothing_reaches_upstream() {
    let upstream = TestUpstream::start().await;
    let mut connector = connect(Setup::new(&upstream, set(vec![github(&[HOST], None)], None)), &upstream).await;

    let answer = connector.get("/v1/user", &[("X-FCP-Credential-ID", "gitlab")]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.headers.get("x-fcp-egress-denied").expect("reason header"), "credential_unknown");
    let body = answer.body.expect("body");
    assert!(String::from_utf8_lossy(&body).contains("names no credential"), "{body:?}");

    let (result, events) = connector.finish().await;
    assert_eq!(result.expect("report").denied, 1);
    assert_eq!(events.len(), 1);
    assert_eq!(denied(&events[0]), Some(DenyReason::CredentialUnknown));
    assert_eq!(events[0].credential_id.as_deref(), Some("gitlab"));
    assert_eq!(upstream.accepted(), 0, "no connection was opened upstream");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_credential_for_another_host_is_refused_and_nothing_reaches_upstream() {
    let upstream = TestUpstream::start().await;
    let credentials = set(vec![github(&["*.other.test", "fcp.test"], Some(PLACEHOLDER))], None);
    let mut connector = connect(Setup::new(&upstream, credentials), &upstream).await;

    let by_id = connector.get("/", &[("X-FCP-Credential-ID", "github")]).await;
    assert_eq!(by_id.status, StatusCode::FORBIDDEN);
    assert_eq!(by_id.headers.get("x-fcp-egress-denied").expect("reason header"), "credential_host_unbound");
    let by_placeholder = connector.get("/", &[("authorization", &format!("Bearer {PLACEHOLDER}") as &str)]).await;
    assert_eq!(by_placeholder.status, StatusCode::FORBIDDEN);

    let (_, events) = connector.finish().await;
    assert_eq!(events.iter().map(denied).collect::<Vec<_>>(), vec![Some(DenyReason::CredentialHostUnbound); 2]);
    assert_eq!(upstream.accepted(), 0);
}

#[tokio::test]
async fn a_placeholder_bearer_is_replaced_and_a_default_fills_a_missing_header() {
    let upstream = TestUpstream::start().await;
    let stripe = Credential {
        id: "stripe".into(),
        hosts: vec!["*.fcp.test".into()],
        auth: Auth::Basic { user: "sk_live".into(), password: Zeroizing::new("stripe-password-42".into()) },
        placeholder: None,
    };
    let credentials = set(vec![github(&[HOST], Some(PLACEHOLDER)), stripe], Some("stripe"));
    let mut connector = connect(Setup::new(&upstream, credentials), &upstream).await;

    assert_eq!(
        connector.get("/a", &[("Authorization", &format!("Bearer {PLACEHOLDER}"))]).await.status,
        StatusCode::OK
    );
    assert_eq!(connector.get("/b", &[]).await.status, StatusCode::OK);
    assert_eq!(connector.get("/c", &[("Authorization", "Bearer the-connectors-own")]).await.status, StatusCode::OK);

    let seen = upstream.seen();
    let auth = |i: usize| seen[i].headers.get(header::AUTHORIZATION).map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(auth(0), Some(format!("Bearer {SECRET}")));
    assert_eq!(auth(1), Some("Basic c2tfbGl2ZTpzdHJpcGUtcGFzc3dvcmQtNDI=".to_owned()));
    assert_eq!(auth(2), Some("Bearer the-connectors-own".to_owned()), "not a placeholder: left alone");
    let (_, events) = connector.finish().await;
    let ids: Vec<_> = events.iter().map(|e| e.credential_id.as_deref()).collect();
    assert_eq!(ids, vec![Some("github"), Some("stripe"), None]);
}

#[tokio::test]
async fn a_response_echoing_the_secret_reaches_the_connector_without_it() {
    let upstream = TestUpstream::start().await;
    let mut connector = connect(Setup::new(&upstream, set(vec![github(&[HOST], None)], None)), &upstream).await;

    let answer = connector.get("/echo", &[("X-FCP-Credential-ID", "github")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.body.expect("body");
    let text = String::from_utf8_lossy(&body);
    let masked = "*".repeat(SECRET.len());
    assert_eq!(text, format!("you sent: Bearer {masked} -- end"));
    assert_eq!(answer.headers.get("x-echo-auth").expect("echo header"), &format!("Bearer {masked}"));
    for value in answer.headers.values() {
        assert!(!String::from_utf8_lossy(value.as_bytes()).contains(SECRET));
    }

    let (_, events) = connector.finish().await;
    match &events[0].outcome {
        Outcome::Forwarded { redacted, end, .. } => assert_eq!((*redacted, *end), (2, BodyEnd::Complete)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_connector_refuses_a_leaf_for_another_name() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.server_name = "other.fcp.test";
    let Err((error, result)) = setup.connect(upstream.addr).await else {
        panic!("the connector accepted a leaf for other.fcp.test while dialing {HOST}");
    };
    let tls = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).expect("a rustls error");
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{tls:?}"
    );
    match result {
        Err(MitmError::SniMismatch { .. }) | Err(MitmError::ClientHandshake { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(upstream.accepted(), 0);
}

#[tokio::test]
async fn an_upstream_with_a_certificate_from_another_ca_fails() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, set(vec![github(&[HOST], None)], None));
    setup.upstream = Upstream::new(test_pki(HOST).roots, Vec::new()).expect("other roots");
    let mut connector = connect(setup, &upstream).await;

    let answer = connector.get("/", &[("X-FCP-Credential-ID", "github")]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let (result, events) = connector.finish().await;
    let error = result.expect_err("upstream certificate refused");
    assert!(
        matches!(
            &error,
            MitmError::UpstreamCertificate {
                source: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.blame(), Blame::Upstream);
    assert_eq!(events[0].outcome, Outcome::Failed { status: 502, code: "upstream_certificate" });
    assert!(upstream.seen().is_empty(), "no request was sent");
}

#[tokio::test]
async fn an_spki_pin_must_match() {
    let upstream = TestUpstream::start().await;
    let pin = Upstream::spki_sha256(&upstream.pki.leaf).expect("spki");

    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.upstream = Upstream::new(upstream.pki.roots.clone(), vec![[7; 32]]).expect("pinned");
    let mut connector = connect(setup, &upstream).await;
    assert_eq!(connector.get("/", &[]).await.status, StatusCode::BAD_GATEWAY);
    let (result, _) = connector.finish().await;
    match result {
        Err(MitmError::UpstreamPinMismatch { spki_sha256, .. }) => {
            assert_eq!(spki_sha256, pin.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
        other => panic!("{other:?}"),
    }
    assert!(upstream.seen().is_empty());

    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.upstream = Upstream::new(upstream.pki.roots.clone(), vec![[7; 32], pin]).expect("pinned");
    let mut connector = connect(setup, &upstream).await;
    assert_eq!(connector.get("/", &[]).await.status, StatusCode::OK);
    assert_eq!(connector.finish().await.0.expect("report").forwarded, 1);
}

#[tokio::test]
async fn a_body_past_max_response_bytes_aborts_the_connection() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.limits.max_response_bytes = 4096;
    let mut connector = connect(setup, &upstream).await;

    let fits = connector.get("/big?n=4096", &[]).await;
    assert_eq!(fits.body.expect("4096 bytes fit").len(), 4096);
    let streamed = connector.get("/big?n=10000", &[]).await;
    assert_eq!(streamed.status, StatusCode::OK);
    let cut = streamed.body.expect_err("the body is cut");
    assert!(!cut.is_user(), "{cut:?}");

    let (result, events) = connector.finish().await;
    assert!(matches!(result, Err(MitmError::ResponseTooLarge { limit: 4096 })), "{result:?}");
    match &events[1].outcome {
        Outcome::Forwarded { end, response_bytes, .. } => {
            assert_eq!(*end, BodyEnd::TooLarge);
            assert!(*response_bytes > 4096);
        }
        other => panic!("{other:?}"),
    }

    // A Content-Length over the limit is refused before any of the body is sent.
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.limits.max_response_bytes = 4096;
    let mut connector = connect(setup, &upstream).await;
    let declared = connector.get("/big-cl?n=5000", &[]).await;
    assert_eq!(declared.status, StatusCode::BAD_GATEWAY);
    let (result, _) = connector.finish().await;
    assert!(matches!(result, Err(MitmError::ResponseTooLarge { limit: 4096 })), "{result:?}");
}

#[tokio::test]
async fn a_host_header_for_another_name_is_refused() {
    let upstream = TestUpstream::start().await;
    let mut connector = connect(Setup::new(&upstream, set(vec![github(&[HOST], None)], None)), &upstream).await;

    let request = Request::get("/")
        .header(header::HOST, "evil.fcp.test")
        .header("x-fcp-credential-id", "github")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = connector.sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    let request = Request::get("/").header(header::HOST, format!("{HOST}:8443")).body(Full::new(Bytes::new()));
    let response = connector.sender.send_request(request.expect("request")).await.expect("response");
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "another port is another origin");

    let (_, events) = connector.finish().await;
    assert_eq!(events.iter().map(denied).collect::<Vec<_>>(), vec![Some(DenyReason::HostMismatch); 2]);
    assert_eq!(upstream.accepted(), 0);
}

#[tokio::test]
async fn redirects_past_max_redirects_are_refused() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.limits.max_redirects = 1;
    let mut connector = connect(setup, &upstream).await;

    assert_eq!(connector.get("/redirect", &[]).await.status, StatusCode::FOUND);
    let second = connector.get("/redirect", &[]).await;
    assert_eq!(second.status, StatusCode::BAD_GATEWAY);
    assert_eq!(second.headers.get("x-fcp-egress-denied").expect("reason"), "redirect_limit");
    assert_eq!(connector.get("/", &[]).await.status, StatusCode::OK, "other responses still pass");

    let (result, events) = connector.finish().await;
    assert_eq!(result.expect("report").redirects, 1);
    assert_eq!(denied(&events[1]), Some(DenyReason::RedirectLimit));
}

#[tokio::test]
async fn an_idle_connection_ends_after_idle_timeout() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.limits.idle_timeout = Duration::from_millis(200);
    let connector = connect(setup, &upstream).await;
    let result = tokio::time::timeout(Duration::from_secs(5), connector.proxy).await.expect("ended").expect("task");
    assert_eq!(result.expect("report").ended, Ended::IdleTimeout);
}

#[tokio::test]
async fn the_proxy_refuses_a_client_hello_for_another_name() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, set(vec![github(&[HOST], None)], None));
    setup.dial_name = "evil.fcp.test";
    setup.accept_any_certificate = true;
    let result = match setup.connect(upstream.addr).await {
        Ok(connector) => connector.finish().await.0,
        Err((_, result)) => result,
    };
    match result {
        Err(error @ MitmError::SniMismatch { .. }) => assert_eq!(error.blame(), Blame::Connector),
        other => panic!("{other:?}"),
    }
    assert_eq!(upstream.accepted(), 0);
}

#[tokio::test]
async fn a_name_constrained_ca_serves_its_names_and_refuses_others() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.ca.permitted = vec!["*.fcp.test".into()];
    let mut connector = connect(setup, &upstream).await;
    assert_eq!(connector.get("/", &[]).await.status, StatusCode::OK, "the connector accepts the constrained chain");
    connector.finish().await.0.expect("report");

    let params = CaParams { permitted: vec!["*.fcp.test".into()], ..CaParams::default() };
    let ca = JailCa::generate_with("constrained", &params, SystemTime::now()).expect("ca");
    let refused = ca.server_config_for("api.example.com").expect_err("outside the constraints");
    assert!(matches!(refused, MitmError::NameNotPermitted { ref name } if name == "api.example.com"), "{refused:?}");
    assert_eq!(refused.blame(), Blame::Local);
    let ip = ca.server_config_for("10.0.0.1").expect_err("an IP is not a name");
    assert!(matches!(ip, MitmError::ServerNameIsIp { .. }), "{ip:?}");
}

#[tokio::test]
async fn a_connection_past_total_timeout_is_cut() {
    let upstream = TestUpstream::start().await;
    let mut setup = Setup::new(&upstream, CredentialSet::empty());
    setup.limits.total_timeout = Duration::from_millis(300);
    let mut connector = connect(setup, &upstream).await;
    let slow = connector.get("/slow", &[]).await;
    assert_eq!(slow.status, StatusCode::OK);
    slow.body.expect_err("cut mid-body");
    let (result, _) = connector.finish().await;
    assert!(matches!(result, Err(MitmError::TotalTimeout { .. })), "{result:?}");
}

#[test]
fn the_default_upstream_trusts_the_webpki_roots() {
    let upstream = Upstream::webpki().expect("webpki roots");
    assert_eq!(format!("{upstream:?}"), "Upstream { spki_pins: 0, .. }");
}

#[test]
fn debug_never_prints_a_secret() {
    let credential = Credential {
        id: "k".into(),
        hosts: vec![HOST.into()],
        auth: Auth::Header { name: "x-api-key".into(), value: Zeroizing::new(SECRET.into()) },
        placeholder: Some(PLACEHOLDER.into()),
    };
    let basic = Credential {
        id: "b".into(),
        hosts: vec![HOST.into()],
        auth: Auth::Basic { user: "me".into(), password: Zeroizing::new("hunter2-password".into()) },
        placeholder: None,
    };
    let printed = format!("{credential:?} {basic:?} {:?}", github(&[HOST], None));
    assert!(!printed.contains(SECRET) && !printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("<redacted>") && printed.contains("x-api-key"), "{printed}");

    let set = set(vec![credential, basic, github(&[HOST], None)], None);
    let printed = format!("{set:?} {set:#?}");
    assert!(!printed.contains(SECRET) && !printed.contains("hunter2"), "{printed}");

    let ca = JailCa::generate("debug-jail").expect("ca");
    let printed = format!("{ca:?} {ca:#?}");
    assert!(printed.contains("debug-jail") && printed.contains("cert_sha256"), "{printed}");
    assert!(!printed.contains("PRIVATE") && !printed.contains("KeyPair") && !printed.contains("key"), "{printed}");
}
