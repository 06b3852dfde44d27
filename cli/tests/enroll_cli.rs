//! `fcp enroll`: the owner's side of enrollment through the real binary, against a
//! device (fcp-attest's library) on a private swtpm: the full round, a replayed
//! request, a guessed activation answer, and a device without a TPM.

#[path = "../../attest/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{require, Swtpm, TestHome};
use fcp_attest::device::{self, RequestOptions};
use fcp_attest::evidence::{ActivationResponse, CredentialChallenge, EnrollmentGrant};
use fcp_attest::tpm::tss::TssTpm;
use fcp_attest::verify::DEFAULT_PCRS;
use fcp_proto::keys::PostureKind;
use rand_core::OsRng;
use serde_json::Value;

fn fcp(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fcp"))
        .args(["enroll"])
        .args(args)
        .arg("--home")
        .arg(home)
        .output()
        .expect("run fcp")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn nonce(home: &Path) -> [u8; 32] {
    let out = fcp(home, &["nonce", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let mut n = [0u8; 32];
    hex::decode_to_slice(json(&out)["nonce"].as_str().expect("nonce"), &mut n).expect("hex");
    n
}

/// The owner's home: `fcp enroll` reads `HOME/keys/owner.key` (fcpd's key file format).
fn owner_home(device: &TestHome) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("keys")).expect("keys");
    let p = dir.path().join("keys").join("owner.key");
    std::fs::write(&p, format!("fcp-key-v1\n{}\n", hex::encode(*device.owner.to_seed()))).expect("owner key");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    dir
}

#[test]
fn fcp_enroll_verifies_challenges_and_issues_the_posture() {
    if !require("fcp_enroll_verifies_challenges_and_issues_the_posture", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let device_home = TestHome::new("node-laptop");
    let owner = owner_home(&device_home);
    let o = owner.path();
    let f = |n: &str| o.join(n).to_str().expect("utf-8").to_owned();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let opts = RequestOptions { tcti: sim.tcti(), pcrs: DEFAULT_PCRS.to_vec(), seal: true, seal_pcrs: Vec::new() };

    let req = device::request(device_home.path(), Some(&mut tpm), nonce(o), &opts, &mut OsRng, now()).expect("request");
    std::fs::write(f("req"), req.encode().expect("encode")).expect("write");
    let out = fcp(o, &["verify", "--json", &f("req"), "--out", &f("chal")]);
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    assert_eq!((v["posture"].as_str(), v["next"].as_str()), (Some("tpm"), Some("activate")), "{v}");

    let replay = fcp(o, &["verify", "--json", &f("req"), "--out", &f("chal-again")]);
    assert_eq!(replay.status.code(), Some(1));
    assert_eq!(json(&replay)["code"], "attest.nonce_used");

    let challenge = CredentialChallenge::decode(&std::fs::read(f("chal")).expect("read")).expect("decode");
    let resp = device::activate(device_home.path(), &mut tpm, &challenge).expect("activate");
    std::fs::write(f("resp"), resp.encode().expect("encode")).expect("write");
    let out = fcp(o, &["finish", "--json", &f("resp"), "--out", &f("grant")]);
    assert!(out.status.success(), "{out:?}");
    let g = EnrollmentGrant::decode(&std::fs::read(f("grant")).expect("read")).expect("grant");
    let p = g.attestation.posture.clone().expect("posture");
    assert_eq!((p.kind, p.hardware_backed, p.tpm_manufacturer.as_deref()), (PostureKind::Tpm, true, Some("IBM")));
    g.attestation.verify(&device_home.owner.public(), now()).expect("owner-signed");
    device::install(device_home.path(), &g, Some(&device_home.owner.public()), now()).expect("install");

    // The challenge is spent: the same response again finds nothing pending.
    let again = fcp(o, &["finish", "--json", &f("resp"), "--out", &f("grant2")]);
    assert_eq!(json(&again)["code"], "attest.unknown_request");

    // A new round answered with a guessed secret is refused, and spends the challenge.
    let req = device::request(device_home.path(), Some(&mut tpm), nonce(o), &opts, &mut OsRng, now()).expect("request");
    std::fs::write(f("req3"), req.encode().expect("encode")).expect("write");
    assert!(fcp(o, &["verify", &f("req3"), "--out", &f("chal3")]).status.success());
    let (keys, _) = device::load_node_keys(device_home.path(), Some(&mut tpm)).expect("keys");
    let mut guess = ActivationResponse { request_id: req.request_id.clone(), secret: vec![7; 32], signature: vec![] };
    guess.sign(&keys.signing).expect("sign");
    std::fs::write(f("resp3"), guess.encode().expect("encode")).expect("write");
    let out = fcp(o, &["finish", "--json", &f("resp3"), "--out", &f("grant3")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["code"], "attest.activation_failed");
}

#[test]
fn a_device_without_a_tpm_is_enrolled_as_software() {
    let device_home = TestHome::new("node-phone");
    let owner = owner_home(&device_home);
    let o = owner.path();
    let opts = RequestOptions { tcti: String::new(), pcrs: DEFAULT_PCRS.to_vec(), seal: true, seal_pcrs: Vec::new() };
    let req = device::request(device_home.path(), None, nonce(o), &opts, &mut OsRng, now()).expect("request");
    let path = o.join("req");
    std::fs::write(&path, req.encode().expect("encode")).expect("write");
    let grant = o.join("grant");
    let out = fcp(o, &["verify", "--json", path.to_str().expect("utf-8"), "--out", grant.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["posture"], "software");
    let g = EnrollmentGrant::decode(&std::fs::read(&grant).expect("read")).expect("grant");
    let p = g.attestation.posture.expect("posture");
    assert_eq!((p.kind, p.hardware_backed), (PostureKind::Software, false));
}
