//! Revocation (digest §8.2) and zone checkpoints (§8.3).
//!
//! A [`RevocationObject`] is owner-signed and carries a per-zone sequence number
//! that must grow by exactly one; a [`RevocationView`] applies them in order and
//! answers "is this revoked?" in O(1). A [`FreshnessPolicy`] says what an operation
//! of each safety tier may do when the view is older than `max_age_secs`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::decision::SafetyTier;
use crate::id::{Kid, ObjectId, ObjectIdKey, ZoneId};
use crate::keys::{KeyError, NodeSigningPublicKey, OwnerKey, OwnerPublicKey, SignatureSet};
use crate::schema::SchemaId;

/// Schema id string of the revocation signing bytes.
pub const REVOCATION_SCHEMA: &str = "fcp.core.RevocationObject/1.0.0";

/// What a revocation names (digest §8.2 scopes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationTarget {
    /// Scope Capability: one capability token, by its `cti`.
    Token(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Scope Capability: a CapabilityObject (and every token granted from it).
    Capability(ObjectId),
    /// Scope IssuerKey: a node issuance key, by kid.
    IssuerKey(Kid),
    /// Scope NodeAttestation: every attestation of this node.
    NodeAttestation(String),
    /// Scope ZoneKey: a zone key id.
    ZoneKey(#[serde(with = "serde_bytes")] [u8; 8]),
    /// Scope ConnectorBinary: a connector binary, by BLAKE3 of its bytes.
    ConnectorBinary(#[serde(with = "serde_bytes")] [u8; 32]),
}

impl RevocationTarget {
    /// The digest §8.2 scope name.
    pub fn scope(&self) -> &'static str {
        match self {
            RevocationTarget::Token(_) | RevocationTarget::Capability(_) => "capability",
            RevocationTarget::IssuerKey(_) => "issuer_key",
            RevocationTarget::NodeAttestation(_) => "node_attestation",
            RevocationTarget::ZoneKey(_) => "zone_key",
            RevocationTarget::ConnectorBinary(_) => "connector_binary",
        }
    }
}

/// An owner-signed revocation (digest §8.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationObject {
    /// Zone whose revocation log this extends.
    pub zone_id: ZoneId,
    /// Position in the zone's log: the previous head plus one.
    pub seq: u64,
    /// What is revoked.
    pub revoked: Vec<RevocationTarget>,
    /// Why, for people.
    pub reason: String,
    /// From when (seconds).
    pub effective_at: u64,
    /// Until when, if the revocation lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Owner kid.
    pub signer_kid: Kid,
    /// Owner signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a revocation or checkpoint is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    /// Signature or signer problem.
    #[error("revocation signature")]
    Signature(#[source] KeyError),
    /// For another zone.
    #[error("revocation is for zone {got}, view is {want}")]
    WrongZone {
        /// The view's zone.
        want: ZoneId,
        /// The object's zone.
        got: ZoneId,
    },
    /// Sequence is not head + 1.
    #[error("revocation seq {got} does not follow head {head}")]
    OutOfOrder {
        /// The view's head.
        head: u64,
        /// The object's seq.
        got: u64,
    },
    /// Names nothing.
    #[error("revocation names no target")]
    Empty,
    /// A checkpoint went backwards.
    #[error("checkpoint regresses {field}: {have} -> {got}")]
    Regression {
        /// The field.
        field: &'static str,
        /// What the tracker holds.
        have: u64,
        /// What the checkpoint says.
        got: u64,
    },
    /// A checkpoint does not chain to the previous one.
    #[error("checkpoint prev does not name the current checkpoint")]
    BrokenChain,
    /// Two different checkpoints share one seq.
    #[error("fork: two different checkpoints at seq {0}")]
    Fork(u64),
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
}

impl RevocationError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            RevocationError::Signature(_) => "revocation.bad_signature",
            RevocationError::WrongZone { .. } => "revocation.wrong_zone",
            RevocationError::OutOfOrder { .. } => "revocation.out_of_order",
            RevocationError::Empty => "revocation.empty",
            RevocationError::Regression { .. } => "checkpoint.regression",
            RevocationError::BrokenChain => "checkpoint.broken_chain",
            RevocationError::Fork(_) => "checkpoint.fork",
            RevocationError::Encode(_) => "encode",
        }
    }
}

fn encode_without(v: &impl Serialize, field: &str) -> Result<Vec<u8>, RevocationError> {
    cbor::to_vec_without(v, field).map_err(|e| RevocationError::Encode(e.to_string()))
}

impl RevocationObject {
    /// The owner signs a revocation.
    pub fn issue(
        owner: &OwnerKey,
        zone_id: ZoneId,
        seq: u64,
        revoked: Vec<RevocationTarget>,
        reason: &str,
        effective_at: u64,
        expires_at: Option<u64>,
    ) -> Result<Self, RevocationError> {
        if revoked.is_empty() {
            return Err(RevocationError::Empty);
        }
        let mut r = RevocationObject {
            zone_id,
            seq,
            revoked,
            reason: reason.to_owned(),
            effective_at,
            expires_at,
            signer_kid: owner.kid(),
            signature: Vec::new(),
        };
        r.signature = owner.sign_object(REVOCATION_SCHEMA, &encode_without(&r, "signature")?).to_vec();
        Ok(r)
    }

    /// Verifies the owner's signature.
    pub fn verify(&self, owner: &OwnerPublicKey) -> Result<(), RevocationError> {
        if self.signer_kid != owner.kid() {
            return Err(RevocationError::Signature(KeyError::KidMismatch {
                named: self.signer_kid,
                actual: owner.kid(),
            }));
        }
        let sig: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| RevocationError::Signature(KeyError::BadSignature))?;
        owner
            .verify_object(REVOCATION_SCHEMA, &encode_without(self, "signature")?, &sig)
            .map_err(RevocationError::Signature)
    }
}

/// The revocation state of one zone: O(1) lookups.
#[derive(Clone, Debug)]
pub struct RevocationView {
    zone: ZoneId,
    owner: OwnerPublicKey,
    head_seq: u64,
    /// Target → (effective_at, expires_at).
    revoked: HashMap<RevocationTarget, (u64, Option<u64>)>,
    as_of: Option<u64>,
}

impl RevocationView {
    /// An empty view of `zone`; nothing is known to be fresh yet.
    pub fn new(zone: ZoneId, owner: OwnerPublicKey) -> Self {
        RevocationView { zone, owner, head_seq: 0, revoked: HashMap::new(), as_of: None }
    }

    /// The zone.
    pub fn zone(&self) -> &ZoneId {
        &self.zone
    }

    /// The highest applied seq (0 when empty).
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// When the view was last known complete (seconds), if ever.
    pub fn as_of(&self) -> Option<u64> {
        self.as_of
    }

    /// Records that the view was complete at `now` (after a sync or checkpoint).
    pub fn mark_synced(&mut self, now: u64) {
        self.as_of = Some(self.as_of.map_or(now, |t| t.max(now)));
    }

    /// Verifies and applies the next revocation. All or nothing.
    pub fn apply(&mut self, r: &RevocationObject) -> Result<(), RevocationError> {
        if r.zone_id != self.zone {
            return Err(RevocationError::WrongZone { want: self.zone.clone(), got: r.zone_id.clone() });
        }
        if r.seq != self.head_seq + 1 {
            return Err(RevocationError::OutOfOrder { head: self.head_seq, got: r.seq });
        }
        if r.revoked.is_empty() {
            return Err(RevocationError::Empty);
        }
        r.verify(&self.owner)?;
        for t in &r.revoked {
            self.revoked.insert(t.clone(), (r.effective_at, r.expires_at));
        }
        self.head_seq = r.seq;
        Ok(())
    }

    /// Is `target` revoked at `now`?
    pub fn is_revoked(&self, target: &RevocationTarget, now: u64) -> bool {
        self.revoked.get(target).is_some_and(|(from, until)| now >= *from && until.is_none_or(|u| now < u))
    }

    /// Number of revoked targets.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// How strictly revocation freshness is enforced (digest §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreshnessMode {
    /// A stale view denies every operation.
    Strict,
    /// A stale view allows only Safe operations, each audited as degraded.
    Warn,
    /// A stale view allows Safe and Risky operations, each audited as degraded.
    BestEffort,
}

/// The freshness policy of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessPolicy {
    /// The mode.
    pub mode: FreshnessMode,
    /// Maximum age of the view (digest §8.2 default 300 s).
    pub max_age_secs: u64,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        FreshnessPolicy { mode: FreshnessMode::Warn, max_age_secs: 300 }
    }
}

/// What freshness allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Fresh: proceed.
    Fresh,
    /// Stale, but the policy lets this tier proceed; audit `revocation.degraded_mode`.
    Degraded {
        /// Age of the view in seconds (`u64::MAX` if never synced).
        age_secs: u64,
    },
    /// Stale and not allowed.
    Stale {
        /// Age of the view in seconds (`u64::MAX` if never synced).
        age_secs: u64,
    },
}

impl FreshnessPolicy {
    /// Judges `view` for an operation of `tier` at `now`. Dangerous and higher always
    /// need a fresh view, as does a token bound to a revocation seq the view lacks.
    pub fn check(&self, view: &RevocationView, tier: SafetyTier, now: u64, token_chk_seq: Option<u64>) -> Freshness {
        let age_secs = view.as_of.map_or(u64::MAX, |t| now.saturating_sub(t));
        let behind = token_chk_seq.is_some_and(|s| view.head_seq < s);
        if age_secs <= self.max_age_secs && !behind {
            return Freshness::Fresh;
        }
        let tolerated = !behind
            && match self.mode {
                FreshnessMode::Strict => false,
                FreshnessMode::Warn => tier == SafetyTier::Safe,
                FreshnessMode::BestEffort => tier <= SafetyTier::Risky,
            };
        if tolerated {
            Freshness::Degraded { age_secs }
        } else {
            Freshness::Stale { age_secs }
        }
    }
}

/// Schema of zone checkpoints.
pub const CHECKPOINT_SCHEMA: (&str, &str, &str) = ("fcp.core", "ZoneCheckpoint", "1.0.0");

/// A quorum-signed summary of a zone's revocation and audit heads (digest §8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneCheckpoint {
    /// Zone.
    pub zone_id: ZoneId,
    /// The previous checkpoint, absent for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_checkpoint: Option<ObjectId>,
    /// Revocation head seq.
    pub rev_seq: u64,
    /// Audit head event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<ObjectId>,
    /// Audit head seq.
    pub audit_seq: u64,
    /// This checkpoint's seq.
    pub checkpoint_seq: u64,
    /// Epoch it describes.
    pub as_of_epoch: u64,
    /// Signatures, sorted by node id.
    pub quorum_signatures: SignatureSet,
}

impl ZoneCheckpoint {
    /// `BLAKE3("fcp.zonecheckpoint.v2" || canonical bytes with quorum_signatures empty)` (\[S\] §8.3).
    pub fn signing_preimage(&self) -> Result<Vec<u8>, RevocationError> {
        let mut unsigned = self.clone();
        unsigned.quorum_signatures = SignatureSet::new();
        let bytes = cbor::to_vec(&unsigned).map_err(|e| RevocationError::Encode(e.to_string()))?;
        let mut h = blake3::Hasher::new();
        h.update(b"fcp.zonecheckpoint.v2");
        h.update(&bytes);
        Ok(h.finalize().as_bytes().to_vec())
    }

    /// The keyed id of this checkpoint (signatures excluded, so co-signing does not change it).
    pub fn id(&self, key: &ObjectIdKey) -> Result<ObjectId, RevocationError> {
        let (ns, name, v) = CHECKPOINT_SCHEMA;
        let schema = SchemaId::new(ns, name, v).map_err(|e| RevocationError::Encode(e.to_string()))?;
        Ok(ObjectId::keyed(key, &self.zone_id, &schema, &self.signing_preimage()?))
    }
}

/// Accepts checkpoints of one zone in order: quorum, monotonic, chained, fork-detecting.
#[derive(Debug)]
pub struct CheckpointTracker {
    key: ObjectIdKey,
    latest: Option<(ZoneCheckpoint, ObjectId)>,
}

impl CheckpointTracker {
    /// A tracker with no checkpoint yet.
    pub fn new(key: ObjectIdKey) -> Self {
        CheckpointTracker { key, latest: None }
    }

    /// The latest accepted checkpoint.
    pub fn latest(&self) -> Option<&ZoneCheckpoint> {
        self.latest.as_ref().map(|(c, _)| c)
    }

    /// Accepts `cp` if `threshold` trusted nodes signed it and it advances the zone.
    pub fn accept(
        &mut self,
        cp: ZoneCheckpoint,
        threshold: usize,
        key_of: impl Fn(&str) -> Option<NodeSigningPublicKey>,
    ) -> Result<(), RevocationError> {
        cp.quorum_signatures
            .verify_quorum(&cp.signing_preimage()?, threshold, key_of)
            .map_err(RevocationError::Signature)?;
        let id = cp.id(&self.key)?;
        if let Some((cur, cur_id)) = &self.latest {
            if cp.checkpoint_seq == cur.checkpoint_seq {
                return if id == *cur_id { Ok(()) } else { Err(RevocationError::Fork(cp.checkpoint_seq)) };
            }
            for (field, have, got) in [
                ("checkpoint_seq", cur.checkpoint_seq, cp.checkpoint_seq),
                ("rev_seq", cur.rev_seq, cp.rev_seq),
                ("audit_seq", cur.audit_seq, cp.audit_seq),
                ("as_of_epoch", cur.as_of_epoch, cp.as_of_epoch),
            ] {
                if got < have {
                    return Err(RevocationError::Regression { field, have, got });
                }
            }
            if cp.checkpoint_seq == cur.checkpoint_seq + 1 && cp.prev_checkpoint != Some(*cur_id) {
                return Err(RevocationError::BrokenChain);
            }
        }
        self.latest = Some((cp, id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{NodeSignature, NodeSigningKey};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn setup() -> (OwnerKey, RevocationView) {
        let owner = OwnerKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let view = RevocationView::new(ZoneId::new("z:work").expect("zone"), owner.public());
        (owner, view)
    }

    fn revoke(owner: &OwnerKey, seq: u64, t: RevocationTarget) -> RevocationObject {
        RevocationObject::issue(owner, ZoneId::new("z:work").expect("zone"), seq, vec![t], "test", 10, None)
            .expect("issue")
    }

    #[test]
    fn applies_in_order_and_answers() {
        let (owner, mut view) = setup();
        let t = RevocationTarget::Token(vec![1, 2, 3]);
        assert!(!view.is_revoked(&t, 100));
        view.apply(&revoke(&owner, 1, t.clone())).expect("apply");
        assert!(view.is_revoked(&t, 100));
        assert!(!view.is_revoked(&t, 5), "not before effective_at");
        assert_eq!(view.head_seq(), 1);
        let skip = revoke(&owner, 3, RevocationTarget::IssuerKey(Kid([1; 8])));
        assert_eq!(view.apply(&skip), Err(RevocationError::OutOfOrder { head: 1, got: 3 }));
        let replay = revoke(&owner, 1, RevocationTarget::IssuerKey(Kid([1; 8])));
        assert_eq!(view.apply(&replay).map_err(|e| e.code()), Err("revocation.out_of_order"));
    }

    #[test]
    fn forged_or_foreign_revocations_are_refused() {
        let (owner, mut view) = setup();
        let mut r = revoke(&owner, 1, RevocationTarget::Token(vec![9]));
        r.revoked.push(RevocationTarget::Token(vec![10]));
        assert_eq!(view.apply(&r).map_err(|e| e.code()), Err("revocation.bad_signature"));
        let stranger = OwnerKey::generate(&mut ChaCha20Rng::seed_from_u64(2));
        assert_eq!(
            view.apply(&revoke(&stranger, 1, RevocationTarget::Token(vec![9]))).map_err(|e| e.code()),
            Err("revocation.bad_signature")
        );
        assert_eq!(view.head_seq(), 0, "nothing half-applied");
        assert!(view.is_empty());
    }

    #[test]
    fn freshness_by_tier_and_mode() {
        let (_, mut view) = setup();
        let p = |mode| FreshnessPolicy { mode, max_age_secs: 300 };
        assert_eq!(
            p(FreshnessMode::BestEffort).check(&view, SafetyTier::Safe, 0, None),
            Freshness::Degraded { age_secs: u64::MAX }
        );
        view.mark_synced(1000);
        assert_eq!(p(FreshnessMode::Strict).check(&view, SafetyTier::Dangerous, 1300, None), Freshness::Fresh);
        assert_eq!(
            p(FreshnessMode::Strict).check(&view, SafetyTier::Safe, 1301, None),
            Freshness::Stale { age_secs: 301 }
        );
        assert_eq!(
            p(FreshnessMode::Warn).check(&view, SafetyTier::Safe, 1301, None),
            Freshness::Degraded { age_secs: 301 }
        );
        assert_eq!(
            p(FreshnessMode::Warn).check(&view, SafetyTier::Risky, 1301, None),
            Freshness::Stale { age_secs: 301 }
        );
        assert_eq!(
            p(FreshnessMode::BestEffort).check(&view, SafetyTier::Risky, 1301, None),
            Freshness::Degraded { age_secs: 301 }
        );
        assert_eq!(
            p(FreshnessMode::BestEffort).check(&view, SafetyTier::Dangerous, 1301, None),
            Freshness::Stale { age_secs: 301 }
        );
        // a token bound to seq 5 needs a view that has reached it, however recent
        assert_eq!(
            p(FreshnessMode::BestEffort).check(&view, SafetyTier::Safe, 1000, Some(5)),
            Freshness::Stale { age_secs: 0 }
        );
    }

    #[test]
    fn checkpoints_advance_chain_and_detect_forks() {
        let mut r = ChaCha20Rng::seed_from_u64(3);
        let nodes: Vec<NodeSigningKey> = (0..3).map(|_| NodeSigningKey::generate(&mut r)).collect();
        let names = ["n1", "n2", "n3"];
        let key_of = |id: &str| names.iter().position(|n| *n == id).map(|i| nodes[i].public());
        let sign = |mut cp: ZoneCheckpoint, k: usize| {
            let pre = cp.signing_preimage().expect("preimage");
            for i in 0..k {
                cp.quorum_signatures.insert(NodeSignature {
                    node_id: names[i].into(),
                    signature: nodes[i].sign_raw(&pre),
                    signed_at: 0,
                });
            }
            cp
        };
        let base = ZoneCheckpoint {
            zone_id: ZoneId::new("z:work").expect("zone"),
            prev_checkpoint: None,
            rev_seq: 1,
            audit_head: None,
            audit_seq: 10,
            checkpoint_seq: 1,
            as_of_epoch: 5,
            quorum_signatures: SignatureSet::new(),
        };
        let mut tr = CheckpointTracker::new(ObjectIdKey([4; 32]));
        assert_eq!(tr.accept(sign(base.clone(), 1), 2, key_of).map_err(|e| e.code()), Err("revocation.bad_signature"));
        tr.accept(sign(base.clone(), 2), 2, key_of).expect("first");
        let first_id = base.id(&ObjectIdKey([4; 32])).expect("id");
        let mut fork = base.clone();
        fork.audit_seq = 11;
        assert_eq!(tr.accept(sign(fork, 2), 2, key_of), Err(RevocationError::Fork(1)));
        let mut next = base.clone();
        next.checkpoint_seq = 2;
        next.rev_seq = 0;
        next.prev_checkpoint = Some(first_id);
        assert_eq!(tr.accept(sign(next.clone(), 3), 2, key_of).map_err(|e| e.code()), Err("checkpoint.regression"));
        next.rev_seq = 2;
        next.prev_checkpoint = Some(ObjectId([0; 32]));
        assert_eq!(tr.accept(sign(next.clone(), 3), 2, key_of), Err(RevocationError::BrokenChain));
        next.prev_checkpoint = Some(first_id);
        tr.accept(sign(next, 3), 2, key_of).expect("second");
        assert_eq!(tr.latest().map(|c| c.checkpoint_seq), Some(2));
    }
}
