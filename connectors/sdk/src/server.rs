//! One request in, one reply line out: the connector's state machine (host-protocol §3,
//! §4), without I/O apart from the uptime clock and the session-id RNG.

use std::collections::BTreeSet;
use std::time::Instant;

use fcp_proto::host::{
    encode_response, CapabilityGrant, EventCaps, FcpError, HandshakeRequest, HandshakeResponse, HealthSnapshot,
    HealthState, Incoming, InvokeResponse, Request, MAX_FRAME_BYTES,
};
use fcp_proto::id::ZoneId;
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{ConnectorInfo, FcpConnector};

/// The handshake a connector is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    zone: ZoneId,
}

/// The connector side of one process: life-cycle state plus the connector.
#[derive(Debug)]
pub struct Server<C> {
    connector: C,
    info: ConnectorInfo,
    operations: BTreeSet<String>,
    manifest_hash: String,
    started: Instant,
    configured: bool,
    session: Option<Session>,
}

impl<C: FcpConnector> Server<C> {
    /// Wraps `connector`, reading its info and catalogue once.
    pub fn new(connector: C) -> Server<C> {
        let info = connector.info();
        let operations = connector.introspect().operations.into_iter().map(|op| op.id).collect();
        let manifest_hash = format!("sha256:{}", hex::encode(Sha256::digest(info.manifest_toml.as_bytes())));
        Server { connector, info, operations, manifest_hash, started: Instant::now(), configured: false, session: None }
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.connector
    }

    /// The reply line (`\n` included) for one request. Always exactly one line, within
    /// the 64 KiB frame cap.
    pub fn handle(&mut self, incoming: Incoming) -> Vec<u8> {
        let outcome = match incoming.request {
            Ok(request) => self.dispatch(request),
            Err(e) => Err(e.to_fcp_error()),
        };
        encode_response(incoming.id.as_ref(), outcome.map_err(|e| e.to_response()), MAX_FRAME_BYTES)
    }

    fn dispatch(&mut self, request: Request) -> Result<Value, FcpError> {
        match request {
            Request::Configure(config) => {
                self.connector.configure(&config)?;
                self.configured = true;
                Ok(json!({"status": "configured"}))
            }
            Request::Handshake(h) => self.handshake(h),
            Request::Health => to_json(&HealthSnapshot {
                status: if self.configured {
                    self.connector.health()
                } else {
                    HealthState::Degraded { reason: "not configured".into() }
                },
                uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                load: None,
                details: None,
                rate_limit: None,
            }),
            Request::Introspect => to_json(&self.connector.introspect()),
            Request::SelfCheck => to_json(&self.connector.self_check()),
            Request::Doctor => Ok(self.doctor()),
            Request::Invoke(r) => {
                self.admit(r.connector_id.as_str(), &r.zone_id, r.operation.as_str())?;
                let id = r.id.clone();
                let envelope = match self.connector.invoke_request(*r) {
                    Ok(result) => InvokeResponse::ok(id, result),
                    Err(error) => InvokeResponse::failed(id, error),
                };
                to_json(&envelope)
            }
            Request::Simulate(r) => {
                self.admit(r.connector_id.as_str(), &r.zone_id, r.operation.as_str())?;
                let mut verdict = self.connector.simulate(&r);
                verdict.id = r.id;
                to_json(&verdict)
            }
            Request::Subscribe(_) | Request::Unsubscribe(_) => Err(FcpError::StreamingNotSupported),
            Request::Shutdown(s) => {
                self.connector.shutdown(&s);
                self.configured = false;
                self.session = None;
                Ok(json!({"status": "shutdown_accepted"}))
            }
        }
    }

    fn handshake(&mut self, h: HandshakeRequest) -> Result<Value, FcpError> {
        let mut random = [0u8; 16];
        OsRng.try_fill_bytes(&mut random).map_err(|e| FcpError::internal(format!("session id: {e}")))?;
        let response = HandshakeResponse {
            status: HandshakeResponse::ACCEPTED.into(),
            capabilities_granted: h
                .capabilities_requested
                .iter()
                .map(|c| CapabilityGrant { capability: c.to_string(), operation: None })
                .collect(),
            session_id: uuid::Builder::from_random_bytes(random).into_uuid().to_string(),
            manifest_hash: self.manifest_hash.clone(),
            nonce: h.nonce,
            event_caps: Some(EventCaps::default()),
            auth_caps: None,
            op_catalog_hash: None,
        };
        self.session = Some(Session { zone: h.zone });
        to_json(&response)
    }

    /// The checks before an invoke or simulate reaches the connector, in the reference
    /// order: configured, handshaken; then ours: the handshaken zone, this connector, a
    /// known operation.
    fn admit(&self, connector_id: &str, zone: &ZoneId, operation: &str) -> Result<(), FcpError> {
        if !self.configured {
            return Err(FcpError::NotConfigured);
        }
        let session = self.session.as_ref().ok_or(FcpError::NotHandshaken)?;
        if &session.zone != zone {
            return Err(FcpError::ZoneViolation {
                source_zone: session.zone.to_string(),
                target_zone: zone.to_string(),
                message: format!("handshaken for {}, asked for {zone}", session.zone),
            });
        }
        if connector_id != self.info.id {
            return Err(FcpError::invalid_params(format!(
                "connector_id {connector_id} is not this connector ({})",
                self.info.id
            )));
        }
        if !self.operations.contains(operation) {
            return Err(FcpError::unknown_operation(operation));
        }
        Ok(())
    }

    fn doctor(&self) -> Value {
        let check =
            |name: &str, passed: bool, critical: bool| json!({"name": name, "passed": passed, "critical": critical});
        json!({
            "ready": self.configured,
            "passed": self.configured,
            "connector_id": self.info.id,
            "version": self.info.version,
            "checks": [check("configured", self.configured, true), check("handshaken", self.session.is_some(), false)],
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Value, FcpError> {
    serde_json::to_value(value).map_err(|e| FcpError::internal(format!("encode result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AiHints, ConnectorError, Idempotency, Introspection, OperationInfo, RiskLevel, SafetyTier, ShutdownRequest,
        SimulateRequest, SimulateResponse,
    };
    use fcp_proto::host::{
        encode_request, ErrorCode, Framer, InvokeRequest, PendingRequest, Reply, ReplyBody, RequestId, Shape, Shaped,
        TokenBytes,
    };
    use fcp_proto::id::CanonicalId;
    use serde_json::Map;

    /// Doubles its input's `n`; `boom` fails.
    #[derive(Default)]
    struct Doubler {
        shutdowns: u32,
    }

    impl FcpConnector for Doubler {
        fn info(&self) -> ConnectorInfo {
            ConnectorInfo { id: "fcp.doubler", version: "0.1.0", manifest_toml: "[manifest]\n" }
        }

        fn introspect(&self) -> Introspection {
            let op = |id: &str| OperationInfo {
                id: id.into(),
                summary: "s".into(),
                description: None,
                input_schema: json!({"type": "object"}),
                output_schema: json!({"type": "object"}),
                capability: "doubler.use".into(),
                risk_level: RiskLevel::Low,
                safety_tier: SafetyTier::Safe,
                idempotency: Idempotency::Strict,
                ai_hints: AiHints::default(),
                rate_limit: None,
                requires_approval: None,
            };
            Introspection { operations: vec![op("double"), op("boom")], ..Default::default() }
        }

        fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError> {
            match config.get("bad") {
                Some(_) => Err(FcpError::invalid_params("bad config")),
                None => Ok(()),
            }
        }

        fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError> {
            match operation {
                "double" => Ok(json!({"n": input["n"].as_i64().unwrap_or(0) * 2})),
                _ => Err(FcpError::ResourceNotFound { resource: "boom".into() }),
            }
        }

        fn simulate(&mut self, request: &SimulateRequest) -> SimulateResponse {
            SimulateResponse::verdict("ignored", request.operation.as_str() == "double")
        }

        fn shutdown(&mut self, _: &ShutdownRequest) {
            self.shutdowns += 1;
        }
    }

    /// Drives `server` with typed requests through the real host codec.
    struct Harness {
        server: Server<Doubler>,
        framer: Framer,
    }

    impl Harness {
        fn new() -> Harness {
            Harness { server: Server::new(Doubler::default()), framer: Framer::new() }
        }

        fn call(&mut self, request: Request) -> Reply {
            let out = self.framer.send(&request).expect("in sync");
            let incoming = Incoming::decode(out.bytes.strip_suffix(b"\n").expect("newline")).expect("not blank");
            let line = self.server.handle(incoming);
            match &self.framer.push(&line)[..] {
                [fcp_proto::host::Event::Reply(r)] => (**r).clone(),
                other => panic!("{other:?}"),
            }
        }

        fn ready(&mut self) {
            self.call(Request::Configure(Map::new())).outcome.expect("configured");
            self.call(handshake("z:work")).outcome.expect("handshaken");
        }
    }

    fn handshake(zone: &str) -> Request {
        let mut h = HandshakeRequest::new(ZoneId::new(zone).expect("zone"), [1; 32], [7; 32]);
        h.capabilities_requested = vec![CanonicalId::new("doubler.use").expect("id")];
        Request::Handshake(h)
    }

    fn invoke(connector: &str, zone: &str, op: &str, input: Value) -> Request {
        let c = |s| CanonicalId::new(s).expect("canonical");
        Request::Invoke(Box::new(InvokeRequest::new(
            "req_1",
            c(connector),
            c(op),
            ZoneId::new(zone).expect("zone"),
            input,
            TokenBytes::default(),
        )))
    }

    fn code(reply: &Reply) -> ErrorCode {
        reply.outcome.as_ref().map(|_| ()).expect_err("failure").code()
    }

    #[test]
    fn invoke_needs_configure_then_handshake() {
        let mut h = Harness::new();
        let call = || invoke("fcp.doubler", "z:work", "double", json!({"n": 2}));
        assert_eq!(code(&h.call(call())), ErrorCode::NOT_CONFIGURED);
        h.call(handshake("z:work")).outcome.expect("handshake before configure is fine");
        assert_eq!(code(&h.call(call())), ErrorCode::NOT_CONFIGURED);
        h.call(Request::Configure(Map::new())).outcome.expect("configured");
        let Ok(ReplyBody::Invoke(r)) = h.call(call()).outcome else { panic!("invoke") };
        assert_eq!((r.shape, r.response.result), (Shape::Typed, Some(json!({"n": 4}))));
        let mut fresh = Harness::new();
        fresh.call(Request::Configure(Map::new())).outcome.expect("configured");
        assert_eq!(code(&fresh.call(call())), ErrorCode::NOT_HANDSHAKEN);
    }

    #[test]
    fn handshake_echoes_nonce_and_grants_and_hashes_the_manifest() {
        let mut h = Harness::new();
        let Ok(ReplyBody::Handshake(Shaped::Typed(r))) = h.call(handshake("z:work")).outcome else { panic!("typed") };
        assert_eq!(r.nonce, [7; 32]);
        assert_eq!(r.capabilities_granted, [CapabilityGrant { capability: "doubler.use".into(), operation: None }]);
        assert_eq!(r.manifest_hash, format!("sha256:{}", hex::encode(Sha256::digest(b"[manifest]\n"))));
        assert_eq!(uuid::Uuid::parse_str(&r.session_id).map(|u| u.get_version_num()), Ok(4));
        let Ok(ReplyBody::Handshake(Shaped::Typed(again))) = h.call(handshake("z:work")).outcome else { panic!() };
        assert_ne!(again.session_id, r.session_id, "fresh per handshake");
    }

    #[test]
    fn refusals_before_dispatch() {
        let mut h = Harness::new();
        h.ready();
        assert_eq!(code(&h.call(invoke("fcp.doubler", "z:private", "double", json!({})))), ErrorCode::ZONE_VIOLATION);
        assert_eq!(code(&h.call(invoke("fcp.other", "z:work", "double", json!({})))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(&h.call(invoke("fcp.doubler", "z:work", "triple", json!({})))), ErrorCode::UNKNOWN_METHOD);
        h.call(handshake("z:private")).outcome.expect("rebinds");
        let Ok(ReplyBody::Invoke(_)) = h.call(invoke("fcp.doubler", "z:private", "double", json!({}))).outcome else {
            panic!("the new zone works")
        };
    }

    #[test]
    fn operation_errors_come_in_the_envelope() {
        let mut h = Harness::new();
        h.ready();
        let reply = h.call(invoke("fcp.doubler", "z:work", "boom", json!({})));
        let failure = reply.outcome.expect_err("failed");
        assert_eq!(failure.code(), ErrorCode::RESOURCE_NOT_FOUND);
        assert!(matches!(failure.typed(), Some(FcpError::ResourceNotFound { .. })));
        assert_eq!(failure.envelope.as_ref().map(|e| e.id.as_str()), Some("req_1"));
    }

    #[test]
    fn health_reports_configuration_and_shutdown_resets() {
        let mut h = Harness::new();
        let Ok(ReplyBody::Health(r)) = h.call(Request::Health).outcome else { panic!("health") };
        assert_eq!((r.state, r.shape), (HealthState::Degraded { reason: "not configured".into() }, Shape::Typed));
        h.ready();
        let Ok(ReplyBody::Health(r)) = h.call(Request::Health).outcome else { panic!("health") };
        assert_eq!(r.state, HealthState::Ready);
        let reply =
            h.call(Request::Shutdown(ShutdownRequest { deadline_ms: Some(1000), drain: Some(false), reason: None }));
        assert_eq!(reply.outcome, Ok(ReplyBody::Shutdown(json!({"status": "shutdown_accepted"}))));
        assert_eq!(h.server.connector().shutdowns, 1);
        assert_eq!(code(&h.call(invoke("fcp.doubler", "z:work", "double", json!({})))), ErrorCode::NOT_CONFIGURED);
    }

    #[test]
    fn other_methods() {
        let mut h = Harness::new();
        assert_eq!(
            code(&h.call(Request::Configure(Map::from_iter([("bad".into(), json!(1))])))),
            ErrorCode::INVALID_PARAMS
        );
        let Ok(ReplyBody::Introspect(Shaped::Typed(i))) = h.call(Request::Introspect).outcome else { panic!() };
        assert_eq!(i.operations.len(), 2);
        let Ok(ReplyBody::SelfCheck(Shaped::Typed(s))) = h.call(Request::SelfCheck).outcome else { panic!() };
        assert_eq!(s.status, crate::SelfCheckStatus::Unsupported);
        let Ok(ReplyBody::Doctor(d)) = h.call(Request::Doctor).outcome else { panic!() };
        assert_eq!(d["ready"], false);
        let sub = Request::Subscribe(Default::default());
        assert_eq!(code(&h.call(sub)), ErrorCode::STREAMING_NOT_SUPPORTED);
        h.ready();
        let sim = |op: &str| {
            let c = |s: &str| CanonicalId::new(s).expect("canonical");
            Request::Simulate(Box::new(SimulateRequest {
                id: "sim_9".into(),
                connector_id: c("fcp.doubler"),
                operation: c(op),
                zone_id: ZoneId::new("z:work").expect("zone"),
                input: json!({}),
                capability_token: TokenBytes::default(),
                estimate_cost: false,
                check_availability: false,
                context: None,
                correlation_id: None,
            }))
        };
        let Ok(ReplyBody::Simulate(s)) = h.call(sim("double")).outcome else { panic!() };
        assert_eq!((s.shape, s.response.would_succeed, s.response.id.as_str()), (Shape::Typed, true, "sim_9"));
        assert_eq!(code(&h.call(sim("nope"))), ErrorCode::UNKNOWN_METHOD);
    }

    #[test]
    fn bad_lines_are_answered_in_the_reference_form() {
        let mut server = Server::new(Doubler::default());
        let line = server.handle(Incoming::decode(b"{\"id\":\"0:8\",\"method\":\"frobnicate\"}").expect("line"));
        assert_eq!(
            line,
            b"{\"error\":{\"code\":\"FCP-1002\",\"message\":\"Invalid request: Unknown method: frobnicate\",\"retryable\":false},\"id\":\"0:8\",\"jsonrpc\":\"2.0\"}\n"
        );
        let line = server.handle(Incoming::decode(b"nonsense").expect("line"));
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!((v["error"]["code"].as_str(), v.get("id")), (Some("FCP-1001"), None));
        let out = encode_request(RequestId { epoch: 0, seq: 0 }, &Request::Health).expect("encodes");
        let reply = server.handle(Incoming::decode(&out[..out.len() - 1]).expect("line"));
        let Value::Object(m) = serde_json::from_slice(&reply).expect("JSON") else { panic!() };
        let decoded = PendingRequest::new(RequestId { epoch: 0, seq: 0 }, &Request::Health).decode(m).expect("ok");
        assert!(matches!(decoded.outcome, Ok(ReplyBody::Health(_))));
    }
}
