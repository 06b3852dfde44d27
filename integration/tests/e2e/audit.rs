//! `fcp audit verify` against a store edited behind fcpd's back (spec/protocol.md §4):
//! stop fcpd, change the audit table with `Store::tamper_audit`, start fcpd again, and
//! the chain must report the first break with its code.

use fcp_proto::audit::AuditEvent;
use fcp_supervisor::store::Store;
use serde_json::json;

use crate::harness::{Connector, Node};

const ZONE: &str = "z:work";

/// A node whose z:work chain holds install, grant, two invokes (and the
/// `sandbox.degraded` event of the connector's start), and verifies; then `tamper`
/// edits the stored chain while fcpd is stopped. Returns the node, running again.
fn tampered(tamper: impl FnOnce(&Store, &[(u64, AuditEvent, Vec<u8>)])) -> Node {
    let mut node = Node::start();
    node.install(Connector::Typed, ZONE);
    let grant = node.grant(Connector::Typed, ZONE, "echo", &[]);
    for n in 0..2 {
        node.invoke(Connector::Typed, ZONE, "echo", &json!({"n": n}), Some(&grant.token), &[]).expect_code(0);
    }
    let intact = node.audit_verify(ZONE);
    let v = intact.expect_code(0).json();
    assert_eq!(v["ok"], true, "{intact}");
    let events = v["events"].as_u64().expect("events");
    assert!(events >= 4, "{intact}");
    assert_eq!(v["head_seq"].as_u64(), Some(events - 1), "{intact}");

    node.stop();
    {
        let store = Store::open(&node.home.join("state.redb")).expect("open the stopped node's store");
        let rows: Vec<(u64, AuditEvent, Vec<u8>)> = store
            .audit(ZONE, None, usize::MAX)
            .expect("read the chain")
            .into_iter()
            .map(|(seq, bytes)| (seq, AuditEvent::from_cbor(&bytes).expect("a stored event decodes"), bytes))
            .collect();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), (0..events).collect::<Vec<_>>());
        assert_eq!(
            rows[..2].iter().map(|r| r.1.event_type.as_str()).collect::<Vec<_>>(),
            ["connector.install", "capability.grant"]
        );
        tamper(&store, &rows);
    }
    node.run_fcpd();
    node
}

/// `fcp audit verify` exits 1 and names `code`.
#[track_caller]
fn assert_broken(node: &Node, code: &str) {
    let run = node.audit_verify(ZONE);
    let v = run.expect_code(1).json();
    assert_eq!((v["ok"].as_bool(), v["code"].as_str()), (Some(false), Some(code)), "{run}");
}

#[test]
fn audit_verify_catches_an_edited_event() {
    let node = tampered(|store, rows| {
        let (seq, event, _) = rows.iter().find(|r| r.1.event_type == "capability.invoke").expect("an invoke event");
        let mut event = event.clone();
        event.actor = "agent:someone-else".into();
        store.tamper_audit(ZONE, *seq, Some(&event.to_cbor().expect("encode"))).expect("overwrite the event");
    });
    assert_broken(&node, "audit.edited");
}

#[test]
fn audit_verify_catches_a_removed_event() {
    let node = tampered(|store, _| store.tamper_audit(ZONE, 1, None).expect("remove the grant event"));
    assert_broken(&node, "audit.removed");
}

#[test]
fn audit_verify_catches_reordered_events() {
    let node = tampered(|store, rows| {
        store.tamper_audit(ZONE, 1, Some(&rows[2].2)).expect("put event 2 at 1");
        store.tamper_audit(ZONE, 2, Some(&rows[1].2)).expect("put event 1 at 2");
    });
    assert_broken(&node, "audit.reordered");
}

#[test]
fn audit_verify_catches_a_truncated_chain_and_fcpd_appends_nothing_more() {
    let node = tampered(|store, rows| {
        let last = rows.last().expect("a chain").0;
        store.tamper_audit(ZONE, last, None).expect("remove the newest event");
    });
    assert_broken(&node, "audit.truncated");
    // Appending would hide the loss: the zone refuses new events until repaired.
    let refused =
        node.fcp(["grant", "--json", "--zone", ZONE, "--connector", Connector::Typed.id(), "--operation", "echo"], []);
    let v = refused.expect_code(1).json();
    assert_eq!(v["error"]["code"].as_str(), Some("audit.truncated"), "{refused}");
}
