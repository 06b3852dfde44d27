//! Connectors under fcpd: each reply dialect of host-protocol §9 through the whole
//! pipeline, a connector that dies mid-call, and one that outlives the 10 s call timeout
//! (host-protocol §1).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Connector, Node, Run};

const ZONE: &str = "z:work";

/// Installs `connector`, grants echo and calls it: the output comes back unchanged with
/// a receipt, and the connector ran the request once.
fn echo_through_the_pipeline(connector: Connector) {
    let node = Node::start();
    node.install(connector, ZONE);
    let grant = node.grant(connector, ZONE, "echo", &[]);
    for input in [json!({"hello": "world"}), json!({"nested": {"list": [1, 2.5, "three", null, true]}})] {
        let run = node.invoke(connector, ZONE, "echo", &input, Some(&grant.token), &[]);
        run.expect_code(0);
        let v = run.json();
        assert_eq!(v["outcome"], json!({"status": "ok", "output": input}), "{run}");
        assert_eq!(v["receipt"]["kind"], "OperationReceipt");
        let id = v["request_id"].as_str().expect("request_id");
        assert_eq!(node.invocations(connector, ZONE).iter().filter(|i| i.request_id == id).count(), 1);
    }
    assert_eq!(node.audit_verify(ZONE).expect_code(0).json()["ok"], true);
}

#[test]
fn typed_dialect_answers_echo_through_the_pipeline() {
    echo_through_the_pipeline(Connector::Typed);
}

#[test]
fn mixed_dialect_answers_echo_through_the_pipeline() {
    echo_through_the_pipeline(Connector::Mixed);
}

#[test]
fn loose_dialect_answers_echo_through_the_pipeline() {
    echo_through_the_pipeline(Connector::Loose);
}

#[test]
fn connector_refusing_its_configure_is_not_started() {
    let node = Node::start();
    node.install(Connector::Typed, ZONE);
    let echo = node.grant(Connector::Typed, ZONE, "echo", &[]);
    let configure = |config: &str| {
        let args = ["configure", "--json", "--connector", Connector::Typed.id(), "--zone", ZONE, "--config", config];
        node.fcp(args, []).expect_code(0);
    };
    // fcp-test-typed takes no config; fcpd stores it and sends it at the next start.
    configure(r#"{"colour": "blue"}"#);
    let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&echo.token), &[]);
    assert_eq!(failure_code(&run), "connector.handshake_failed");
    let message = run.json()["outcome"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("configure: FCP-1003"), "the start failed on the refused configure: {message}");
    assert_eq!(node.invocations(Connector::Typed, ZONE), [], "a connector whose configure failed ran nothing");

    configure("{}");
    let ok = node.invoke(Connector::Typed, ZONE, "echo", &json!({"configured": true}), Some(&echo.token), &[]);
    assert_eq!(ok.expect_code(0).json()["outcome"]["output"], json!({"configured": true}));
}

/// The outcome code of an allowed call that failed.
#[track_caller]
fn failure_code(run: &Run) -> String {
    run.expect_code(1);
    let v = run.json();
    assert_eq!((v["decision"].as_str(), v["outcome"]["status"].as_str()), (Some("allow"), Some("error")), "{run}");
    assert_eq!(v["receipt"], Value::Null, "a failed call has no receipt: {run}");
    v["outcome"]["code"].as_str().expect("outcome code").to_owned()
}

/// Calls echo until fcpd's restart backoff after a crash has passed (each refusal in
/// between is `connector.backoff`); returns the successful decision record.
fn echo_after_backoff(node: &Node, connector: Connector, token: &std::path::Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let run = node.invoke(connector, ZONE, "echo", &json!({"after": "restart"}), Some(token), &[]);
        if run.code() == Some(0) {
            return run.json();
        }
        assert_eq!(failure_code(&run), "connector.backoff", "only the restart backoff may refuse: {run}");
        assert!(Instant::now() < deadline, "the connector did not come back: {run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `crash` kills the connector process mid-call: the call fails with
/// `connector.crashed`, and a new process serves the next call.
fn crash_then_recover(connector: Connector) {
    let node = Node::start();
    node.install(connector, ZONE);
    let echo = node.grant(connector, ZONE, "echo", &[]);
    let crash = node.grant(connector, ZONE, "crash", &[]);
    node.invoke(connector, ZONE, "echo", &json!({"before": "crash"}), Some(&echo.token), &[]).expect_code(0);

    let run = node.invoke(connector, ZONE, "crash", &json!({}), Some(&crash.token), &[]);
    assert_eq!(failure_code(&run), "connector.crashed");
    let crashed_id = run.json()["request_id"].as_str().expect("request_id").to_owned();
    let explained = node.explain(&crashed_id);
    assert_eq!(explained.expect_code(0).json()["outcome"]["code"], "connector.crashed");

    let after = echo_after_backoff(&node, connector, &echo.token);
    assert_eq!(after["outcome"], json!({"status": "ok", "output": {"after": "restart"}}));
    let log = node.invocations(connector, ZONE);
    let process_of = |id: &str| log.iter().find(|i| i.request_id == id).map(|i| i.process.clone());
    let crashed = process_of(&crashed_id).expect("the crash call reached the connector");
    let after = process_of(after["request_id"].as_str().expect("request_id")).expect("the next call ran");
    assert_eq!(log[0].process, crashed, "the crash hit the process that served the first call");
    assert_ne!(after, crashed, "a new process serves the call after the crash");
    let events = node.audit_events(ZONE);
    let failed: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "capability.invoke_failed").collect();
    assert!(failed
        .iter()
        .any(|e| e["request_id"] == crashed_id.as_str() && e["details"]["error"] == "connector.crashed"));
}

#[test]
fn typed_connector_crashing_mid_call_is_connector_crashed_and_restarts() {
    crash_then_recover(Connector::Typed);
}

#[test]
fn mixed_connector_crashing_mid_call_is_connector_crashed_and_restarts() {
    crash_then_recover(Connector::Mixed);
}

#[test]
fn loose_connector_crashing_mid_call_is_connector_crashed_and_restarts() {
    crash_then_recover(Connector::Loose);
}

#[test]
fn call_outliving_the_timeout_is_connector_timeout_and_a_new_process_takes_over() {
    let node = Node::start();
    node.install(Connector::Typed, ZONE);
    let slow = node.grant(Connector::Typed, ZONE, "slow", &[]);
    let echo = node.grant(Connector::Typed, ZONE, "echo", &[]);
    node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&echo.token), &[]).expect_code(0);
    let listed = node.fcp(["list", "--json"], []).expect_code(0).json();
    let stuck_pid = listed["connectors"][0]["pid"].as_u64().expect("the running instance's host pid");
    let started = Instant::now();
    let run = node.invoke(Connector::Typed, ZONE, "slow", &json!({}), Some(&slow.token), &[]);
    let took = started.elapsed();
    assert_eq!(failure_code(&run), "connector.timeout");
    // host-protocol §1: 10 s, not the 15 s the connector would have needed.
    assert!((Duration::from_secs(10)..Duration::from_secs(14)).contains(&took), "the call took {took:?}");

    let after = echo_after_backoff(&node, Connector::Typed, &echo.token);
    let log = node.invocations(Connector::Typed, ZONE);
    let slow = log.iter().find(|i| i.operation == "slow").map(|i| i.process.clone()).expect("slow reached it");
    let after = log.iter().find(|i| after["request_id"] == i.request_id.as_str()).map(|i| i.process.clone());
    assert!(after.is_some_and(|p| p != slow), "the stuck process was replaced: {log:?}");
    assert!(!std::path::Path::new(&format!("/proc/{stuck_pid}")).exists(), "fcpd killed the stuck process");
}
