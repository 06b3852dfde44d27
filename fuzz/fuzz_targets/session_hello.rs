//! Handshake messages from the network (digest §3.1): the strict hello, ack and retry
//! decoders never panic, whatever they accept re-encodes to exactly the input, and
//! transcripts, cookies and verification run on every accepted message.
#![no_main]
use fcp_proto::session::{CookieKey, HandshakeMessage, MeshSessionAck, MeshSessionHello, MeshSessionHelloRetry};
use libfuzzer_sys::fuzz_target;

/// The initiator signing key of the `session_hello` vectors (Ed25519 seed 11×32).
const PK: [u8; 32] = [
    0xd0, 0x4a, 0xb2, 0x32, 0x74, 0x2b, 0xb4, 0xab, 0x3a, 0x13, 0x68, 0xbd, 0x46, 0x15, 0xe4, 0xe6, 0xd0, 0x22, 0x4a,
    0xb7, 0x1a, 0x01, 0x6b, 0xaf, 0x85, 0x20, 0xa3, 0x32, 0xc9, 0x77, 0x87, 0x37,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = HandshakeMessage::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(hello) = MeshSessionHello::decode(data) {
        assert_eq!(hello.encode(), data);
        let _ = hello.transcript();
        let _ = hello.verify_with_key_bytes(&PK);
        let cookie = CookieKey::from_bytes([5; 32]);
        let c = cookie.cookie(&hello);
        assert!(cookie.verify(&hello, &c));
        if let Ok(ack) = MeshSessionAck::decode(data) {
            let _ = ack.verify_with_key_bytes(&hello, &PK);
        }
    }
    if let Ok(ack) = MeshSessionAck::decode(data) {
        assert_eq!(ack.encode(), data);
    }
    if let Ok(retry) = MeshSessionHelloRetry::decode(data) {
        assert_eq!(retry.encode(), data);
    }
});
