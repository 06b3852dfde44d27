//! The `fcp-attest` binary: `status --json` says whether a TPM answers, `request`
//! without a TPM enrolls as "software" and says so, and the device's three steps run
//! through the binary against a private swtpm while the owner's side runs the library.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{require, Swtpm, TestHome};
use fcp_attest::evidence::{ActivationResponse, CredentialChallenge, EnrollmentRequest};
use fcp_attest::verify::{self, DirNonceStore, Grant, Policy};
use fcp_proto::id::ZoneId;
use rand_core::OsRng;
use serde_json::Value;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn attest(home: &Path, tcti: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fcp-attest"))
        .arg("--home")
        .arg(home)
        .arg("--tcti")
        .arg(tcti)
        .args(args)
        .env_remove("FCP_TCTI")
        .output()
        .expect("run fcp-attest")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// A TCTI nobody listens on.
const DEAD: &str = "swtpm:host=127.0.0.1,port=1";

#[test]
fn without_a_tpm_status_says_so_and_request_enrolls_as_software() {
    let home = TestHome::new("node-a");
    let out = attest(home.path(), DEAD, &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!(v["tpm_present"], Value::Bool(false));
    assert!(v["error"].as_str().is_some_and(|e| e.contains("no TPM")), "{v}");

    let text = attest(home.path(), DEAD, &["status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("no TPM"), "{text:?}");

    let req = home.path().join("req");
    let out = attest(
        home.path(),
        DEAD,
        &["request", "--owner-nonce", &"ab".repeat(32), "--out", req.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("posture \"software\""), "says it plainly: {out:?}");
    let r = EnrollmentRequest::decode(&std::fs::read(&req).expect("read")).expect("decode");
    assert!(r.tpm.is_none());
    assert!(home.key_file("node-signing").exists(), "no TPM: the key files stay");

    let strict = attest(
        home.path(),
        DEAD,
        &[
            "request",
            "--require-tpm",
            "--json",
            "--owner-nonce",
            &"ab".repeat(32),
            "--out",
            req.to_str().expect("utf-8"),
        ],
    );
    assert!(!strict.status.success());
    assert_eq!(json(&strict)["code"], "attest.no_tpm");
}

#[test]
fn the_binary_runs_the_device_side_of_an_enrollment() {
    if !require("the_binary_runs_the_device_side_of_an_enrollment", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let tcti = sim.tcti();
    let home = TestHome::new("node-a");
    let owner_dir = tempfile::tempdir().expect("tempdir");
    let mut nonces = DirNonceStore::open(owner_dir.path()).expect("nonces");
    let t = now();
    let nonce = nonces.issue(&mut OsRng, t, 600).expect("nonce");
    let p = |n: &str| home.path().join(n).to_str().expect("utf-8").to_owned();

    let out = attest(home.path(), &tcti, &["status", "--json"]);
    let v = json(&out);
    assert_eq!(v["tpm_present"], Value::Bool(true), "{v}");
    assert_eq!(v["manufacturer"], "IBM");
    assert_eq!(v["pcrs"].as_array().map(Vec::len), Some(7));

    let out =
        attest(home.path(), &tcti, &["request", "--json", "--owner-nonce", &hex::encode(nonce), "--out", &p("req")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["keys_sealed"], Value::Bool(true));
    let req = EnrollmentRequest::decode(&std::fs::read(p("req")).expect("read")).expect("decode");
    let v = verify::verify_request(req, &mut nonces, &Policy::default(), t).expect("verify");
    let vt = v.tpm.clone().expect("tpm");
    let (challenge, pending) = verify::make_challenge(&v, &vt, &mut OsRng, &Policy::default(), t).expect("challenge");
    std::fs::write(p("chal"), challenge.encode().expect("encode")).expect("write");

    let out = attest(home.path(), &tcti, &["activate", "--json", &p("chal"), "--out", &p("resp")]);
    assert!(out.status.success(), "{out:?}");
    let resp = ActivationResponse::decode(&std::fs::read(p("resp")).expect("read")).expect("decode");
    let grant = Grant {
        allowed_zones: vec![ZoneId::new("z:owner").expect("zone")],
        enrollment_validity_secs: 86_400,
        tags: vec![],
    };
    let g = verify::finish(&pending, &resp, &home.owner, &grant, t).expect("finish");
    std::fs::write(p("grant"), g.encode().expect("encode")).expect("write");

    let owner_hex = hex::encode(home.owner.public().to_bytes());
    let out = attest(home.path(), &tcti, &["install", "--json", &p("grant"), "--owner", &owner_hex]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&attest(home.path(), &tcti, &["status", "--json"]));
    assert_eq!((v["enrolled"].as_bool(), v["keys_sealed"].as_bool()), (Some(true), Some(true)), "{v}");
    assert_eq!(v["keys_unseal"], "ok", "{v}");
    assert_eq!(v["posture"]["hardware_backed"], Value::Bool(true), "{v}");

    // A challenge for another request is refused before the TPM is asked.
    let other = CredentialChallenge { request_id: vec![0; 16], ..challenge };
    std::fs::write(p("chal2"), other.encode().expect("encode")).expect("write");
    let out = attest(home.path(), &tcti, &["activate", "--json", &p("chal2"), "--out", &p("resp2")]);
    assert!(!out.status.success());
    assert_eq!(json(&out)["code"], "attest.state");
}
