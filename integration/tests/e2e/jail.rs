//! fcpd starts every connector in the Linux jail, and audits what ends one: the host's
//! view of a connector process that fcpd started, and a limit breach in the audit chain.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{jailed_fully, Connector, Node};

const ZONE: &str = "z:work";

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("{key} in /proc/PID/status"))
        .trim()
        .to_owned()
}

fn running_pid(node: &Node) -> u64 {
    let listed = node.fcp(["list", "--json"], []).expect_code(0).json();
    listed["connectors"][0]["pid"].as_u64().expect("the running instance's host pid")
}

#[test]
fn fcpd_starts_connectors_in_the_jail_with_every_layer() {
    if !jailed_fully() {
        eprintln!("SKIPPED fcpd_starts_connectors_in_the_jail_with_every_layer: needs root");
        return;
    }
    let node = Node::start();
    node.install(Connector::Typed, ZONE);
    let echo = node.grant(Connector::Typed, ZONE, "echo", &[]);
    node.invoke(Connector::Typed, ZONE, "echo", &json!({"in": "jail"}), Some(&echo.token), &[]).expect_code(0);
    let pid = running_pid(&node);

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the connector's status");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2", "a seccomp filter is installed");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, set), "0000000000000000", "{set}");
    }
    assert_eq!(status_field(&status, "NSpid").split_whitespace().last(), Some("1"), "pid 1 of its namespace");
    for ns in ["pid", "net", "mnt", "ipc", "uts", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("their namespace");
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("our namespace");
        assert_ne!(theirs, ours, "{ns} namespace");
    }
    let uid = status_field(&status, "Uid");
    assert!(uid.split_whitespace().all(|u| u == "65534"), "unprivileged: {uid}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(cgroup.contains("/fcp-"), "its own cgroup: {cgroup}");

    let events = node.audit_events(ZONE);
    assert!(
        !events.iter().any(|e| e["event_type"] == "sandbox.degraded"),
        "no layer was missing, so nothing was degraded"
    );
}

#[test]
fn a_connector_past_its_wall_clock_is_recycled_and_the_breach_audited() {
    let node = Node::start();
    let text = std::fs::read_to_string(Connector::Typed.manifest()).expect("manifest");
    let text = text.replace("wall_clock_timeout_ms = 10000", "wall_clock_timeout_ms = 1500");
    assert!(text.contains("wall_clock_timeout_ms = 1500"));
    let manifest = node.home.with_file_name("short-wall-clock.toml");
    std::fs::write(&manifest, text).expect("write manifest");
    node.install_with(Connector::Typed, ZONE, &manifest);
    let echo = node.grant(Connector::Typed, ZONE, "echo", &[]);
    node.invoke(Connector::Typed, ZONE, "echo", &json!({}), Some(&echo.token), &[]).expect_code(0);

    let deadline = Instant::now() + Duration::from_secs(10);
    let breach = loop {
        let events = node.audit_events(ZONE);
        if let Some(e) = events.into_iter().find(|e| e["event_type"] == "sandbox.breach") {
            break e;
        }
        assert!(Instant::now() < deadline, "no sandbox.breach within 10 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(breach["details"]["limit"], "wall_clock", "{breach}");
    assert_eq!(breach["connector_id"], "fcp.test.typed");
    assert!(breach["details"]["reason"].as_str().is_some_and(|r| r.contains("wall-clock")), "{breach}");
    assert_eq!(node.audit_verify(ZONE).code(), Some(0), "the chain stays whole");

    // The next call starts a fresh process.
    let after = loop {
        let run = node.invoke(Connector::Typed, ZONE, "echo", &json!({"n": 2}), Some(&echo.token), &[]);
        let v: Value = run.json();
        if v["outcome"]["status"] == "ok" {
            break v;
        }
        assert!(Instant::now() < deadline + Duration::from_secs(10), "no call succeeded after the recycle: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = node.invocations(Connector::Typed, ZONE);
    let first = &log[0].process;
    let later = log.iter().find(|i| after["request_id"] == i.request_id.as_str()).expect("the later call");
    assert_ne!(&later.process, first, "a new process served the call after the recycle");
}
