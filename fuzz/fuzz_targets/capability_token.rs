//! Capability tokens from the wire (digest §5.2): `kid` and `verify_cose` never panic on any
//! bytes; a token that verifies has a kid routing to the issuer, was canonical in every byte,
//! and its typed claims, when they type-check, re-encode to exactly the signed payload.
#![no_main]
use fcp_proto::cbor::{decode, Limits};
use fcp_proto::id::Kid;
use fcp_proto::token::{kid, verify_cose, SigningKey};
use libfuzzer_sys::fuzz_target;

/// The fixed issuer: the fuzzer can only reach `valid` through tokens it learns from the
/// seed corpus or by forging Ed25519, so the interesting paths are the header and claim rules.
fn issuer() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fuzz_target!(|data: &[u8]| {
    let sk = issuer();
    let pk = sk.verifying_key();
    let routed = kid(data);
    match verify_cose(data, &pk) {
        Ok(verified) => {
            assert_eq!(routed, Some(Kid::of(pk.as_bytes())));
            let inner = data.strip_prefix(&[0xd2]).unwrap_or(data);
            assert!(decode(inner, Limits::with_max_len(64 * 1024)).is_ok(), "accepted envelope is canonical");
            if let Ok(claims) = verified.claims() {
                let again = claims.to_cbor().expect("claims that were read encode");
                assert_eq!(again, verified.payload(), "typed claims re-encode to the signed payload");
            }
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
