//! fcpd gives each connector process its own network whose only way out is the egress
//! proxy: the real `fcp.http` connector, jailed by fcpd, reaches a test "internet"
//! (`support/internet.rs`) only where its operation's `network_constraints` allow, and
//! every decision lands in the audit chain. Root only (skipped, or failing under
//! `FCP_REQUIRE_PRIVILEGED=1`, without it).

use serde_json::{json, Value};

use crate::harness::{Connector, Node};
use crate::internet::{privileged, Internet, UPSTREAM};

const ZONE: &str = "z:work";

/// The test internet has fixed addresses: its tests take turns.
static INTERNET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// fcpd.toml with egress on, in names, a pool and ports of this test's own (`n`), and
/// the test internet's CA as the upstream roots.
fn config(n: u16, ca_file: &std::path::Path) -> String {
    format!(
        "[egress]\nenabled = true\ntag = \"{n}\"\npool = \"10.{}.0.0/24\"\nproxy_port = {}\ndns_port = {}\n\
         upstream_dns = [\"{UPSTREAM}:53\"]\nupstream_ca_file = \"{}\"\n",
        230 + n,
        15_700 + n * 10,
        15_701 + n * 10,
        ca_file.display()
    )
}

/// The http connector's manifest with `http.get` allowed to api.test.example on ports 80
/// (plain HTTP, so no SNI is required) and 8443, its interface hash recomputed.
fn manifest(node: &Node) -> std::path::PathBuf {
    let text = std::fs::read_to_string(Connector::Http.manifest()).expect("http manifest");
    let old = "host_allow = [\"api.github.com\"]\nport_allow = [443]\nrequire_sni = true";
    assert!(text.contains(old), "the http manifest's http.get constraints changed");
    let text =
        text.replacen(old, "host_allow = [\"api.test.example\"]\nport_allow = [80, 8443]\nrequire_sni = false", 1);
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
    let _turn = INTERNET.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let internet = Internet::start("e");
    let ca = tempfile::NamedTempFile::new().expect("ca file");
    std::fs::write(ca.path(), internet.ca_pem()).expect("write ca");
    let mut node = Node::start_with(&config(7, ca.path()));
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

#[test]
fn a_credential_is_injected_toward_its_host_and_the_connector_never_sees_it() {
    if !privileged("a_credential_is_injected_toward_its_host_and_the_connector_never_sees_it") {
        return;
    }
    let _turn = INTERNET.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let internet = Internet::start("c");
    let ca = tempfile::NamedTempFile::new().expect("ca file");
    std::fs::write(ca.path(), internet.ca_pem()).expect("write ca");
    let mut node = Node::start_with(&config(8, ca.path()));
    let manifest = manifest(&node);
    node.install_with(Connector::Http, ZONE, &manifest);

    const SECRET: &str = "ghp_e2e_not_for_the_connector_0123456789";
    let secret = node.home.with_file_name("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("write secret");
    let added = node.fcp(
        ["credential", "add", "--json", "--id", "test-cred-1", "--host", "api.test.example", "--secret-file"],
        [&secret],
    );
    added.expect_code(0);
    let listed = node.fcp(["credential", "list", "--json"], []).expect_code(0).stdout.clone();
    assert!(listed.contains("test-cred-1") && !listed.contains(SECRET), "{listed}");

    let config = json!({ "allow_hosts": ["api.test.example:8443"], "credential_id": "test-cred-1" }).to_string();
    node.fcp(["configure", "--json", "--connector", "fcp.http", "--zone", ZONE, "--config", &config], [])
        .expect_code(0);
    let grant = node.grant(Connector::Http, ZONE, "http.get", &[]);
    let ok = get(&node, &grant.token, "https://api.test.example:8443/user");
    assert_eq!(ok["outcome"]["status"], "ok", "{ok:#}");

    // Upstream got the real credential, and no id header.
    let requests = internet.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let head = requests[0].to_ascii_lowercase();
    assert!(head.contains(&format!("authorization: bearer {}", SECRET.to_ascii_lowercase())), "{head}");
    assert!(!head.contains("x-fcp-credential-id"), "{head}");
    // The server echoes the request head: the connector sees it masked.
    let body = ok["outcome"]["output"]["body"].as_str().unwrap_or_default();
    assert!(body.contains("GET /user HTTP/1.1"), "{body}");
    assert!(!body.contains(SECRET), "the secret reached the connector: {body}");
    assert!(body.contains(&"*".repeat(SECRET.len())), "{body}");
    // Nor is it anywhere in the jail's files.
    let egress_dir = node.home.join("egress");
    for entry in std::fs::read_dir(egress_dir.join("fcp.http@z_work")).expect("egress dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains(SECRET), "{} holds the secret", entry.path().display());
    }

    let events = node.audit_events(ZONE);
    let request = events
        .iter()
        .find(|e| e["event_type"] == "egress.request")
        .unwrap_or_else(|| panic!("an egress.request event: {events:#?}"));
    assert_eq!(request["details"]["decision"], "allow");
    assert!(request["details"]["detail"].as_str().is_some_and(|d| d.contains("credential test-cred-1")), "{request}");
    let all = serde_json::to_string(&events).expect("json");
    assert!(!all.contains(SECRET), "the audit chain holds the secret");
    let owner = node.audit_events("z:owner");
    assert!(owner.iter().any(|e| e["event_type"] == "credential.add" && e["details"]["id"] == "test-cred-1"));
    // A clean stop, so the table goes too.
    node.stop();
}
