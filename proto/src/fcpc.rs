//! FCPC control-plane framing (digest §4, `vectors/README.md` §5.11).
//!
//! ```text
//! off  len  field
//! 0    4    magic "FCPC"
//! 4    2    version u16 LE (1)
//! 6    16   session_id
//! 22   8    seq u64 LE (strictly increasing per direction)
//! 30   2    flags u16 LE   0x0001 ENCRYPTED, 0x0002 COMPRESSED
//! 32   4    len u32 LE = ciphertext length, tag excluded
//! 36   len  ciphertext
//! ..   16   Poly1305 tag
//! ```
//!
//! ChaCha20-Poly1305 under the session's `k_ctx` (digest §3.3); nonce
//! `u8(direction) || 00 00 00 || u64le(seq)`; AAD `session_id || u64le(seq) ||
//! u16le(flags)` (26 bytes, `len` not included). The sealer always sets ENCRYPTED; the
//! opener, like \[I\], does not require it (the flags are bound by the AAD).

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::session::Direction;

/// Frame magic, `"FCPC"`.
pub const FCPC_MAGIC: [u8; 4] = *b"FCPC";
/// The only accepted version.
pub const FCPC_VERSION: u16 = 1;
/// Length of the header before the ciphertext.
pub const FCPC_HEADER_LEN: usize = 36;
/// Length of the Poly1305 tag.
pub const FCPC_TAG_LEN: usize = 16;
/// Shortest possible frame: header and tag around an empty payload.
pub const FCPC_MIN_LEN: usize = FCPC_HEADER_LEN + FCPC_TAG_LEN;
/// Default cap on the payload (digest §4): 4 MiB.
pub const DEFAULT_MAX_PAYLOAD_LEN: usize = 4 * 1024 * 1024;
/// Length of the AEAD nonce.
pub const FCPC_NONCE_LEN: usize = 12;
/// Length of the AAD.
pub const FCPC_AAD_LEN: usize = 26;

/// The session's control-plane key `k_ctx` (digest §3.3). Zeroized on drop; Debug
/// prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContextKey([u8; 32]);

impl ContextKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ContextKey {
        ContextKey(bytes)
    }

    /// The key bytes, for conformance checks and key export.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

/// FCPC flags: only ENCRYPTED and COMPRESSED exist; any other bit is rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FcpcFlags(u16);

impl FcpcFlags {
    /// The payload is sealed (always set by [`seal`]).
    pub const ENCRYPTED: FcpcFlags = FcpcFlags(0x0001);
    /// The payload is compressed.
    pub const COMPRESSED: FcpcFlags = FcpcFlags(0x0002);
    /// Every defined bit.
    pub const KNOWN_BITS: u16 = 0x0003;

    /// No flag set.
    pub const fn empty() -> FcpcFlags {
        FcpcFlags(0)
    }

    /// Validates raw bits: `invalid_flags` for any bit outside 0x0003.
    pub fn from_bits(bits: u16) -> Result<FcpcFlags, FcpcError> {
        if bits & !Self::KNOWN_BITS != 0 {
            return Err(FcpcError::InvalidFlags(bits));
        }
        Ok(FcpcFlags(bits))
    }

    /// The wire bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: FcpcFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: FcpcFlags) -> FcpcFlags {
        FcpcFlags(self.0 | other.0)
    }
}

/// An opened frame: the header's values and the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct FcpcOpened {
    /// The header's session id; the caller compares it with its session.
    pub session_id: [u8; 16],
    /// The header's seq; the caller checks it with a [`SeqGuard`].
    pub seq: u64,
    /// The header's flags.
    pub flags: FcpcFlags,
    /// The authenticated plaintext.
    pub plaintext: Vec<u8>,
}

impl fmt::Debug for FcpcOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcpcOpened")
            .field("session_id", &hex::encode(self.session_id))
            .field("seq", &self.seq)
            .field("flags", &self.flags)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

/// Why an FCPC frame could not be sealed or opened. The first seven are the open rules
/// of `vectors/README.md` §5.11, in the order [`open`] checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FcpcError {
    /// Fewer than 52 bytes.
    #[error("frame of {len} bytes is shorter than 52")]
    TooShort {
        /// Input length.
        len: usize,
    },
    /// Bytes 0–3 are not `FCPC`.
    #[error("frame magic is not FCPC")]
    InvalidMagic,
    /// A version other than 1.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u16),
    /// A flag bit outside 0x0003.
    #[error("invalid flags {0:#06x}")]
    InvalidFlags(u16),
    /// The payload exceeds the limit (or, when sealing, the u32 length field).
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The frame length is not `36 + len + 16`.
    #[error("frame of {len} bytes, header implies {expected}")]
    LengthMismatch {
        /// Input length.
        len: usize,
        /// `36 + len + 16`.
        expected: u64,
    },
    /// Authentication failed: wrong key, direction, seq, flags or a modified byte.
    #[error("frame authentication failed")]
    AeadInvalid,
    /// A seq not above the last accepted one in this direction.
    #[error("seq {seq} is not above the last accepted {last}")]
    SeqNotIncreasing {
        /// The last accepted seq.
        last: u64,
        /// The offending seq.
        seq: u64,
    },
}

impl FcpcError {
    /// The stable reason code (`vectors/README.md` §5.11; `seq_not_increasing` is ours).
    pub fn code(&self) -> &'static str {
        match self {
            FcpcError::TooShort { .. } => "too_short",
            FcpcError::InvalidMagic => "invalid_magic",
            FcpcError::UnsupportedVersion(_) => "unsupported_version",
            FcpcError::InvalidFlags(_) => "invalid_flags",
            FcpcError::PayloadTooLarge { .. } => "payload_too_large",
            FcpcError::LengthMismatch { .. } => "length_mismatch",
            FcpcError::AeadInvalid => "aead_invalid",
            FcpcError::SeqNotIncreasing { .. } => "seq_not_increasing",
        }
    }
}

/// `u8(direction) || 00 00 00 || u64le(seq)`.
pub fn nonce(direction: Direction, seq: u64) -> [u8; FCPC_NONCE_LEN] {
    let mut n = [0u8; FCPC_NONCE_LEN];
    n[0] = direction.to_u8();
    n[4..].copy_from_slice(&seq.to_le_bytes());
    n
}

/// `session_id || u64le(seq) || u16le(flags)`.
pub fn aad(session_id: &[u8; 16], seq: u64, flags: FcpcFlags) -> [u8; FCPC_AAD_LEN] {
    let mut a = [0u8; FCPC_AAD_LEN];
    a[..16].copy_from_slice(session_id);
    a[16..24].copy_from_slice(&seq.to_le_bytes());
    a[24..].copy_from_slice(&flags.bits().to_le_bytes());
    a
}

/// Seals `plaintext` into a frame. ENCRYPTED is added to `flags` before the AAD is
/// built. Fails only when the plaintext does not fit the u32 length field.
pub fn seal(
    key: &ContextKey,
    direction: Direction,
    session_id: &[u8; 16],
    seq: u64,
    flags: FcpcFlags,
    plaintext: &[u8],
) -> Result<Vec<u8>, FcpcError> {
    let len = u32::try_from(plaintext.len())
        .map_err(|_| FcpcError::PayloadTooLarge { len: plaintext.len() as u64, max: u64::from(u32::MAX) })?;
    let flags = flags.union(FcpcFlags::ENCRYPTED);
    let mut out = Vec::with_capacity(FCPC_MIN_LEN + plaintext.len());
    out.extend_from_slice(&FCPC_MAGIC);
    out.extend_from_slice(&FCPC_VERSION.to_le_bytes());
    out.extend_from_slice(session_id);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&flags.bits().to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(plaintext);
    let tag = ChaCha20Poly1305::new(Key::from_slice(&key.0))
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce(direction, seq)),
            &aad(session_id, seq, flags),
            &mut out[FCPC_HEADER_LEN..],
        )
        .expect("invariant: a u32-sized payload is within the ChaCha20-Poly1305 limit");
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a frame. Rules, first failure wins: `too_short` (< 52), `invalid_magic`,
/// `unsupported_version`, `invalid_flags`, `payload_too_large` (`len >
/// max_payload_len`), `length_mismatch` (`≠ 36 + len + 16`), `aead_invalid`.
///
/// The session id and seq are returned, not checked: the caller compares the session id
/// and runs its per-direction [`SeqGuard`].
pub fn open(
    key: &ContextKey,
    direction: Direction,
    frame: &[u8],
    max_payload_len: usize,
) -> Result<FcpcOpened, FcpcError> {
    let Some((header, body)) = frame.split_first_chunk::<FCPC_HEADER_LEN>() else {
        return Err(FcpcError::TooShort { len: frame.len() });
    };
    if body.len() < FCPC_TAG_LEN {
        return Err(FcpcError::TooShort { len: frame.len() });
    }
    let (magic, rest) = header.split_first_chunk::<4>().expect("invariant: 4 <= 36");
    if *magic != FCPC_MAGIC {
        return Err(FcpcError::InvalidMagic);
    }
    let (version, rest) = rest.split_first_chunk::<2>().expect("invariant: 6 <= 36");
    let version = u16::from_le_bytes(*version);
    if version != FCPC_VERSION {
        return Err(FcpcError::UnsupportedVersion(version));
    }
    let (session_id, rest) = rest.split_first_chunk::<16>().expect("invariant: 22 <= 36");
    let (seq, rest) = rest.split_first_chunk::<8>().expect("invariant: 30 <= 36");
    let (flags, len) = rest.split_first_chunk::<2>().expect("invariant: 32 <= 36");
    let seq = u64::from_le_bytes(*seq);
    let flags = FcpcFlags::from_bits(u16::from_le_bytes(*flags))?;
    let len = u32::from_le_bytes(len.try_into().expect("invariant: 36 - 32 = 4"));
    if u64::from(len) > max_payload_len as u64 {
        return Err(FcpcError::PayloadTooLarge { len: u64::from(len), max: max_payload_len as u64 });
    }
    let expected = (FCPC_MIN_LEN as u64) + u64::from(len);
    if frame.len() as u64 != expected {
        return Err(FcpcError::LengthMismatch { len: frame.len(), expected });
    }
    let (ciphertext, tag) = body.split_at(body.len() - FCPC_TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    ChaCha20Poly1305::new(Key::from_slice(&key.0))
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce(direction, seq)),
            &aad(session_id, seq, flags),
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| FcpcError::AeadInvalid)?;
    Ok(FcpcOpened { session_id: *session_id, seq, flags, plaintext })
}

/// The per-direction rule that FCPC seqs strictly increase (digest §4).
///
/// Check after [`open`] succeeds (the seq is authenticated then), and only then accept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqGuard {
    last: Option<u64>,
}

impl SeqGuard {
    /// A guard that has accepted nothing yet.
    pub const fn new() -> SeqGuard {
        SeqGuard { last: None }
    }

    /// The last accepted seq.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Whether `seq` is above the last accepted one.
    pub fn check(&self, seq: u64) -> Result<(), FcpcError> {
        match self.last {
            Some(last) if seq <= last => Err(FcpcError::SeqNotIncreasing { last, seq }),
            _ => Ok(()),
        }
    }

    /// [`SeqGuard::check`], then records `seq`.
    pub fn accept(&mut self, seq: u64) -> Result<(), FcpcError> {
        self.check(seq)?;
        self.last = Some(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const I2R: Direction = Direction::InitiatorToResponder;
    const R2I: Direction = Direction::ResponderToInitiator;

    fn key() -> ContextKey {
        ContextKey::from_bytes([0x11; 32])
    }

    fn code(frame: &[u8], max: usize) -> &'static str {
        open(&key(), I2R, frame, max).map_or_else(|e| e.code(), |_| "ok")
    }

    #[test]
    fn conformance_vector_1() {
        let f = seal(&key(), I2R, &[0xaa; 16], 1, FcpcFlags::ENCRYPTED, &hex::decode("deadbeef").expect("hex"))
            .expect("seal");
        assert_eq!(
            hex::encode(&f),
            "464350430100aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01000000000000000100040000000f893f59a75b895a58a90ec5cae3ca5056ebb48a"
        );
        let o = open(&key(), I2R, &f, DEFAULT_MAX_PAYLOAD_LEN).expect("open");
        assert_eq!(
            (o.session_id, o.seq, o.flags, o.plaintext),
            ([0xaa; 16], 1, FcpcFlags::ENCRYPTED, vec![0xde, 0xad, 0xbe, 0xef])
        );
    }

    #[test]
    fn rules_fire_in_order() {
        let good = seal(&key(), I2R, &[1; 16], 9, FcpcFlags::empty(), b"hello").expect("seal");
        assert_eq!(code(&good, 5), "ok");
        assert_eq!(code(&good[..51], 5), "too_short");
        assert_eq!(code(&good[..36], 5), "too_short");
        let mut b = good.clone();
        b[3] = b'S';
        b[4] = 9;
        assert_eq!(code(&b, 5), "invalid_magic");
        let mut b = good.clone();
        b[4] = 9;
        b[30] = 4;
        assert_eq!(code(&b, 5), "unsupported_version");
        let mut b = good.clone();
        b[30] = 4;
        assert_eq!(code(&b, 4), "invalid_flags");
        assert_eq!(code(&good, 4), "payload_too_large");
        let mut b = good.clone();
        b.push(0);
        assert_eq!(code(&b, 5), "length_mismatch");
        let mut b = good.clone();
        b[30] = 3; // a valid flag set, but not the sealed one
        assert_eq!(code(&b, 5), "aead_invalid");
        assert_eq!(open(&key(), R2I, &good, 5).map_err(|e| e.code()), Err("aead_invalid"));
    }

    #[test]
    fn unencrypted_flag_still_opens_when_the_tag_verifies() {
        // [I] never seals with flags 0, but the opener does not require ENCRYPTED.
        let mut f = seal(&key(), I2R, &[2; 16], 3, FcpcFlags::empty(), b"x").expect("seal");
        f[30] = 0;
        assert_eq!(code(&f, 10), "aead_invalid");
        let mut plaintext = b"x".to_vec();
        let tag = ChaCha20Poly1305::new(Key::from_slice(&[0x11; 32]))
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce(I2R, 3)),
                &aad(&[2; 16], 3, FcpcFlags(0)),
                &mut plaintext,
            )
            .expect("seal");
        f[36] = plaintext[0];
        f[37..].copy_from_slice(&tag);
        assert_eq!(open(&key(), I2R, &f, 10).map(|o| o.flags), Ok(FcpcFlags::empty()));
    }

    #[test]
    fn seq_guard_is_strict() {
        let mut g = SeqGuard::new();
        assert_eq!(g.accept(0), Ok(()));
        assert_eq!(g.accept(5), Ok(()));
        assert_eq!(g.accept(5), Err(FcpcError::SeqNotIncreasing { last: 5, seq: 5 }));
        assert_eq!(g.check(4).map_err(|e| e.code()), Err("seq_not_increasing"));
        assert_eq!(g.accept(6), Ok(()));
        assert_eq!(g.last(), Some(6));
    }

    #[test]
    fn debug_hides_secrets() {
        assert_eq!(format!("{:?}", key()), "ContextKey(..)");
    }

    proptest! {
        #[test]
        fn open_of_seal_is_identity(
            sid in any::<[u8; 16]>(),
            seq in any::<u64>(),
            compressed in any::<bool>(),
            r2i in any::<bool>(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let dir = if r2i { R2I } else { I2R };
            let flags = if compressed { FcpcFlags::COMPRESSED } else { FcpcFlags::empty() };
            let f = seal(&key(), dir, &sid, seq, flags, &plaintext).expect("seal");
            prop_assert_eq!(f.len(), FCPC_MIN_LEN + plaintext.len());
            let o = open(&key(), dir, &f, DEFAULT_MAX_PAYLOAD_LEN).expect("open");
            prop_assert_eq!(o, FcpcOpened { session_id: sid, seq, flags: flags.union(FcpcFlags::ENCRYPTED), plaintext });
        }

        #[test]
        fn any_single_bit_flip_fails_to_open(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            bit in any::<proptest::sample::Index>(),
        ) {
            let mut f = seal(&key(), I2R, &[7; 16], 11, FcpcFlags::empty(), &plaintext).expect("seal");
            let i = bit.index(f.len() * 8);
            f[i / 8] ^= 1 << (i % 8);
            prop_assert!(open(&key(), I2R, &f, DEFAULT_MAX_PAYLOAD_LEN).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120), max in 0usize..100) {
            let _ = open(&key(), I2R, &bytes, max);
        }

        #[test]
        fn arbitrary_headers_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut bytes = b"FCPC\x01\x00".to_vec();
            bytes.extend(tail);
            let r = open(&key(), I2R, &bytes, DEFAULT_MAX_PAYLOAD_LEN);
            prop_assert!(r.is_err(), "a random tag never verifies");
        }
    }
}
