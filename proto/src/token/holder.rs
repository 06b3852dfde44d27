//! Holder proof: proof that the node named by a token's `holder_node` claim is the one
//! invoking it (digest §5.3, the \[I\] form).
//!
//! `Ed25519(holder_key, "FCP2-HOLDER-PROOF-V1" || lp32(request_id) || lp32(operation_id) || lp32(jti))`.
//! The length prefixes keep the three fields from sliding into each other.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::claims::CapabilityClaims;
use super::TokenError;

/// Domain string of the holder proof.
pub const HOLDER_PROOF_DOMAIN: &[u8] = b"FCP2-HOLDER-PROOF-V1";

fn lp32(out: &mut Vec<u8>, field: &'static str, b: &[u8]) -> Result<(), TokenError> {
    let n = u32::try_from(b.len()).map_err(|_| TokenError::FieldTooLong { field, len: b.len() })?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// `"FCP2-HOLDER-PROOF-V1" || lp32(request_id) || lp32(operation_id) || lp32(jti)`.
pub fn holder_proof_bytes(request_id: &str, operation_id: &str, jti: &[u8]) -> Result<Vec<u8>, TokenError> {
    let mut out =
        Vec::with_capacity(HOLDER_PROOF_DOMAIN.len() + 12 + request_id.len() + operation_id.len() + jti.len());
    out.extend_from_slice(HOLDER_PROOF_DOMAIN);
    lp32(&mut out, "request_id", request_id.as_bytes())?;
    lp32(&mut out, "operation_id", operation_id.as_bytes())?;
    lp32(&mut out, "jti", jti)?;
    Ok(out)
}

/// A holder proof as carried in a request: `{signature, holder_node}` (\[I\] `HolderProof`;
/// the signature is bstr in CBOR and hex in JSON, digest §1.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderProof {
    /// Ed25519 signature by the holder node's signing key.
    #[serde(with = "hex_or_bytes")]
    pub signature: [u8; 64],
    /// The holder node; must equal the token's `holder_node` claim.
    pub holder_node: String,
}

impl HolderProof {
    /// Proves possession of the token with id `jti` for one request and operation.
    pub fn sign(
        holder: &SigningKey,
        holder_node: &str,
        request_id: &str,
        operation_id: &str,
        jti: &[u8],
    ) -> Result<HolderProof, TokenError> {
        let bytes = holder_proof_bytes(request_id, operation_id, jti)?;
        Ok(HolderProof { signature: holder.sign(&bytes).to_bytes(), holder_node: holder_node.to_owned() })
    }

    /// Checks the signature for this request, operation and jti under the holder's key.
    pub fn verify(
        &self,
        holder: &VerifyingKey,
        request_id: &str,
        operation_id: &str,
        jti: &[u8],
    ) -> Result<(), TokenError> {
        let bytes = holder_proof_bytes(request_id, operation_id, jti)?;
        holder
            .verify_strict(&bytes, &Signature::from_bytes(&self.signature))
            .map_err(|_| TokenError::HolderProofInvalid)
    }

    /// Checks the proof against a verified token's claims: the token must name a holder
    /// and a jti, the proof must come from that holder, and the signature must verify
    /// under `holder` (the key the caller resolved for `holder_node`).
    pub fn verify_for(
        &self,
        claims: &CapabilityClaims,
        holder: &VerifyingKey,
        request_id: &str,
        operation_id: &str,
    ) -> Result<(), TokenError> {
        let named = claims.holder_node.as_deref().ok_or(TokenError::MissingClaim { claim: "holder_node" })?;
        if named != self.holder_node {
            return Err(TokenError::HolderMismatch);
        }
        let jti = claims.jti().ok_or(TokenError::MissingClaim { claim: "cti" })?;
        self.verify(holder, request_id, operation_id, jti)
    }
}

/// `hex_or_bytes` for a 64-byte signature: bstr when the format is binary, hex text otherwise.
mod hex_or_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(sig))
        } else {
            s.serialize_bytes(sig)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = if d.is_human_readable() {
            hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?
        } else {
            serde_bytes::ByteBuf::deserialize(d)?.into_vec()
        };
        bytes.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(holder: &str, jti: &[u8]) -> CapabilityClaims {
        CapabilityClaims { holder_node: Some(holder.into()), cti: Some(jti.to_vec()), ..CapabilityClaims::default() }
    }

    #[test]
    fn layout_is_length_prefixed() {
        let b = holder_proof_bytes("req_123", "op.test", b"jti_abc").expect("bytes");
        let mut want = b"FCP2-HOLDER-PROOF-V1".to_vec();
        for part in [&b"req_123"[..], b"op.test", b"jti_abc"] {
            want.extend_from_slice(&(part.len() as u32).to_le_bytes());
            want.extend_from_slice(part);
        }
        assert_eq!(b, want);
        // Shifting bytes between fields changes the preimage.
        assert_ne!(holder_proof_bytes("ab", "c", b"").expect("b"), holder_proof_bytes("a", "bc", b"").expect("b"));
        assert_eq!(holder_proof_bytes("", "", b"").expect("b").len(), HOLDER_PROOF_DOMAIN.len() + 12);
    }

    #[test]
    fn proof_binds_holder_request_operation_and_jti() {
        let sk = SigningKey::from_bytes(&[5; 32]);
        let pk = sk.verifying_key();
        let proof = HolderProof::sign(&sk, "node:laptop", "req-1", "discord.send", b"jti-1").expect("signs");
        proof.verify_for(&claims("node:laptop", b"jti-1"), &pk, "req-1", "discord.send").expect("verifies");
        let code = |c: &CapabilityClaims, req: &str, op: &str| proof.verify_for(c, &pk, req, op).map_err(|e| e.code());
        assert_eq!(code(&claims("node:laptop", b"jti-1"), "req-2", "discord.send"), Err("holder_proof_invalid"));
        assert_eq!(code(&claims("node:laptop", b"jti-1"), "req-1", "discord.read"), Err("holder_proof_invalid"));
        assert_eq!(code(&claims("node:laptop", b"jti-2"), "req-1", "discord.send"), Err("holder_proof_invalid"));
        assert_eq!(code(&claims("node:phone", b"jti-1"), "req-1", "discord.send"), Err("holder_mismatch"));
        assert_eq!(code(&CapabilityClaims::default(), "req-1", "discord.send"), Err("missing_claim"));
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_eq!(
            proof.verify(&other, "req-1", "discord.send", b"jti-1").map_err(|e| e.code()),
            Err("holder_proof_invalid")
        );
    }

    #[test]
    fn signature_is_bytes_in_cbor_and_hex_in_json() {
        let proof = HolderProof { signature: [0xab; 64], holder_node: "node:a".into() };
        let v = crate::cbor::to_value(&proof).expect("cbor");
        assert_eq!(v.get("signature"), Some(&crate::cbor::Value::bytes([0xab; 64])));
        let json = serde_json::to_value(&proof).expect("json");
        assert_eq!(json["signature"], "ab".repeat(64));
        let back: HolderProof = serde_json::from_value(json).expect("back");
        assert_eq!(back, proof);
    }

    proptest! {
        #[test]
        fn sign_verify_and_flip(req in "[ -~]{0,20}", op in "[a-z._]{0,20}", jti in proptest::collection::vec(any::<u8>(), 0..20),
                                bit in 0usize..512) {
            let sk = SigningKey::from_bytes(&[8; 32]);
            let mut proof = HolderProof::sign(&sk, "node:x", &req, &op, &jti).expect("signs");
            proof.verify(&sk.verifying_key(), &req, &op, &jti).expect("verifies");
            proof.signature[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(proof.verify(&sk.verifying_key(), &req, &op, &jti).map_err(|e| e.code()), Err("holder_proof_invalid"));
        }
    }
}
