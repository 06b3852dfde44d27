//! The decision function: (caller zone, connector instance binding, operation and
//! its safety tier, token, revocation view with freshness, provenance, now) →
//! Allow or Deny(reason).
//!
//! Default deny: every input must be present, verified and fresh, or the answer is
//! a denial with a stable reason code and the inputs that decided it. fcpd calls
//! exactly this for every invocation, and `fcp explain` prints its reasons.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::capability::{verify_token, CapabilityError, TokenContext, TrustStore, VerifiedToken};
use crate::id::{ObjectId, ZoneId};
use crate::provenance::{Evidence, Integrity, Provenance, TaintDecision};
use crate::revocation::{Freshness, RevocationTarget, RevocationView};
use crate::zone::{PolicyRefusal, ZonePolicy};

/// Operation safety tier (\[C\]/\[I\] five values, digest §5.1), lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyTier {
    /// Reads or harmless actions.
    Safe,
    /// Changes state; needs an intent and fresh revocation state.
    Risky,
    /// Irreversible or costly; strict idempotency.
    Dangerous,
    /// Critical.
    Critical,
    /// Never allowed.
    Forbidden,
}

/// A connector instance: one connector in one zone for its whole life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceBinding {
    /// Connector id.
    pub connector_id: String,
    /// Instance id.
    pub instance_id: String,
    /// The zone it is bound to.
    pub zone: ZoneId,
    /// BLAKE3 of the installed binary (checked against ConnectorBinary revocations).
    pub binary_hash: [u8; 32],
}

/// The operation being invoked, as the connector's manifest declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationSpec {
    /// Operation id.
    pub id: String,
    /// Capability it needs.
    pub capability: String,
    /// Its safety tier.
    pub tier: SafetyTier,
}

/// One invocation, as the caller presents it. `None` means the input is missing.
#[derive(Clone, Copy, Debug)]
pub struct DecisionRequest<'a> {
    /// The zone the caller speaks from.
    pub caller_zone: Option<&'a ZoneId>,
    /// The principal (agent) calling.
    pub principal: Option<&'a str>,
    /// The target instance.
    pub instance: Option<&'a InstanceBinding>,
    /// The operation.
    pub operation: Option<&'a OperationSpec>,
    /// The capability token bytes.
    pub token: Option<&'a [u8]>,
    /// The stored OperationIntent (required for Risky and above).
    pub intent: Option<ObjectId>,
    /// Provenance of the input.
    pub provenance: Option<&'a Provenance>,
    /// Now (seconds).
    pub now: u64,
}

/// What the verifier holds.
#[derive(Clone, Copy)]
pub struct DecisionContext<'a> {
    /// Owner key, attested nodes and owner-signed grants.
    pub trust: &'a TrustStore,
    /// The verified policy of the instance's zone.
    pub zone_policy: Option<&'a ZonePolicy>,
    /// Integrity level of the instance's zone.
    pub zone_integrity: Integrity,
    /// The zone's revocation view.
    pub revocation: Option<&'a RevocationView>,
    /// Verifies the approvals and sanitizer receipts provenance cites.
    pub evidence: &'a dyn EvidenceDyn,
}

/// Object-safe form of [`Evidence`].
pub trait EvidenceDyn {
    /// See [`Evidence::approval_authorises`].
    fn approval_authorises(&self, id: &str, change: &crate::provenance::LabelChange) -> bool;
    /// See [`Evidence::sanitizer_clears`].
    fn sanitizer_clears(&self, id: &str, flags: &std::collections::BTreeSet<crate::provenance::TaintFlag>) -> bool;
}

impl<T: Evidence> EvidenceDyn for T {
    fn approval_authorises(&self, id: &str, change: &crate::provenance::LabelChange) -> bool {
        Evidence::approval_authorises(self, id, change)
    }
    fn sanitizer_clears(&self, id: &str, flags: &std::collections::BTreeSet<crate::provenance::TaintFlag>) -> bool {
        Evidence::sanitizer_clears(self, id, flags)
    }
}

struct DynEvidence<'a>(&'a dyn EvidenceDyn);

impl Evidence for DynEvidence<'_> {
    fn approval_authorises(&self, id: &str, change: &crate::provenance::LabelChange) -> bool {
        self.0.approval_authorises(id, change)
    }
    fn sanitizer_clears(&self, id: &str, flags: &std::collections::BTreeSet<crate::provenance::TaintFlag>) -> bool {
        self.0.sanitizer_clears(id, flags)
    }
}

/// Why an invocation was denied. Every variant has a stable [`DenyReason::code`].
#[derive(Debug)]
pub enum DenyReason {
    /// A required input is absent.
    Missing(&'static str),
    /// The caller's zone is not the instance's zone.
    ZoneMismatch {
        /// Caller zone.
        caller: ZoneId,
        /// Instance zone.
        instance: ZoneId,
    },
    /// The operation's tier is Forbidden.
    OperationForbidden,
    /// Zone policy refused.
    ZonePolicy(PolicyRefusal),
    /// The connector binary is revoked.
    BinaryRevoked,
    /// Revocation state is too old for this tier.
    RevocationStale {
        /// Age in seconds (`u64::MAX` if never synced).
        age_secs: u64,
    },
    /// The token did not verify.
    Token(CapabilityError),
    /// Risky and higher operations need a stored OperationIntent.
    IntentMissing,
    /// Public input may never drive a dangerous operation.
    TaintPublicInputDangerous,
    /// Tainted input needs an elevation approval for this zone.
    TaintElevationRequired,
}

impl DenyReason {
    /// The stable, machine-readable reason code (recorded in DecisionReceipts).
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::Missing("caller_zone") => "input.missing_caller_zone",
            DenyReason::Missing("principal") => "input.missing_principal",
            DenyReason::Missing("instance") => "input.missing_instance",
            DenyReason::Missing("operation") => "input.missing_operation",
            DenyReason::Missing("token") => "token.missing",
            DenyReason::Missing("zone_policy") => "input.missing_zone_policy",
            DenyReason::Missing("revocation") => "revocation.missing",
            DenyReason::Missing("provenance") => "input.missing_provenance",
            DenyReason::Missing(_) => "input.missing",
            DenyReason::ZoneMismatch { .. } => "zone.mismatch",
            DenyReason::OperationForbidden => "operation.forbidden",
            DenyReason::ZonePolicy(PolicyRefusal::AboveCeiling { .. }) => "zone.ceiling",
            DenyReason::ZonePolicy(_) => "zone.policy",
            DenyReason::BinaryRevoked => "revocation.connector_binary",
            DenyReason::RevocationStale { .. } => "revocation.stale",
            DenyReason::Token(e) => e.code(),
            DenyReason::IntentMissing => "intent.missing",
            DenyReason::TaintPublicInputDangerous => "taint.public_input_dangerous",
            DenyReason::TaintElevationRequired => "taint.elevation_required",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::Missing(what) => write!(f, "the request has no {what}"),
            DenyReason::ZoneMismatch { caller, instance } => {
                write!(f, "the caller speaks from {caller} but the connector instance is bound to {instance}")
            }
            DenyReason::OperationForbidden => f.write_str("the operation's safety tier is forbidden"),
            DenyReason::ZonePolicy(r) => write!(f, "zone policy: {r}"),
            DenyReason::BinaryRevoked => f.write_str("the connector binary has been revoked"),
            DenyReason::RevocationStale { age_secs: u64::MAX } => {
                f.write_str("revocation state has never been synced, and this operation needs it fresh")
            }
            DenyReason::RevocationStale { age_secs } => {
                write!(f, "revocation state is {age_secs} s old, too old for this operation's safety tier")
            }
            DenyReason::Token(e) => write!(f, "capability token: {e}"),
            DenyReason::IntentMissing => {
                f.write_str("risky and dangerous operations need a stored OperationIntent before they run")
            }
            DenyReason::TaintPublicInputDangerous => {
                f.write_str("input tainted as public may not drive a dangerous operation")
            }
            DenyReason::TaintElevationRequired => {
                f.write_str("tainted input needs an elevation approval to act in this zone")
            }
        }
    }
}

/// An allowed invocation and what it rests on.
#[derive(Clone, Debug)]
pub struct Allowed {
    /// The verified token.
    pub token: VerifiedToken,
    /// `Some(age)` when revocation state was stale and the policy tolerated it:
    /// the caller must write a `revocation.degraded_mode` audit event.
    pub degraded_age_secs: Option<u64>,
}

/// The outcome.
#[derive(Debug)]
pub enum Decision {
    /// Proceed.
    Allow(Box<Allowed>),
    /// Refuse, with the reason.
    Deny(DenyReason),
}

impl Decision {
    /// The reason code: `allow` or the denial's code.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Allow(_) => "allow",
            Decision::Deny(r) => r.code(),
        }
    }

    /// Whether it allows.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Decides one invocation. Checks run in a fixed order and the first failure is
/// the answer: presence of every input → zone binding → forbidden tier → zone
/// policy → connector binary revocation → token (chain to the owner, zone, time,
/// operation, revocation) → revocation freshness → intent → provenance.
pub fn decide(req: &DecisionRequest<'_>, ctx: &DecisionContext<'_>) -> Decision {
    match decide_inner(req, ctx) {
        Ok(a) => Decision::Allow(Box::new(a)),
        Err(r) => Decision::Deny(r),
    }
}

fn decide_inner(req: &DecisionRequest<'_>, ctx: &DecisionContext<'_>) -> Result<Allowed, DenyReason> {
    let caller_zone = req.caller_zone.ok_or(DenyReason::Missing("caller_zone"))?;
    let principal = req.principal.ok_or(DenyReason::Missing("principal"))?;
    let instance = req.instance.ok_or(DenyReason::Missing("instance"))?;
    let op = req.operation.ok_or(DenyReason::Missing("operation"))?;
    let token = req.token.ok_or(DenyReason::Missing("token"))?;
    let policy = ctx.zone_policy.ok_or(DenyReason::Missing("zone_policy"))?;
    let view = ctx.revocation.ok_or(DenyReason::Missing("revocation"))?;
    let provenance = req.provenance.ok_or(DenyReason::Missing("provenance"))?;

    if caller_zone != &instance.zone || policy.zone_id != instance.zone || view.zone() != &instance.zone {
        return Err(DenyReason::ZoneMismatch { caller: caller_zone.clone(), instance: instance.zone.clone() });
    }
    if op.tier == SafetyTier::Forbidden {
        return Err(DenyReason::OperationForbidden);
    }
    policy.evaluate(principal, &instance.connector_id, &op.capability, op.tier).map_err(DenyReason::ZonePolicy)?;
    if view.is_revoked(&RevocationTarget::ConnectorBinary(instance.binary_hash), req.now) {
        return Err(DenyReason::BinaryRevoked);
    }
    let tctx = TokenContext {
        zone: &instance.zone,
        operation: &op.id,
        capability: &op.capability,
        connector_id: &instance.connector_id,
        principal,
        now: req.now,
    };
    let verified = verify_token(token, ctx.trust, view, &tctx).map_err(DenyReason::Token)?;
    // Freshness is judged after the signature, so the token's chk_seq is trusted.
    let degraded_age_secs = match policy.freshness.check(view, op.tier, req.now, verified.claims().chk_seq) {
        Freshness::Fresh => None,
        Freshness::Degraded { age_secs } => Some(age_secs),
        Freshness::Stale { age_secs } => return Err(DenyReason::RevocationStale { age_secs }),
    };
    if op.tier >= SafetyTier::Risky && req.intent.is_none() {
        return Err(DenyReason::IntentMissing);
    }
    match provenance.can_invoke(op.tier, ctx.zone_integrity, &DynEvidence(ctx.evidence)) {
        TaintDecision::Allow => {}
        TaintDecision::Deny => return Err(DenyReason::TaintPublicInputDangerous),
        TaintDecision::RequireElevation => return Err(DenyReason::TaintElevationRequired),
    }
    Ok(Allowed { token: verified, degraded_age_secs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{mint_token, sign_grant, CapabilityGrant, Grantee, MintRequest};
    use crate::id::ObjectIdKey;
    use crate::keys::{AttestationClaims, NodeKeyAttestation, NodeKeys, OwnerKey};
    use crate::provenance::{Confidentiality, NoEvidence, TaintFlag};
    use crate::revocation::{FreshnessMode, FreshnessPolicy, RevocationObject};
    use crate::zone::standard_zones;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NOW: u64 = 1_700_000_000;

    struct World {
        owner: OwnerKey,
        node: NodeKeys,
        trust: TrustStore,
        policy: ZonePolicy,
        view: RevocationView,
        instance: InstanceBinding,
        op: OperationSpec,
        zone: ZoneId,
        provenance: Provenance,
        grant: ObjectId,
        grant_ids: [ObjectId; 1],
        ops: Vec<String>,
        rng: ChaCha20Rng,
    }

    impl World {
        fn new() -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(42);
            let owner = OwnerKey::generate(&mut rng);
            let node = NodeKeys::generate("node-a", &mut rng).expect("node");
            let zone = ZoneId::new("z:work").expect("zone");
            let mut trust = TrustStore::new(owner.public());
            let att = NodeKeyAttestation::issue(
                &owner,
                AttestationClaims {
                    node: &node,
                    tags: &[],
                    issued_at: NOW - 10,
                    expires_at: NOW + 3600,
                    posture: None,
                },
            )
            .expect("attest");
            trust.add_attestation(att, NOW).expect("trusted");
            let grant = sign_grant(
                &owner,
                CapabilityGrant {
                    capability_id: "echo.say".into(),
                    zone_id: zone.clone(),
                    grantee: Grantee::Principal("agent:alice".into()),
                    operations: vec!["echo".into()],
                    valid_from: NOW - 100,
                    valid_until: NOW + 86_400,
                    constraints: crate::role::CapabilityConstraints::default(),
                },
            )
            .expect("grant");
            let grant = trust.add_grant(&ObjectIdKey([1; 32]), grant).expect("grant verifies");
            let policy = standard_zones().into_iter().nth(2).expect("z:work").1;
            let mut view = RevocationView::new(zone.clone(), owner.public());
            view.mark_synced(NOW - 5);
            let instance = InstanceBinding {
                connector_id: "fcp.echo".into(),
                instance_id: "fcp.echo@z:work".into(),
                zone: zone.clone(),
                binary_hash: [7; 32],
            };
            let op = OperationSpec { id: "echo".into(), capability: "echo.say".into(), tier: SafetyTier::Safe };
            let provenance = Provenance::new(zone.clone(), Integrity::Work, Confidentiality::Work);
            let grant_ids = [grant];
            let ops = vec!["echo".to_owned()];
            World { owner, node, trust, policy, view, instance, op, zone, provenance, grant, grant_ids, ops, rng }
        }

        fn token_with<'a>(&'a mut self, f: impl FnOnce(&mut MintRequest<'a>)) -> Vec<u8> {
            let World { zone, ops, grant_ids, rng, node, .. } = self;
            let mut req = MintRequest {
                zone,
                capability: "echo.say",
                operations: ops,
                grant_ids,
                principal: Some("agent:alice"),
                issuer_node: "node-a",
                now: NOW,
                ttl_secs: 300,
                chk_seq: None,
                constraints: None,
            };
            f(&mut req);
            mint_token(rng, &node.issuance, &req).expect("mint")
        }

        fn decide<'a>(&'a self, token: Option<&'a [u8]>, tweak: impl FnOnce(&mut DecisionRequest<'a>)) -> Decision {
            let mut req = DecisionRequest {
                caller_zone: Some(&self.zone),
                principal: Some("agent:alice"),
                instance: Some(&self.instance),
                operation: Some(&self.op),
                token,
                intent: None,
                provenance: Some(&self.provenance),
                now: NOW + 1,
            };
            tweak(&mut req);
            let ctx = DecisionContext {
                trust: &self.trust,
                zone_policy: Some(&self.policy),
                zone_integrity: Integrity::Work,
                revocation: Some(&self.view),
                evidence: &NoEvidence,
            };
            decide(&req, &ctx)
        }

        fn revoke(&mut self, t: RevocationTarget) {
            let seq = self.view.head_seq() + 1;
            let r = RevocationObject::issue(&self.owner, self.zone.clone(), seq, vec![t], "test", NOW - 1, None)
                .expect("revocation");
            self.view.apply(&r).expect("apply");
        }
    }

    #[test]
    fn a_good_token_is_allowed() {
        let mut w = World::new();
        let t = w.token_with(|_| {});
        let d = w.decide(Some(&t), |_| {});
        assert_eq!(d.code(), "allow");
        let Decision::Allow(a) = d else { unreachable!("checked above") };
        assert_eq!(a.token.issuer_node(), "node-a");
        assert_eq!(a.degraded_age_secs, None);
    }

    #[test]
    fn each_denial_has_its_reason() {
        let mut w = World::new();
        let good = w.token_with(|_| {});
        assert_eq!(w.decide(None, |_| {}).code(), "token.missing");
        let expired = w.token_with(|r| r.now = NOW - 400);
        assert_eq!(w.decide(Some(&expired), |_| {}).code(), "token.expired");
        let other_zone = ZoneId::new("z:private").expect("zone");
        let wrong_zone = w.token_with(|r| r.zone = &other_zone);
        assert_eq!(w.decide(Some(&wrong_zone), |_| {}).code(), "token.wrong_zone");
        let other_ops = vec!["shout".to_owned()];
        let wrong_op = w.token_with(|r| r.operations = &other_ops);
        assert_eq!(w.decide(Some(&wrong_op), |_| {}).code(), "token.wrong_operation");
        let mut forged = good.clone();
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(w.decide(Some(&forged), |_| {}).code(), "token.bad_signature");
        assert_eq!(w.decide(Some(&good), |r| r.principal = Some("agent:mallory")).code(), "token.wrong_principal");
        let stranger = NodeKeys::generate("node-x", &mut ChaCha20Rng::seed_from_u64(9)).expect("node");
        let ops = vec!["echo".to_owned()];
        let grants = [w.grant];
        let unknown = mint_token(
            &mut ChaCha20Rng::seed_from_u64(10),
            &stranger.issuance,
            &MintRequest {
                zone: &w.zone,
                capability: "echo.say",
                operations: &ops,
                grant_ids: &grants,
                principal: None,
                issuer_node: "node-x",
                now: NOW,
                ttl_secs: 300,
                chk_seq: None,
                constraints: None,
            },
        )
        .expect("mint");
        assert_eq!(w.decide(Some(&unknown), |_| {}).code(), "token.unknown_issuer");
        let z = ZoneId::new("z:private").expect("zone");
        assert_eq!(w.decide(Some(&good), |r| r.caller_zone = Some(&z)).code(), "zone.mismatch");
    }

    #[test]
    fn revocation_denies_token_issuer_grant_and_binary() {
        let mut w = World::new();
        let t = w.token_with(|_| {});
        let ctx = TokenContext {
            zone: &w.zone,
            operation: "echo",
            capability: "echo.say",
            connector_id: "fcp.echo",
            principal: "agent:alice",
            now: NOW + 1,
        };
        let id = verify_token(&t, &w.trust, &w.view, &ctx).expect("valid").jti().expect("jti").to_vec();
        w.revoke(RevocationTarget::Token(id));
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "token.revoked");

        let mut w = World::new();
        let t = w.token_with(|_| {});
        let kid = w.node.issuance.kid();
        w.revoke(RevocationTarget::IssuerKey(kid));
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "token.issuer_revoked");

        let mut w = World::new();
        let t = w.token_with(|_| {});
        let g = w.grant;
        w.revoke(RevocationTarget::Capability(g));
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "token.grant_revoked");

        let mut w = World::new();
        let t = w.token_with(|_| {});
        w.revoke(RevocationTarget::ConnectorBinary([7; 32]));
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "revocation.connector_binary");
    }

    #[test]
    fn freshness_intent_policy_and_taint() {
        let mut w = World::new();
        let t = w.token_with(|_| {});
        // stale view: Warn mode lets a Safe operation through, degraded
        let later = NOW + 1000;
        let d = w.decide(Some(&t), |r| r.now = later);
        assert_eq!(d.code(), "token.expired", "the token expires before the view goes stale");
        let long = w.token_with(|r| r.ttl_secs = 3600);
        let d = w.decide(Some(&long), |r| r.now = later);
        let Decision::Allow(a) = d else { panic!("degraded allow expected, got {d:?}") };
        assert_eq!(a.degraded_age_secs, Some(later - (NOW - 5)));
        w.policy.freshness = FreshnessPolicy { mode: FreshnessMode::Strict, max_age_secs: 300 };
        assert_eq!(w.decide(Some(&long), |r| r.now = later).code(), "revocation.stale");
        // risky needs an intent
        w.op.tier = SafetyTier::Risky;
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "intent.missing");
        assert_eq!(w.decide(Some(&t), |r| r.intent = Some(ObjectId([3; 32]))).code(), "allow");
        // dangerous with public input is refused
        w.op.tier = SafetyTier::Dangerous;
        w.provenance.taint.insert(TaintFlag::PublicInput);
        assert_eq!(w.decide(Some(&t), |r| r.intent = Some(ObjectId([3; 32]))).code(), "taint.public_input_dangerous");
        // policy ceiling and forbidden tier
        w.op.tier = SafetyTier::Critical;
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "zone.ceiling");
        w.op.tier = SafetyTier::Forbidden;
        assert_eq!(w.decide(Some(&t), |_| {}).code(), "operation.forbidden");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_missing_input_denies(mask in 1u16..512) {
            let mut w = World::new();
            let t = w.token_with(|_| {});
            let policy = w.policy.clone();
            let view = w.view.clone();
            let req = DecisionRequest {
                caller_zone: (mask & 1 == 0).then_some(&w.zone),
                principal: (mask & 2 == 0).then_some("agent:alice"),
                instance: (mask & 4 == 0).then_some(&w.instance),
                operation: (mask & 8 == 0).then_some(&w.op),
                token: (mask & 16 == 0).then_some(t.as_slice()),
                intent: None,
                provenance: (mask & 32 == 0).then_some(&w.provenance),
                now: NOW + 1,
            };
            let ctx = DecisionContext {
                trust: &w.trust,
                zone_policy: (mask & 64 == 0).then_some(&policy),
                zone_integrity: Integrity::Work,
                revocation: (mask & 128 == 0).then_some(&view),
                evidence: &NoEvidence,
            };
            let d = decide(&req, &ctx);
            if mask & 255 == 0 {
                prop_assert_eq!(d.code(), "allow");
            } else {
                prop_assert!(!d.is_allow(), "allowed with inputs missing (mask {mask:#b})");
            }
        }

        #[test]
        fn stale_views_never_allow_dangerous(age in 301u64..3_500) {
            let mut w = World::new();
            w.op.tier = SafetyTier::Dangerous;
            w.policy.freshness = FreshnessPolicy { mode: FreshnessMode::BestEffort, max_age_secs: 300 };
            let t = w.token_with(|r| r.ttl_secs = 86_400);
            // the attestation lives an hour; stay inside it so freshness decides
            let now = NOW - 5 + age;
            let d = w.decide(Some(&t), |r| { r.now = now; r.intent = Some(ObjectId([3; 32])); });
            prop_assert_eq!(d.code(), "revocation.stale");
        }
    }
}
