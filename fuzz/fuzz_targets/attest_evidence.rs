//! Enrollment evidence from a device (fcp-attest): the request, challenge, response and
//! grant decoders and the TPM structure decoders never panic; a decoded request
//! re-encodes to the same bytes; the owner's quote checks never panic on what decodes.
#![no_main]
use fcp_attest::evidence::{ActivationResponse, CredentialChallenge, EnrollmentGrant, EnrollmentRequest};
use fcp_attest::verify::{verify_quote, DEFAULT_PCRS};
use fcp_attest::wire::{EccPublic, EcdsaSignature, QuoteInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = QuoteInfo::decode(data);
    let _ = EcdsaSignature::decode(data);
    let _ = EccPublic::decode(data);
    let _ = CredentialChallenge::decode(data);
    let _ = ActivationResponse::decode(data);
    let _ = EnrollmentGrant::decode(data);
    if let Ok(r) = EnrollmentRequest::decode(data) {
        assert_eq!(r.encode().expect("a decoded request encodes"), data);
        let _ = r.verify_signature();
        if let (Some(ev), Ok(q)) = (&r.tpm, r.qualifying_data()) {
            let _ = verify_quote(ev, &q, &DEFAULT_PCRS);
        }
    }
});
