//! An established session (digest §3.4, §3.5, §4): MAC'd FCPS datagrams with a replay
//! window, and FCPC control frames with strictly increasing seqs, per direction.

use super::keys::{session_mac, verify_session_mac, SessionKeys};
use super::replay::ReplayWindow;
use super::{Direction, Misbehavior, SessionError, SessionId, Suite};
use crate::fcpc::{self, FcpcFlags, SeqGuard, DEFAULT_MAX_PAYLOAD_LEN};
use crate::fcps::datagram::{Datagram, DEFAULT_MAX_DATAGRAM_BYTES};
use crate::id::CanonicalId;

/// Rekey after this many datagrams sent (digest §3.5 SessionReplayPolicy).
pub const REKEY_AFTER_FRAMES: u64 = 1_000_000_000;
/// Rekey after this many seconds.
pub const REKEY_AFTER_SECONDS: u64 = 86_400;
/// Rekey after this many bytes sent (1 TiB).
pub const REKEY_AFTER_BYTES: u64 = 1 << 40;

/// Which side of the handshake this node played.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the hello.
    Initiator,
    /// Sent the ack.
    Responder,
}

impl Role {
    /// The direction of what this side sends.
    pub const fn send_direction(self) -> Direction {
        match self {
            Role::Initiator => Direction::InitiatorToResponder,
            Role::Responder => Direction::ResponderToInitiator,
        }
    }

    /// The direction of what this side receives.
    pub const fn recv_direction(self) -> Direction {
        self.send_direction().reverse()
    }
}

/// One side of an established session. Built only by a completed handshake.
#[derive(Debug)]
pub struct Session {
    role: Role,
    id: SessionId,
    suite: Suite,
    local: CanonicalId,
    peer: CanonicalId,
    keys: SessionKeys,
    max_datagram_bytes: usize,
    established_at: u64,
    next_seq: u64,
    window: ReplayWindow,
    next_control_seq: u64,
    control_guard: SeqGuard,
    frames_sent: u64,
    bytes_sent: u64,
}

/// What [`Session`] is built from.
pub(crate) struct SessionParams {
    pub(crate) role: Role,
    pub(crate) id: SessionId,
    pub(crate) suite: Suite,
    pub(crate) local: CanonicalId,
    pub(crate) peer: CanonicalId,
    pub(crate) keys: SessionKeys,
    pub(crate) transport_limits: Option<u16>,
    pub(crate) now: u64,
}

impl Session {
    pub(crate) fn new(p: SessionParams) -> Session {
        // 0 or absent means the default (digest §3.1).
        let max_datagram_bytes = match p.transport_limits {
            None | Some(0) => DEFAULT_MAX_DATAGRAM_BYTES,
            Some(n) => usize::from(n),
        };
        Session {
            role: p.role,
            id: p.id,
            suite: p.suite,
            local: p.local,
            peer: p.peer,
            keys: p.keys,
            max_datagram_bytes,
            established_at: p.now,
            next_seq: 1,
            window: ReplayWindow::default(),
            next_control_seq: 1,
            control_guard: SeqGuard::new(),
            frames_sent: 0,
            bytes_sent: 0,
        }
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The negotiated suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// This node's id.
    pub fn local(&self) -> &CanonicalId {
        &self.local
    }

    /// The peer's id.
    pub fn peer(&self) -> &CanonicalId {
        &self.peer
    }

    /// The session keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The datagram limit both directions use (the hello's `transport_limits`).
    pub fn max_datagram_bytes(&self) -> usize {
        self.max_datagram_bytes
    }

    /// When the handshake completed (unix seconds).
    pub fn established_at(&self) -> u64 {
        self.established_at
    }

    /// The seq the next datagram gets; build its FCPS frame with this `frame_seq`
    /// (digest §2.1).
    pub fn next_datagram_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the [`REKEY_AFTER_FRAMES`], [`REKEY_AFTER_BYTES`] or
    /// [`REKEY_AFTER_SECONDS`] budget is spent.
    pub fn needs_rekey(&self, now: u64) -> bool {
        self.frames_sent >= REKEY_AFTER_FRAMES
            || self.bytes_sent >= REKEY_AFTER_BYTES
            || now.saturating_sub(self.established_at) >= REKEY_AFTER_SECONDS
    }

    /// Wraps `frame` in a datagram with the next seq and the session MAC of this side's
    /// direction (digest §2.1, §3.4).
    pub fn seal_datagram(&mut self, frame: &[u8]) -> Result<Vec<u8>, SessionError> {
        let len = frame.len().saturating_add(crate::fcps::DATAGRAM_HEADER_LEN);
        if len > self.max_datagram_bytes {
            return Err(SessionError::PayloadTooLarge { len, max: self.max_datagram_bytes });
        }
        let seq = self.next_seq;
        let next = seq.checked_add(1).ok_or(SessionError::SeqExhausted)?;
        let dir = self.role.send_direction();
        let mac = session_mac(self.suite, self.keys.mac_key(dir), &self.id, dir, seq, frame);
        let out = Datagram { session_id: self.id.0, seq, mac, frame }.encode();
        self.next_seq = next;
        self.frames_sent += 1;
        self.bytes_sent = self.bytes_sent.saturating_add(out.len() as u64);
        Ok(out)
    }

    /// Accepts a datagram from the peer: envelope, session id, replay window check,
    /// MAC, then window update (digest §3.5). Returns the authenticated envelope; the
    /// frame still goes through `FrameView::parse` and admission.
    pub fn open_datagram<'a>(&mut self, bytes: &'a [u8]) -> Result<Datagram<'a>, SessionError> {
        let d = Datagram::decode(bytes, self.max_datagram_bytes).map_err(Misbehavior::Datagram)?;
        if d.session_id != self.id.0 {
            return Err(Misbehavior::WrongSession.into());
        }
        self.window.check(d.seq)?;
        let dir = self.role.recv_direction();
        if !verify_session_mac(self.suite, self.keys.mac_key(dir), &self.id, dir, d.seq, d.frame, &d.mac) {
            return Err(Misbehavior::MacInvalid.into());
        }
        self.window.update(d.seq);
        Ok(d)
    }

    /// Seals a control-plane payload as an FCPC frame with the next control seq
    /// (digest §4).
    pub fn seal_control(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SessionError> {
        if plaintext.len() > DEFAULT_MAX_PAYLOAD_LEN {
            return Err(SessionError::PayloadTooLarge { len: plaintext.len(), max: DEFAULT_MAX_PAYLOAD_LEN });
        }
        let seq = self.next_control_seq;
        let next = seq.checked_add(1).ok_or(SessionError::SeqExhausted)?;
        let frame =
            fcpc::seal(self.keys.k_ctx(), self.role.send_direction(), &self.id.0, seq, FcpcFlags::empty(), plaintext)
                .map_err(|_| SessionError::PayloadTooLarge { len: plaintext.len(), max: DEFAULT_MAX_PAYLOAD_LEN })?;
        self.next_control_seq = next;
        Ok(frame)
    }

    /// Opens an FCPC frame from the peer: the §4 rules, this session's id, and a seq
    /// above the last accepted one.
    pub fn open_control(&mut self, frame: &[u8]) -> Result<Vec<u8>, SessionError> {
        let opened = fcpc::open(self.keys.k_ctx(), self.role.recv_direction(), frame, DEFAULT_MAX_PAYLOAD_LEN)
            .map_err(Misbehavior::Control)?;
        if opened.session_id != self.id.0 {
            return Err(Misbehavior::WrongSession.into());
        }
        self.control_guard.accept(opened.seq).map_err(Misbehavior::Control)?;
        Ok(opened.plaintext)
    }
}
