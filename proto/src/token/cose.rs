//! The COSE_Sign1 envelope of a capability token (digest §5.2, `vectors/README.md` §5.12).
//!
//! coset builds the structures and the Sig_structure; the strict canonical decoder of
//! [`crate::cbor`] guards every byte that comes in or goes out, because coset alone
//! accepts non-canonical CBOR.

use coset::{iana, CborSerializable, CoseSign1Builder, Header, HeaderBuilder, ProtectedHeader, SignatureContext};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::claims::{CapabilityClaims, ClaimMap};
use super::{TokenError, MAX_TOKEN_LEN};
use crate::cbor::{self, Limits, Value};
use crate::id::Kid;

/// COSE algorithm EdDSA (−8), the only one a token may name.
pub const COSE_ALG_EDDSA: i64 = -8;
/// COSE header label `alg`.
const ALG: i128 = 1;
/// COSE header label `crit`.
const CRIT: i128 = 2;
/// COSE header label `kid`.
const KID: i128 = 4;
/// The one tag accepted around a token: RFC 9052 `COSE_Sign1_Tagged` (18), head `d2`.
const TAG_18: u8 = 0xd2;

/// A freshly signed token and the parts the vectors pin down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedToken {
    bytes: Vec<u8>,
    protected: Vec<u8>,
    payload: Vec<u8>,
    signature: [u8; 64],
}

impl SignedToken {
    /// The untagged COSE_Sign1 `[protected, {}, payload, signature]` (first byte `84`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The token bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The protected header bytes, `det-CBOR({1: -8, 4: kid})`.
    pub fn protected(&self) -> &[u8] {
        &self.protected
    }

    /// The signed payload: the claims plus the sign-time additions.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// `det-CBOR(["Signature1", protected, h'', payload])`, the signed bytes.
    pub fn sig_structure(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
    }
}

/// A token whose envelope, headers, kid and signature checked out against the issuer key,
/// and whose payload is a well-formed claim map (digest §5.2 steps 1–6).
///
/// Claim values are not yet type-checked, and time, audience, zone, grants and revocation
/// are the capability verifier's to judge.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    kid: Kid,
    claims: ClaimMap,
    payload: Vec<u8>,
}

impl VerifiedToken {
    /// The issuer key's id, from the protected header.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// The claims as signed, untyped.
    pub fn raw_claims(&self) -> &ClaimMap {
        &self.claims
    }

    /// The claims, type-checked against the digest §5.2 table.
    pub fn claims(&self) -> Result<CapabilityClaims, TokenError> {
        CapabilityClaims::from_claim_map(&self.claims)
    }

    /// The signed payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The four parts of a strictly decoded envelope.
struct Envelope {
    protected_bytes: Vec<u8>,
    protected: Vec<(Value, Value)>,
    unprotected: Vec<(Value, Value)>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn limits() -> Limits {
    Limits::with_max_len(MAX_TOKEN_LEN)
}

fn malformed(reason: &'static str) -> TokenError {
    TokenError::Malformed { reason }
}

/// Step 1 (`malformed`): at most 64 KiB, one optional outer tag 18, then strict canonical
/// CBOR `[bstr, map, bstr, bstr]` whose protected bstr strictly decodes to a map.
fn parse_envelope(token: &[u8]) -> Result<Envelope, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("token larger than 64 KiB"));
    }
    let inner = match token.split_first() {
        Some((&TAG_18, rest)) => rest,
        _ => token,
    };
    let value = cbor::decode(inner, limits()).map_err(TokenError::MalformedCbor)?;
    let Value::Array(items) = value else { return Err(malformed("not an array")) };
    let Ok([protected, unprotected, payload, signature]) = <[Value; 4]>::try_from(items) else {
        return Err(malformed("not a four-element array"));
    };
    let (Value::Bytes(protected_bytes), Value::Map(unprotected), Value::Bytes(payload), Value::Bytes(signature)) =
        (protected, unprotected, payload, signature)
    else {
        return Err(malformed("not [bstr, map, bstr, bstr]"));
    };
    let Value::Map(protected) = cbor::decode(&protected_bytes, limits()).map_err(TokenError::MalformedCbor)? else {
        return Err(malformed("protected header is not a map"));
    };
    Ok(Envelope { protected_bytes, protected, unprotected, payload, signature })
}

fn header<'a>(map: &'a [(Value, Value)], label: i128) -> Option<&'a Value> {
    map.iter().find(|(k, _)| *k == Value::Int(label)).map(|(_, v)| v)
}

/// Steps 2–4: no alg/kid/crit unprotected, alg EdDSA, crit only naming present alg/kid,
/// a non-empty kid. Returns the kid bytes.
fn check_headers(env: &Envelope) -> Result<&[u8], TokenError> {
    if env.unprotected.iter().any(|(k, _)| matches!(k, Value::Int(ALG | CRIT | KID))) {
        return Err(TokenError::BadHeader { reason: "alg, kid or crit in the unprotected map" });
    }
    if header(&env.protected, ALG) != Some(&Value::Int(i128::from(COSE_ALG_EDDSA))) {
        return Err(TokenError::BadAlgorithm);
    }
    if let Some(crit) = header(&env.protected, CRIT) {
        let Value::Array(labels) = crit else {
            return Err(TokenError::BadHeader { reason: "crit is not an array" });
        };
        for l in labels {
            let understood = matches!(l, Value::Int(ALG | KID));
            let present = env.protected.iter().any(|(k, _)| k == l);
            if !understood || !present {
                return Err(TokenError::BadHeader { reason: "crit lists a label other than a present alg or kid" });
            }
        }
    }
    match header(&env.protected, KID) {
        Some(Value::Bytes(kid)) if !kid.is_empty() => Ok(kid),
        _ => Err(TokenError::BadHeader { reason: "no kid in the protected map" }),
    }
}

/// `det-CBOR(["Signature1", protected, h'', payload])` (RFC 9052 §4.4, empty external AAD),
/// built by coset over the protected bytes exactly as received.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let protected = ProtectedHeader { original_data: Some(protected.to_vec()), header: Header::default() };
    coset::sig_structure_data(SignatureContext::CoseSign1, protected, None, &[], payload)
}

/// Signs typed claims as [I] `CoseToken::sign` does (digest §5.2): applies the sign-time
/// additions (`aud` := zone id if absent, −65552 := 1 if absent), protected header
/// `{1: -8, 4: kid}`, Ed25519 over the Sig_structure, untagged output.
pub fn sign(issuer: &SigningKey, claims: &CapabilityClaims) -> Result<SignedToken, TokenError> {
    sign_claim_map(issuer, &claims.to_claim_map()?)
}

/// [`sign`] for an untyped claim map, e.g. one carrying extension claims as read.
pub fn sign_claim_map(issuer: &SigningKey, claims: &ClaimMap) -> Result<SignedToken, TokenError> {
    let payload = claims.with_sign_time_additions().to_cbor()?;
    let kid = Kid::of(issuer.verifying_key().as_bytes());
    let protected = HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(kid.0.to_vec()).build();
    let token = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload.clone())
        .create_signature(&[], |tbs| issuer.sign(tbs).to_bytes().to_vec())
        .build()
        .to_vec()
        .map_err(|_| TokenError::EmitToken { reason: "coset could not serialize the token" })?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge { len: token.len() });
    }
    // What goes out must pass the same strict reader that guards what comes in.
    let env = parse_envelope(&token).map_err(|_| TokenError::EmitToken { reason: "token is not canonical" })?;
    let signature: [u8; 64] = env
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| TokenError::EmitToken { reason: "signature is not 64 bytes" })?;
    if env.payload != payload || !env.unprotected.is_empty() {
        return Err(TokenError::EmitToken { reason: "token does not carry the payload it signed" });
    }
    Ok(SignedToken { bytes: token, protected: env.protected_bytes, payload, signature })
}

/// Verifies a token against the issuer's key, running the checks of digest §5.2 in
/// [I]'s order and stopping at the first failure (`vectors/README.md` §5.12):
///
/// 1. `malformed`: over 64 KiB, not (optionally tag-18-wrapped) strict canonical
///    `[bstr, map, bstr, bstr]`, or the protected bstr is not a canonical map;
/// 2. `bad_header`: alg, kid or crit in the unprotected map;
/// 3. `bad_algorithm`: protected alg missing or not EdDSA (−8);
/// 4. `bad_header`: crit names anything but a present alg or kid, or kid missing or empty;
/// 5. `kid_mismatch`: the kid is not `BLAKE3("fcp.kid.v2" || pk)[0..8]` of `issuer`;
/// 6. `invalid_signature`: not 64 bytes, or Ed25519 (strict) fails over the Sig_structure;
/// 7. `invalid_claims`: the payload is not a canonical integer-keyed map (digest §5.2 step 6).
pub fn verify_cose(token: &[u8], issuer: &VerifyingKey) -> Result<VerifiedToken, TokenError> {
    let env = parse_envelope(token)?;
    let kid = check_headers(&env)?;
    let expected = Kid::of(issuer.as_bytes());
    if kid != expected.0.as_slice() {
        return Err(TokenError::KidMismatch { expected, found: kid.to_vec() });
    }
    let sig: [u8; 64] = env.signature.as_slice().try_into().map_err(|_| TokenError::InvalidSignature)?;
    issuer
        .verify_strict(&sig_structure(&env.protected_bytes, &env.payload), &Signature::from_bytes(&sig))
        .map_err(|_| TokenError::InvalidSignature)?;
    let claims = ClaimMap::from_cbor(&env.payload)?;
    Ok(VerifiedToken { kid: expected, claims, payload: env.payload })
}

/// Verifies a token whose issuer key is found by its kid (digest §5.2: a verifier routes by
/// kid). `lookup` sees the kid only after the envelope and header checks pass.
pub fn verify_with_lookup(
    token: &[u8],
    lookup: impl FnOnce(&Kid) -> Option<VerifyingKey>,
) -> Result<VerifiedToken, TokenError> {
    let env = parse_envelope(token)?;
    let kid = check_headers(&env)?;
    let kid = <[u8; 8]>::try_from(kid).map(Kid).map_err(|_| TokenError::UnknownKid { kid: None })?;
    let key = lookup(&kid).ok_or(TokenError::UnknownKid { kid: Some(kid) })?;
    verify_cose(token, &key)
}

/// The protected kid of a token, to route to the issuer key before verifying.
///
/// `None` unless the envelope is well formed (step 1) and carries an 8-byte protected kid.
/// Nothing about the token is trusted until [`verify_cose`] succeeds.
pub fn kid(token: &[u8]) -> Option<Kid> {
    let env = parse_envelope(token).ok()?;
    match header(&env.protected, KID) {
        Some(Value::Bytes(k)) => <[u8; 8]>::try_from(k.as_slice()).ok().map(Kid),
        _ => None,
    }
}
