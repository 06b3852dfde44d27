//! The FCPS frame (digest §2.2): a 114-byte little-endian header followed by
//! `symbol_count` records of `esi u32 | k u16 | data[symbol_size] | auth_tag[16]`.
//!
//! [`FrameView::parse`] is the raw layout decoder. It applies exactly the seven rules
//! of `vectors/README.md` §5.10, in order, and nothing else: the \[S\] bounds and the
//! receiver's MTU are the separate admission check in [`super::admission`].

use std::fmt;

use crate::id::{EpochId, ObjectId};

/// Frame magic, `"FCPS"`.
pub const FCPS_MAGIC: [u8; 4] = *b"FCPS";
/// The only accepted frame version.
pub const FCPS_VERSION: u16 = 1;
/// Length of the frame header.
pub const FRAME_HEADER_LEN: usize = 114;
/// Bytes a record adds to its data: esi (4), k (2) and the tag (16).
pub const SYMBOL_RECORD_OVERHEAD: usize = 22;
/// Length of a per-symbol AEAD tag.
pub const AUTH_TAG_LEN: usize = 16;

/// Frame flags (digest §2.2): a bitset of the twelve defined bits.
///
/// A value of this type is always valid: no bit outside `0x0FFF`, never ERROR together
/// with RESPONSE, never STREAM_END without STREAMING. [`FrameFlags::from_bits`] and
/// [`FrameFlags::with`] are the only ways to build one from bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFlags(u16);

impl FrameFlags {
    /// The peer must acknowledge.
    pub const REQUIRES_ACK: FrameFlags = FrameFlags(0x0001);
    /// The payload is zstd-compressed.
    pub const COMPRESSED: FrameFlags = FrameFlags(0x0002);
    /// Symbols are sealed with the per-symbol AEAD (digest §2.3).
    pub const ENCRYPTED: FrameFlags = FrameFlags(0x0004);
    /// The frame answers a request.
    pub const RESPONSE: FrameFlags = FrameFlags(0x0008);
    /// The frame carries an error.
    pub const ERROR: FrameFlags = FrameFlags(0x0010);
    /// Part of a stream.
    pub const STREAMING: FrameFlags = FrameFlags(0x0020);
    /// The last frame of a stream.
    pub const STREAM_END: FrameFlags = FrameFlags(0x0040);
    /// A capability token is attached.
    pub const HAS_CAP_TOKEN: FrameFlags = FrameFlags(0x0080);
    /// The frame crosses zones.
    pub const ZONE_CROSSING: FrameFlags = FrameFlags(0x0100);
    /// Priority traffic.
    pub const PRIORITY: FrameFlags = FrameFlags(0x0200);
    /// Symbols are RaptorQ-encoded.
    pub const RAPTORQ: FrameFlags = FrameFlags(0x0400);
    /// Control-plane fallback over FCPS.
    pub const CONTROL_PLANE: FrameFlags = FrameFlags(0x0800);
    /// ENCRYPTED | RAPTORQ = 0x0404, the default.
    pub const DEFAULT: FrameFlags = FrameFlags(0x0404);
    /// Every defined bit.
    pub const KNOWN_BITS: u16 = 0x0FFF;

    const NAMES: [(&'static str, u16); 12] = [
        ("REQUIRES_ACK", 0x0001),
        ("COMPRESSED", 0x0002),
        ("ENCRYPTED", 0x0004),
        ("RESPONSE", 0x0008),
        ("ERROR", 0x0010),
        ("STREAMING", 0x0020),
        ("STREAM_END", 0x0040),
        ("HAS_CAP_TOKEN", 0x0080),
        ("ZONE_CROSSING", 0x0100),
        ("PRIORITY", 0x0200),
        ("RAPTORQ", 0x0400),
        ("CONTROL_PLANE", 0x0800),
    ];

    /// No flag set.
    pub const fn empty() -> FrameFlags {
        FrameFlags(0)
    }

    /// Validates raw bits: `invalid_flags` for a bit outside 0x0FFF, ERROR with
    /// RESPONSE, or STREAM_END without STREAMING.
    pub fn from_bits(bits: u16) -> Result<FrameFlags, FrameError> {
        let has = |f: FrameFlags| bits & f.0 != 0;
        if bits & !Self::KNOWN_BITS != 0
            || (has(Self::ERROR) && has(Self::RESPONSE))
            || (has(Self::STREAM_END) && !has(Self::STREAMING))
        {
            return Err(FrameError::InvalidFlags(bits));
        }
        Ok(FrameFlags(bits))
    }

    /// The wire bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: FrameFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the flags of `other`, if the combination is valid.
    pub fn with(self, other: FrameFlags) -> Result<FrameFlags, FrameError> {
        FrameFlags::from_bits(self.0 | other.0)
    }
}

impl Default for FrameFlags {
    fn default() -> Self {
        FrameFlags::DEFAULT
    }
}

impl fmt::Debug for FrameFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameFlags(")?;
        let mut first = true;
        for (name, bit) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("empty")?;
        }
        f.write_str(")")
    }
}

/// The typed frame header. `symbol_count` and `total_payload_len` are not stored: they
/// follow from the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame flags.
    pub flags: FrameFlags,
    /// The object the symbols belong to.
    pub object_id: ObjectId,
    /// Length of each symbol's data; never 0 in a frame.
    pub symbol_size: u16,
    /// The zone key the symbols are sealed with; selects the decryption key (digest §2.3).
    pub zone_key_id: [u8; 8],
    /// `ZoneIdHash` of the zone (digest §1.5).
    pub zone_id_hash: [u8; 32],
    /// Epoch of the zone key.
    pub epoch_id: EpochId,
    /// Random per sender process start; part of the sender subkey (digest §2.3).
    pub sender_instance_id: u64,
    /// Monotonic per sender; must equal the datagram's `seq` (digest §2.1).
    pub frame_seq: u64,
}

impl FrameHeader {
    /// Length of one record with this header's symbol size.
    pub fn record_len(&self) -> usize {
        SYMBOL_RECORD_OVERHEAD + usize::from(self.symbol_size)
    }
}

/// One symbol record, owned.
#[derive(Clone, PartialEq, Eq)]
pub struct SymbolRecord {
    /// Encoding symbol id.
    pub esi: u32,
    /// Number of source symbols of the object.
    pub k: u16,
    /// `symbol_size` bytes of (usually encrypted) symbol data.
    pub data: Vec<u8>,
    /// The per-symbol AEAD tag (digest §2.3).
    pub auth_tag: [u8; AUTH_TAG_LEN],
}

impl fmt::Debug for SymbolRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymbolRecord")
            .field("esi", &self.esi)
            .field("k", &self.k)
            .field("data_len", &self.data.len())
            .field("auth_tag", &hex::encode(self.auth_tag))
            .finish()
    }
}

/// One symbol record, borrowed from the frame bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolRef<'a> {
    /// Encoding symbol id.
    pub esi: u32,
    /// Number of source symbols of the object.
    pub k: u16,
    /// `symbol_size` bytes of symbol data.
    pub data: &'a [u8],
    /// The per-symbol AEAD tag.
    pub auth_tag: &'a [u8; AUTH_TAG_LEN],
}

impl SymbolRef<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> SymbolRecord {
        SymbolRecord { esi: self.esi, k: self.k, data: self.data.to_vec(), auth_tag: *self.auth_tag }
    }
}

/// Why frame bytes or frame parts were rejected.
///
/// The first seven variants are the decode rules of `vectors/README.md` §5.10, in the
/// order [`FrameView::parse`] checks them; the last two only arise when building a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer than 114 bytes.
    #[error("frame of {len} bytes is shorter than the 114-byte header")]
    TooShort {
        /// Input length.
        len: usize,
    },
    /// Bytes 0–3 are not `FCPS`.
    #[error("frame magic is not FCPS")]
    InvalidMagic,
    /// A version other than 1.
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u16),
    /// Unknown bits, ERROR with RESPONSE, or STREAM_END without STREAMING.
    #[error("invalid frame flags {0:#06x}")]
    InvalidFlags(u16),
    /// `symbol_size` is 0.
    #[error("symbol size is zero")]
    InvalidSymbolSize,
    /// `total_payload_len ≠ symbol_count × (22 + symbol_size)`.
    #[error("total_payload_len {declared} does not match {computed} computed from count and symbol size")]
    LengthMismatch {
        /// The header's `total_payload_len`.
        declared: u32,
        /// `symbol_count × (22 + symbol_size)`.
        computed: u64,
    },
    /// The frame length is not `114 + symbol_count × (22 + symbol_size)`.
    #[error("frame of {len} bytes, expected {expected}")]
    FrameSizeMismatch {
        /// Input length.
        len: usize,
        /// The length the header implies.
        expected: u64,
    },
    /// A record's data is not `symbol_size` bytes long (building only).
    #[error("symbol {index} has {len} data bytes, symbol size is {symbol_size}")]
    SymbolDataLength {
        /// Position of the record.
        index: usize,
        /// Its data length.
        len: usize,
        /// The header's symbol size.
        symbol_size: u16,
    },
    /// The records do not fit the u32 count and length fields (building only).
    #[error("records exceed the u32 payload length field")]
    PayloadTooLarge,
}

impl FrameError {
    /// The stable reason code (`vectors/README.md` §5.10).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "too_short",
            FrameError::InvalidMagic => "invalid_magic",
            FrameError::UnsupportedVersion(_) => "unsupported_version",
            FrameError::InvalidFlags(_) => "invalid_flags",
            FrameError::InvalidSymbolSize => "invalid_symbol_size",
            FrameError::LengthMismatch { .. } => "length_mismatch",
            FrameError::FrameSizeMismatch { .. } => "frame_size_mismatch",
            FrameError::SymbolDataLength { .. } => "symbol_data_length",
            FrameError::PayloadTooLarge => "payload_too_large",
        }
    }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(fixed(b, at))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(fixed(b, at))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(fixed(b, at))
}

/// `N` bytes at `at`; callers index inside a length they checked.
fn fixed<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("invariant: a slice of length N converts to [u8; N]")
}

/// A frame parsed in place: the typed header plus the record bytes, no copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameView<'a> {
    header: FrameHeader,
    symbol_count: u32,
    bytes: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// The raw layout decoder (digest §2.2, `vectors/README.md` §5.10). Rules, first
    /// failure wins: `too_short`, `invalid_magic`, `unsupported_version`,
    /// `invalid_flags`, `invalid_symbol_size`, `length_mismatch`,
    /// `frame_size_mismatch`. No other bound is applied here.
    pub fn parse(bytes: &'a [u8]) -> Result<FrameView<'a>, FrameError> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Err(FrameError::TooShort { len: bytes.len() });
        }
        if bytes[0..4] != FCPS_MAGIC {
            return Err(FrameError::InvalidMagic);
        }
        let version = le_u16(bytes, 4);
        if version != FCPS_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let flags = FrameFlags::from_bits(le_u16(bytes, 6))?;
        let symbol_count = le_u32(bytes, 8);
        let total_payload_len = le_u32(bytes, 12);
        let symbol_size = le_u16(bytes, 48);
        if symbol_size == 0 {
            return Err(FrameError::InvalidSymbolSize);
        }
        // u32 × (22 + u16) < 2^49: no overflow in u64.
        let computed = u64::from(symbol_count) * (SYMBOL_RECORD_OVERHEAD as u64 + u64::from(symbol_size));
        if u64::from(total_payload_len) != computed {
            return Err(FrameError::LengthMismatch { declared: total_payload_len, computed });
        }
        let expected = FRAME_HEADER_LEN as u64 + computed;
        if bytes.len() as u64 != expected {
            return Err(FrameError::FrameSizeMismatch { len: bytes.len(), expected });
        }
        let header = FrameHeader {
            flags,
            object_id: ObjectId(fixed(bytes, 16)),
            symbol_size,
            zone_key_id: fixed(bytes, 50),
            zone_id_hash: fixed(bytes, 58),
            epoch_id: EpochId(le_u64(bytes, 90)),
            sender_instance_id: le_u64(bytes, 98),
            frame_seq: le_u64(bytes, 106),
        };
        Ok(FrameView { header, symbol_count, bytes })
    }

    /// The typed header.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// The number of records.
    pub fn symbol_count(&self) -> u32 {
        self.symbol_count
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the frame has no records.
    pub fn is_empty(&self) -> bool {
        self.symbol_count == 0
    }

    /// The records, in order.
    pub fn symbols(&self) -> impl ExactSizeIterator<Item = SymbolRef<'a>> + 'a {
        let size = usize::from(self.header.symbol_size);
        // parse() checked the length, so the records split exactly.
        self.bytes[FRAME_HEADER_LEN..].chunks_exact(self.header.record_len()).map(move |r| SymbolRef {
            esi: le_u32(r, 0),
            k: le_u16(r, 4),
            data: &r[6..6 + size],
            auth_tag: r[6 + size..].try_into().expect("invariant: a record ends with 16 tag bytes"),
        })
    }

    /// An owned copy.
    pub fn to_frame(&self) -> FcpsFrame {
        FcpsFrame { header: self.header, symbols: self.symbols().map(|s| s.to_record()).collect() }
    }
}

/// A complete, valid frame: a header and its records.
///
/// Only [`FcpsFrame::new`] and [`FcpsFrame::decode`] build one, so every value encodes
/// to bytes that [`FrameView::parse`] accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcpsFrame {
    header: FrameHeader,
    symbols: Vec<SymbolRecord>,
}

impl FcpsFrame {
    /// Checks that the symbol size is not 0, every record carries exactly
    /// `symbol_size` data bytes and the records fit the u32 count and length fields.
    pub fn new(header: FrameHeader, symbols: Vec<SymbolRecord>) -> Result<FcpsFrame, FrameError> {
        if header.symbol_size == 0 {
            return Err(FrameError::InvalidSymbolSize);
        }
        if let Some((index, s)) =
            symbols.iter().enumerate().find(|(_, s)| s.data.len() != usize::from(header.symbol_size))
        {
            return Err(FrameError::SymbolDataLength { index, len: s.data.len(), symbol_size: header.symbol_size });
        }
        let total = (symbols.len() as u64).checked_mul(header.record_len() as u64);
        if total.is_none_or(|t| t > u64::from(u32::MAX)) {
            return Err(FrameError::PayloadTooLarge);
        }
        Ok(FcpsFrame { header, symbols })
    }

    /// Decodes and copies a frame (the rules of [`FrameView::parse`]).
    pub fn decode(bytes: &[u8]) -> Result<FcpsFrame, FrameError> {
        FrameView::parse(bytes).map(|v| v.to_frame())
    }

    /// The header.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// The records.
    pub fn symbols(&self) -> &[SymbolRecord] {
        &self.symbols
    }

    /// Takes the frame apart.
    pub fn into_parts(self) -> (FrameHeader, Vec<SymbolRecord>) {
        (self.header, self.symbols)
    }

    /// `114 + count × (22 + symbol_size)`.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.symbols.len() * self.header.record_len()
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        // new() bounded count × record_len by u32::MAX.
        let count = u32::try_from(self.symbols.len()).expect("invariant: checked by FcpsFrame::new");
        let total = u32::try_from(self.symbols.len() * h.record_len()).expect("invariant: checked by FcpsFrame::new");
        out.reserve(self.encoded_len());
        out.extend_from_slice(&FCPS_MAGIC);
        out.extend_from_slice(&FCPS_VERSION.to_le_bytes());
        out.extend_from_slice(&h.flags.bits().to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&h.object_id.0);
        out.extend_from_slice(&h.symbol_size.to_le_bytes());
        out.extend_from_slice(&h.zone_key_id);
        out.extend_from_slice(&h.zone_id_hash);
        out.extend_from_slice(&h.epoch_id.0.to_le_bytes());
        out.extend_from_slice(&h.sender_instance_id.to_le_bytes());
        out.extend_from_slice(&h.frame_seq.to_le_bytes());
        for s in &self.symbols {
            out.extend_from_slice(&s.esi.to_le_bytes());
            out.extend_from_slice(&s.k.to_le_bytes());
            out.extend_from_slice(&s.data);
            out.extend_from_slice(&s.auth_tag);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_flags() -> impl Strategy<Value = FrameFlags> {
        (0u16..=0x0FFF).prop_filter_map("valid combination", |b| FrameFlags::from_bits(b).ok())
    }

    pub(crate) fn arb_frame() -> impl Strategy<Value = FcpsFrame> {
        (arb_flags(), any::<[u8; 32]>(), 1u16..64, any::<[u8; 8]>(), any::<[u8; 32]>(), any::<[u64; 3]>(), 0usize..6)
            .prop_flat_map(|(flags, oid, size, zkid, zh, [epoch, sid, seq], n)| {
                let rec = (any::<u32>(), any::<u16>(), proptest::collection::vec(any::<u8>(), usize::from(size)))
                    .prop_flat_map(|(esi, k, data)| {
                        any::<[u8; 16]>().prop_map(move |auth_tag| SymbolRecord {
                            esi,
                            k,
                            data: data.clone(),
                            auth_tag,
                        })
                    });
                proptest::collection::vec(rec, n).prop_map(move |symbols| {
                    let header = FrameHeader {
                        flags,
                        object_id: ObjectId(oid),
                        symbol_size: size,
                        zone_key_id: zkid,
                        zone_id_hash: zh,
                        epoch_id: EpochId(epoch),
                        sender_instance_id: sid,
                        frame_seq: seq,
                    };
                    FcpsFrame::new(header, symbols).expect("generated frames are valid")
                })
            })
    }

    fn sample() -> FcpsFrame {
        let header = FrameHeader {
            flags: FrameFlags::DEFAULT,
            object_id: ObjectId([0x11; 32]),
            symbol_size: 4,
            zone_key_id: [0x22; 8],
            zone_id_hash: [0x33; 32],
            epoch_id: EpochId(9),
            sender_instance_id: 7,
            frame_seq: 5,
        };
        let rec = SymbolRecord { esi: 1, k: 2, data: vec![0xaa; 4], auth_tag: [0xbb; 16] };
        FcpsFrame::new(header, vec![rec.clone(), SymbolRecord { esi: 2, ..rec }]).expect("valid")
    }

    fn code(bytes: &[u8]) -> &'static str {
        FrameView::parse(bytes).map_or_else(|e| e.code(), |_| "ok")
    }

    #[test]
    fn flag_rules() {
        assert_eq!(FrameFlags::from_bits(0x1000), Err(FrameError::InvalidFlags(0x1000)));
        assert_eq!(FrameFlags::from_bits(0x0018), Err(FrameError::InvalidFlags(0x0018)));
        assert_eq!(FrameFlags::from_bits(0x0040), Err(FrameError::InvalidFlags(0x0040)));
        assert_eq!(FrameFlags::from_bits(0x0060).map(FrameFlags::bits), Ok(0x0060));
        assert_eq!(FrameFlags::DEFAULT.with(FrameFlags::ERROR).map(FrameFlags::bits), Ok(0x0414));
        assert!(FrameFlags::RESPONSE.with(FrameFlags::ERROR).is_err());
        assert_eq!(format!("{:?}", FrameFlags::DEFAULT), "FrameFlags(ENCRYPTED | RAPTORQ)");
        assert!(FrameFlags::DEFAULT.contains(FrameFlags::RAPTORQ));
    }

    #[test]
    fn rules_fire_in_order() {
        let good = sample().encode();
        assert_eq!(code(&good), "ok");
        assert_eq!(code(&good[..113]), "too_short");
        let mut b = good.clone();
        b[0] = b'X';
        b[4] = 2; // also a bad version: magic wins
        assert_eq!(code(&b), "invalid_magic");
        let mut b = good.clone();
        b[4] = 2;
        b[6] = 0xff; // also bad flags: version wins
        assert_eq!(code(&b), "unsupported_version");
        let mut b = good.clone();
        b[7] = 0x10;
        b[48] = 0; // symbol_size 0 too
        assert_eq!(code(&b), "invalid_flags");
        let mut b = good.clone();
        b[48] = 0;
        assert_eq!(code(&b), "invalid_symbol_size");
        let mut b = good.clone();
        b[12] += 1;
        assert_eq!(code(&b), "length_mismatch");
        let mut b = good.clone();
        b.push(0);
        assert_eq!(code(&b), "frame_size_mismatch");
        assert_eq!(code(&good[..good.len() - 1]), "frame_size_mismatch");
    }

    #[test]
    fn huge_declared_count_is_rejected_without_overflow() {
        let mut b = sample().encode();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        b[48..50].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(code(&b), "length_mismatch");
    }

    #[test]
    fn building_checks_records() {
        let (mut header, mut symbols) = sample().into_parts();
        symbols[1].data.pop();
        assert_eq!(FcpsFrame::new(header, symbols.clone()).map_err(|e| e.code()), Err("symbol_data_length"));
        header.symbol_size = 0;
        assert_eq!(FcpsFrame::new(header, vec![]).map_err(|e| e.code()), Err("invalid_symbol_size"));
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_identity(f in arb_frame()) {
            let bytes = f.encode();
            prop_assert_eq!(bytes.len(), f.encoded_len());
            let view = FrameView::parse(&bytes).expect("own encoding parses");
            prop_assert_eq!(view.symbol_count() as usize, f.symbols().len());
            prop_assert_eq!(FcpsFrame::decode(&bytes), Ok(f));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(f) = FcpsFrame::decode(&bytes) {
                prop_assert_eq!(f.encode(), bytes);
            }
        }

        #[test]
        fn arbitrary_header_tails_never_panic(f in arb_frame(), at in 0usize..114, byte in any::<u8>()) {
            let mut bytes = f.encode();
            bytes[at] = byte;
            if let Ok(g) = FcpsFrame::decode(&bytes) {
                prop_assert_eq!(g.encode(), bytes);
            }
        }
    }
}
