//! Provenance labels and taint (digest §7): integrity and confidentiality labels
//! with the merge rule (MIN integrity, MAX confidentiality, OR of taint), label
//! adjustments that count only when they cite a verified ApprovalToken, and taint
//! reductions that count only when they cite a verified SanitizerReceipt.
//!
//! Labels use the \[I\]/\[C\] five-level enums (digest §7.2); the decision rule is \[S\]
//! `can_invoke` (digest §7.1).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{ObjectId, ZoneId};
use crate::keys::{KeyError, NodeSigningKey, NodeSigningPublicKey};

/// Integrity, lowest first (\[I\] values 0–4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// Anything from outside.
    Untrusted,
    /// Community zone.
    Community,
    /// Work zone.
    Work,
    /// Private zone.
    Private,
    /// Owner zone.
    Owner,
}

/// Confidentiality, lowest first (\[I\] values 0–4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidentiality {
    /// Public.
    Public,
    /// Community.
    Community,
    /// Work.
    Work,
    /// Private.
    Private,
    /// Owner only.
    Owner,
}

/// Taint flags (\[I\]/\[C\], digest §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaintFlag {
    /// Came from a public source.
    PublicInput,
    /// Contains a link nobody verified.
    UnverifiedLink,
    /// Went through an untrusted transformation.
    UntrustedTransform,
    /// Injected by a webhook.
    WebhookInjected,
    /// Written by a user.
    UserGenerated,
    /// Flagged as potentially malicious.
    PotentiallyMalicious,
    /// Produced by a model.
    AiGenerated,
    /// Crossed zones without approval.
    CrossZoneUnapproved,
}

impl TaintFlag {
    /// The flags \[I\] calls critical.
    pub fn is_critical(self) -> bool {
        matches!(self, TaintFlag::PublicInput | TaintFlag::PotentiallyMalicious | TaintFlag::CrossZoneUnapproved)
    }
}

/// A label change; it counts only if the approval it cites verifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelAdjustment {
    /// When (milliseconds).
    pub timestamp_ms: u64,
    /// What changed.
    pub change: LabelChange,
    /// The ApprovalToken that authorised it.
    pub approval_token_id: String,
}

/// The two kinds of label change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelChange {
    /// Integrity raised to this level.
    IntegrityElevated(Integrity),
    /// Confidentiality lowered to this level.
    ConfidentialityDeclassified(Confidentiality),
}

/// A taint reduction; it counts only if the sanitizer receipt it cites verifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintReduction {
    /// When (milliseconds).
    pub timestamp_ms: u64,
    /// The flags it clears.
    pub clears: BTreeSet<TaintFlag>,
    /// The SanitizerReceipt that justifies it.
    pub sanitizer_receipt_id: String,
}

/// A zone crossing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneCrossing {
    /// From.
    pub from_zone: ZoneId,
    /// To.
    pub to_zone: ZoneId,
    /// When (milliseconds).
    pub crossed_at_ms: u64,
    /// The approval that authorised it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_by: Option<String>,
}

/// Verifies the evidence that label adjustments and taint reductions cite.
///
/// fcpd implements it over its store of verified ApprovalTokens and
/// SanitizerReceipts; anything it cannot verify does not count.
pub trait Evidence {
    /// Does a verified ApprovalToken `id` authorise `change`?
    fn approval_authorises(&self, id: &str, change: &LabelChange) -> bool;
    /// Does a verified SanitizerReceipt `id` clear all of `flags`?
    fn sanitizer_clears(&self, id: &str, flags: &BTreeSet<TaintFlag>) -> bool;
}

/// Evidence that verifies nothing: only raw labels count.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvidence;

impl Evidence for NoEvidence {
    fn approval_authorises(&self, _: &str, _: &LabelChange) -> bool {
        false
    }
    fn sanitizer_clears(&self, _: &str, _: &BTreeSet<TaintFlag>) -> bool {
        false
    }
}

/// Schema id string of sanitizer receipt signatures.
pub const SANITIZER_RECEIPT_SCHEMA: &str = "fcp.core.SanitizerReceipt/1.0.0";

/// A sanitizer's signed statement that it cleared taint flags from some inputs
/// (\[C\]/\[I\] shape, digest §7.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanitizerReceipt {
    /// Receipt id, cited by [`TaintReduction::sanitizer_receipt_id`].
    pub receipt_id: String,
    /// When (milliseconds).
    pub timestamp_ms: u64,
    /// The sanitizer connector.
    pub sanitizer_id: String,
    /// Its zone.
    pub sanitizer_zone: ZoneId,
    /// The flags this sanitizer is authorised to clear.
    pub authorized_flags: BTreeSet<TaintFlag>,
    /// The inputs it covered.
    pub covered_inputs: Vec<ObjectId>,
    /// The flags it cleared (must be within `authorized_flags`).
    pub cleared_flags: BTreeSet<TaintFlag>,
    /// Node that executed it.
    pub signer: String,
    /// Node signature over the receipt without this field.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

fn without_signature(v: &impl Serialize) -> Result<Vec<u8>, KeyError> {
    cbor::to_vec_without(v, "signature").map_err(|e| KeyError::Encode(e.to_string()))
}

impl SanitizerReceipt {
    /// Signs the receipt as `signer`.
    pub fn sign(&mut self, signer_id: &str, key: &NodeSigningKey) -> Result<(), KeyError> {
        self.signer = signer_id.to_owned();
        self.signature.clear();
        self.signature = key.sign_object(SANITIZER_RECEIPT_SCHEMA, &without_signature(self)?).to_vec();
        Ok(())
    }

    /// Verifies the node signature and that it clears only authorised flags.
    pub fn verify(&self, key: &NodeSigningPublicKey) -> Result<(), KeyError> {
        if !self.cleared_flags.is_subset(&self.authorized_flags) {
            return Err(KeyError::Invalid {
                field: "cleared_flags",
                why: "clears flags it is not authorised for".into(),
            });
        }
        let sig: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| KeyError::BadSignature)?;
        key.verify_object(SANITIZER_RECEIPT_SCHEMA, &without_signature(self)?, &sig)
    }
}

/// Evidence held by a verifier: sanitizer receipts and approvals it has verified.
///
/// Only verified objects go in (receipts through [`EvidenceBook::add_receipt`];
/// approvals after the caller verified the ApprovalToken), so lookups can trust them.
#[derive(Clone, Debug, Default)]
pub struct EvidenceBook {
    receipts: HashMap<String, SanitizerReceipt>,
    approvals: HashMap<String, Vec<LabelChange>>,
}

impl EvidenceBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies and records a sanitizer receipt.
    pub fn add_receipt(&mut self, r: SanitizerReceipt, key: &NodeSigningPublicKey) -> Result<(), KeyError> {
        r.verify(key)?;
        self.receipts.insert(r.receipt_id.clone(), r);
        Ok(())
    }

    /// Records the label changes a verified ApprovalToken `id` authorises.
    pub fn add_verified_approval(&mut self, id: &str, changes: Vec<LabelChange>) {
        self.approvals.insert(id.to_owned(), changes);
    }
}

impl Evidence for EvidenceBook {
    fn approval_authorises(&self, id: &str, change: &LabelChange) -> bool {
        self.approvals.get(id).is_some_and(|c| c.contains(change))
    }

    fn sanitizer_clears(&self, id: &str, flags: &BTreeSet<TaintFlag>) -> bool {
        self.receipts.get(id).is_some_and(|r| flags.is_subset(&r.cleared_flags))
    }
}

/// A provenance record (digest §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Where the data came from.
    pub origin_zone: ZoneId,
    /// Where it is now.
    pub current_zone: ZoneId,
    /// Raw integrity label.
    pub integrity: Integrity,
    /// Raw confidentiality label.
    pub confidentiality: Confidentiality,
    /// Label changes, each citing an approval.
    pub label_adjustments: Vec<LabelAdjustment>,
    /// Raw taint.
    pub taint: BTreeSet<TaintFlag>,
    /// Taint reductions, each citing a sanitizer receipt.
    pub taint_reductions: Vec<TaintReduction>,
    /// Zone crossings.
    pub zone_crossings: Vec<ZoneCrossing>,
}

/// The outcome of `can_invoke` (digest §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintDecision {
    /// No taint objection.
    Allow,
    /// Needs an elevation approval first.
    RequireElevation,
    /// Public input may never drive a dangerous operation.
    Deny,
}

impl Provenance {
    /// Fresh, untainted data born in `zone` with the given labels.
    pub fn new(zone: ZoneId, integrity: Integrity, confidentiality: Confidentiality) -> Self {
        Provenance {
            origin_zone: zone.clone(),
            current_zone: zone,
            integrity,
            confidentiality,
            label_adjustments: Vec::new(),
            taint: BTreeSet::new(),
            taint_reductions: Vec::new(),
            zone_crossings: Vec::new(),
        }
    }

    /// Max of the label and every verified elevation.
    pub fn effective_integrity(&self, ev: &impl Evidence) -> Integrity {
        self.label_adjustments
            .iter()
            .filter_map(|a| match a.change {
                LabelChange::IntegrityElevated(to) if ev.approval_authorises(&a.approval_token_id, &a.change) => {
                    Some(to)
                }
                _ => None,
            })
            .fold(self.integrity, Ord::max)
    }

    /// Min of the label and every verified declassification.
    pub fn effective_confidentiality(&self, ev: &impl Evidence) -> Confidentiality {
        self.label_adjustments
            .iter()
            .filter_map(|a| match a.change {
                LabelChange::ConfidentialityDeclassified(to)
                    if ev.approval_authorises(&a.approval_token_id, &a.change) =>
                {
                    Some(to)
                }
                _ => None,
            })
            .fold(self.confidentiality, Ord::min)
    }

    /// Raw taint minus what verified reductions clear.
    pub fn effective_taint(&self, ev: &impl Evidence) -> BTreeSet<TaintFlag> {
        let mut t = self.taint.clone();
        for r in &self.taint_reductions {
            if ev.sanitizer_clears(&r.sanitizer_receipt_id, &r.clears) {
                t.retain(|f| !r.clears.contains(f));
            }
        }
        t
    }

    /// Merges the provenance of several inputs into that of their output (digest §7.1):
    /// integrity is the MIN of the effective integrities, confidentiality the MAX of
    /// the effective confidentialities, taint the OR of the raw taints; crossings are
    /// concatenated. Adjustments and reductions are folded into the labels, so none
    /// carry over. `None` for no inputs.
    pub fn merge<'a>(
        inputs: impl IntoIterator<Item = &'a Provenance>,
        current_zone: ZoneId,
        ev: &impl Evidence,
    ) -> Option<Provenance> {
        let mut it = inputs.into_iter();
        let first = it.next()?;
        let mut out = Provenance {
            origin_zone: first.origin_zone.clone(),
            current_zone,
            integrity: first.effective_integrity(ev),
            confidentiality: first.effective_confidentiality(ev),
            label_adjustments: Vec::new(),
            taint: first.taint.clone(),
            taint_reductions: Vec::new(),
            zone_crossings: first.zone_crossings.clone(),
        };
        for p in it {
            out.integrity = out.integrity.min(p.effective_integrity(ev));
            out.confidentiality = out.confidentiality.max(p.effective_confidentiality(ev));
            out.taint.extend(p.taint.iter().copied());
            out.zone_crossings.extend(p.zone_crossings.iter().cloned());
        }
        Some(out)
    }

    /// `can_invoke` (digest §7.1) for an operation of `tier` in a zone of `target` integrity.
    pub fn can_invoke(
        &self,
        tier: crate::decision::SafetyTier,
        target: Integrity,
        ev: &impl Evidence,
    ) -> TaintDecision {
        use crate::decision::SafetyTier;
        let taint = self.effective_taint(ev);
        if taint.contains(&TaintFlag::PublicInput) && tier >= SafetyTier::Dangerous {
            return TaintDecision::Deny;
        }
        if !taint.is_empty() && tier >= SafetyTier::Risky && target > self.effective_integrity(ev) {
            return TaintDecision::RequireElevation;
        }
        TaintDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::SafetyTier;
    use proptest::prelude::*;

    struct Trusting;
    impl Evidence for Trusting {
        fn approval_authorises(&self, id: &str, _: &LabelChange) -> bool {
            id.starts_with("ok")
        }
        fn sanitizer_clears(&self, id: &str, _: &BTreeSet<TaintFlag>) -> bool {
            id.starts_with("ok")
        }
    }

    fn zone() -> ZoneId {
        ZoneId::new("z:work").expect("zone")
    }

    fn integrity() -> impl Strategy<Value = Integrity> {
        prop_oneof![
            Just(Integrity::Untrusted),
            Just(Integrity::Community),
            Just(Integrity::Work),
            Just(Integrity::Private),
            Just(Integrity::Owner)
        ]
    }
    fn confidentiality() -> impl Strategy<Value = Confidentiality> {
        prop_oneof![
            Just(Confidentiality::Public),
            Just(Confidentiality::Community),
            Just(Confidentiality::Work),
            Just(Confidentiality::Private),
            Just(Confidentiality::Owner)
        ]
    }
    fn flag() -> impl Strategy<Value = TaintFlag> {
        prop_oneof![
            Just(TaintFlag::PublicInput),
            Just(TaintFlag::UnverifiedLink),
            Just(TaintFlag::AiGenerated),
            Just(TaintFlag::PotentiallyMalicious)
        ]
    }
    fn record() -> impl Strategy<Value = Provenance> {
        (integrity(), confidentiality(), proptest::collection::btree_set(flag(), 0..3)).prop_map(|(i, c, t)| {
            let mut p = Provenance::new(zone(), i, c);
            p.taint = t;
            p
        })
    }

    #[test]
    fn adjustments_count_only_with_verified_evidence() {
        let mut p = Provenance::new(zone(), Integrity::Community, Confidentiality::Private);
        p.label_adjustments.push(LabelAdjustment {
            timestamp_ms: 1,
            change: LabelChange::IntegrityElevated(Integrity::Private),
            approval_token_id: "forged".into(),
        });
        assert_eq!(p.effective_integrity(&Trusting), Integrity::Community);
        p.label_adjustments.push(LabelAdjustment {
            timestamp_ms: 2,
            change: LabelChange::IntegrityElevated(Integrity::Work),
            approval_token_id: "ok-1".into(),
        });
        p.label_adjustments.push(LabelAdjustment {
            timestamp_ms: 3,
            change: LabelChange::ConfidentialityDeclassified(Confidentiality::Public),
            approval_token_id: "ok-2".into(),
        });
        assert_eq!(p.effective_integrity(&Trusting), Integrity::Work);
        assert_eq!(p.effective_confidentiality(&Trusting), Confidentiality::Public);
        assert_eq!(p.effective_confidentiality(&NoEvidence), Confidentiality::Private);
    }

    #[test]
    fn reductions_count_only_with_verified_receipts() {
        let mut p = Provenance::new(zone(), Integrity::Work, Confidentiality::Work);
        p.taint = [TaintFlag::PublicInput, TaintFlag::AiGenerated].into();
        let clears: BTreeSet<_> = [TaintFlag::PublicInput].into();
        p.taint_reductions.push(TaintReduction {
            timestamp_ms: 1,
            clears: clears.clone(),
            sanitizer_receipt_id: "bad".into(),
        });
        assert_eq!(p.can_invoke(SafetyTier::Dangerous, Integrity::Work, &Trusting), TaintDecision::Deny);
        p.taint_reductions.push(TaintReduction { timestamp_ms: 2, clears, sanitizer_receipt_id: "ok".into() });
        assert_eq!(p.effective_taint(&Trusting), [TaintFlag::AiGenerated].into());
        assert_eq!(p.can_invoke(SafetyTier::Dangerous, Integrity::Private, &Trusting), TaintDecision::RequireElevation);
        assert_eq!(p.can_invoke(SafetyTier::Safe, Integrity::Owner, &Trusting), TaintDecision::Allow);
    }

    #[test]
    fn evidence_book_trusts_only_verified_receipts() {
        use rand_chacha::rand_core::SeedableRng;
        let key = NodeSigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2));
        let mut r = SanitizerReceipt {
            receipt_id: "san-1".into(),
            timestamp_ms: 1,
            sanitizer_id: "fcp.sanitize".into(),
            sanitizer_zone: zone(),
            authorized_flags: [TaintFlag::PublicInput, TaintFlag::UnverifiedLink].into(),
            covered_inputs: vec![ObjectId([1; 32])],
            cleared_flags: [TaintFlag::PublicInput].into(),
            signer: String::new(),
            signature: Vec::new(),
        };
        r.sign("node-a", &key).expect("sign");
        let mut book = EvidenceBook::new();
        let mut forged = r.clone();
        forged.cleared_flags.insert(TaintFlag::UnverifiedLink);
        assert_eq!(book.add_receipt(forged, &key.public()), Err(KeyError::BadSignature));
        let mut greedy = r.clone();
        greedy.cleared_flags.insert(TaintFlag::AiGenerated);
        assert!(matches!(book.add_receipt(greedy, &key.public()), Err(KeyError::Invalid { .. })));
        book.add_receipt(r, &key.public()).expect("verified");
        let mut p = Provenance::new(zone(), Integrity::Work, Confidentiality::Work);
        p.taint = [TaintFlag::PublicInput].into();
        p.taint_reductions.push(TaintReduction {
            timestamp_ms: 2,
            clears: [TaintFlag::PublicInput].into(),
            sanitizer_receipt_id: "san-1".into(),
        });
        assert!(p.effective_taint(&book).is_empty());
        book.add_verified_approval("appr-1", vec![LabelChange::IntegrityElevated(Integrity::Owner)]);
        assert!(Evidence::approval_authorises(&book, "appr-1", &LabelChange::IntegrityElevated(Integrity::Owner)));
        assert!(!Evidence::approval_authorises(&book, "appr-1", &LabelChange::IntegrityElevated(Integrity::Private)));
    }

    proptest! {
        #[test]
        fn merge_is_min_integrity_max_confidentiality_or_taint(rs in proptest::collection::vec(record(), 1..6)) {
            let m = Provenance::merge(&rs, zone(), &NoEvidence).expect("non-empty");
            prop_assert_eq!(Some(m.integrity), rs.iter().map(|r| r.integrity).min());
            prop_assert_eq!(Some(m.confidentiality), rs.iter().map(|r| r.confidentiality).max());
            let all: BTreeSet<_> = rs.iter().flat_map(|r| r.taint.iter().copied()).collect();
            prop_assert_eq!(m.taint, all);
        }

        #[test]
        fn merge_laws(a in record(), b in record(), c in record()) {
            let m = |xs: &[&Provenance]| Provenance::merge(xs.iter().copied(), zone(), &NoEvidence).expect("non-empty");
            let key = |p: &Provenance| (p.integrity, p.confidentiality, p.taint.clone());
            // commutative, associative, idempotent on labels and taint
            prop_assert_eq!(key(&m(&[&a, &b])), key(&m(&[&b, &a])));
            prop_assert_eq!(key(&m(&[&m(&[&a, &b]), &c])), key(&m(&[&a, &m(&[&b, &c])])));
            prop_assert_eq!(key(&m(&[&a, &a])), key(&m(&[&a])));
            // merging never raises integrity or lowers confidentiality
            let ab = m(&[&a, &b]);
            prop_assert!(ab.integrity <= a.integrity && ab.confidentiality >= a.confidentiality);
        }
    }
}
