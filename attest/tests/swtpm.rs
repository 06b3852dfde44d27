//! Enrollment against a real TPM simulator: each test starts its own swtpm.

mod common;

use common::{require, tpm2, Swtpm, TestHome};
use fcp_attest::device::{self, KeySource, RequestOptions};
use fcp_attest::evidence::{ActivationResponse, EnrollmentRequest, PcrValue, TpmEvidence};
use fcp_attest::tpm::tss::TssTpm;
use fcp_attest::tpm::Tpm;
use fcp_attest::verify::{self, DirNonceStore, Grant, Policy, DEFAULT_PCRS};
use fcp_attest::wire::PcrSelection;
use fcp_proto::id::ZoneId;
use fcp_proto::keys::{NodeKeys, PostureKind};
use rand_core::OsRng;

const NOW: u64 = 1_800_000_000;

fn opts(tcti: &str) -> RequestOptions {
    RequestOptions { tcti: tcti.to_owned(), pcrs: DEFAULT_PCRS.to_vec(), seal: true, seal_pcrs: Vec::new() }
}

fn grant() -> Grant {
    Grant {
        allowed_zones: vec![ZoneId::new("z:owner").expect("zone"), ZoneId::new("z:work").expect("zone")],
        enrollment_validity_secs: 30 * 86_400,
        tags: vec!["laptop".into()],
    }
}

struct Owner {
    _dir: tempfile::TempDir,
    nonces: DirNonceStore,
}

impl Owner {
    fn new() -> Owner {
        let dir = tempfile::tempdir().expect("tempdir");
        let nonces = DirNonceStore::open(&dir.path().join("nonces")).expect("nonces");
        Owner { _dir: dir, nonces }
    }

    fn nonce(&mut self) -> [u8; 32] {
        self.nonces.issue(&mut OsRng, NOW, 600).expect("nonce")
    }
}

fn request(home: &TestHome, tpm: &mut TssTpm, tcti: &str, nonce: [u8; 32]) -> EnrollmentRequest {
    device::request(home.path(), Some(tpm), nonce, &opts(tcti), &mut OsRng, NOW).expect("request")
}

/// The whole round: request → verify → challenge → activate → finish → install, then
/// fcpd's view: the keys come back only from the TPM, and the posture holds.
#[test]
fn enrollment_end_to_end_binds_keys_to_the_tpm() {
    if !require("enrollment_end_to_end_binds_keys_to_the_tpm", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let home = TestHome::new("node-laptop");
    let mut owner = Owner::new();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open swtpm");
    let nonce = owner.nonce();
    let req = request(&home, &mut tpm, &sim.tcti(), nonce);
    assert!(!home.key_file("node-signing").exists(), "plaintext node keys are removed once sealed");
    let ev = req.tpm.as_ref().expect("tpm evidence");
    assert_eq!(ev.manufacturer, "IBM", "swtpm (libtpms) reports IBM");
    assert!(ev.keys_sealed);

    let bytes = req.encode().expect("encode");
    let req = EnrollmentRequest::decode(&bytes).expect("decode");
    let v = verify::verify_request(req, &mut owner.nonces, &Policy::default(), NOW + 5).expect("verify");
    let t = v.tpm.clone().expect("tpm verified");
    let (challenge, pending) =
        verify::make_challenge(&v, &t, &mut OsRng, &Policy::default(), NOW + 5).expect("challenge");
    let response = device::activate(home.path(), &mut tpm, &challenge).expect("activate");
    let g = verify::finish(&pending, &response, &home.owner, &grant(), NOW + 6).expect("finish");
    let posture = g.attestation.posture.clone().expect("posture");
    assert_eq!(posture.kind, PostureKind::Tpm);
    assert!(posture.hardware_backed);
    assert_eq!(posture.tpm_manufacturer.as_deref(), Some("IBM"));
    assert_eq!(posture.pcr_digest.as_deref(), Some(t.pcr_digest.as_slice()));
    g.attestation.verify(&home.owner.public(), NOW + 7).expect("owner-signed attestation");
    g.enrollment.verify(&home.owner.public(), NOW + 7).expect("owner-signed enrollment");
    device::install(home.path(), &g, Some(&home.owner.public()), NOW + 7).expect("install");
    drop(tpm);

    // fcpd at start.
    let mut tpm = TssTpm::open(&sim.tcti()).expect("reopen");
    let (keys, source) = device::load_node_keys(home.path(), Some(&mut tpm)).expect("unseal");
    assert_eq!(source, KeySource::Tpm);
    assert_eq!(keys.signing.public(), home.keys.signing.public());
    assert_eq!(keys.encryption.public(), home.keys.encryption.public());
    assert_eq!(keys.issuance.public(), home.keys.issuance.public());
    let p = device::node_posture(home.path(), &home.owner.public(), &keys, source, NOW + 8).expect("posture");
    assert!(p.hardware_backed);
    let stranger = fcp_proto::keys::OwnerKey::generate(&mut OsRng);
    assert!(device::node_posture(home.path(), &stranger.public(), &keys, source, NOW + 8).is_err(), "another owner");
    assert!(device::node_posture(home.path(), &home.owner.public(), &keys, KeySource::Files, NOW + 8).is_err());
    let after = NOW + 31 * 86_400;
    assert!(device::node_posture(home.path(), &home.owner.public(), &keys, source, after).is_err(), "expired");
}

#[test]
fn replayed_wrong_and_expired_nonces_are_refused() {
    if !require("replayed_wrong_and_expired_nonces_are_refused", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let policy = Policy::default();

    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    verify::verify_request(req.clone(), &mut owner.nonces, &policy, NOW).expect("first use");
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("replay");
    assert_eq!(e.code(), "attest.nonce_used");

    let req = request(&home, &mut tpm, &sim.tcti(), [9; 32]);
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("never issued");
    assert_eq!(e.code(), "attest.nonce_unknown");

    let short = owner.nonces.issue(&mut OsRng, NOW, 10).expect("nonce");
    let req = request(&home, &mut tpm, &sim.tcti(), short);
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW + 11).expect_err("expired");
    assert_eq!(e.code(), "attest.nonce_expired");

    // A quote made for one nonce, presented with another issued nonce (re-signed by
    // the node key): the TPM's qualifying data gives it away.
    let (signing, _) = device::load_node_keys(home.path(), Some(&mut tpm)).map(|(k, s)| (k.signing, s)).expect("keys");
    let mut req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    req.owner_nonce = owner.nonce().to_vec();
    req.sign(&signing).expect("sign");
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("wrong nonce");
    assert_eq!(e.code(), "attest.qualifying_data");
}

fn resigned(
    home: &TestHome,
    tpm: &mut TssTpm,
    mut req: EnrollmentRequest,
    edit: impl FnOnce(&mut TpmEvidence),
) -> EnrollmentRequest {
    edit(req.tpm.as_mut().expect("tpm"));
    let (keys, _) = device::load_node_keys(home.path(), Some(tpm)).expect("keys");
    req.sign(&keys.signing).expect("sign");
    req
}

#[test]
fn altered_pcr_other_ak_and_other_node_key_are_refused() {
    if !require("altered_pcr_other_ak_and_other_node_key_are_refused", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let policy = Policy::default();

    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let req = resigned(&home, &mut tpm, req, |ev| ev.pcrs[6].value[0] ^= 1);
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("altered PCR 7");
    assert_eq!(e.code(), "attest.pcr_digest");

    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let req = resigned(&home, &mut tpm, req, |ev| ev.pcrs.truncate(5));
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("PCR missing");
    assert_eq!(e.code(), "attest.pcr_values");

    let strict = Policy { pcrs: vec![0, 1, 2, 3, 4, 5, 7, 8], ..Policy::default() };
    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let e = verify::verify_request(req, &mut owner.nonces, &strict, NOW).expect_err("fewer PCRs than required");
    assert_eq!(e.code(), "attest.pcr_selection");

    // A quote by a different attestation key (same TPM, fresh AK) than the one sent.
    let other_ak = tpm.create_ak().expect("ak");
    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let req = resigned(&home, &mut tpm, req, |ev| ev.ak_public = other_ak.public.clone());
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("other AK");
    assert_eq!(e.code(), "attest.quote_signature");

    // The quote names the node's kids; a request naming another signing key (signed by
    // it, so the signature check passes) does not match the quote.
    let other = NodeKeys::generate("node-a", &mut OsRng).expect("keys");
    let mut req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    req.sign(&other.signing).expect("sign");
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("other node key");
    assert_eq!(e.code(), "attest.qualifying_data");

    // A request signed by a key it does not name.
    let mut req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    req.created_at += 1;
    let e = verify::verify_request(req, &mut owner.nonces, &policy, NOW).expect_err("tampered");
    assert_eq!(e.code(), "attest.request_signature");
}

/// The AK must be in the TPM of the EK the owner wrapped the credential to. Evidence
/// that names another TPM's EK passes the quote checks, but the credential cannot be
/// opened, and a made-up answer is refused.
#[test]
fn activation_fails_when_the_ek_is_another_tpms() {
    if !require("activation_fails_when_the_ek_is_another_tpms", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let other_sim = Swtpm::start();
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let mut other = TssTpm::open(&other_sim.tcti()).expect("open other");
    let other_ek = other.ek_public().expect("other ek");
    assert_ne!(other_ek, tpm.ek_public().expect("ek"));

    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let req = resigned(&home, &mut tpm, req, |ev| ev.ek_public = other_ek.clone());
    let v = verify::verify_request(req, &mut owner.nonces, &Policy::default(), NOW).expect("quote itself is fine");
    let t = v.tpm.clone().expect("tpm");
    let (challenge, pending) = verify::make_challenge(&v, &t, &mut OsRng, &Policy::default(), NOW).expect("challenge");
    let e = device::activate(home.path(), &mut tpm, &challenge).expect_err("this TPM cannot open it");
    assert_eq!(e.code(), "attest.tpm_error", "{e}");

    let (keys, _) = device::load_node_keys(home.path(), Some(&mut tpm)).expect("keys");
    let mut forged =
        ActivationResponse { request_id: challenge.request_id.clone(), secret: vec![0; 32], signature: vec![] };
    forged.sign(&keys.signing).expect("sign");
    let e = verify::finish(&pending, &forged, &home.owner, &grant(), NOW).expect_err("guessed secret");
    assert_eq!(e.code(), "attest.activation_failed");
}

#[test]
fn sealed_keys_do_not_unseal_on_another_tpm_or_after_a_pcr_change() {
    if !require("sealed_keys_do_not_unseal_on_another_tpm_or_after_a_pcr_change", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let other_sim = Swtpm::start();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let mut other = TssTpm::open(&other_sim.tcti()).expect("open other");
    let secret = [0x5au8; 96];

    let blob = tpm.seal(&secret, &[]).expect("seal");
    assert_eq!(tpm.unseal(&blob, &[]).expect("unseal").as_slice(), &secret[..]);
    let e = other.unseal(&blob, &[]).expect_err("another TPM");
    assert_eq!(e.code(), "attest.unseal_failed", "{e}");

    let bound = tpm.seal(&secret, &[16]).expect("seal under PCR 16");
    assert_eq!(tpm.unseal(&bound, &[16]).expect("unseal before the change").as_slice(), &secret[..]);
    tpm.pcr_extend(16, [1; 32]).expect("extend");
    let e = tpm.unseal(&bound, &[16]).expect_err("after the PCR changed");
    assert_eq!(e.code(), "attest.unseal_failed", "{e}");

    // The same through the node-key path, with the identity check in front.
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let e = device::load_node_keys(home.path(), Some(&mut other)).expect_err("carried to another TPM");
    assert_eq!(e.code(), "attest.tpm_replaced");
}

#[test]
fn a_cleared_tpm_is_reported_for_re_enrollment() {
    if !require("a_cleared_tpm_is_reported_for_re_enrollment", &["swtpm", "tpm2_clear"]) {
        return;
    }
    let sim = Swtpm::start();
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    {
        let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
        request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    }
    let out = tpm2(&sim.tcti(), home.path(), &["tpm2_clear", "-c", "p"]);
    assert!(out.status.success(), "tpm2_clear: {}", String::from_utf8_lossy(&out.stderr));
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let e = device::load_node_keys(home.path(), Some(&mut tpm)).expect_err("cleared");
    assert_eq!(e.code(), "attest.tpm_cleared");
    assert!(e.to_string().contains("re-enroll"), "{e}");

    // The re-enrollment path: fresh keys in files, then a new round on the same TPM.
    let r = device::reset(home.path(), Some(&mut tpm), false, &mut OsRng, NOW).expect("reset");
    assert!(r.new_keys && r.moved_to.is_some());
    let (keys, source) = device::load_node_keys(home.path(), Some(&mut tpm)).expect("keys from files");
    assert_eq!(source, KeySource::Files);
    assert_ne!(keys.signing.public(), home.keys.signing.public(), "the sealed keys are gone for good");
    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let v = verify::verify_request(req, &mut owner.nonces, &Policy::default(), NOW).expect("re-enrollment verifies");
    assert!(v.tpm.expect("tpm").keys_sealed);
    let e = device::reset(home.path(), Some(&mut tpm), false, &mut OsRng, NOW).expect_err("keys still unseal");
    assert_eq!(e.code(), "attest.state");
}

/// An independent verifier: tpm2_checkquote accepts our quote, and refuses it for other
/// qualifying data.
#[test]
fn our_quote_verifies_with_tpm2_checkquote() {
    if !require("our_quote_verifies_with_tpm2_checkquote", &["swtpm", "tpm2_checkquote"]) {
        return;
    }
    let sim = Swtpm::start();
    let home = TestHome::new("node-a");
    let mut owner = Owner::new();
    let mut tpm = TssTpm::open(&sim.tcti()).expect("open");
    let req = request(&home, &mut tpm, &sim.tcti(), owner.nonce());
    let ev = req.tpm.clone().expect("tpm");
    let d = home.path();
    let mut ak = (ev.ak_public.len() as u16).to_be_bytes().to_vec();
    ak.extend_from_slice(&ev.ak_public);
    std::fs::write(d.join("ak.pub"), ak).expect("ak");
    std::fs::write(d.join("quote.msg"), &ev.quote).expect("msg");
    std::fs::write(d.join("quote.sig"), &ev.quote_signature).expect("sig");
    let pcrs: Vec<u8> = ev.pcrs.iter().flat_map(|p| p.value.clone()).collect();
    std::fs::write(d.join("quote.pcrs"), pcrs).expect("pcrs");
    let q = hex::encode(req.qualifying_data().expect("q"));
    let check = |qual: &str| {
        tpm2(
            &sim.tcti(),
            d,
            &[
                "tpm2_checkquote",
                "-u",
                "ak.pub",
                "-m",
                "quote.msg",
                "-s",
                "quote.sig",
                "-f",
                "quote.pcrs",
                "-l",
                "sha256:0,1,2,3,4,5,7",
                "-g",
                "sha256",
                "-q",
                qual,
            ],
        )
    };
    let ok = check(&q);
    assert!(ok.status.success(), "tpm2_checkquote refused our quote: {}", String::from_utf8_lossy(&ok.stderr));
    let bad = check(&hex::encode([0u8; 32]));
    assert!(!bad.status.success(), "tpm2_checkquote accepted other qualifying data");
}

/// The other direction: a quote made by tpm2-tools (its own EK and AK) verifies with
/// our verifier, and fails with a flipped PCR value.
#[test]
fn a_tpm2_tools_quote_verifies_with_ours() {
    if !require("a_tpm2_tools_quote_verifies_with_ours", &["swtpm", "tpm2_quote", "tpm2_createak"]) {
        return;
    }
    let sim = Swtpm::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let t = sim.tcti();
    // No resource manager sits in front of swtpm: flush each tool's transient objects.
    let run = |args: &[&str]| {
        let out = tpm2(&t, d, args);
        assert!(out.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
        tpm2(&t, d, &["tpm2_flushcontext", "-t"]);
    };
    run(&["tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"]);
    run(&["tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u", "ak.pub"]);
    let qual = [0x42u8; 32];
    run(&[
        "tpm2_quote",
        "-c",
        "ak.ctx",
        "-l",
        "sha256:0,1,2,3,4,5,7",
        "-q",
        &hex::encode(qual),
        "-m",
        "q.msg",
        "-s",
        "q.sig",
        "-o",
        "q.pcrs",
        "-F",
        "values",
        "-g",
        "sha256",
    ]);
    let strip = |name: &str| -> Vec<u8> {
        let b = std::fs::read(d.join(name)).expect("read");
        b[2..].to_vec() // TPM2B_PUBLIC → TPMT_PUBLIC
    };
    let values = std::fs::read(d.join("q.pcrs")).expect("pcrs");
    assert_eq!(values.len(), 7 * 32);
    let pcrs: Vec<PcrValue> = PcrSelection::sha256(&DEFAULT_PCRS)
        .slots()
        .zip(values.chunks(32))
        .map(|((_, index), v)| PcrValue { index, value: v.to_vec() })
        .collect();
    let mut ev = TpmEvidence {
        manufacturer: "IBM".into(),
        firmware_version: 0,
        ek_public: strip("ek.pub"),
        ek_certificate: None,
        ak_public: strip("ak.pub"),
        quote: std::fs::read(d.join("q.msg")).expect("msg"),
        quote_signature: std::fs::read(d.join("q.sig")).expect("sig"),
        pcrs,
        event_log: None,
        keys_sealed: false,
        seal_pcrs: vec![],
    };
    let v = verify::verify_quote(&ev, &qual, &DEFAULT_PCRS).expect("tpm2-tools quote verifies with ours");
    assert_eq!(v.ak_name.len(), 34);
    assert_eq!(
        verify::verify_quote(&ev, &[0x43; 32], &DEFAULT_PCRS).map_err(|e| e.code()).err(),
        Some("attest.qualifying_data")
    );
    ev.pcrs[0].value[31] ^= 1;
    assert_eq!(verify::verify_quote(&ev, &qual, &DEFAULT_PCRS).map_err(|e| e.code()).err(), Some("attest.pcr_digest"));
}

/// Our software MakeCredential against tpm2-tools' TPM2_ActivateCredential: the
/// credential format is the TPM's, not just ours.
#[test]
fn software_make_credential_opens_with_tpm2_activatecredential() {
    if !require("software_make_credential_opens_with_tpm2_activatecredential", &["swtpm", "tpm2_activatecredential"]) {
        return;
    }
    let sim = Swtpm::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let t = sim.tcti();
    // No resource manager sits in front of swtpm: flush each tool's transient objects.
    let run = |args: &[&str]| {
        let out = tpm2(&t, d, args);
        assert!(out.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
        tpm2(&t, d, &["tpm2_flushcontext", "-t"]);
    };
    run(&["tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"]);
    run(&["tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u", "ak.pub"]);
    let read = |n: &str| std::fs::read(d.join(n)).expect("read");
    let ek = fcp_attest::wire::EccPublic::decode(&read("ek.pub")[2..]).expect("ek");
    let ak = fcp_attest::wire::EccPublic::decode(&read("ak.pub")[2..]).expect("ak");
    let secret = [0x11u8; 32];
    let made = fcp_attest::credential::make_credential(&ek, &ak.name(), &secret, &mut OsRng).expect("make");
    // tpm2-tools' credential file: magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
    let mut file = 0xBADC_C0DEu32.to_be_bytes().to_vec();
    file.extend_from_slice(&1u32.to_be_bytes());
    for part in [&made.id_object, &made.encrypted_secret] {
        file.extend_from_slice(&(part.len() as u16).to_be_bytes());
        file.extend_from_slice(part);
    }
    std::fs::write(d.join("cred.blob"), file).expect("write");
    run(&["tpm2_startauthsession", "--policy-session", "-S", "session.ctx"]);
    run(&["tpm2_policysecret", "-S", "session.ctx", "-c", "e"]);
    run(&[
        "tpm2_activatecredential",
        "-c",
        "ak.ctx",
        "-C",
        "ek.ctx",
        "-i",
        "cred.blob",
        "-o",
        "secret.out",
        "-P",
        "session:session.ctx",
    ]);
    assert_eq!(read("secret.out"), secret.to_vec());
}
