//! The strict canonical CBOR decoder: never panics; whatever it accepts re-encodes
//! to exactly the input.
#![no_main]
use fcp_proto::cbor::{decode, encode, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode(data, Limits::CANONICAL) {
        let again = encode(&v).expect("an accepted value encodes");
        assert_eq!(again, data, "accepted bytes must be canonical");
    }
});
