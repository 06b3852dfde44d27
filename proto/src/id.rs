//! Identifiers: ObjectId (digest §1.3), canonical ids and ZoneId (§1.5), ZoneIdHash,
//! key ids (kid) and EpochId.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::schema::SchemaId;

/// Domain string of the keyed ObjectId.
const OBJECT_DOMAIN: &[u8] = b"FCP2-OBJECT-V2";
/// Domain string of the unscoped content id.
const CONTENT_DOMAIN: &[u8] = b"FCP2-CONTENT-V2";
/// Domain string of the zone id hash.
const ZONE_ID_DOMAIN: &[u8] = b"FCP2-ZONE-ID-V1";
/// Domain string of key ids.
const KID_DOMAIN: &[u8] = b"fcp.kid.v2";

/// A malformed identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a canonical id (`^[a-z0-9][a-z0-9._:-]*$`, 1–128 bytes).
    #[error("{0:?} is not a canonical id")]
    NotCanonical(String),
    /// Not a ZoneId in the \[I\] grammar.
    #[error("{0:?} is not a zone id: {1}")]
    Zone(String, &'static str),
    /// Not 64 hex digits (optionally `objectid:`-prefixed).
    #[error("{0:?} is not an object id")]
    ObjectId(String),
}

/// A 32-byte content address. CBOR: bstr; JSON and TOML: lowercase hex (digest §1.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 32]);

/// The 32-byte key of keyed ObjectIds in one zone.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct ObjectIdKey(pub [u8; 32]);

impl fmt::Debug for ObjectIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectIdKey(..)")
    }
}

impl ObjectId {
    /// `BLAKE3-keyed(key, "FCP2-OBJECT-V2" || zone_id || SchemaHash || content)`: the form every
    /// security object uses (digest §1.3).
    pub fn keyed(key: &ObjectIdKey, zone: &ZoneId, schema: &SchemaId, content: &[u8]) -> ObjectId {
        let mut h = blake3::Hasher::new_keyed(&key.0);
        h.update(OBJECT_DOMAIN);
        h.update(zone.as_str().as_bytes());
        h.update(&schema.hash().0);
        h.update(content);
        ObjectId(*h.finalize().as_bytes())
    }

    /// `BLAKE3("FCP2-CONTENT-V2" || content)`: raw chunks only, never security objects.
    pub fn unscoped(content: &[u8]) -> ObjectId {
        let mut h = blake3::Hasher::new();
        h.update(CONTENT_DOMAIN);
        h.update(content);
        ObjectId(*h.finalize().as_bytes())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for ObjectId {
    type Err = IdError;
    /// Accepts 64 hex digits in either case, with an optional `objectid:` prefix.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let hexpart = s.strip_prefix("objectid:").unwrap_or(s);
        let mut out = [0u8; 32];
        if hexpart.len() != 64 || hex::decode_to_slice(hexpart, &mut out).is_err() {
            return Err(IdError::ObjectId(s.to_owned()));
        }
        Ok(ObjectId(out))
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b: serde_bytes::ByteBuf = serde_bytes::ByteBuf::deserialize(d)?;
            let arr: [u8; 32] =
                b.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(b.len(), &"32 bytes"))?;
            Ok(ObjectId(arr))
        }
    }
}

/// Is `s` a canonical identifier (digest §1.5): ASCII, 1–128 bytes, `^[a-z0-9][a-z0-9._:-]*$`.
pub fn is_canonical_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// A canonical identifier: principal, connector, capability, operation, role, instance …
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CanonicalId(String);

impl CanonicalId {
    /// Validates a canonical id; never normalises.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if is_canonical_id(s) {
            Ok(CanonicalId(s.to_owned()))
        } else {
            Err(IdError::NotCanonical(s.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CanonicalId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        CanonicalId::new(&s)
    }
}

impl From<CanonicalId> for String {
    fn from(c: CanonicalId) -> String {
        c.0
    }
}

impl fmt::Display for CanonicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A zone id in the \[I\] grammar (digest §1.5): `z:` prefix, ≤ 64 ASCII bytes of
/// `[a-z0-9:-]`, no empty `:` segment, `z:proj-` reserved, `z:project:<name>` with a
/// `[a-z0-9-]` name that neither starts nor ends with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZoneId(String);

/// The five standard zones.
pub const STANDARD_ZONES: [&str; 5] = ["z:owner", "z:private", "z:work", "z:community", "z:public"];

impl ZoneId {
    /// Validates a zone id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let err = |why| Err(IdError::Zone(s.to_owned(), why));
        if s.len() > 64 {
            return err("longer than 64 bytes");
        }
        let Some(rest) = s.strip_prefix("z:") else { return err("missing z: prefix") };
        if !s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b':' || c == b'-') {
            return err("characters outside [a-z0-9:-]");
        }
        if rest.split(':').any(str::is_empty) {
            return err("empty segment");
        }
        if s.starts_with("z:proj-") {
            return err("the z:proj- prefix is reserved");
        }
        if let Some(name) = rest.strip_prefix("project:") {
            if name.is_empty() || name.contains(':') || name.starts_with('-') || name.ends_with('-') {
                return err("z:project:<name> needs a [a-z0-9-] name not starting or ending with '-'");
            }
        } else if rest == "project" {
            return err("z:project needs a name");
        }
        Ok(ZoneId(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `BLAKE3("FCP2-ZONE-ID-V1" || zone_id)` (digest §1.5), carried in FCPS frames.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(ZONE_ID_DOMAIN);
        h.update(self.0.as_bytes());
        *h.finalize().as_bytes()
    }
}

impl TryFrom<String> for ZoneId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        ZoneId::new(&s)
    }
}

impl From<ZoneId> for String {
    fn from(z: ZoneId) -> String {
        z.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ZoneId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        ZoneId::new(s)
    }
}

/// An 8-byte key id: `BLAKE3("fcp.kid.v2" || public_key)[0..8]` (digest §1.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Kid(pub [u8; 8]);

impl Kid {
    /// The kid of a public key.
    pub fn of(public_key: &[u8]) -> Kid {
        let mut h = blake3::Hasher::new();
        h.update(KID_DOMAIN);
        h.update(public_key);
        let mut out = [0u8; 8];
        out.copy_from_slice(&h.finalize().as_bytes()[..8]);
        Kid(out)
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({})", hex::encode(self.0))
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Default epoch granularity in seconds.
pub const EPOCH_SECS: u64 = 300;

/// `unix_seconds / granularity` (digest §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EpochId(pub u64);

impl EpochId {
    /// The epoch containing `unix_secs`.
    pub fn at(unix_secs: u64, granularity: u64) -> EpochId {
        EpochId(unix_secs / granularity.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_object_id() {
        let schema = SchemaId::new("fcp.core", "CapabilityObject", "1.0.0").expect("schema");
        let zone = ZoneId::new("z:work").expect("zone");
        let id = ObjectId::keyed(&ObjectIdKey([0; 32]), &zone, &schema, b"hello");
        assert_eq!(id.to_hex(), "6d766e3dd7615531c490254cf35644c0c21bb734cbaf26938a8edcf2da6ca36a");
    }

    #[test]
    fn zone_id_hash_and_kid() {
        let z = ZoneId::new("z:work").expect("zone");
        assert_eq!(hex::encode(z.hash()), "b535a945ceeefe27b23fbb46a99aecb6de1dca1d48c721d9f772648e52d6bc99");
        let sk = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        assert_eq!(Kid::of(sk.verifying_key().as_bytes()).to_string(), "a0c1f01ec0c902d8");
    }

    #[test]
    fn zone_grammar() {
        for ok in STANDARD_ZONES.iter().copied().chain(["z:project:alpha-1", "z:a:b", "z:9"]) {
            assert_eq!(ZoneId::new(ok).map(|z| z.to_string()), Ok(ok.to_owned()));
        }
        for bad in
            ["work", "z:", "z:Work", "z:a_b", "z:a::b", "z:proj-x", "z:project:", "z:project:-a", "z:project", "z:x:"]
        {
            assert!(matches!(ZoneId::new(bad), Err(IdError::Zone(..))), "{bad}");
        }
        assert!(ZoneId::new(&format!("z:{}", "a".repeat(63))).is_err());
    }

    #[test]
    fn canonical_ids() {
        assert!(is_canonical_id("fcp.github"));
        assert!(is_canonical_id("0:a_b-c.d"));
        assert!(!is_canonical_id(""));
        assert!(!is_canonical_id("Fcp"));
        assert!(!is_canonical_id("_a"));
        assert!(!is_canonical_id(&"a".repeat(129)));
    }

    #[test]
    fn object_id_text_forms() {
        let hexs = "6d766e3dd7615531c490254cf35644c0c21bb734cbaf26938a8edcf2da6ca36a";
        let a: ObjectId = hexs.parse().expect("hex");
        let b: ObjectId = format!("objectid:{}", hexs.to_uppercase()).parse().expect("prefixed");
        assert_eq!(a, b);
        assert!("objectid:12".parse::<ObjectId>().is_err());
        let cbor = crate::cbor::to_vec(&a).expect("cbor");
        assert_eq!(&cbor[..2], &[0x58, 0x20]);
        assert_eq!(serde_json::to_string(&a).expect("json"), format!("\"{hexs}\""));
    }
}
