//! The four enrollment files (spec/attest.md §3), deterministic CBOR with explicit
//! size limits:
//!
//! 1. [`EnrollmentRequest`], device → owner: the node's public keys, the owner's nonce,
//!    and with a TPM the quote, the AK and EK public parts, PCR values and event log;
//!    signed by the node signing key (proof of possession).
//! 2. [`CredentialChallenge`], owner → device: TPM2_MakeCredential output for the AK.
//! 3. [`ActivationResponse`], device → owner: the recovered secret, node-signed.
//! 4. [`EnrollmentGrant`], owner → device: the owner-signed DeviceEnrollment and
//!    NodeKeyAttestation (with the posture).

use fcp_proto::cbor;
use fcp_proto::id::Kid;
use fcp_proto::keys::{
    DeviceEnrollment, NodeIssuancePublicKey, NodeKeyAttestation, NodePublicKeys, NodeSigningKey, NodeSigningPublicKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::AttestError;

/// Largest enrollment request (the event log dominates).
pub const MAX_REQUEST_LEN: usize = 2 << 20;
/// Largest event log carried.
pub const MAX_EVENT_LOG_LEN: usize = 1 << 20;
/// Largest challenge, response or grant.
pub const MAX_SMALL_LEN: usize = 64 << 10;

/// Schema id of the request's node signature.
pub const REQUEST_SCHEMA: &str = "fcp.attest.EnrollmentRequest/1.0.0";
/// Schema id of the response's node signature.
pub const RESPONSE_SCHEMA: &str = "fcp.attest.ActivationResponse/1.0.0";
/// Domain string of the quote's qualifying data.
pub const QUALIFYING_DOMAIN: &[u8] = b"fcp.attest.qualifying.v1";

/// One quoted PCR of the SHA-256 bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrValue {
    /// PCR index.
    pub index: u8,
    /// Its value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// The TPM part of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmEvidence {
    /// TPM_PT_MANUFACTURER as its four ASCII letters (e.g. `IBM`, `INTC`, `MSFT`).
    pub manufacturer: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2.
    pub firmware_version: u64,
    /// Endorsement key, marshalled TPMT_PUBLIC (ECC P-256, TCG template L-2).
    #[serde(with = "serde_bytes")]
    pub ek_public: Vec<u8>,
    /// The EK certificate (DER) when the TPM's NV holds one.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub ek_certificate: Option<Vec<u8>>,
    /// Attestation key, marshalled TPMT_PUBLIC (restricted ECDSA P-256 signing key).
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// TPM2_Quote's TPMS_ATTEST, marshalled.
    #[serde(with = "serde_bytes")]
    pub quote: Vec<u8>,
    /// TPM2_Quote's TPMT_SIGNATURE, marshalled.
    #[serde(with = "serde_bytes")]
    pub quote_signature: Vec<u8>,
    /// The quoted SHA-256 PCRs, ascending.
    pub pcrs: Vec<PcrValue>,
    /// The firmware's TCG event log, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub event_log: Option<Vec<u8>>,
    /// The node keys are sealed by this TPM and no plaintext copy is kept.
    pub keys_sealed: bool,
    /// PCRs the seal's policy binds (empty: no PCR policy).
    pub seal_pcrs: Vec<u8>,
}

/// Device → owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// Random request id (16 bytes).
    #[serde(with = "serde_bytes")]
    pub request_id: Vec<u8>,
    /// The owner's nonce (32 bytes).
    #[serde(with = "serde_bytes")]
    pub owner_nonce: Vec<u8>,
    /// The node.
    pub node_id: String,
    /// Node signing key.
    pub signing_key: NodeSigningPublicKey,
    /// Node encryption key (X25519).
    #[serde(with = "serde_bytes")]
    pub encryption_key: Vec<u8>,
    /// Node issuance key.
    pub issuance_key: NodeIssuancePublicKey,
    /// When the device made the request (seconds).
    pub created_at: u64,
    /// TPM evidence; absent on a device without a TPM (posture `software`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmEvidence>,
    /// Node signing key over the request without this field.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The quote's qualifying data: SHA-256 over a domain string, the owner's nonce, the
/// request id, and the signing, encryption and issuance kids, all fixed-length.
pub fn qualifying_data(owner_nonce: &[u8; 32], request_id: &[u8; 16], kids: [Kid; 3]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(QUALIFYING_DOMAIN);
    h.update(owner_nonce);
    h.update(request_id);
    for k in kids {
        h.update(k.0);
    }
    h.finalize().into()
}

fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], AttestError> {
    b.try_into().map_err(|_| AttestError::Malformed { what, why: format!("{} bytes, expected {N}", b.len()) })
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize, what: &'static str) -> Result<T, AttestError> {
    if bytes.len() > max {
        return Err(AttestError::Malformed { what, why: format!("{} bytes, limit {max}", bytes.len()) });
    }
    cbor::from_slice(bytes, cbor::Limits::with_max_len(max))
        .map_err(|e| AttestError::Malformed { what, why: e.to_string() })
}

fn encode<T: Serialize>(v: &T, what: &'static str) -> Result<Vec<u8>, AttestError> {
    cbor::to_vec(v).map_err(|e| AttestError::Malformed { what, why: e.to_string() })
}

impl EnrollmentRequest {
    /// Decodes at most [`MAX_REQUEST_LEN`] bytes of canonical CBOR.
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestError> {
        let r: Self = decode(bytes, MAX_REQUEST_LEN, "enrollment request")?;
        r.request_id()?;
        r.owner_nonce()?;
        r.encryption_key()?;
        if r.tpm.as_ref().and_then(|t| t.event_log.as_ref()).is_some_and(|l| l.len() > MAX_EVENT_LOG_LEN) {
            return Err(AttestError::Malformed { what: "enrollment request", why: "event log too large".into() });
        }
        Ok(r)
    }

    /// Canonical CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, AttestError> {
        encode(self, "enrollment request")
    }

    /// The request id.
    pub fn request_id(&self) -> Result<[u8; 16], AttestError> {
        fixed(&self.request_id, "request id")
    }

    /// The owner nonce.
    pub fn owner_nonce(&self) -> Result<[u8; 32], AttestError> {
        fixed(&self.owner_nonce, "owner nonce")
    }

    /// The X25519 key.
    pub fn encryption_key(&self) -> Result<[u8; 32], AttestError> {
        fixed(&self.encryption_key, "encryption key")
    }

    /// The node's public keys as named in the request.
    pub fn node_keys(&self) -> Result<NodePublicKeys, AttestError> {
        Ok(NodePublicKeys {
            node_id: self.node_id.clone(),
            signing: self.signing_key,
            encryption: self.encryption_key()?,
            issuance: self.issuance_key,
        })
    }

    /// Signing, encryption and issuance kids.
    pub fn kids(&self) -> Result<[Kid; 3], AttestError> {
        Ok([self.signing_key.kid(), Kid::of(&self.encryption_key()?), self.issuance_key.kid()])
    }

    /// The qualifying data the quote must carry.
    pub fn qualifying_data(&self) -> Result<[u8; 32], AttestError> {
        Ok(qualifying_data(&self.owner_nonce()?, &self.request_id()?, self.kids()?))
    }

    fn unsigned(&self) -> Result<Vec<u8>, AttestError> {
        cbor::to_vec_without(self, "signature")
            .map_err(|e| AttestError::Malformed { what: "enrollment request", why: e.to_string() })
    }

    /// Signs with the node signing key (which must be the one named).
    pub fn sign(&mut self, key: &NodeSigningKey) -> Result<(), AttestError> {
        self.signing_key = key.public();
        self.signature = key.sign_object(REQUEST_SCHEMA, &self.unsigned()?).to_vec();
        Ok(())
    }

    /// Checks the node signature: the device holds the signing key it names.
    pub fn verify_signature(&self) -> Result<(), AttestError> {
        let sig: [u8; 64] = fixed(&self.signature, "request signature")?;
        self.signing_key.verify_object(REQUEST_SCHEMA, &self.unsigned()?, &sig).map_err(|_| {
            AttestError::refused("attest.request_signature", "the request is not signed by the node key it names")
        })
    }
}

/// Owner → device: a credential only the TPM holding the EK, with the AK loaded, opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialChallenge {
    /// The request answered.
    #[serde(with = "serde_bytes")]
    pub request_id: Vec<u8>,
    /// TPM2B_ID_OBJECT contents.
    #[serde(with = "serde_bytes")]
    pub id_object: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents.
    #[serde(with = "serde_bytes")]
    pub encrypted_secret: Vec<u8>,
    /// The owner accepts the response until then (seconds).
    pub expires_at: u64,
}

impl CredentialChallenge {
    /// Decodes at most [`MAX_SMALL_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestError> {
        let c: Self = decode(bytes, MAX_SMALL_LEN, "credential challenge")?;
        fixed::<16>(&c.request_id, "request id")?;
        Ok(c)
    }

    /// Canonical CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, AttestError> {
        encode(self, "credential challenge")
    }
}

/// Device → owner: the secret the TPM recovered, signed by the node key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationResponse {
    /// The request.
    #[serde(with = "serde_bytes")]
    pub request_id: Vec<u8>,
    /// The credential ActivateCredential returned.
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
    /// Node signing key over the response without this field.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl ActivationResponse {
    /// Decodes at most [`MAX_SMALL_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestError> {
        let r: Self = decode(bytes, MAX_SMALL_LEN, "activation response")?;
        fixed::<16>(&r.request_id, "request id")?;
        Ok(r)
    }

    /// Canonical CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, AttestError> {
        encode(self, "activation response")
    }

    fn unsigned(&self) -> Result<Vec<u8>, AttestError> {
        cbor::to_vec_without(self, "signature")
            .map_err(|e| AttestError::Malformed { what: "activation response", why: e.to_string() })
    }

    /// Signs with the node signing key.
    pub fn sign(&mut self, key: &NodeSigningKey) -> Result<(), AttestError> {
        self.signature = key.sign_object(RESPONSE_SCHEMA, &self.unsigned()?).to_vec();
        Ok(())
    }

    /// Checks the signature against the key the request named.
    pub fn verify_signature(&self, key: &NodeSigningPublicKey) -> Result<(), AttestError> {
        let sig: [u8; 64] = fixed(&self.signature, "response signature")?;
        key.verify_object(RESPONSE_SCHEMA, &self.unsigned()?, &sig).map_err(|_| {
            AttestError::refused("attest.response_signature", "the response is not signed by the node key")
        })
    }
}

/// Owner → device: the result of a successful enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentGrant {
    /// The request.
    #[serde(with = "serde_bytes")]
    pub request_id: Vec<u8>,
    /// Owner-signed admission.
    pub enrollment: DeviceEnrollment,
    /// Owner-signed key attestation, carrying the verified posture.
    pub attestation: NodeKeyAttestation,
}

impl EnrollmentGrant {
    /// Decodes at most [`MAX_SMALL_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestError> {
        decode(bytes, MAX_SMALL_LEN, "enrollment grant")
    }

    /// Canonical CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, AttestError> {
        encode(self, "enrollment grant")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;

    fn request(seed: u64, tpm: Option<TpmEvidence>) -> (NodeSigningKey, EnrollmentRequest) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let keys = fcp_proto::keys::NodeKeys::generate("node-a", &mut rng).expect("keys");
        let mut r = EnrollmentRequest {
            request_id: vec![1; 16],
            owner_nonce: vec![2; 32],
            node_id: keys.node_id.clone(),
            signing_key: keys.signing.public(),
            encryption_key: keys.encryption.public().to_vec(),
            issuance_key: keys.issuance.public(),
            created_at: 1000,
            tpm,
            signature: Vec::new(),
        };
        r.sign(&keys.signing).expect("sign");
        (keys.signing, r)
    }

    fn evidence() -> TpmEvidence {
        TpmEvidence {
            manufacturer: "IBM".into(),
            firmware_version: 7,
            ek_public: vec![1, 2, 3],
            ek_certificate: None,
            ak_public: vec![4],
            quote: vec![5; 80],
            quote_signature: vec![6; 72],
            pcrs: vec![PcrValue { index: 0, value: vec![0; 32] }],
            event_log: Some(vec![9; 10]),
            keys_sealed: true,
            seal_pcrs: vec![7],
        }
    }

    #[test]
    fn request_round_trips_and_its_signature_binds_every_field() {
        let (_, r) = request(1, Some(evidence()));
        let back = EnrollmentRequest::decode(&r.encode().expect("encode")).expect("decode");
        assert_eq!(back, r);
        back.verify_signature().expect("signature");
        let mut t = back.clone();
        t.tpm.as_mut().expect("tpm").keys_sealed = false;
        assert_eq!(t.verify_signature().map_err(|e| e.code()), Err("attest.request_signature"));
    }

    #[test]
    fn qualifying_data_depends_on_every_input() {
        let (_, r) = request(2, None);
        let q = r.qualifying_data().expect("q");
        let mut other = r.clone();
        other.owner_nonce[0] ^= 1;
        assert_ne!(other.qualifying_data().expect("q"), q);
        let mut other = r.clone();
        other.request_id[15] ^= 1;
        assert_ne!(other.qualifying_data().expect("q"), q);
        let (_, third) = request(3, None);
        assert_ne!(third.qualifying_data().expect("q"), q, "different node keys");
    }

    proptest! {
        #[test]
        fn request_decoder_is_total_and_round_trips(seed in any::<u64>(), flip in any::<(usize, u8)>()) {
            let (_, r) = request(seed, Some(evidence()));
            let bytes = r.encode().expect("encode");
            prop_assert_eq!(EnrollmentRequest::decode(&bytes).expect("decode"), r.clone());
            let mut b = bytes.clone();
            let i = flip.0 % b.len();
            b[i] ^= flip.1 | 1;
            if let Ok(t) = EnrollmentRequest::decode(&b) {
                prop_assert!(t == r || t.verify_signature().is_err());
            }
        }

        #[test]
        fn small_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = CredentialChallenge::decode(&bytes);
            let _ = ActivationResponse::decode(&bytes);
            let _ = EnrollmentGrant::decode(&bytes);
            let _ = EnrollmentRequest::decode(&bytes);
        }

        #[test]
        fn challenge_and_response_round_trip(id in proptest::collection::vec(any::<u8>(), 16),
                                             blob in proptest::collection::vec(any::<u8>(), 0..100),
                                             exp in any::<u64>()) {
            let c = CredentialChallenge { request_id: id.clone(), id_object: blob.clone(), encrypted_secret: blob.clone(), expires_at: exp };
            prop_assert_eq!(CredentialChallenge::decode(&c.encode().expect("e")).expect("d"), c);
            let r = ActivationResponse { request_id: id, secret: blob, signature: vec![0; 64] };
            prop_assert_eq!(ActivationResponse::decode(&r.encode().expect("e")).expect("d"), r);
        }
    }
}
