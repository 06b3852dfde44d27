//! The connector side of the FCP host protocol (`shared/spec/host-protocol.md`, cited as
//! "host-protocol §n"; our additions in `spec/host-protocol.md`).
//!
//! A connector implements [`FcpConnector`] and calls [`run`] from `main`. The loop reads
//! requests from stdin with `fcp_proto::host`'s codec, answers each on stdout in the
//! typed dialect (the one the reference host decodes strictly) and flushes, one at a
//! time, until stdin closes. It owns the life cycle of host-protocol §3: `invoke` and
//! `simulate` are refused with `FCP-5002` before `configure` and `FCP-5003` before
//! `handshake`; unknown operations get `FCP-1002` before the connector sees them;
//! `subscribe` gets `FCP-5005`.
//!
//! **Stdout belongs to the protocol.** A connector must never print to it; anything
//! else on stdout desyncs the channel and the supervisor kills the process. Logs go to
//! stderr ([`log`]).
//!
//! Must not: reach into fcpd, read secrets from the environment (they arrive in
//! `configure`), or use an async runtime.
//!
//! Not done here: the capability token is not verified. The supervisor verifies the
//! caller's token before forwarding (host-protocol §5), and the connector runs jailed.

#![forbid(unsafe_code)]

pub mod log;
pub mod server;
pub mod stdio;
#[cfg(feature = "testing")]
pub mod testing;

use serde_json::{Map, Value};

pub use fcp_proto::host::{
    AiHints, ApprovalMode, ErrorCode, FcpError, HealthState, Idempotency, Introspection, InvokeRequest, OperationInfo,
    RiskLevel, SafetyTier, SelfCheckReport, SelfCheckStatus, ShutdownRequest, SimulateRequest, SimulateResponse,
};
pub use server::Server;
pub use stdio::{run, serve, StdioError};

/// What a connector's operations fail with: the FCP taxonomy (host-protocol §6.2). The
/// loop sends it inside the invoke envelope with `status:"error"`.
pub type ConnectorError = FcpError;

/// Static facts about a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// The connector id of its manifest, e.g. `fcp.echo`; invokes for another id are
    /// refused.
    pub id: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The embedded `manifest.toml` (`include_str!`); the handshake reports
    /// `"sha256:" + hex(SHA-256(it))` as `manifest_hash`.
    pub manifest_toml: &'static str,
}

/// A connector. Only [`info`](FcpConnector::info), [`introspect`](FcpConnector::introspect),
/// [`configure`](FcpConnector::configure) and [`invoke`](FcpConnector::invoke) are
/// required.
pub trait FcpConnector {
    /// Id, version and manifest.
    fn info(&self) -> ConnectorInfo;

    /// The operation catalogue. It is read once, when the loop starts, and must not
    /// change for the life of the process.
    fn introspect(&self) -> Introspection;

    /// Takes the operator's config (credentials arrive here, never from the
    /// environment). Called again after `shutdown` or to reconfigure.
    fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError>;

    /// Health once configured (before that the loop reports
    /// `degraded: not configured`).
    fn health(&self) -> HealthState {
        HealthState::Ready
    }

    /// Runs `operation` (always one of [`introspect`](FcpConnector::introspect)'s) on
    /// `input`.
    fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError>;

    /// Runs a whole invoke request; override to read its zone, idempotency key,
    /// deadline or context. The default calls [`invoke`](FcpConnector::invoke).
    fn invoke_request(&mut self, request: InvokeRequest) -> Result<Value, ConnectorError> {
        self.invoke(request.operation.as_str(), request.input)
    }

    /// Whether an invoke would succeed. The default denies with `FCP-3010`, as the
    /// reference trait does.
    fn simulate(&mut self, request: &SimulateRequest) -> SimulateResponse {
        let mut r = SimulateResponse::verdict(request.id.clone(), false);
        r.failure_reason = Some("simulation not supported".into());
        r.denial_code = Some(ErrorCode::SIMULATION_DENIED);
        r
    }

    /// A live check for `/doctor`. The default is `unsupported`.
    fn self_check(&mut self) -> SelfCheckReport {
        SelfCheckReport { status: SelfCheckStatus::Unsupported, reason_code: None, message: None, details: None }
    }

    /// Stop work and drop clients; the process keeps reading until stdin closes and
    /// must be configured again before the next invoke.
    fn shutdown(&mut self, request: &ShutdownRequest) {
        let _ = request;
    }
}
