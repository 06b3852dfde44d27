//! ApprovalToken: a signed, short-lived, single-use approval for an elevation, a
//! declassification or one execution (digest §5.5, the \[C\]/\[I\] shape).
//!
//! `{token_id, issued_at_ms, expires_at_ms, issuer, scope, zone_id, ?signature}` with the
//! scope internally tagged by `type`. The signature is Ed25519 over the fcp-crypto signing
//! bytes (`FCP2-SIGN-V1 || BLAKE3("fcp.core.ApprovalToken/1.0.0")[0..8] || det-CBOR(token
//! without its signature)`, digest §1.2).

use std::collections::{BTreeSet, HashSet};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::TokenError;
use crate::cbor::{self, CborError, Value};
use crate::id::{ObjectId, ZoneId};
use crate::provenance::{Confidentiality, Integrity};
use crate::schema::signing_bytes;

/// Schema id string of the ApprovalToken signing bytes.
pub const APPROVAL_TOKEN_SCHEMA: &str = "fcp.core.ApprovalToken/1.0.0";
/// Default and maximum lifetime of an approval, `expires_at − issued_at` (300 s, digest §5.5).
pub const DEFAULT_APPROVAL_TTL_MS: u64 = 300_000;
/// Longest execution `method_pattern` (digest §5.5).
pub const MAX_METHOD_PATTERN_LEN: usize = 128;
/// Most input constraints in one execution scope (digest §5.5).
pub const MAX_INPUT_CONSTRAINTS: usize = 64;
/// Largest encoded `expected` value of one input constraint (digest §5.5).
pub const MAX_CONSTRAINT_VALUE_LEN: usize = 4096;

/// A human's (or policy's) approval (digest §5.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalToken {
    /// Unique id; the single-use ledger keys on it.
    pub token_id: String,
    /// When it was issued (Unix ms).
    pub issued_at_ms: u64,
    /// When it stops being valid (Unix ms, exclusive).
    pub expires_at_ms: u64,
    /// Issuer node or principal.
    pub issuer: String,
    /// What it approves.
    pub scope: ApprovalScope,
    /// The zone it is valid in.
    pub zone_id: ZoneId,
    /// Ed25519 signature over [`ApprovalToken::signable_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub signature: Option<[u8; 64]>,
}

/// The closed set of things an approval can approve (\[I\] `ApprovalScope`).
///
/// On the wire the scope is one map, internally tagged by `type` (`elevation`,
/// `declassification` or `execution`). It goes through a flat wire struct rather than serde's
/// internal tagging, whose buffering would hide the binary format from ObjectId and
/// turn its bstr into text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScopeWire", into = "ScopeWire")]
pub enum ApprovalScope {
    /// Raise integrity for one operation.
    Elevation(ElevationScope),
    /// Lower confidentiality of some objects flowing between zones.
    Declassification(DeclassificationScope),
    /// Run one specific invocation.
    Execution(ExecutionScope),
}

/// Elevation scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElevationScope {
    /// The operation being elevated.
    pub operation_id: String,
    /// The provenance record being elevated.
    pub original_provenance_id: ObjectId,
    /// Integrity after elevation.
    pub target_integrity: Integrity,
}

/// Declassification scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclassificationScope {
    /// Where the data comes from.
    pub from_zone: ZoneId,
    /// Where it goes.
    pub to_zone: ZoneId,
    /// The objects declassified.
    pub object_ids: Vec<ObjectId>,
    /// Confidentiality after declassification.
    pub target_confidentiality: Confidentiality,
}

/// Execution scope: "allow this exact invocation".
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionScope {
    /// The connector invoked.
    pub connector_id: String,
    /// Anchored glob over the operation id: `*` and `?` only, ASCII, ≤ 128 bytes.
    pub method_pattern: String,
    /// The one request approved; required by [`verify_approval`].
    pub request_object_id: Option<ObjectId>,
    /// Hash of the approved input (bstr).
    pub input_hash: Option<[u8; 32]>,
    /// Constraints on the input; required when `input_hash` is absent (omitted when empty).
    pub input_constraints: Vec<InputConstraint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScopeKind {
    Elevation,
    Declassification,
    Execution,
}

/// The flat wire map of a scope: the `type` tag plus the fields of every variant.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeWire {
    #[serde(rename = "type")]
    kind: ScopeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    original_provenance_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_integrity: Option<Integrity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_zone: Option<ZoneId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_zone: Option<ZoneId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object_ids: Option<Vec<ObjectId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_confidentiality: Option<Confidentiality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connector_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_object_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    input_hash: Option<[u8; 32]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_constraints: Option<Vec<InputConstraint>>,
}

impl ScopeWire {
    fn empty(kind: ScopeKind) -> Self {
        ScopeWire {
            kind,
            operation_id: None,
            original_provenance_id: None,
            target_integrity: None,
            from_zone: None,
            to_zone: None,
            object_ids: None,
            target_confidentiality: None,
            connector_id: None,
            method_pattern: None,
            request_object_id: None,
            input_hash: None,
            input_constraints: None,
        }
    }

    /// Names of the fields present, for the "not allowed for this type" check.
    fn present(&self) -> [(&'static str, bool); 12] {
        [
            ("operation_id", self.operation_id.is_some()),
            ("original_provenance_id", self.original_provenance_id.is_some()),
            ("target_integrity", self.target_integrity.is_some()),
            ("from_zone", self.from_zone.is_some()),
            ("to_zone", self.to_zone.is_some()),
            ("object_ids", self.object_ids.is_some()),
            ("target_confidentiality", self.target_confidentiality.is_some()),
            ("connector_id", self.connector_id.is_some()),
            ("method_pattern", self.method_pattern.is_some()),
            ("request_object_id", self.request_object_id.is_some()),
            ("input_hash", self.input_hash.is_some()),
            ("input_constraints", self.input_constraints.is_some()),
        ]
    }
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("scope has no {field}"))
}

impl TryFrom<ScopeWire> for ApprovalScope {
    type Error = String;
    fn try_from(w: ScopeWire) -> Result<Self, String> {
        let allowed: &[&str] = match w.kind {
            ScopeKind::Elevation => &["operation_id", "original_provenance_id", "target_integrity"],
            ScopeKind::Declassification => &["from_zone", "to_zone", "object_ids", "target_confidentiality"],
            ScopeKind::Execution => {
                &["connector_id", "method_pattern", "request_object_id", "input_hash", "input_constraints"]
            }
        };
        if let Some((name, _)) = w.present().into_iter().find(|(name, present)| *present && !allowed.contains(name)) {
            return Err(format!("field {name} is not part of a {:?} scope", w.kind));
        }
        Ok(match w.kind {
            ScopeKind::Elevation => ApprovalScope::Elevation(ElevationScope {
                operation_id: required(w.operation_id, "operation_id")?,
                original_provenance_id: required(w.original_provenance_id, "original_provenance_id")?,
                target_integrity: required(w.target_integrity, "target_integrity")?,
            }),
            ScopeKind::Declassification => ApprovalScope::Declassification(DeclassificationScope {
                from_zone: required(w.from_zone, "from_zone")?,
                to_zone: required(w.to_zone, "to_zone")?,
                object_ids: required(w.object_ids, "object_ids")?,
                target_confidentiality: required(w.target_confidentiality, "target_confidentiality")?,
            }),
            ScopeKind::Execution => ApprovalScope::Execution(ExecutionScope {
                connector_id: required(w.connector_id, "connector_id")?,
                method_pattern: required(w.method_pattern, "method_pattern")?,
                request_object_id: w.request_object_id,
                input_hash: w.input_hash,
                input_constraints: w.input_constraints.unwrap_or_default(),
            }),
        })
    }
}

impl From<ApprovalScope> for ScopeWire {
    fn from(s: ApprovalScope) -> Self {
        match s {
            ApprovalScope::Elevation(e) => ScopeWire {
                operation_id: Some(e.operation_id),
                original_provenance_id: Some(e.original_provenance_id),
                target_integrity: Some(e.target_integrity),
                ..ScopeWire::empty(ScopeKind::Elevation)
            },
            ApprovalScope::Declassification(d) => ScopeWire {
                from_zone: Some(d.from_zone),
                to_zone: Some(d.to_zone),
                object_ids: Some(d.object_ids),
                target_confidentiality: Some(d.target_confidentiality),
                ..ScopeWire::empty(ScopeKind::Declassification)
            },
            ApprovalScope::Execution(x) => ScopeWire {
                connector_id: Some(x.connector_id),
                method_pattern: Some(x.method_pattern),
                request_object_id: x.request_object_id,
                input_hash: x.input_hash,
                input_constraints: (!x.input_constraints.is_empty()).then_some(x.input_constraints),
                ..ScopeWire::empty(ScopeKind::Execution)
            },
        }
    }
}

/// One input constraint: the value at an RFC 6901 JSON Pointer must equal `expected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConstraint {
    /// RFC 6901 JSON Pointer (no JSONPath, no regex).
    pub pointer: String,
    /// The required value.
    pub expected: serde_json::Value,
}

/// Whether `s` is RFC 6901 JSON Pointer syntax: empty, or `/`-separated tokens in which
/// every `~` is followed by `0` or `1`.
fn is_json_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// Anchored glob match with `*` (any run) and `?` (one byte), ASCII only.
pub fn method_pattern_matches(pattern: &str, method: &str) -> bool {
    if pattern.len() > MAX_METHOD_PATTERN_LEN || !pattern.is_ascii() || !method.is_ascii() {
        return false;
    }
    let (p, m) = (pattern.as_bytes(), method.as_bytes());
    let (mut pi, mut mi) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while mi < m.len() {
        match p.get(pi) {
            Some(b'*') => {
                backtrack = Some((pi, mi));
                pi += 1;
            }
            Some(c) if *c == b'?' || *c == m[mi] => {
                pi += 1;
                mi += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    pi = star + 1;
                    mi = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

impl ExecutionScope {
    /// The digest §5.5 execution rules: pattern ASCII and ≤ 128 bytes, at most 64 constraints,
    /// each pointer RFC 6901 and each value ≤ 4 KiB, and constraints present when there is no
    /// input hash.
    pub fn validate(&self) -> Result<(), TokenError> {
        let invalid = |reason| Err(TokenError::ApprovalScopeInvalid { reason });
        if self.method_pattern.len() > MAX_METHOD_PATTERN_LEN || !self.method_pattern.is_ascii() {
            return invalid("method_pattern is not ASCII of at most 128 bytes");
        }
        if self.input_constraints.len() > MAX_INPUT_CONSTRAINTS {
            return invalid("more than 64 input constraints");
        }
        if self.input_hash.is_none() && self.input_constraints.is_empty() {
            return invalid("neither an input hash nor input constraints");
        }
        for c in &self.input_constraints {
            if !is_json_pointer(&c.pointer) {
                return invalid("input constraint pointer is not an RFC 6901 JSON Pointer");
            }
            let len = serde_json::to_vec(&c.expected).map(|v| v.len()).unwrap_or(usize::MAX);
            if len > MAX_CONSTRAINT_VALUE_LEN {
                return invalid("input constraint value larger than 4 KiB");
            }
        }
        Ok(())
    }
}

/// Remembers which approvals were used, so each is accepted once (digest §5.5).
///
/// Implementations may forget an entry once `expires_at_ms` has passed: an expired token
/// is refused before the ledger is consulted.
pub trait ApprovalLedger {
    /// Records a use of `token_id`; returns `false` if it was recorded before.
    fn record_use(&mut self, token_id: &str, expires_at_ms: u64) -> bool;
}

impl ApprovalLedger for HashSet<String> {
    fn record_use(&mut self, token_id: &str, _expires_at_ms: u64) -> bool {
        self.insert(token_id.to_owned())
    }
}

impl ApprovalLedger for BTreeSet<String> {
    fn record_use(&mut self, token_id: &str, _expires_at_ms: u64) -> bool {
        self.insert(token_id.to_owned())
    }
}

/// The request an approval is being used for.
#[derive(Clone, Copy, Debug)]
pub struct ApprovalContext<'a> {
    /// Now (Unix ms).
    pub now_ms: u64,
    /// The zone the request runs in.
    pub zone_id: &'a ZoneId,
    /// The request.
    pub request_object_id: &'a ObjectId,
    /// The connector invoked.
    pub connector_id: &'a str,
    /// The operation invoked.
    pub operation_id: &'a str,
    /// Longest accepted lifetime, `expires_at − issued_at`.
    pub max_ttl_ms: u64,
}

impl<'a> ApprovalContext<'a> {
    /// A context with the default 300 s maximum lifetime.
    pub fn new(
        now_ms: u64,
        zone_id: &'a ZoneId,
        request_object_id: &'a ObjectId,
        connector_id: &'a str,
        operation_id: &'a str,
    ) -> Self {
        ApprovalContext {
            now_ms,
            zone_id,
            request_object_id,
            connector_id,
            operation_id,
            max_ttl_ms: DEFAULT_APPROVAL_TTL_MS,
        }
    }
}

/// An approval that passed [`verify_approval`] and has been recorded as used.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedApproval(ApprovalToken);

impl VerifiedApproval {
    /// The approval.
    pub fn token(&self) -> &ApprovalToken {
        &self.0
    }

    /// Its id.
    pub fn token_id(&self) -> &str {
        &self.0.token_id
    }

    /// What it approves.
    pub fn scope(&self) -> &ApprovalScope {
        &self.0.scope
    }
}

impl ApprovalToken {
    /// `FCP2-SIGN-V1 || schema_hash8 || det-CBOR(token without signature)` (digest §1.2).
    pub fn signable_bytes(&self) -> Result<Vec<u8>, TokenError> {
        let value = cbor::to_value(self).map_err(TokenError::EncodeObject)?;
        let unsigned = match value {
            Value::Map(entries) => {
                Value::Map(entries.into_iter().filter(|(k, _)| *k != Value::text("signature")).collect())
            }
            other => other,
        };
        let body = cbor::encode(&unsigned).map_err(|e| TokenError::EncodeObject(CborError::Encode(e)))?;
        Ok(signing_bytes(APPROVAL_TOKEN_SCHEMA, &body))
    }

    /// Signs with the issuer's key, setting `signature`.
    pub fn sign(&mut self, issuer: &SigningKey) -> Result<(), TokenError> {
        self.signature = Some(issuer.sign(&self.signable_bytes()?).to_bytes());
        Ok(())
    }

    /// Checks only the signature.
    pub fn verify_signature(&self, issuer: &VerifyingKey) -> Result<(), TokenError> {
        let sig = self.signature.ok_or(TokenError::ApprovalSignatureInvalid)?;
        issuer
            .verify_strict(&self.signable_bytes()?, &Signature::from_bytes(&sig))
            .map_err(|_| TokenError::ApprovalSignatureInvalid)
    }
}

/// Verifies an approval for one request and records its use. Checks, in order:
///
/// 1. the issuer's signature (`approval_signature_invalid`);
/// 2. the zone (`approval_zone_mismatch`);
/// 3. the lifetime, `issued_at ≤ expires_at` and at most `max_ttl_ms` (`approval_ttl_exceeded`);
/// 4. the time: `issued_at ≤ now < expires_at` (`approval_not_yet_valid`, `approval_expired`);
/// 5. the scope, bound to this request (`approval_request_mismatch`, `approval_scope_mismatch`,
///    `approval_scope_invalid`): an execution approval must name this request, connector and a
///    matching method pattern; a declassification must list the request among its objects;
///    an elevation must name this operation;
/// 6. single use: the ledger must not have seen the token (`approval_replayed`).
///
/// The ledger is written only when every other check passed.
pub fn verify_approval(
    token: &ApprovalToken,
    issuer: &VerifyingKey,
    ctx: &ApprovalContext<'_>,
    ledger: &mut impl ApprovalLedger,
) -> Result<VerifiedApproval, TokenError> {
    token.verify_signature(issuer)?;
    if token.zone_id != *ctx.zone_id {
        return Err(TokenError::ApprovalZoneMismatch);
    }
    let ttl = token.expires_at_ms.checked_sub(token.issued_at_ms);
    match ttl {
        Some(ttl) if ttl <= ctx.max_ttl_ms => {}
        _ => return Err(TokenError::ApprovalTtlExceeded { max_ms: ctx.max_ttl_ms }),
    }
    if ctx.now_ms < token.issued_at_ms {
        return Err(TokenError::ApprovalNotYetValid);
    }
    if ctx.now_ms >= token.expires_at_ms {
        return Err(TokenError::ApprovalExpired);
    }
    match &token.scope {
        ApprovalScope::Execution(s) => {
            s.validate()?;
            if s.request_object_id.as_ref() != Some(ctx.request_object_id) {
                return Err(TokenError::ApprovalRequestMismatch);
            }
            if s.connector_id != ctx.connector_id {
                return Err(TokenError::ApprovalScopeMismatch { reason: "connector differs" });
            }
            if !method_pattern_matches(&s.method_pattern, ctx.operation_id) {
                return Err(TokenError::ApprovalScopeMismatch { reason: "method pattern does not match" });
            }
        }
        ApprovalScope::Declassification(s) => {
            if !s.object_ids.contains(ctx.request_object_id) {
                return Err(TokenError::ApprovalRequestMismatch);
            }
        }
        ApprovalScope::Elevation(s) => {
            if s.operation_id != ctx.operation_id {
                return Err(TokenError::ApprovalScopeMismatch { reason: "operation differs" });
            }
        }
    }
    if !ledger.record_use(&token.token_id, token.expires_at_ms) {
        return Err(TokenError::ApprovalReplayed { token_id: token.token_id.clone() });
    }
    Ok(VerifiedApproval(token.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(z: &str) -> ZoneId {
        ZoneId::new(z).expect("zone")
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[21; 32])
    }

    fn execution(request: ObjectId) -> ApprovalToken {
        let mut t = ApprovalToken {
            token_id: "approval-1".into(),
            issued_at_ms: 1_000_000,
            expires_at_ms: 1_000_000 + DEFAULT_APPROVAL_TTL_MS,
            issuer: "node:owner".into(),
            scope: ApprovalScope::Execution(ExecutionScope {
                connector_id: "fcp.stripe".into(),
                method_pattern: "payments.*".into(),
                request_object_id: Some(request),
                input_hash: Some([0x44; 32]),
                input_constraints: vec![InputConstraint {
                    pointer: "/amount".into(),
                    expected: serde_json::json!(1200),
                }],
            }),
            zone_id: zone("z:private"),
            signature: None,
        };
        t.sign(&key()).expect("signs");
        t
    }

    fn verify(
        t: &ApprovalToken,
        now_ms: u64,
        request: &ObjectId,
        ledger: &mut BTreeSet<String>,
    ) -> Result<(), &'static str> {
        let z = zone("z:private");
        let ctx = ApprovalContext::new(now_ms, &z, request, "fcp.stripe", "payments.create");
        verify_approval(t, &key().verifying_key(), &ctx, ledger).map(|_| ()).map_err(|e| e.code())
    }

    #[test]
    fn execution_approval_is_single_use_and_request_bound() {
        let req = ObjectId([7; 32]);
        let t = execution(req);
        let mut ledger = BTreeSet::new();
        assert_eq!(verify(&t, 1_000_000, &ObjectId([8; 32]), &mut ledger), Err("approval_request_mismatch"));
        assert!(ledger.is_empty(), "refused approvals are not recorded");
        assert_eq!(verify(&t, 1_000_000, &req, &mut ledger), Ok(()));
        assert_eq!(verify(&t, 1_000_001, &req, &mut ledger), Err("approval_replayed"));
    }

    #[test]
    fn time_ttl_zone_and_signature() {
        let req = ObjectId([7; 32]);
        let t = execution(req);
        let fresh = || BTreeSet::new();
        assert_eq!(verify(&t, 999_999, &req, &mut fresh()), Err("approval_not_yet_valid"));
        assert_eq!(verify(&t, t.expires_at_ms - 1, &req, &mut fresh()), Ok(()));
        assert_eq!(verify(&t, t.expires_at_ms, &req, &mut fresh()), Err("approval_expired"));
        let mut long = t.clone();
        long.expires_at_ms += 1;
        long.sign(&key()).expect("signs");
        assert_eq!(verify(&long, 1_000_000, &req, &mut fresh()), Err("approval_ttl_exceeded"));
        let mut backwards = t.clone();
        backwards.expires_at_ms = backwards.issued_at_ms - 1;
        backwards.sign(&key()).expect("signs");
        assert_eq!(verify(&backwards, 1_000_000, &req, &mut fresh()), Err("approval_ttl_exceeded"));
        let mut other_zone = t.clone();
        other_zone.zone_id = zone("z:work");
        other_zone.sign(&key()).expect("signs");
        assert_eq!(verify(&other_zone, 1_000_000, &req, &mut fresh()), Err("approval_zone_mismatch"));
        let mut tampered = t.clone();
        tampered.issuer = "node:mallory".into();
        assert_eq!(verify(&tampered, 1_000_000, &req, &mut fresh()), Err("approval_signature_invalid"));
        let mut unsigned = t.clone();
        unsigned.signature = None;
        assert_eq!(verify(&unsigned, 1_000_000, &req, &mut fresh()), Err("approval_signature_invalid"));
    }

    #[test]
    fn scopes_bind_to_the_invocation() {
        let req = ObjectId([7; 32]);
        let resign = |scope: ApprovalScope| {
            let mut t = execution(req);
            t.scope = scope;
            t.sign(&key()).expect("signs");
            t
        };
        let exec = |f: fn(&mut ExecutionScope)| {
            let ApprovalScope::Execution(mut s) = execution(req).scope else { unreachable!("execution scope") };
            f(&mut s);
            resign(ApprovalScope::Execution(s))
        };
        let v = |t: &ApprovalToken| verify(t, 1_000_000, &req, &mut BTreeSet::new());
        assert_eq!(v(&exec(|s| s.connector_id = "fcp.other".into())), Err("approval_scope_mismatch"));
        assert_eq!(v(&exec(|s| s.method_pattern = "refunds.*".into())), Err("approval_scope_mismatch"));
        assert_eq!(v(&exec(|s| s.request_object_id = None)), Err("approval_request_mismatch"));
        assert_eq!(
            v(&exec(|s| {
                s.input_hash = None;
                s.input_constraints.clear();
            })),
            Err("approval_scope_invalid")
        );
        assert_eq!(v(&exec(|s| s.input_constraints[0].pointer = "amount".into())), Err("approval_scope_invalid"));
        let declass = |ids: Vec<ObjectId>| {
            resign(ApprovalScope::Declassification(DeclassificationScope {
                from_zone: zone("z:private"),
                to_zone: zone("z:work"),
                object_ids: ids,
                target_confidentiality: Confidentiality::Work,
            }))
        };
        assert_eq!(v(&declass(vec![ObjectId([1; 32]), req])), Ok(()));
        assert_eq!(v(&declass(vec![ObjectId([1; 32])])), Err("approval_request_mismatch"));
        let elevate = |op: &str| {
            resign(ApprovalScope::Elevation(ElevationScope {
                operation_id: op.into(),
                original_provenance_id: ObjectId([2; 32]),
                target_integrity: Integrity::Work,
            }))
        };
        assert_eq!(v(&elevate("payments.create")), Ok(()));
        assert_eq!(v(&elevate("payments.refund")), Err("approval_scope_mismatch"));
    }

    #[test]
    fn wire_shape_is_internally_tagged_and_signature_free_when_signing() {
        let t = execution(ObjectId([7; 32]));
        let v = cbor::to_value(&t).expect("cbor");
        let scope = v.get("scope").expect("scope");
        assert_eq!(scope.get("type"), Some(&Value::text("execution")));
        assert_eq!(scope.get("input_hash"), Some(&Value::bytes([0x44; 32])));
        assert!(matches!(v.get("signature"), Some(Value::Bytes(b)) if b.len() == 64));
        let body = t.signable_bytes().expect("bytes");
        assert_eq!(&body[..12], b"FCP2-SIGN-V1");
        assert_eq!(&body[12..20], &crate::schema::schema_hash8(APPROVAL_TOKEN_SCHEMA));
        let unsigned = cbor::decode(&body[20..], cbor::Limits::CANONICAL).expect("canonical");
        assert_eq!(unsigned.get("signature"), None);
        let bytes = cbor::to_vec(&t).expect("encodes");
        let back: ApprovalToken = cbor::from_slice(&bytes, cbor::Limits::CANONICAL).expect("decodes");
        assert_eq!(back, t);
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["scope"]["type"], "execution");
        assert_eq!(json["scope"]["request_object_id"], hex::encode([7u8; 32]));
        let back: ApprovalToken = serde_json::from_value(json).expect("json decodes");
        assert_eq!(back, t);
    }

    #[test]
    fn scope_fields_must_belong_to_the_type() {
        let mut json = serde_json::to_value(execution(ObjectId([7; 32]))).expect("json");
        json["scope"]["to_zone"] = serde_json::json!("z:work");
        assert!(serde_json::from_value::<ApprovalToken>(json.clone()).is_err(), "declassification field in execution");
        json["scope"]["type"] = serde_json::json!("declassification");
        assert!(serde_json::from_value::<ApprovalToken>(json).is_err(), "execution fields in declassification");
    }

    #[test]
    fn method_patterns_are_anchored_globs() {
        for (p, m, ok) in [
            ("payments.create", "payments.create", true),
            ("payments.*", "payments.create", true),
            ("payments.*", "payments.", true),
            ("payments.*", "refunds.create", false),
            ("*.create", "payments.create", true),
            ("pay?ents.create", "payments.create", true),
            ("pay?ents.create", "paments.create", false),
            ("*a*b*c", "xxaybzzc", true),
            ("*a*b*c", "xxaybzzcd", false),
            ("payments", "payments.create", false),
            ("", "", true),
            ("*", "", true),
        ] {
            assert_eq!(method_pattern_matches(p, m), ok, "{p} vs {m}");
        }
        assert!(!method_pattern_matches(&"*".repeat(129), "x"));
        assert!(!method_pattern_matches("é*", "é"));
    }
}
