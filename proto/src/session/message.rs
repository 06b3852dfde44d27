//! Handshake messages (digest §3.1), transcripts, signatures and the stateless cookie
//! (digest §3.2).
//!
//! Each message is a deterministic CBOR map with text keys. Byte fields are bstr;
//! `cookie`, `transport_limits` (a bare uint, \[I\]) and `signature` are left out when
//! absent. Decoders are strict: at most 16 KiB, canonical with no trailing bytes, every
//! field of its exact type and size, no unknown key, no `null` for an absent field,
//! suites only 1 or 2, node ids canonical (digest §1.5).
//!
//! Transcripts concatenate the deterministic CBOR of each field on its own, with `f6`
//! for an absent cookie or limit. Signatures are plain Ed25519 by the node signing key,
//! verified strictly (as \[I\] does).

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{MalformedReason, MessageKind, Misbehavior, SessionError, SessionId, Suite, NONCE_LEN, SESSION_ID_LEN};
use crate::cbor::{self, Limits, Value};
use crate::id::CanonicalId;

/// Largest accepted handshake message (digest §1.1).
pub const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;
/// Domain string of the hello transcript.
pub const HELLO_DOMAIN: &[u8] = b"FCP2-HELLO-V1";
/// Domain string of the ack transcript.
pub const ACK_DOMAIN: &[u8] = b"FCP2-ACK-V1";
/// Length of a cookie.
pub const COOKIE_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an X25519 public key.
pub const EPH_PUBKEY_LEN: usize = 32;

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

fn opt_hex(b: &Option<impl AsRef<[u8]>>) -> Option<Hex<'_>> {
    b.as_ref().map(|b| Hex(b.as_ref()))
}

// ---------------------------------------------------------------------------
// Encoding helpers: every value here is a text, bstr, u64, null or an array of u64s.

fn text(s: &CanonicalId) -> Value {
    Value::Text(s.as_str().to_owned())
}

fn uint(n: u64) -> Value {
    Value::Int(i128::from(n))
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn suites(s: &[Suite]) -> Value {
    Value::Array(s.iter().map(|s| uint(u64::from(s.id()))).collect())
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

fn encode_value(v: &Value) -> Vec<u8> {
    cbor::encode(v).expect("invariant: distinct text keys with text, bstr, u64 or array values always encode")
}

/// `C(v1) || C(v2) || …`: each value's deterministic CBOR, concatenated after `domain`.
fn concat_encodings(domain: &[u8], values: &[Value]) -> Vec<u8> {
    let mut out = domain.to_vec();
    for v in values {
        cbor::encode_into(&mut out, v).expect("invariant: text, bstr, u64, null and u64 arrays always encode");
    }
    out
}

fn map(entries: Vec<(&'static str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::Text(k.to_owned()), v)).collect())
}

// ---------------------------------------------------------------------------
// Strict field reader

fn malformed(kind: MessageKind, why: MalformedReason) -> SessionError {
    SessionError::PeerMisbehaved(Misbehavior::Malformed(kind, why))
}

fn decode_value(kind: MessageKind, input: &[u8]) -> Result<Value, SessionError> {
    cbor::decode(input, Limits::with_max_len(MAX_HANDSHAKE_BYTES))
        .map_err(|e| malformed(kind, MalformedReason::Cbor(e)))
}

struct Fields {
    kind: MessageKind,
    map: BTreeMap<String, Value>,
}

impl Fields {
    fn new(kind: MessageKind, v: Value) -> Result<Fields, SessionError> {
        let Value::Map(entries) = v else { return Err(malformed(kind, MalformedReason::NotAMap)) };
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            // The canonical decode already rejected duplicate keys.
            let Value::Text(k) = k else { return Err(malformed(kind, MalformedReason::UnknownKey)) };
            map.insert(k, v);
        }
        Ok(Fields { kind, map })
    }

    fn err(&self, why: MalformedReason) -> SessionError {
        malformed(self.kind, why)
    }

    fn req(&mut self, key: &'static str) -> Result<Value, SessionError> {
        self.map.remove(key).ok_or(malformed(self.kind, MalformedReason::MissingField(key)))
    }

    fn id(&mut self, key: &'static str) -> Result<CanonicalId, SessionError> {
        match self.req(key)? {
            Value::Text(s) => CanonicalId::new(&s).map_err(|_| self.err(MalformedReason::NonCanonicalId(key))),
            _ => Err(self.err(MalformedReason::WrongType(key))),
        }
    }

    fn fixed<const N: usize>(&self, key: &'static str, v: Value) -> Result<[u8; N], SessionError> {
        match v {
            Value::Bytes(b) => b.as_slice().try_into().map_err(|_| self.err(MalformedReason::WrongSize(key))),
            _ => Err(self.err(MalformedReason::WrongType(key))),
        }
    }

    fn bytes<const N: usize>(&mut self, key: &'static str) -> Result<[u8; N], SessionError> {
        let v = self.req(key)?;
        self.fixed(key, v)
    }

    fn opt_bytes<const N: usize>(&mut self, key: &'static str) -> Result<Option<[u8; N]>, SessionError> {
        // Absent means left out; a null is a wrong type (digest §3.1).
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) => self.fixed(key, v).map(Some),
        }
    }

    fn to_u64(&self, key: &'static str, v: Value) -> Result<u64, SessionError> {
        match v {
            Value::Int(i) => u64::try_from(i).map_err(|_| self.err(MalformedReason::OutOfRange(key))),
            _ => Err(self.err(MalformedReason::WrongType(key))),
        }
    }

    fn uint(&mut self, key: &'static str) -> Result<u64, SessionError> {
        let v = self.req(key)?;
        self.to_u64(key, v)
    }

    fn opt_u16(&mut self, key: &'static str) -> Result<Option<u16>, SessionError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) => {
                let n = self.to_u64(key, v)?;
                u16::try_from(n).map(Some).map_err(|_| self.err(MalformedReason::OutOfRange(key)))
            }
        }
    }

    fn to_suite(&self, key: &'static str, v: Value) -> Result<Suite, SessionError> {
        match v {
            Value::Int(i) => {
                u64::try_from(i).ok().and_then(Suite::from_id).ok_or(self.err(MalformedReason::UnknownSuite))
            }
            _ => Err(self.err(MalformedReason::WrongType(key))),
        }
    }

    fn suite(&mut self, key: &'static str) -> Result<Suite, SessionError> {
        let v = self.req(key)?;
        self.to_suite(key, v)
    }

    fn suites(&mut self, key: &'static str) -> Result<Vec<Suite>, SessionError> {
        match self.req(key)? {
            Value::Array(items) => items.into_iter().map(|v| self.to_suite(key, v)).collect(),
            _ => Err(self.err(MalformedReason::WrongType(key))),
        }
    }

    /// Anything left is a key the message does not define.
    fn finish(self) -> Result<(), SessionError> {
        if self.map.is_empty() {
            Ok(())
        } else {
            Err(malformed(self.kind, MalformedReason::UnknownKey))
        }
    }
}

/// `missing_signature` when there is none; then strict Ed25519 verification, where a
/// key that is not a valid point (`None`) fails like a bad signature.
fn verify_sig(
    key: Option<&VerifyingKey>,
    transcript: &[u8],
    signature: Option<&[u8; SIGNATURE_LEN]>,
) -> Result<(), SessionError> {
    let sig = signature.ok_or(Misbehavior::MissingSignature)?;
    let key = key.ok_or(Misbehavior::InvalidSignature)?;
    key.verify_strict(transcript, &Signature::from_bytes(sig)).map_err(|_| Misbehavior::InvalidSignature.into())
}

fn parse_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes).ok()
}

// ---------------------------------------------------------------------------
// MeshSessionHello

/// Initiator → responder (digest §3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct MeshSessionHello {
    /// The initiator's node id.
    pub from: CanonicalId,
    /// The responder's node id.
    pub to: CanonicalId,
    /// The initiator's ephemeral X25519 public key.
    pub eph_pubkey: [u8; EPH_PUBKEY_LEN],
    /// Fresh random nonce; `(from, nonce)` is never accepted twice.
    pub nonce: [u8; NONCE_LEN],
    /// The responder's cookie, echoed after a HelloRetry.
    pub cookie: Option<[u8; COOKIE_LEN]>,
    /// Unix seconds at the initiator.
    pub timestamp: u64,
    /// Offered suites, in the initiator's preference order.
    pub suites: Vec<Suite>,
    /// The initiator's datagram limit; 0 means the default 1200. Carried as given.
    pub transport_limits: Option<u16>,
    /// Ed25519 over [`MeshSessionHello::transcript`].
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

impl fmt::Debug for MeshSessionHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshSessionHello")
            .field("from", &self.from.as_str())
            .field("to", &self.to.as_str())
            .field("eph_pubkey", &Hex(&self.eph_pubkey))
            .field("nonce", &Hex(&self.nonce))
            .field("cookie", &opt_hex(&self.cookie))
            .field("timestamp", &self.timestamp)
            .field("suites", &self.suites)
            .field("transport_limits", &self.transport_limits)
            .field("signature", &opt_hex(&self.signature))
            .finish()
    }
}

impl MeshSessionHello {
    /// The CBOR map; absent optional fields are left out.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            ("from", text(&self.from)),
            ("to", text(&self.to)),
            ("eph_pubkey", bytes(&self.eph_pubkey)),
            ("nonce", bytes(&self.nonce)),
            ("timestamp", uint(self.timestamp)),
            ("suites", suites(&self.suites)),
        ];
        if let Some(c) = &self.cookie {
            m.push(("cookie", bytes(c)));
        }
        if let Some(t) = self.transport_limits {
            m.push(("transport_limits", uint(u64::from(t))));
        }
        if let Some(s) = &self.signature {
            m.push(("signature", bytes(s)));
        }
        map(m)
    }

    /// Deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        encode_value(&self.to_value())
    }

    /// The strict decoder of digest §3.1.
    pub fn decode(input: &[u8]) -> Result<MeshSessionHello, SessionError> {
        Self::from_value(decode_value(MessageKind::Hello, input)?)
    }

    fn from_value(v: Value) -> Result<MeshSessionHello, SessionError> {
        let mut f = Fields::new(MessageKind::Hello, v)?;
        let hello = MeshSessionHello {
            from: f.id("from")?,
            to: f.id("to")?,
            eph_pubkey: f.bytes("eph_pubkey")?,
            nonce: f.bytes("nonce")?,
            cookie: f.opt_bytes("cookie")?,
            timestamp: f.uint("timestamp")?,
            suites: f.suites("suites")?,
            transport_limits: f.opt_u16("transport_limits")?,
            signature: f.opt_bytes("signature")?,
        };
        f.finish()?;
        Ok(hello)
    }

    /// `"FCP2-HELLO-V1" || C(from) || C(to) || C(eph_pubkey) || C(nonce) || C(cookie|null) ||
    /// C(timestamp) || C(suites) || C(transport_limits|null)` (digest §3.2).
    pub fn transcript(&self) -> Vec<u8> {
        concat_encodings(
            HELLO_DOMAIN,
            &[
                text(&self.from),
                text(&self.to),
                bytes(&self.eph_pubkey),
                bytes(&self.nonce),
                opt(self.cookie.as_ref(), |c| bytes(c)),
                uint(self.timestamp),
                suites(&self.suites),
                opt(self.transport_limits, |t| uint(u64::from(t))),
            ],
        )
    }

    /// Signs the transcript with the node signing key.
    pub fn sign(&mut self, key: &SigningKey) {
        self.signature = Some(key.sign(&self.transcript()).to_bytes());
    }

    /// `missing_signature`, then `invalid_signature` (\[I\] `MeshSessionHello::verify`).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SessionError> {
        verify_sig(Some(key), &self.transcript(), self.signature.as_ref())
    }

    /// [`MeshSessionHello::verify`] with the key as 32 bytes; bytes that are not a
    /// valid Ed25519 point fail as `invalid_signature`.
    pub fn verify_with_key_bytes(&self, key: &[u8; 32]) -> Result<(), SessionError> {
        verify_sig(parse_key(key).as_ref(), &self.transcript(), self.signature.as_ref())
    }
}

// ---------------------------------------------------------------------------
// MeshSessionAck

/// Responder → initiator (digest §3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct MeshSessionAck {
    /// The responder's node id.
    pub from: CanonicalId,
    /// The initiator's node id.
    pub to: CanonicalId,
    /// The responder's ephemeral X25519 public key.
    pub eph_pubkey: [u8; EPH_PUBKEY_LEN],
    /// The responder's fresh nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The new session's id.
    pub session_id: SessionId,
    /// The negotiated suite.
    pub suite: Suite,
    /// Unix seconds at the responder.
    pub timestamp: u64,
    /// Ed25519 over [`MeshSessionAck::transcript`].
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

impl fmt::Debug for MeshSessionAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshSessionAck")
            .field("from", &self.from.as_str())
            .field("to", &self.to.as_str())
            .field("eph_pubkey", &Hex(&self.eph_pubkey))
            .field("nonce", &Hex(&self.nonce))
            .field("session_id", &self.session_id)
            .field("suite", &self.suite)
            .field("timestamp", &self.timestamp)
            .field("signature", &opt_hex(&self.signature))
            .finish()
    }
}

impl MeshSessionAck {
    /// The CBOR map; an absent signature is left out.
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            ("from", text(&self.from)),
            ("to", text(&self.to)),
            ("eph_pubkey", bytes(&self.eph_pubkey)),
            ("nonce", bytes(&self.nonce)),
            ("session_id", bytes(&self.session_id.0)),
            ("suite", uint(u64::from(self.suite.id()))),
            ("timestamp", uint(self.timestamp)),
        ];
        if let Some(s) = &self.signature {
            m.push(("signature", bytes(s)));
        }
        map(m)
    }

    /// Deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        encode_value(&self.to_value())
    }

    /// The strict decoder of digest §3.1.
    pub fn decode(input: &[u8]) -> Result<MeshSessionAck, SessionError> {
        Self::from_value(decode_value(MessageKind::Ack, input)?)
    }

    fn from_value(v: Value) -> Result<MeshSessionAck, SessionError> {
        let mut f = Fields::new(MessageKind::Ack, v)?;
        let ack = MeshSessionAck {
            from: f.id("from")?,
            to: f.id("to")?,
            eph_pubkey: f.bytes("eph_pubkey")?,
            nonce: f.bytes("nonce")?,
            session_id: SessionId(f.bytes::<SESSION_ID_LEN>("session_id")?),
            suite: f.suite("suite")?,
            timestamp: f.uint("timestamp")?,
            signature: f.opt_bytes("signature")?,
        };
        f.finish()?;
        Ok(ack)
    }

    /// `"FCP2-ACK-V1" || C(from) || C(to) || C(eph_pubkey) || C(nonce) || C(session_id) ||
    /// C(suite) || C(timestamp) || C(hello.eph_pubkey) || C(hello.nonce)` (digest §3.2).
    pub fn transcript(&self, hello: &MeshSessionHello) -> Vec<u8> {
        concat_encodings(
            ACK_DOMAIN,
            &[
                text(&self.from),
                text(&self.to),
                bytes(&self.eph_pubkey),
                bytes(&self.nonce),
                bytes(&self.session_id.0),
                uint(u64::from(self.suite.id())),
                uint(self.timestamp),
                bytes(&hello.eph_pubkey),
                bytes(&hello.nonce),
            ],
        )
    }

    /// Signs the transcript with the node signing key.
    pub fn sign(&mut self, hello: &MeshSessionHello, key: &SigningKey) {
        self.signature = Some(key.sign(&self.transcript(hello)).to_bytes());
    }

    /// Checks the ack against its hello in \[I\]'s order (`vectors/README.md` §5.6):
    /// `peer_mismatch`, `suite_not_offered`, `missing_signature`, `invalid_signature`.
    ///
    /// Reads only `from`, `to`, `suites`, `eph_pubkey` and `nonce` of the hello, and does
    /// not depend on the hello's own signature.
    pub fn verify(&self, hello: &MeshSessionHello, key: &VerifyingKey) -> Result<(), SessionError> {
        self.verify_inner(hello, Some(key))
    }

    /// [`MeshSessionAck::verify`] with the key as 32 bytes; bytes that are not a valid
    /// Ed25519 point fail as `invalid_signature`.
    pub fn verify_with_key_bytes(&self, hello: &MeshSessionHello, key: &[u8; 32]) -> Result<(), SessionError> {
        self.verify_inner(hello, parse_key(key).as_ref())
    }

    fn verify_inner(&self, hello: &MeshSessionHello, key: Option<&VerifyingKey>) -> Result<(), SessionError> {
        if self.from != hello.to || self.to != hello.from {
            return Err(Misbehavior::PeerMismatch.into());
        }
        if self.suite < Suite::FLOOR || !hello.suites.contains(&self.suite) {
            return Err(Misbehavior::SuiteNotOffered.into());
        }
        verify_sig(key, &self.transcript(hello), self.signature.as_ref())
    }
}

// ---------------------------------------------------------------------------
// MeshSessionHelloRetry

/// Responder → initiator: "come back with this cookie" (digest §3.1). Unsigned.
#[derive(Clone, PartialEq, Eq)]
pub struct MeshSessionHelloRetry {
    /// The responder's node id.
    pub from: CanonicalId,
    /// The initiator's node id.
    pub to: CanonicalId,
    /// The cookie to echo in the next hello.
    pub cookie: [u8; COOKIE_LEN],
    /// Unix seconds at the responder.
    pub timestamp: u64,
}

impl fmt::Debug for MeshSessionHelloRetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshSessionHelloRetry")
            .field("from", &self.from.as_str())
            .field("to", &self.to.as_str())
            .field("cookie", &Hex(&self.cookie))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl MeshSessionHelloRetry {
    /// The CBOR map `{from, to, cookie: bstr, timestamp}`.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("from", text(&self.from)),
            ("to", text(&self.to)),
            ("cookie", bytes(&self.cookie)),
            ("timestamp", uint(self.timestamp)),
        ])
    }

    /// Deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        encode_value(&self.to_value())
    }

    /// The strict decoder (the rules of digest §3.1).
    pub fn decode(input: &[u8]) -> Result<MeshSessionHelloRetry, SessionError> {
        Self::from_value(decode_value(MessageKind::HelloRetry, input)?)
    }

    fn from_value(v: Value) -> Result<MeshSessionHelloRetry, SessionError> {
        let mut f = Fields::new(MessageKind::HelloRetry, v)?;
        let retry = MeshSessionHelloRetry {
            from: f.id("from")?,
            to: f.id("to")?,
            cookie: f.bytes("cookie")?,
            timestamp: f.uint("timestamp")?,
        };
        f.finish()?;
        Ok(retry)
    }
}

// ---------------------------------------------------------------------------
// Any handshake message

/// One of the three handshake messages, told apart by their keys: an ack has
/// `session_id`, a hello has `eph_pubkey` but no `session_id`, anything else is read
/// as a HelloRetry. Each is then strictly decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeMessage {
    /// A hello.
    Hello(MeshSessionHello),
    /// An ack.
    Ack(MeshSessionAck),
    /// A retry.
    HelloRetry(MeshSessionHelloRetry),
}

impl HandshakeMessage {
    /// Decodes whichever message the bytes hold.
    pub fn decode(input: &[u8]) -> Result<HandshakeMessage, SessionError> {
        let v = decode_value(MessageKind::Handshake, input)?;
        let Value::Map(_) = &v else { return Err(malformed(MessageKind::Handshake, MalformedReason::NotAMap)) };
        if v.get("session_id").is_some() {
            MeshSessionAck::from_value(v).map(HandshakeMessage::Ack)
        } else if v.get("eph_pubkey").is_some() {
            MeshSessionHello::from_value(v).map(HandshakeMessage::Hello)
        } else {
            MeshSessionHelloRetry::from_value(v).map(HandshakeMessage::HelloRetry)
        }
    }

    /// Deterministic CBOR.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            HandshakeMessage::Hello(m) => m.encode(),
            HandshakeMessage::Ack(m) => m.encode(),
            HandshakeMessage::HelloRetry(m) => m.encode(),
        }
    }
}

// ---------------------------------------------------------------------------
// Cookie

/// The responder's cookie key. Zeroized on drop; Debug prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CookieKey([u8; 32]);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// `C(from) || C(to) || C(eph_pubkey) || C(nonce) || C(timestamp) || C(suites) ||
/// C(transport_limits|null)`: the seven fields the cookie covers (\[I\] `compute_cookie`).
pub fn cookie_input(hello: &MeshSessionHello) -> Vec<u8> {
    concat_encodings(
        b"",
        &[
            text(&hello.from),
            text(&hello.to),
            bytes(&hello.eph_pubkey),
            bytes(&hello.nonce),
            uint(hello.timestamp),
            suites(&hello.suites),
            opt(hello.transport_limits, |t| uint(u64::from(t))),
        ],
    )
}

impl CookieKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> CookieKey {
        CookieKey(bytes)
    }

    fn mac(&self, hello: &MeshSessionHello) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("invariant: HMAC takes any key length");
        mac.update(&cookie_input(hello));
        mac
    }

    /// `HMAC-SHA256(cookie_key, cookie_input(hello))`, all 32 bytes (digest §3.2). The
    /// hello's own cookie and signature are not covered.
    pub fn cookie(&self, hello: &MeshSessionHello) -> [u8; COOKIE_LEN] {
        self.mac(hello).finalize().into_bytes().into()
    }

    /// Whether `cookie` is this key's cookie for `hello` (constant time).
    pub fn verify(&self, hello: &MeshSessionHello, cookie: &[u8; COOKIE_LEN]) -> bool {
        self.mac(hello).verify_slice(cookie).is_ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_id() -> impl Strategy<Value = CanonicalId> {
        "[a-z0-9][a-z0-9._:-]{0,20}".prop_map(|s| CanonicalId::new(&s).expect("generated ids are canonical"))
    }

    fn arb_suites() -> impl Strategy<Value = Vec<Suite>> {
        proptest::collection::vec(prop_oneof![Just(Suite::Suite1), Just(Suite::Suite2)], 0..4)
    }

    pub(crate) fn arb_hello() -> impl Strategy<Value = MeshSessionHello> {
        (
            arb_id(),
            arb_id(),
            any::<[u8; 32]>(),
            any::<[u8; 16]>(),
            proptest::option::of(any::<[u8; 32]>()),
            any::<u64>(),
            arb_suites(),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(|(from, to, eph_pubkey, nonce, cookie, timestamp, suites, transport_limits)| {
                MeshSessionHello {
                    from,
                    to,
                    eph_pubkey,
                    nonce,
                    cookie,
                    timestamp,
                    suites,
                    transport_limits,
                    signature: None,
                }
            })
    }

    pub(crate) fn arb_ack() -> impl Strategy<Value = MeshSessionAck> {
        (arb_id(), arb_id(), any::<[u8; 32]>(), any::<[u8; 16]>(), any::<[u8; 16]>(), any::<bool>(), any::<u64>())
            .prop_map(|(from, to, eph_pubkey, nonce, sid, two, timestamp)| MeshSessionAck {
                from,
                to,
                eph_pubkey,
                nonce,
                session_id: SessionId(sid),
                suite: if two { Suite::Suite2 } else { Suite::Suite1 },
                timestamp,
                signature: None,
            })
    }

    fn id(s: &str) -> CanonicalId {
        CanonicalId::new(s).expect("canonical")
    }

    fn sample_hello() -> MeshSessionHello {
        MeshSessionHello {
            from: id("node-initiator"),
            to: id("node-responder"),
            eph_pubkey: [7; 32],
            nonce: [6; 16],
            cookie: None,
            timestamp: 1_704_067_200,
            suites: vec![Suite::Suite1, Suite::Suite2],
            transport_limits: Some(1200),
            signature: Some([9; 64]),
        }
    }

    fn reason(input: &[u8]) -> Option<MalformedReason> {
        match MeshSessionHello::decode(input) {
            Err(SessionError::PeerMisbehaved(Misbehavior::Malformed(MessageKind::Hello, r))) => Some(r),
            _ => None,
        }
    }

    fn with(mut v: Value, key: &str, new: Option<Value>) -> Vec<u8> {
        if let Value::Map(m) = &mut v {
            m.retain(|(k, _)| k != &Value::text(key));
            if let Some(n) = new {
                m.push((Value::text(key), n));
            }
        }
        cbor::encode(&v).expect("test value encodes")
    }

    #[test]
    fn strict_decoder_rejects_each_rule() {
        let h = sample_hello();
        let v = h.to_value();
        assert_eq!(MeshSessionHello::decode(&h.encode()), Ok(h.clone()));
        assert_eq!(reason(&with(v.clone(), "cookie", Some(Value::Null))), Some(MalformedReason::WrongType("cookie")));
        assert_eq!(reason(&with(v.clone(), "extra", Some(Value::Int(1)))), Some(MalformedReason::UnknownKey));
        assert_eq!(reason(&with(v.clone(), "nonce", None)), Some(MalformedReason::MissingField("nonce")));
        assert_eq!(
            reason(&with(v.clone(), "nonce", Some(Value::bytes(vec![0; 15])))),
            Some(MalformedReason::WrongSize("nonce"))
        );
        assert_eq!(
            reason(&with(v.clone(), "suites", Some(Value::Array(vec![Value::Int(3)])))),
            Some(MalformedReason::UnknownSuite)
        );
        assert_eq!(
            reason(&with(v.clone(), "transport_limits", Some(Value::Int(65536)))),
            Some(MalformedReason::OutOfRange("transport_limits"))
        );
        assert_eq!(
            reason(&with(v.clone(), "from", Some(Value::text("Node")))),
            Some(MalformedReason::NonCanonicalId("from"))
        );
        assert_eq!(
            reason(&with(v.clone(), "timestamp", Some(Value::Int(-1)))),
            Some(MalformedReason::OutOfRange("timestamp"))
        );
        let mut long = h.encode();
        long.push(0);
        assert!(matches!(reason(&long), Some(MalformedReason::Cbor(cbor::CanonicalError::TrailingBytes))));
        assert!(matches!(reason(&vec![0x40; MAX_HANDSHAKE_BYTES + 1]), Some(MalformedReason::Cbor(_))));
        assert_eq!(reason(&[0x80]), Some(MalformedReason::NotAMap));
    }

    #[test]
    fn transport_limits_zero_is_carried_as_given() {
        let mut h = sample_hello();
        h.transport_limits = Some(0);
        assert!(hex::encode(h.transcript()).ends_with("82010200"));
        assert_eq!(MeshSessionHello::decode(&h.encode()).map(|d| d.transport_limits), Ok(Some(0)));
    }

    #[test]
    fn messages_are_told_apart_by_their_keys() {
        let h = sample_hello();
        assert_eq!(HandshakeMessage::decode(&h.encode()), Ok(HandshakeMessage::Hello(h)));
        let r = MeshSessionHelloRetry { from: id("b"), to: id("a"), cookie: [1; 32], timestamp: 5 };
        assert_eq!(HandshakeMessage::decode(&r.encode()), Ok(HandshakeMessage::HelloRetry(r)));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        assert_eq!(format!("{:?}", CookieKey::from_bytes([1; 32])), "CookieKey(..)");
    }

    proptest! {
        #[test]
        fn hello_round_trips(mut h in arb_hello(), sig in proptest::option::of(any::<[u8; 64]>())) {
            h.signature = sig;
            prop_assert_eq!(MeshSessionHello::decode(&h.encode()), Ok(h));
        }

        #[test]
        fn ack_round_trips(mut a in arb_ack(), sig in proptest::option::of(any::<[u8; 64]>())) {
            a.signature = sig;
            prop_assert_eq!(MeshSessionAck::decode(&a.encode()), Ok(a));
        }

        #[test]
        fn retry_round_trips(from in arb_id(), to in arb_id(), cookie in any::<[u8; 32]>(), timestamp in any::<u64>()) {
            let r = MeshSessionHelloRetry { from, to, cookie, timestamp };
            prop_assert_eq!(MeshSessionHelloRetry::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn any_bit_flip_in_a_signed_hello_fails(h in arb_hello(), bit in any::<proptest::sample::Index>()) {
            let key = SigningKey::from_bytes(&[3; 32]);
            let mut h = h;
            h.sign(&key);
            let mut bytes = h.encode();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            let verdict = MeshSessionHello::decode(&bytes).and_then(|d| d.verify(&key.verifying_key()));
            prop_assert!(verdict.is_err(), "flipped bit {} accepted", i);
        }

        #[test]
        fn any_bit_flip_in_a_signed_ack_fails(h in arb_hello(), a in arb_ack(), bit in any::<proptest::sample::Index>()) {
            let key = SigningKey::from_bytes(&[4; 32]);
            let mut a = MeshSessionAck { from: h.to.clone(), to: h.from.clone(), ..a };
            let mut h = h;
            h.suites = vec![a.suite];
            a.sign(&h, &key);
            prop_assert_eq!(a.verify(&h, &key.verifying_key()), Ok(()));
            let mut bytes = a.encode();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            let verdict = MeshSessionAck::decode(&bytes).and_then(|d| d.verify(&h, &key.verifying_key()));
            prop_assert!(verdict.is_err(), "flipped bit {} accepted", i);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = HandshakeMessage::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
