//! Connector package files from disk or the network: decoding never panics, a decoded
//! package re-encodes to the same bytes, and verifying it never panics either.
#![no_main]
use fcp_proto::package::Package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Package::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
        if let Ok(key) = p.publisher_key() {
            let _ = p.verify(&[key]);
        }
    }
});
