//! The sans-IO handshake (digest §3.1–§3.3): an [`Initiator`] and a [`Responder`]
//! driven by the caller.
//!
//! The caller feeds received bytes with `handle(now, bytes, …)` and sends whatever
//! `poll_transmit()` returns; time (unix seconds) and randomness are arguments, so two
//! endpoints run deterministically on a simulated clock.
//!
//! ```text
//! initiator                                  responder
//!   hello{eph, nonce, ts, suites, sig}  ──►  decode, to == us, known peer, |ts−now| ≤ 120,
//!                                            [cookie round], (from, nonce) unseen, signature,
//!                                            negotiate suite
//!                 ◄──  [HelloRetry{cookie}]  (when cookies are required and none was sent)
//!   hello{…, cookie, sig'}              ──►
//!                 ◄──  ack{eph, nonce, session_id, suite, ts, sig}
//!   ack checks, |ts−now| ≤ 120, X25519, recipe A → Session      recipe A → Session
//! ```
//!
//! A failed `handle` leaves the endpoint as it was: a forged or broken message cannot
//! end a handshake that a genuine reply can still complete.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use rand_core::{CryptoRng, RngCore};

use super::established::{Role, Session, SessionParams};
use super::keys::{derive_session_keys, EphemeralKey};
use super::message::{CookieKey, HandshakeMessage, MeshSessionAck, MeshSessionHello, MeshSessionHelloRetry};
use super::replay::{HelloReplayCache, DEFAULT_HELLO_REPLAY_CAPACITY};
use super::{negotiate, Misbehavior, SessionError, SessionId, Suite, NONCE_LEN, SESSION_ID_LEN};
use crate::id::CanonicalId;
use crate::keys::{NodeSigningKey, NodeSigningPublicKey};

/// Allowed clock skew for hello and ack timestamps (digest §3.2 TimePolicy).
pub const DEFAULT_MAX_SKEW_SECS: u64 = 120;

/// This node's id and its attested signing key (digest §10.1). Debug shows the public
/// key only.
pub struct LocalIdentity {
    node_id: CanonicalId,
    signing_key: NodeSigningKey,
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("node_id", &self.node_id.as_str())
            .field("signing_key", &self.signing_key.public())
            .finish_non_exhaustive()
    }
}

impl LocalIdentity {
    /// Pairs a node id with its signing key (which zeroizes itself on drop).
    pub fn new(node_id: CanonicalId, signing_key: NodeSigningKey) -> LocalIdentity {
        LocalIdentity { node_id, signing_key }
    }

    /// The node id.
    pub fn node_id(&self) -> &CanonicalId {
        &self.node_id
    }

    /// The public signing key peers verify with.
    pub fn public_key(&self) -> NodeSigningPublicKey {
        self.signing_key.public()
    }
}

/// Initiator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorConfig {
    /// Suites to offer, in preference order.
    pub suites: Vec<Suite>,
    /// The datagram limit to announce; `None` leaves the field out.
    pub transport_limits: Option<u16>,
    /// Allowed `|ack.timestamp − now|`.
    pub max_skew_secs: u64,
}

impl Default for InitiatorConfig {
    fn default() -> Self {
        InitiatorConfig {
            suites: vec![Suite::Suite2, Suite::Suite1],
            transport_limits: None,
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        }
    }
}

/// Responder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Suites this node accepts, in its preference order (it picks; digest §3.2).
    pub suites: Vec<Suite>,
    /// Allowed `|hello.timestamp − now|`.
    pub max_skew_secs: u64,
    /// Answer a hello without a cookie with a HelloRetry instead of an ack.
    pub require_cookie: bool,
    /// How many accepted `(from, nonce)` pairs to remember.
    pub hello_replay_capacity: usize,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            suites: vec![Suite::Suite2, Suite::Suite1],
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            require_cookie: false,
            hello_replay_capacity: DEFAULT_HELLO_REPLAY_CAPACITY,
        }
    }
}

/// Bytes for the caller to send to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The recipient.
    pub to: CanonicalId,
    /// The encoded message.
    pub payload: Vec<u8>,
}

fn check_fresh(timestamp: u64, now: u64, max_skew_secs: u64) -> Result<(), SessionError> {
    if timestamp.abs_diff(now) > max_skew_secs {
        return Err(Misbehavior::StaleTimestamp { timestamp, now }.into());
    }
    Ok(())
}

fn random<const N: usize>(rng: &mut (impl RngCore + CryptoRng)) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InitiatorState {
    AwaitingReply { retried: bool },
    Established,
}

/// The initiating side of one handshake.
#[derive(Debug)]
pub struct Initiator {
    identity: LocalIdentity,
    peer_key: NodeSigningPublicKey,
    config: InitiatorConfig,
    eph: EphemeralKey,
    hello: MeshSessionHello,
    state: InitiatorState,
    outbox: VecDeque<Vec<u8>>,
    session: Option<Session>,
}

impl Initiator {
    /// Builds and signs a hello to `peer` (whose attested signing key is
    /// `peer_signing_key`) and queues it for [`Initiator::poll_transmit`].
    pub fn start(
        identity: LocalIdentity,
        peer: CanonicalId,
        peer_signing_key: NodeSigningPublicKey,
        config: InitiatorConfig,
        now: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Initiator {
        let eph = EphemeralKey::generate(rng);
        let mut hello = MeshSessionHello {
            from: identity.node_id.clone(),
            to: peer,
            eph_pubkey: eph.public_key(),
            nonce: random::<NONCE_LEN>(rng),
            cookie: None,
            timestamp: now,
            suites: config.suites.clone(),
            transport_limits: config.transport_limits,
            signature: None,
        };
        hello.sign(identity.signing_key.as_dalek());
        let outbox = VecDeque::from([hello.encode()]);
        Initiator {
            identity,
            peer_key: peer_signing_key,
            config,
            eph,
            hello,
            state: InitiatorState::AwaitingReply { retried: false },
            outbox,
            session: None,
        }
    }

    /// The hello as last sent.
    pub fn hello(&self) -> &MeshSessionHello {
        &self.hello
    }

    /// Handles the responder's reply: an ack completes the handshake, one HelloRetry
    /// re-sends the hello with the cookie. On error nothing changes.
    pub fn handle(&mut self, now: u64, bytes: &[u8]) -> Result<(), SessionError> {
        let InitiatorState::AwaitingReply { retried } = self.state else {
            return Err(Misbehavior::UnexpectedMessage.into());
        };
        match HandshakeMessage::decode(bytes)? {
            HandshakeMessage::Hello(_) => Err(Misbehavior::UnexpectedMessage.into()),
            HandshakeMessage::HelloRetry(retry) => self.on_retry(now, retried, retry),
            HandshakeMessage::Ack(ack) => self.on_ack(now, ack),
        }
    }

    fn on_retry(&mut self, now: u64, retried: bool, retry: MeshSessionHelloRetry) -> Result<(), SessionError> {
        if retried {
            return Err(Misbehavior::UnexpectedMessage.into());
        }
        if retry.from != self.hello.to || retry.to != self.hello.from {
            return Err(Misbehavior::PeerMismatch.into());
        }
        check_fresh(retry.timestamp, now, self.config.max_skew_secs)?;
        // The cookie covers the hello's fields, timestamp included: re-send the same
        // hello with the cookie, signed again (the transcript covers the cookie).
        self.hello.cookie = Some(retry.cookie);
        self.hello.sign(self.identity.signing_key.as_dalek());
        self.outbox.push_back(self.hello.encode());
        self.state = InitiatorState::AwaitingReply { retried: true };
        Ok(())
    }

    fn on_ack(&mut self, now: u64, ack: MeshSessionAck) -> Result<(), SessionError> {
        check_fresh(ack.timestamp, now, self.config.max_skew_secs)?;
        ack.verify(&self.hello, self.peer_key.as_dalek())?;
        let shared = self.eph.diffie_hellman(&ack.eph_pubkey)?;
        let keys = derive_session_keys(
            ack.suite,
            &ack.session_id,
            &shared,
            self.hello.from.as_str(),
            self.hello.to.as_str(),
            &self.hello.nonce,
            &ack.nonce,
        );
        self.session = Some(Session::new(SessionParams {
            role: Role::Initiator,
            id: ack.session_id,
            suite: ack.suite,
            local: self.hello.from.clone(),
            peer: self.hello.to.clone(),
            keys,
            transport_limits: self.hello.transport_limits,
            now,
        }));
        self.state = InitiatorState::Established;
        Ok(())
    }

    /// The next message to send to the responder.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Whether an ack completed the handshake.
    pub fn is_established(&self) -> bool {
        self.state == InitiatorState::Established
    }

    /// The established session, once.
    pub fn take_session(&mut self) -> Option<Session> {
        self.session.take()
    }
}

/// The responding side: accepts hellos from known peers, one session per hello.
#[derive(Debug)]
pub struct Responder {
    identity: LocalIdentity,
    config: ResponderConfig,
    peers: BTreeMap<CanonicalId, NodeSigningPublicKey>,
    cookie_key: CookieKey,
    previous_cookie_key: Option<CookieKey>,
    replay: HelloReplayCache,
    outbox: VecDeque<Transmit>,
    sessions: VecDeque<Session>,
}

impl Responder {
    /// A responder with no known peers yet.
    pub fn new(identity: LocalIdentity, config: ResponderConfig, cookie_key: CookieKey) -> Responder {
        let replay = HelloReplayCache::new(config.hello_replay_capacity);
        Responder {
            identity,
            config,
            peers: BTreeMap::new(),
            cookie_key,
            previous_cookie_key: None,
            replay,
            outbox: VecDeque::new(),
            sessions: VecDeque::new(),
        }
    }

    /// Records a peer's attested signing key; hellos from anyone else are refused.
    pub fn trust_peer(&mut self, node_id: CanonicalId, signing_key: NodeSigningPublicKey) {
        self.peers.insert(node_id, signing_key);
    }

    /// Installs a new cookie key; cookies of the previous key stay valid until the next
    /// rotation (the grace window \[S\] suggests, rotating about every 60 s).
    pub fn rotate_cookie_key(&mut self, key: CookieKey) {
        self.previous_cookie_key = Some(std::mem::replace(&mut self.cookie_key, key));
    }

    fn cookie_valid(&self, hello: &MeshSessionHello, cookie: &[u8; 32]) -> bool {
        self.cookie_key.verify(hello, cookie)
            || self.previous_cookie_key.as_ref().is_some_and(|k| k.verify(hello, cookie))
    }

    /// Handles a hello. In order: strict decode, addressed to us, known peer, fresh
    /// timestamp, cookie round (a retry when required and absent; an invalid cookie is
    /// an error), unseen `(from, nonce)`, signature, suite negotiation. Then it queues
    /// the signed ack and the new [`Session`]. On error nothing changes.
    pub fn handle(&mut self, now: u64, bytes: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Result<(), SessionError> {
        let hello = MeshSessionHello::decode(bytes)?;
        if hello.to != self.identity.node_id {
            return Err(Misbehavior::WrongRecipient.into());
        }
        let peer_key = *self.peers.get(&hello.from).ok_or(Misbehavior::UnknownPeer)?;
        check_fresh(hello.timestamp, now, self.config.max_skew_secs)?;
        match &hello.cookie {
            None if self.config.require_cookie => {
                let retry = MeshSessionHelloRetry {
                    from: self.identity.node_id.clone(),
                    to: hello.from.clone(),
                    cookie: self.cookie_key.cookie(&hello),
                    timestamp: now,
                };
                self.outbox.push_back(Transmit { to: hello.from, payload: retry.encode() });
                return Ok(());
            }
            Some(c) if !self.cookie_valid(&hello, c) => return Err(Misbehavior::InvalidCookie.into()),
            _ => {}
        }
        if self.replay.contains(&hello.from, &hello.nonce) {
            return Err(Misbehavior::ReplayedHello.into());
        }
        hello.verify(peer_key.as_dalek())?;
        let suite = negotiate(&hello.suites, &self.config.suites).ok_or(Misbehavior::NoCommonSuite)?;

        let eph = EphemeralKey::generate(rng);
        let shared = eph.diffie_hellman(&hello.eph_pubkey)?;
        let mut ack = MeshSessionAck {
            from: self.identity.node_id.clone(),
            to: hello.from.clone(),
            eph_pubkey: eph.public_key(),
            nonce: random::<NONCE_LEN>(rng),
            session_id: SessionId(random::<SESSION_ID_LEN>(rng)),
            suite,
            timestamp: now,
            signature: None,
        };
        ack.sign(&hello, self.identity.signing_key.as_dalek());
        let keys = derive_session_keys(
            suite,
            &ack.session_id,
            &shared,
            hello.from.as_str(),
            self.identity.node_id.as_str(),
            &hello.nonce,
            &ack.nonce,
        );
        self.replay.insert(hello.from.clone(), hello.nonce);
        self.sessions.push_back(Session::new(SessionParams {
            role: Role::Responder,
            id: ack.session_id,
            suite,
            local: self.identity.node_id.clone(),
            peer: hello.from.clone(),
            keys,
            transport_limits: hello.transport_limits,
            now,
        }));
        self.outbox.push_back(Transmit { to: hello.from, payload: ack.encode() });
        Ok(())
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next newly established session.
    pub fn poll_session(&mut self) -> Option<Session> {
        self.sessions.pop_front()
    }
}
