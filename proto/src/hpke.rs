//! HPKE sealing of zone keys, ObjectId keys and secret shares to one node (digest §6.3).
//!
//! RFC 9180 base mode with DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305
//! (IANA kem 0x0020, kdf 0x0001, aead 0x0003), `info = "FCP2-HPKE"`, and an AAD that binds
//! the box to its zone, recipient, purpose and issue time:
//! `det-CBOR({zone_id: bstr, recipient_node_id: bstr, purpose: bstr, issued_at: uint})`.
//!
//! Sans-IO: the ephemeral key comes from the caller's RNG. The golden vectors feed a
//! ChaCha20 keystream here, so `ikmE` is its first 32 bytes and `skE = DeriveKeyPair(ikmE)`.
//! Opened plaintexts are returned in [`Zeroizing`] buffers because they are keys.

use std::fmt;
use std::str::FromStr;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cbor::{self, Value};

/// The rand_core that [`seal`]'s RNG bound comes from.
pub use rand_core;
pub use x25519_dalek::{PublicKey as X25519PublicKey, StaticSecret as X25519SecretKey};

/// HPKE `info` for every FCP box (\[I\] only; \[S\] does not name one, digest §6.3).
pub const HPKE_INFO: &[u8] = b"FCP2-HPKE";
/// Length of `enc`, the serialized ephemeral X25519 public key.
pub const ENC_LEN: usize = 32;
/// ChaCha20-Poly1305 tag length: `ciphertext = plaintext + 16`.
pub const TAG_LEN: usize = 16;
/// Smallest concatenated box `enc || ciphertext` (an empty plaintext).
pub const MIN_BOX_LEN: usize = ENC_LEN + TAG_LEN;
/// Largest concatenated box `enc || ciphertext` (digest §6.3).
pub const MAX_BOX_LEN: usize = 64 * 1024;
/// Largest plaintext that still fits in [`MAX_BOX_LEN`].
pub const MAX_PLAINTEXT_LEN: usize = MAX_BOX_LEN - MIN_BOX_LEN;

/// Why a box cannot be sealed or opened.
///
/// Every failure to open reports the single code `aead_invalid` (digest §16
/// `FCP_ERR_AEAD_INVALID`): a peer learns nothing about which step refused its box.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpkeError {
    /// The concatenated box is shorter than 48 or longer than 64 KiB bytes.
    #[error("sealed box of {len} bytes is outside {MIN_BOX_LEN}..={MAX_BOX_LEN}")]
    BoxSize {
        /// `len(enc) + len(ciphertext)`.
        len: usize,
    },
    /// `enc` is not a 32-byte X25519 public key.
    #[error("encapsulated key of {len} bytes, expected {ENC_LEN}")]
    EncLength {
        /// Its length.
        len: usize,
    },
    /// Decapsulation or AEAD authentication failed (wrong key, AAD or bytes).
    #[error("hpke open failed")]
    Open,
    /// The plaintext would make a box larger than 64 KiB.
    #[error("plaintext of {len} bytes exceeds {MAX_PLAINTEXT_LEN}")]
    PlaintextTooLarge {
        /// Its length.
        len: usize,
    },
    /// The HPKE library refused to seal.
    #[error("hpke seal failed")]
    Seal,
    /// A purpose string other than the four of digest §6.3.
    #[error("unknown hpke purpose {0:?}")]
    UnknownPurpose(String),
    /// A hex field of a sealed box is not hex.
    #[error("sealed box field is not hex")]
    Hex,
}

impl HpkeError {
    /// The stable reason code (`vectors/README.md` §5.13).
    pub fn code(&self) -> &'static str {
        match self {
            HpkeError::BoxSize { .. } | HpkeError::EncLength { .. } | HpkeError::Open => "aead_invalid",
            HpkeError::PlaintextTooLarge { .. } => "plaintext_too_large",
            HpkeError::Seal => "seal_failed",
            HpkeError::UnknownPurpose(_) => "unknown_purpose",
            HpkeError::Hex => "malformed",
        }
    }
}

/// What a sealed box carries; part of the AAD (digest §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HpkePurpose {
    /// A zone's symmetric key (`FCP2-ZONE-KEY`).
    ZoneKey,
    /// A zone's ObjectId key (`FCP2-OBJECTID-KEY`).
    ObjectIdKey,
    /// A share of the owner key (`FCP2-OWNER-SHARE`).
    OwnerShare,
    /// A share of a secret (`FCP2-SECRET-SHARE`).
    SecretShare,
}

impl HpkePurpose {
    /// Every purpose, in the order of digest §6.3.
    pub const ALL: [HpkePurpose; 4] =
        [HpkePurpose::ZoneKey, HpkePurpose::ObjectIdKey, HpkePurpose::OwnerShare, HpkePurpose::SecretShare];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            HpkePurpose::ZoneKey => "FCP2-ZONE-KEY",
            HpkePurpose::ObjectIdKey => "FCP2-OBJECTID-KEY",
            HpkePurpose::OwnerShare => "FCP2-OWNER-SHARE",
            HpkePurpose::SecretShare => "FCP2-SECRET-SHARE",
        }
    }
}

impl fmt::Display for HpkePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HpkePurpose {
    type Err = HpkeError;
    fn from_str(s: &str) -> Result<Self, HpkeError> {
        HpkePurpose::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| HpkeError::UnknownPurpose(s.to_owned()))
    }
}

impl Serialize for HpkePurpose {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HpkePurpose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The four values bound into the AAD of a box (digest §6.3).
///
/// The zone and node ids are bound as the UTF-8 bytes of their text, exactly as given;
/// they are not parsed here, so a box can be opened for any id its sender used.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AadFields {
    /// The zone the sealed key belongs to.
    pub zone_id: String,
    /// The node the box is sealed to.
    pub recipient_node_id: String,
    /// What the box carries.
    pub purpose: HpkePurpose,
    /// When it was sealed (seconds).
    pub issued_at: u64,
}

impl AadFields {
    /// `det-CBOR({zone_id: bstr, recipient_node_id: bstr, purpose: bstr, issued_at: uint})`.
    ///
    /// Canonical key order is purpose, zone_id, issued_at, recipient_node_id.
    pub fn encode(&self) -> Vec<u8> {
        let map = Value::Map(vec![
            (Value::text("zone_id"), Value::bytes(self.zone_id.as_bytes())),
            (Value::text("recipient_node_id"), Value::bytes(self.recipient_node_id.as_bytes())),
            (Value::text("purpose"), Value::bytes(self.purpose.as_str().as_bytes())),
            (Value::text("issued_at"), Value::Int(i128::from(self.issued_at))),
        ]);
        cbor::encode(&map).expect("invariant: four distinct text keys, byte strings and a u64 always encode")
    }
}

/// `{enc, ciphertext}`: the ephemeral public key and the AEAD output with its tag.
///
/// Both fields are hex text in CBOR and JSON alike (\[I\] `hex::serde`, digest §1.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpkeSealedBox {
    /// `pkE`, 32 bytes.
    #[serde(with = "hex_text")]
    pub enc: Vec<u8>,
    /// `plaintext + 16` bytes.
    #[serde(with = "hex_text")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for HpkeSealedBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HpkeSealedBox")
            .field("enc", &hex::encode(&self.enc))
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl HpkeSealedBox {
    /// The concatenated box `enc || ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.enc.len() + self.ciphertext.len());
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Splits a concatenated box, enforcing the 48-byte minimum and 64 KiB maximum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HpkeError> {
        check_box_len(bytes.len())?;
        let (enc, ciphertext) = bytes.split_at(ENC_LEN);
        Ok(HpkeSealedBox { enc: enc.to_vec(), ciphertext: ciphertext.to_vec() })
    }
}

fn check_box_len(len: usize) -> Result<(), HpkeError> {
    if (MIN_BOX_LEN..=MAX_BOX_LEN).contains(&len) {
        Ok(())
    } else {
        Err(HpkeError::BoxSize { len })
    }
}

/// Seals `plaintext` to `recipient` (RFC 9180 base mode, single shot, sequence 0).
///
/// The ephemeral key is `DeriveKeyPair(32 bytes from rng)` (RFC 9180 §7.1.3).
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    recipient: &X25519PublicKey,
    plaintext: &[u8],
    aad: &AadFields,
) -> Result<HpkeSealedBox, HpkeError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(HpkeError::PlaintextTooLarge { len: plaintext.len() });
    }
    let pk =
        <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes()).map_err(|_| HpkeError::Seal)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, R>(
        &OpModeS::Base,
        &pk,
        HPKE_INFO,
        plaintext,
        &aad.encode(),
        rng,
    )
    .map_err(|_| HpkeError::Seal)?;
    Ok(HpkeSealedBox { enc: enc.to_bytes().to_vec(), ciphertext })
}

/// Opens a box sealed to `recipient` under exactly these AAD fields.
///
/// Checks the box size (48 bytes ..= 64 KiB) and the `enc` length before any
/// cryptography; every failure has the code `aead_invalid`.
pub fn open(
    recipient: &X25519SecretKey,
    sealed: &HpkeSealedBox,
    aad: &AadFields,
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    check_box_len(sealed.enc.len().saturating_add(sealed.ciphertext.len()))?;
    if sealed.enc.len() != ENC_LEN {
        return Err(HpkeError::EncLength { len: sealed.enc.len() });
    }
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc)
        .map_err(|_| HpkeError::EncLength { len: sealed.enc.len() })?;
    let sk_bytes = Zeroizing::new(recipient.to_bytes());
    let sk =
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(sk_bytes.as_slice()).map_err(|_| HpkeError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        HPKE_INFO,
        &sealed.ciphertext,
        &aad.encode(),
    )
    .map(Zeroizing::new)
    .map_err(|_| HpkeError::Open)
}

/// The recipient public key of a secret key, as HPKE computes it (`pk(skR)`).
pub fn public_key(secret: &X25519SecretKey) -> X25519PublicKey {
    X25519PublicKey::from(secret)
}

/// `hex::serde` for byte fields: lowercase hex text in every format.
mod hex_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn aad() -> AadFields {
        AadFields {
            zone_id: "z:work".into(),
            recipient_node_id: "node:laptop.mesh.ts.net".into(),
            purpose: HpkePurpose::ZoneKey,
            issued_at: 1_700_000_000,
        }
    }

    #[test]
    fn aad_matches_digest_example() {
        let a = AadFields {
            zone_id: "z:work".into(),
            recipient_node_id: "node-123".into(),
            purpose: HpkePurpose::ZoneKey,
            issued_at: 1_700_000_000,
        };
        assert_eq!(
            hex::encode(a.encode()),
            "a467707572706f73654d464350322d5a4f4e452d4b4559677a6f6e655f6964467a3a776f726b696973737565645f61741a6553f1\
             0071726563697069656e745f6e6f64655f6964486e6f64652d313233"
        );
    }

    #[test]
    fn conformance_vector_1_seals_byte_exactly() {
        let sk = X25519SecretKey::from([0x10; 32]);
        let mut rng = ChaCha20Rng::from_seed([0xaa; 32]);
        let pt = hex::decode("deadbeefcafebabedeadbeefcafebabedeadbeefcafebabedeadbeefcafebabe").expect("hex");
        let sealed = seal(&mut rng, &public_key(&sk), &pt, &aad()).expect("seals");
        assert_eq!(hex::encode(&sealed.enc), "812bdf224bf70d7ae7ef4505be7678dd3282dfe762e6e16af542e58672314b00");
        assert_eq!(
            hex::encode(&sealed.ciphertext),
            "2c309bb932b1952b52d08b27271866bf6572da7dc7b8616bde176dfeebfdf8c274f5d57296ea937d88f7be725d3d3eda"
        );
        assert_eq!(open(&sk, &sealed, &aad()).expect("opens").as_slice(), pt.as_slice());
    }

    #[test]
    fn purposes_round_trip_and_unknown_is_refused() {
        for p in HpkePurpose::ALL {
            assert_eq!(p.as_str().parse::<HpkePurpose>(), Ok(p));
        }
        assert_eq!("FCP2-OTHER".parse::<HpkePurpose>().map_err(|e| e.code()), Err("unknown_purpose"));
    }

    #[test]
    fn sealed_box_fields_are_hex_text_in_cbor_and_json() {
        let b = HpkeSealedBox { enc: vec![0xab; 32], ciphertext: vec![0x01; 16] };
        let v = cbor::to_value(&b).expect("to value");
        assert_eq!(v.get("enc"), Some(&Value::text("ab".repeat(32))));
        assert_eq!(v.get("ciphertext"), Some(&Value::text("01".repeat(16))));
        let json = serde_json::to_string(&b).expect("json");
        assert_eq!(json, format!("{{\"enc\":\"{}\",\"ciphertext\":\"{}\"}}", "ab".repeat(32), "01".repeat(16)));
        let back: HpkeSealedBox =
            cbor::from_slice(&cbor::to_vec(&b).expect("cbor"), cbor::Limits::CANONICAL).expect("decodes");
        assert_eq!(back, b);
    }

    #[test]
    fn box_size_limits_are_enforced_before_crypto() {
        let sk = X25519SecretKey::from([7; 32]);
        let small = HpkeSealedBox { enc: vec![0; 32], ciphertext: vec![0; 15] };
        assert_eq!(open(&sk, &small, &aad()), Err(HpkeError::BoxSize { len: 47 }));
        let big = HpkeSealedBox { enc: vec![0; 32], ciphertext: vec![0; MAX_BOX_LEN - 31] };
        assert_eq!(open(&sk, &big, &aad()), Err(HpkeError::BoxSize { len: MAX_BOX_LEN + 1 }));
        let short_enc = HpkeSealedBox { enc: vec![0; 31], ciphertext: vec![0; 40] };
        assert_eq!(open(&sk, &short_enc, &aad()).map_err(|e| e.code()), Err("aead_invalid"));
        assert_eq!(HpkeSealedBox::from_bytes(&[0; 47]), Err(HpkeError::BoxSize { len: 47 }));
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let too_big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            seal(&mut rng, &public_key(&sk), &too_big, &aad()),
            Err(HpkeError::PlaintextTooLarge { len: MAX_PLAINTEXT_LEN + 1 })
        );
        let max = vec![0u8; MAX_PLAINTEXT_LEN];
        let sealed = seal(&mut rng, &public_key(&sk), &max, &aad()).expect("largest plaintext seals");
        assert_eq!(sealed.to_bytes().len(), MAX_BOX_LEN);
    }

    fn arb_aad() -> impl Strategy<Value = AadFields> {
        ("z:[a-z]{1,8}", "[a-z0-9.:-]{1,24}", 0usize..4, any::<u64>()).prop_map(|(zone_id, node, p, issued_at)| {
            AadFields { zone_id, recipient_node_id: node, purpose: HpkePurpose::ALL[p], issued_at }
        })
    }

    proptest! {
        #[test]
        fn open_of_seal_is_identity(
            sk in any::<[u8; 32]>(),
            seed in any::<[u8; 32]>(),
            pt in proptest::collection::vec(any::<u8>(), 0..512),
            aad in arb_aad(),
        ) {
            let sk = X25519SecretKey::from(sk);
            let mut rng = ChaCha20Rng::from_seed(seed);
            let sealed = seal(&mut rng, &public_key(&sk), &pt, &aad).expect("seals");
            prop_assert_eq!(sealed.enc.len(), ENC_LEN);
            prop_assert_eq!(sealed.ciphertext.len(), pt.len() + TAG_LEN);
            let back = HpkeSealedBox::from_bytes(&sealed.to_bytes()).expect("concatenated form splits");
            prop_assert_eq!(&back, &sealed);
            let opened = open(&sk, &sealed, &aad).expect("opens");
            prop_assert_eq!(opened.as_slice(), pt.as_slice());
        }

        #[test]
        fn any_flipped_bit_fails_to_open(
            sk in any::<[u8; 32]>(),
            seed in any::<[u8; 32]>(),
            pt in proptest::collection::vec(any::<u8>(), 0..128),
            bit in any::<prop::sample::Index>(),
        ) {
            let sk = X25519SecretKey::from(sk);
            let mut rng = ChaCha20Rng::from_seed(seed);
            let sealed = seal(&mut rng, &public_key(&sk), &pt, &aad()).expect("seals");
            let mut bytes = sealed.to_bytes();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            let flipped = HpkeSealedBox::from_bytes(&bytes).expect("same length");
            prop_assert_eq!(open(&sk, &flipped, &aad()).map_err(|e| e.code()), Err("aead_invalid"));
        }

        #[test]
        fn any_changed_aad_field_fails_to_open(seed in any::<[u8; 32]>(), which in 0usize..4) {
            let sk = X25519SecretKey::from([0x42; 32]);
            let mut rng = ChaCha20Rng::from_seed(seed);
            let sealed = seal(&mut rng, &public_key(&sk), b"zone key bytes", &aad()).expect("seals");
            let mut other = aad();
            match which {
                0 => other.zone_id = "z:private".into(),
                1 => other.recipient_node_id.push('x'),
                2 => other.purpose = HpkePurpose::SecretShare,
                _ => other.issued_at += 1,
            }
            prop_assert_eq!(open(&sk, &sealed, &other), Err(HpkeError::Open));
        }

        #[test]
        fn arbitrary_boxes_never_panic(enc in proptest::collection::vec(any::<u8>(), 0..40),
                                       ct in proptest::collection::vec(any::<u8>(), 0..80)) {
            let sk = X25519SecretKey::from([3; 32]);
            let r = open(&sk, &HpkeSealedBox { enc, ciphertext: ct }, &aad());
            prop_assert_eq!(r.map_err(|e| e.code()), Err("aead_invalid"));
        }
    }
}
