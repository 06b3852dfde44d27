//! fcpd gives each connector process its own network whose only way out is the egress
//! proxy: the real `fcp.http` connector, jailed by fcpd, reaches a test "internet"
//! (`support/internet.rs`) only where its operation's `network_constraints` allow, and
//! every decision lands in the audit chain. Root only (skipped, or failing under
//! `FCP_REQUIRE_PRIVILEGED=1`, without it).

use serde_json::{json, Value};

use crate::harness::{Connector, Node};
use crate::internet::{privileged, Internet, UPSTREAM};

const ZONE: &str = "z:work";

/// fcpd.toml with egress on, in names, a pool and ports of this test's own.
fn config() -> String {
    format!(
        "[egress]\nenabled = true\ntag = \"7\"\npool = \"10.238.0.0/24\"\nproxy_port = 15701\ndns_port = 15753\n\
         upstream_dns = [\"{UPSTREAM}:53\"]\n"
    )
}

/// The http connector's manifest with `http.get` allowed to api.test.example on port 80
/// (plain HTTP, so no SNI), its interface hash recomputed.
fn manifest(node: &Node) -> std::path::PathBuf {
    let text = std::fs::read_to_string(Connector::Http.manifest()).expect("http manifest");
    let old = "host_allow = [\"api.github.com\"]\nport_allow = [443]\nrequire_sni = true";
    assert!(text.contains(old), "the http manifest's http.get constraints changed");
    let text = text.replacen(old, "host_allow = [\"api.test.example\"]\nport_allow = [80]\nrequire_sni = false", 1);
    let path = node.home.with_file_name("http-manifest.toml");
    std::fs::write(&path, text).expect("write manifest");
    node.fcp(["manifest", "fix"], [&path]).expect_code(0);
    path
}

fn get(node: &Node, token: &std::path::Path, url: &str) -> Value {
    let input = json!({ "url": url }).to_string();
    let run = node.fcp(
        ["invoke", "http.get", "--json", "--connector", "fcp.http", "--zone", ZONE, "--input", &input, "--token"],
        [&token.to_path_buf()],
    );
    run.json()
}

#[test]
fn a_jailed_connector_reaches_only_what_its_operation_allows_and_every_decision_is_audited() {
    if !privileged("a_jailed_connector_reaches_only_what_its_operation_allows_and_every_decision_is_audited") {
        return;
    }
    let internet = Internet::start("e");
    let mut node = Node::start_with(&config());
    let manifest = manifest(&node);
    node.install_with(Connector::Http, ZONE, &manifest);
    // The connector's own allow list is wider than the manifest's: the proxy is what holds.
    let config = json!({
        "allow_hosts": ["api.test.example", "other.example", "evil.test.example"],
        "allow_plain_http": true,
    })
    .to_string();
    node.fcp(["configure", "--json", "--connector", "fcp.http", "--zone", ZONE, "--config", &config], [])
        .expect_code(0);
    let grant = node.grant(Connector::Http, ZONE, "http.get", &[]);

    let ok = get(&node, &grant.token, "http://api.test.example/hello");
    assert_eq!(ok["outcome"]["status"], "ok", "{ok:#}");
    let body = ok["outcome"]["output"]["body"].as_str().unwrap_or_default();
    assert!(body.starts_with("hello from upstream"), "{body}");
    assert!(body.contains("GET /hello HTTP/1.1"), "{body}");
    assert_eq!(internet.requests().len(), 1);

    // The connector allows other.example; the manifest does not: no name, no connection.
    let denied = get(&node, &grant.token, "http://other.example/");
    assert_ne!(denied["outcome"]["status"], "ok", "{denied:#}");
    assert!(!internet.queried("other.example"), "the responder never forwarded the name");
    assert_eq!(internet.requests().len(), 1, "nothing else reached the internet");

    let status = node.fcp(["egress", "status", "--json"], []).expect_code(0).json();
    let jails = status["jails"].as_array().expect("jails");
    assert_eq!(jails.len(), 1, "{status:#}");
    assert_eq!(jails[0]["connector"], "fcp.http");
    assert!(jails[0]["allowed"].as_u64() >= Some(1), "{status:#}");
    assert_eq!(jails[0]["operation"], Value::Null, "no operation runs between calls");

    let events = node.audit_events(ZONE);
    let egress: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["event_type"].as_str().is_some_and(|t| t.starts_with("egress.")))
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or(""),
                e["details"]["host"].as_str().unwrap_or(""),
                e["details"]["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // The connector may reach the proxy by CONNECT (HTTPS_PROXY, the proxy resolves) or
    // transparently (its own lookup through the responder): either way one allowed
    // connection, and other.example refused at the first of the two it tried.
    assert!(egress.contains(&("egress.connect", "api.test.example", "allowed")), "{egress:?}");
    assert!(
        egress.iter().any(|(_, host, reason)| *host == "other.example" && *reason == "host_not_allowed"),
        "{egress:?}"
    );
    assert!(!egress
        .iter()
        .any(|(t, host, reason)| *t == "egress.connect" && *host == "other.example" && *reason == "allowed"));
    assert!(events
        .iter()
        .filter(|e| e["event_type"] == "egress.connect")
        .all(|e| e["details"]["operation"] == "http.get" && e["connector_id"] == "fcp.http"));
    node.audit_verify(ZONE).expect_code(0);

    // A clean stop leaves no table and no link behind.
    node.stop();
    let tables = std::process::Command::new("nft").args(["list", "tables"]).output().expect("nft");
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("fcp_egress7"), "the table is removed at stop");
    let links = std::fs::read_dir("/sys/class/net").expect("links");
    let left: Vec<String> = links
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fcp7v"))
        .collect();
    assert!(left.is_empty(), "links left: {left:?}");
}
