//! Reading replies tolerantly (host-protocol §2, §9, §10 rule 3): whatever dialect the
//! connector speaks, a reply becomes one typed [`Reply`], a result per method or a
//! [`ConnectorFailure`] carrying the taxonomy's code.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::fcp_error::{ErrorCode, FcpError, FcpErrorResponse};
use super::handshake::HandshakeResponse;
use super::introspect::Introspection;
use super::invoke::{InvokeResponse, InvokeStatus, SimulateResponse};
use super::lifecycle::{HealthSnapshot, HealthState, SelfCheckReport};
use super::request::{Method, Request, RequestId};
use super::subscribe::SubscribeResponse;

/// Which shape a result had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// The reference types' shape.
    Typed,
    /// An ad-hoc shape, normalised or kept as JSON.
    Loose,
}

/// A result that decoded into its reference type, or the JSON that did not.
#[derive(Clone, Debug, PartialEq)]
pub enum Shaped<T> {
    /// Decoded.
    Typed(T),
    /// Kept as sent.
    Loose(Value),
}

impl<T> Shaped<T> {
    /// Which shape.
    pub fn shape(&self) -> Shape {
        match self {
            Shaped::Typed(_) => Shape::Typed,
            Shaped::Loose(_) => Shape::Loose,
        }
    }

    fn read(result: Value) -> Shaped<T>
    where
        T: for<'de> Deserialize<'de>,
    {
        match T::deserialize(&result) {
            Ok(t) => Shaped::Typed(t),
            Err(_) => Shaped::Loose(result),
        }
    }
}

/// One reply, matched to its request.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The request id it answers.
    pub id: RequestId,
    /// The request's method.
    pub method: Method,
    /// The result, or the failure the connector reported.
    pub outcome: Result<ReplyBody, ConnectorFailure>,
}

/// A successful result, per method.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyBody {
    /// Whatever the connector answered; the host ignores it.
    Configure(Value),
    /// Typed: `accepted` and the nonce matched. Loose: no nonce, so no liveness proof
    /// and no token check on this connector.
    Handshake(Shaped<HandshakeResponse>),
    /// Normalised health.
    Health(HealthReply),
    /// The catalogue, or hand-written JSON that does not decode.
    Introspect(Shaped<Introspection>),
    /// The report, or JSON that does not decode.
    SelfCheck(Shaped<SelfCheckReport>),
    /// Connector-specific.
    Doctor(Value),
    /// A successful invoke (failures are [`ConnectorFailure`]s).
    Invoke(InvokeReply),
    /// Normalised simulate verdict.
    Simulate(SimulateReply),
    /// The subscription, or JSON that does not decode.
    Subscribe(Shaped<SubscribeResponse>),
    /// Connector-specific.
    Unsubscribe(Value),
    /// `{"status":"shutdown_accepted"}` (typed) or `{}` (loose).
    Shutdown(Value),
}

/// `health`, normalised: a `HealthSnapshot`, or a loose `{"status": …}` mapped as
/// `healthy`/`ok` → ready, `degraded` → degraded, anything else → error, with the whole
/// object kept as `details`.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReply {
    /// The state.
    pub state: HealthState,
    /// Uptime, when the connector says.
    pub uptime_ms: Option<u64>,
    /// Load, when the connector says.
    pub load: Option<f32>,
    /// Details; the whole result for a loose reply.
    pub details: Option<Value>,
    /// Rate-limit state.
    pub rate_limit: Option<Value>,
    /// Which shape it came in.
    pub shape: Shape,
}

/// A successful `invoke`: the envelope, or a bare result wrapped as `status:"ok"` with
/// the request's caller id.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeReply {
    /// The envelope (`status` is ok).
    pub response: InvokeResponse,
    /// Envelope (typed) or bare (loose).
    pub shape: Shape,
}

/// `simulate`, normalised: a `SimulateResponse`, or a loose `{allowed, reason}` mapped to
/// `would_succeed = allowed` and, when not allowed, `failure_reason = reason`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateReply {
    /// The verdict.
    pub response: SimulateResponse,
    /// Which shape it came in.
    pub shape: Shape,
}

/// A failure reported by the connector: a JSON-RPC `error` member, or an invoke envelope
/// with `status:"error"` (host-protocol §4.7: a supervisor must handle both). Either way
/// the process answered, so it is alive and stays in use.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorFailure {
    /// The error, read tolerantly; for an envelope, its `error` in this form.
    pub error: FcpErrorResponse,
    /// The whole envelope when the failure came in one (receipts, usage, …).
    pub envelope: Option<Box<InvokeResponse>>,
}

impl ConnectorFailure {
    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.error.code
    }

    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        self.error.retryable
    }

    /// The category-tagged error, when it came in an envelope.
    pub fn typed(&self) -> Option<&FcpError> {
        self.envelope.as_ref().and_then(|e| e.error.as_ref())
    }
}

/// A reply that matched its request but cannot be accepted. The call fails; the
/// transport is fine (the peer is to blame, but it is in sync).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A handshake `status` other than `accepted`.
    #[error("handshake rejected with status {status:?}")]
    HandshakeRejected {
        /// The status sent.
        status: String,
    },
    /// A handshake nonce that differs from the request's.
    #[error("handshake nonce mismatch")]
    NonceMismatch,
    /// A result in no shape we accept for the method.
    #[error("malformed {method} result: {reason}")]
    Malformed {
        /// The method.
        method: Method,
        /// What did not decode.
        reason: String,
    },
}

impl ReplyError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ReplyError::HandshakeRejected { .. } => "handshake_rejected",
            ReplyError::NonceMismatch => "handshake_nonce_mismatch",
            ReplyError::Malformed { .. } => "malformed_result",
        }
    }
}

/// What a reply needs from its request: id, method, the handshake nonce and the caller's
/// invoke/simulate id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    id: RequestId,
    method: Method,
    nonce: Option<[u8; 32]>,
    caller_id: Option<String>,
}

impl PendingRequest {
    /// Remembers `request`, sent as `id`.
    pub fn new(id: RequestId, request: &Request) -> PendingRequest {
        let (nonce, caller_id) = match request {
            Request::Handshake(h) => (Some(h.nonce), None),
            Request::Invoke(r) => (None, Some(r.id.clone())),
            Request::Simulate(r) => (None, Some(r.id.clone())),
            _ => (None, None),
        };
        PendingRequest { id, method: request.method(), nonce, caller_id }
    }

    /// The request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The caller's `id` of an invoke or simulate.
    pub fn caller_id(&self) -> Option<&str> {
        self.caller_id.as_deref()
    }

    /// Decodes a response object already matched to this request. As in the reference
    /// host, an `error` key means failure whatever else is there; otherwise `result`
    /// (`{}` when absent) is read for the method.
    pub fn decode(&self, mut response: Map<String, Value>) -> Result<Reply, ReplyError> {
        let outcome = match response.remove("error") {
            Some(member) => Err(ConnectorFailure { error: FcpErrorResponse::from_wire(&member), envelope: None }),
            None => self.body(response.remove("result").unwrap_or_else(|| Value::Object(Map::new())))?,
        };
        Ok(Reply { id: self.id, method: self.method, outcome })
    }

    fn body(&self, result: Value) -> Result<Result<ReplyBody, ConnectorFailure>, ReplyError> {
        Ok(Ok(match self.method {
            Method::Configure => ReplyBody::Configure(result),
            Method::Handshake => ReplyBody::Handshake(self.handshake(result)?),
            Method::Health => ReplyBody::Health(health(result)),
            Method::Introspect => ReplyBody::Introspect(Shaped::read(result)),
            Method::SelfCheck => ReplyBody::SelfCheck(Shaped::read(result)),
            Method::Doctor => ReplyBody::Doctor(result),
            Method::Invoke => return self.invoke(result),
            Method::Simulate => ReplyBody::Simulate(self.simulate(result)?),
            Method::Subscribe => ReplyBody::Subscribe(Shaped::read(result)),
            Method::Unsubscribe => ReplyBody::Unsubscribe(result),
            Method::Shutdown => ReplyBody::Shutdown(result),
        }))
    }

    fn malformed(&self, e: impl ToString) -> ReplyError {
        ReplyError::Malformed { method: self.method, reason: e.to_string() }
    }

    fn handshake(&self, result: Value) -> Result<Shaped<HandshakeResponse>, ReplyError> {
        if let Some(status) = result.get("status").and_then(Value::as_str) {
            if status != HandshakeResponse::ACCEPTED {
                return Err(ReplyError::HandshakeRejected { status: status.to_owned() });
            }
        }
        if result.get("nonce").is_none() {
            return Ok(Shaped::Loose(result));
        }
        let typed = HandshakeResponse::deserialize(&result).map_err(|e| self.malformed(e))?;
        if Some(typed.nonce) != self.nonce {
            return Err(ReplyError::NonceMismatch);
        }
        Ok(Shaped::Typed(typed))
    }

    fn invoke(&self, result: Value) -> Result<Result<ReplyBody, ConnectorFailure>, ReplyError> {
        let envelope = result.get("type").and_then(Value::as_str) == Some("response")
            && matches!(result.get("status").and_then(Value::as_str), Some("ok" | "error"));
        if !envelope {
            let response = InvokeResponse::ok(self.caller_id.clone().unwrap_or_default(), result);
            return Ok(Ok(ReplyBody::Invoke(InvokeReply { response, shape: Shape::Loose })));
        }
        let response = InvokeResponse::deserialize(&result).map_err(|e| self.malformed(e))?;
        Ok(match (response.status, &response.error) {
            (InvokeStatus::Error, Some(error)) => {
                Err(ConnectorFailure { error: error.to_response(), envelope: Some(Box::new(response)) })
            }
            _ => Ok(ReplyBody::Invoke(InvokeReply { response, shape: Shape::Typed })),
        })
    }

    fn simulate(&self, result: Value) -> Result<SimulateReply, ReplyError> {
        if let Ok(response) = SimulateResponse::deserialize(&result) {
            return Ok(SimulateReply { response, shape: Shape::Typed });
        }
        let Some(allowed) = result.get("allowed").and_then(Value::as_bool) else {
            return Err(self.malformed("neither a SimulateResponse nor {allowed, reason}"));
        };
        let mut response = SimulateResponse::verdict(self.caller_id.clone().unwrap_or_default(), allowed);
        if !allowed {
            response.failure_reason = result.get("reason").and_then(Value::as_str).map(str::to_owned);
        }
        Ok(SimulateReply { response, shape: Shape::Loose })
    }
}

fn health(result: Value) -> HealthReply {
    if let Ok(s) = HealthSnapshot::deserialize(&result) {
        return HealthReply {
            state: s.status,
            uptime_ms: Some(s.uptime_ms),
            load: s.load,
            details: s.details,
            rate_limit: s.rate_limit,
            shape: Shape::Typed,
        };
    }
    let status = result.get("status").and_then(Value::as_str);
    let reason = result.get("reason").and_then(Value::as_str).or(status).unwrap_or("unrecognised health reply");
    let state = match status {
        Some("healthy" | "ok") => HealthState::Ready,
        Some("degraded") => HealthState::Degraded { reason: reason.to_owned() },
        _ => HealthState::Error { reason: reason.to_owned() },
    };
    HealthReply {
        state,
        uptime_ms: result.get("uptime_ms").and_then(Value::as_u64),
        load: None,
        details: Some(result),
        rate_limit: None,
        shape: Shape::Loose,
    }
}

/// The three dialects of host-protocol §9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Typed handshake with nonce echo, `HealthSnapshot`, invoke envelope.
    Typed,
    /// Typed handshake; loose health or bare invoke results.
    Mixed,
    /// Ad-hoc handshake without nonce.
    Loose,
}

/// Classifies a connector from the shapes of its handshake, health and invoke replies.
#[derive(Clone, Debug, Default)]
pub struct DialectObserver {
    handshake: Option<Shape>,
    health: Option<Shape>,
    invoke: Option<Shape>,
}

impl DialectObserver {
    /// Records the shape of a successful handshake, health or invoke reply.
    pub fn observe(&mut self, reply: &Reply) {
        match &reply.outcome {
            Ok(ReplyBody::Handshake(h)) => self.handshake = Some(h.shape()),
            Ok(ReplyBody::Health(h)) => self.health = Some(h.shape),
            Ok(ReplyBody::Invoke(i)) => self.invoke = Some(i.shape),
            _ => {}
        }
    }

    /// The dialect so far; `None` before a successful handshake. `Typed` holds only
    /// until a loose health or bare invoke shows up.
    pub fn dialect(&self) -> Option<Dialect> {
        match self.handshake? {
            Shape::Loose => Some(Dialect::Loose),
            Shape::Typed if self.health == Some(Shape::Loose) || self.invoke == Some(Shape::Loose) => {
                Some(Dialect::Mixed)
            }
            Shape::Typed => Some(Dialect::Typed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::handshake::HandshakeRequest;
    use crate::host::invoke::{InvokeRequest, TokenBytes};
    use crate::id::{CanonicalId, ZoneId};
    use serde_json::json;

    const ID: RequestId = RequestId { epoch: 0, seq: 4 };

    fn pending(request: &Request) -> PendingRequest {
        PendingRequest::new(ID, request)
    }

    fn handshake(nonce: [u8; 32]) -> Request {
        Request::Handshake(HandshakeRequest::new(ZoneId::new("z:work").expect("zone"), [0; 32], nonce))
    }

    fn invoke() -> Request {
        let c = |s| CanonicalId::new(s).expect("canonical");
        Request::Invoke(Box::new(InvokeRequest::new(
            "req_7",
            c("fcp.x"),
            c("x.op"),
            ZoneId::new("z:work").expect("zone"),
            json!({}),
            TokenBytes::default(),
        )))
    }

    fn decode(p: &PendingRequest, response: Value) -> Result<Reply, ReplyError> {
        match response {
            Value::Object(m) => p.decode(m),
            _ => panic!("test responses are objects"),
        }
    }

    fn ok_body(p: &PendingRequest, result: Value) -> ReplyBody {
        let reply = decode(p, json!({"jsonrpc": "2.0", "id": "0:4", "result": result})).expect("accepted");
        assert_eq!((reply.id, reply.method), (ID, p.method()));
        reply.outcome.expect("success")
    }

    fn typed_handshake(nonce: [u8; 32]) -> Value {
        json!({"capabilities_granted": [], "manifest_hash": "sha256:00", "nonce": nonce,
            "session_id": "4ac015d0-d332-46c8-b67c-4f05c94a45a0", "status": "accepted"})
    }

    #[test]
    fn error_key_wins_whatever_else_is_there() {
        let p = pending(&Request::Health);
        let reply =
            decode(&p, json!({"error": {"code": "FCP-5002", "message": "m", "retryable": false}, "result": {}}))
                .expect("in sync");
        let failure = reply.outcome.expect_err("failure");
        assert_eq!(failure.code(), ErrorCode::NOT_CONFIGURED);
        assert!(!failure.retryable());
        assert_eq!(failure.typed(), None);
    }

    #[test]
    fn missing_result_reads_as_empty_object() {
        assert_eq!(ok_body(&pending(&Request::Doctor), Value::Null), ReplyBody::Doctor(Value::Null));
        let reply = decode(&pending(&Request::Doctor), json!({"id": "0:4"})).expect("in sync");
        assert_eq!(reply.outcome, Ok(ReplyBody::Doctor(json!({}))));
    }

    #[test]
    fn typed_handshake_needs_accepted_and_the_same_nonce() {
        let p = pending(&handshake([6; 32]));
        assert!(
            matches!(ok_body(&p, typed_handshake([6; 32])), ReplyBody::Handshake(Shaped::Typed(h)) if h.nonce == [6; 32])
        );
        let wrong = json!({"result": typed_handshake([7; 32])});
        assert_eq!(decode(&p, wrong), Err(ReplyError::NonceMismatch));
        let mut rejected = typed_handshake([6; 32]);
        rejected["status"] = json!("denied");
        assert_eq!(
            decode(&p, json!({"result": rejected})),
            Err(ReplyError::HandshakeRejected { status: "denied".into() })
        );
        let broken = json!({"result": {"nonce": [1, 2], "status": "accepted"}});
        assert!(matches!(decode(&p, broken), Err(ReplyError::Malformed { method: Method::Handshake, .. })));
    }

    #[test]
    fn loose_handshake_has_no_nonce() {
        let p = pending(&handshake([1; 32]));
        let loose = json!({"capabilities": ["tavily.search"], "connector_id": "fcp.tavily", "protocol_version": "2.0"});
        assert_eq!(ok_body(&p, loose.clone()), ReplyBody::Handshake(Shaped::Loose(loose)));
    }

    #[test]
    fn health_maps_every_loose_status() {
        let p = pending(&Request::Health);
        let typed = json!({"status": {"state": "degraded", "reason": "not configured"}, "uptime_ms": 16, "load": 0.5});
        let ReplyBody::Health(h) = ok_body(&p, typed) else { panic!("health") };
        assert_eq!(h.shape, Shape::Typed);
        assert_eq!(h.state, HealthState::Degraded { reason: "not configured".into() });
        assert_eq!((h.uptime_ms, h.load), (Some(16), Some(0.5)));
        for (status, state) in [
            (json!("healthy"), HealthState::Ready),
            (json!("ok"), HealthState::Ready),
            (json!("degraded"), HealthState::Degraded { reason: "degraded".into() }),
            (json!("unconfigured"), HealthState::Error { reason: "unconfigured".into() }),
            (json!(3), HealthState::Error { reason: "unrecognised health reply".into() }),
        ] {
            let result = json!({"status": status, "configured": false});
            let ReplyBody::Health(h) = ok_body(&p, result.clone()) else { panic!("health") };
            assert_eq!((h.state, h.shape, h.details), (state, Shape::Loose, Some(result)));
        }
        let ReplyBody::Health(h) = ok_body(&p, json!("fine")) else { panic!("health") };
        assert_eq!(h.state, HealthState::Error { reason: "unrecognised health reply".into() });
    }

    #[test]
    fn invoke_reads_envelopes_and_wraps_bare_results() {
        let p = pending(&invoke());
        let envelope =
            json!({"id": "req_7", "resource_uris": [], "result": {"a": 1}, "status": "ok", "type": "response"});
        let ReplyBody::Invoke(r) = ok_body(&p, envelope) else { panic!("invoke") };
        assert_eq!((r.shape, r.response.result), (Shape::Typed, Some(json!({"a": 1}))));
        let ReplyBody::Invoke(r) = ok_body(&p, json!({"projects": []})) else { panic!("invoke") };
        assert_eq!(r.shape, Shape::Loose);
        assert_eq!(r.response, InvokeResponse::ok("req_7", json!({"projects": []})));
        // Something with "type":"response" but an unknown status is a bare result.
        let odd = json!({"type": "response", "status": "weird"});
        let ReplyBody::Invoke(r) = ok_body(&p, odd.clone()) else { panic!("invoke") };
        assert_eq!((r.shape, r.response.result), (Shape::Loose, Some(odd)));
    }

    #[test]
    fn invoke_error_envelopes_are_failures_with_the_envelope() {
        let p = pending(&invoke());
        let failed = json!({"id": "req_7", "resource_uris": [], "status": "error", "type": "response",
            "error": {"category": "External", "service": "s", "message": "m", "status_code": 429, "retryable": true, "retry_after": 1500}});
        let reply = decode(&p, json!({"result": failed})).expect("in sync");
        let failure = reply.outcome.expect_err("failure");
        assert_eq!(failure.code(), ErrorCode::EXTERNAL_RATE_LIMITED);
        assert!(failure.retryable());
        assert_eq!(failure.error.retry_after_ms, Some(1500));
        assert!(matches!(failure.typed(), Some(FcpError::External { status_code: Some(429), .. })));
        let broken = json!({"result": {"type": "response", "status": "error", "id": "req_7"}});
        assert!(matches!(decode(&p, broken), Err(ReplyError::Malformed { method: Method::Invoke, .. })));
    }

    #[test]
    fn simulate_reads_both_shapes() {
        let c = |s| CanonicalId::new(s).expect("canonical");
        let request = Request::Simulate(Box::new(crate::host::invoke::SimulateRequest {
            id: "sim_1".into(),
            connector_id: c("fcp.x"),
            operation: c("x.op"),
            zone_id: ZoneId::new("z:work").expect("zone"),
            input: json!({}),
            capability_token: TokenBytes::default(),
            estimate_cost: false,
            check_availability: false,
            context: None,
            correlation_id: None,
        }));
        let p = pending(&request);
        let typed = json!({"type": "simulate_response", "id": "sim_1", "would_succeed": false,
            "denial_code": "FCP-3010", "missing_capabilities": []});
        let ReplyBody::Simulate(s) = ok_body(&p, typed) else { panic!("simulate") };
        assert_eq!((s.shape, s.response.denial_code), (Shape::Typed, Some(ErrorCode::SIMULATION_DENIED)));
        let ReplyBody::Simulate(s) = ok_body(&p, json!({"allowed": false, "reason": "Unsupported."})) else {
            panic!("simulate")
        };
        assert_eq!(s.shape, Shape::Loose);
        assert_eq!((s.response.id.as_str(), s.response.would_succeed), ("sim_1", false));
        assert_eq!(s.response.failure_reason.as_deref(), Some("Unsupported."));
        assert!(matches!(decode(&p, json!({"result": {"maybe": true}})), Err(ReplyError::Malformed { .. })));
    }

    #[test]
    fn other_methods_keep_loose_json() {
        let introspect = ok_body(&pending(&Request::Introspect), json!({"tools": []}));
        assert_eq!(introspect, ReplyBody::Introspect(Shaped::Loose(json!({"tools": []}))));
        let typed = ok_body(&pending(&Request::Introspect), json!({"operations": []}));
        assert_eq!(typed, ReplyBody::Introspect(Shaped::Typed(Introspection::default())));
        let sc = ok_body(&pending(&Request::SelfCheck), json!({"status": "ok"}));
        assert!(matches!(sc, ReplyBody::SelfCheck(Shaped::Typed(_))));
        let shutdown = ok_body(&pending(&Request::Shutdown(Default::default())), json!({}));
        assert_eq!(shutdown, ReplyBody::Shutdown(json!({})));
    }

    #[test]
    fn dialects_follow_the_survey() {
        let mut typed = DialectObserver::default();
        assert_eq!(typed.dialect(), None);
        let hp = pending(&handshake([6; 32]));
        typed.observe(&decode(&hp, json!({"result": typed_handshake([6; 32])})).expect("ok"));
        assert_eq!(typed.dialect(), Some(Dialect::Typed));
        let mut mixed = typed.clone();
        typed.observe(
            &decode(&pending(&Request::Health), json!({"result": {"status": {"state": "ready"}, "uptime_ms": 1}}))
                .expect("ok"),
        );
        assert_eq!(typed.dialect(), Some(Dialect::Typed));
        mixed.observe(&decode(&pending(&invoke()), json!({"result": {"issue": {}}})).expect("ok"));
        assert_eq!(mixed.dialect(), Some(Dialect::Mixed));
        let mut loose = DialectObserver::default();
        loose.observe(&decode(&hp, json!({"result": {"protocol_version": "2.0"}})).expect("ok"));
        assert_eq!(loose.dialect(), Some(Dialect::Loose));
    }
}
