//! The invoke pipeline (spec/protocol.md §3, spec/agent-api.md): what an allowed call
//! returns, each denial and its reason code, and idempotent retries.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use fcp_proto::cbor;
use fcp_proto::id::ObjectId;
use fcp_proto::object::ObjectHeader;
use fcp_proto::operation::OperationReceipt;
use serde_json::{json, Value};

use crate::harness::{unix_now, Connector, Node, Run};

const ZONE: &str = "z:work";

/// A node with the typed test connector installed in z:work.
fn typed_node() -> Node {
    let node = Node::start();
    node.install(Connector::Typed, ZONE);
    node
}

/// Asserts that `run` is a signed denial with `code` that never reached the connector,
/// and that `fcp explain` reports the same decision; returns the decision record.
#[track_caller]
fn assert_denied(node: &Node, connector: Connector, run: &Run, code: &str) -> Value {
    run.expect_code(1);
    let v = run.json();
    assert_eq!((v["decision"].as_str(), v["reason_code"].as_str()), (Some("deny"), Some(code)), "{run}");
    assert_eq!(v["outcome"], Value::Null, "a denial has no outcome: {run}");
    assert_eq!(
        (v["receipt"]["kind"].as_str(), v["receipt"]["reason_code"].as_str()),
        (Some("DecisionReceipt"), Some(code))
    );
    let id = v["request_id"].as_str().expect("request_id");
    let explained = node.explain(id);
    explained.expect_code(0);
    let e = explained.json();
    assert_eq!(
        (e["request_id"].as_str(), e["decision"].as_str(), e["reason_code"].as_str()),
        (Some(id), Some("deny"), Some(code)),
        "fcp explain disagrees with the invoke answer: {explained}"
    );
    assert!(node.invocations(connector, ZONE).iter().all(|i| i.request_id != id), "the connector ran a denied request");
    let denied: Vec<Value> = node
        .audit_events(ZONE)
        .into_iter()
        .filter(|e| e["event_type"] == "capability.denied" && e["request_id"] == id)
        .collect();
    assert_eq!(denied.len(), 1, "one capability.denied event for {id}");
    assert_eq!(denied[0]["details"]["reason"], code);
    v
}

#[test]
fn allowed_call_returns_the_output_and_a_receipt_signed_by_the_node() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let input = json!({"hello": "world", "nested": [1, "two", {"three": null}]});
    let run = node.invoke(Connector::Typed, ZONE, "echo", &input, Some(&grant.token), &[]);
    run.expect_code(0);
    let v = run.json();
    assert_eq!((v["decision"].as_str(), v["reason_code"].as_str()), (Some("allow"), Some("allow")), "{run}");
    assert_eq!(v["outcome"], json!({"status": "ok", "output": input}));
    assert_eq!(v["replayed"], false);
    let id = v["request_id"].as_str().expect("request_id");

    // The receipt is the node's signature over the request and this very output.
    let receipt = &v["receipt"];
    assert_eq!(
        (receipt["kind"].as_str(), receipt["executed_by"].as_str()),
        (Some("OperationReceipt"), Some("node-e2e"))
    );
    let bytes = hex::decode(receipt["cbor"].as_str().expect("receipt cbor")).expect("receipt cbor is hex");
    let decoded: OperationReceipt<ObjectHeader> =
        cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 20)).expect("the receipt decodes");
    let home = fcp_supervisor::home::Home::load(&node.home).expect("load the home");
    assert_eq!(receipt["signer_kid"].as_str(), Some(home.node.signing.kid().to_string().as_str()));
    decoded.verify(home.node.signing.public().as_dalek()).expect("the receipt verifies under the node signing key");
    let output_bytes = serde_json::to_vec(&input).expect("encode the output");
    assert_eq!(decoded.outcome_object_ids, vec![ObjectId::unscoped(&output_bytes)], "the receipt names the output");
    assert_eq!(hex::encode(decoded.signature), receipt["signature"].as_str().expect("signature"));

    // fcp explain tells the same story, and the connector ran exactly this request once.
    let explained = node.explain(id);
    explained.expect_code(0);
    let e = explained.json();
    assert_eq!((&e["decision"], &e["outcome"], &e["receipt"]), (&v["decision"], &v["outcome"], &v["receipt"]));
    let ran: Vec<_> =
        node.invocations(Connector::Typed, ZONE).into_iter().map(|i| (i.operation, i.request_id)).collect();
    assert_eq!(ran, vec![("echo".to_owned(), id.to_owned())]);
    let invoked: Vec<Value> =
        node.audit_events(ZONE).into_iter().filter(|e| e["event_type"] == "capability.invoke").collect();
    assert_eq!(invoked.len(), 1);
    assert_eq!((invoked[0]["request_id"].as_str(), invoked[0]["seq"].as_u64()), (Some(id), v["audit_seq"].as_u64()));
}

#[test]
fn no_token_is_token_missing() {
    let node = typed_node();
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), None, &[]);
    assert_denied(&node, Connector::Typed, &run, "token.missing");
}

#[test]
fn expired_token_is_token_expired() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &["--ttl", "1s"]);
    // fcpd judges `now >= exp` in whole seconds: wait until that holds, no longer.
    while unix_now() < grant.expires_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&grant.token), &[]);
    assert_denied(&node, Connector::Typed, &run, "token.expired");
}

#[test]
fn token_of_another_zone_is_token_wrong_zone() {
    let node = typed_node();
    node.install(Connector::Typed, "z:private");
    let private = node.grant(Connector::Typed, "z:private", "echo", &[]);
    // The token is good where it was issued...
    node.invoke(Connector::Typed, "z:private", "echo", &json!({}), Some(&private.token), &[]).expect_code(0);
    // ...and nowhere else.
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&private.token), &[]);
    assert_denied(&node, Connector::Typed, &run, "token.wrong_zone");
}

#[test]
fn token_for_another_operation_is_token_wrong_operation() {
    let node = typed_node();
    let echo = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let run = node.invoke(Connector::Typed, ZONE, "crash", &json!({}), Some(&echo.token), &[]);
    assert_denied(&node, Connector::Typed, &run, "token.wrong_operation");
}

#[test]
fn revoked_token_is_token_revoked() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&grant.token), &[]).expect_code(0);
    let revoke = node.fcp(["revoke", "--json", "--zone", ZONE, "--token-id", &grant.jti, "--reason", "e2e test"], []);
    assert_eq!(revoke.expect_code(0).json()["zone"], ZONE, "{revoke}");
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&grant.token), &[]);
    assert_denied(&node, Connector::Typed, &run, "token.revoked");
}

#[test]
fn token_with_a_flipped_signature_byte_is_token_bad_signature() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(&grant.token).expect("read the token");
    let mut token = b64.decode(text.trim()).expect("the token file is base64");
    // A COSE_Sign1 ends with its 64-byte signature.
    *token.last_mut().expect("a token has bytes") ^= 0x01;
    let forged = grant.token.with_extension("forged");
    std::fs::write(&forged, b64.encode(&token)).expect("write the forged token");
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&forged), &[]);
    assert_denied(&node, Connector::Typed, &run, "token.bad_signature");
}

#[test]
fn input_violating_the_input_schema_is_input_schema() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    // echo's input_schema is {type = "object"}.
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!([1, 2, 3]), Some(&grant.token), &[]);
    assert_denied(&node, Connector::Typed, &run, "input.schema");
}

#[test]
fn risky_operation_needs_a_declared_intent() {
    let node = Node::start();
    node.install(Connector::TypedRisky, ZONE);
    let grant = node.grant(Connector::TypedRisky, ZONE, "echo", &[]);
    let without = node.invoke(Connector::TypedRisky, ZONE, "echo", &json!({"a": 1}), Some(&grant.token), &[]);
    let denied = assert_denied(&node, Connector::TypedRisky, &without, "intent.missing");
    assert_eq!(denied["inputs"]["safety_tier"], "risky");

    let with = node.invoke(Connector::TypedRisky, ZONE, "echo", &json!({"a": 1}), Some(&grant.token), &["--intent"]);
    with.expect_code(0);
    let v = with.json();
    assert_eq!((v["decision"].as_str(), &v["outcome"]), (Some("allow"), &json!({"status": "ok", "output": {"a": 1}})));
    let id = v["request_id"].as_str().expect("request_id");
    let events: Vec<String> = node
        .audit_events(ZONE)
        .into_iter()
        .filter(|e| e["request_id"] == id)
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(events, ["operation.intent", "capability.invoke"], "the intent is audited before the call");
}

/// Invokes echo with an idempotency key; returns the decision record.
fn echo_with_key(node: &Node, token: &Path, input: &Value, key: &str) -> Value {
    let run = node.invoke(Connector::Typed, ZONE, "echo", input, Some(token), &["--idempotency-key", key]);
    run.expect_code(0);
    run.json()
}

#[test]
fn idempotent_retry_replays_the_first_decision_without_running_the_connector_again() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let input = json!({"order": 66});
    let first = echo_with_key(&node, &grant.token, &input, "k-1");
    let retry = echo_with_key(&node, &grant.token, &input, "k-1");
    let id = first["request_id"].as_str().expect("request_id");
    assert_eq!((first["replayed"].as_bool(), retry["replayed"].as_bool()), (Some(false), Some(true)));
    assert_eq!(retry["request_id"], first["request_id"]);
    assert_eq!((&retry["outcome"], &retry["receipt"]), (&first["outcome"], &first["receipt"]));

    let ran: Vec<String> = node.invocations(Connector::Typed, ZONE).into_iter().map(|i| i.request_id).collect();
    assert_eq!(ran, vec![id.to_owned()], "the connector ran once");
    let invoked = |events: &[Value], id: &str| {
        events.iter().filter(|e| e["event_type"] == "capability.invoke" && e["request_id"] == id).count()
    };
    assert_eq!(invoked(&node.audit_events(ZONE), id), 1, "one capability.invoke event");

    // Another key is another request.
    let other = echo_with_key(&node, &grant.token, &input, "k-2");
    assert_eq!(other["replayed"], false);
    assert_ne!(other["request_id"], first["request_id"]);
    assert_eq!(node.invocations(Connector::Typed, ZONE).len(), 2);
}

#[test]
fn idempotency_key_is_no_way_around_the_token() {
    let node = typed_node();
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let input = json!({"only": "for agent:local"});
    let first = echo_with_key(&node, &grant.token, &input, "k-1");

    // Without a token, the key of an earlier call is denied like any tokenless call.
    let bare = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), None, &["--idempotency-key", "k-1"]);
    assert_denied(&node, Connector::Typed, &bare, "token.missing");
    assert!(!bare.stdout.contains("for agent:local"), "a denial leaks the cached output: {bare}");

    // Another principal, with a token of its own, does not get agent:local's answer.
    let other = node.grant(Connector::Typed, ZONE, "echo", &["--principal", "agent:other"]);
    let theirs =
        node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&other.token), &["--idempotency-key", "k-1"]);
    assert_eq!(theirs.expect_code(2).json()["error"]["code"], "request.idempotency_conflict", "{theirs}");
    assert!(!theirs.stdout.contains("for agent:local"), "{theirs}");

    // Neither took the key over: the token holder's retry still replays the first call.
    let retry = echo_with_key(&node, &grant.token, &input, "k-1");
    assert_eq!((retry["replayed"].as_bool(), &retry["request_id"]), (Some(true), &first["request_id"]));
    assert_eq!(node.invocations(Connector::Typed, ZONE).len(), 1, "the connector ran once");
}
