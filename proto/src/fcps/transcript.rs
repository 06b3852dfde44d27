//! Signed transcripts of the symbol exchange (digest §2.4, \[I\]): SymbolRequest,
//! DecodeStatus and SymbolAck. Each is signed with plain Ed25519 by the node signing key
//! over the bytes [`SignedTranscript::signable_bytes`] builds.
//!
//! `lp32(x)` is `u32le(len x) || x`; every integer is little-endian.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::id::{CanonicalId, EpochId, ObjectId, ZoneId};

/// Domain of the SymbolRequest transcript.
pub const SYMBOL_REQUEST_DOMAIN: &[u8] = b"FCP2-SYMBOL-REQ-V1";
/// Domain of the DecodeStatus transcript.
pub const DECODE_STATUS_DOMAIN: &[u8] = b"FCP2-DECODE-STATUS-V2";
/// Domain of the SymbolAck transcript.
pub const SYMBOL_ACK_DOMAIN: &[u8] = b"FCP2-SYMBOL-ACK-V2";
/// Symbols an unauthenticated requester may ask for (\[S\]).
pub const MAX_SYMBOLS_UNAUTHENTICATED: u32 = 32;
/// \[I\] default cap for authenticated requests.
pub const MAX_SYMBOLS_AUTHENTICATED: u32 = 1000;
/// \[I\] hard cap on `max_symbols`.
pub const MAX_SYMBOLS_HARD_CAP: u32 = 2001;
/// \[I\] cap on `missing_hint` entries.
pub const MAX_MISSING_HINT: usize = 100;

/// Why a transcript could not be built or verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// A list or string does not fit its u32 length prefix.
    #[error("{0} does not fit a u32 length prefix")]
    TooLong(&'static str),
    /// The signature does not verify.
    #[error("transcript signature is invalid")]
    InvalidSignature,
}

impl TranscriptError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            TranscriptError::TooLong(_) => "too_long",
            TranscriptError::InvalidSignature => "invalid_signature",
        }
    }
}

/// A message signed over its transcript bytes.
pub trait SignedTranscript {
    /// The exact bytes that are signed.
    fn signable_bytes(&self) -> Result<Vec<u8>, TranscriptError>;

    /// Ed25519 over [`SignedTranscript::signable_bytes`].
    fn sign(&self, key: &SigningKey) -> Result<Signature, TranscriptError> {
        Ok(key.sign(&self.signable_bytes()?))
    }

    /// Verifies a signature (strict RFC 8032 verification).
    fn verify(&self, key: &VerifyingKey, signature: &Signature) -> Result<(), TranscriptError> {
        key.verify_strict(&self.signable_bytes()?, signature).map_err(|_| TranscriptError::InvalidSignature)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), TranscriptError> {
    out.extend_from_slice(&u32::try_from(len).map_err(|_| TranscriptError::TooLong(what))?.to_le_bytes());
    Ok(())
}

fn put_lp32(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), TranscriptError> {
    put_len(out, s.len(), what)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_esis(out: &mut Vec<u8>, esis: &[u32], what: &'static str) -> Result<(), TranscriptError> {
    put_len(out, esis.len(), what)?;
    for e in esis {
        out.extend_from_slice(&e.to_le_bytes());
    }
    Ok(())
}

/// The common prefix: `domain || object_id || lp32(zone_id) || zone_key_id || u64le(epoch)`.
fn prefix(
    domain: &[u8],
    object_id: &ObjectId,
    zone_id: &ZoneId,
    zone_key_id: &[u8; 8],
    epoch: EpochId,
) -> Result<Vec<u8>, TranscriptError> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(domain);
    out.extend_from_slice(&object_id.0);
    put_lp32(&mut out, zone_id.as_str(), "zone_id")?;
    out.extend_from_slice(zone_key_id);
    out.extend_from_slice(&epoch.0.to_le_bytes());
    Ok(out)
}

/// A request for symbols of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolRequest {
    /// The object.
    pub object_id: ObjectId,
    /// Its zone.
    pub zone_id: ZoneId,
    /// The zone key the symbols should be sealed with.
    pub zone_key_id: [u8; 8],
    /// The key epoch.
    pub epoch: EpochId,
    /// Most symbols the responder may send.
    pub max_symbols: u32,
    /// Symbols the requester already holds.
    pub current_symbols: u32,
    /// ESIs the requester lacks, if it says (at most [`MAX_MISSING_HINT`] by \[I\] default).
    pub missing_hint: Option<Vec<u32>>,
}

impl SignedTranscript for SymbolRequest {
    /// `"FCP2-SYMBOL-REQ-V1" || object_id || lp32(zone_id) || zone_key_id || u64le(epoch) ||
    /// u32le(max_symbols) || u32le(current_symbols) || u32le(n) || n × u32le(esi)`; an absent
    /// hint is written as count 0.
    fn signable_bytes(&self) -> Result<Vec<u8>, TranscriptError> {
        let mut out = prefix(SYMBOL_REQUEST_DOMAIN, &self.object_id, &self.zone_id, &self.zone_key_id, self.epoch)?;
        out.extend_from_slice(&self.max_symbols.to_le_bytes());
        out.extend_from_slice(&self.current_symbols.to_le_bytes());
        put_esis(&mut out, self.missing_hint.as_deref().unwrap_or_default(), "missing_hint")?;
        Ok(out)
    }
}

/// A receiver's decode progress, addressed to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStatus {
    /// The object.
    pub object_id: ObjectId,
    /// Its zone.
    pub zone_id: ZoneId,
    /// The zone key.
    pub zone_key_id: [u8; 8],
    /// The key epoch.
    pub epoch: EpochId,
    /// The node the status is for.
    pub recipient_node_id: CanonicalId,
    /// Nonce of the request this answers.
    pub request_nonce: u64,
    /// Distinct symbols received.
    pub received_unique: u32,
    /// Symbols still needed.
    pub needed: u32,
    /// Whether the object decoded.
    pub complete: bool,
    /// ESIs still missing.
    pub missing_esis: Vec<u32>,
}

impl SignedTranscript for DecodeStatus {
    /// `"FCP2-DECODE-STATUS-V2" || object_id || lp32(zone_id) || zone_key_id || u64le(epoch) ||
    /// lp32(recipient_node_id) || u64le(request_nonce) || u32le(received_unique) ||
    /// u32le(needed) || u8(complete) || u32le(n) || esis`.
    fn signable_bytes(&self) -> Result<Vec<u8>, TranscriptError> {
        let mut out = prefix(DECODE_STATUS_DOMAIN, &self.object_id, &self.zone_id, &self.zone_key_id, self.epoch)?;
        put_lp32(&mut out, self.recipient_node_id.as_str(), "recipient_node_id")?;
        out.extend_from_slice(&self.request_nonce.to_le_bytes());
        out.extend_from_slice(&self.received_unique.to_le_bytes());
        out.extend_from_slice(&self.needed.to_le_bytes());
        out.push(u8::from(self.complete));
        put_esis(&mut out, &self.missing_esis, "missing_esis")?;
        Ok(out)
    }
}

/// Why a transfer ended (digest §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckReason {
    /// The object decoded.
    Complete = 0,
    /// The requester gave up.
    Cancelled = 1,
    /// The object was already held.
    Duplicate = 2,
    /// The budget ran out.
    BudgetExceeded = 3,
}

impl AckReason {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// From the wire byte.
    pub fn from_u8(b: u8) -> Option<AckReason> {
        Some(match b {
            0 => AckReason::Complete,
            1 => AckReason::Cancelled,
            2 => AckReason::Duplicate,
            3 => AckReason::BudgetExceeded,
            _ => return None,
        })
    }
}

/// The end of a symbol transfer, addressed to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolAck {
    /// The object.
    pub object_id: ObjectId,
    /// Its zone.
    pub zone_id: ZoneId,
    /// The zone key.
    pub zone_key_id: [u8; 8],
    /// The key epoch.
    pub epoch: EpochId,
    /// The node the ack is for.
    pub recipient_node_id: CanonicalId,
    /// Nonce of the request this answers.
    pub request_nonce: u64,
    /// Why the transfer ended.
    pub reason: AckReason,
    /// Symbols delivered in total.
    pub final_symbol_count: u32,
}

impl SignedTranscript for SymbolAck {
    /// `"FCP2-SYMBOL-ACK-V2" || object_id || lp32(zone_id) || zone_key_id || u64le(epoch) ||
    /// lp32(recipient) || u64le(request_nonce) || u8(reason) || u32le(final_symbol_count)`.
    fn signable_bytes(&self) -> Result<Vec<u8>, TranscriptError> {
        let mut out = prefix(SYMBOL_ACK_DOMAIN, &self.object_id, &self.zone_id, &self.zone_key_id, self.epoch)?;
        put_lp32(&mut out, self.recipient_node_id.as_str(), "recipient_node_id")?;
        out.extend_from_slice(&self.request_nonce.to_le_bytes());
        out.push(self.reason.to_u8());
        out.extend_from_slice(&self.final_symbol_count.to_le_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> ZoneId {
        ZoneId::new("z:work").expect("zone")
    }

    fn common_hex() -> String {
        format!("{}06000000{}{}0500000000000000", "11".repeat(32), hex::encode("z:work"), "22".repeat(8))
    }

    #[test]
    fn symbol_request_layout() {
        let mut r = SymbolRequest {
            object_id: ObjectId([0x11; 32]),
            zone_id: zone(),
            zone_key_id: [0x22; 8],
            epoch: EpochId(5),
            max_symbols: 32,
            current_symbols: 3,
            missing_hint: None,
        };
        let head = format!("{}{}2000000003000000", hex::encode(SYMBOL_REQUEST_DOMAIN), common_hex());
        assert_eq!(hex::encode(r.signable_bytes().expect("bytes")), format!("{head}00000000"));
        r.missing_hint = Some(vec![7, 0x0102_0304]);
        assert_eq!(hex::encode(r.signable_bytes().expect("bytes")), format!("{head}020000000700000004030201"));
    }

    #[test]
    fn decode_status_and_ack_layout_and_signatures() {
        let recipient = CanonicalId::new("node-b").expect("id");
        let s = DecodeStatus {
            object_id: ObjectId([0x11; 32]),
            zone_id: zone(),
            zone_key_id: [0x22; 8],
            epoch: EpochId(5),
            recipient_node_id: recipient.clone(),
            request_nonce: 9,
            received_unique: 4,
            needed: 6,
            complete: false,
            missing_esis: vec![1],
        };
        assert_eq!(
            hex::encode(s.signable_bytes().expect("bytes")),
            format!(
                "{}{}06000000{}0900000000000000040000000600000000{}",
                hex::encode(DECODE_STATUS_DOMAIN),
                common_hex(),
                hex::encode("node-b"),
                "0100000001000000"
            )
        );
        let a = SymbolAck {
            object_id: ObjectId([0x11; 32]),
            zone_id: zone(),
            zone_key_id: [0x22; 8],
            epoch: EpochId(5),
            recipient_node_id: recipient,
            request_nonce: 9,
            reason: AckReason::BudgetExceeded,
            final_symbol_count: 12,
        };
        assert_eq!(
            hex::encode(a.signable_bytes().expect("bytes")),
            format!(
                "{}{}06000000{}0900000000000000030c000000",
                hex::encode(SYMBOL_ACK_DOMAIN),
                common_hex(),
                hex::encode("node-b")
            )
        );
        let key = SigningKey::from_bytes(&[1; 32]);
        let sig = a.sign(&key).expect("sign");
        assert_eq!(a.verify(&key.verifying_key(), &sig), Ok(()));
        let mut b = a.clone();
        b.final_symbol_count += 1;
        assert_eq!(b.verify(&key.verifying_key(), &sig), Err(TranscriptError::InvalidSignature));
        assert_eq!(AckReason::from_u8(3), Some(AckReason::BudgetExceeded));
        assert_eq!(AckReason::from_u8(4), None);
    }
}
