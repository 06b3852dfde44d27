//! Identity (digest §10): the owner key, each node's signing, encryption and
//! issuance keys, domain-separated signatures, n-of-m signature sets,
//! NodeKeyAttestation and DeviceEnrollment.
//!
//! Secret keys zeroize on drop (ed25519-dalek and x25519-dalek with `zeroize`) and
//! their `Debug` prints only the key id.

use std::collections::BTreeSet;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{is_canonical_id, Kid, ZoneId};
use crate::schema::signing_bytes;

/// Why a key, signature or identity object is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A public key is not a valid curve point.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The kid named does not belong to the key.
    #[error("key id {named} does not match key (kid {actual})")]
    KidMismatch {
        /// The kid the object names.
        named: Kid,
        /// The kid of the key.
        actual: Kid,
    },
    /// Fewer valid signatures than the threshold.
    #[error("{valid} valid signature(s), {required} required")]
    Quorum {
        /// Distinct signers whose signature verified.
        valid: usize,
        /// The threshold.
        required: usize,
    },
    /// A signature set is not sorted by node id or repeats one.
    #[error("signature set is not sorted by node id without repeats")]
    UnsortedSignatures,
    /// The object is outside its validity window.
    #[error("not valid at {now}: window is {from}..{until}")]
    Expired {
        /// The time checked.
        now: u64,
        /// Start of the window.
        from: u64,
        /// End of the window (exclusive).
        until: u64,
    },
    /// A field breaks its grammar or limit.
    #[error("invalid {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
}

impl KeyError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::InvalidPublicKey => "invalid_public_key",
            KeyError::BadSignature => "invalid_signature",
            KeyError::KidMismatch { .. } => "kid_mismatch",
            KeyError::Quorum { .. } => "quorum_not_met",
            KeyError::UnsortedSignatures => "signatures_unsorted",
            KeyError::Expired { .. } => "expired",
            KeyError::Invalid { .. } => "invalid_field",
            KeyError::Encode(_) => "encode",
        }
    }
}

macro_rules! ed25519_role {
    ($(#[$doc:meta])* $secret:ident, $public:ident) => {
        $(#[$doc])*
        pub struct $secret(SigningKey);

        impl $secret {
            /// Generates a fresh key from the caller's RNG.
            pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
                $secret(SigningKey::generate(rng))
            }

            /// Rebuilds the key from its 32-byte seed.
            pub fn from_seed(seed: &[u8; 32]) -> Self {
                $secret(SigningKey::from_bytes(seed))
            }

            /// The seed, for sealed storage only.
            pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
                zeroize::Zeroizing::new(self.0.to_bytes())
            }

            /// The public half.
            pub fn public(&self) -> $public {
                $public(self.0.verifying_key())
            }

            /// The key id.
            pub fn kid(&self) -> Kid {
                self.public().kid()
            }

            /// Signs a domain-separated object: `FCP2-SIGN-V1 || schema_hash8 || cbor`.
            pub fn sign_object(&self, schema_id: &str, cbor: &[u8]) -> [u8; 64] {
                self.0.sign(&signing_bytes(schema_id, cbor)).to_bytes()
            }

            /// Signs a preimage that already carries its own domain string.
            pub fn sign_raw(&self, preimage: &[u8]) -> [u8; 64] {
                self.0.sign(preimage).to_bytes()
            }

            /// The dalek key, for protocol code that needs it (COSE, handshakes).
            pub fn as_dalek(&self) -> &SigningKey {
                &self.0
            }
        }

        impl fmt::Debug for $secret {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($secret), "(kid {})"), self.kid())
            }
        }

        /// The public half of the key.
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $public(VerifyingKey);

        impl $public {
            /// Parses 32 bytes.
            pub fn from_bytes(b: &[u8; 32]) -> Result<Self, KeyError> {
                VerifyingKey::from_bytes(b).map($public).map_err(|_| KeyError::InvalidPublicKey)
            }

            /// The 32 bytes.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            /// The key id.
            pub fn kid(&self) -> Kid {
                Kid::of(self.0.as_bytes())
            }

            /// Verifies a domain-separated object signature (strict Ed25519).
            pub fn verify_object(&self, schema_id: &str, cbor: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
                self.verify_raw(&signing_bytes(schema_id, cbor), sig)
            }

            /// Verifies a signature over a preimage that carries its own domain string.
            pub fn verify_raw(&self, preimage: &[u8], sig: &[u8; 64]) -> Result<(), KeyError> {
                let sig = ed25519_dalek::Signature::from_bytes(sig);
                self.0.verify_strict(preimage, &sig).map_err(|_| KeyError::BadSignature)
            }

            /// The dalek key.
            pub fn as_dalek(&self) -> &VerifyingKey {
                &self.0
            }
        }

        impl fmt::Debug for $public {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($public), "({})"), hex::encode(self.0.as_bytes()))
            }
        }

        impl Serialize for $public {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde_bytes::Bytes::new(self.0.as_bytes()).serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $public {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let b = serde_bytes::ByteBuf::deserialize(d)?;
                let arr: [u8; 32] = b.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(b.len(), &"32 bytes"))?;
                $public::from_bytes(&arr).map_err(serde::de::Error::custom)
            }
        }
    };
}

ed25519_role!(
    /// The owner's Ed25519 key: root of every zone's authority (digest §10.1).
    OwnerKey, OwnerPublicKey
);
ed25519_role!(
    /// A node's signing key: handshakes, frames, receipts, audit events.
    NodeSigningKey, NodeSigningPublicKey
);
ed25519_role!(
    /// A node's issuance key: mints capability tokens only; separately revocable.
    NodeIssuanceKey, NodeIssuancePublicKey
);
ed25519_role!(
    /// A connector publisher's key: signs connector packages (`package`); which
    /// publishers to trust is owner policy.
    PublisherKey, PublisherPublicKey
);

/// A node's X25519 encryption key: receives HPKE-sealed zone keys and shares.
pub struct NodeEncryptionKey(x25519_dalek::StaticSecret);

impl NodeEncryptionKey {
    /// Generates a fresh key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        NodeEncryptionKey(x25519_dalek::StaticSecret::random_from_rng(rng))
    }

    /// Rebuilds the key from its 32 secret bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        NodeEncryptionKey(x25519_dalek::StaticSecret::from(b))
    }

    /// The secret bytes, for sealed storage only.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key bytes.
    pub fn public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> Kid {
        Kid::of(&self.public())
    }

    /// The x25519 secret, for opening HPKE boxes.
    pub fn as_x25519(&self) -> &x25519_dalek::StaticSecret {
        &self.0
    }
}

impl fmt::Debug for NodeEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeEncryptionKey(kid {})", self.kid())
    }
}

/// A node's full key set.
#[derive(Debug)]
pub struct NodeKeys {
    /// The node's canonical id.
    pub node_id: String,
    /// Signing key.
    pub signing: NodeSigningKey,
    /// Encryption key.
    pub encryption: NodeEncryptionKey,
    /// Issuance key.
    pub issuance: NodeIssuanceKey,
}

impl NodeKeys {
    /// Generates all three keys for `node_id`.
    pub fn generate(node_id: &str, rng: &mut impl CryptoRngCore) -> Result<Self, KeyError> {
        check_node_id(node_id)?;
        Ok(NodeKeys {
            node_id: node_id.to_owned(),
            signing: NodeSigningKey::generate(rng),
            encryption: NodeEncryptionKey::generate(rng),
            issuance: NodeIssuanceKey::generate(rng),
        })
    }
}

impl NodeKeys {
    /// The public halves, for an attestation or an enrollment request.
    pub fn public_keys(&self) -> NodePublicKeys {
        NodePublicKeys {
            node_id: self.node_id.clone(),
            signing: self.signing.public(),
            encryption: self.encryption.public(),
            issuance: self.issuance.public(),
        }
    }
}

/// A node's public keys: what an owner sees of a device it enrolls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePublicKeys {
    /// The node's canonical id.
    pub node_id: String,
    /// Signing key.
    pub signing: NodeSigningPublicKey,
    /// Encryption key (X25519).
    pub encryption: [u8; 32],
    /// Issuance key.
    pub issuance: NodeIssuancePublicKey,
}

fn check_node_id(node_id: &str) -> Result<(), KeyError> {
    if is_canonical_id(node_id) {
        Ok(())
    } else {
        Err(KeyError::Invalid { field: "node_id", why: format!("{node_id:?} is not a canonical id") })
    }
}

mod sig64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(sig))
        } else {
            s.serialize_bytes(sig)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)?
        } else {
            serde_bytes::ByteBuf::deserialize(d)?.into_vec()
        };
        v.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 bytes"))
    }
}

/// One node's signature in a set: `{node_id, signature, signed_at}` (\[I\] NodeSignature;
/// the signature is bstr in CBOR and hex in JSON, digest §1.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSignature {
    /// The signer.
    pub node_id: String,
    /// Ed25519 signature.
    #[serde(with = "sig64")]
    pub signature: [u8; 64],
    /// When it was signed (seconds).
    pub signed_at: u64,
}

/// An n-of-m signature set, sorted by node id without repeats (digest §8.3, §9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignatureSet(Vec<NodeSignature>);

impl SignatureSet {
    /// An empty set.
    pub fn new() -> Self {
        SignatureSet(Vec::new())
    }

    /// Adds or replaces `sig`, keeping the set sorted by node id.
    pub fn insert(&mut self, sig: NodeSignature) {
        match self.0.binary_search_by(|s| s.node_id.as_str().cmp(&sig.node_id)) {
            Ok(i) => self.0[i] = sig,
            Err(i) => self.0.insert(i, sig),
        }
    }

    /// The signatures in order.
    pub fn signatures(&self) -> &[NodeSignature] {
        &self.0
    }

    /// Checks that at least `threshold` distinct listed signers signed `preimage`.
    ///
    /// `key_of` returns the signing key of a node the verifier trusts, or `None`.
    /// Unknown signers and bad signatures do not count; a set that is not sorted
    /// by node id, or that repeats one, is refused outright.
    pub fn verify_quorum(
        &self,
        preimage: &[u8],
        threshold: usize,
        key_of: impl Fn(&str) -> Option<NodeSigningPublicKey>,
    ) -> Result<usize, KeyError> {
        if self.0.windows(2).any(|w| w[0].node_id >= w[1].node_id) {
            return Err(KeyError::UnsortedSignatures);
        }
        let valid = self
            .0
            .iter()
            .filter(|s| key_of(&s.node_id).is_some_and(|k| k.verify_raw(preimage, &s.signature).is_ok()))
            .count();
        if valid >= threshold.max(1) {
            Ok(valid)
        } else {
            Err(KeyError::Quorum { valid, required: threshold.max(1) })
        }
    }
}

/// How a node's keys are held, as proven at enrollment (the attestation issue fills
/// in TPM evidence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePosture {
    /// `software` or `tpm`.
    pub kind: PostureKind,
    /// Keys are bound to hardware.
    pub hardware_backed: bool,
    /// Digest of the quoted PCRs, when a TPM quoted them.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub pcr_digest: Option<Vec<u8>>,
    /// TPM manufacturer, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_manufacturer: Option<String>,
    /// When the posture was verified (seconds).
    pub verified_at: u64,
}

/// The kind of posture evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostureKind {
    /// No hardware: keys live in software.
    Software,
    /// A TPM 2.0 quote by an attestation key bound to the node's keys.
    Tpm,
}

/// Maximum validity of a NodeKeyAttestation (\[I\]: 24 h).
pub const MAX_ATTESTATION_VALIDITY_SECS: u64 = 24 * 3600;
/// How far in the future `issued_at` may be (\[I\]: 300 s).
pub const MAX_ISSUED_AT_SKEW_SECS: u64 = 300;
/// Schema id string of the attestation signing bytes (\[I\] fcp-tailscale).
pub const ATTESTATION_SCHEMA: &str = "fcp.attestation.v1";

/// The owner's statement that these keys belong to this node (digest §10.2).
///
/// Signed bytes follow \[I\]: `FCP2-SIGN-V1 || BLAKE3("fcp.attestation.v1")[:8] ||
/// det-CBOR({schema, node_id, signing_kid, encryption_kid, issuance_kid, tags,
/// issued_at, expires_at})` with hex kids and sorted, deduplicated tags. The public
/// keys travel beside it and are bound by their kids; a posture, when present, is
/// added to the signed map as `posture` (our extension, spec/identity.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeKeyAttestation {
    /// The node.
    pub node_id: String,
    /// Signing key.
    pub signing_key: NodeSigningPublicKey,
    /// Encryption key (X25519).
    #[serde(with = "serde_bytes")]
    pub encryption_key: [u8; 32],
    /// Issuance key.
    pub issuance_key: NodeIssuancePublicKey,
    /// Tags, sorted and deduplicated, each a canonical id ≤ 64 bytes.
    pub tags: Vec<String>,
    /// Start of validity (seconds).
    pub issued_at: u64,
    /// End of validity (seconds, exclusive).
    pub expires_at: u64,
    /// Posture proven at enrollment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<DevicePosture>,
    /// Owner kid that signed.
    pub signer_kid: Kid,
    /// Owner signature.
    #[serde(with = "sig64")]
    pub signature: [u8; 64],
}

/// What the owner signs in an attestation.
#[derive(Clone, Debug)]
pub struct AttestationClaims<'a> {
    /// The node's keys.
    pub node: &'a NodeKeys,
    /// Tags.
    pub tags: &'a [&'a str],
    /// Start of validity.
    pub issued_at: u64,
    /// End of validity.
    pub expires_at: u64,
    /// Proven posture.
    pub posture: Option<DevicePosture>,
}

impl NodeKeyAttestation {
    fn signed_cbor(&self) -> Result<Vec<u8>, KeyError> {
        let t = |s: &str| cbor::Value::text(s);
        let mut entries = vec![
            (t("schema"), t(ATTESTATION_SCHEMA)),
            (t("node_id"), t(&self.node_id)),
            (t("signing_kid"), t(&self.signing_key.kid().to_string())),
            (t("encryption_kid"), t(&Kid::of(&self.encryption_key).to_string())),
            (t("issuance_kid"), t(&self.issuance_key.kid().to_string())),
            (t("tags"), cbor::Value::Array(self.tags.iter().map(|s| t(s)).collect())),
            (t("issued_at"), cbor::Value::Int(i128::from(self.issued_at))),
            (t("expires_at"), cbor::Value::Int(i128::from(self.expires_at))),
        ];
        if let Some(p) = &self.posture {
            entries.push((t("posture"), cbor::to_value(p).map_err(|e| KeyError::Encode(e.to_string()))?));
        }
        cbor::encode(&cbor::Value::Map(entries)).map_err(|e| KeyError::Encode(e.to_string()))
    }

    fn check_fields(&self) -> Result<(), KeyError> {
        check_node_id(&self.node_id)?;
        let sorted: BTreeSet<&String> = self.tags.iter().collect();
        if sorted.len() != self.tags.len() || !self.tags.windows(2).all(|w| w[0] < w[1]) {
            return Err(KeyError::Invalid { field: "tags", why: "not sorted and deduplicated".into() });
        }
        if let Some(bad) = self.tags.iter().find(|t| t.len() > 64 || !is_canonical_id(t)) {
            return Err(KeyError::Invalid {
                field: "tags",
                why: format!("{bad:?} is not a canonical id of ≤ 64 bytes"),
            });
        }
        if self.expires_at <= self.issued_at || self.expires_at - self.issued_at > MAX_ATTESTATION_VALIDITY_SECS {
            return Err(KeyError::Invalid {
                field: "expires_at",
                why: format!("validity must be 1..={MAX_ATTESTATION_VALIDITY_SECS} s"),
            });
        }
        Ok(())
    }

    /// The owner signs an attestation for a node's keys.
    pub fn issue(owner: &OwnerKey, claims: AttestationClaims<'_>) -> Result<Self, KeyError> {
        Self::issue_public(
            owner,
            &claims.node.public_keys(),
            claims.tags,
            claims.issued_at,
            claims.expires_at,
            claims.posture,
        )
    }

    /// The owner signs an attestation for public keys it was shown, without their
    /// secrets: enrolling another device (fcp-attest, spec/attest.md).
    pub fn issue_public(
        owner: &OwnerKey,
        keys: &NodePublicKeys,
        tags: &[&str],
        issued_at: u64,
        expires_at: u64,
        posture: Option<DevicePosture>,
    ) -> Result<Self, KeyError> {
        let mut tags: Vec<String> = tags.iter().map(|s| (*s).to_owned()).collect();
        tags.sort();
        tags.dedup();
        let mut a = NodeKeyAttestation {
            node_id: keys.node_id.clone(),
            signing_key: keys.signing,
            encryption_key: keys.encryption,
            issuance_key: keys.issuance,
            tags,
            issued_at,
            expires_at,
            posture,
            signer_kid: owner.kid(),
            signature: [0; 64],
        };
        a.check_fields()?;
        a.signature = owner.sign_object(ATTESTATION_SCHEMA, &a.signed_cbor()?);
        Ok(a)
    }

    /// Verifies the owner's signature, the fields and the validity window at `now`.
    pub fn verify(&self, owner: &OwnerPublicKey, now: u64) -> Result<(), KeyError> {
        self.check_fields()?;
        if self.signer_kid != owner.kid() {
            return Err(KeyError::KidMismatch { named: self.signer_kid, actual: owner.kid() });
        }
        owner.verify_object(ATTESTATION_SCHEMA, &self.signed_cbor()?, &self.signature)?;
        self.check_window(now)
    }

    /// Only the validity window at `now`: for an attestation whose signature was already
    /// verified (a trust store verifies on insertion).
    pub fn check_window(&self, now: u64) -> Result<(), KeyError> {
        if now.saturating_add(MAX_ISSUED_AT_SKEW_SECS) < self.issued_at || now >= self.expires_at {
            return Err(KeyError::Expired { now, from: self.issued_at, until: self.expires_at });
        }
        Ok(())
    }

    /// Whether the attested keys are hardware-backed.
    pub fn hardware_backed(&self) -> bool {
        self.posture.as_ref().is_some_and(|p| p.hardware_backed)
    }
}

/// What a device may store (digest §10.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoragePermission {
    /// Symbols of these zones.
    StoreSymbols {
        /// The zones.
        zones: Vec<ZoneId>,
    },
    /// Secret shares.
    StoreSecretShares,
    /// Audit events.
    StoreAuditEvents,
}

/// Schema id string of DeviceEnrollment signing bytes.
pub const ENROLLMENT_SCHEMA: &str = "fcp.core.DeviceEnrollment/1.0.0";

/// The owner admits a device to the mesh (digest §10.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEnrollment {
    /// The node.
    pub node_id: String,
    /// Its signing key.
    pub node_sig_pubkey: NodeSigningPublicKey,
    /// Zones it may join.
    pub allowed_zones: Vec<ZoneId>,
    /// What it may store.
    pub storage_permissions: Vec<StoragePermission>,
    /// Issue time.
    pub issued_at: u64,
    /// Optional end of validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Owner signature over the rest.
    #[serde(with = "sig64")]
    pub signature: [u8; 64],
}

impl DeviceEnrollment {
    fn unsigned_cbor(&self) -> Result<Vec<u8>, KeyError> {
        cbor::to_vec_without(self, "signature").map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The owner signs an enrollment.
    pub fn issue(
        owner: &OwnerKey,
        node_id: &str,
        node_sig_pubkey: NodeSigningPublicKey,
        allowed_zones: Vec<ZoneId>,
        storage_permissions: Vec<StoragePermission>,
        issued_at: u64,
        expires_at: Option<u64>,
    ) -> Result<Self, KeyError> {
        check_node_id(node_id)?;
        let mut e = DeviceEnrollment {
            node_id: node_id.to_owned(),
            node_sig_pubkey,
            allowed_zones,
            storage_permissions,
            issued_at,
            expires_at,
            signature: [0; 64],
        };
        e.signature = owner.sign_object(ENROLLMENT_SCHEMA, &e.unsigned_cbor()?);
        Ok(e)
    }

    /// Verifies the owner's signature and validity at `now`.
    pub fn verify(&self, owner: &OwnerPublicKey, now: u64) -> Result<(), KeyError> {
        check_node_id(&self.node_id)?;
        owner.verify_object(ENROLLMENT_SCHEMA, &self.unsigned_cbor()?, &self.signature)?;
        match self.expires_at {
            Some(until) if now >= until || now < self.issued_at => {
                Err(KeyError::Expired { now, from: self.issued_at, until })
            }
            _ => Ok(()),
        }
    }

    /// Whether the enrollment admits the node to `zone`.
    pub fn allows_zone(&self, zone: &ZoneId) -> bool {
        self.allowed_zones.contains(zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    fn attested() -> (OwnerKey, NodeKeys, NodeKeyAttestation) {
        let mut r = rng();
        let owner = OwnerKey::generate(&mut r);
        let node = NodeKeys::generate("node-a", &mut r).expect("node");
        let att = NodeKeyAttestation::issue(
            &owner,
            AttestationClaims {
                node: &node,
                tags: &["laptop", "fcp", "laptop"],
                issued_at: 1000,
                expires_at: 5000,
                posture: None,
            },
        )
        .expect("issue");
        (owner, node, att)
    }

    #[test]
    fn debug_never_prints_secrets() {
        let (owner, node, _) = attested();
        let seed_hex = hex::encode(*owner.to_seed());
        let dbg = format!("{owner:?} {node:?}");
        assert!(!dbg.contains(&seed_hex), "{dbg}");
        assert!(!dbg.contains(&hex::encode(*node.encryption.to_bytes())));
        assert!(dbg.contains(&owner.kid().to_string()));
    }

    #[test]
    fn attestation_verifies_and_binds_fields() {
        let (owner, _, att) = attested();
        assert_eq!(att.tags, vec!["fcp".to_owned(), "laptop".to_owned()]);
        assert_eq!(att.verify(&owner.public(), 2000), Ok(()));
        assert!(matches!(att.verify(&owner.public(), 5000), Err(KeyError::Expired { .. })));
        let mut other = att.clone();
        other.node_id = "node-b".into();
        assert_eq!(other.verify(&owner.public(), 2000), Err(KeyError::BadSignature));
        let stranger = OwnerKey::generate(&mut ChaCha20Rng::seed_from_u64(9));
        assert!(matches!(att.verify(&stranger.public(), 2000), Err(KeyError::KidMismatch { .. })));
    }

    #[test]
    fn attestation_validity_capped_at_24h() {
        let mut r = rng();
        let owner = OwnerKey::generate(&mut r);
        let node = NodeKeys::generate("node-a", &mut r).expect("node");
        let claims = AttestationClaims { node: &node, tags: &[], issued_at: 0, expires_at: 86_401, posture: None };
        assert_eq!(NodeKeyAttestation::issue(&owner, claims).map_err(|e| e.code()), Err("invalid_field"));
    }

    #[test]
    fn attestation_cbor_round_trip() {
        let (_, _, att) = attested();
        let bytes = cbor::to_vec(&att).expect("encode");
        let back: NodeKeyAttestation = cbor::from_slice(&bytes, cbor::Limits::with_max_len(4096)).expect("decode");
        assert_eq!(back, att);
    }

    #[test]
    fn quorum_counts_distinct_trusted_signers() {
        let mut r = rng();
        let keys: Vec<NodeSigningKey> = (0..3).map(|_| NodeSigningKey::generate(&mut r)).collect();
        let names = ["n1", "n2", "n3"];
        let msg = b"FCP2-TEST-V1 head";
        let mut set = SignatureSet::new();
        for (k, n) in keys.iter().zip(names).rev() {
            set.insert(NodeSignature { node_id: n.into(), signature: k.sign_raw(msg), signed_at: 1 });
        }
        let key_of = |id: &str| names.iter().position(|n| *n == id).map(|i| keys[i].public());
        assert_eq!(set.verify_quorum(msg, 3, key_of), Ok(3));
        assert_eq!(set.verify_quorum(b"other", 1, key_of), Err(KeyError::Quorum { valid: 0, required: 1 }));
        let only_two = |id: &str| if id == "n3" { None } else { key_of(id) };
        assert_eq!(set.verify_quorum(msg, 3, only_two), Err(KeyError::Quorum { valid: 2, required: 3 }));
        let mut unsorted = set.clone();
        unsorted.0.swap(0, 1);
        assert_eq!(unsorted.verify_quorum(msg, 1, key_of), Err(KeyError::UnsortedSignatures));
    }

    #[test]
    fn enrollment_round_trip() {
        let (owner, node, _) = attested();
        let zones = vec![ZoneId::new("z:work").expect("zone")];
        let e = DeviceEnrollment::issue(
            &owner,
            "node-a",
            node.signing.public(),
            zones.clone(),
            vec![StoragePermission::StoreSymbols { zones }, StoragePermission::StoreAuditEvents],
            100,
            Some(200),
        )
        .expect("issue");
        assert_eq!(e.verify(&owner.public(), 150), Ok(()));
        assert!(matches!(e.verify(&owner.public(), 200), Err(KeyError::Expired { .. })));
        let bytes = cbor::to_vec(&e).expect("encode");
        let back: DeviceEnrollment = cbor::from_slice(&bytes, cbor::Limits::with_max_len(4096)).expect("decode");
        assert_eq!(back, e);
    }

    proptest! {
        #[test]
        fn any_bit_flip_breaks_the_attestation(byte in 0usize..400, bit in 0u8..8) {
            let (owner, _, att) = attested();
            let mut bytes = cbor::to_vec(&att).expect("encode");
            let i = byte % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(tampered) = cbor::from_slice::<NodeKeyAttestation>(&bytes, cbor::Limits::with_max_len(4096)) {
                prop_assert!(tampered.verify(&owner.public(), 2000).is_err());
            }
        }
    }
}
