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

fn header(map: &[(Value, Value)], label: i128) -> Option<&Value> {
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

/// Signs typed claims as \[I\] `CoseToken::sign` does (digest §5.2): applies the sign-time
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
/// \[I\]'s order and stopping at the first failure (`vectors/README.md` §5.12):
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;
    use crate::token::{label, Grant};
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn int(i: i128) -> Value {
        Value::Int(i)
    }

    fn enc(v: &Value) -> Vec<u8> {
        cbor::encode(v).expect("test value encodes")
    }

    fn std_protected(sk: &SigningKey) -> Value {
        Value::Map(vec![(int(1), int(-8)), (int(4), Value::bytes(Kid::of(sk.verifying_key().as_bytes()).0))])
    }

    /// A token with arbitrary headers and payload, validly signed by `sk`.
    fn raw_token(sk: &SigningKey, protected: &Value, unprotected: Value, payload: &[u8]) -> Vec<u8> {
        let p = enc(protected);
        let sig = sk.sign(&sig_structure(&p, payload)).to_bytes().to_vec();
        enc(&Value::Array(vec![Value::Bytes(p), unprotected, Value::bytes(payload), Value::Bytes(sig)]))
    }

    fn claims_payload() -> Vec<u8> {
        enc(&Value::Map(vec![(int(1), Value::text("node:primary")), (int(-65538), Value::text("z:work"))]))
    }

    fn code(token: &[u8], sk: &SigningKey) -> &'static str {
        match verify_cose(token, &sk.verifying_key()) {
            Ok(_) => "valid",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn empty_claims_sign_byte_exactly() {
        let signed = sign(&key(1), &CapabilityClaims::default()).expect("signs");
        assert_eq!(
            hex::encode(signed.as_bytes()),
            "844da201270448a0c1f01ec0c902d8a047a13a0001000f015840fcb96b4cde4873e0d7cc50b71af0adcce2629496c4d125\
             478adbb7f60f6b9494d558749494fcc2af49b7c87f93014997523e9da1441c9de77820f2f3a67fbe09"
        );
        assert_eq!(hex::encode(signed.payload()), "a13a0001000f01");
    }

    #[test]
    fn coset_sig_structure_is_our_canonical_array() {
        let p = enc(&std_protected(&key(2)));
        let payload = claims_payload();
        let ours = enc(&Value::Array(vec![
            Value::text("Signature1"),
            Value::Bytes(p.clone()),
            Value::Bytes(vec![]),
            Value::Bytes(payload.clone()),
        ]));
        assert_eq!(sig_structure(&p, &payload), ours);
    }

    #[test]
    fn envelope_form_rules() {
        let sk = key(3);
        let good = raw_token(&sk, &std_protected(&sk), Value::Map(vec![]), &claims_payload());
        assert_eq!(code(&good, &sk), "valid");
        let mut tagged = vec![0xd2];
        tagged.extend_from_slice(&good);
        assert_eq!(code(&tagged, &sk), "valid", "one outer tag 18 is accepted");
        let mut twice = vec![0xd2, 0xd2];
        twice.extend_from_slice(&good);
        assert_eq!(code(&twice, &sk), "malformed");
        let mut long_tag = vec![0xd8, 0x12];
        long_tag.extend_from_slice(&good);
        assert_eq!(code(&long_tag, &sk), "malformed", "tag 18 only in its shortest head");
        let mut other_tag = vec![0xd1];
        other_tag.extend_from_slice(&good);
        assert_eq!(code(&other_tag, &sk), "malformed");
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(code(&trailing, &sk), "malformed");
        assert_eq!(code(&good[..good.len() - 1], &sk), "malformed");
        // A non-shortest length head on the protected bstr.
        let mut loose = vec![0x84, 0x58, good[1] & 0x1f];
        loose.extend_from_slice(&good[2..]);
        assert_eq!(code(&loose, &sk), "malformed");
        // Wrong shapes.
        let p = enc(&std_protected(&sk));
        for shape in [
            Value::Array(vec![Value::Bytes(p.clone()), Value::Map(vec![]), Value::bytes(claims_payload())]),
            Value::Array(vec![Value::Bytes(p.clone()), Value::Map(vec![]), Value::Null, Value::bytes([0; 64])]),
            Value::Array(vec![Value::Map(vec![]), Value::Map(vec![]), Value::bytes(vec![]), Value::bytes([0; 64])]),
            Value::Array(vec![
                Value::bytes(enc(&int(1))),
                Value::Map(vec![]),
                Value::bytes(vec![]),
                Value::bytes([0; 64]),
            ]),
            Value::Array(vec![Value::bytes(vec![]), Value::Map(vec![]), Value::bytes(vec![]), Value::bytes([0; 64])]),
            Value::Map(vec![]),
        ] {
            assert_eq!(code(&enc(&shape), &sk), "malformed", "{shape:?}");
        }
        let huge = raw_token(&sk, &std_protected(&sk), Value::Map(vec![]), &vec![0xa0; MAX_TOKEN_LEN]);
        assert_eq!(code(&huge, &sk), "malformed");
    }

    #[test]
    fn header_rules_in_order() {
        let sk = key(4);
        let kid = Value::bytes(Kid::of(sk.verifying_key().as_bytes()).0);
        let payload = claims_payload();
        let t = |protected: Value, unprotected: Value| code(&raw_token(&sk, &protected, unprotected, &payload), &sk);
        let prot = |entries: Vec<(Value, Value)>| Value::Map(entries);
        let std = std_protected(&sk);
        // 2: alg, kid or crit unprotected; other labels ignored.
        assert_eq!(t(std.clone(), prot(vec![(int(1), int(-8))])), "bad_header");
        assert_eq!(t(std.clone(), prot(vec![(int(4), kid.clone())])), "bad_header");
        assert_eq!(t(std.clone(), prot(vec![(int(2), Value::Array(vec![int(1)]))])), "bad_header");
        assert_eq!(t(std.clone(), prot(vec![(int(3), Value::Null), (int(7), Value::text("x"))])), "valid");
        // Step 2 comes before step 3.
        assert_eq!(t(prot(vec![(int(4), kid.clone())]), prot(vec![(int(1), int(-8))])), "bad_header");
        // 3: alg.
        assert_eq!(t(prot(vec![(int(4), kid.clone())]), prot(vec![])), "bad_algorithm");
        assert_eq!(t(prot(vec![(int(1), int(-7)), (int(4), kid.clone())]), prot(vec![])), "bad_algorithm");
        assert_eq!(t(prot(vec![(int(1), Value::text("EdDSA")), (int(4), kid.clone())]), prot(vec![])), "bad_algorithm");
        // 4: crit and kid.
        let with_crit = |c: Value| prot(vec![(int(1), int(-8)), (int(2), c), (int(4), kid.clone())]);
        assert_eq!(t(with_crit(Value::Array(vec![int(1), int(4)])), prot(vec![])), "valid");
        assert_eq!(t(with_crit(Value::Array(vec![int(3)])), prot(vec![])), "bad_header");
        assert_eq!(t(with_crit(Value::Array(vec![Value::text("kid")])), prot(vec![])), "bad_header");
        assert_eq!(t(with_crit(int(1)), prot(vec![])), "bad_header");
        assert_eq!(
            t(prot(vec![(int(1), int(-8)), (int(2), Value::Array(vec![int(4)]))]), prot(vec![])),
            "bad_header",
            "crit names an absent kid"
        );
        assert_eq!(t(prot(vec![(int(1), int(-8))]), prot(vec![])), "bad_header");
        assert_eq!(t(prot(vec![(int(1), int(-8)), (int(4), Value::bytes(vec![]))]), prot(vec![])), "bad_header");
        assert_eq!(t(prot(vec![(int(1), int(-8)), (int(4), Value::text("kid"))]), prot(vec![])), "bad_header");
        // 5: kid.
        let mut short = Kid::of(sk.verifying_key().as_bytes()).0.to_vec();
        short.pop();
        assert_eq!(t(prot(vec![(int(1), int(-8)), (int(4), Value::Bytes(short))]), prot(vec![])), "kid_mismatch");
        assert_eq!(code(&raw_token(&sk, &std, prot(vec![]), &payload), &key(5)), "kid_mismatch");
    }

    #[test]
    fn signature_and_claims_rules() {
        let sk = key(6);
        let p = enc(&std_protected(&sk));
        let payload = claims_payload();
        let sig = sk.sign(&sig_structure(&p, &payload)).to_bytes();
        let with_sig = |s: &[u8]| {
            enc(&Value::Array(vec![
                Value::Bytes(p.clone()),
                Value::Map(vec![]),
                Value::bytes(payload.clone()),
                Value::bytes(s),
            ]))
        };
        assert_eq!(code(&with_sig(&sig), &sk), "valid");
        assert_eq!(code(&with_sig(&sig[..63]), &sk), "invalid_signature");
        let mut bad = sig;
        bad[0] ^= 1;
        assert_eq!(code(&with_sig(&bad), &sk), "invalid_signature");
        let std = std_protected(&sk);
        let claims = |payload: &[u8]| code(&raw_token(&sk, &std, Value::Map(vec![]), payload), &sk);
        assert_eq!(claims(&enc(&Value::Array(vec![]))), "invalid_claims");
        assert_eq!(claims(&enc(&Value::Map(vec![(Value::text("iss"), Value::text("x"))]))), "invalid_claims");
        assert_eq!(claims(&enc(&Value::Map(vec![(int(1i128 << 63), int(0))]))), "invalid_claims");
        assert_eq!(claims(&hex::decode("a101c100").expect("hex")), "invalid_claims", "tag in a claim value");
        assert_eq!(claims(&hex::decode("a2010102").expect("hex")), "invalid_claims", "unsorted keys");
        assert_eq!(claims(&hex::decode("a201010102").expect("hex")), "invalid_claims", "duplicate key");
        assert_eq!(claims(&hex::decode("a10118").expect("hex")), "invalid_claims", "truncated");
        assert_eq!(claims(&[]), "invalid_claims");
        assert_eq!(claims(&enc(&Value::Map(vec![(int(-70000), Value::text("future claim"))]))), "valid");
        assert_eq!(claims(&enc(&Value::Map(vec![(int(i128::from(i64::MIN)), int(0))]))), "valid");
    }

    #[test]
    fn kid_routing() {
        let sk = key(7);
        let token = sign(&sk, &CapabilityClaims::default()).expect("signs").into_bytes();
        let want = Kid::of(sk.verifying_key().as_bytes());
        assert_eq!(kid(&token), Some(want));
        assert_eq!(kid(b"\x84"), None);
        let routed = verify_with_lookup(&token, |k| (*k == want).then(|| sk.verifying_key())).expect("routes");
        assert_eq!(routed.kid(), want);
        let unknown = verify_with_lookup(&token, |_| None).map(|_| ());
        assert_eq!(unknown.map_err(|e| e.code()), Err("unknown_kid"));
    }

    #[test]
    fn typed_reader_checks_value_types() {
        let sk = key(8);
        let std = std_protected(&sk);
        let read = |entries: Vec<(Value, Value)>| {
            let token = raw_token(&sk, &std, Value::Map(vec![]), &enc(&Value::Map(entries)));
            verify_cose(&token, &sk.verifying_key()).expect("envelope verifies").claims().map_err(|e| e.code())
        };
        assert_eq!(read(vec![(int(1), int(1))]).map(|_| ()), Err("claim_type"));
        assert_eq!(read(vec![(int(4), Value::text("soon"))]).map(|_| ()), Err("claim_type"));
        assert_eq!(read(vec![(int(-65541), int(-1))]).map(|_| ()), Err("claim_type"));
        assert_eq!(read(vec![(int(-65544), Value::bytes([0; 31]))]).map(|_| ()), Err("claim_type"));
        assert_eq!(read(vec![(int(-65539), Value::Array(vec![int(1)]))]).map(|_| ()), Err("claim_type"));
        let grant = |entries| Value::Array(vec![Value::Map(entries)]);
        assert_eq!(
            read(vec![(int(-65550), grant(vec![(Value::text("operation"), Value::text("x"))]))]).map(|_| ()),
            Err("claim_type"),
            "grant without capability"
        );
        assert_eq!(
            read(vec![(
                int(-65550),
                grant(vec![(Value::text("capability"), Value::text("c")), (Value::text("x"), int(0))])
            )])
            .map(|_| ()),
            Err("claim_type"),
            "grant with an unknown key"
        );
        let ok = read(vec![
            (int(-65550), grant(vec![(Value::text("capability"), Value::text("cap:a"))])),
            (int(-70000), Value::Bool(true)),
            (int(-65549), Value::Map(vec![(Value::text("max_calls"), int(3))])),
        ])
        .expect("typed");
        assert_eq!(ok.grants, Some(vec![Grant { capability: "cap:a".into(), operation: None }]));
        assert_eq!(ok.extra.get(&-70000), Some(&Value::Bool(true)));
        assert_eq!(ok.constraints.as_ref().and_then(|c| c.get("max_calls")), Some(&int(3)));
    }

    #[test]
    fn effective_grants_and_timing() {
        let c = CapabilityClaims {
            capability_id: Some("cap:discord.send".into()),
            operations: Some(vec!["discord.send_message".into(), "discord.read".into()]),
            exp: Some(200),
            nbf: Some(100),
            ..CapabilityClaims::default()
        };
        assert_eq!(
            c.effective_grants(),
            vec![
                Grant { capability: "cap:discord.send".into(), operation: Some("discord.send_message".into()) },
                Grant { capability: "cap:discord.send".into(), operation: Some("discord.read".into()) },
            ]
        );
        assert_eq!(c.check_timing(99).map_err(|e| e.code()), Err("token_not_yet_valid"));
        assert_eq!(c.check_timing(100).map_err(|e| e.code()), Ok(()));
        assert_eq!(c.check_timing(199).map_err(|e| e.code()), Ok(()));
        assert_eq!(c.check_timing(200).map_err(|e| e.code()), Err("token_expired"));
    }

    #[test]
    fn extra_claims_may_not_shadow_the_table() {
        let mut c = CapabilityClaims { iss: Some("a".into()), ..CapabilityClaims::default() };
        c.extra.insert(label::ISS, Value::text("b"));
        assert_eq!(sign(&key(9), &c).map_err(|e| e.code()), Err("claim_conflict"));
        for l in label::ALL {
            let mut c = CapabilityClaims::default();
            c.extra.insert(l, Value::Null);
            let map = c.to_claim_map().expect("no typed claim set");
            if let Ok(typed) = CapabilityClaims::from_claim_map(&map) {
                assert!(typed.extra.is_empty(), "label {l} is read as a typed claim");
            }
        }
    }

    fn arb_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z0-9:._-]{0,24}")
    }

    fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24))
    }

    fn arb_claims() -> impl Strategy<Value = CapabilityClaims> {
        let a = (
            arb_text(),
            arb_text(),
            arb_text(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            arb_bytes(),
            arb_text(),
            arb_text(),
            proptest::option::of(proptest::collection::vec("[a-z._]{1,16}", 0..4)),
            arb_text(),
            proptest::option::of(any::<u64>()),
        );
        let b = (
            arb_bytes(),
            arb_text(),
            proptest::option::of(any::<[u8; 32]>().prop_map(ObjectId)),
            proptest::option::of(proptest::collection::vec(any::<[u8; 32]>().prop_map(ObjectId), 0..3)),
            arb_text(),
            arb_bytes(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(arb_value()),
            proptest::option::of(proptest::collection::vec(("[a-z:.]{1,12}", arb_text()), 0..3)),
            arb_text(),
            proptest::option::of(any::<u64>()),
            proptest::collection::btree_map(-80_000i64..-70_000, any::<i64>(), 0..3),
        );
        (a, b).prop_map(|(a, b)| CapabilityClaims {
            iss: a.0,
            sub: a.1,
            aud: a.2,
            exp: a.3,
            nbf: a.4,
            iat: a.5,
            cti: a.6,
            capability_id: a.7,
            zone_id: a.8,
            operations: a.9,
            principal_id: a.10,
            delegation_depth: a.11,
            parent_token: b.0,
            iss_node: b.1,
            aud_binary: b.2,
            grant_object_ids: b.3,
            holder_node: b.4,
            chk_id: b.5,
            chk_seq: b.6,
            constraints: b.7,
            grants: b.8.map(|g| g.into_iter().map(|(capability, operation)| Grant { capability, operation }).collect()),
            instance_id: b.9,
            schema_version: b.10,
            extra: b.11.into_iter().map(|(k, v)| (k, Value::Int(i128::from(v)))).collect(),
        })
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|i| Value::Int(i128::from(i))),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
            "[ -~]{0,12}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Value::Float(f64::from(f))),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn sign_then_verify_reads_back_the_claims(claims in arb_claims(), seed in any::<[u8; 32]>()) {
            let sk = SigningKey::from_bytes(&seed);
            let signed = sign(&sk, &claims).expect("signs");
            prop_assert_eq!(signed.as_bytes()[0], 0x84);
            prop_assert_eq!(kid(signed.as_bytes()), Some(Kid::of(sk.verifying_key().as_bytes())));
            let verified = verify_cose(signed.as_bytes(), &sk.verifying_key()).expect("own token verifies");
            let mut want = claims.clone();
            if want.aud.is_none() {
                want.aud = want.zone_id.clone();
            }
            want.schema_version = want.schema_version.or(Some(1));
            let back = verified.claims().expect("typed");
            // Floats and map order normalise through canonical CBOR; compare encodings.
            prop_assert_eq!(back.to_cbor().expect("encodes"), want.to_cbor().expect("encodes"));
            prop_assert_eq!(verified.payload(), signed.payload());
        }

        #[test]
        fn any_flipped_bit_fails_verification(claims in arb_claims(), bit in any::<prop::sample::Index>()) {
            let sk = key(11);
            let mut token = sign(&sk, &claims).expect("signs").into_bytes();
            let i = bit.index(token.len() * 8);
            token[i / 8] ^= 1 << (i % 8);
            if verify_cose(&token, &sk.verifying_key()).is_ok() {
                prop_assert!(false, "token with bit {} flipped verifies", i);
            }
        }

        #[test]
        fn arbitrary_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let sk = key(12);
            let _ = kid(&bytes);
            if let Err(e) = verify_cose(&bytes, &sk.verifying_key()) {
                prop_assert!(["malformed", "bad_header", "bad_algorithm", "kid_mismatch"].contains(&e.code()));
            } else {
                prop_assert!(false, "random bytes verified");
            }
        }

        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..120),
                                          value in arb_value()) {
            let sk = key(13);
            let std = std_protected(&sk);
            for p in [payload, enc(&value)] {
                let token = raw_token(&sk, &std, Value::Map(vec![]), &p);
                match verify_cose(&token, &sk.verifying_key()) {
                    Ok(v) => { let _ = v.claims(); }
                    Err(e) => prop_assert_eq!(e.code(), "invalid_claims"),
                }
            }
        }
    }
}
