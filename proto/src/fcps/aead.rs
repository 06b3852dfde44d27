//! Per-symbol AEAD (digest §2.3).
//!
//! - Sender subkey: `HKDF-SHA256(salt = zone_key_id, ikm = zone key, info, L = 32)` with
//!   the \[I\] info `"FCP2-SENDER-KEY-V1" || u32le(len node_id) || node_id ||
//!   u64le(sender_instance_id)` (the \[S\] text omits the length prefix; we follow \[I\]).
//! - Nonces, never transmitted: `u64le(frame_seq) || u32le(esi)` (12 bytes) or
//!   `u64le(sender_instance_id) || u64le(frame_seq) || u32le(esi) || 00000000` (24).
//! - AAD, 86 bytes: `object_id || u32le(esi) || u16le(k) || zone_id_hash ||
//!   zone_key_id || u64le(epoch_id)`.
//! - ChaCha20-Poly1305 or XChaCha20-Poly1305, chosen per zone key; the 16-byte tag is
//!   stored in the record.
//!
//! The receiver picks the key by the frame's `zone_key_id`; a mismatch is an error,
//! never a trial decryption.

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::frame::{FrameHeader, SymbolRecord, SymbolRef, AUTH_TAG_LEN};
use crate::id::{EpochId, ObjectId};

/// Domain string of the sender subkey info.
const SENDER_KEY_DOMAIN: &[u8] = b"FCP2-SENDER-KEY-V1";
/// Length of the symbol AAD.
pub const SYMBOL_AAD_LEN: usize = 86;

/// The AEAD a zone key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolCipher {
    /// ChaCha20-Poly1305, 12-byte nonce.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305, 24-byte nonce.
    XChaCha20Poly1305,
}

/// A zone's symmetric key with its 8-byte id. Zeroized on drop; Debug shows the id only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ZoneSymmetricKey {
    key: [u8; 32],
    #[zeroize(skip)]
    zone_key_id: [u8; 8],
    #[zeroize(skip)]
    cipher: SymbolCipher,
}

impl fmt::Debug for ZoneSymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneSymmetricKey")
            .field("zone_key_id", &hex::encode(self.zone_key_id))
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// A sender subkey: one per (zone key, sender node, sender instance). Zeroized on drop;
/// Debug shows no key bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderKey {
    key: [u8; 32],
    #[zeroize(skip)]
    zone_key_id: [u8; 8],
    #[zeroize(skip)]
    sender_instance_id: u64,
    #[zeroize(skip)]
    cipher: SymbolCipher,
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKey")
            .field("zone_key_id", &hex::encode(self.zone_key_id))
            .field("sender_instance_id", &self.sender_instance_id)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Why a symbol could not be sealed or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The frame names another zone key than this subkey's.
    #[error("frame zone_key_id does not match the key")]
    ZoneKeyMismatch,
    /// The frame names another sender instance than this subkey's.
    #[error("frame sender_instance_id does not match the key")]
    SenderInstanceMismatch,
    /// Symbol data is not `symbol_size` bytes.
    #[error("symbol of {len} bytes, frame symbol size is {symbol_size}")]
    SymbolSizeMismatch {
        /// Data length.
        len: usize,
        /// The header's symbol size.
        symbol_size: u16,
    },
    /// The tag does not authenticate the symbol.
    #[error("symbol authentication failed")]
    AeadInvalid,
}

impl AeadError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            AeadError::ZoneKeyMismatch => "zone_key_mismatch",
            AeadError::SenderInstanceMismatch => "sender_instance_mismatch",
            AeadError::SymbolSizeMismatch { .. } => "symbol_size_mismatch",
            AeadError::AeadInvalid => "aead_invalid",
        }
    }
}

/// `"FCP2-SENDER-KEY-V1" || u32le(len node_id) || node_id || u64le(sender_instance_id)`.
///
/// Node ids are at most 128 bytes (digest §1.5); a longer one is still length-prefixed
/// correctly up to 4 GiB.
pub fn sender_key_info(node_id: &str, sender_instance_id: u64) -> Vec<u8> {
    let id = node_id.as_bytes();
    let mut info = Vec::with_capacity(SENDER_KEY_DOMAIN.len() + 4 + id.len() + 8);
    info.extend_from_slice(SENDER_KEY_DOMAIN);
    info.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_le_bytes());
    info.extend_from_slice(id);
    info.extend_from_slice(&sender_instance_id.to_le_bytes());
    info
}

/// The 12-byte nonce: `u64le(frame_seq) || u32le(esi)`.
pub fn nonce12(frame_seq: u64, esi: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&frame_seq.to_le_bytes());
    n[8..].copy_from_slice(&esi.to_le_bytes());
    n
}

/// The 24-byte nonce: `u64le(sender_instance_id) || u64le(frame_seq) || u32le(esi) || 0⁴`.
pub fn nonce24(sender_instance_id: u64, frame_seq: u64, esi: u32) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&sender_instance_id.to_le_bytes());
    n[8..16].copy_from_slice(&frame_seq.to_le_bytes());
    n[16..20].copy_from_slice(&esi.to_le_bytes());
    n
}

/// The 86-byte AAD: `object_id || u32le(esi) || u16le(k) || zone_id_hash || zone_key_id ||
/// u64le(epoch_id)`.
pub fn symbol_aad(
    object_id: &ObjectId,
    esi: u32,
    k: u16,
    zone_id_hash: &[u8; 32],
    zone_key_id: &[u8; 8],
    epoch_id: EpochId,
) -> [u8; SYMBOL_AAD_LEN] {
    let mut a = [0u8; SYMBOL_AAD_LEN];
    a[..32].copy_from_slice(&object_id.0);
    a[32..36].copy_from_slice(&esi.to_le_bytes());
    a[36..38].copy_from_slice(&k.to_le_bytes());
    a[38..70].copy_from_slice(zone_id_hash);
    a[70..78].copy_from_slice(zone_key_id);
    a[78..].copy_from_slice(&epoch_id.0.to_le_bytes());
    a
}

impl ZoneSymmetricKey {
    /// Wraps key material with its id and cipher.
    pub fn new(zone_key_id: [u8; 8], key: [u8; 32], cipher: SymbolCipher) -> ZoneSymmetricKey {
        ZoneSymmetricKey { key, zone_key_id, cipher }
    }

    /// The key id frames carry.
    pub fn zone_key_id(&self) -> [u8; 8] {
        self.zone_key_id
    }

    /// The AEAD of this key.
    pub fn cipher(&self) -> SymbolCipher {
        self.cipher
    }

    /// The subkey of one sender process: HKDF-SHA256 with salt `zone_key_id` and the
    /// [`sender_key_info`] (digest §2.3). Sender and receiver derive the same key.
    pub fn derive_sender_key(&self, node_id: &str, sender_instance_id: u64) -> SenderKey {
        let hk = Hkdf::<Sha256>::new(Some(&self.zone_key_id), &self.key);
        let mut key = [0u8; 32];
        hk.expand(&sender_key_info(node_id, sender_instance_id), &mut key)
            .expect("invariant: 32 bytes is a valid HKDF-SHA256 output length");
        SenderKey { key, zone_key_id: self.zone_key_id, sender_instance_id, cipher: self.cipher }
    }
}

impl SenderKey {
    /// The zone key this subkey belongs to.
    pub fn zone_key_id(&self) -> [u8; 8] {
        self.zone_key_id
    }

    /// The sender instance this subkey belongs to.
    pub fn sender_instance_id(&self) -> u64 {
        self.sender_instance_id
    }

    fn check_header(&self, header: &FrameHeader, len: usize) -> Result<(), AeadError> {
        if header.zone_key_id != self.zone_key_id {
            return Err(AeadError::ZoneKeyMismatch);
        }
        if header.sender_instance_id != self.sender_instance_id {
            return Err(AeadError::SenderInstanceMismatch);
        }
        if len != usize::from(header.symbol_size) {
            return Err(AeadError::SymbolSizeMismatch { len, symbol_size: header.symbol_size });
        }
        Ok(())
    }

    fn aad(header: &FrameHeader, esi: u32, k: u16) -> [u8; SYMBOL_AAD_LEN] {
        symbol_aad(&header.object_id, esi, k, &header.zone_id_hash, &header.zone_key_id, header.epoch_id)
    }

    /// Encrypts `data` (exactly `symbol_size` bytes) in place into a record of the frame
    /// described by `header`.
    pub fn seal_symbol(
        &self,
        header: &FrameHeader,
        esi: u32,
        k: u16,
        mut data: Vec<u8>,
    ) -> Result<SymbolRecord, AeadError> {
        self.check_header(header, data.len())?;
        let aad = Self::aad(header, esi, k);
        // The data is at most 65535 bytes (checked above), far below either AEAD's limit.
        let tag = match self.cipher {
            SymbolCipher::ChaCha20Poly1305 => ChaCha20Poly1305::new(Key::from_slice(&self.key))
                .encrypt_in_place_detached(Nonce::from_slice(&nonce12(header.frame_seq, esi)), &aad, &mut data),
            SymbolCipher::XChaCha20Poly1305 => XChaCha20Poly1305::new(Key::from_slice(&self.key))
                .encrypt_in_place_detached(
                    XNonce::from_slice(&nonce24(header.sender_instance_id, header.frame_seq, esi)),
                    &aad,
                    &mut data,
                ),
        }
        .expect("invariant: a u16-sized symbol is within the AEAD length limit");
        let mut auth_tag = [0u8; AUTH_TAG_LEN];
        auth_tag.copy_from_slice(&tag);
        Ok(SymbolRecord { esi, k, data, auth_tag })
    }

    /// Authenticates and decrypts one record of the frame described by `header`.
    pub fn open_symbol(&self, header: &FrameHeader, symbol: &SymbolRef<'_>) -> Result<Vec<u8>, AeadError> {
        self.check_header(header, symbol.data.len())?;
        let aad = Self::aad(header, symbol.esi, symbol.k);
        let mut data = symbol.data.to_vec();
        let tag = Tag::from_slice(symbol.auth_tag);
        match self.cipher {
            SymbolCipher::ChaCha20Poly1305 => ChaCha20Poly1305::new(Key::from_slice(&self.key))
                .decrypt_in_place_detached(
                    Nonce::from_slice(&nonce12(header.frame_seq, symbol.esi)),
                    &aad,
                    &mut data,
                    tag,
                ),
            SymbolCipher::XChaCha20Poly1305 => XChaCha20Poly1305::new(Key::from_slice(&self.key))
                .decrypt_in_place_detached(
                    XNonce::from_slice(&nonce24(header.sender_instance_id, header.frame_seq, symbol.esi)),
                    &aad,
                    &mut data,
                    tag,
                ),
        }
        .map_err(|_| AeadError::AeadInvalid)?;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcps::frame::{FcpsFrame, FrameFlags, FrameView};
    use crate::id::ZoneId;
    use proptest::prelude::*;

    fn header(sender_instance_id: u64) -> FrameHeader {
        FrameHeader {
            flags: FrameFlags::DEFAULT,
            object_id: ObjectId([7; 32]),
            symbol_size: 256,
            zone_key_id: [0xa1; 8],
            zone_id_hash: ZoneId::new("z:work").expect("zone").hash(),
            epoch_id: EpochId(5_892_480),
            sender_instance_id,
            frame_seq: 42,
        }
    }

    #[test]
    fn layouts() {
        let info = sender_key_info("node-a", 0x0102);
        assert_eq!(
            hex::encode(&info),
            format!("{}06000000{}0201000000000000", hex::encode(SENDER_KEY_DOMAIN), hex::encode("node-a"))
        );
        assert_eq!(hex::encode(nonce12(1, 2)), "010000000000000002000000");
        assert_eq!(hex::encode(nonce24(3, 1, 2)), "030000000000000001000000000000000200000000000000");
        let aad = symbol_aad(&ObjectId([1; 32]), 2, 3, &[4; 32], &[5; 8], EpochId(6));
        assert_eq!(
            hex::encode(aad),
            format!("{}020000000300{}{}0600000000000000", "01".repeat(32), "04".repeat(32), "05".repeat(8))
        );
    }

    #[test]
    fn the_info_length_prefix_changes_the_key() {
        // [I] and [S] differ only by the u32 length prefix (digest §2.3, §17 #12).
        let zk = [9u8; 32];
        let ours = ZoneSymmetricKey::new([1; 8], zk, SymbolCipher::ChaCha20Poly1305).derive_sender_key("n", 1);
        let mut spec_info = SENDER_KEY_DOMAIN.to_vec();
        spec_info.extend_from_slice(b"n");
        spec_info.extend_from_slice(&1u64.to_le_bytes());
        let mut spec = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&[1; 8]), &zk).expand(&spec_info, &mut spec).expect("32 bytes");
        assert_ne!(ours.key, spec);
        assert!(!format!("{ours:?}").contains(&hex::encode(ours.key)));
    }

    #[test]
    fn mismatches_are_errors_not_trial_decryptions() {
        let zk = ZoneSymmetricKey::new([0xa1; 8], [3; 32], SymbolCipher::ChaCha20Poly1305);
        let key = zk.derive_sender_key("node-a", 77);
        let h = header(77);
        let rec = key.seal_symbol(&h, 1, 3, vec![0x5a; 256]).expect("seal");
        let frame = FcpsFrame::new(h, vec![rec]).expect("frame").encode();
        let view = FrameView::parse(&frame).expect("parse");
        let sym = view.symbols().next().expect("one record");
        assert_eq!(key.open_symbol(view.header(), &sym), Ok(vec![0x5a; 256]));
        let other_zone = ZoneSymmetricKey::new([0xa2; 8], [3; 32], SymbolCipher::ChaCha20Poly1305);
        assert_eq!(
            other_zone.derive_sender_key("node-a", 77).open_symbol(view.header(), &sym),
            Err(AeadError::ZoneKeyMismatch)
        );
        assert_eq!(
            zk.derive_sender_key("node-a", 78).open_symbol(view.header(), &sym),
            Err(AeadError::SenderInstanceMismatch)
        );
        assert_eq!(zk.derive_sender_key("node-b", 77).open_symbol(view.header(), &sym), Err(AeadError::AeadInvalid));
        assert_eq!(key.seal_symbol(&h, 1, 3, vec![0; 255]).map_err(|e| e.code()), Err("symbol_size_mismatch"));
    }

    proptest! {
        #[test]
        fn seal_open_round_trip_and_every_aad_field_binds(
            x in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 256),
            esi in any::<u32>(),
            k in any::<u16>(),
            tweak in 0usize..6,
        ) {
            let cipher = if x { SymbolCipher::XChaCha20Poly1305 } else { SymbolCipher::ChaCha20Poly1305 };
            let key = ZoneSymmetricKey::new([0xa1; 8], [8; 32], cipher).derive_sender_key("node-a", 9);
            let h = header(9);
            let rec = key.seal_symbol(&h, esi, k, data.clone()).expect("seal");
            let sym = SymbolRef { esi: rec.esi, k: rec.k, data: &rec.data, auth_tag: &rec.auth_tag };
            prop_assert_eq!(key.open_symbol(&h, &sym), Ok(data));
            let mut h2 = h;
            let mut sym2 = sym;
            match tweak {
                0 => h2.object_id.0[0] ^= 1,
                1 => sym2.esi ^= 1,
                2 => sym2.k ^= 1,
                3 => h2.zone_id_hash[31] ^= 1,
                4 => h2.epoch_id.0 ^= 1,
                _ => h2.frame_seq ^= 1,
            }
            prop_assert_eq!(key.open_symbol(&h2, &sym2), Err(AeadError::AeadInvalid));
        }
    }
}
