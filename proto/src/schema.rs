//! SchemaId, SchemaHash and the canonical payload (digest §1.2), and the
//! fcp-crypto signing bytes (`FCP2-SIGN-V1`, digest §1.2 "third schema hash").

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cbor;

/// Domain string of the length-prefixed SchemaHash.
const SCHEMA_DOMAIN: &[u8] = b"FCP2-SCHEMA-V1";
/// Domain string of the fcp-crypto signing bytes.
const SIGN_DOMAIN: &[u8] = b"FCP2-SIGN-V1";

/// Why a SchemaId is refused, in the order the checks run (`vectors/README.md` §5.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The version is not strict SemVer 2.0.0.
    #[error("schema version {0:?} is not semver 2.0.0")]
    InvalidSemver(String),
    /// The namespace or name contains `:` or `@`.
    #[error("schema namespace or name contains ':' or '@'")]
    ReservedSeparator,
}

impl SchemaError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            SchemaError::InvalidSemver(_) => "invalid_semver",
            SchemaError::ReservedSeparator => "reserved_separator",
        }
    }
}

/// A validated `namespace:name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSchemaId", into = "RawSchemaId")]
pub struct SchemaId {
    namespace: String,
    name: String,
    version: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchemaId {
    namespace: String,
    name: String,
    version: String,
}

impl TryFrom<RawSchemaId> for SchemaId {
    type Error = SchemaError;
    fn try_from(r: RawSchemaId) -> Result<Self, SchemaError> {
        SchemaId::new(&r.namespace, &r.name, &r.version)
    }
}

impl From<SchemaId> for RawSchemaId {
    fn from(s: SchemaId) -> Self {
        RawSchemaId { namespace: s.namespace, name: s.name, version: s.version }
    }
}

impl SchemaId {
    /// Validates and builds a SchemaId. The version is checked first, as in \[I\].
    pub fn new(namespace: &str, name: &str, version: &str) -> Result<Self, SchemaError> {
        if !is_strict_semver(version) {
            return Err(SchemaError::InvalidSemver(version.to_owned()));
        }
        if namespace.contains([':', '@']) || name.contains([':', '@']) {
            return Err(SchemaError::ReservedSeparator);
        }
        Ok(SchemaId { namespace: namespace.to_owned(), name: name.to_owned(), version: version.to_owned() })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version as written.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The length-prefixed preimage of the SchemaHash.
    pub fn hash_preimage(&self) -> Vec<u8> {
        let mut p =
            Vec::with_capacity(SCHEMA_DOMAIN.len() + 24 + self.namespace.len() + self.name.len() + self.version.len());
        p.extend_from_slice(SCHEMA_DOMAIN);
        for part in [&self.namespace, &self.name, &self.version] {
            p.extend_from_slice(&(part.len() as u64).to_le_bytes());
            p.extend_from_slice(part.as_bytes());
        }
        p
    }

    /// `SchemaHash = BLAKE3(FCP2-SCHEMA-V1 || u64le-prefixed parts)` (digest §1.2).
    pub fn hash(&self) -> SchemaHash {
        SchemaHash(*blake3::hash(&self.hash_preimage()).as_bytes())
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.namespace, self.name, self.version)
    }
}

/// The 32-byte hash of a SchemaId.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SchemaHash(pub [u8; 32]);

/// Strict SemVer 2.0.0: what \[I\]'s `semver::Version` accepts and prints back unchanged.
pub fn is_strict_semver(s: &str) -> bool {
    // semver::Version::parse is strict on the numeric parts; a round trip rejects
    // anything it would normalise, and the identifier rules are checked here.
    let Ok(v) = semver::Version::parse(s) else { return false };
    if v.to_string() != s {
        return false;
    }
    let pre_ok = v.pre.is_empty()
        || v.pre
            .as_str()
            .split('.')
            .all(|id| !id.is_empty() && (!id.bytes().all(|b| b.is_ascii_digit()) || id == "0" || !id.starts_with('0')));
    let build_ok = v.build.is_empty() || v.build.as_str().split('.').all(|id| !id.is_empty());
    pre_ok && build_ok
}

/// `SchemaHash(32) || det-CBOR(value)`: the canonical payload (digest §1.2).
pub fn canonical_payload<T: Serialize + ?Sized>(schema: &SchemaId, value: &T) -> Result<Vec<u8>, cbor::CborError> {
    let mut out = schema.hash().0.to_vec();
    out.extend_from_slice(&cbor::to_vec(value)?);
    Ok(out)
}

/// Checks the schema prefix of a canonical payload and strictly decodes the rest.
pub fn decode_payload<T: serde::de::DeserializeOwned>(
    schema: &SchemaId,
    bytes: &[u8],
    limits: cbor::Limits,
) -> Result<T, cbor::CborError> {
    let hash = schema.hash();
    match bytes.split_first_chunk::<32>() {
        Some((prefix, rest)) if *prefix == hash.0 => cbor::from_slice(rest, limits),
        _ => Err(cbor::CborError::Shape(format!("payload does not start with the schema hash of {schema}"))),
    }
}

/// `BLAKE3(schema_id_string)[0..8]` of the fcp-crypto signing bytes.
pub fn schema_hash8(schema_id: &str) -> [u8; 8] {
    let h = blake3::hash(schema_id.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.as_bytes()[..8]);
    out
}

/// `"FCP2-SIGN-V1" || schema_hash8 || cbor` (digest §1.2), the preimage of
/// attestation and policy-object signatures.
pub fn signing_bytes(schema_id: &str, cbor: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGN_DOMAIN.len() + 8 + cbor.len());
    out.extend_from_slice(SIGN_DOMAIN);
    out.extend_from_slice(&schema_hash8(schema_id));
    out.extend_from_slice(cbor);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_struct_hash() {
        let s = SchemaId::new("fcp.test", "GoldenStruct", "1.0.0").expect("valid");
        assert_eq!(hex::encode(s.hash().0), "824698784c7724fe18470ecdd2c2199abb4632c25998c9d143adab875e8ca5d7");
    }

    #[test]
    fn semver_is_strict() {
        for ok in ["1.0.0", "0.0.0", "1.2.3-alpha.1", "1.2.3-0", "1.2.3+build.7", "1.2.3-x-y.0a+b"] {
            assert!(is_strict_semver(ok), "{ok}");
        }
        for bad in ["1.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a..b", "v1.0.0", " 1.0.0", "1.0.0+a..b"] {
            assert!(!is_strict_semver(bad), "{bad}");
        }
    }

    #[test]
    fn version_is_checked_before_separators() {
        assert_eq!(SchemaId::new("a:b", "n", "x").map_err(|e| e.code()), Err("invalid_semver"));
        assert_eq!(SchemaId::new("a:b", "n", "1.0.0").map_err(|e| e.code()), Err("reserved_separator"));
        assert_eq!(SchemaId::new("", "", "1.0.0").map(|s| s.to_string()), Ok(":@1.0.0".to_owned()));
    }
}
