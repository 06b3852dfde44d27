//! What an interception reports: one [`MitmEvent`] per request, and a [`Report`] per
//! connection.

use std::fmt;

use http::StatusCode;

/// One request on an intercepted connection. Never carries a secret, a query string or a
/// header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MitmEvent {
    /// The request method.
    pub method: String,
    /// The intercepted server name.
    pub host: String,
    /// The request path, without its query string (which may carry secrets of its own).
    pub path: String,
    /// The credential injected, or asked for when the request was refused; never its
    /// secret.
    pub credential_id: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

/// What became of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent upstream; the response was streamed back.
    Forwarded {
        /// The upstream's status.
        status: u16,
        /// Request body bytes sent upstream.
        request_bytes: u64,
        /// Response body bytes received from upstream (before masking, which keeps length).
        response_bytes: u64,
        /// Occurrences of a secret masked in the response (headers and body).
        redacted: u64,
        /// How the response body ended.
        end: BodyEnd,
    },
    /// Refused by the proxy; nothing, or nothing more, reached the connector from upstream.
    Denied {
        /// The status answered to the connector.
        status: u16,
        /// Why.
        reason: DenyReason,
    },
    /// The upstream could not be reached or failed; the connector got a 502 and the
    /// connection ended with the error [`intercept`](super::intercept) returns.
    Failed {
        /// The status answered to the connector.
        status: u16,
        /// [`MitmError::code`](super::MitmError::code) of the failure.
        code: &'static str,
    },
}

/// How a forwarded response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// Completely, as the upstream sent it.
    Complete,
    /// Cut at `max_response_bytes`; the connection was aborted.
    TooLarge,
    /// The upstream failed mid-body; the connection was aborted.
    UpstreamFailed,
    /// The connector went away before the end.
    ConnectorGone,
}

/// Why the proxy refused a request. [`code`](DenyReason::code) is stable for audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// The Host header (or an absolute request target) names another host or port than
    /// the intercepted one: no domain fronting inside the tunnel. 421.
    HostMismatch,
    /// Several Host headers, or one that is not a host. 400.
    HostInvalid,
    /// `X-FCP-Credential-ID` is empty, not text, or names several different ids. 400.
    CredentialIdInvalid,
    /// `X-FCP-Credential-ID` names no credential of this connector. 403.
    CredentialUnknown,
    /// The credential asked for (by id or placeholder) is not bound to this host. 403.
    CredentialHostUnbound,
    /// `CONNECT` inside an intercepted connection: it would be an opaque tunnel. 405.
    NestedConnect,
    /// A protocol upgrade (WebSocket, h2c): the proxy serves HTTP/1.1 only. 501.
    UpgradeUnsupported,
    /// The response is the redirect past `max_redirects` on this connection. 502.
    RedirectLimit,
    /// The response is content-encoded (gzip, br, …) although the proxy asked for
    /// `identity`, so it cannot be searched for secrets. 502.
    ResponseEncoding,
}

impl DenyReason {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::HostMismatch => "host_mismatch",
            DenyReason::HostInvalid => "host_invalid",
            DenyReason::CredentialIdInvalid => "credential_id_invalid",
            DenyReason::CredentialUnknown => "credential_unknown",
            DenyReason::CredentialHostUnbound => "credential_host_unbound",
            DenyReason::NestedConnect => "nested_connect",
            DenyReason::UpgradeUnsupported => "upgrade_unsupported",
            DenyReason::RedirectLimit => "redirect_limit",
            DenyReason::ResponseEncoding => "response_encoding",
        }
    }

    /// The status the connector gets.
    pub fn status(&self) -> StatusCode {
        match self {
            DenyReason::HostMismatch => StatusCode::MISDIRECTED_REQUEST,
            DenyReason::HostInvalid | DenyReason::CredentialIdInvalid => StatusCode::BAD_REQUEST,
            DenyReason::CredentialUnknown | DenyReason::CredentialHostUnbound => StatusCode::FORBIDDEN,
            DenyReason::NestedConnect => StatusCode::METHOD_NOT_ALLOWED,
            DenyReason::UpgradeUnsupported => StatusCode::NOT_IMPLEMENTED,
            DenyReason::RedirectLimit | DenyReason::ResponseEncoding => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::HostMismatch => "the Host header names another host than this connection's server name",
            DenyReason::HostInvalid => "the request has several Host headers or one that is not a host",
            DenyReason::CredentialIdInvalid => "X-FCP-Credential-ID is empty, not text, or names several ids",
            DenyReason::CredentialUnknown => "X-FCP-Credential-ID names no credential of this connector",
            DenyReason::CredentialHostUnbound => "the credential is not bound to this host",
            DenyReason::NestedConnect => "CONNECT is not allowed inside an intercepted connection",
            DenyReason::UpgradeUnsupported => "protocol upgrades are not supported; the proxy speaks HTTP/1.1",
            DenyReason::RedirectLimit => "the upstream redirected more often than max_redirects allows",
            DenyReason::ResponseEncoding => "the response is content-encoded and cannot be checked for secrets",
        })
    }
}

/// How the connector's side of the connection ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ended {
    /// The connector closed it (or the proxy did, after a response it marked final).
    #[default]
    Closed,
    /// No complete request head arrived within `idle_timeout` (idle keep-alive, or a slow
    /// request).
    IdleTimeout,
}

/// Totals for one intercepted connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Requests seen.
    pub requests: u64,
    /// Requests sent upstream.
    pub forwarded: u64,
    /// Requests refused.
    pub denied: u64,
    /// Request body bytes sent upstream.
    pub request_bytes: u64,
    /// Response body bytes received from upstream.
    pub response_bytes: u64,
    /// Secret occurrences masked.
    pub redacted: u64,
    /// Requests that had a credential injected.
    pub injected: u64,
    /// Redirect responses passed to the connector.
    pub redirects: u32,
    /// TLS connections opened to the upstream.
    pub upstream_connections: u32,
    /// How it ended.
    pub ended: Ended,
}

impl Report {
    pub(crate) fn absorb(&mut self, event: &MitmEvent) {
        self.requests += 1;
        match &event.outcome {
            Outcome::Forwarded { request_bytes, response_bytes, redacted, .. } => {
                self.forwarded += 1;
                self.request_bytes += request_bytes;
                self.response_bytes += response_bytes;
                self.redacted += redacted;
                if event.credential_id.is_some() {
                    self.injected += 1;
                }
            }
            Outcome::Denied { .. } => self.denied += 1,
            Outcome::Failed { .. } => {}
        }
    }
}
