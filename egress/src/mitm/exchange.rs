//! One intercepted connection: the connector's TLS, HTTP/1.1 toward it, the upstream
//! connection, and the response bodies on their way back.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use fcp_policy::egress::{parse_host, DnsName, Host};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::credential::Selection;
use super::redact::{Needles, Redactor};
use super::{BodyEnd, CredentialSet, DenyReason, Ended, Limits, MitmError, MitmEvent, Outcome, Report, Upstream};

/// Headers that describe one hop, never forwarded either way (RFC 9110 §7.6.1), besides
/// those the `Connection` header lists.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "upgrade"];

/// The response header that tells the connector a refusal came from the proxy.
const DENIED_HEADER: &str = "x-fcp-egress-denied";

/// State the request handlers and the response bodies share with the connection loop.
struct Shared {
    /// The first error that ends the connection.
    fatal: Mutex<Option<MitmError>>,
    events: mpsc::UnboundedSender<MitmEvent>,
}

impl Shared {
    fn fail(&self, error: MitmError) {
        let mut fatal = self.fatal.lock().unwrap_or_else(PoisonError::into_inner);
        if fatal.is_none() {
            *fatal = Some(error);
        }
    }

    fn take_fatal(&self) -> Option<MitmError> {
        self.fatal.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn emit(&self, event: MitmEvent) {
        // The receiver lives as long as the connection loop; after it, nobody listens.
        let _ = self.events.send(event);
    }
}

/// What every event of a request shares.
#[derive(Clone)]
struct RequestInfo {
    method: String,
    host: String,
    path: String,
    credential_id: Option<String>,
}

impl RequestInfo {
    fn event(self, outcome: Outcome) -> MitmEvent {
        MitmEvent { method: self.method, host: self.host, path: self.path, credential_id: self.credential_id, outcome }
    }
}

/// Aborts the task driving an upstream connection when the connection is replaced or the
/// interception ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The upstream side: one TLS connection at a time, opened when first needed.
#[derive(Default)]
struct UpstreamConn {
    sender: Option<SendRequest<ReqBody>>,
    driver: Option<AbortOnDrop>,
    opened: u32,
    redirects: u32,
}

/// One connection's fixed inputs and shared state.
struct Ctx<'a> {
    name: DnsName,
    addr: SocketAddr,
    upstream: &'a Upstream,
    credentials: &'a CredentialSet,
    limits: &'a Limits,
    shared: Arc<Shared>,
    conn: tokio::sync::Mutex<UpstreamConn>,
}

/// See [`super::intercept`].
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<S, E>(
    client: S,
    name: DnsName,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
    upstream: &Upstream,
    credentials: &CredentialSet,
    limits: &Limits,
    mut events: E,
) -> Result<Report, MitmError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: FnMut(MitmEvent),
{
    let tls = match tokio::time::timeout(limits.handshake_timeout, TlsAcceptor::from(config).accept(client)).await {
        Err(_) => return Err(MitmError::ClientHandshakeTimeout { after: limits.handshake_timeout }),
        Ok(Err(source)) => return Err(MitmError::ClientHandshake { source }),
        Ok(Ok(tls)) => tls,
    };
    if let Some(sni) = tls.get_ref().1.server_name() {
        if !matches!(parse_host(sni), Ok(Host::Name(ref sent)) if *sent == name) {
            return Err(MitmError::SniMismatch { sni: sni.to_owned(), expected: name.to_string() });
        }
    }

    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared { fatal: Mutex::new(None), events: events_tx });
    let ctx = Ctx {
        name,
        addr,
        upstream,
        credentials,
        limits,
        shared: shared.clone(),
        conn: tokio::sync::Mutex::new(UpstreamConn::default()),
    };
    let mut report = Report::default();
    let served = {
        let ctx = &ctx;
        let service = service_fn(move |request| async move { Ok::<_, Infallible>(ctx.handle(request).await) });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .max_header_size(limits.max_header_bytes)
            .keep_alive(true);
        let serve = builder.serve_connection(TokioIo::new(tls), service);
        let deadline = tokio::time::sleep(limits.total_timeout);
        tokio::pin!(serve, deadline);
        loop {
            tokio::select! {
                biased;
                Some(event) = events_rx.recv() => {
                    report.absorb(&event);
                    events(event);
                }
                result = &mut serve => break Some(result),
                () = &mut deadline => break None,
            }
        }
        // `serve` is dropped here, and with it any response body still in flight, whose
        // event is then waiting in the channel.
    };
    while let Ok(event) = events_rx.try_recv() {
        report.absorb(&event);
        events(event);
    }
    {
        let mut conn = ctx.conn.lock().await;
        report.redirects = conn.redirects;
        report.upstream_connections = conn.opened;
        conn.sender = None;
        conn.driver = None;
    }
    if let Some(error) = shared.take_fatal() {
        return Err(error);
    }
    match served {
        None => Err(MitmError::TotalTimeout { after: limits.total_timeout }),
        Some(Ok(())) => Ok(report),
        Some(Err(error)) if error.is_timeout() => {
            report.ended = Ended::IdleTimeout;
            Ok(report)
        }
        Some(Err(error)) if error.is_shutdown() || closed_abruptly(&error) => Ok(report),
        Some(Err(source)) => Err(MitmError::ServeConnector { source }),
    }
}

/// The connector dropped its TCP connection between requests without a TLS
/// close_notify, as many HTTP clients do, or before the proxy's own close_notify went out:
/// an ordinary end, not a failure.
fn closed_abruptly(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            );
        }
        source = cause.source();
    }
    false
}

impl Ctx<'_> {
    async fn handle(&self, mut request: Request<Incoming>) -> Response<ResBody> {
        let mut info = RequestInfo {
            method: request.method().as_str().to_owned(),
            host: self.name.to_string(),
            path: request.uri().path().to_owned(),
            credential_id: None,
        };
        let selection = match self.vet(&mut request) {
            Ok(selection) => selection,
            Err(reason) => return self.deny(info, reason),
        };
        match selection {
            Selection::None => {}
            Selection::Deny { reason, id } => {
                info.credential_id = id;
                return self.deny(info, reason);
            }
            Selection::Inject { id, header, value } => {
                let headers = request.headers_mut();
                headers.remove(&header);
                headers.insert(header, value);
                info.credential_id = Some(id);
            }
        }
        self.forward(info, request).await
    }

    /// Checks the request and rewrites it for the upstream; returns the credential
    /// decision, or why the request is refused before anything is sent.
    fn vet(&self, request: &mut Request<Incoming>) -> Result<Selection, DenyReason> {
        if request.method() == Method::CONNECT {
            return Err(DenyReason::NestedConnect);
        }
        if request.headers().contains_key(header::UPGRADE) {
            return Err(DenyReason::UpgradeUnsupported);
        }
        if let Some(authority) = request.uri().authority() {
            self.check_authority(authority.as_str())?;
        }
        let mut hosts = request.headers().get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (Some(_), Some(_)) => return Err(DenyReason::HostInvalid),
            (Some(host), None) => self.check_authority(host.to_str().map_err(|_| DenyReason::HostInvalid)?)?,
            (None, _) => {}
        }
        if request.uri().scheme().is_some() || request.uri().authority().is_some() {
            let origin_form = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
            *request.uri_mut() = Uri::from(origin_form);
        }
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        if !headers.contains_key(header::HOST) {
            let host = match self.addr.port() {
                443 => self.name.to_string(),
                port => format!("{}:{port}", self.name),
            };
            headers.insert(header::HOST, HeaderValue::from_str(&host).map_err(|_| DenyReason::HostInvalid)?);
        }
        let selection = self.credentials.select(&self.name, headers);
        if self.credentials.has_secrets() {
            // Responses must arrive as plain bytes to be searched for secrets.
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        *request.version_mut() = Version::HTTP_11;
        Ok(selection)
    }

    /// `authority` (a Host header or an absolute target) must name this connection's server
    /// and, when it has a port, its port.
    fn check_authority(&self, authority: &str) -> Result<(), DenyReason> {
        let authority: Authority = authority.parse().map_err(|_| DenyReason::HostInvalid)?;
        if authority.as_str().contains('@') {
            return Err(DenyReason::HostInvalid);
        }
        match parse_host(authority.host()) {
            Ok(Host::Name(name)) if name == self.name => {}
            Ok(_) => return Err(DenyReason::HostMismatch),
            Err(_) => return Err(DenyReason::HostInvalid),
        }
        match authority.port_u16() {
            Some(port) if port != self.addr.port() => Err(DenyReason::HostMismatch),
            _ => Ok(()),
        }
    }

    async fn forward(&self, info: RequestInfo, request: Request<Incoming>) -> Response<ResBody> {
        let request_bytes = Arc::new(AtomicU64::new(0));
        let request = request.map(|inner| ReqBody { inner, count: request_bytes.clone() });
        let mut conn = self.conn.lock().await;
        let mut sender = match conn.take_ready(self).await {
            Ok(sender) => sender,
            Err(error) => return self.fail(info, error),
        };
        let sent = sender.send_request(request);
        conn.sender = Some(sender);
        let response = match tokio::time::timeout(self.limits.request_timeout, sent).await {
            Err(_) => {
                return self.fail(info, MitmError::UpstreamResponseTimeout { after: self.limits.request_timeout })
            }
            Ok(Err(source)) => return self.fail(info, MitmError::UpstreamHttp { source }),
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        let status = parts.status;
        if status.is_redirection() && parts.headers.contains_key(header::LOCATION) {
            if conn.redirects >= u32::from(self.limits.max_redirects) {
                return self.deny(info, DenyReason::RedirectLimit);
            }
            conn.redirects += 1;
        }
        drop(conn);

        if self.credentials.has_secrets() {
            let encoded =
                parts.headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
                    !v.as_bytes().split(|&b| b == b',').all(|e| e.trim_ascii().eq_ignore_ascii_case(b"identity"))
                });
            if encoded {
                return self.deny(info, DenyReason::ResponseEncoding);
            }
        }
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let has_body = info.method != Method::HEAD.as_str()
            && status != StatusCode::NO_CONTENT
            && status != StatusCode::NOT_MODIFIED;
        if has_body && declared.is_some_and(|n| n > self.limits.max_response_bytes) {
            return self.fail(info, MitmError::ResponseTooLarge { limit: self.limits.max_response_bytes });
        }

        strip_hop_by_hop(&mut parts.headers);
        let mut redacted = 0;
        let needles = self.credentials.header_needles();
        if !needles.is_empty() {
            redacted += mask_headers(needles, &mut parts.headers);
        }
        let body_needles = self.credentials.body_needles();
        let body = Filtered {
            inner: body,
            redactor: (!body_needles.is_empty()).then(|| Redactor::new(body_needles.clone())),
            header_needles: needles.clone(),
            limit: self.limits.max_response_bytes,
            received: 0,
            queue: VecDeque::new(),
            finished: false,
            shared: self.shared.clone(),
            pending: Some(PendingEvent { info, status: status.as_u16(), request_bytes, redacted }),
        };
        Response::from_parts(parts, ResBody::Upstream(Box::new(body)))
    }

    /// Refuses a request with a short text answer and reports it.
    fn deny(&self, info: RequestInfo, reason: DenyReason) -> Response<ResBody> {
        let status = reason.status();
        self.shared.emit(info.event(Outcome::Denied { status: status.as_u16(), reason }));
        local_response(status, reason.code(), &format!("fcp egress: {reason}\n"), false)
    }

    /// Answers 502, reports the failure, and ends the connection with `error`.
    fn fail(&self, info: RequestInfo, error: MitmError) -> Response<ResBody> {
        let status = StatusCode::BAD_GATEWAY;
        let code = error.code();
        self.shared.emit(info.event(Outcome::Failed { status: status.as_u16(), code }));
        let response = local_response(status, code, &format!("fcp egress: {error}\n"), true);
        self.shared.fail(error);
        response
    }
}

impl UpstreamConn {
    /// The sender, once ready for a request: the open connection if it still is, else a
    /// new one.
    async fn take_ready(&mut self, ctx: &Ctx<'_>) -> Result<SendRequest<ReqBody>, MitmError> {
        if let Some(mut sender) = self.sender.take() {
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.driver = None;
        let tls = ctx.upstream.connect(ctx.addr, &ctx.name, ctx.limits.connect_timeout).await?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|source| MitmError::UpstreamHttp { source })?;
        self.driver = Some(AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended");
            }
        })));
        self.opened += 1;
        Ok(sender)
    }
}

fn local_response(status: StatusCode, code: &'static str, text: &str, close: bool) -> Response<ResBody> {
    let mut response = Response::new(ResBody::Local(Full::new(Bytes::from(text.to_owned()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(HeaderName::from_static(DENIED_HEADER), HeaderValue::from_static(code));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Removes hop-by-hop headers and those the `Connection` header names, except the ones
/// that frame the message (`Host`, `Content-Length`, `Transfer-Encoding`).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| *name != header::HOST && *name != header::CONTENT_LENGTH && *name != header::TRANSFER_ENCODING)
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Masks secrets in every value of `headers`; returns how many were masked.
fn mask_headers(needles: &Needles, headers: &mut HeaderMap) -> u64 {
    let mut masked = 0;
    for value in headers.values_mut() {
        if let Some((replacement, count)) = needles.mask_header(value) {
            *value = replacement;
            masked += count;
        }
    }
    masked
}

/// The request body on its way upstream, counted.
struct ReqBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()).and_then(Frame::data_ref) {
            this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a response body was cut.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyAbort {
    /// Past `max_response_bytes`.
    #[error("response body larger than max_response_bytes")]
    TooLarge,
    /// The upstream failed mid-body.
    #[error("upstream failed mid-body")]
    Upstream,
}

/// A response body toward the connector.
pub(super) enum ResBody {
    /// An answer of the proxy's own.
    Local(Full<Bytes>),
    /// The upstream's body, filtered.
    Upstream(Box<Filtered>),
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BodyAbort;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        match self.get_mut() {
            ResBody::Local(full) => {
                Pin::new(full).poll_frame(cx).map(|frame| frame.map(|result| result.map_err(|never| match never {})))
            }
            ResBody::Upstream(filtered) => Pin::new(filtered.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Local(full) => full.is_end_stream(),
            ResBody::Upstream(filtered) => filtered.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Local(full) => full.size_hint(),
            ResBody::Upstream(filtered) => filtered.size_hint(),
        }
    }
}

/// The event a forwarded request reports when its response body ends.
struct PendingEvent {
    info: RequestInfo,
    status: u16,
    request_bytes: Arc<AtomicU64>,
    redacted: u64,
}

/// The upstream's body: counted against `max_response_bytes`, secrets masked, its event
/// sent exactly once (at the end, on an abort, or when dropped early).
pub(super) struct Filtered {
    inner: Incoming,
    redactor: Option<Redactor>,
    header_needles: Arc<Needles>,
    limit: u64,
    received: u64,
    queue: VecDeque<Frame<Bytes>>,
    finished: bool,
    shared: Arc<Shared>,
    pending: Option<PendingEvent>,
}

impl Filtered {
    fn report(&mut self, end: BodyEnd) {
        if let Some(pending) = self.pending.take() {
            let redacted = pending.redacted + self.redactor.as_ref().map_or(0, Redactor::masked);
            self.shared.emit(pending.info.event(Outcome::Forwarded {
                status: pending.status,
                request_bytes: pending.request_bytes.load(Ordering::Relaxed),
                response_bytes: self.received,
                redacted,
                end,
            }));
        }
    }

    fn flush_held(&mut self) {
        if let Some(redactor) = &mut self.redactor {
            let tail = redactor.finish();
            if !tail.is_empty() {
                self.queue.push_back(Frame::data(tail));
            }
        }
    }

    fn queued_bytes(&self) -> u64 {
        let queued: usize = self.queue.iter().filter_map(Frame::data_ref).map(Bytes::len).sum();
        let held = self.redactor.as_ref().map_or(0, Redactor::held);
        (queued + held) as u64
    }
}

impl Body for Filtered {
    type Data = Bytes;
    type Error = BodyAbort;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.finished {
                this.report(BodyEnd::Complete);
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.finished = true;
                    this.flush_held();
                }
                Some(Err(source)) => {
                    this.report(BodyEnd::UpstreamFailed);
                    this.shared.fail(MitmError::UpstreamHttp { source });
                    return Poll::Ready(Some(Err(BodyAbort::Upstream)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.received = this.received.saturating_add(data.len() as u64);
                        if this.received > this.limit {
                            this.report(BodyEnd::TooLarge);
                            this.shared.fail(MitmError::ResponseTooLarge { limit: this.limit });
                            return Poll::Ready(Some(Err(BodyAbort::TooLarge)));
                        }
                        let out = match &mut this.redactor {
                            Some(redactor) => redactor.push(data),
                            None => data,
                        };
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the data: send what was held back, then them, masked.
                        this.flush_held();
                        if let Ok(mut trailers) = frame.into_trailers() {
                            if let Some(pending) = &mut this.pending {
                                pending.redacted += mask_headers(&this.header_needles, &mut trailers);
                            }
                            this.queue.push_back(Frame::trailers(trailers));
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.queue.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let extra = self.queued_bytes();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(extra));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(extra));
        }
        hint
    }
}

impl Drop for Filtered {
    fn drop(&mut self) {
        let held = self.redactor.as_ref().map_or(0, Redactor::held);
        let complete = self.queue.is_empty() && (self.finished || (self.inner.is_end_stream() && held == 0));
        self.report(if complete { BodyEnd::Complete } else { BodyEnd::ConnectorGone });
    }
}
