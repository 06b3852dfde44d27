//! Capabilities (digest §5.1–§5.2): owner-signed grant objects, and the one way to
//! obtain a [`VerifiedToken`]: [`verify_token`] walks from the token to the issuing
//! node's attested issuance key and from there to the owner key, then checks the
//! signature, zone, time window, operation, audience, grant objects and revocation.

use std::collections::HashMap;
use std::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{Kid, ObjectId, ObjectIdKey, ZoneId};
use crate::keys::{KeyError, NodeIssuanceKey, NodeKeyAttestation, OwnerKey, OwnerPublicKey};
use crate::revocation::{RevocationTarget, RevocationView};
use crate::role::{AttenuationError, CapabilityConstraints};
use crate::schema::SchemaId;
use crate::token::{self, CapabilityClaims, TokenError};
use crate::zone::{OwnerSignable, OwnerSigned, ZoneError};

/// Schema id string of capability grant signatures.
pub const CAPABILITY_SCHEMA: &str = "fcp.core.CapabilityObject/1.0.0";
/// Longest token lifetime a verifier accepts (digest §5.2: `exp − iat` ≤ 86,400 s).
pub const MAX_TOKEN_TTL_SECS: u64 = 86_400;
/// Default token lifetime (digest §5.2).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 300;

/// Who a grant is for (\[S\] grantee).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// One principal (an agent).
    Principal(String),
    /// Anyone holding a token minted from it.
    Bearer,
}

/// The owner's grant of a capability in a zone (\[S\] CapabilityObject, digest §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityGrant {
    /// Capability id.
    pub capability_id: String,
    /// Zone.
    pub zone_id: ZoneId,
    /// Grantee.
    pub grantee: Grantee,
    /// Operations it covers; empty means every operation of the capability.
    pub operations: Vec<String>,
    /// Start of validity (seconds).
    pub valid_from: u64,
    /// End of validity (seconds, exclusive).
    pub valid_until: u64,
    /// Constraints; tokens minted from the grant may only narrow them.
    #[serde(default)]
    pub constraints: CapabilityConstraints,
}

impl OwnerSignable for CapabilityGrant {
    const SCHEMA: &'static str = CAPABILITY_SCHEMA;
}

impl CapabilityGrant {
    fn covers(&self, capability: &str, operation: &str) -> bool {
        self.capability_id == capability
            && (self.operations.is_empty() || self.operations.iter().any(|o| o == operation))
    }
}

/// The keyed ObjectId of a signed grant: what tokens name in `grant_object_ids`.
pub fn grant_id(key: &ObjectIdKey, grant: &OwnerSigned<CapabilityGrant>) -> Result<ObjectId, CapabilityError> {
    let schema =
        SchemaId::new("fcp.core", "CapabilityObject", "1.0.0").map_err(|e| CapabilityError::Encode(e.to_string()))?;
    let bytes = cbor::to_vec(grant).map_err(|e| CapabilityError::Encode(e.to_string()))?;
    Ok(ObjectId::keyed(key, &grant.body.zone_id, &schema, &bytes))
}

/// What the verifier trusts: the owner key, attested nodes and owner-signed grants.
/// Every attestation and grant is verified against the owner key on insertion (the
/// only way in), so lookups need not verify signatures again.
#[derive(Clone)]
pub struct TrustStore {
    owner: OwnerPublicKey,
    /// Attestations by issuance kid.
    issuers: HashMap<Kid, NodeKeyAttestation>,
    /// Grants by id.
    grants: HashMap<ObjectId, OwnerSigned<CapabilityGrant>>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("owner", &self.owner.kid())
            .field("issuers", &self.issuers.len())
            .field("grants", &self.grants.len())
            .finish()
    }
}

impl TrustStore {
    /// Trusts only `owner`.
    pub fn new(owner: OwnerPublicKey) -> Self {
        TrustStore { owner, issuers: HashMap::new(), grants: HashMap::new() }
    }

    /// The owner key.
    pub fn owner(&self) -> &OwnerPublicKey {
        &self.owner
    }

    /// Adds a node attestation after checking the owner's signature at `now`.
    pub fn add_attestation(&mut self, a: NodeKeyAttestation, now: u64) -> Result<(), KeyError> {
        a.verify(&self.owner, now)?;
        self.issuers.insert(a.issuance_key.kid(), a);
        Ok(())
    }

    /// Adds a grant after checking the owner's signature; returns its id.
    pub fn add_grant(
        &mut self,
        key: &ObjectIdKey,
        g: OwnerSigned<CapabilityGrant>,
    ) -> Result<ObjectId, CapabilityError> {
        g.verify(&self.owner).map_err(CapabilityError::Grant)?;
        let id = grant_id(key, &g)?;
        self.grants.insert(id, g);
        Ok(id)
    }
}

/// What the token must be good for.
#[derive(Clone, Copy, Debug)]
pub struct TokenContext<'a> {
    /// The instance's zone.
    pub zone: &'a ZoneId,
    /// The operation invoked.
    pub operation: &'a str,
    /// The capability it needs.
    pub capability: &'a str,
    /// The connector (an `aud` other than the zone must name it).
    pub connector_id: &'a str,
    /// The caller.
    pub principal: &'a str,
    /// Now (seconds).
    pub now: u64,
}

/// Why a token is refused. Every variant has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// No kid, or no attested node issues with it.
    #[error("no attested issuer for key id {0}")]
    UnknownIssuer(String),
    /// The issuer's attestation does not verify now.
    #[error("issuer attestation does not verify")]
    IssuerNotAttested(#[source] KeyError),
    /// The issuer's key or attestation is revoked.
    #[error("the issuer's key or attestation is revoked")]
    IssuerRevoked,
    /// The COSE envelope or signature.
    #[error("{0}")]
    Token(#[source] TokenError),
    /// A claim the verifier needs is absent.
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    /// For another zone.
    #[error("the token is for zone {got:?}, the instance is in {want}")]
    WrongZone {
        /// Instance zone.
        want: ZoneId,
        /// Token zone.
        got: String,
    },
    /// Outside its validity window.
    #[error("the token is outside its validity window (now {now}, nbf {nbf:?}, exp {exp})")]
    Expired {
        /// Now.
        now: u64,
        /// Not before.
        nbf: Option<i64>,
        /// Expiry.
        exp: i64,
    },
    /// Lifetime longer than allowed.
    #[error("the token lives {0} s, more than {MAX_TOKEN_TTL_SECS} s")]
    TooLong(i64),
    /// The operation is not granted.
    #[error("the token does not grant operation {0:?}")]
    OperationNotGranted(String),
    /// Issued to someone else.
    #[error("the token names audience {0:?}, not this connector or zone")]
    WrongAudience(String),
    /// Issued to another principal.
    #[error("the token is for principal {0:?}")]
    WrongPrincipal(String),
    /// The token itself is revoked.
    #[error("the token is revoked")]
    Revoked,
    /// Names no grant object.
    #[error("the token names no grant object")]
    NoGrant,
    /// Names a grant the verifier does not hold.
    #[error("grant {0} is unknown")]
    UnknownGrant(ObjectId),
    /// A grant object does not verify.
    #[error("grant object does not verify")]
    Grant(#[source] ZoneError),
    /// A grant is revoked.
    #[error("grant {0} is revoked")]
    GrantRevoked(ObjectId),
    /// The token's constraints widen its grant's, or do not parse.
    #[error("token constraints exceed grant {0}")]
    Constraints(ObjectId, #[source] AttenuationError),
    /// A grant does not cover the token's window, zone, principal or operations.
    #[error("grant {0} does not cover this token: {1}")]
    ExceedsGrant(ObjectId, &'static str),
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
}

impl CapabilityError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            CapabilityError::UnknownIssuer(_) => "token.unknown_issuer",
            CapabilityError::IssuerNotAttested(_) => "token.issuer_not_attested",
            CapabilityError::IssuerRevoked => "token.issuer_revoked",
            CapabilityError::Token(TokenError::InvalidSignature) => "token.bad_signature",
            CapabilityError::Token(_) => "token.malformed",
            CapabilityError::MissingClaim(_) => "token.missing_claim",
            CapabilityError::WrongZone { .. } => "token.wrong_zone",
            CapabilityError::Expired { .. } => "token.expired",
            CapabilityError::TooLong(_) => "token.lifetime_too_long",
            CapabilityError::OperationNotGranted(_) => "token.wrong_operation",
            CapabilityError::WrongAudience(_) => "token.wrong_audience",
            CapabilityError::WrongPrincipal(_) => "token.wrong_principal",
            CapabilityError::Revoked => "token.revoked",
            CapabilityError::NoGrant => "token.no_grant",
            CapabilityError::UnknownGrant(_) => "token.unknown_grant",
            CapabilityError::Grant(_) => "token.bad_grant",
            CapabilityError::GrantRevoked(_) => "token.grant_revoked",
            CapabilityError::ExceedsGrant(..) => "token.exceeds_grant",
            CapabilityError::Constraints(..) => "token.exceeds_constraints",
            CapabilityError::Encode(_) => "encode",
        }
    }
}

/// A token that [`verify_token`] accepted. It cannot be built any other way.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    claims: CapabilityClaims,
    issuer_node: String,
    constraints: CapabilityConstraints,
}

impl VerifiedToken {
    /// The verified claims.
    pub fn claims(&self) -> &CapabilityClaims {
        &self.claims
    }

    /// The node whose issuance key signed it.
    pub fn issuer_node(&self) -> &str {
        &self.issuer_node
    }

    /// The token id.
    pub fn jti(&self) -> Option<&[u8]> {
        self.claims.jti()
    }

    /// The constraints in force: the token's own, which narrow its grant's, or the
    /// covering grant's when the token names none.
    pub fn constraints(&self) -> &CapabilityConstraints {
        &self.constraints
    }
}

/// The one way to obtain a verified token (digest §5.2).
pub fn verify_token(
    bytes: &[u8],
    trust: &TrustStore,
    revocation: &RevocationView,
    ctx: &TokenContext<'_>,
) -> Result<VerifiedToken, CapabilityError> {
    let now = ctx.now;
    // 1. Route by kid to an attested issuance key, and from it to the owner.
    let kid = token::kid(bytes).ok_or_else(|| CapabilityError::UnknownIssuer("(none)".into()))?;
    let att = trust.issuers.get(&kid).ok_or_else(|| CapabilityError::UnknownIssuer(kid.to_string()))?;
    // The store verified the owner's signature when the attestation went in; only the
    // window can have changed since.
    att.check_window(now).map_err(CapabilityError::IssuerNotAttested)?;
    if revocation.is_revoked(&RevocationTarget::IssuerKey(kid), now)
        || revocation.is_revoked(&RevocationTarget::NodeAttestation(att.node_id.clone()), now)
    {
        return Err(CapabilityError::IssuerRevoked);
    }
    // 2. Signature and envelope.
    let claims = token::verify_cose(bytes, att.issuance_key.as_dalek())
        .and_then(|v| v.claims())
        .map_err(CapabilityError::Token)?;
    // 3. Zone, time, audience, principal, operation.
    let zone = claims.zone_id.as_deref().ok_or(CapabilityError::MissingClaim("zone_id"))?;
    if zone != ctx.zone.as_str() {
        return Err(CapabilityError::WrongZone { want: ctx.zone.clone(), got: zone.to_owned() });
    }
    let exp = claims.exp.ok_or(CapabilityError::MissingClaim("exp"))?;
    let iat = claims.iat.ok_or(CapabilityError::MissingClaim("iat"))?;
    if exp.saturating_sub(iat) > MAX_TOKEN_TTL_SECS as i64 {
        return Err(CapabilityError::TooLong(exp.saturating_sub(iat)));
    }
    if claims.check_timing(now).is_err() {
        return Err(CapabilityError::Expired { now, nbf: claims.nbf, exp });
    }
    if let Some(aud) = claims.aud.as_deref() {
        if aud != ctx.zone.as_str() && aud != ctx.connector_id {
            return Err(CapabilityError::WrongAudience(aud.to_owned()));
        }
    }
    if let Some(p) = claims.principal_id.as_deref() {
        if p != ctx.principal {
            return Err(CapabilityError::WrongPrincipal(p.to_owned()));
        }
    }
    let granted = claims
        .effective_grants()
        .iter()
        .any(|g| g.capability == ctx.capability && g.operation.as_deref().is_none_or(|o| o == ctx.operation))
        || (claims.grants.is_none()
            && claims.operations.as_ref().is_some_and(|ops| ops.iter().any(|o| o == ctx.operation))
            && claims.capability_id.as_deref() == Some(ctx.capability));
    if !granted {
        return Err(CapabilityError::OperationNotGranted(ctx.operation.to_owned()));
    }
    // 4. Revocation of the token itself.
    let jti = claims.cti.as_deref().ok_or(CapabilityError::MissingClaim("cti"))?;
    if revocation.is_revoked(&RevocationTarget::Token(jti.to_vec()), now) {
        return Err(CapabilityError::Revoked);
    }
    // 5. Grants: owner-signed, unrevoked, covering the window, zone, principal and operation.
    let ids = claims.grant_object_ids.as_deref().unwrap_or_default();
    if ids.is_empty() {
        return Err(CapabilityError::NoGrant);
    }
    let token_constraints = match &claims.constraints {
        None => None,
        Some(v) => {
            Some(CapabilityConstraints::from_cbor_value(v).map_err(|e| CapabilityError::Constraints(ids[0], e))?)
        }
    };
    let mut covered: Option<CapabilityConstraints> = None;
    for id in ids {
        let g = trust.grants.get(id).ok_or(CapabilityError::UnknownGrant(*id))?;
        // Owner-signed: `add_grant` verified it on the way in.
        let body = &g.body;
        if revocation.is_revoked(&RevocationTarget::Capability(*id), now) {
            return Err(CapabilityError::GrantRevoked(*id));
        }
        if &body.zone_id != ctx.zone {
            return Err(CapabilityError::ExceedsGrant(*id, "zone"));
        }
        if iat < body.valid_from as i64 || exp > body.valid_until as i64 {
            return Err(CapabilityError::ExceedsGrant(*id, "validity window"));
        }
        if let Grantee::Principal(p) = &body.grantee {
            if p != ctx.principal {
                return Err(CapabilityError::ExceedsGrant(*id, "principal"));
            }
        }
        if let Some(tc) = &token_constraints {
            tc.check_attenuates(&body.constraints).map_err(|e| CapabilityError::Constraints(*id, e))?;
        }
        if covered.is_none() && body.covers(ctx.capability, ctx.operation) {
            covered = Some(body.constraints.clone());
        }
    }
    let Some(grant_constraints) = covered else {
        return Err(CapabilityError::ExceedsGrant(ids[0], "operation"));
    };
    let constraints = token_constraints.unwrap_or(grant_constraints);
    Ok(VerifiedToken { claims, issuer_node: att.node_id.clone(), constraints })
}

/// What an issuer puts in a new token.
#[derive(Clone, Debug)]
pub struct MintRequest<'a> {
    /// Zone.
    pub zone: &'a ZoneId,
    /// Capability.
    pub capability: &'a str,
    /// Operations.
    pub operations: &'a [String],
    /// The grant objects it derives from.
    pub grant_ids: &'a [ObjectId],
    /// Principal it is for, if bound.
    pub principal: Option<&'a str>,
    /// Issuing node id.
    pub issuer_node: &'a str,
    /// Now (seconds).
    pub now: u64,
    /// Lifetime in seconds.
    pub ttl_secs: u64,
    /// Revocation seq the token binds (`chk_seq`), if any.
    pub chk_seq: Option<u64>,
    /// Narrower constraints than the grant's, if any.
    pub constraints: Option<&'a CapabilityConstraints>,
}

/// Mints a token with a fresh 16-byte `cti` from `rng`, signed by the node's issuance key.
pub fn mint_token(
    rng: &mut impl CryptoRngCore,
    issuer: &NodeIssuanceKey,
    req: &MintRequest<'_>,
) -> Result<Vec<u8>, CapabilityError> {
    let mut cti = vec![0u8; 16];
    rng.fill_bytes(&mut cti);
    let now = i64::try_from(req.now).map_err(|_| CapabilityError::Encode("time out of range".into()))?;
    let ttl = i64::try_from(req.ttl_secs.min(MAX_TOKEN_TTL_SECS)).unwrap_or(DEFAULT_TOKEN_TTL_SECS as i64);
    let claims = CapabilityClaims {
        iss: Some(req.issuer_node.to_owned()),
        iat: Some(now),
        nbf: Some(now),
        exp: Some(now.saturating_add(ttl)),
        cti: Some(cti),
        capability_id: Some(req.capability.to_owned()),
        zone_id: Some(req.zone.to_string()),
        operations: Some(req.operations.to_vec()),
        principal_id: req.principal.map(str::to_owned),
        iss_node: Some(req.issuer_node.to_owned()),
        grant_object_ids: Some(req.grant_ids.to_vec()),
        chk_seq: req.chk_seq,
        constraints: match req.constraints {
            Some(c) => Some(cbor::to_value(c).map_err(|e| CapabilityError::Encode(e.to_string()))?),
            None => None,
        },
        ..CapabilityClaims::default()
    };
    token::sign(issuer.as_dalek(), &claims).map(token::SignedToken::into_bytes).map_err(CapabilityError::Token)
}

/// The owner signs a grant.
pub fn sign_grant(owner: &OwnerKey, grant: CapabilityGrant) -> Result<OwnerSigned<CapabilityGrant>, CapabilityError> {
    OwnerSigned::sign(owner, grant).map_err(CapabilityError::Grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AttestationClaims, NodeKeys};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NOW: u64 = 1_700_000_000;

    fn setup(grantee: Grantee, valid_until: u64) -> (NodeKeys, TrustStore, RevocationView, ObjectId, ZoneId) {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let owner = OwnerKey::generate(&mut rng);
        let node = NodeKeys::generate("node-a", &mut rng).expect("node");
        let zone = ZoneId::new("z:work").expect("zone");
        let mut trust = TrustStore::new(owner.public());
        let att = NodeKeyAttestation::issue(
            &owner,
            AttestationClaims { node: &node, tags: &[], issued_at: NOW, expires_at: NOW + 3600, posture: None },
        )
        .expect("attest");
        trust.add_attestation(att, NOW).expect("attested");
        let g = sign_grant(
            &owner,
            CapabilityGrant {
                capability_id: "echo.say".into(),
                zone_id: zone.clone(),
                grantee,
                operations: Vec::new(),
                valid_from: NOW,
                valid_until,
                constraints: CapabilityConstraints {
                    resource_allow: vec!["echo:".into()],
                    max_calls: Some(10),
                    ..CapabilityConstraints::default()
                },
            },
        )
        .expect("grant");
        let id = trust.add_grant(&ObjectIdKey([0; 32]), g).expect("grant verifies");
        let view = RevocationView::new(zone.clone(), owner.public());
        (node, trust, view, id, zone)
    }

    fn check(
        bytes: &[u8],
        trust: &TrustStore,
        view: &RevocationView,
        zone: &ZoneId,
    ) -> Result<VerifiedToken, CapabilityError> {
        let ctx = TokenContext {
            zone,
            operation: "echo",
            capability: "echo.say",
            connector_id: "fcp.echo",
            principal: "agent:alice",
            now: NOW + 1,
        };
        verify_token(bytes, trust, view, &ctx)
    }

    fn mint(node: &NodeKeys, zone: &ZoneId, grants: &[ObjectId], ttl: u64) -> Vec<u8> {
        mint_with(node, zone, grants, ttl, None)
    }

    fn mint_with(
        node: &NodeKeys,
        zone: &ZoneId,
        grants: &[ObjectId],
        ttl: u64,
        constraints: Option<&CapabilityConstraints>,
    ) -> Vec<u8> {
        let ops = vec!["echo".to_owned()];
        let req = MintRequest {
            zone,
            capability: "echo.say",
            operations: &ops,
            grant_ids: grants,
            principal: None,
            issuer_node: "node-a",
            now: NOW,
            ttl_secs: ttl,
            chk_seq: None,
            constraints,
        };
        mint_token(&mut ChaCha20Rng::seed_from_u64(4), &node.issuance, &req).expect("mint")
    }

    #[test]
    fn grants_bound_the_token() {
        let (node, trust, view, id, zone) = setup(Grantee::Bearer, NOW + 86_400);
        let ok = check(&mint(&node, &zone, &[id], 300), &trust, &view, &zone).expect("valid");
        assert_eq!(ok.issuer_node(), "node-a");
        assert_eq!(ok.constraints().max_calls, Some(10), "the grant's constraints apply");
        let narrow = CapabilityConstraints {
            resource_allow: vec!["echo:quiet/".into()],
            max_calls: Some(2),
            ..CapabilityConstraints::default()
        };
        let t = mint_with(&node, &zone, &[id], 300, Some(&narrow));
        assert_eq!(check(&t, &trust, &view, &zone).map(|v| v.constraints().clone()).ok(), Some(narrow));
        let wide = CapabilityConstraints { resource_allow: vec!["echo:".into()], ..CapabilityConstraints::default() };
        let t = mint_with(&node, &zone, &[id], 300, Some(&wide));
        assert_eq!(check(&t, &trust, &view, &zone).map(|_| ()).map_err(|e| e.code()), Err("token.exceeds_constraints"));
        assert_eq!(ok.jti().map(<[u8]>::len), Some(16));
        let code = |r: Result<VerifiedToken, CapabilityError>| r.map(|_| ()).map_err(|e| e.code());
        assert_eq!(code(check(&mint(&node, &zone, &[], 300), &trust, &view, &zone)), Err("token.no_grant"));
        assert_eq!(
            code(check(&mint(&node, &zone, &[ObjectId([9; 32])], 300), &trust, &view, &zone)),
            Err("token.unknown_grant")
        );

        let (node, trust, view, id, zone) = setup(Grantee::Bearer, NOW + 100);
        assert_eq!(code(check(&mint(&node, &zone, &[id], 300), &trust, &view, &zone)), Err("token.exceeds_grant"));

        let (node, trust, view, id, zone) = setup(Grantee::Principal("agent:bob".into()), NOW + 86_400);
        assert_eq!(code(check(&mint(&node, &zone, &[id], 300), &trust, &view, &zone)), Err("token.exceeds_grant"));
    }

    #[test]
    fn grants_must_be_owner_signed() {
        let (_, mut trust, _, _, zone) = setup(Grantee::Bearer, NOW + 10);
        let stranger = OwnerKey::generate(&mut ChaCha20Rng::seed_from_u64(99));
        let forged = sign_grant(
            &stranger,
            CapabilityGrant {
                capability_id: "echo.say".into(),
                zone_id: zone,
                grantee: Grantee::Bearer,
                operations: Vec::new(),
                valid_from: 0,
                valid_until: u64::MAX,
                constraints: CapabilityConstraints::default(),
            },
        )
        .expect("sign");
        assert_eq!(trust.add_grant(&ObjectIdKey([0; 32]), forged).map_err(|e| e.code()).err(), Some("token.bad_grant"));
    }
}
