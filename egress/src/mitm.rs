//! TLS interception for credential injection (issue 5; host-protocol.md §7–§8).
//!
//! Unmodified connectors either name a credential with `X-FCP-Credential-ID: <id>` or send
//! no auth header at all, trust the roots in `SSL_CERT_FILE` and honour `HTTPS_PROXY`.
//! fcpd gives each jail a [`JailCa`] (its PEM becomes the jail's trust store), and for a
//! connection the policy has allowed (host, port, SNI, vetted address) the proxy calls
//! [`intercept`], which:
//!
//! 1. accepts the connector's TLS with a leaf for exactly the allowed name
//!    ([`JailCa::server_config_for`]), and refuses a ClientHello naming another;
//! 2. serves HTTP/1.1 on it. For each request it refuses (and reports, see [`DenyReason`])
//!    a Host header or absolute target for another host or port, `CONNECT` and protocol
//!    upgrades; strips every `X-FCP-Credential-ID`, hop-by-hop and `Proxy-*` header; picks
//!    the credential ([`CredentialSet`]: by id, by placeholder, or the default for this
//!    host) and sets its header, replacing whatever the connector sent there; an id that
//!    is unknown, or a credential not bound to this host, gets a 403 and nothing is sent;
//! 3. sends the request on its own TLS connection to the vetted address (opened on the
//!    first request that is forwarded, reused while it stays open), with SNI the same
//!    name, verified against [`Upstream`]'s roots and SPKI pins, TCP_NODELAY set;
//! 4. streams the response back, masking every secret of the connector's set in it and
//!    enforcing [`Limits`].
//!
//! **What is masked.** Every occurrence of a secret of the set (a bearer token, a header
//! value, a Basic password and the base64 of `user:password`), whichever credential the
//! request used, in every response header and trailer value and in the response body, each
//! byte replaced by `*` (lengths are kept). Bodies are searched as a stream with a buffer
//! no longer than the longest secret, so an echo split across chunks is caught; secrets
//! shorter than [`MIN_BODY_SECRET_LEN`] are masked in headers only. The search sees the
//! bytes on the wire: when the set holds any secret, every forwarded request asks for
//! `Accept-Encoding: identity`, and a response that is content-encoded all the same is
//! refused (502, [`DenyReason::ResponseEncoding`]). Not covered: a secret the upstream
//! sends back transformed (JSON-escaped, percent- or base64-encoded by the server, split
//! by markup).
//!
//! **Where credentials go.** Only over TLS to the intercepted name, and only when a
//! credential's hosts match it: there is no plain-HTTP path in this module, and a
//! connection the proxy does not intercept (an opaque tunnel) never gets one.
//!
//! **Limits.** See [`Limits`]; past `max_response_bytes` the response is cut and the
//! connection aborted; the redirect past `max_redirects` is replaced by a 502.

mod ca;
mod credential;
mod error;
mod event;
mod exchange;
mod redact;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fcp_policy::egress::{parse_host, DnsName, Host};
use rustls::crypto::CryptoProvider;
use tokio::io::{AsyncRead, AsyncWrite};

pub use ca::{CaParams, JailCa, DEFAULT_CA_VALIDITY, MAX_CACHED_LEAVES};
pub use credential::{Auth, Credential, CredentialSet, HostPattern, CREDENTIAL_ID_HEADER, MIN_BODY_SECRET_LEN};
pub use error::{Blame, MitmError};
pub use event::{BodyEnd, DenyReason, Ended, MitmEvent, Outcome, Report};
pub use upstream::Upstream;

/// Bounds on one intercepted connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) the connector may send; larger
    /// gets a 431 and the connection is closed.
    pub max_header_bytes: usize,
    /// Time for the connector's TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a complete request head, counted from when the proxy starts waiting for
    /// one: it bounds both an idle keep-alive connection and a slow request.
    pub idle_timeout: Duration,
    /// Time for the TCP connection and TLS handshake to the upstream (`connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// Time from sending a request upstream to its response head.
    pub request_timeout: Duration,
    /// Lifetime of the whole connection (`total_timeout_ms`); past it the connection is
    /// cut, mid-response or not.
    pub total_timeout: Duration,
    /// Largest response body (`max_response_bytes`), per response. A larger
    /// `Content-Length` gets a 502; a body that streams past it is cut and the connection
    /// aborted. Either way [`intercept`] returns [`MitmError::ResponseTooLarge`].
    pub max_response_bytes: u64,
    /// Redirects (3xx with `Location`) passed to the connector on this connection
    /// (`max_redirects`). The proxy never follows a redirect: the connector does, on this
    /// connection for the same host or through the policy again for another. The
    /// redirect past the limit is replaced by a 502 ([`DenyReason::RedirectLimit`]).
    /// Connections are counted separately; [`Report::redirects`] lets fcpd add them up
    /// per operation.
    pub max_redirects: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(15 * 60),
            max_response_bytes: 64 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// Intercepts one connection from a connector to `server_name`, already allowed by the
/// egress policy, whose vetted address is `upstream`.
///
/// `client` is the connector's side, positioned before its ClientHello (the caller may
/// have peeked at it, not consumed it); the caller sets TCP_NODELAY on it. `events` gets
/// one [`MitmEvent`] per request, from this task. Returns the connection's [`Report`] when
/// the connector closes or idles out; an error when the connection could not be set up,
/// the upstream failed (the connector got a 502 first), or a limit cut it.
///
/// TLS only, on both sides: there is no plain-HTTP path, so no credential is ever sent in
/// the clear.
#[allow(clippy::too_many_arguments)]
pub async fn intercept<S, E>(
    client: S,
    server_name: &str,
    upstream: SocketAddr,
    ca: &JailCa,
    upstream_cfg: &Upstream,
    credentials: &CredentialSet,
    limits: &Limits,
    events: E,
) -> Result<Report, MitmError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    E: FnMut(MitmEvent),
{
    let name = canonical_name(server_name)?;
    let config = ca.server_config_for(name.as_str())?;
    exchange::run(client, name, upstream, config, upstream_cfg, credentials, limits, events).await
}

/// `name` as a canonical DNS name, or why it is not one.
fn canonical_name(name: &str) -> Result<DnsName, MitmError> {
    match parse_host(name) {
        Ok(Host::Name(name)) => Ok(name),
        Ok(Host::Ip(_)) => Err(MitmError::ServerNameIsIp { name: name.to_owned() }),
        Err(source) => Err(MitmError::InvalidServerName { name: name.to_owned(), source }),
    }
}

/// The rustls provider for both sides: ring (already in the lock; aws-lc-rs needs cmake).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}
