//! Golden-vector runner (`vectors/README.md`): every case goes through the real
//! functions of this crate and every field of `expected` is compared.
//!
//! No I/O: callers (the `fcp vectors check` command and the crate's tests) read the
//! files and hand each case over as JSON.

mod cbor_kinds;
mod frame_kinds;
pub mod json;
mod operation_kinds;
mod session_kinds;
mod token_kinds;

/// The verdict on one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every expected field matched.
    Pass,
    /// Something differed or failed; the text says what.
    Fail(String),
}

impl From<Result<(), String>> for Outcome {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        }
    }
}

/// The vector kinds this crate decides.
pub const KINDS: &[&str] = &[
    "schema_hash",
    "canonical_cbor",
    "canonical_cbor_decode",
    "object_id",
    "signing_bytes",
    "session_key_schedule",
    "session_hello",
    "session_negotiation",
    "session_mac",
    "datagram_envelope",
    "fcps_frame",
    "fcpc_frame",
    "capability_token",
    "hpke_seal",
    "operation_intent_signable",
    "operation_receipt_signable",
];

/// Runs one case of `kind`; `None` when the kind is not one of [`KINDS`].
pub fn run_case(kind: &str, case: &serde_json::Value) -> Option<Outcome> {
    let r = match kind {
        "schema_hash" => cbor_kinds::schema_hash(case),
        "canonical_cbor" => cbor_kinds::canonical_cbor(case),
        "canonical_cbor_decode" => cbor_kinds::canonical_cbor_decode(case),
        "object_id" => cbor_kinds::object_id(case),
        "signing_bytes" => cbor_kinds::signing_bytes(case),
        "session_key_schedule" => session_kinds::key_schedule(case),
        "session_hello" => session_kinds::hello(case),
        "session_negotiation" => session_kinds::negotiation(case),
        "session_mac" => session_kinds::mac(case),
        "datagram_envelope" => frame_kinds::datagram_envelope(case),
        "fcps_frame" => frame_kinds::fcps_frame(case),
        "fcpc_frame" => frame_kinds::fcpc_frame(case),
        "capability_token" => token_kinds::capability_token(case),
        "hpke_seal" => token_kinds::hpke_seal(case),
        "operation_intent_signable" => operation_kinds::intent_signable(case),
        "operation_receipt_signable" => operation_kinds::receipt_signable(case),
        _ => return None,
    };
    Some(r.into())
}
