//! ApprovalToken: a signed, short-lived, single-use approval for an elevation, a
//! declassification or one execution (digest §5.5, the [C]/[I] shape).
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

/// The closed set of things an approval can approve ([I] `ApprovalScope`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApprovalScope {
    /// Raise integrity for one operation.
    Elevation(ElevationScope),
    /// Lower confidentiality of some objects flowing between zones.
    Declassification(DeclassificationScope),
    /// Run one specific invocation.
    Execution(ExecutionScope),
}

/// Elevation scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElevationScope {
    /// The operation being elevated.
    pub operation_id: String,
    /// The provenance record being elevated.
    pub original_provenance_id: ObjectId,
    /// Integrity after elevation.
    pub target_integrity: Integrity,
}

/// Declassification scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionScope {
    /// The connector invoked.
    pub connector_id: String,
    /// Anchored glob over the operation id: `*` and `?` only, ASCII, ≤ 128 bytes.
    pub method_pattern: String,
    /// The one request approved; required by [`verify_approval`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_id: Option<ObjectId>,
    /// Hash of the approved input (bstr).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub input_hash: Option<[u8; 32]>,
    /// Constraints on the input; required when `input_hash` is absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_constraints: Vec<InputConstraint>,
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
