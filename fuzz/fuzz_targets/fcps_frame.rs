//! FCPS bytes from the network (digest §2): the envelope and raw frame decoders never
//! panic, whatever they accept re-encodes to exactly the input, and admission and
//! per-symbol AEAD run on every accepted frame without panicking.
#![no_main]
use fcp_proto::fcps::{admission, admit, AdmissionLimits, Datagram, FrameView, SymbolCipher, ZoneSymmetricKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = FrameView::parse(data) {
        assert_eq!(view.symbols().len() as u64, u64::from(view.symbol_count()));
        assert_eq!(view.to_frame().encode(), data, "accepted frames are in the one layout");
        let _ = admission::check_frame(&view, &AdmissionLimits::default());
        let zone = ZoneSymmetricKey::new(view.header().zone_key_id, [7; 32], SymbolCipher::ChaCha20Poly1305);
        let key = zone.derive_sender_key("node-a", view.header().sender_instance_id);
        for sym in view.symbols().take(4) {
            // A random tag never authenticates.
            assert!(key.open_symbol(view.header(), &sym).is_err());
        }
    }
    if let Ok(d) = Datagram::decode(data, usize::MAX) {
        assert_eq!(d.encode(), data);
        if let Ok(view) = FrameView::parse(d.frame) {
            let _ = admit(&d, &view, &AdmissionLimits::default());
        }
    }
});
