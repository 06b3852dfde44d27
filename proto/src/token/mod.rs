//! Capability tokens (digest §5.2), holder proofs (§5.3) and approval tokens (§5.5).
//!
//! A capability token is an untagged COSE_Sign1 (RFC 9052) whose payload is a CWT claim
//! map with the \[I\] integer keys (−65537 … −65552). [`sign`] writes exactly what \[I\]
//! `CoseToken::sign` writes; [`verify_cose`] runs \[I\]'s checks in \[I\]'s order with the
//! result codes of `vectors/README.md` §5.12, over bytes that must be strict canonical
//! CBOR. What the token *means* (issuer chain to the owner, zone, time window, operations,
//! revocation) is judged on top, from [`VerifiedToken::claims`].
//!
//! ```text
//! let kid = token::kid(&bytes)?;                      // route to the issuer key
//! let verified = token::verify_cose(&bytes, &issuer)?; // signature and envelope
//! let claims = verified.claims()?;                     // typed claims
//! claims.check_timing(now_secs)?;
//! ```

mod approval;
mod claims;
mod cose;
mod holder;

pub use approval::{
    method_pattern_matches, verify_approval, ApprovalContext, ApprovalLedger, ApprovalScope, ApprovalToken,
    DeclassificationScope, ElevationScope, ExecutionScope, InputConstraint, VerifiedApproval, APPROVAL_TOKEN_SCHEMA,
    DEFAULT_APPROVAL_TTL_MS, MAX_CONSTRAINT_VALUE_LEN, MAX_INPUT_CONSTRAINTS, MAX_METHOD_PATTERN_LEN,
};
pub use claims::{label, CapabilityClaims, ClaimMap, Grant, CLAIMS_SCHEMA_VERSION};
pub use cose::{
    kid, sig_structure, sign, sign_claim_map, verify_cose, verify_with_lookup, SignedToken, VerifiedToken,
    COSE_ALG_EDDSA,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use holder::{holder_proof_bytes, HolderProof, HOLDER_PROOF_DOMAIN};

use crate::cbor::{CanonicalError, CborError, EncodeError};
use crate::id::Kid;

/// Largest token, and largest claims payload (digest §5.2).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token, holder proof or approval is refused.
///
/// The first seven codes are the `verify` results of `vectors/README.md` §5.12, in the
/// order [`verify_cose`] checks them. All of them blame the sender of the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a COSE_Sign1 this verifier can read.
    #[error("malformed token: {reason}")]
    Malformed {
        /// Which rule.
        reason: &'static str,
    },
    /// The envelope or protected header is not strict canonical CBOR.
    #[error("malformed token")]
    MalformedCbor(#[source] CanonicalError),
    /// A header rule fails (alg/kid/crit unprotected, bad crit, no kid).
    #[error("bad token header: {reason}")]
    BadHeader {
        /// Which rule.
        reason: &'static str,
    },
    /// The protected alg is missing or not EdDSA.
    #[error("token algorithm is not EdDSA")]
    BadAlgorithm,
    /// The protected kid is not the key's kid.
    #[error("token kid {} is not the key's kid {expected}", hex::encode(found))]
    KidMismatch {
        /// The key's kid.
        expected: Kid,
        /// The token's kid.
        found: Vec<u8>,
    },
    /// The signature is not 64 bytes or does not verify.
    #[error("token signature does not verify")]
    InvalidSignature,
    /// The payload is not a canonical integer-keyed claim map.
    #[error("invalid claims: {reason}")]
    InvalidClaims {
        /// Which rule.
        reason: &'static str,
    },
    /// The payload is not strict canonical CBOR.
    #[error("invalid claims")]
    InvalidClaimsCbor(#[source] CanonicalError),
    /// A claim value has the wrong type.
    #[error("claim {label} is not {expected}")]
    ClaimType {
        /// The claim key.
        label: i64,
        /// The type the table requires.
        expected: &'static str,
    },
    /// An extra claim uses a key of the claim table.
    #[error("extra claim {label} collides with a typed claim")]
    ClaimConflict {
        /// The claim key.
        label: i64,
    },
    /// A claim the check needs is absent.
    #[error("token has no {claim} claim")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// The claims have no canonical encoding.
    #[error("encode claims")]
    Encode(#[source] EncodeError),
    /// An approval token has no canonical encoding.
    #[error("encode approval token")]
    EncodeObject(#[source] CborError),
    /// The token could not be emitted in canonical form.
    #[error("emit token: {reason}")]
    EmitToken {
        /// What went wrong.
        reason: &'static str,
    },
    /// The signed token would exceed 64 KiB.
    #[error("token of {len} bytes exceeds {MAX_TOKEN_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// No issuer key is known for the token's kid.
    #[error("no issuer key for kid {kid:?}")]
    UnknownKid {
        /// The kid, when it had the 8-byte form.
        kid: Option<Kid>,
    },
    /// `now ≥ exp`.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The exp claim.
        exp: i64,
        /// Now.
        now: u64,
    },
    /// `now < nbf`.
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The nbf claim.
        nbf: i64,
        /// Now.
        now: u64,
    },
    /// A holder-proof field does not fit its u32 length prefix.
    #[error("{field} of {len} bytes does not fit a u32 length")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The holder proof comes from a node other than the token's holder.
    #[error("holder proof is not from the token's holder node")]
    HolderMismatch,
    /// The holder proof signature does not verify.
    #[error("holder proof does not verify")]
    HolderProofInvalid,
    /// The approval is unsigned or its signature does not verify.
    #[error("approval signature does not verify")]
    ApprovalSignatureInvalid,
    /// The approval is for another zone.
    #[error("approval is for another zone")]
    ApprovalZoneMismatch,
    /// The approval lives longer than allowed, or expires before it is issued.
    #[error("approval lifetime exceeds {max_ms} ms")]
    ApprovalTtlExceeded {
        /// The maximum.
        max_ms: u64,
    },
    /// `now < issued_at`.
    #[error("approval not yet valid")]
    ApprovalNotYetValid,
    /// `now ≥ expires_at`.
    #[error("approval expired")]
    ApprovalExpired,
    /// The approval is bound to another request.
    #[error("approval is bound to another request")]
    ApprovalRequestMismatch,
    /// The approval's scope does not cover this invocation.
    #[error("approval scope does not cover the invocation: {reason}")]
    ApprovalScopeMismatch {
        /// Which part differs.
        reason: &'static str,
    },
    /// The approval's execution scope breaks a digest §5.5 rule.
    #[error("approval scope is invalid: {reason}")]
    ApprovalScopeInvalid {
        /// Which rule.
        reason: &'static str,
    },
    /// The approval was used before.
    #[error("approval {token_id} was already used")]
    ApprovalReplayed {
        /// Its id.
        token_id: String,
    },
}

impl TokenError {
    /// The stable result code (`vectors/README.md` §5.12 for the verify steps).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed { .. } | TokenError::MalformedCbor(_) => "malformed",
            TokenError::BadHeader { .. } => "bad_header",
            TokenError::BadAlgorithm => "bad_algorithm",
            TokenError::KidMismatch { .. } => "kid_mismatch",
            TokenError::InvalidSignature => "invalid_signature",
            TokenError::InvalidClaims { .. } | TokenError::InvalidClaimsCbor(_) => "invalid_claims",
            TokenError::ClaimType { .. } => "claim_type",
            TokenError::ClaimConflict { .. } => "claim_conflict",
            TokenError::MissingClaim { .. } => "missing_claim",
            TokenError::Encode(_) | TokenError::EncodeObject(_) | TokenError::EmitToken { .. } => "encode",
            TokenError::TooLarge { .. } => "too_large",
            TokenError::UnknownKid { .. } => "unknown_kid",
            TokenError::Expired { .. } => "token_expired",
            TokenError::NotYetValid { .. } => "token_not_yet_valid",
            TokenError::FieldTooLong { .. } => "field_too_long",
            TokenError::HolderMismatch => "holder_mismatch",
            TokenError::HolderProofInvalid => "holder_proof_invalid",
            TokenError::ApprovalSignatureInvalid => "approval_signature_invalid",
            TokenError::ApprovalZoneMismatch => "approval_zone_mismatch",
            TokenError::ApprovalTtlExceeded { .. } => "approval_ttl_exceeded",
            TokenError::ApprovalNotYetValid => "approval_not_yet_valid",
            TokenError::ApprovalExpired => "approval_expired",
            TokenError::ApprovalRequestMismatch => "approval_request_mismatch",
            TokenError::ApprovalScopeMismatch { .. } => "approval_scope_mismatch",
            TokenError::ApprovalScopeInvalid { .. } => "approval_scope_invalid",
            TokenError::ApprovalReplayed { .. } => "approval_replayed",
        }
    }
}
