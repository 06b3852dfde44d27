//! Audit events from storage: decode never panics, and a decoded event re-encodes
//! to the same bytes.
#![no_main]
use fcp_proto::audit::AuditEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = AuditEvent::from_cbor(data) {
        assert_eq!(e.to_cbor().expect("decoded events encode"), data);
    }
});
