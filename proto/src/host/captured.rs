//! The real exchanges of host-protocol §11, replayed through both sides of the codec.
//!
//! Each pair is a line the driver wrote (`→`) and the line read back (`←`), verbatim
//! except where the doc elides content: an elided value became the JSON string `"…"`
//! (`ai_recovery_hint`, `details`, descriptions), schemas `{"type":"object"}`, AI hints an
//! empty `ai_hints` object, token byte arrays their first seven bytes, and hackernews'
//! other eight operations and extra resource types were dropped. Keys stay sorted, as
//! the connectors wrote them.

use serde_json::{json, Value};

use super::connector::{encode_error, encode_result, Incoming};
use super::fcp_error::ErrorCode;
use super::framer::{Event, Framer};
use super::handshake::HandshakeRequest;
use super::introspect::Idempotency;
use super::lifecycle::{HealthState, SelfCheckStatus};
use super::reply::{Dialect, DialectObserver, PendingRequest, Reply, ReplyBody, Shape, Shaped};
use super::request::{encode_request, Method, Request, RequestError, RequestId};
use crate::id::ZoneId;

type Pair = (&'static str, &'static str);

/// §11.1 hackernews, typed dialect, empty network namespace.
const HACKERNEWS: [Pair; 10] = [
    (
        r#"{"jsonrpc":"2.0","id":"0:0","method":"configure","params":{}}"#,
        r#"{"id":"0:0","jsonrpc":"2.0","result":{"status":"configured"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:1","method":"health","params":{}}"#,
        r#"{"id":"0:1","jsonrpc":"2.0","result":{"details":"…","status":{"state":"ready"},"uptime_ms":16}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:2","method":"introspect","params":{}}"#,
        r#"{"id":"0:2","jsonrpc":"2.0","result":{"event_caps":{"min_buffer_events":0,"replay":false,"requires_ack":false,"streaming":false},"events":[],"operations":[{"ai_hints":{"common_mistakes":[],"examples":[],"related":[],"when_to_use":"…"},"capability":"hackernews.read","description":"…","id":"hackernews.item.get","idempotency":"strict","input_schema":{"type":"object"},"output_schema":{"type":"object"},"risk_level":"low","safety_tier":"safe","summary":"…"}],"resource_types":[{"name":"hackernews.item","schema":{"type":"object"},"uri_pattern":"hackernews://items/{item_id}"}]}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:3","method":"invoke","params":{"type":"invoke","id":"req_3","connector_id":"fcp.hackernews","operation":"hackernews.item.get","zone_id":"z:work","input":{"id":8863},"capability_token":[132,77,162,1,39,4,72]}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-5003","message":"Connector not handshaken","retryable":false},"id":"0:3","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:4","method":"handshake","params":{"protocol_version":"1.0.0","zone":"z:work","zone_dir":"/var/lib/fcp/state/fcp.hackernews/cache/z_work","host_public_key":[234,74,108,99,226,156,82,10,190,245,80,123,19,46,197,249,149,71,118,174,190,190,123,146,66,30,234,105,20,70,210,44],"nonce":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32],"capabilities_requested":[],"requested_instance_id":"inst_fcpd_demo"}}"#,
        r#"{"id":"0:4","jsonrpc":"2.0","result":{"capabilities_granted":[],"event_caps":{"min_buffer_events":0,"replay":false,"requires_ack":false,"streaming":false},"manifest_hash":"sha256:8636639f06b7ee88b8dd56d3ee43b4e5cd3f201120680db91e5aa0c98be05dc7","nonce":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32],"session_id":"4ac015d0-d332-46c8-b67c-4f05c94a45a0","status":"accepted"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:5","method":"invoke","params":{"type":"invoke","id":"req_5","connector_id":"fcp.hackernews","operation":"hackernews.item.get","zone_id":"z:work","input":{"id":8863},"capability_token":[132,77,162,1,39,4,72]}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-1006","message":"Missing required field: instance_id (required for BoundVerified)","retryable":false},"id":"0:5","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:6","method":"invoke","params":{"type":"invoke","id":"req_6","connector_id":"fcp.hackernews","operation":"hackernews.item.get","zone_id":"z:work","input":{"id":8863},"capability_token":[132,77,162,1,39,4,72]}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-4001","details":"…","message":"Zone violation: Token instance mismatch: expected inst_0f84285c-903a-4fdd-a3f2-4d5b88767397, got inst_fcpd_demo","retryable":false},"id":"0:6","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:7","method":"self_check","params":{}}"#,
        r#"{"id":"0:7","jsonrpc":"2.0","result":{"details":"…","message":"HTTP error: error sending request for url (https://hacker-news.firebaseio.com/v0/topstories.json)","reason_code":"self_check_retryable","status":"degraded"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:8","method":"frobnicate","params":{}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-1002","message":"Invalid request: Unknown method: frobnicate","retryable":false},"id":"0:8","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:9","method":"shutdown","params":{"type":"shutdown","deadline_ms":1000,"drain":false}}"#,
        r#"{"id":"0:9","jsonrpc":"2.0","result":{"status":"shutdown_accepted"}}"#,
    ),
];

/// §11.2 hackernews through the proxy: the probe invoke, then the real one.
const HACKERNEWS_PROXIED: [Pair; 2] = [
    (
        r#"{"jsonrpc":"2.0","id":"0:2","method":"invoke","params":{"type":"invoke","id":"req_2","connector_id":"fcp.hackernews","operation":"hackernews.item.get","zone_id":"z:work","input":{"id":8863},"capability_token":[132,77,162,1,39,4,72]}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-4001","details":"…","message":"Zone violation: Token instance mismatch: expected inst_234eadb0-7ba1-4987-88b9-a7b42d895fa1, got inst_probe","retryable":false},"id":"0:2","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:3","method":"invoke","params":{"type":"invoke","id":"req_3","connector_id":"fcp.hackernews","operation":"hackernews.item.get","zone_id":"z:work","input":{"id":8863},"capability_token":[132,77,162,1,39,4,72]}}"#,
        r#"{"id":"0:3","jsonrpc":"2.0","result":{"id":"req_3","resource_uris":[],"result":{"by":"dhouston","dead":false,"deleted":false,"descendants":71,"id":8863,"kids":[],"parent":null,"parts":[],"poll":null,"score":104,"text":null,"time":1175714200,"title":"My YC app: Dropbox - Throw away your USB drive","type":"story","url":"http://www.getdropbox.com/u/2/screencast.html"},"status":"ok","type":"response"}}"#,
    ),
];

/// §11.2 perplexity-search, typed, inline `api_key`.
const PERPLEXITY: [Pair; 3] = [
    (
        r#"{"jsonrpc":"2.0","id":"0:0","method":"configure","params":{"api_key":"pplx-PLACEHOLDER"}}"#,
        r#"{"id":"0:0","jsonrpc":"2.0","result":{"status":"configured"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:1","method":"handshake","params":{"protocol_version":"1.0.0","zone":"z:work","host_public_key":[234,74,108,99,226,156,82,10,190,245,80,123,19,46,197,249,149,71,118,174,190,190,123,146,66,30,234,105,20,70,210,44],"nonce":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"capabilities_requested":[],"requested_instance_id":"inst_fcpd_demo"}}"#,
        r#"{"id":"0:1","jsonrpc":"2.0","result":{"capabilities_granted":[],"event_caps":{"min_buffer_events":0,"replay":false,"requires_ack":false,"streaming":false},"manifest_hash":"sha256:8779cb0d7447705f298c7b33e8f5d2c8ad6073db2141ba5d0a3737ed0a4125b6","nonce":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"session_id":"62d27aa8-ebb6-4ac6-92fe-28ee321fc55d","status":"accepted"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:2","method":"invoke","params":{"type":"invoke","id":"req_2","connector_id":"fcp.perplexity-search","operation":"perplexity-search.query","zone_id":"z:work","input":{"query":"rust async runtimes"},"capability_token":[132,77,162,1,39,4,72],"idempotency_key":"demo-1"}}"#,
        r#"{"id":"0:2","jsonrpc":"2.0","result":{"id":"req_2","resource_uris":[],"result":{"answer":"Tokio and async-std.","citations":["https://tokio.rs"],"external_content":{"provider":"perplexity","source":"web_search","untrusted":true,"wrapped":true},"finish_reason":"stop","id":"cmpl-test","model":"sonar","usage":{"completion_tokens":5,"prompt_tokens":5,"total_tokens":10}},"status":"ok","type":"response"}}"#,
    ),
];

/// §11.3 tavily, loose dialect.
const TAVILY: [Pair; 6] = [
    (
        r#"{"jsonrpc":"2.0","id":"0:0","method":"handshake","params":{}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-5002","message":"Connector not configured","retryable":false},"id":"0:0","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:1","method":"configure","params":{"api_key":"tvly-PLACEHOLDER"}}"#,
        r#"{"id":"0:1","jsonrpc":"2.0","result":{"auth_mode":"api_key","base_url":"https://api.tavily.com","configured":true,"connector_id":"fcp.tavily"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:2","method":"handshake","params":{"protocol_version":"1.0.0","zone":"z:work","host_public_key":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"nonce":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"capabilities_requested":[]}}"#,
        r#"{"id":"0:2","jsonrpc":"2.0","result":{"capabilities":["tavily.search"],"connector_id":"fcp.tavily","connector_version":"0.1.0","protocol_version":"2.0","streaming_supported":false}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:3","method":"health","params":{}}"#,
        r#"{"id":"0:3","jsonrpc":"2.0","result":{"base_url":"https://api.tavily.com","configured":true,"errors":0,"handshaken":true,"live_requests_supported":true,"requests":0,"status":"healthy"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:4","method":"simulate","params":{"type":"simulate","id":"sim_1","connector_id":"fcp.tavily","operation":"tavily.search","zone_id":"z:work","input":{"query":"x"},"capability_token":[]}}"#,
        r#"{"id":"0:4","jsonrpc":"2.0","result":{"allowed":true,"reason":"Supported operation."}}"#,
    ),
    (r#"{"jsonrpc":"2.0","id":"0:5","method":"shutdown","params":{}}"#, r#"{"id":"0:5","jsonrpc":"2.0","result":{}}"#),
];

/// §11.3 todoist, loose dialect, `credential_id` mode.
const TODOIST: [Pair; 5] = [
    (
        r#"{"jsonrpc":"2.0","id":"0:0","method":"configure","params":{"credential_id":"0b6f8a52-3c1e-4f7a-9d2b-5e8c1a7f4d30"}}"#,
        r#"{"id":"0:0","jsonrpc":"2.0","result":{}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:1","method":"handshake","params":{"protocol_version":"1.0.0","zone":"z:work","host_public_key":[234,74,108,99,226,156,82,10,190,245,80,123,19,46,197,249,149,71,118,174,190,190,123,146,66,30,234,105,20,70,210,44],"nonce":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"capabilities_requested":[]}}"#,
        r#"{"id":"0:1","jsonrpc":"2.0","result":{"capabilities":["todoist.projects.read","todoist.tasks.read","todoist.tasks.write","todoist.tasks.delete"],"connector_id":"fcp.todoist","connector_version":"0.1.0","protocol_version":"2.0"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:2","method":"health","params":{}}"#,
        r#"{"id":"0:2","jsonrpc":"2.0","result":{"configured":true,"errors":0,"handshaken":false,"requests":0,"status":"degraded"}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:3","method":"invoke","params":{"type":"invoke","id":"req_3","connector_id":"fcp.todoist","operation":"todoist.projects.list","zone_id":"z:work","input":{},"capability_token":[]}}"#,
        r#"{"error":{"ai_recovery_hint":"…","code":"FCP-1003","message":"Invalid request: Missing operation_id","retryable":false},"id":"0:3","jsonrpc":"2.0"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"0:4","method":"invoke","params":{"type":"invoke","id":"req_4","connector_id":"fcp.todoist","operation":"todoist.projects.list","operation_id":"todoist.projects.list","zone_id":"z:work","input":{},"capability_token":[]}}"#,
        r#"{"id":"0:4","jsonrpc":"2.0","result":{"projects":[{"color":"grey","id":"2203306141","is_favorite":false,"name":"Inbox","order":0,"url":"https://todoist.com/showProject?id=2203306141","view_style":"list"}]}}"#,
    ),
];

/// Requests our typed encoder cannot write byte for byte: the driver's hand-made params
/// (`{}` handshake and shutdown, simulate without its two flags) and the unknown method.
const NOT_REFERENCE_HOST_LINES: [&str; 4] = [
    r#""method":"frobnicate""#,
    r#""method":"handshake","params":{}"#,
    r#""method":"shutdown","params":{}"#,
    r#""method":"simulate""#,
];

/// A typed request for a captured line, or a stand-in with the same method and, for a
/// handshake, the same nonce (the reply does not depend on the rest).
fn request_of(line: &str) -> (RequestId, Request) {
    let incoming = Incoming::decode(line.as_bytes()).expect("not blank");
    let id = incoming.id.as_ref().and_then(Value::as_str).and_then(RequestId::parse).expect("captured ids");
    let request = match incoming.request {
        Ok(r) => r,
        Err(RequestError::UnknownMethod(name)) => {
            assert_eq!(name, "frobnicate");
            Request::Doctor
        }
        Err(RequestError::InvalidParams { method: Method::Handshake, .. }) => {
            Request::Handshake(HandshakeRequest::new(ZoneId::new("z:work").expect("zone"), [0; 32], [0; 32]))
        }
        Err(e) => panic!("{line}: {e}"),
    };
    (id, request)
}

/// The result JSON a typed connector would write for `body`; `None` where the loose
/// original is normalised away (a loose simulate verdict).
fn result_json(body: &ReplyBody) -> Option<Value> {
    let typed = |v: Result<Value, serde_json::Error>| Some(v.expect("typed values serialise"));
    match body {
        ReplyBody::Configure(v) | ReplyBody::Doctor(v) | ReplyBody::Unsubscribe(v) | ReplyBody::Shutdown(v) => {
            Some(v.clone())
        }
        ReplyBody::Handshake(Shaped::Typed(h)) => typed(serde_json::to_value(h)),
        ReplyBody::Introspect(Shaped::Typed(i)) => typed(serde_json::to_value(i)),
        ReplyBody::SelfCheck(Shaped::Typed(s)) => typed(serde_json::to_value(s)),
        ReplyBody::Subscribe(Shaped::Typed(s)) => typed(serde_json::to_value(s)),
        ReplyBody::Handshake(Shaped::Loose(v))
        | ReplyBody::Introspect(Shaped::Loose(v))
        | ReplyBody::SelfCheck(Shaped::Loose(v))
        | ReplyBody::Subscribe(Shaped::Loose(v)) => Some(v.clone()),
        ReplyBody::Health(h) => match h.shape {
            Shape::Typed => typed(serde_json::to_value(crate::host::HealthSnapshot {
                status: h.state.clone(),
                uptime_ms: h.uptime_ms.expect("typed health has uptime"),
                load: h.load,
                details: h.details.clone(),
                rate_limit: h.rate_limit.clone(),
            })),
            Shape::Loose => h.details.clone(),
        },
        ReplyBody::Invoke(i) => match i.shape {
            Shape::Typed => typed(serde_json::to_value(&i.response)),
            Shape::Loose => i.response.result.clone(),
        },
        ReplyBody::Simulate(s) => match s.shape {
            Shape::Typed => typed(serde_json::to_value(&s.response)),
            Shape::Loose => None,
        },
    }
}

/// Checks every pair both ways and returns the replies.
fn replay(pairs: &[Pair]) -> Vec<Reply> {
    let mut replies = Vec::new();
    for (sent, received) in pairs {
        let (id, request) = request_of(sent);
        // Host side: our encoding is the reference host's, plus `operation_id`.
        if !NOT_REFERENCE_HOST_LINES.iter().any(|marker| sent.contains(marker)) {
            let ours = String::from_utf8(encode_request(id, &request).expect("encodes")).expect("UTF-8");
            let ours = ours.strip_suffix('\n').expect("one line");
            let expected = match &request {
                Request::Invoke(r) if !sent.contains("operation_id") => {
                    ours.replacen(&format!(r#","operation_id":"{}""#, r.operation), "", 1)
                }
                _ => ours.to_owned(),
            };
            assert_eq!(&expected, sent);
        }
        // Host side: the reply decodes.
        let Value::Object(response) = serde_json::from_str(received).expect("JSON") else { panic!("object") };
        let reply = PendingRequest::new(id, &request).decode(response).expect("accepted");
        assert_eq!(reply.id, id);
        // Connector side: encoding the decoded value gives the captured bytes back.
        let id_json = json!(id.to_string());
        let line = match &reply.outcome {
            Err(failure) => Some(encode_error(Some(&id_json), &failure.error)),
            Ok(body) => result_json(body).map(|v| encode_result(Some(&id_json), v)),
        };
        if let Some(line) = line {
            assert_eq!(String::from_utf8(line).expect("UTF-8"), format!("{received}\n"));
        }
        replies.push(reply);
    }
    replies
}

fn failure_code(reply: &Reply) -> ErrorCode {
    reply.outcome.as_ref().map(|_| ()).expect_err("a failure").code()
}

fn dialect_of(replies: &[Reply]) -> Option<Dialect> {
    let mut d = DialectObserver::default();
    replies.iter().for_each(|r| d.observe(r));
    d.dialect()
}

#[test]
fn hackernews_typed_dialect() {
    let r = replay(&HACKERNEWS);
    assert_eq!(r[0].outcome, Ok(ReplyBody::Configure(json!({"status": "configured"}))));
    let Ok(ReplyBody::Health(h)) = &r[1].outcome else { panic!("{:?}", r[1]) };
    assert_eq!((&h.state, h.uptime_ms, h.shape), (&HealthState::Ready, Some(16), Shape::Typed));
    let Ok(ReplyBody::Introspect(Shaped::Typed(i))) = &r[2].outcome else { panic!("{:?}", r[2]) };
    assert_eq!(i.operations[0].id, "hackernews.item.get");
    assert_eq!(i.operations[0].capability, "hackernews.read");
    assert_eq!(i.operations[0].idempotency, Idempotency::Strict);
    assert_eq!(failure_code(&r[3]), ErrorCode::NOT_HANDSHAKEN);
    let Ok(ReplyBody::Handshake(Shaped::Typed(hs))) = &r[4].outcome else { panic!("{:?}", r[4]) };
    assert_eq!(hs.session_id, "4ac015d0-d332-46c8-b67c-4f05c94a45a0");
    assert_eq!(failure_code(&r[5]), ErrorCode::MISSING_FIELD);
    assert_eq!(failure_code(&r[6]), ErrorCode::ZONE_VIOLATION);
    let Err(zone) = &r[6].outcome else { panic!("failure") };
    assert!(zone.error.message.contains("expected inst_0f84285c-903a-4fdd-a3f2-4d5b88767397"));
    let Ok(ReplyBody::SelfCheck(Shaped::Typed(sc))) = &r[7].outcome else { panic!("{:?}", r[7]) };
    assert_eq!((sc.status, sc.reason_code.as_deref()), (SelfCheckStatus::Degraded, Some("self_check_retryable")));
    assert_eq!(failure_code(&r[8]), ErrorCode::UNKNOWN_METHOD);
    assert_eq!(r[9].outcome, Ok(ReplyBody::Shutdown(json!({"status": "shutdown_accepted"}))));
    assert_eq!(dialect_of(&r), Some(Dialect::Typed));
}

#[test]
fn hackernews_full_invoke_is_an_envelope() {
    let r = replay(&HACKERNEWS_PROXIED);
    assert_eq!(failure_code(&r[0]), ErrorCode::ZONE_VIOLATION);
    let Ok(ReplyBody::Invoke(inv)) = &r[1].outcome else { panic!("{:?}", r[1]) };
    assert_eq!(inv.shape, Shape::Typed);
    assert_eq!(inv.response.id, "req_3");
    assert_eq!(
        inv.response.result.as_ref().map(|v| &v["title"]),
        Some(&json!("My YC app: Dropbox - Throw away your USB drive"))
    );
}

#[test]
fn perplexity_typed_dialect() {
    let r = replay(&PERPLEXITY);
    let Ok(ReplyBody::Handshake(Shaped::Typed(hs))) = &r[1].outcome else { panic!("{:?}", r[1]) };
    assert_eq!(hs.nonce, [6; 32]);
    let Ok(ReplyBody::Invoke(inv)) = &r[2].outcome else { panic!("{:?}", r[2]) };
    assert_eq!((inv.shape, inv.response.result.as_ref().map(|v| &v["model"])), (Shape::Typed, Some(&json!("sonar"))));
    assert_eq!(dialect_of(&r), Some(Dialect::Typed));
}

#[test]
fn tavily_loose_dialect() {
    let r = replay(&TAVILY);
    assert_eq!(failure_code(&r[0]), ErrorCode::NOT_CONFIGURED);
    assert!(matches!(&r[1].outcome, Ok(ReplyBody::Configure(v)) if v["auth_mode"] == "api_key"));
    assert!(matches!(&r[2].outcome, Ok(ReplyBody::Handshake(Shaped::Loose(v))) if v["protocol_version"] == "2.0"));
    let Ok(ReplyBody::Health(h)) = &r[3].outcome else { panic!("{:?}", r[3]) };
    assert_eq!((&h.state, h.shape), (&HealthState::Ready, Shape::Loose));
    let Ok(ReplyBody::Simulate(s)) = &r[4].outcome else { panic!("{:?}", r[4]) };
    assert_eq!((s.shape, s.response.would_succeed, s.response.id.as_str()), (Shape::Loose, true, "sim_1"));
    assert_eq!(r[5].outcome, Ok(ReplyBody::Shutdown(json!({}))));
    assert_eq!(dialect_of(&r), Some(Dialect::Loose));
}

#[test]
fn todoist_loose_dialect_with_bare_results() {
    let r = replay(&TODOIST);
    assert!(matches!(&r[1].outcome, Ok(ReplyBody::Handshake(Shaped::Loose(_)))));
    let Ok(ReplyBody::Health(h)) = &r[2].outcome else { panic!("{:?}", r[2]) };
    assert_eq!(h.state, HealthState::Degraded { reason: "degraded".into() });
    assert_eq!(failure_code(&r[3]), ErrorCode::INVALID_PARAMS);
    let Ok(ReplyBody::Invoke(inv)) = &r[4].outcome else { panic!("{:?}", r[4]) };
    assert_eq!((inv.shape, inv.response.id.as_str()), (Shape::Loose, "req_4"));
    assert_eq!(inv.response.result.as_ref().map(|v| &v["projects"][0]["name"]), Some(&json!("Inbox")));
    assert_eq!(dialect_of(&r), Some(Dialect::Loose));
}

/// The same transcripts through the [`Framer`]: ids come out as captured, every reply
/// matches, nothing poisons, however the bytes are chunked.
#[test]
fn transcripts_through_the_framer() {
    for pairs in [&HACKERNEWS[..], &PERPLEXITY[..], &TAVILY[..], &TODOIST[..]] {
        for chunk in [1, 7, 4096] {
            let mut framer = Framer::new();
            for (sent, received) in pairs {
                let (id, request) = request_of(sent);
                assert_eq!(framer.send(&request).expect("sent").id, id);
                let mut events = Vec::new();
                for piece in format!("{received}\n").as_bytes().chunks(chunk) {
                    events.extend(framer.push(piece));
                }
                assert!(matches!(&events[..], [Event::Reply(r)] if r.id == id), "{sent}: {events:?}");
            }
            assert_eq!(framer.poisoned(), None);
        }
    }
}
