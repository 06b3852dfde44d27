//! Exactly-once operations: OperationIntent and OperationReceipt (digest §8.1), and the
//! DecisionReceipt that records every allow or deny (digest §9).
//!
//! Intent and receipt carry the \[S\] fields and are signed by the executing node's Ed25519
//! key over the \[I\] signable bytes (digest §8.1, ✅ reproduced from the fcp-core vectors):
//!
//! ```text
//! "FCP2-INTENT-V1"  || lp32(det-CBOR(header)) || request_object_id[32] || jti[16]
//!                   || opt(idempotency_key) || u64le(planned_at) || lp32(planned_by)
//!                   || (00 | 01 || u64le(lease_seq)) || opt(upstream_idempotency)
//! "FCP2-RECEIPT-V1" || lp32(det-CBOR(header)) || request_object_id[32] || opt(idempotency_key)
//!                   || u32le(n) || n×outcome_id[32] || u32le(m) || m×resource_id[32]
//!                   || usage_metrics_block || u64le(executed_at) || lp32(executed_by)
//! ```
//!
//! with `lp32(b) = u32le(len b) || b` and `opt(s) = 00 | 01 || lp32(s)`. The DecisionReceipt
//! is signed over the fcp-crypto signing bytes (`FCP2-SIGN-V1`, digest §1.2) of its canonical
//! CBOR with the signature field absent.
//!
//! The object header is a type parameter `H`: any header that serializes to canonical CBOR
//! (in practice [`crate::object::ObjectHeader`]); the signable-bytes builders
//! ([`IntentSignable`], [`ReceiptSignable`]) take the header as already-encoded CBOR.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cbor::{self, CborError, Value};
use crate::id::ObjectId;
use crate::schema::signing_bytes;

/// Domain string of the intent signable bytes.
const INTENT_DOMAIN: &[u8] = b"FCP2-INTENT-V1";
/// Domain string of the receipt signable bytes.
const RECEIPT_DOMAIN: &[u8] = b"FCP2-RECEIPT-V1";

/// Longest idempotency key (\[I\] `MAX_IDEMPOTENCY_KEY_LEN`, digest §8.1), in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Schema id string of the DecisionReceipt signing bytes (digest §1.2, §9).
pub const DECISION_RECEIPT_SCHEMA: &str = "fcp.core.DecisionReceipt/1.0.0";
/// The placeholder signature of an object that [`OperationIntent::sign`] and friends
/// have not signed yet. It never verifies.
pub const UNSIGNED: [u8; 64] = [0; 64];

/// Why an operation object cannot be encoded, signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The idempotency key is longer than 128 bytes.
    #[error("idempotency key of {len} bytes exceeds {MAX_IDEMPOTENCY_KEY_LEN}")]
    IdempotencyKeyTooLong {
        /// Its length.
        len: usize,
    },
    /// A field or list does not fit its u32 length prefix.
    #[error("{field} of {len} entries or bytes does not fit a u32 length")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The header or object has no canonical CBOR encoding.
    #[error("encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: CborError,
    },
    /// The signature does not verify under the executing node's key.
    #[error("signature does not verify")]
    InvalidSignature,
}

impl OperationError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            OperationError::IdempotencyKeyTooLong { .. } => "idempotency_key_too_long",
            OperationError::FieldTooLong { .. } => "field_too_long",
            OperationError::Encode { .. } => "encode",
            OperationError::InvalidSignature => "invalid_signature",
        }
    }
}

// ---------------------------------------------------------------------------
// Signable-bytes layout

/// A preimage under construction, with the `lp32` and `opt` helpers of digest §8.1.
struct Preimage(Vec<u8>);

impl Preimage {
    fn new(domain: &[u8]) -> Self {
        let mut v = Vec::with_capacity(256);
        v.extend_from_slice(domain);
        Preimage(v)
    }

    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn u32_len(&mut self, field: &'static str, len: usize) -> Result<(), OperationError> {
        let n = u32::try_from(len).map_err(|_| OperationError::FieldTooLong { field, len })?;
        self.raw(&n.to_le_bytes());
        Ok(())
    }

    /// `u32le(len b) || b`.
    fn lp32(&mut self, field: &'static str, b: &[u8]) -> Result<(), OperationError> {
        self.u32_len(field, b.len())?;
        self.raw(b);
        Ok(())
    }

    /// `00`, or `01 || lp32(s)`.
    fn opt(&mut self, field: &'static str, s: Option<&str>) -> Result<(), OperationError> {
        match s {
            None => self.raw(&[0]),
            Some(s) => {
                self.raw(&[1]);
                self.lp32(field, s.as_bytes())?;
            }
        }
        Ok(())
    }

    fn u64le(&mut self, n: u64) {
        self.raw(&n.to_le_bytes());
    }

    fn ids(&mut self, field: &'static str, ids: &[ObjectId]) -> Result<(), OperationError> {
        self.u32_len(field, ids.len())?;
        for id in ids {
            self.raw(&id.0);
        }
        Ok(())
    }
}

/// The fields of an OperationIntent as its \[I\] signable bytes see them (digest §8.1).
///
/// A pure layout: lengths are not policed here (signing and verifying enforce the
/// 128-byte idempotency key limit).
#[derive(Clone, Copy, Debug)]
pub struct IntentSignable<'a> {
    /// `det-CBOR(header)`.
    pub header_cbor: &'a [u8],
    /// The invoke request.
    pub request_object_id: &'a ObjectId,
    /// The capability token's jti; its 16 raw bytes are signed.
    pub capability_token_jti: &'a Uuid,
    /// Idempotency key, if any.
    pub idempotency_key: Option<&'a str>,
    /// When the intent was written (seconds).
    pub planned_at: u64,
    /// The planning node.
    pub planned_by: &'a str,
    /// The execution lease's fencing token, if bound.
    pub lease_seq: Option<u64>,
    /// The upstream service's idempotency handle, if any.
    pub upstream_idempotency: Option<&'a str>,
}

impl IntentSignable<'_> {
    /// `"FCP2-INTENT-V1" || lp32(header) || request_object_id || jti || opt(idempotency_key)
    /// || u64le(planned_at) || lp32(planned_by) || (00 | 01 || u64le(lease_seq))
    /// || opt(upstream_idempotency)`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OperationError> {
        let mut p = Preimage::new(INTENT_DOMAIN);
        p.lp32("header", self.header_cbor)?;
        p.raw(&self.request_object_id.0);
        p.raw(self.capability_token_jti.as_bytes());
        p.opt("idempotency_key", self.idempotency_key)?;
        p.u64le(self.planned_at);
        p.lp32("planned_by", self.planned_by.as_bytes())?;
        match self.lease_seq {
            None => p.raw(&[0]),
            Some(seq) => {
                p.raw(&[1]);
                p.u64le(seq);
            }
        }
        p.opt("upstream_idempotency", self.upstream_idempotency)?;
        Ok(p.0)
    }
}

/// The fields of an OperationReceipt as its \[I\] signable bytes see them (digest §8.1).
#[derive(Clone, Copy, Debug)]
pub struct ReceiptSignable<'a> {
    /// `det-CBOR(header)`.
    pub header_cbor: &'a [u8],
    /// The invoke request.
    pub request_object_id: &'a ObjectId,
    /// Idempotency key, if any.
    pub idempotency_key: Option<&'a str>,
    /// Outcome objects produced.
    pub outcome_object_ids: &'a [ObjectId],
    /// Resource objects created or changed.
    pub resource_object_ids: &'a [ObjectId],
    /// Usage metrics, if measured.
    pub usage_metrics: Option<&'a [UsageMetric]>,
    /// When execution finished (seconds).
    pub executed_at: u64,
    /// The executing node.
    pub executed_by: &'a str,
}

impl ReceiptSignable<'_> {
    /// `"FCP2-RECEIPT-V1" || lp32(header) || request_object_id || opt(idempotency_key)
    /// || u32le(n) || outcomes || u32le(m) || resources || usage_metrics_block
    /// || u64le(executed_at) || lp32(executed_by)`, where `usage_metrics_block` is `00`, or
    /// `01 || u32le(k) || k×(lp32(kind) || u64le(amount) || opt(unit) || opt(custom_id))`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OperationError> {
        let mut p = Preimage::new(RECEIPT_DOMAIN);
        p.lp32("header", self.header_cbor)?;
        p.raw(&self.request_object_id.0);
        p.opt("idempotency_key", self.idempotency_key)?;
        p.ids("outcome_object_ids", self.outcome_object_ids)?;
        p.ids("resource_object_ids", self.resource_object_ids)?;
        match self.usage_metrics {
            None => p.raw(&[0]),
            Some(metrics) => {
                p.raw(&[1]);
                p.u32_len("usage_metrics", metrics.len())?;
                for m in metrics {
                    p.lp32("usage_metrics.kind", m.kind.as_bytes())?;
                    p.u64le(m.amount);
                    p.opt("usage_metrics.unit", m.unit.as_deref())?;
                    p.opt("usage_metrics.custom_id", m.custom_id.as_deref())?;
                }
            }
        }
        p.u64le(self.executed_at);
        p.lp32("executed_by", self.executed_by.as_bytes())?;
        Ok(p.0)
    }
}

// ---------------------------------------------------------------------------
// Objects

/// One measured quantity of an execution (\[I\] `UsageMetric`, digest §8.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageMetric {
    /// What was measured (the metric kind's wire string).
    pub kind: String,
    /// How much.
    pub amount: u64,
    /// Unit, if not implied by the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Identifier of a custom metric kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
}

fn check_idempotency_key(key: Option<&str>) -> Result<(), OperationError> {
    match key {
        Some(k) if k.len() > MAX_IDEMPOTENCY_KEY_LEN => Err(OperationError::IdempotencyKeyTooLong { len: k.len() }),
        _ => Ok(()),
    }
}

fn header_cbor<H: Serialize>(header: &H) -> Result<Vec<u8>, OperationError> {
    cbor::to_vec(header).map_err(|source| OperationError::Encode { what: "header", source })
}

fn verify_sig(key: &VerifyingKey, preimage: &[u8], sig: &[u8; 64]) -> Result<(), OperationError> {
    key.verify_strict(preimage, &Signature::from_bytes(sig)).map_err(|_| OperationError::InvalidSignature)
}

/// The pre-commit record of an operation, stored before the connector is called for
/// Strict idempotency and Risky/Dangerous tiers (digest §8.1).
///
/// `header.refs` holds the ExecutionLease for Risky/Dangerous operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationIntent<H> {
    /// Object header.
    pub header: H,
    /// The invoke request.
    pub request_object_id: ObjectId,
    /// The jti of the capability token that authorized the operation (a UUID).
    #[serde(with = "uuid_form")]
    pub capability_token_jti: Uuid,
    /// Idempotency key, at most 128 bytes.
    pub idempotency_key: Option<String>,
    /// When the intent was written (seconds).
    pub planned_at: u64,
    /// The planning (executing) node.
    pub planned_by: String,
    /// The execution lease's fencing token, if bound.
    pub lease_seq: Option<u64>,
    /// The upstream service's idempotency handle, if any.
    pub upstream_idempotency: Option<String>,
    /// Ed25519 signature of the executing node over [`OperationIntent::signable_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl<H: Serialize> OperationIntent<H> {
    /// The \[I\] signable bytes (digest §8.1); refuses an idempotency key over 128 bytes.
    pub fn signable_bytes(&self) -> Result<Vec<u8>, OperationError> {
        check_idempotency_key(self.idempotency_key.as_deref())?;
        let header = header_cbor(&self.header)?;
        IntentSignable {
            header_cbor: &header,
            request_object_id: &self.request_object_id,
            capability_token_jti: &self.capability_token_jti,
            idempotency_key: self.idempotency_key.as_deref(),
            planned_at: self.planned_at,
            planned_by: &self.planned_by,
            lease_seq: self.lease_seq,
            upstream_idempotency: self.upstream_idempotency.as_deref(),
        }
        .to_bytes()
    }

    /// Signs with the executing node's key, replacing `signature`.
    pub fn sign(&mut self, executor: &SigningKey) -> Result<(), OperationError> {
        self.signature = executor.sign(&self.signable_bytes()?).to_bytes();
        Ok(())
    }

    /// Checks the signature against the executing node's key.
    pub fn verify(&self, executor: &VerifyingKey) -> Result<(), OperationError> {
        verify_sig(executor, &self.signable_bytes()?, &self.signature)
    }
}

/// The record of a completed operation; `header.refs` holds its intent (digest §8.1).
/// A retry with the same idempotency key returns the earlier receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationReceipt<H> {
    /// Object header.
    pub header: H,
    /// The invoke request.
    pub request_object_id: ObjectId,
    /// Idempotency key (echoed from the intent), at most 128 bytes.
    pub idempotency_key: Option<String>,
    /// Outcome objects produced.
    pub outcome_object_ids: Vec<ObjectId>,
    /// Resource objects created or changed.
    pub resource_object_ids: Vec<ObjectId>,
    /// Usage metrics, if measured (\[I\] addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metrics: Option<Vec<UsageMetric>>,
    /// When execution finished (seconds).
    pub executed_at: u64,
    /// The executing node.
    pub executed_by: String,
    /// Ed25519 signature of the executing node over [`OperationReceipt::signable_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl<H: Serialize> OperationReceipt<H> {
    /// The \[I\] signable bytes (digest §8.1); refuses an idempotency key over 128 bytes.
    pub fn signable_bytes(&self) -> Result<Vec<u8>, OperationError> {
        check_idempotency_key(self.idempotency_key.as_deref())?;
        let header = header_cbor(&self.header)?;
        ReceiptSignable {
            header_cbor: &header,
            request_object_id: &self.request_object_id,
            idempotency_key: self.idempotency_key.as_deref(),
            outcome_object_ids: &self.outcome_object_ids,
            resource_object_ids: &self.resource_object_ids,
            usage_metrics: self.usage_metrics.as_deref(),
            executed_at: self.executed_at,
            executed_by: &self.executed_by,
        }
        .to_bytes()
    }

    /// Signs with the executing node's key, replacing `signature`.
    pub fn sign(&mut self, executor: &SigningKey) -> Result<(), OperationError> {
        self.signature = executor.sign(&self.signable_bytes()?).to_bytes();
        Ok(())
    }

    /// Checks the signature against the executing node's key.
    pub fn verify(&self, executor: &VerifyingKey) -> Result<(), OperationError> {
        verify_sig(executor, &self.signable_bytes()?, &self.signature)
    }
}

/// The outcome of a policy decision (digest §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The operation may run.
    Allow,
    /// The operation is refused.
    Deny,
}

/// The signed record of one decision (digest §9). Emitted for every denied
/// Risky/Dangerous operation, and for allowed ones when the audit level is High or above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionReceipt<H> {
    /// Object header.
    pub header: H,
    /// The request decided on.
    pub request_object_id: ObjectId,
    /// Allow or deny.
    pub decision: Decision,
    /// Stable reason code, e.g. `taint.public_input_dangerous`.
    pub reason_code: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Objects the decision rests on (tokens, receipts, checkpoints).
    pub evidence: Vec<ObjectId>,
    /// When it was decided (seconds).
    pub decided_at: u64,
    /// The deciding node.
    pub decided_by: String,
    /// Ed25519 signature over [`DecisionReceipt::signable_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl<H: Serialize> DecisionReceipt<H> {
    /// `FCP2-SIGN-V1 || BLAKE3("fcp.core.DecisionReceipt/1.0.0")[0..8] || det-CBOR(receipt
    /// without its signature field)` (digest §1.2).
    pub fn signable_bytes(&self) -> Result<Vec<u8>, OperationError> {
        let encode_err = |source| OperationError::Encode { what: "decision receipt", source };
        let value = cbor::to_value(self).map_err(encode_err)?;
        let unsigned = match value {
            Value::Map(entries) => {
                Value::Map(entries.into_iter().filter(|(k, _)| *k != Value::text("signature")).collect())
            }
            other => other,
        };
        let body = cbor::encode(&unsigned).map_err(|e| encode_err(CborError::Encode(e)))?;
        Ok(signing_bytes(DECISION_RECEIPT_SCHEMA, &body))
    }

    /// Signs with the deciding node's key, replacing `signature`.
    pub fn sign(&mut self, decider: &SigningKey) -> Result<(), OperationError> {
        self.signature = decider.sign(&self.signable_bytes()?).to_bytes();
        Ok(())
    }

    /// Checks the signature against the deciding node's key.
    pub fn verify(&self, decider: &VerifyingKey) -> Result<(), OperationError> {
        verify_sig(decider, &self.signable_bytes()?, &self.signature)
    }
}

/// A UUID as \[I\] serializes it: 16 raw bytes in CBOR, hyphenated text in JSON.
mod uuid_form {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub(super) fn serialize<S: Serializer>(u: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&u.hyphenated().to_string())
        } else {
            s.serialize_bytes(u.as_bytes())
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Uuid::parse_str(&s).map_err(serde::de::Error::custom)
        } else {
            let b = serde_bytes::ByteBuf::deserialize(d)?;
            Uuid::from_slice(&b).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stand-in header: any canonical-CBOR type works.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct TestHeader {
        zone_id: String,
        created_at: u64,
        refs: Vec<ObjectId>,
    }

    fn header() -> TestHeader {
        TestHeader { zone_id: "z:work".into(), created_at: 1_704_067_200, refs: vec![ObjectId([0x5e; 32])] }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn intent() -> OperationIntent<TestHeader> {
        OperationIntent {
            header: header(),
            request_object_id: ObjectId([0xa7; 32]),
            capability_token_jti: Uuid::from_bytes([1; 16]),
            idempotency_key: Some("pay-2026-0001".into()),
            planned_at: 1_767_225_601,
            planned_by: "laptop.tail4a2b1.ts.net".into(),
            lease_seq: Some(7),
            upstream_idempotency: None,
            signature: UNSIGNED,
        }
    }

    fn receipt() -> OperationReceipt<TestHeader> {
        OperationReceipt {
            header: header(),
            request_object_id: ObjectId([0xa7; 32]),
            idempotency_key: None,
            outcome_object_ids: vec![ObjectId([1; 32]), ObjectId([2; 32])],
            resource_object_ids: vec![],
            usage_metrics: None,
            executed_at: 1_704_067_300,
            executed_by: "executor-node".into(),
            signature: UNSIGNED,
        }
    }

    #[test]
    fn intent_layout_matches_digest() {
        let i = intent();
        let h = cbor::to_vec(&i.header).expect("header");
        let mut want = b"FCP2-INTENT-V1".to_vec();
        want.extend_from_slice(&(h.len() as u32).to_le_bytes());
        want.extend_from_slice(&h);
        want.extend_from_slice(&[0xa7; 32]);
        want.extend_from_slice(&[1; 16]);
        want.extend_from_slice(&[1, 13, 0, 0, 0]);
        want.extend_from_slice(b"pay-2026-0001");
        want.extend_from_slice(&1_767_225_601u64.to_le_bytes());
        want.extend_from_slice(&23u32.to_le_bytes());
        want.extend_from_slice(b"laptop.tail4a2b1.ts.net");
        want.extend_from_slice(&[1, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(i.signable_bytes().expect("bytes"), want);
    }

    #[test]
    fn receipt_usage_metrics_block() {
        let mut r = receipt();
        r.usage_metrics = Some(vec![UsageMetric {
            kind: "api_calls".into(),
            amount: 3,
            unit: Some("calls".into()),
            custom_id: None,
        }]);
        let bytes = r.signable_bytes().expect("bytes");
        let mut block = vec![1, 1, 0, 0, 0, 9, 0, 0, 0];
        block.extend_from_slice(b"api_calls");
        block.extend_from_slice(&3u64.to_le_bytes());
        block.extend_from_slice(&[1, 5, 0, 0, 0]);
        block.extend_from_slice(b"calls");
        block.push(0);
        block.extend_from_slice(&1_704_067_300u64.to_le_bytes());
        assert!(bytes.windows(block.len()).any(|w| w == block.as_slice()), "usage metrics block is laid out");
        r.usage_metrics = None;
        let none = r.signable_bytes().expect("bytes");
        let tail_len = 1 + 8 + 4 + "executor-node".len();
        assert_eq!(none[none.len() - tail_len], 0, "absent metrics are a single 00");
    }

    #[test]
    fn idempotency_key_limit_is_128_bytes() {
        let key = key();
        let mut i = intent();
        i.idempotency_key = Some("k".repeat(128));
        i.sign(&key).expect("128 bytes is allowed");
        i.verify(&key.verifying_key()).expect("verifies");
        i.idempotency_key = Some("k".repeat(129));
        assert_eq!(i.sign(&key).map_err(|e| e.code()), Err("idempotency_key_too_long"));
        assert_eq!(i.verify(&key.verifying_key()).map_err(|e| e.code()), Err("idempotency_key_too_long"));
        let mut r = receipt();
        r.idempotency_key = Some("k".repeat(129));
        assert_eq!(r.sign(&key).map_err(|e| e.code()), Err("idempotency_key_too_long"));
    }

    #[test]
    fn objects_round_trip_through_canonical_cbor() {
        let key = key();
        let mut i = intent();
        i.sign(&key).expect("signs");
        let bytes = cbor::to_vec(&i).expect("encodes");
        let back: OperationIntent<TestHeader> = cbor::from_slice(&bytes, cbor::Limits::CANONICAL).expect("decodes");
        assert_eq!(back, i);
        back.verify(&key.verifying_key()).expect("decoded intent verifies");
        let v = cbor::decode(&bytes, cbor::Limits::CANONICAL).expect("canonical");
        assert_eq!(v.get("capability_token_jti"), Some(&Value::bytes([1u8; 16])));
        let json = serde_json::to_value(&i).expect("json");
        assert_eq!(json["capability_token_jti"], "01010101-0101-0101-0101-010101010101");
    }

    #[test]
    fn unsigned_objects_never_verify() {
        let pk = key().verifying_key();
        assert_eq!(intent().verify(&pk).map_err(|e| e.code()), Err("invalid_signature"));
        assert_eq!(receipt().verify(&pk).map_err(|e| e.code()), Err("invalid_signature"));
    }

    fn decision() -> DecisionReceipt<TestHeader> {
        DecisionReceipt {
            header: header(),
            request_object_id: ObjectId([3; 32]),
            decision: Decision::Deny,
            reason_code: "taint.public_input_dangerous".into(),
            message: None,
            evidence: vec![ObjectId([4; 32])],
            decided_at: 1_704_067_200,
            decided_by: "node:gate".into(),
            signature: UNSIGNED,
        }
    }

    #[test]
    fn decision_receipt_signs_its_unsigned_view() {
        let key = key();
        let mut d = decision();
        d.sign(&key).expect("signs");
        d.verify(&key.verifying_key()).expect("verifies");
        let bytes = d.signable_bytes().expect("bytes");
        assert_eq!(&bytes[..12], b"FCP2-SIGN-V1");
        let body = cbor::decode(&bytes[20..], cbor::Limits::CANONICAL).expect("canonical body");
        assert_eq!(body.get("signature"), None);
        assert_eq!(body.get("decision"), Some(&Value::text("deny")));
        assert_eq!(body.get("message"), None);
        let mut other = d.clone();
        other.decision = Decision::Allow;
        assert_eq!(other.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));
        let mut with_message = d.clone();
        with_message.message = Some("public input reached a dangerous operation".into());
        assert_eq!(with_message.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));
    }

    fn arb_opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[ -~]{0,40}")
    }

    fn arb_intent() -> impl Strategy<Value = OperationIntent<TestHeader>> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 16]>(),
            arb_opt_text(),
            any::<u64>(),
            "[a-z0-9.-]{1,30}",
            proptest::option::of(any::<u64>()),
            arb_opt_text(),
        )
            .prop_map(|(req, jti, idem, planned_at, by, lease_seq, upstream)| OperationIntent {
                header: header(),
                request_object_id: ObjectId(req),
                capability_token_jti: Uuid::from_bytes(jti),
                idempotency_key: idem,
                planned_at,
                planned_by: by,
                lease_seq,
                upstream_idempotency: upstream,
                signature: UNSIGNED,
            })
    }

    fn arb_receipt() -> impl Strategy<Value = OperationReceipt<TestHeader>> {
        let metric = ("[a-z_]{1,12}", any::<u64>(), arb_opt_text(), arb_opt_text())
            .prop_map(|(kind, amount, unit, custom_id)| UsageMetric { kind, amount, unit, custom_id });
        (
            any::<[u8; 32]>(),
            arb_opt_text(),
            proptest::collection::vec(any::<[u8; 32]>().prop_map(ObjectId), 0..4),
            proptest::collection::vec(any::<[u8; 32]>().prop_map(ObjectId), 0..4),
            proptest::option::of(proptest::collection::vec(metric, 0..3)),
            any::<u64>(),
            "[a-z0-9.-]{1,30}",
        )
            .prop_map(|(req, idem, outcomes, resources, metrics, at, by)| OperationReceipt {
                header: header(),
                request_object_id: ObjectId(req),
                idempotency_key: idem,
                outcome_object_ids: outcomes,
                resource_object_ids: resources,
                usage_metrics: metrics,
                executed_at: at,
                executed_by: by,
                signature: UNSIGNED,
            })
    }

    proptest! {
        #[test]
        fn intent_sign_verify_and_tamper(mut i in arb_intent(), seed in any::<[u8; 32]>(),
                                         bit in 0usize..512, field in 0usize..6) {
            let key = SigningKey::from_bytes(&seed);
            i.sign(&key).expect("signs");
            i.verify(&key.verifying_key()).expect("verifies");

            let mut flipped = i.clone();
            flipped.signature[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(flipped.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));

            let mut t = i.clone();
            match field {
                0 => t.request_object_id.0[bit % 32] ^= 1 << (bit % 8),
                1 => t.planned_at ^= 1 << (bit % 64),
                2 => t.lease_seq = match t.lease_seq { Some(s) => Some(s ^ 1 << (bit % 64)), None => Some(0) },
                3 => t.planned_by.push('x'),
                4 => t.idempotency_key = match t.idempotency_key { Some(_) => None, None => Some(String::new()) },
                _ => t.header.created_at ^= 1 << (bit % 64),
            }
            prop_assert_eq!(t.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));
        }

        #[test]
        fn receipt_sign_verify_and_tamper(mut r in arb_receipt(), seed in any::<[u8; 32]>(),
                                          bit in 0usize..512, field in 0usize..5) {
            let key = SigningKey::from_bytes(&seed);
            r.sign(&key).expect("signs");
            r.verify(&key.verifying_key()).expect("verifies");
            let bytes = cbor::to_vec(&r).expect("encodes");
            let back: OperationReceipt<TestHeader> =
                cbor::from_slice(&bytes, cbor::Limits::CANONICAL).expect("decodes");
            prop_assert_eq!(&back, &r);

            let mut flipped = r.clone();
            flipped.signature[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(flipped.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));

            let mut t = r.clone();
            match field {
                0 => t.outcome_object_ids.push(ObjectId([0; 32])),
                1 => t.resource_object_ids.insert(0, ObjectId([0; 32])),
                2 => t.executed_at ^= 1 << (bit % 64),
                3 => t.usage_metrics = match t.usage_metrics { Some(_) => None, None => Some(vec![]) },
                _ => t.request_object_id.0[bit % 32] ^= 1 << (bit % 8),
            }
            prop_assert_eq!(t.verify(&key.verifying_key()).map_err(|e| e.code()), Err("invalid_signature"));
        }
    }
}
