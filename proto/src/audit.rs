//! The per-zone audit chain (digest §9): hash-linked, node-signed AuditEvents with
//! monotonic seq and W3C trace context, and AuditHeads signed by n of m nodes.
//!
//! Event B follows A iff `B.seq == A.seq + 1` and `B.prev == ObjectId(A)`; the
//! genesis event has seq 0 and no prev. [`verify_chain`] names the first break:
//! an edited, removed, reordered or inserted event, a truncated chain, or a fork.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{ObjectId, ObjectIdKey, ZoneId};
use crate::keys::{KeyError, NodeSigningKey, NodeSigningPublicKey, SignatureSet};
use crate::schema::SchemaId;

/// Schema id string of event signatures.
pub const EVENT_SCHEMA: &str = "fcp.core.AuditEvent/1.0.0";
/// Schema id string of head signatures.
pub const HEAD_SCHEMA: &str = "fcp.core.AuditHead/1.0.0";
/// Largest encoded event a decoder accepts.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// W3C trace context (`traceparent`).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    /// 16-byte trace id (not all zero).
    #[serde(with = "serde_bytes")]
    pub trace_id: [u8; 16],
    /// 8-byte parent span id (not all zero).
    #[serde(with = "serde_bytes")]
    pub span_id: [u8; 8],
    /// Trace flags.
    pub flags: u8,
}

impl TraceContext {
    /// Parses a version-00 `traceparent` header: `00-<32 hex>-<16 hex>-<2 hex>`.
    pub fn parse_traceparent(s: &str) -> Option<TraceContext> {
        let mut parts = s.split('-');
        let (v, t, p, f) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || v != "00" || t.len() != 32 || p.len() != 16 || f.len() != 2 {
            return None;
        }
        let lower = |x: &str| x.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(lower(t) && lower(p) && lower(f)) {
            return None;
        }
        let mut tc = TraceContext { trace_id: [0; 16], span_id: [0; 8], flags: 0 };
        hex::decode_to_slice(t, &mut tc.trace_id).ok()?;
        hex::decode_to_slice(p, &mut tc.span_id).ok()?;
        let mut fl = [0u8; 1];
        hex::decode_to_slice(f, &mut fl).ok()?;
        tc.flags = fl[0];
        if tc.trace_id == [0; 16] || tc.span_id == [0; 8] {
            return None;
        }
        Some(tc)
    }

    /// The `traceparent` header form.
    pub fn to_traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.span_id), self.flags)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

/// What happened, before it is placed in the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventDraft {
    /// Correlates the events of one request.
    pub correlation_id: [u8; 16],
    /// W3C trace context of the request, if it carried one.
    pub trace_context: Option<TraceContext>,
    /// e.g. `capability.invoke`, `connector.install`, `egress.denied`.
    pub event_type: String,
    /// Who acted.
    pub actor: String,
    /// When (seconds).
    pub occurred_at: u64,
    /// Connector involved.
    pub connector_id: Option<String>,
    /// Operation involved.
    pub operation: Option<String>,
    /// Token involved (its `cti`).
    pub capability_token_jti: Option<Vec<u8>>,
    /// Request involved.
    pub request_object_id: Option<ObjectId>,
    /// Result involved.
    pub result_object_id: Option<ObjectId>,
    /// Further facts, e.g. a deny reason.
    pub details: BTreeMap<String, String>,
}

/// One signed link of a zone's audit chain (digest §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Zone.
    pub zone_id: ZoneId,
    /// Position: 0 for genesis, then +1.
    pub seq: u64,
    /// ObjectId of the previous event; absent only for genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<ObjectId>,
    /// When (seconds).
    pub occurred_at: u64,
    /// Correlation id.
    #[serde(with = "serde_bytes")]
    pub correlation_id: [u8; 16],
    /// Trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    /// Event type.
    pub event_type: String,
    /// Actor.
    pub actor: String,
    /// Connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<String>,
    /// Operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Token `cti`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub capability_token_jti: Option<Vec<u8>>,
    /// Request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_id: Option<ObjectId>,
    /// Result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_object_id: Option<ObjectId>,
    /// Further facts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Node that signed.
    pub signer: String,
    /// Its signature over the event without this field.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why an audit object cannot be built or checked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// Decoding failed.
    #[error("decoding audit object")]
    Decode(#[source] cbor::CborError),
    /// Seq would overflow.
    #[error("audit seq overflow")]
    SeqOverflow,
    /// A head's signatures.
    #[error("audit head signatures")]
    Head(#[source] KeyError),
}

fn schema() -> SchemaId {
    SchemaId::new("fcp.core", "AuditEvent", "1.0.0").expect("invariant: constant schema id is valid")
}

fn encode_without_signature(e: &AuditEvent) -> Result<Vec<u8>, AuditError> {
    cbor::to_vec_without(e, "signature").map_err(|x| AuditError::Encode(x.to_string()))
}

impl AuditEvent {
    /// Deterministic CBOR of the whole signed event.
    pub fn to_cbor(&self) -> Result<Vec<u8>, AuditError> {
        cbor::to_vec(self).map_err(|e| AuditError::Encode(e.to_string()))
    }

    /// Strictly decodes an event.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, AuditError> {
        cbor::from_slice(bytes, cbor::Limits::with_max_len(MAX_EVENT_BYTES)).map_err(AuditError::Decode)
    }

    /// The keyed ObjectId that the next event's `prev` names.
    pub fn id(&self, key: &ObjectIdKey) -> Result<ObjectId, AuditError> {
        Ok(ObjectId::keyed(key, &self.zone_id, &schema(), &self.to_cbor()?))
    }

    /// Whether the signer's key verifies the event.
    pub fn verify_signature(&self, key: &NodeSigningPublicKey) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else { return false };
        encode_without_signature(self).is_ok_and(|b| key.verify_object(EVENT_SCHEMA, &b, &sig).is_ok())
    }
}

/// Builds a zone's chain: assigns seq and prev, signs each event.
#[derive(Debug)]
pub struct AuditChain {
    zone: ZoneId,
    key: ObjectIdKey,
    next_seq: u64,
    prev: Option<ObjectId>,
}

impl AuditChain {
    /// A new, empty chain.
    pub fn new(zone: ZoneId, key: ObjectIdKey) -> Self {
        AuditChain { zone, key, next_seq: 0, prev: None }
    }

    /// Resumes after `last`, the newest stored event.
    pub fn resume(zone: ZoneId, key: ObjectIdKey, last: &AuditEvent) -> Result<Self, AuditError> {
        let prev = Some(last.id(&key)?);
        let next_seq = last.seq.checked_add(1).ok_or(AuditError::SeqOverflow)?;
        Ok(AuditChain { zone, key, next_seq, prev })
    }

    /// The seq the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The id of the newest event.
    pub fn head(&self) -> Option<ObjectId> {
        self.prev
    }

    /// Signs `draft` as the next event. The chain advances only when this returns Ok;
    /// the caller persists the event before acknowledging it.
    pub fn append(
        &mut self,
        draft: EventDraft,
        node_id: &str,
        signer: &NodeSigningKey,
    ) -> Result<AuditEvent, AuditError> {
        let mut e = AuditEvent {
            zone_id: self.zone.clone(),
            seq: self.next_seq,
            prev: self.prev,
            occurred_at: draft.occurred_at,
            correlation_id: draft.correlation_id,
            trace_context: draft.trace_context,
            event_type: draft.event_type,
            actor: draft.actor,
            connector_id: draft.connector_id,
            operation: draft.operation,
            capability_token_jti: draft.capability_token_jti,
            request_object_id: draft.request_object_id,
            result_object_id: draft.result_object_id,
            details: draft.details,
            signer: node_id.to_owned(),
            signature: Vec::new(),
        };
        e.signature = signer.sign_object(EVENT_SCHEMA, &encode_without_signature(&e)?).to_vec();
        let id = e.id(&self.key)?;
        self.next_seq = self.next_seq.checked_add(1).ok_or(AuditError::SeqOverflow)?;
        self.prev = Some(id);
        Ok(e)
    }
}

/// A quorum-signed head of a zone's chain (digest §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Zone.
    pub zone_id: ZoneId,
    /// Id of the newest event.
    pub head_event: ObjectId,
    /// Its seq.
    pub head_seq: u64,
    /// Share of the chain the signers hold, in basis points (0–10,000).
    pub coverage_bps: u16,
    /// Epoch.
    pub epoch_id: u64,
    /// Signatures sorted by node id.
    pub quorum_signatures: SignatureSet,
}

impl AuditHead {
    /// The bytes each signer signs: the head without its signatures.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let mut unsigned = self.clone();
        unsigned.quorum_signatures = SignatureSet::new();
        let body = cbor::to_vec(&unsigned).map_err(|e| AuditError::Encode(e.to_string()))?;
        Ok(crate::schema::signing_bytes(HEAD_SCHEMA, &body))
    }

    /// Checks that `threshold` trusted nodes signed the head.
    pub fn verify(
        &self,
        threshold: usize,
        key_of: impl Fn(&str) -> Option<NodeSigningPublicKey>,
    ) -> Result<(), AuditError> {
        self.quorum_signatures
            .verify_quorum(&self.signing_bytes()?, threshold, key_of)
            .map(|_| ())
            .map_err(AuditError::Head)
    }
}

/// The first break found in a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An event's signature fails, or the next event's `prev` no longer names it.
    #[error("event {seq} was edited")]
    Edited {
        /// The event.
        seq: u64,
    },
    /// An event is missing.
    #[error("event {seq} was removed")]
    Removed {
        /// The first missing seq.
        seq: u64,
    },
    /// Events are out of order.
    #[error("event {seq} is out of order")]
    Reordered {
        /// The seq found out of place.
        seq: u64,
    },
    /// An event that does not belong (a duplicate, or one from elsewhere).
    #[error("an event was inserted at seq {seq}")]
    Inserted {
        /// Its seq.
        seq: u64,
    },
    /// The chain ends before the signed head.
    #[error("chain truncated: ends at {last_seq:?}, head is {head_seq}")]
    Truncated {
        /// Last seq present, if any.
        last_seq: Option<u64>,
        /// Seq of the signed head.
        head_seq: u64,
    },
    /// Two different validly signed events, or heads, at one seq.
    #[error("fork at seq {seq}")]
    Fork {
        /// The seq.
        seq: u64,
    },
    /// An event of another zone.
    #[error("event {seq} belongs to zone {zone}")]
    WrongZone {
        /// Its seq.
        seq: u64,
        /// Its zone.
        zone: ZoneId,
    },
    /// The first event is not a genesis event.
    #[error("the chain does not start with a genesis event")]
    BadGenesis,
    /// An event could not be encoded.
    #[error("event {seq} cannot be encoded")]
    Unencodable {
        /// Its seq.
        seq: u64,
    },
}

impl ChainBreak {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ChainBreak::Edited { .. } => "audit.edited",
            ChainBreak::Removed { .. } => "audit.removed",
            ChainBreak::Reordered { .. } => "audit.reordered",
            ChainBreak::Inserted { .. } => "audit.inserted",
            ChainBreak::Truncated { .. } => "audit.truncated",
            ChainBreak::Fork { .. } => "audit.fork",
            ChainBreak::WrongZone { .. } => "audit.wrong_zone",
            ChainBreak::BadGenesis => "audit.bad_genesis",
            ChainBreak::Unencodable { .. } => "audit.unencodable",
        }
    }
}

/// What a verified chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Number of events.
    pub events: u64,
    /// Seq and id of the newest event.
    pub head: Option<(u64, ObjectId)>,
}

/// Verifies a whole chain from genesis, in storage order, against the signers' keys
/// and, if given, a signed head (checked for quorum separately with [`AuditHead::verify`]).
pub fn verify_chain(
    zone: &ZoneId,
    key: &ObjectIdKey,
    events: &[AuditEvent],
    key_of: impl Fn(&str) -> Option<NodeSigningPublicKey>,
    head: Option<&AuditHead>,
) -> Result<ChainSummary, ChainBreak> {
    let mut ids: Vec<ObjectId> = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if &e.zone_id != zone {
            return Err(ChainBreak::WrongZone { seq: e.seq, zone: e.zone_id.clone() });
        }
        if !key_of(&e.signer).is_some_and(|k| e.verify_signature(&k)) {
            return Err(ChainBreak::Edited { seq: e.seq });
        }
        let id = e.id(key).map_err(|_| ChainBreak::Unencodable { seq: e.seq })?;
        match i.checked_sub(1).map(|j| (&events[j], ids[j])) {
            None => {
                if e.seq != 0 {
                    return Err(if events.iter().any(|x| x.seq == 0) {
                        ChainBreak::Reordered { seq: 0 }
                    } else {
                        ChainBreak::Removed { seq: 0 }
                    });
                }
                if e.prev.is_some() {
                    return Err(ChainBreak::BadGenesis);
                }
            }
            Some((p, pid)) => {
                let expected = p.seq.saturating_add(1);
                if e.seq == expected {
                    if e.prev != Some(pid) {
                        // Both verify, yet the link is broken: the previous event was
                        // replaced by a re-signed one, or this one was spliced in.
                        return Err(if ids[..i].iter().any(|x| Some(*x) == e.prev) {
                            ChainBreak::Inserted { seq: e.seq }
                        } else {
                            ChainBreak::Edited { seq: p.seq }
                        });
                    }
                } else if e.seq > expected {
                    return Err(if events[i..].iter().any(|x| x.seq == expected) {
                        ChainBreak::Reordered { seq: expected }
                    } else {
                        ChainBreak::Removed { seq: expected }
                    });
                } else if let Some(j) = events[..i].iter().position(|x| x.seq == e.seq) {
                    return Err(if ids[j] != id && events[j].prev == e.prev {
                        ChainBreak::Fork { seq: e.seq }
                    } else {
                        ChainBreak::Inserted { seq: e.seq }
                    });
                } else {
                    return Err(ChainBreak::Reordered { seq: e.seq });
                }
            }
        }
        ids.push(id);
    }
    let last = events.last().map(|e| e.seq).zip(ids.last().copied());
    if let Some(h) = head {
        match last {
            None => return Err(ChainBreak::Truncated { last_seq: None, head_seq: h.head_seq }),
            Some((seq, _)) if seq < h.head_seq => {
                return Err(ChainBreak::Truncated { last_seq: Some(seq), head_seq: h.head_seq })
            }
            Some(_) => {
                let at = usize::try_from(h.head_seq).ok().and_then(|i| ids.get(i));
                if at != Some(&h.head_event) {
                    return Err(ChainBreak::Fork { seq: h.head_seq });
                }
            }
        }
    }
    Ok(ChainSummary { events: events.len() as u64, head: last })
}

/// Two validly signed heads of one zone at one seq naming different events are a fork.
pub fn heads_fork(a: &AuditHead, b: &AuditHead) -> Option<ChainBreak> {
    (a.zone_id == b.zone_id && a.head_seq == b.head_seq && a.head_event != b.head_event)
        .then_some(ChainBreak::Fork { seq: a.head_seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeSignature;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    struct Fixture {
        zone: ZoneId,
        key: ObjectIdKey,
        node: NodeSigningKey,
        events: Vec<AuditEvent>,
    }

    impl Fixture {
        fn new(n: u64) -> Self {
            let zone = ZoneId::new("z:work").expect("zone");
            let key = ObjectIdKey([3; 32]);
            let node = NodeSigningKey::generate(&mut ChaCha20Rng::seed_from_u64(5));
            let mut chain = AuditChain::new(zone.clone(), key.clone());
            let events = (0..n)
                .map(|i| {
                    let draft = EventDraft {
                        event_type: "capability.invoke".into(),
                        actor: "agent:test".into(),
                        occurred_at: 1000 + i,
                        operation: Some("echo".into()),
                        ..EventDraft::default()
                    };
                    chain.append(draft, "node-a", &node).expect("append")
                })
                .collect();
            Fixture { zone, key, node, events }
        }

        fn verify(&self, events: &[AuditEvent], head: Option<&AuditHead>) -> Result<ChainSummary, ChainBreak> {
            let pk = self.node.public();
            verify_chain(&self.zone, &self.key, events, |n| (n == "node-a").then_some(pk), head)
        }

        fn resign(&self, e: &mut AuditEvent) {
            e.signature = self.node.sign_object(EVENT_SCHEMA, &encode_without_signature(e).expect("enc")).to_vec();
        }

        fn head(&self, seq: u64) -> AuditHead {
            let mut h = AuditHead {
                zone_id: self.zone.clone(),
                head_event: self.events[seq as usize].id(&self.key).expect("id"),
                head_seq: seq,
                coverage_bps: 10_000,
                epoch_id: 1,
                quorum_signatures: SignatureSet::new(),
            };
            let bytes = h.signing_bytes().expect("bytes");
            h.quorum_signatures.insert(NodeSignature {
                node_id: "node-a".into(),
                signature: self.node.sign_raw(&bytes),
                signed_at: 0,
            });
            h
        }
    }

    #[test]
    fn intact_chain_verifies() {
        let f = Fixture::new(6);
        let head = f.head(5);
        let s = f.verify(&f.events, Some(&head)).expect("intact");
        assert_eq!(s.events, 6);
        assert_eq!(s.head.map(|h| h.0), Some(5));
        let pk = f.node.public();
        assert!(head.verify(1, |_| Some(pk)).is_ok());
    }

    #[test]
    fn each_tampering_is_named() {
        let f = Fixture::new(6);
        let mut edited = f.events.clone();
        edited[2].actor = "agent:evil".into();
        assert_eq!(f.verify(&edited, None), Err(ChainBreak::Edited { seq: 2 }));

        let mut resigned = f.events.clone();
        resigned[2].actor = "agent:insider".into();
        f.resign(&mut resigned[2]);
        assert_eq!(f.verify(&resigned, None), Err(ChainBreak::Edited { seq: 2 }));

        let mut removed = f.events.clone();
        removed.remove(3);
        assert_eq!(f.verify(&removed, None), Err(ChainBreak::Removed { seq: 3 }));

        let mut reordered = f.events.clone();
        reordered.swap(2, 3);
        assert_eq!(f.verify(&reordered, None), Err(ChainBreak::Reordered { seq: 2 }));

        let mut inserted = f.events.clone();
        inserted.insert(4, f.events[1].clone());
        assert_eq!(f.verify(&inserted, None), Err(ChainBreak::Inserted { seq: 1 }));

        let truncated = &f.events[..4];
        assert_eq!(
            f.verify(truncated, Some(&f.head(5))),
            Err(ChainBreak::Truncated { last_seq: Some(3), head_seq: 5 })
        );

        let no_genesis = &f.events[1..];
        assert_eq!(f.verify(no_genesis, None), Err(ChainBreak::Removed { seq: 0 }));
    }

    #[test]
    fn forks_are_detected() {
        let f = Fixture::new(4);
        let mut alt = f.events[3].clone();
        alt.operation = Some("other".into());
        f.resign(&mut alt);
        let mut forked = f.events.clone();
        forked.push(alt.clone());
        assert_eq!(f.verify(&forked, None), Err(ChainBreak::Fork { seq: 3 }));

        let mut other = f.head(3);
        other.head_event = alt.id(&f.key).expect("id");
        assert_eq!(heads_fork(&f.head(3), &other), Some(ChainBreak::Fork { seq: 3 }));
        assert_eq!(heads_fork(&f.head(3), &f.head(3)), None);
        assert_eq!(f.verify(&f.events, Some(&other)), Err(ChainBreak::Fork { seq: 3 }));
    }

    #[test]
    fn resume_continues_the_chain() {
        let f = Fixture::new(3);
        let mut chain = AuditChain::resume(f.zone.clone(), f.key.clone(), &f.events[2]).expect("resume");
        let e = chain
            .append(EventDraft { event_type: "x".into(), ..EventDraft::default() }, "node-a", &f.node)
            .expect("append");
        let mut all = f.events.clone();
        all.push(e);
        assert_eq!(f.verify(&all, None).map(|s| s.events), Ok(4));
    }

    #[test]
    fn traceparent_round_trip() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tc = TraceContext::parse_traceparent(s).expect("valid");
        assert_eq!(tc.to_traceparent(), s);
        assert_eq!(TraceContext::parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(TraceContext::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(TraceContext::parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
    }

    proptest! {
        #[test]
        fn event_cbor_round_trips_and_bit_flips_fail(byte in 0usize..2000, bit in 0u8..8) {
            let f = Fixture::new(2);
            let bytes = f.events[1].to_cbor().expect("enc");
            prop_assert_eq!(AuditEvent::from_cbor(&bytes).expect("dec"), f.events[1].clone());
            let mut flipped = bytes.clone();
            let i = byte % flipped.len();
            flipped[i] ^= 1 << bit;
            if let Ok(e) = AuditEvent::from_cbor(&flipped) {
                let pk = f.node.public();
                prop_assert!(verify_chain(&f.zone, &f.key, &[f.events[0].clone(), e], |_| Some(pk), None).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AuditEvent::from_cbor(&bytes);
        }
    }
}
