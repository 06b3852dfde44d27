//! Sealed boxes from the wire (digest §6.3): `open` never panics and fails with `aead_invalid`
//! on anything not sealed to the fixed key; the concatenated form splits only within its
//! size limits; a box sealed from the fuzz input opens back to it.
#![no_main]
use fcp_proto::hpke::{
    open, public_key, rand_core, seal, AadFields, HpkePurpose, HpkeSealedBox, X25519SecretKey, MAX_BOX_LEN, MIN_BOX_LEN,
};
use libfuzzer_sys::fuzz_target;

/// A counter-mode byte source so sealing inside the target stays deterministic.
struct CountingRng(u8);

impl rand_core::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for CountingRng {}

fuzz_target!(|data: &[u8]| {
    let sk = X25519SecretKey::from([0x10; 32]);
    let aad = AadFields {
        zone_id: "z:work".into(),
        recipient_node_id: "node:fuzz".into(),
        purpose: HpkePurpose::ZoneKey,
        issued_at: 1_700_000_000,
    };
    match HpkeSealedBox::from_bytes(data) {
        Ok(sealed) => {
            assert!((MIN_BOX_LEN..=MAX_BOX_LEN).contains(&data.len()));
            assert_eq!(sealed.to_bytes(), data);
            if let Err(e) = open(&sk, &sealed, &aad) {
                assert_eq!(e.code(), "aead_invalid");
            }
        }
        Err(e) => assert_eq!(e.code(), "aead_invalid"),
    }
    let split = data.len().min(32);
    let loose = HpkeSealedBox { enc: data[..split].to_vec(), ciphertext: data[split..].to_vec() };
    let _ = open(&sk, &loose, &aad);
    if data.len() <= 4096 {
        let sealed =
            seal(&mut CountingRng(data.len() as u8), &public_key(&sk), data, &aad).expect("small plaintexts seal");
        assert_eq!(open(&sk, &sealed, &aad).expect("own box opens").as_slice(), data);
    }
});
