//! Strict decoders for the few TPM 2.0 structures an owner has to read (TPM 2.0 Part 2):
//! `TPMS_ATTEST` of a quote, `TPMT_SIGNATURE` (ECDSA), `TPMT_PUBLIC` (ECC keys), and
//! `TPML_PCR_SELECTION`; plus object names and the PCR composite digest.
//!
//! Pure Rust, independent of the TSS, so the owner's verifier needs no TPM library and
//! the fuzz target can reach every branch. Each decoder takes at most [`MAX_STRUCT_LEN`]
//! bytes, reads every field with a bound, and refuses trailing bytes.

use sha2::{Digest as _, Sha256};

/// Largest TPM structure any decoder here accepts (a TPMT_PUBLIC or TPMS_ATTEST is far
/// smaller; MAX_COMMAND_SIZE of real TPMs is 4 KiB).
pub const MAX_STRUCT_LEN: usize = 4096;

/// `TPM_GENERATED_VALUE`: every structure the TPM signs starts with it.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_ECC`.
pub const ALG_ECC: u16 = 0x0023;
/// `TPM_ALG_ECDSA`.
pub const ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_NULL`.
pub const ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_AES`.
pub const ALG_AES: u16 = 0x0006;
/// `TPM_ALG_CFB`.
pub const ALG_CFB: u16 = 0x0043;
/// `TPM_ECC_NIST_P256`.
pub const ECC_NIST_P256: u16 = 0x0003;

/// TPMA_OBJECT bits (Part 2 §8.3).
pub mod attr {
    /// fixedTPM.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// fixedParent.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// sensitiveDataOrigin.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// userWithAuth.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// adminWithPolicy.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// noDA.
    pub const NO_DA: u32 = 1 << 10;
    /// restricted.
    pub const RESTRICTED: u32 = 1 << 16;
    /// decrypt.
    pub const DECRYPT: u32 = 1 << 17;
    /// sign / encrypt.
    pub const SIGN: u32 = 1 << 18;
}

/// Why TPM bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ends inside a field.
    #[error("{0}: input ends early")]
    Truncated(&'static str),
    /// Bytes follow the structure.
    #[error("{0}: {1} trailing byte(s)")]
    Trailing(&'static str, usize),
    /// Larger than [`MAX_STRUCT_LEN`] or a field's own bound.
    #[error("{0}: too large")]
    TooLarge(&'static str),
    /// A field holds a value this verifier does not accept.
    #[error("{field}: unsupported value {value:#x}")]
    Unsupported {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Result<Self, WireError> {
        if buf.len() > MAX_STRUCT_LEN {
            return Err(WireError::TooLarge(what));
        }
        Ok(Reader { buf, what })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated(self.what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A TPM2B: 16-bit size, then at most `max` bytes.
    fn sized(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(WireError::TooLarge(field));
        }
        self.take(n)
    }

    fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.what, self.buf.len()))
        }
    }
}

fn expect(field: &'static str, got: u16, want: u16) -> Result<(), WireError> {
    if got == want {
        Ok(())
    } else {
        Err(WireError::Unsupported { field, value: u32::from(got) })
    }
}

/// One bank of a PCR selection: a hash algorithm and the PCR indices, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    /// `TPM_ALG_*` of the bank.
    pub hash: u16,
    /// Selected PCR indices, ascending, each < 8 × size of the select bitmap.
    pub pcrs: Vec<u8>,
}

/// A `TPML_PCR_SELECTION`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrSelection(pub Vec<PcrBank>);

impl PcrSelection {
    /// One SHA-256 bank with `pcrs` (sorted and deduplicated here).
    pub fn sha256(pcrs: &[u8]) -> Self {
        let mut p = pcrs.to_vec();
        p.sort_unstable();
        p.dedup();
        PcrSelection(vec![PcrBank { hash: ALG_SHA256, pcrs: p }])
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u32()?;
        if count > 16 {
            return Err(WireError::TooLarge("pcr selection count"));
        }
        let mut banks = Vec::new();
        for _ in 0..count {
            let hash = r.u16()?;
            let size = r.u8()?;
            if size > 32 {
                return Err(WireError::TooLarge("pcr select size"));
            }
            let bits = r.take(usize::from(size))?;
            let mut pcrs = Vec::new();
            for (byte, b) in bits.iter().enumerate() {
                for bit in 0..8 {
                    if b & (1 << bit) != 0 {
                        // byte < 32, so 8 * byte + bit < 256.
                        pcrs.push((byte * 8 + bit) as u8);
                    }
                }
            }
            banks.push(PcrBank { hash, pcrs });
        }
        Ok(PcrSelection(banks))
    }

    /// The marshalled `TPML_PCR_SELECTION` (select bitmaps of at least 3 bytes, as
    /// PC-client TPMs expect).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for bank in &self.0 {
            let top = bank.pcrs.iter().max().map_or(0, |m| usize::from(*m) / 8 + 1);
            let size = top.max(3);
            let mut bits = vec![0u8; size];
            for p in &bank.pcrs {
                bits[usize::from(*p) / 8] |= 1 << (p % 8);
            }
            out.extend_from_slice(&bank.hash.to_be_bytes());
            out.push(size as u8);
            out.extend_from_slice(&bits);
        }
        out
    }

    /// The selected (bank, index) pairs in the order the TPM hashes them.
    pub fn slots(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.0.iter().flat_map(|b| b.pcrs.iter().map(move |p| (b.hash, *p)))
    }
}

/// `TPMS_CLOCK_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its last clear.
    pub clock: u64,
    /// TPM resets since the last clear.
    pub reset_count: u32,
    /// Restarts since the last reset.
    pub restart_count: u32,
    /// Whether `clock` can be trusted not to have gone back.
    pub safe: bool,
}

/// A decoded `TPMS_ATTEST` whose type is `TPM_ST_ATTEST_QUOTE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteInfo {
    /// Qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data.
    pub extra_data: Vec<u8>,
    /// Clock.
    pub clock: ClockInfo,
    /// Firmware version.
    pub firmware_version: u64,
    /// PCRs quoted.
    pub pcr_select: PcrSelection,
    /// Hash of the quoted PCR values, concatenated in selection order.
    pub pcr_digest: Vec<u8>,
}

impl QuoteInfo {
    /// Decodes a marshalled TPMS_ATTEST, which must be a quote.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST")?;
        let magic = r.u32()?;
        if magic != TPM_GENERATED {
            return Err(WireError::Unsupported { field: "attest magic", value: magic });
        }
        expect("attest type", r.u16()?, ST_ATTEST_QUOTE)?;
        let qualified_signer = r.sized(2 + 64, "qualified signer")?.to_vec();
        let extra_data = r.sized(64, "extra data")?.to_vec();
        let clock = ClockInfo {
            clock: r.u64()?,
            reset_count: r.u32()?,
            restart_count: r.u32()?,
            safe: match r.u8()? {
                0 => false,
                1 => true,
                v => return Err(WireError::Unsupported { field: "clock safe", value: u32::from(v) }),
            },
        };
        let firmware_version = r.u64()?;
        let pcr_select = PcrSelection::read(&mut r)?;
        let pcr_digest = r.sized(64, "pcr digest")?.to_vec();
        r.finish()?;
        Ok(QuoteInfo { qualified_signer, extra_data, clock, firmware_version, pcr_select, pcr_digest })
    }
}

/// An ECDSA `TPMT_SIGNATURE` over SHA-256, as 32-byte big-endian r and s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// r.
    pub r: [u8; 32],
    /// s.
    pub s: [u8; 32],
}

fn scalar32(b: &[u8], field: &'static str) -> Result<[u8; 32], WireError> {
    if b.len() > 32 {
        return Err(WireError::TooLarge(field));
    }
    let mut out = [0u8; 32];
    out[32 - b.len()..].copy_from_slice(b);
    Ok(out)
}

impl EcdsaSignature {
    /// Decodes a marshalled TPMT_SIGNATURE; only ECDSA with SHA-256 is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, "TPMT_SIGNATURE")?;
        expect("signature algorithm", r.u16()?, ALG_ECDSA)?;
        expect("signature hash", r.u16()?, ALG_SHA256)?;
        let sr = scalar32(r.sized(66, "signature r")?, "signature r")?;
        let ss = scalar32(r.sized(66, "signature s")?, "signature s")?;
        r.finish()?;
        Ok(EcdsaSignature { r: sr, s: ss })
    }

    /// The marshalled TPMT_SIGNATURE.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(72);
        out.extend_from_slice(&ALG_ECDSA.to_be_bytes());
        out.extend_from_slice(&ALG_SHA256.to_be_bytes());
        for v in [&self.r, &self.s] {
            out.extend_from_slice(&32u16.to_be_bytes());
            out.extend_from_slice(v);
        }
        out
    }
}

/// A decoded ECC `TPMT_PUBLIC` (the only key type this crate uses: P-256 AK and EK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccPublic {
    /// nameAlg.
    pub name_alg: u16,
    /// TPMA_OBJECT.
    pub attributes: u32,
    /// authPolicy.
    pub auth_policy: Vec<u8>,
    /// Symmetric algorithm of a storage key (`ALG_NULL` for a signing key).
    pub symmetric: u16,
    /// Key bits and mode of `symmetric`, when it is not NULL.
    pub symmetric_bits_mode: Option<(u16, u16)>,
    /// Signing or key-exchange scheme (`ALG_NULL` when none).
    pub scheme: u16,
    /// Hash of `scheme`, when it is not NULL.
    pub scheme_hash: Option<u16>,
    /// Curve.
    pub curve: u16,
    /// KDF scheme.
    pub kdf: u16,
    /// x, 32 bytes big-endian.
    pub x: [u8; 32],
    /// y, 32 bytes big-endian.
    pub y: [u8; 32],
    /// The exact bytes decoded, which the name hashes.
    raw: Vec<u8>,
}

impl EccPublic {
    /// Decodes a marshalled TPMT_PUBLIC (without the TPM2B size); only ECC P-256 with a
    /// SHA-256 name algorithm is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC")?;
        expect("public type", r.u16()?, ALG_ECC)?;
        let name_alg = r.u16()?;
        expect("name algorithm", name_alg, ALG_SHA256)?;
        let attributes = r.u32()?;
        let auth_policy = r.sized(64, "auth policy")?.to_vec();
        let symmetric = r.u16()?;
        let symmetric_bits_mode = if symmetric == ALG_NULL { None } else { Some((r.u16()?, r.u16()?)) };
        let scheme = r.u16()?;
        let scheme_hash = if scheme == ALG_NULL { None } else { Some(r.u16()?) };
        if scheme == 0x001a {
            // ECDAA carries a count; we do not accept ECDAA keys.
            return Err(WireError::Unsupported { field: "ecc scheme", value: u32::from(scheme) });
        }
        let curve = r.u16()?;
        expect("curve", curve, ECC_NIST_P256)?;
        let kdf = r.u16()?;
        if kdf != ALG_NULL {
            return Err(WireError::Unsupported { field: "kdf", value: u32::from(kdf) });
        }
        let x = scalar32(r.sized(32, "ecc x")?, "ecc x")?;
        let y = scalar32(r.sized(32, "ecc y")?, "ecc y")?;
        r.finish()?;
        Ok(EccPublic {
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            symmetric_bits_mode,
            scheme,
            scheme_hash,
            curve,
            kdf,
            x,
            y,
            raw: bytes.to_vec(),
        })
    }

    /// The TPM name: `nameAlg || SHA-256(TPMT_PUBLIC)`.
    pub fn name(&self) -> Vec<u8> {
        let mut n = ALG_SHA256.to_be_bytes().to_vec();
        n.extend_from_slice(&Sha256::digest(&self.raw));
        n
    }

    /// The bytes decoded.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The SEC1 uncompressed point.
    pub fn sec1(&self) -> [u8; 65] {
        let mut p = [0u8; 65];
        p[0] = 4;
        p[1..33].copy_from_slice(&self.x);
        p[33..].copy_from_slice(&self.y);
        p
    }

    /// Whether every bit of `bits` is set.
    pub fn has(&self, bits: u32) -> bool {
        self.attributes & bits == bits
    }
}

/// SHA-256 of the PCR values in selection order: the digest a quote signs.
pub fn pcr_composite(values: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in values {
        h.update(v);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quote_bytes(extra: &[u8], sel: &PcrSelection, digest: &[u8]) -> Vec<u8> {
        let mut b = TPM_GENERATED.to_be_bytes().to_vec();
        b.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
        b.extend_from_slice(&34u16.to_be_bytes());
        b.extend_from_slice(&[7u8; 34]);
        b.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        b.extend_from_slice(extra);
        b.extend_from_slice(&5u64.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&9u64.to_be_bytes());
        b.extend_from_slice(&sel.to_bytes());
        b.extend_from_slice(&(digest.len() as u16).to_be_bytes());
        b.extend_from_slice(digest);
        b
    }

    #[test]
    fn quote_decodes_and_refuses_trailing_bytes() {
        let sel = PcrSelection::sha256(&[7, 0, 1, 2, 3, 4, 5]);
        let mut b = quote_bytes(&[1; 32], &sel, &[2; 32]);
        let q = QuoteInfo::decode(&b).expect("decode");
        assert_eq!(q.extra_data, vec![1; 32]);
        assert_eq!(q.pcr_select, sel);
        assert_eq!(q.clock.reset_count, 1);
        b.push(0);
        assert_eq!(QuoteInfo::decode(&b), Err(WireError::Trailing("TPMS_ATTEST", 1)));
    }

    #[test]
    fn signature_round_trip_and_wrong_algorithm() {
        let s = EcdsaSignature { r: [3; 32], s: [4; 32] };
        assert_eq!(EcdsaSignature::decode(&s.to_bytes()), Ok(s.clone()));
        let mut b = s.to_bytes();
        b[1] = 0x14; // RSASSA
        assert!(matches!(EcdsaSignature::decode(&b), Err(WireError::Unsupported { .. })));
    }

    proptest! {
        #[test]
        fn quote_round_trips(extra in proptest::collection::vec(any::<u8>(), 0..=64),
                             pcrs in proptest::collection::vec(0u8..24, 0..24),
                             digest in proptest::collection::vec(any::<u8>(), 0..=64)) {
            let sel = PcrSelection::sha256(&pcrs);
            let q = QuoteInfo::decode(&quote_bytes(&extra, &sel, &digest)).expect("decode");
            prop_assert_eq!(q.extra_data, extra);
            prop_assert_eq!(q.pcr_select, sel);
            prop_assert_eq!(q.pcr_digest, digest);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = QuoteInfo::decode(&bytes);
            let _ = EcdsaSignature::decode(&bytes);
            let _ = EccPublic::decode(&bytes);
        }
    }
}
