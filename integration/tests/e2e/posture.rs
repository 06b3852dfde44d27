//! Zones that require hardware-backed keys and the node's TPM posture (spec/attest.md §5):
//! z:owner refuses a node that never enrolled, while z:work serves it; after an
//! enrollment against a real swtpm, fcpd unseals its keys from the TPM and z:owner takes
//! a connector; a cleared TPM stops fcpd with exit 78 (no restart loop) and a missing
//! one with an ordinary failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fcp_attest::device::{self, RequestOptions};
use fcp_attest::tpm::tss::TssTpm;
use fcp_attest::verify::{self, DirNonceStore, Grant, Policy, DEFAULT_PCRS};
use fcp_proto::id::ZoneId;
use rand_core::OsRng;
use serde_json::json;

use crate::bins::bins;
use crate::harness::{unix_now, Connector, Node};

/// A private swtpm on free ports of 127.0.0.1; killed on drop.
struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// `None` (and a visible skip) without swtpm, unless FCP_REQUIRE_PRIVILEGED=1.
    fn start(test: &str) -> Option<Swtpm> {
        let have =
            |t: &str| Command::new(t).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !have("swtpm") || !have("tpm2_clear") {
            assert!(
                std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{test}: swtpm and tpm2-tools are required here (scripts/setup.sh)"
            );
            eprintln!("SKIPPED {test}: swtpm or tpm2-tools not installed (scripts/setup.sh installs them)");
            return None;
        }
        for _ in 0..5 {
            let state = tempfile::tempdir().expect("tempdir");
            let port = (0..200)
                .find_map(|_| {
                    let p = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
                    (p < 65535 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()).then_some(p)
                })
                .expect("free ports");
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn swtpm");
            let mut s = Swtpm { child, port, _state: state };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(s);
                }
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("swtpm did not start");
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The typed test connector's manifest, allowed into z:owner as well.
fn owner_manifest(dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(Connector::Typed.manifest()).expect("manifest");
    let text = text.replace(
        r#"allowed_targets = ["z:work", "z:private"]"#,
        r#"allowed_targets = ["z:work", "z:private", "z:owner"]"#,
    );
    assert!(text.contains("\"z:owner\""), "the manifest's allowed_targets line changed");
    let p = dir.join("fcp-test-typed-owner.toml");
    std::fs::write(&p, text).expect("write manifest");
    p
}

/// `fcpd run` on `node`'s home, expected to exit by itself: its code and log.
fn fcpd_exit(node: &Node) -> (Option<i32>, String) {
    let out = Command::new(&bins().fcpd)
        .arg("run")
        .arg("--home")
        .arg(&node.home)
        .arg("--socket")
        .arg(node.home.join("probe.sock"))
        .arg("--allow-degraded-sandbox")
        .stdin(Stdio::null())
        .output()
        .expect("run fcpd");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn z_owner_refuses_a_node_without_a_tpm_posture_and_z_work_serves_it() {
    let node = Node::start();
    let status = node.fcp(["status", "--json"], []);
    status.expect_code(0);
    assert_eq!(status.json()["hardware_posture"]["valid"], json!(false), "{status}");

    let token = node.home.join("owner-token");
    let grant = node.fcp(
        ["grant", "--json", "--zone", "z:owner", "--connector", "fcp.test.typed", "--operation", "echo", "--out"],
        [&token],
    );
    assert_ne!(grant.code(), Some(0), "z:owner granted a token to a node without posture: {grant}");
    assert!(
        grant.stdout.contains("zone.hardware_required") || grant.stderr.contains("zone.hardware_required"),
        "{grant}"
    );
    assert!(
        grant.stdout.contains("fcp-attest request") || grant.stderr.contains("fcp-attest request"),
        "names the way out: {grant}"
    );

    let call = node.invoke(Connector::Typed, "z:owner", "echo", &json!({"x": 1}), None, &[]);
    call.expect_code(1);
    assert_eq!(call.json()["reason_code"], json!("zone.hardware_required"), "{call}");

    // A zone that does not require hardware is untouched.
    node.install(Connector::Typed, "z:work");
    let g = node.grant(Connector::Typed, "z:work", "echo", &[]);
    let ok = node.invoke(Connector::Typed, "z:work", "echo", &json!({"x": 1}), Some(&g.token), &[]);
    ok.expect_code(0);
}

#[test]
fn an_enrolled_node_serves_z_owner_and_a_cleared_tpm_stops_fcpd_without_a_loop() {
    let Some(sim) = Swtpm::start("an_enrolled_node_serves_z_owner_and_a_cleared_tpm_stops_fcpd_without_a_loop") else {
        return;
    };
    let mut node = Node::start();
    let owner_dir = tempfile::tempdir().expect("tempdir");
    let now = unix_now();
    {
        // The device and the owner are the same machine here: fcpd's home holds both.
        let home = node.home.clone();
        let mut tpm = TssTpm::open(&sim.tcti()).expect("open swtpm");
        let owner = device::owner_key(&home).expect("owner key");
        let mut nonces = DirNonceStore::open(owner_dir.path()).expect("nonces");
        let nonce = nonces.issue(&mut OsRng, now, 600).expect("nonce");
        let opts = RequestOptions { tcti: sim.tcti(), pcrs: DEFAULT_PCRS.to_vec(), seal: true, seal_pcrs: Vec::new() };
        let req = device::request(&home, Some(&mut tpm), nonce, &opts, &mut OsRng, now).expect("request");
        let v = verify::verify_request(req, &mut nonces, &Policy::default(), now).expect("verify");
        let t = v.tpm.clone().expect("tpm");
        let (c, p) = verify::make_challenge(&v, &t, &mut OsRng, &Policy::default(), now).expect("challenge");
        let r = device::activate(&home, &mut tpm, &c).expect("activate");
        let grant = Grant {
            allowed_zones: vec![ZoneId::new("z:owner").expect("zone")],
            enrollment_validity_secs: 86_400,
            tags: vec!["e2e".into()],
        };
        let g = verify::finish(&p, &r, &owner, &grant, now).expect("finish");
        device::install(&home, &g, Some(&owner.public()), now).expect("install");
        assert!(!home.join("keys").join("node-signing.key").exists(), "the plaintext node key is gone");
    }
    node.stop();
    node.run_fcpd();
    let status = node.fcp(["status", "--json"], []);
    status.expect_code(0);
    let posture = &status.json()["hardware_posture"];
    assert_eq!(posture["valid"], json!(true), "{status}");
    assert_eq!(posture["posture"]["tpm_manufacturer"], json!("IBM"), "{status}");

    node.install_with(Connector::Typed, "z:owner", &owner_manifest(owner_dir.path()));
    let g = node.grant(Connector::Typed, "z:owner", "echo", &[]);
    let ok = node.invoke(Connector::Typed, "z:owner", "echo", &json!({"x": 2}), Some(&g.token), &[]);
    ok.expect_code(0);
    node.stop();

    let out =
        Command::new("tpm2_clear").args(["-c", "p"]).env("TPM2TOOLS_TCTI", sim.tcti()).output().expect("tpm2_clear");
    assert!(out.status.success(), "tpm2_clear: {}", String::from_utf8_lossy(&out.stderr));
    let (code, log) = fcpd_exit(&node);
    assert_eq!(code, Some(78), "a cleared TPM is permanent: exit 78, which the unit does not restart\n{log}");
    assert!(log.contains("cleared") && log.contains("re-enroll"), "{log}");

    drop(sim);
    let (code, log) = fcpd_exit(&node);
    assert_eq!(code, Some(1), "a TPM that does not answer may come back: an ordinary failure\n{log}");
    assert!(log.contains("no TPM"), "{log}");
}
