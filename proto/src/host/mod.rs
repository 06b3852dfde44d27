//! The host protocol: supervisor ↔ connector over the connector's stdin/stdout, as the
//! FCP reference implementation speaks it (`shared/spec/host-protocol.md`, cited as
//! "host-protocol §n"; what we add is in `spec/host-protocol.md`).
//!
//! Newline-delimited JSON-RPC 2.0: one compact JSON object per line, at most
//! [`MAX_FRAME_BYTES`] bytes before the `\n`, one request in flight, ids
//! `"<epoch>:<seq>"`. Sans-IO: bytes in, bytes and typed values out; the caller owns the
//! pipes, the 10 s timeouts and the child process.
//!
//! **Host side.** [`Framer::send`] encodes a typed [`Request`] (the reference host's exact
//! shapes, plus `operation_id` on `invoke`/`simulate`, §10 rule 2) and remembers it;
//! [`Framer::push`] takes stdout bytes and yields [`Event`]s: a [`Reply`] normalised from
//! any of the three dialects (§9, §10 rule 3), a stale reply to discard, or
//! [`Event::Poisoned`] on desync, after which the caller kills and respawns the
//! connector (§1). [`LogLines`] splits stderr, truncating long lines.
//!
//! **Connector side.** [`RequestReader`] turns stdin bytes into typed requests (or the
//! `FCP-100x` error to answer), and [`encode_result`] / [`encode_error`] write replies in
//! the typed dialect with the reference connectors' key order.

pub mod connector;
pub mod fcp_error;
pub mod framer;
pub mod handshake;
pub mod introspect;
pub mod invoke;
pub mod lifecycle;
pub mod lines;
pub mod reply;
pub mod request;
pub mod subscribe;

#[cfg(test)]
mod captured;

pub use connector::{encode_error, encode_response, encode_result, Incoming, RequestReader};
pub use fcp_error::{ErrorCode, FcpError, FcpErrorResponse};
pub use framer::{Event, Framer, FramerError, Outgoing};
pub use handshake::{CapabilityGrant, EventCaps, HandshakeRequest, HandshakeResponse, HostInfo, TransportCaps};
pub use introspect::{AiHints, ApprovalMode, Idempotency, Introspection, OperationInfo, RiskLevel, SafetyTier};
pub use invoke::{
    HolderProof, InvokeContext, InvokeRequest, InvokeResponse, InvokeStatus, ResponseMetadata, SimulateRequest,
    SimulateResponse, TokenBytes, UsageMetric,
};
pub use lifecycle::{HealthSnapshot, HealthState, SelfCheckReport, SelfCheckStatus, ShutdownRequest};
pub use lines::{Line, LineBuffer, LogLine, LogLines};
pub use reply::{
    ConnectorFailure, Dialect, DialectObserver, HealthReply, InvokeReply, PendingRequest, Reply, ReplyBody, ReplyError,
    Shape, Shaped, SimulateReply,
};
pub use request::{encode_request, encode_request_within, Method, Request, RequestError, RequestId};
pub use subscribe::{SubscribeRequest, SubscribeResponse, UnsubscribeRequest};

/// The frame cap in both directions: bytes of one line, not counting the `\n` (§1).
pub const MAX_FRAME_BYTES: usize = 65_536;

/// The `jsonrpc` member of every message.
pub const JSONRPC_VERSION: &str = "2.0";

/// Checks a `type` member: absent is tolerated (loose readers ignore it), any value but
/// `expected` is not. The `String` becomes a serde error message.
fn check_tag(kind: Option<&str>, expected: &str) -> Result<(), String> {
    match kind {
        None => Ok(()),
        Some(k) if k == expected => Ok(()),
        Some(k) => Err(format!("type must be {expected:?}, not {k:?}")),
    }
}
