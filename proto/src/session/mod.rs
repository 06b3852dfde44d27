//! Mesh sessions (digest §3): handshake messages, transcripts and signatures, the
//! stateless cookie, suite negotiation, key schedule recipe A, the per-datagram session
//! MAC, anti-replay, and a sans-IO handshake state machine.
//!
//! - [`message`]: MeshSessionHello / MeshSessionAck / MeshSessionHelloRetry, their
//!   deterministic CBOR and strict decoders (§3.1), transcripts, signatures, the cookie
//!   and the verification order of `vectors/README.md` §5.6 (§3.2).
//! - [`keys`]: X25519, key schedule recipe A, the session MAC (§3.3, §3.4).
//! - [`replay`]: the 128-bit replay window and the hello-nonce cache (§3.2, §3.5).
//! - [`handshake`]: [`Initiator`] and [`Responder`], driven by the caller with
//!   `handle(now, bytes)` and `poll_transmit()`; time and randomness are arguments.
//! - [`Session`]: the established session's keys, MAC'd FCPS datagrams and FCPC
//!   control frames.
//!
//! Errors carry blame: [`SessionError::PeerMisbehaved`] for anything a peer's bytes
//! caused, the other variants for local misuse or limits ([`SessionError::blame`]).

use std::fmt;

use crate::cbor::CanonicalError;
use crate::fcpc::FcpcError;
use crate::fcps::DatagramError;

pub mod established;
pub mod handshake;
pub mod keys;
pub mod message;
pub mod replay;

#[cfg(test)]
mod tests;

pub use established::{Role, Session};
pub use handshake::{Initiator, InitiatorConfig, LocalIdentity, Responder, ResponderConfig, Transmit};
pub use keys::{derive_session_keys, session_mac, EphemeralKey, MacKey, SessionKeys};
pub use message::{CookieKey, HandshakeMessage, MeshSessionAck, MeshSessionHello, MeshSessionHelloRetry};
pub use replay::{HelloReplayCache, ReplayWindow};

/// Length of a session id.
pub const SESSION_ID_LEN: usize = 16;
/// Length of the hello and ack nonces.
pub const NONCE_LEN: usize = 16;

/// The 16-byte session id the responder picks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex::encode(self.0))
    }
}

/// Which way a datagram or control frame travels (digest §3.4, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Initiator to responder, byte 0x00.
    InitiatorToResponder,
    /// Responder to initiator, byte 0x01.
    ResponderToInitiator,
}

impl Direction {
    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Direction::InitiatorToResponder => 0,
            Direction::ResponderToInitiator => 1,
        }
    }

    /// From the wire byte.
    pub const fn from_u8(b: u8) -> Option<Direction> {
        match b {
            0 => Some(Direction::InitiatorToResponder),
            1 => Some(Direction::ResponderToInitiator),
            _ => None,
        }
    }

    /// The other direction.
    pub const fn reverse(self) -> Direction {
        match self {
            Direction::InitiatorToResponder => Direction::ResponderToInitiator,
            Direction::ResponderToInitiator => Direction::InitiatorToResponder,
        }
    }
}

/// A session crypto suite (digest §3.1). Both use X25519 and HKDF-SHA256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suite {
    /// MAC = HMAC-SHA256 truncated to 16 bytes.
    Suite1 = 1,
    /// MAC = BLAKE3-keyed truncated to 16 bytes.
    Suite2 = 2,
}

impl Suite {
    /// The lowest suite a responder accepts.
    pub const FLOOR: Suite = Suite::Suite1;

    /// The wire id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// From a wire id; only 1 and 2 exist.
    pub const fn from_id(id: u64) -> Option<Suite> {
        match id {
            1 => Some(Suite::Suite1),
            2 => Some(Suite::Suite2),
            _ => None,
        }
    }

    /// The \[I\] label.
    pub const fn label(self) -> &'static str {
        match self {
            Suite::Suite1 => "suite1-hmacsha256",
            Suite::Suite2 => "suite2-blake3",
        }
    }
}

/// Responder-picks negotiation (digest §3.2, `vectors/README.md` §5.7): the first suite
/// of the **responder's** list that the initiator offered and that is at least
/// [`Suite::FLOOR`]; `None` when there is no overlap.
pub fn negotiate(initiator: &[Suite], responder: &[Suite]) -> Option<Suite> {
    responder.iter().copied().find(|s| *s >= Suite::FLOOR && initiator.contains(s))
}

/// Who is at fault for an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The peer's bytes or behaviour.
    Peer,
    /// This node: misuse, configuration or an exhausted local limit.
    Local,
}

/// Which handshake message was malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// MeshSessionHello.
    Hello,
    /// MeshSessionAck.
    Ack,
    /// MeshSessionHelloRetry.
    HelloRetry,
    /// Not yet known: the bytes are not a CBOR map.
    Handshake,
}

/// Why a handshake message failed its strict decode (digest §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MalformedReason {
    /// Not strict canonical CBOR, or over 16 KiB (digest §1.1).
    Cbor(CanonicalError),
    /// The top level is not a map.
    NotAMap,
    /// A key that the message does not define, or a non-text key.
    UnknownKey,
    /// A required field is missing.
    MissingField(&'static str),
    /// A field of the wrong CBOR type (including `null` for an absent optional field).
    WrongType(&'static str),
    /// A byte string of the wrong length.
    WrongSize(&'static str),
    /// An integer outside its range (`timestamp` u64, `transport_limits` u16).
    OutOfRange(&'static str),
    /// A suite id other than 1 or 2.
    UnknownSuite,
    /// A node id that is not a canonical id (digest §1.5).
    NonCanonicalId(&'static str),
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedReason::Cbor(e) => write!(f, "{e}"),
            MalformedReason::NotAMap => f.write_str("not a map"),
            MalformedReason::UnknownKey => f.write_str("unknown key"),
            MalformedReason::MissingField(k) => write!(f, "missing field {k}"),
            MalformedReason::WrongType(k) => write!(f, "field {k} has the wrong type"),
            MalformedReason::WrongSize(k) => write!(f, "field {k} has the wrong size"),
            MalformedReason::OutOfRange(k) => write!(f, "field {k} is out of range"),
            MalformedReason::UnknownSuite => f.write_str("unknown suite id"),
            MalformedReason::NonCanonicalId(k) => write!(f, "field {k} is not a canonical id"),
        }
    }
}

/// What a peer did wrong. Every variant is caused by bytes the peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehavior {
    /// A handshake message failed the strict decode.
    Malformed(MessageKind, MalformedReason),
    /// `ack.from ≠ hello.to` or `ack.to ≠ hello.from`, or a retry from someone else.
    PeerMismatch,
    /// The ack picked a suite the hello did not offer.
    SuiteNotOffered,
    /// A hello or ack without a signature.
    MissingSignature,
    /// A signature that does not verify.
    InvalidSignature,
    /// A hello addressed to another node.
    WrongRecipient,
    /// A hello from a node with no attested signing key here.
    UnknownPeer,
    /// `|timestamp − now|` exceeds the allowed skew.
    StaleTimestamp {
        /// The message's timestamp.
        timestamp: u64,
        /// Our clock.
        now: u64,
    },
    /// A `(from, nonce)` already accepted.
    ReplayedHello,
    /// A cookie this responder did not issue for this hello.
    InvalidCookie,
    /// No suite both sides support.
    NoCommonSuite,
    /// A message that does not fit the handshake state.
    UnexpectedMessage,
    /// An X25519 public key that yields a non-contributory shared secret.
    WeakKey,
    /// A datagram or control frame for another session.
    WrongSession,
    /// A datagram envelope failed to decode.
    Datagram(DatagramError),
    /// A datagram seq outside the window or already seen.
    Replay,
    /// A datagram whose session MAC does not verify.
    MacInvalid,
    /// A control frame failed to open, or its seq did not increase.
    Control(FcpcError),
}

impl Misbehavior {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Misbehavior::Malformed(..) => "malformed",
            Misbehavior::PeerMismatch => "peer_mismatch",
            Misbehavior::SuiteNotOffered => "suite_not_offered",
            Misbehavior::MissingSignature => "missing_signature",
            Misbehavior::InvalidSignature => "invalid_signature",
            Misbehavior::WrongRecipient => "wrong_recipient",
            Misbehavior::UnknownPeer => "unknown_peer",
            Misbehavior::StaleTimestamp { .. } => "stale_timestamp",
            Misbehavior::ReplayedHello => "replayed_hello",
            Misbehavior::InvalidCookie => "invalid_cookie",
            Misbehavior::NoCommonSuite => "no_common_suite",
            Misbehavior::UnexpectedMessage => "unexpected_message",
            Misbehavior::WeakKey => "weak_key",
            Misbehavior::WrongSession => "wrong_session",
            Misbehavior::Datagram(e) => e.code(),
            Misbehavior::Replay => "replay",
            Misbehavior::MacInvalid => "mac_invalid",
            Misbehavior::Control(e) => e.code(),
        }
    }

    /// The digest §16 stable reason code, where one exists.
    pub fn fcp_reason(&self) -> Option<&'static str> {
        Some(match self {
            Misbehavior::MacInvalid => "FCP_ERR_MAC_INVALID",
            Misbehavior::Replay | Misbehavior::ReplayedHello => "FCP_ERR_REPLAY",
            Misbehavior::Control(FcpcError::AeadInvalid) => "FCP_ERR_AEAD_INVALID",
            Misbehavior::Control(FcpcError::SeqNotIncreasing { .. }) => "FCP_ERR_REPLAY",
            Misbehavior::Control(FcpcError::InvalidFlags(_)) => "FCP_ERR_BAD_FLAGS",
            Misbehavior::Control(FcpcError::UnsupportedVersion(_)) => "FCP_ERR_UNSUPPORTED_VERSION",
            _ => return None,
        })
    }
}

impl fmt::Display for Misbehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehavior::Malformed(kind, why) => write!(f, "malformed {kind:?}: {why}"),
            Misbehavior::StaleTimestamp { timestamp, now } => {
                write!(f, "timestamp {timestamp} is too far from now ({now})")
            }
            Misbehavior::Datagram(e) => write!(f, "datagram: {e}"),
            Misbehavior::Control(e) => write!(f, "control frame: {e}"),
            other => f.write_str(&other.code().replace('_', " ")),
        }
    }
}

/// Every failure of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer sent something it must not (blame: peer).
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(Misbehavior),
    /// A payload too large to send under the session's limits (blame: local).
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The send sequence space is used up; rekey (blame: local).
    #[error("send sequence exhausted")]
    SeqExhausted,
}

impl SessionError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::PeerMisbehaved(m) => m.code(),
            SessionError::PayloadTooLarge { .. } => "payload_too_large",
            SessionError::SeqExhausted => "seq_exhausted",
        }
    }

    /// Who caused it.
    pub fn blame(&self) -> Blame {
        match self {
            SessionError::PeerMisbehaved(_) => Blame::Peer,
            SessionError::PayloadTooLarge { .. } | SessionError::SeqExhausted => Blame::Local,
        }
    }

    /// The misbehavior, when the peer is at fault.
    pub fn misbehavior(&self) -> Option<Misbehavior> {
        match self {
            SessionError::PeerMisbehaved(m) => Some(*m),
            _ => None,
        }
    }
}

impl From<Misbehavior> for SessionError {
    fn from(m: Misbehavior) -> Self {
        SessionError::PeerMisbehaved(m)
    }
}
