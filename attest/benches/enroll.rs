//! Enrollment end to end against a private swtpm, and the owner's verification alone.
//! Prints p50/p99 (`cargo bench -p fcp-attest --bench enroll`; add `-- --json` for one
//! JSON line). Without swtpm it says so and exits 0.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use fcp_attest::device::{self, RequestOptions};
use fcp_attest::tpm::tss::TssTpm;
use fcp_attest::verify::{self, DirNonceStore, Grant, NonceStore, Policy, DEFAULT_PCRS};
use fcp_attest::AttestError;
use fcp_proto::id::ZoneId;
use rand_core::OsRng;

const NOW: u64 = 1_800_000_000;

/// Accepts every nonce: the verification bench measures the checks, not the store.
struct AnyNonce;

impl NonceStore for AnyNonce {
    fn consume(&mut self, _: &[u8; 32], _: u64) -> Result<(), AttestError> {
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>, json: bool) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    if json {
        println!(
            "{{\"bench\":\"{name}\",\"n\":{},\"p50_us\":{},\"p99_us\":{}}}",
            samples.len(),
            p50.as_micros(),
            p99.as_micros()
        );
    } else {
        println!("{name:<44} n={:<4} p50 {:>9.3} ms   p99 {:>9.3} ms", samples.len(), ms(p50), ms(p99));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn grant() -> Grant {
    Grant {
        allowed_zones: vec![ZoneId::new("z:owner").expect("zone")],
        enrollment_validity_secs: 86_400,
        tags: vec!["bench".into()],
    }
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    if !common::require("enroll bench", &["swtpm"]) {
        return;
    }
    let sim = Swtpm::start();
    let tcti = sim.tcti();
    let opts = RequestOptions { tcti: tcti.clone(), pcrs: DEFAULT_PCRS.to_vec(), seal: true, seal_pcrs: Vec::new() };
    let owner_dir = tempfile::tempdir().expect("tempdir");
    let mut nonces = DirNonceStore::open(owner_dir.path()).expect("nonces");
    let policy = Policy::default();

    // First enrollment of a fresh device: AK creation, sealing, quote, verify,
    // MakeCredential, ActivateCredential, signing, install.
    let mut first = Vec::new();
    let mut last_request = None;
    for _ in 0..25 {
        let home = common::TestHome::new("node-bench");
        let start = Instant::now();
        let mut tpm = TssTpm::open(&tcti).expect("open");
        let nonce = nonces.issue(&mut OsRng, NOW, 600).expect("nonce");
        let req = device::request(home.path(), Some(&mut tpm), nonce, &opts, &mut OsRng, NOW).expect("request");
        let bytes = req.encode().expect("encode");
        let req = fcp_attest::evidence::EnrollmentRequest::decode(&bytes).expect("decode");
        let v = verify::verify_request(req, &mut nonces, &policy, NOW).expect("verify");
        let t = v.tpm.clone().expect("tpm");
        let (c, p) = verify::make_challenge(&v, &t, &mut OsRng, &policy, NOW).expect("challenge");
        let r = device::activate(home.path(), &mut tpm, &c).expect("activate");
        let g = verify::finish(&p, &r, &home.owner, &grant(), NOW).expect("finish");
        device::install(home.path(), &g, Some(&home.owner.public()), NOW).expect("install");
        first.push(start.elapsed());
        last_request = Some((home, v.request));
    }
    report("enrollment, first (AK + seal + round)", first, json);

    // Re-enrollment of an enrolled device: AK reused, keys already sealed (unsealed).
    let (home, request) = last_request.expect("one enrollment ran");
    let mut again = Vec::new();
    for _ in 0..25 {
        let start = Instant::now();
        let mut tpm = TssTpm::open(&tcti).expect("open");
        let nonce = nonces.issue(&mut OsRng, NOW, 600).expect("nonce");
        let req = device::request(home.path(), Some(&mut tpm), nonce, &opts, &mut OsRng, NOW).expect("request");
        let v = verify::verify_request(req, &mut nonces, &policy, NOW).expect("verify");
        let t = v.tpm.clone().expect("tpm");
        let (c, p) = verify::make_challenge(&v, &t, &mut OsRng, &policy, NOW).expect("challenge");
        let r = device::activate(home.path(), &mut tpm, &c).expect("activate");
        verify::finish(&p, &r, &home.owner, &grant(), NOW).expect("finish");
        again.push(start.elapsed());
    }
    report("enrollment, re-enroll (same AK, sealed keys)", again, json);

    // fcpd's start: open the TPM, check its identity, unseal the keys, check the posture.
    let mut start_samples = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let mut tpm = TssTpm::open(&tcti).expect("open");
        let (keys, source) = device::load_node_keys(home.path(), Some(&mut tpm)).expect("unseal");
        device::node_posture(home.path(), &home.owner.public(), &keys, source, NOW).expect("posture");
        start_samples.push(start.elapsed());
    }
    report("fcpd start: unseal node keys + posture", start_samples, json);

    // The owner's verification alone (no TPM): request signature, quote, PCRs, EK.
    let bytes = request.encode().expect("encode");
    let mut verify_samples = Vec::new();
    for _ in 0..500 {
        let start = Instant::now();
        let req = fcp_attest::evidence::EnrollmentRequest::decode(&bytes).expect("decode");
        let v = verify::verify_request(req, &mut AnyNonce, &policy, NOW).expect("verify");
        std::hint::black_box(v);
        verify_samples.push(start.elapsed());
    }
    report("owner: decode + verify request", verify_samples, json);

    let v = verify::verify_request(request.clone(), &mut AnyNonce, &policy, NOW).expect("verify");
    let t = v.tpm.clone().expect("tpm");
    let mut cred = Vec::new();
    for _ in 0..500 {
        let start = Instant::now();
        std::hint::black_box(verify::make_challenge(&v, &t, &mut OsRng, &policy, NOW).expect("challenge"));
        cred.push(start.elapsed());
    }
    report("owner: software MakeCredential", cred, json);
}

use common::Swtpm;
