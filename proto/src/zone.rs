//! Zones (digest §6): owner-signed zone definitions and policy objects (capability
//! ceilings, transport policy, hardware-key requirement, revocation freshness), the
//! five standard zones, and per-zone AEAD of object bodies.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cbor;
use crate::decision::SafetyTier;
use crate::hpke::{self, AadFields, HpkePurpose, HpkeSealedBox};
use crate::id::{Kid, ObjectIdKey, ZoneId};
use crate::keys::{KeyError, NodeEncryptionKey, NodeKeyAttestation, OwnerKey, OwnerPublicKey};
use crate::provenance::{Confidentiality, Integrity};
use crate::revocation::FreshnessPolicy;

/// Schema id string of zone definition signatures.
pub const ZONE_DEFINITION_SCHEMA: &str = "fcp.core.ZoneDefinition/1.0.0";
/// Schema id string of zone policy signatures.
pub const ZONE_POLICY_SCHEMA: &str = "fcp.core.ZonePolicy/1.0.0";

/// Why a zone object is refused.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// Signature or signer problem.
    #[error("zone object signature")]
    Signature(#[source] KeyError),
    /// A glob pattern breaks its grammar (ASCII, ≤ 128 bytes, only `*` and `?` special).
    #[error("invalid pattern {0:?}")]
    Pattern(String),
    /// A child zone exceeds its parent.
    #[error("zone levels exceed the parent's")]
    ExceedsParent,
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// Body encryption or decryption failed.
    #[error("zone body aead failed")]
    Aead,
    /// A recipient lacks the hardware-backed keys the zone requires.
    #[error("node {0} has no hardware-backed posture, which zone {1} requires")]
    HardwareRequired(String, ZoneId),
    /// The manifest holds no key for this node.
    #[error("no wrapped key for node {0}")]
    NotARecipient(String),
    /// HPKE sealing or opening failed.
    #[error("hpke")]
    Hpke(#[source] hpke::HpkeError),
    /// A wrapped key has the wrong length.
    #[error("wrapped key has {0} bytes, expected 32")]
    KeyLength(usize),
    /// The body was sealed under another zone key.
    #[error("sealed under zone key {got}, have {have}")]
    WrongKey {
        /// Key id we hold.
        have: String,
        /// Key id in the box.
        got: String,
    },
}

impl ZoneError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ZoneError::Signature(_) => "zone.bad_signature",
            ZoneError::Pattern(_) => "zone.bad_pattern",
            ZoneError::ExceedsParent => "zone.exceeds_parent",
            ZoneError::Encode(_) => "encode",
            ZoneError::Aead => "aead_invalid",
            ZoneError::WrongKey { .. } => "zone.wrong_key",
            ZoneError::HardwareRequired(..) => "zone.hardware_required",
            ZoneError::NotARecipient(_) => "zone.not_a_recipient",
            ZoneError::Hpke(e) => e.code(),
            ZoneError::KeyLength(_) => "zone.bad_key_length",
        }
    }
}

/// Transport policy of a zone (digest §6.1 defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportPolicy {
    /// Relay through DERP.
    pub allow_derp: bool,
    /// Expose through Funnel.
    pub allow_funnel: bool,
    /// LAN broadcast discovery.
    pub allow_lan_broadcast: bool,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy { allow_derp: true, allow_funnel: false, allow_lan_broadcast: true }
    }
}

/// An anchored glob: ASCII, ≤ 128 bytes, `*` any run, `?` any one character (digest §6.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob(String);

impl Glob {
    /// Validates a pattern.
    pub fn new(p: &str) -> Result<Self, ZoneError> {
        if p.is_empty() || p.len() > 128 || !p.is_ascii() || p.bytes().any(|b| b.is_ascii_control()) {
            return Err(ZoneError::Pattern(p.to_owned()));
        }
        Ok(Glob(p.to_owned()))
    }

    /// Case-sensitive anchored match, linear time.
    pub fn matches(&self, s: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), s.as_bytes());
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl TryFrom<String> for Glob {
    type Error = ZoneError;
    fn try_from(s: String) -> Result<Self, ZoneError> {
        Glob::new(&s)
    }
}

impl From<Glob> for String {
    fn from(g: Glob) -> String {
        g.0
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.0)
    }
}

/// Allow and deny globs for one dimension.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowDeny {
    /// Matches that are allowed.
    pub allow: Vec<Glob>,
    /// Matches that are denied, whatever `allow` says.
    pub deny: Vec<Glob>,
}

/// Which step of zone policy refused, and what matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// A deny glob matched.
    Denied {
        /// `principal`, `connector` or `capability`.
        dimension: &'static str,
        /// The value.
        value: String,
        /// The glob.
        pattern: String,
    },
    /// Allow list non-empty, nothing matched, default deny.
    NotAllowed {
        /// `principal`, `connector` or `capability`.
        dimension: &'static str,
        /// The value.
        value: String,
    },
    /// The operation's tier is above the zone's ceiling.
    AboveCeiling {
        /// The tier asked for.
        tier: SafetyTier,
        /// The ceiling.
        ceiling: SafetyTier,
    },
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRefusal::Denied { dimension, value, pattern } => {
                write!(f, "{dimension} {value:?} matches deny pattern {pattern:?}")
            }
            PolicyRefusal::NotAllowed { dimension, value } => {
                write!(f, "{dimension} {value:?} matches no allow pattern and the zone denies by default")
            }
            PolicyRefusal::AboveCeiling { tier, ceiling } => {
                write!(f, "safety tier {tier:?} is above the zone ceiling {ceiling:?}")
            }
        }
    }
}

/// A zone's policy object (digest §6.1 ZonePolicy, plus our ceilings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonePolicy {
    /// Zone.
    pub zone_id: ZoneId,
    /// Principals.
    pub principals: AllowDeny,
    /// Connectors.
    pub connectors: AllowDeny,
    /// Capabilities: the capability ceiling.
    pub capabilities: AllowDeny,
    /// Highest safety tier any operation may have here.
    pub max_safety_tier: SafetyTier,
    /// Deny when an allow list is non-empty and nothing matched.
    pub default_deny: bool,
    /// Nodes must hold hardware-backed keys to receive this zone's keys or connectors.
    pub require_hardware_keys: bool,
    /// Revocation freshness.
    pub freshness: FreshnessPolicy,
    /// Transport policy.
    pub transport: TransportPolicy,
    /// Monotonic version; a newer policy replaces an older one.
    pub version: u64,
}

impl ZonePolicy {
    fn check(dimension: &'static str, ad: &AllowDeny, value: &str, default_deny: bool) -> Result<(), PolicyRefusal> {
        if let Some(g) = ad.deny.iter().find(|g| g.matches(value)) {
            return Err(PolicyRefusal::Denied { dimension, value: value.to_owned(), pattern: g.0.clone() });
        }
        if default_deny && !ad.allow.is_empty() && !ad.allow.iter().any(|g| g.matches(value)) {
            return Err(PolicyRefusal::NotAllowed { dimension, value: value.to_owned() });
        }
        Ok(())
    }

    /// Evaluates principal → connector → capability, then the tier ceiling (digest §6.1).
    pub fn evaluate(
        &self,
        principal: &str,
        connector: &str,
        capability: &str,
        tier: SafetyTier,
    ) -> Result<(), PolicyRefusal> {
        Self::check("principal", &self.principals, principal, self.default_deny)?;
        Self::check("connector", &self.connectors, connector, self.default_deny)?;
        Self::check("capability", &self.capabilities, capability, self.default_deny)?;
        if tier > self.max_safety_tier {
            return Err(PolicyRefusal::AboveCeiling { tier, ceiling: self.max_safety_tier });
        }
        Ok(())
    }
}

/// A zone's definition (digest §6.1 ZoneDefinitionObject).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneDefinition {
    /// Zone.
    pub zone_id: ZoneId,
    /// Display name.
    pub name: String,
    /// Integrity level.
    pub integrity: Integrity,
    /// Confidentiality level.
    pub confidentiality: Confidentiality,
    /// Mesh symbol port.
    pub symbol_port: u16,
    /// Mesh control port.
    pub control_port: u16,
    /// Parent zone, if any; a child never exceeds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ZoneId>,
}

/// An owner-signed object: the body, the owner kid and the signature over
/// `FCP2-SIGN-V1 || schema_hash8 || det-CBOR(body)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerSigned<T> {
    /// The signed content.
    pub body: T,
    /// Owner kid.
    pub signer_kid: Kid,
    /// Signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// A body the owner signs, with its schema id.
pub trait OwnerSignable: Serialize {
    /// The schema id string of its signing bytes.
    const SCHEMA: &'static str;
}

impl OwnerSignable for ZoneDefinition {
    const SCHEMA: &'static str = ZONE_DEFINITION_SCHEMA;
}

impl OwnerSignable for ZonePolicy {
    const SCHEMA: &'static str = ZONE_POLICY_SCHEMA;
}

impl<T: OwnerSignable> OwnerSigned<T> {
    /// The owner signs `body`.
    pub fn sign(owner: &OwnerKey, body: T) -> Result<Self, ZoneError> {
        let bytes = cbor::to_vec(&body).map_err(|e| ZoneError::Encode(e.to_string()))?;
        let signature = owner.sign_object(T::SCHEMA, &bytes).to_vec();
        Ok(OwnerSigned { body, signer_kid: owner.kid(), signature })
    }

    /// Verifies the owner's signature and returns the body.
    pub fn verify(&self, owner: &OwnerPublicKey) -> Result<&T, ZoneError> {
        if self.signer_kid != owner.kid() {
            return Err(ZoneError::Signature(KeyError::KidMismatch { named: self.signer_kid, actual: owner.kid() }));
        }
        let sig: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| ZoneError::Signature(KeyError::BadSignature))?;
        let bytes = cbor::to_vec(&self.body).map_err(|e| ZoneError::Encode(e.to_string()))?;
        owner.verify_object(T::SCHEMA, &bytes, &sig).map_err(ZoneError::Signature)?;
        Ok(&self.body)
    }
}

/// Checks that `child` does not exceed `parent` on either axis (digest §6.1).
pub fn check_child(parent: &ZoneDefinition, child: &ZoneDefinition) -> Result<(), ZoneError> {
    if child.integrity > parent.integrity || child.confidentiality > parent.confidentiality {
        return Err(ZoneError::ExceedsParent);
    }
    Ok(())
}

/// The definition and default policy of the five standard zones.
pub fn standard_zones() -> Vec<(ZoneDefinition, ZonePolicy)> {
    use Confidentiality as C;
    use Integrity as I;
    let table = [
        ("z:owner", "Owner", I::Owner, C::Owner, SafetyTier::Critical, true),
        ("z:private", "Private", I::Private, C::Private, SafetyTier::Critical, false),
        ("z:work", "Work", I::Work, C::Work, SafetyTier::Dangerous, false),
        ("z:community", "Community", I::Community, C::Community, SafetyTier::Risky, false),
        ("z:public", "Public", I::Untrusted, C::Public, SafetyTier::Risky, false),
    ];
    table
        .into_iter()
        .enumerate()
        .filter_map(|(i, (id, name, integrity, confidentiality, ceiling, hw))| {
            let zone_id = ZoneId::new(id).ok()?;
            let port = 47_100 + 2 * i as u16;
            let def = ZoneDefinition {
                zone_id: zone_id.clone(),
                name: name.to_owned(),
                integrity,
                confidentiality,
                symbol_port: port,
                control_port: port + 1,
                parent: None,
            };
            let policy = ZonePolicy {
                zone_id,
                principals: AllowDeny::default(),
                connectors: AllowDeny::default(),
                capabilities: AllowDeny { allow: Vec::new(), deny: vec![Glob("system.exec".into())] },
                max_safety_tier: ceiling,
                default_deny: true,
                require_hardware_keys: hw,
                freshness: FreshnessPolicy::default(),
                transport: TransportPolicy { allow_funnel: i >= 3, ..TransportPolicy::default() },
                version: 1,
            };
            Some((def, policy))
        })
        .collect()
}

/// Body-encryption algorithm of a zone key (digest §2.3, §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKeyAlgorithm {
    /// 12-byte nonces.
    ChaCha20Poly1305,
    /// 24-byte nonces; the default for bodies sealed with random nonces.
    XChaCha20Poly1305,
}

/// A zone's symmetric key: 32 random bytes with an 8-byte id (digest §6.2).
pub struct ZoneKey {
    /// Opaque id chosen by the manifest issuer.
    pub key_id: [u8; 8],
    /// Algorithm.
    pub algorithm: ZoneKeyAlgorithm,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneKey(id {}, {:?})", hex::encode(self.key_id), self.algorithm)
    }
}

/// A body sealed under a zone key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBody {
    /// Zone key id.
    #[serde(with = "serde_bytes")]
    pub zone_key_id: [u8; 8],
    /// Nonce (12 or 24 bytes by algorithm).
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Ciphertext with the 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl ZoneKey {
    /// Wraps key material.
    pub fn new(key_id: [u8; 8], algorithm: ZoneKeyAlgorithm, key: [u8; 32]) -> Self {
        ZoneKey { key_id, algorithm, key: Zeroizing::new(key) }
    }

    /// Nonce length of the algorithm.
    pub fn nonce_len(&self) -> usize {
        match self.algorithm {
            ZoneKeyAlgorithm::ChaCha20Poly1305 => 12,
            ZoneKeyAlgorithm::XChaCha20Poly1305 => 24,
        }
    }

    /// Seals `body`, binding `aad` (the object's header CBOR). The nonce comes from the
    /// caller's RNG and must never repeat under one key; with XChaCha's 24 bytes a random
    /// nonce is safe.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], body: &[u8]) -> Result<SealedBody, ZoneError> {
        let payload = Payload { msg: body, aad };
        let ct = match (self.algorithm, nonce.len()) {
            (ZoneKeyAlgorithm::ChaCha20Poly1305, 12) => {
                ChaCha20Poly1305::new(self.key.as_ref().into()).encrypt(nonce.into(), payload)
            }
            (ZoneKeyAlgorithm::XChaCha20Poly1305, 24) => {
                XChaCha20Poly1305::new(self.key.as_ref().into()).encrypt(nonce.into(), payload)
            }
            _ => return Err(ZoneError::Aead),
        }
        .map_err(|_| ZoneError::Aead)?;
        Ok(SealedBody { zone_key_id: self.key_id, nonce: nonce.to_vec(), ciphertext: ct })
    }

    /// Opens a body sealed under this key.
    pub fn open(&self, sealed: &SealedBody, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ZoneError> {
        if sealed.zone_key_id != self.key_id {
            return Err(ZoneError::WrongKey { have: hex::encode(self.key_id), got: hex::encode(sealed.zone_key_id) });
        }
        let payload = Payload { msg: &sealed.ciphertext, aad };
        let pt = match (self.algorithm, sealed.nonce.len()) {
            (ZoneKeyAlgorithm::ChaCha20Poly1305, 12) => {
                ChaCha20Poly1305::new(self.key.as_ref().into()).decrypt(sealed.nonce.as_slice().into(), payload)
            }
            (ZoneKeyAlgorithm::XChaCha20Poly1305, 24) => {
                XChaCha20Poly1305::new(self.key.as_ref().into()).decrypt(sealed.nonce.as_slice().into(), payload)
            }
            _ => return Err(ZoneError::Aead),
        }
        .map_err(|_| ZoneError::Aead)?;
        Ok(Zeroizing::new(pt))
    }

    /// The raw key, for HPKE wrapping only.
    pub fn secret(&self) -> &[u8; 32] {
        &self.key
    }
}

/// Schema id string of zone key manifest signatures.
pub const ZONE_KEY_MANIFEST_SCHEMA: &str = "fcp.core.ZoneKeyManifest/1.0.0";

/// One key sealed to one node (\[C\]/\[I\] wrapped entry, digest §6.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// The node it is sealed to.
    pub recipient: String,
    /// When it was sealed.
    pub issued_at: u64,
    /// The HPKE box.
    pub sealed: HpkeSealedBox,
}

/// Distributes a zone key and its ObjectId key to the zone's nodes (digest §6.2),
/// each sealed with HPKE to the node's X25519 key. Owner-signed as
/// `OwnerSigned<ZoneKeyManifest>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneKeyManifest {
    /// Zone.
    pub zone_id: ZoneId,
    /// Id of the zone key.
    #[serde(with = "serde_bytes")]
    pub zone_key_id: [u8; 8],
    /// Its algorithm.
    pub algorithm: ZoneKeyAlgorithm,
    /// Start of validity.
    pub valid_from: u64,
    /// End of validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
    /// The key this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub prev_zone_key_id: Option<[u8; 8]>,
    /// Id of the ObjectId key (stable across routine rotations).
    #[serde(with = "serde_bytes")]
    pub object_id_key_id: [u8; 8],
    /// The zone key, sealed to each node.
    pub wrapped_keys: Vec<WrappedKey>,
    /// The ObjectId key, sealed to each node.
    pub wrapped_object_id_keys: Vec<WrappedKey>,
}

impl OwnerSignable for ZoneKeyManifest {
    const SCHEMA: &'static str = ZONE_KEY_MANIFEST_SCHEMA;
}

/// What a zone key manifest distributes.
pub struct ZoneKeySet<'a> {
    /// The zone key.
    pub zone_key: &'a ZoneKey,
    /// The ObjectId key and its id.
    pub object_id_key: (&'a ObjectIdKey, [u8; 8]),
    /// Start of validity.
    pub valid_from: u64,
    /// End of validity.
    pub valid_until: Option<u64>,
    /// The key this one replaces.
    pub prev_zone_key_id: Option<[u8; 8]>,
}

impl ZoneKeyManifest {
    /// Seals the keys to every attested recipient. The caller has verified each
    /// attestation; a zone that requires hardware-backed keys refuses a node whose
    /// attestation carries no hardware posture, before anything is sealed.
    pub fn build<R: rand_core::RngCore + rand_core::CryptoRng>(
        rng: &mut R,
        policy: &ZonePolicy,
        keys: &ZoneKeySet<'_>,
        recipients: &[&NodeKeyAttestation],
        issued_at: u64,
    ) -> Result<Self, ZoneError> {
        if policy.require_hardware_keys {
            if let Some(a) = recipients.iter().find(|a| !a.hardware_backed()) {
                return Err(ZoneError::HardwareRequired(a.node_id.clone(), policy.zone_id.clone()));
            }
        }
        let seal = |rng: &mut R, secret: &[u8; 32], purpose, a: &NodeKeyAttestation| {
            let aad = AadFields {
                zone_id: policy.zone_id.to_string(),
                recipient_node_id: a.node_id.clone(),
                purpose,
                issued_at,
            };
            let pk = hpke::X25519PublicKey::from(a.encryption_key);
            hpke::seal(rng, &pk, secret, &aad)
                .map(|sealed| WrappedKey { recipient: a.node_id.clone(), issued_at, sealed })
                .map_err(ZoneError::Hpke)
        };
        let mut wrapped_keys = Vec::with_capacity(recipients.len());
        let mut wrapped_object_id_keys = Vec::with_capacity(recipients.len());
        for a in recipients {
            wrapped_keys.push(seal(rng, keys.zone_key.secret(), HpkePurpose::ZoneKey, a)?);
            wrapped_object_id_keys.push(seal(rng, &keys.object_id_key.0 .0, HpkePurpose::ObjectIdKey, a)?);
        }
        Ok(ZoneKeyManifest {
            zone_id: policy.zone_id.clone(),
            zone_key_id: keys.zone_key.key_id,
            algorithm: keys.zone_key.algorithm,
            valid_from: keys.valid_from,
            valid_until: keys.valid_until,
            prev_zone_key_id: keys.prev_zone_key_id,
            object_id_key_id: keys.object_id_key.1,
            wrapped_keys,
            wrapped_object_id_keys,
        })
    }

    fn unwrap(
        &self,
        list: &[WrappedKey],
        purpose: HpkePurpose,
        node_id: &str,
        key: &NodeEncryptionKey,
    ) -> Result<Zeroizing<[u8; 32]>, ZoneError> {
        let w =
            list.iter().find(|w| w.recipient == node_id).ok_or_else(|| ZoneError::NotARecipient(node_id.to_owned()))?;
        let aad = AadFields {
            zone_id: self.zone_id.to_string(),
            recipient_node_id: node_id.to_owned(),
            purpose,
            issued_at: w.issued_at,
        };
        let pt = hpke::open(key.as_x25519(), &w.sealed, &aad).map_err(ZoneError::Hpke)?;
        let arr: [u8; 32] = pt.as_slice().try_into().map_err(|_| ZoneError::KeyLength(pt.len()))?;
        Ok(Zeroizing::new(arr))
    }

    /// Opens this node's copy of the zone key.
    pub fn open_zone_key(&self, node_id: &str, key: &NodeEncryptionKey) -> Result<ZoneKey, ZoneError> {
        let k = self.unwrap(&self.wrapped_keys, HpkePurpose::ZoneKey, node_id, key)?;
        Ok(ZoneKey::new(self.zone_key_id, self.algorithm, *k))
    }

    /// Opens this node's copy of the ObjectId key.
    pub fn open_object_id_key(&self, node_id: &str, key: &NodeEncryptionKey) -> Result<ObjectIdKey, ZoneError> {
        let k = self.unwrap(&self.wrapped_object_id_keys, HpkePurpose::ObjectIdKey, node_id, key)?;
        Ok(ObjectIdKey(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn g(p: &str) -> Glob {
        Glob::new(p).expect("glob")
    }

    #[test]
    fn globs_are_anchored() {
        assert!(g("fcp.*").matches("fcp.github"));
        assert!(!g("fcp.*").matches("xfcp.github"));
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("abbc"));
        assert!(g("*").matches(""));
        assert!(g("*.read").matches("github.issues.read"));
        assert!(!g("*.read").matches("github.issues.write"));
        assert!(Glob::new(&"a".repeat(129)).is_err());
        assert!(Glob::new("é").is_err());
    }

    #[test]
    fn policy_steps_in_order() {
        let (_, mut p) = standard_zones().into_iter().nth(2).expect("z:work");
        p.connectors.allow = vec![g("fcp.*")];
        p.principals.deny = vec![g("agent:banned*")];
        assert_eq!(p.evaluate("agent:a", "fcp.echo", "echo.say", SafetyTier::Safe), Ok(()));
        assert!(matches!(
            p.evaluate("agent:banned1", "fcp.echo", "echo.say", SafetyTier::Safe),
            Err(PolicyRefusal::Denied { dimension: "principal", .. })
        ));
        assert!(matches!(
            p.evaluate("agent:a", "acme.echo", "echo.say", SafetyTier::Safe),
            Err(PolicyRefusal::NotAllowed { dimension: "connector", .. })
        ));
        assert!(matches!(
            p.evaluate("agent:a", "fcp.echo", "system.exec", SafetyTier::Safe),
            Err(PolicyRefusal::Denied { dimension: "capability", .. })
        ));
        assert_eq!(
            p.evaluate("agent:a", "fcp.echo", "echo.say", SafetyTier::Critical),
            Err(PolicyRefusal::AboveCeiling { tier: SafetyTier::Critical, ceiling: SafetyTier::Dangerous })
        );
    }

    #[test]
    fn owner_signed_policy_round_trip() {
        let owner = OwnerKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let zones = standard_zones();
        assert_eq!(zones.len(), 5);
        assert!(zones[0].1.require_hardware_keys, "z:owner requires hardware keys");
        let signed = OwnerSigned::sign(&owner, zones[0].1.clone()).expect("sign");
        let bytes = cbor::to_vec(&signed).expect("enc");
        let back: OwnerSigned<ZonePolicy> = cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 16)).expect("dec");
        assert_eq!(back.verify(&owner.public()).map(|b| b.zone_id.clone()).ok(), Some(zones[0].1.zone_id.clone()));
        let mut tampered = back.clone();
        tampered.body.require_hardware_keys = false;
        assert_eq!(tampered.verify(&owner.public()).map_err(|e| e.code()).err(), Some("zone.bad_signature"));
        for w in zones.windows(2) {
            assert!(check_child(&w[0].0, &w[1].0).is_ok());
            assert!(check_child(&w[1].0, &w[0].0).is_err());
        }
    }

    #[test]
    fn body_aead_binds_key_nonce_and_header() {
        let k = ZoneKey::new([1; 8], ZoneKeyAlgorithm::XChaCha20Poly1305, [9; 32]);
        let s = k.seal(&[7; 24], b"header", b"body").expect("seal");
        assert_eq!(k.open(&s, b"header").map(|b| b.to_vec()).ok(), Some(b"body".to_vec()));
        assert_eq!(k.open(&s, b"other").map_err(|e| e.code()).err(), Some("aead_invalid"));
        let other = ZoneKey::new([2; 8], ZoneKeyAlgorithm::XChaCha20Poly1305, [9; 32]);
        assert_eq!(other.open(&s, b"header").map_err(|e| e.code()).err(), Some("zone.wrong_key"));
        assert!(k.seal(&[7; 12], b"h", b"b").is_err(), "nonce length must fit the algorithm");
        assert!(!format!("{k:?}").contains("09"));
    }

    #[test]
    fn zone_key_manifest_seals_to_attested_nodes_only() {
        use crate::keys::{AttestationClaims, DevicePosture, NodeKeys, PostureKind};
        let mut r = ChaCha20Rng::seed_from_u64(11);
        let owner = OwnerKey::generate(&mut r);
        let a = NodeKeys::generate("node-a", &mut r).expect("a");
        let b = NodeKeys::generate("node-b", &mut r).expect("b");
        let hw = DevicePosture {
            kind: PostureKind::Tpm,
            hardware_backed: true,
            pcr_digest: None,
            tpm_manufacturer: None,
            verified_at: 1,
        };
        let att = |n: &NodeKeys, posture| {
            NodeKeyAttestation::issue(
                &owner,
                AttestationClaims { node: n, tags: &[], issued_at: 0, expires_at: 100, posture },
            )
            .expect("att")
        };
        let (att_a, att_b) = (att(&a, Some(hw)), att(&b, None));
        let zones = standard_zones();
        let (owner_policy, work_policy) = (&zones[0].1, &zones[2].1);
        let zk = ZoneKey::new([5; 8], ZoneKeyAlgorithm::XChaCha20Poly1305, [42; 32]);
        let oik = ObjectIdKey([43; 32]);
        let set = ZoneKeySet {
            zone_key: &zk,
            object_id_key: (&oik, [6; 8]),
            valid_from: 0,
            valid_until: None,
            prev_zone_key_id: None,
        };
        assert_eq!(
            ZoneKeyManifest::build(&mut r, owner_policy, &set, &[&att_a, &att_b], 10).map_err(|e| e.code()).err(),
            Some("zone.hardware_required")
        );
        let m = ZoneKeyManifest::build(&mut r, work_policy, &set, &[&att_a, &att_b], 10).expect("build");
        let signed = OwnerSigned::sign(&owner, m).expect("sign");
        let m = signed.verify(&owner.public()).expect("verify");
        assert_eq!(m.open_zone_key("node-b", &b.encryption).map(|k| *k.secret()).ok(), Some([42; 32]));
        assert_eq!(m.open_object_id_key("node-a", &a.encryption).map(|k| k.0).ok(), Some([43; 32]));
        assert_eq!(m.open_zone_key("node-a", &b.encryption).map_err(|e| e.code()).err(), Some("aead_invalid"));
        assert_eq!(m.open_zone_key("node-c", &b.encryption).map_err(|e| e.code()).err(), Some("zone.not_a_recipient"));
        let bytes = cbor::to_vec(&signed).expect("enc");
        let back: OwnerSigned<ZoneKeyManifest> =
            cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 20)).expect("dec");
        assert_eq!(back, signed);
    }

    proptest! {
        #[test]
        fn body_bit_flips_fail(body in proptest::collection::vec(any::<u8>(), 0..64), i in any::<usize>(), bit in 0u8..8) {
            let k = ZoneKey::new([1; 8], ZoneKeyAlgorithm::ChaCha20Poly1305, [3; 32]);
            let mut s = k.seal(&[5; 12], b"h", &body).expect("seal");
            let n = s.ciphertext.len();
            s.ciphertext[i % n] ^= 1 << bit;
            prop_assert!(k.open(&s, b"h").is_err());
        }

        #[test]
        fn star_matches_any_suffix(prefix in "[a-z.]{0,8}", suffix in "[a-z.]{0,8}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{suffix}");
            prop_assert!(g(&pattern).matches(&text));
        }
    }
}
