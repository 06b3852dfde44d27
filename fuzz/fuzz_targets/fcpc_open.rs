//! FCPC frames from the network (digest §4): `open` never panics and, without the
//! key, never accepts; sealing arbitrary payloads always opens back to them.
#![no_main]
use fcp_proto::fcpc::{open, seal, ContextKey, FcpcFlags, DEFAULT_MAX_PAYLOAD_LEN};
use fcp_proto::session::Direction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ContextKey::from_bytes([0x11; 32]);
    for dir in [Direction::InitiatorToResponder, Direction::ResponderToInitiator] {
        for max in [0, 64, DEFAULT_MAX_PAYLOAD_LEN] {
            if let Ok(o) = open(&key, dir, data, max) {
                // Only reachable by forging a Poly1305 tag: re-sealing must give the input.
                let again = seal(&key, dir, &o.session_id, o.seq, o.flags, &o.plaintext).expect("opened payloads fit");
                assert_eq!(again, data);
            }
        }
    }
    let f = seal(&key, Direction::ResponderToInitiator, &[7; 16], 9, FcpcFlags::COMPRESSED, data).expect("seal");
    let o = open(&key, Direction::ResponderToInitiator, &f, usize::MAX).expect("own frame opens");
    assert_eq!(o.plaintext, data);
});
