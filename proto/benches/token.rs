//! Criterion benchmarks of capability tokens (digest §5.2): minting (claims → signed
//! COSE_Sign1) and verifying (strict envelope, headers, kid, Ed25519, claims), plus the
//! typed claim read a capability verifier does after verifying.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fcp_proto::token::{self, CapabilityClaims, Grant, SigningKey};

/// A realistic token: every claim a Risky-tier invocation carries.
fn claims() -> CapabilityClaims {
    CapabilityClaims {
        iss: Some("node:owner".into()),
        sub: Some("agent:assistant".into()),
        exp: Some(1_700_000_300),
        nbf: Some(1_700_000_000),
        iat: Some(1_700_000_000),
        cti: Some(vec![0x5a; 16]),
        capability_id: Some("cap:s3.read".into()),
        zone_id: Some("z:private".into()),
        operations: Some(vec!["s3.get_object".into(), "s3.list_objects".into()]),
        principal_id: Some("agent:assistant".into()),
        iss_node: Some("node:owner.mesh.ts.net".into()),
        holder_node: Some("node:laptop.mesh.ts.net".into()),
        chk_id: Some(vec![0xde; 16]),
        chk_seq: Some(42),
        grants: Some(vec![
            Grant { capability: "cap:s3.read".into(), operation: Some("s3.get_object".into()) },
            Grant { capability: "cap:s3.read".into(), operation: Some("s3.list_objects".into()) },
        ]),
        ..CapabilityClaims::default()
    }
}

fn token_benches(c: &mut Criterion) {
    let issuer = SigningKey::from_bytes(&[2; 32]);
    let public = issuer.verifying_key();
    let claims = claims();
    let bytes = token::sign(&issuer, &claims).expect("bench claims sign").into_bytes();

    c.bench_function("token_mint", |b| b.iter(|| token::sign(black_box(&issuer), black_box(&claims))));
    c.bench_function("token_verify", |b| b.iter(|| token::verify_cose(black_box(&bytes), black_box(&public))));
    c.bench_function("token_verify_and_read_claims", |b| {
        b.iter(|| token::verify_cose(black_box(&bytes), black_box(&public)).and_then(|v| v.claims()))
    });
    c.bench_function("token_kid", |b| b.iter(|| token::kid(black_box(&bytes))));
}

criterion_group!(benches, token_benches);
criterion_main!(benches);
