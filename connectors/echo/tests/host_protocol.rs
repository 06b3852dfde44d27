//! Spawns the real `fcp-echo` binary and drives it through fcp-proto's host codec, as a
//! supervisor would: configure, health, introspect, handshake, invoke, simulate,
//! self_check, shutdown, then EOF (host-protocol §3, §4, §11).

use std::process::Command;

use fcp_policy::manifest::Manifest;
use fcp_proto::host::{
    Dialect, ErrorCode, Event, FcpError, HandshakeRequest, HealthState, InvokeRequest, Method, ReplyBody, Request,
    SelfCheckStatus, Shape, Shaped, ShutdownRequest, SimulateRequest, TokenBytes,
};
use fcp_proto::id::{CanonicalId, ZoneId};
use fcp_sdk::testing::Host;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../manifest.toml");

fn spawn() -> Host {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fcp-echo"));
    cmd.env_clear().env("RUST_LOG", "warn");
    Host::spawn(cmd)
}

fn id(s: &str) -> CanonicalId {
    CanonicalId::new(s).expect("canonical")
}

fn zone(s: &str) -> ZoneId {
    ZoneId::new(s).expect("zone")
}

fn handshake(nonce: [u8; 32]) -> Request {
    let mut h = HandshakeRequest::new(zone("z:work"), [234; 32], nonce);
    h.zone_dir = Some("/var/lib/fcp/state/fcp.echo/cache/z_work".into());
    h.requested_instance_id = Some(id("inst_echo_test"));
    Request::Handshake(h)
}

fn invoke(operation: &str, input: Value) -> Request {
    let r =
        InvokeRequest::new("req_1", id("fcp.echo"), id(operation), zone("z:work"), input, TokenBytes(vec![132, 77]));
    Request::Invoke(Box::new(r))
}

fn simulate(operation: &str) -> Request {
    Request::Simulate(Box::new(SimulateRequest {
        id: "sim_1".into(),
        connector_id: id("fcp.echo"),
        operation: id(operation),
        zone_id: zone("z:work"),
        input: json!({}),
        capability_token: TokenBytes::default(),
        estimate_cost: false,
        check_availability: false,
        context: None,
        correlation_id: None,
    }))
}

#[test]
fn full_life_cycle() {
    let mut host = spawn();

    let ReplyBody::Health(h) = host.ok(Request::Health) else { panic!("health") };
    assert_eq!((h.state, h.shape), (HealthState::Degraded { reason: "not configured".into() }, Shape::Typed));
    assert_eq!(host.code(invoke("echo", json!({}))), ErrorCode::NOT_CONFIGURED);
    let bad = Map::from_iter([("api_key".to_owned(), json!("x"))]);
    assert_eq!(host.code(Request::Configure(bad)), ErrorCode::INVALID_JSON);
    assert_eq!(host.ok(Request::Configure(Map::new())), ReplyBody::Configure(json!({"status": "configured"})));
    let ReplyBody::Health(h) = host.ok(Request::Health) else { panic!("health") };
    assert_eq!(h.state, HealthState::Ready);

    assert_eq!(host.code(invoke("echo", json!({}))), ErrorCode::NOT_HANDSHAKEN);
    let ReplyBody::Handshake(Shaped::Typed(hs)) = host.ok(handshake([5; 32])) else { panic!("typed handshake") };
    assert_eq!(hs.nonce, [5; 32]);
    assert_eq!(hs.manifest_hash, format!("sha256:{}", hex::encode(Sha256::digest(MANIFEST.as_bytes()))));

    let input = json!({"hello": [1, 2, 3], "nested": {"ok": true, "none": null}});
    let ReplyBody::Invoke(r) = host.ok(invoke("echo", input.clone())) else { panic!("invoke") };
    assert_eq!((r.shape, r.response.id.as_str(), r.response.result), (Shape::Typed, "req_1", Some(input)));

    let failure = host.call(invoke("fail", json!({"category": "RateLimited", "retry_after_ms": 250}))).outcome;
    let failure = failure.expect_err("fail fails");
    assert_eq!(
        (failure.code(), failure.retryable(), failure.error.retry_after_ms),
        (ErrorCode::RATE_LIMITED, true, Some(250))
    );
    assert_eq!(failure.typed(), Some(&FcpError::RateLimited { retry_after_ms: 250, violation: None }));
    assert_eq!(host.code(invoke("fail", json!({}))), ErrorCode::INTERNAL);
    assert_eq!(host.code(invoke("nothing", json!({}))), ErrorCode::UNKNOWN_METHOD);

    let ReplyBody::Simulate(s) = host.ok(simulate("echo")) else { panic!("simulate") };
    assert_eq!((s.shape, s.response.would_succeed, s.response.id.as_str()), (Shape::Typed, true, "sim_1"));
    let ReplyBody::Simulate(s) = host.ok(simulate("fail")) else { panic!("simulate") };
    assert!(!s.response.would_succeed);
    let ReplyBody::SelfCheck(Shaped::Typed(sc)) = host.ok(Request::SelfCheck) else { panic!("self_check") };
    assert_eq!(sc.status, SelfCheckStatus::Ok);
    assert_eq!(host.code(Request::Subscribe(Default::default())), ErrorCode::STREAMING_NOT_SUPPORTED);
    assert_eq!(host.dialect().dialect(), Some(Dialect::Typed));

    let shutdown = ShutdownRequest { deadline_ms: Some(1000), drain: Some(false), reason: None };
    assert_eq!(host.ok(Request::Shutdown(shutdown)), ReplyBody::Shutdown(json!({"status": "shutdown_accepted"})));
    assert_eq!(host.code(invoke("echo", json!({}))), ErrorCode::NOT_CONFIGURED, "shutdown unconfigures");
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
    let mut host = spawn();
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
        assert_eq!((&op.input_schema, &op.output_schema), (&m.input_schema, &m.output_schema));
        let hints = m.ai_hints.as_ref().expect("manifest has ai_hints");
        assert_eq!(op.ai_hints.when_to_use, hints.when_to_use);
        assert_eq!(op.ai_hints.examples, hints.examples);
    }
    host.finish();
}

/// Lines a host never sends still get the reference answers: an unknown method is an
/// ordinary error, a line that is not JSON is answered without an id (which a host must
/// treat as desync), and so is a line over the 64 KiB cap; the process reads on.
#[test]
fn malformed_lines() {
    let mut host = spawn();
    host.write(b"{\"jsonrpc\":\"2.0\",\"id\":\"x:1\",\"method\":\"frobnicate\",\"params\":{}}\n");
    host.write(b"not json\n");
    let mut long = vec![b' '; 70 * 1024];
    long.push(b'\n');
    host.write(&long);
    host.write(b"{\"id\":7,\"method\":\"health\"}\n");
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    while lines.len() < 4 {
        pending.extend(host.read_raw().expect("answers"));
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            lines.push(serde_json::from_slice::<Value>(&line).expect("JSON"));
        }
    }
    assert_eq!((&lines[0]["id"], &lines[0]["error"]["code"]), (&json!("x:1"), &json!("FCP-1002")));
    assert_eq!(lines[0]["error"]["message"], "Invalid request: Unknown method: frobnicate");
    assert_eq!((lines[1].get("id"), &lines[1]["error"]["code"]), (None, &json!("FCP-1001")));
    assert_eq!((lines[2].get("id"), &lines[2]["error"]["code"]), (None, &json!("FCP-1001")));
    assert_eq!((&lines[3]["id"], &lines[3]["result"]["status"]["state"]), (&json!(7), &json!("degraded")));

    // The same id-less answer through the framer: the supervisor's channel is poisoned.
    let mut host = spawn();
    let out = host.framer().send(&Request::Health).expect("send");
    host.write(b"garbage\n");
    host.write(&out.bytes);
    let events = host.events();
    assert!(
        matches!(events.as_slice(), [Event::Poisoned { error, in_flight: Some(p) }] if error.code() == "missing_id" && p.method() == Method::Health),
        "{events:?}"
    );
}
