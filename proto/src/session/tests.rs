//! The `Pair` harness: an initiator and a responder on one simulated clock, with a
//! seeded RNG, exchanging bytes in memory. Whole handshakes and sessions run without a
//! socket, deterministically.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::fcps::{FcpsFrame, FrameFlags, FrameHeader, FrameView, SymbolRecord};
use crate::id::{CanonicalId, EpochId, ObjectId};
use crate::keys::NodeSigningKey;

const T0: u64 = 1_704_067_200;

fn id(s: &str) -> CanonicalId {
    CanonicalId::new(s).expect("canonical id")
}

fn code<T>(r: Result<T, SessionError>) -> &'static str {
    r.map_or_else(|e| e.code(), |_| "ok")
}

struct Pair {
    now: u64,
    rng: ChaCha20Rng,
    initiator: Initiator,
    responder: Responder,
    /// Everything put on the wire so far, for replay and tamper tests.
    wire: Vec<Vec<u8>>,
}

struct Setup {
    seed: u64,
    initiator: InitiatorConfig,
    responder: ResponderConfig,
    /// Whom the initiator addresses.
    to: &'static str,
    /// Whether the initiator holds the responder's real key.
    right_responder_key: bool,
    /// Whether the responder knows the initiator.
    responder_knows_initiator: bool,
    /// Initiator clock minus responder clock, seconds.
    initiator_skew: i64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            seed: 7,
            initiator: InitiatorConfig::default(),
            responder: ResponderConfig::default(),
            to: "node-b",
            right_responder_key: true,
            responder_knows_initiator: true,
            initiator_skew: 0,
        }
    }
}

impl Pair {
    fn seeded(seed: u64) -> Pair {
        Pair::new(Setup { seed, ..Setup::default() })
    }

    fn new(s: Setup) -> Pair {
        let mut rng = ChaCha20Rng::seed_from_u64(s.seed);
        let a = LocalIdentity::new(id("node-a"), NodeSigningKey::generate(&mut rng));
        let b = LocalIdentity::new(id("node-b"), NodeSigningKey::generate(&mut rng));
        let stranger = NodeSigningKey::generate(&mut rng).public();
        let mut cookie = [0u8; 32];
        rng.fill_bytes(&mut cookie);
        let b_key = if s.right_responder_key { b.public_key() } else { stranger };
        let mut responder = Responder::new(b, s.responder, CookieKey::from_bytes(cookie));
        if s.responder_knows_initiator {
            responder.trust_peer(a.node_id().clone(), a.public_key());
        }
        let start = T0.checked_add_signed(s.initiator_skew).expect("clock in range");
        let initiator = Initiator::start(a, id(s.to), b_key, s.initiator, start, &mut rng);
        Pair { now: T0, rng, initiator, responder, wire: Vec::new() }
    }

    fn advance(&mut self, secs: u64) {
        self.now += secs;
    }

    /// Delivers everything the initiator has queued; returns each verdict.
    fn deliver_to_responder(&mut self) -> Vec<Result<(), SessionError>> {
        let mut out = Vec::new();
        while let Some(bytes) = self.initiator.poll_transmit() {
            self.wire.push(bytes.clone());
            out.push(self.responder.handle(self.now, &bytes, &mut self.rng));
        }
        out
    }

    /// Delivers everything the responder has queued for node-a.
    fn deliver_to_initiator(&mut self) -> Vec<Result<(), SessionError>> {
        let mut out = Vec::new();
        while let Some(t) = self.responder.poll_transmit() {
            assert_eq!(t.to, id("node-a"));
            self.wire.push(t.payload.clone());
            out.push(self.initiator.handle(self.now, &t.payload));
        }
        out
    }

    /// Ping-pong until both sides are quiet; the first error stops it.
    fn run(&mut self) -> Result<(), SessionError> {
        for _ in 0..8 {
            let a = self.deliver_to_responder();
            let b = self.deliver_to_initiator();
            if let Some(e) = a.into_iter().chain(b).find_map(Result::err) {
                return Err(e);
            }
            if self.initiator.is_established() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn sessions(&mut self) -> (Session, Session) {
        self.run().expect("handshake completes");
        let i = self.initiator.take_session().expect("initiator session");
        let r = self.responder.poll_session().expect("responder session");
        (i, r)
    }
}

fn same_keys(a: &Session, b: &Session) -> bool {
    a.keys().k_mac_i2r().as_bytes() == b.keys().k_mac_i2r().as_bytes()
        && a.keys().k_mac_r2i().as_bytes() == b.keys().k_mac_r2i().as_bytes()
        && a.keys().k_ctx().as_bytes() == b.keys().k_ctx().as_bytes()
}

#[test]
fn full_handshake_gives_both_sides_the_same_session() {
    let mut p = Pair::seeded(1);
    let (i, r) = p.sessions();
    assert_eq!((i.role(), r.role()), (Role::Initiator, Role::Responder));
    assert_eq!(i.id(), r.id());
    assert_eq!((i.suite(), r.suite()), (Suite::Suite2, Suite::Suite2));
    assert_eq!((i.peer(), r.peer()), (&id("node-b"), &id("node-a")));
    assert!(same_keys(&i, &r));
    assert_ne!(i.keys().k_mac_i2r().as_bytes(), i.keys().k_mac_r2i().as_bytes());
    assert_eq!(i.max_datagram_bytes(), 1200);
    assert_eq!(p.wire.len(), 2, "hello and ack only");
    // The same seed replays the same handshake byte for byte.
    let mut q = Pair::seeded(1);
    q.run().expect("handshake");
    assert_eq!(p.wire, q.wire);
    let mut other = Pair::seeded(2);
    other.run().expect("handshake");
    assert_ne!(p.wire, other.wire);
}

#[test]
fn responder_preference_and_the_suite_byte_in_the_keys() {
    let mut p = Pair::new(Setup {
        initiator: InitiatorConfig { suites: vec![Suite::Suite1, Suite::Suite2], ..InitiatorConfig::default() },
        responder: ResponderConfig { suites: vec![Suite::Suite1, Suite::Suite2], ..ResponderConfig::default() },
        ..Setup::default()
    });
    let (i, r) = p.sessions();
    assert_eq!((i.suite(), r.suite()), (Suite::Suite1, Suite::Suite1));
    let mut p = Pair::new(Setup {
        initiator: InitiatorConfig { suites: vec![Suite::Suite2], ..InitiatorConfig::default() },
        responder: ResponderConfig { suites: vec![Suite::Suite1], ..ResponderConfig::default() },
        ..Setup::default()
    });
    assert_eq!(code(p.run()), "no_common_suite");
    assert_eq!(p.run().map_err(|e| e.blame()), Ok(()), "nothing left to deliver");
}

#[test]
fn cookie_round_then_ack() {
    let mut p = Pair::new(Setup {
        responder: ResponderConfig { require_cookie: true, ..ResponderConfig::default() },
        ..Setup::default()
    });
    let (i, r) = p.sessions();
    assert!(same_keys(&i, &r));
    assert_eq!(p.wire.len(), 4, "hello, retry, hello with cookie, ack");
    let retry = MeshSessionHelloRetry::decode(&p.wire[1]).expect("retry");
    let second = MeshSessionHello::decode(&p.wire[2]).expect("hello");
    assert_eq!(second.cookie, Some(retry.cookie));
    assert_eq!(second.timestamp, T0, "the cookie covers the original timestamp");
}

#[test]
fn forged_cookie_is_rejected_and_rotation_keeps_a_grace_key() {
    let mut p = Pair::new(Setup {
        responder: ResponderConfig { require_cookie: true, ..ResponderConfig::default() },
        ..Setup::default()
    });
    assert_eq!(p.deliver_to_responder(), vec![Ok(())]);
    assert_eq!(p.deliver_to_initiator(), vec![Ok(())]);
    let mut hello = p.initiator.hello().clone();
    let real = hello.cookie.expect("cookie echoed");
    hello.cookie = Some([0x42; 32]);
    assert_eq!(code(p.responder.handle(p.now, &hello.encode(), &mut p.rng)), "invalid_cookie");
    hello.cookie = Some(real);
    p.responder.rotate_cookie_key(CookieKey::from_bytes([9; 32]));
    p.responder.rotate_cookie_key(CookieKey::from_bytes([8; 32]));
    assert_eq!(code(p.responder.handle(p.now, &hello.encode(), &mut p.rng)), "invalid_cookie", "two rotations later");
}

#[test]
fn wrong_peer() {
    let mut p = Pair::new(Setup { to: "node-c", ..Setup::default() });
    assert_eq!(code(p.run()), "wrong_recipient");
    let mut p = Pair::new(Setup { responder_knows_initiator: false, ..Setup::default() });
    assert_eq!(code(p.run()), "unknown_peer");
    let mut p = Pair::new(Setup { right_responder_key: false, ..Setup::default() });
    let err = p.run().expect_err("an ack signed by another key");
    assert_eq!((err.code(), err.blame()), ("invalid_signature", Blame::Peer));
    assert!(!p.initiator.is_established());
}

#[test]
fn stale_timestamps() {
    let mut p = Pair::new(Setup { initiator_skew: -121, ..Setup::default() });
    assert_eq!(code(p.run()), "stale_timestamp");
    let mut p = Pair::new(Setup { initiator_skew: 121, ..Setup::default() });
    assert_eq!(code(p.run()), "stale_timestamp");
    let mut p = Pair::new(Setup { initiator_skew: -120, ..Setup::default() });
    assert_eq!(code(p.run()), "ok", "120 s of skew is allowed");
    // An ack that arrives more than 120 s after it was made.
    let mut p = Pair::seeded(3);
    assert_eq!(p.deliver_to_responder(), vec![Ok(())]);
    p.advance(121);
    assert_eq!(p.deliver_to_initiator().into_iter().map(code).collect::<Vec<_>>(), ["stale_timestamp"]);
}

#[test]
fn replayed_hello_is_refused() {
    let mut p = Pair::seeded(4);
    p.run().expect("handshake");
    let hello = p.wire[0].clone();
    let err = p.responder.handle(p.now, &hello, &mut p.rng).expect_err("replay");
    assert_eq!(err.misbehavior(), Some(Misbehavior::ReplayedHello));
    assert_eq!(err.misbehavior().and_then(|m| m.fcp_reason()), Some("FCP_ERR_REPLAY"));
    assert!(p.responder.poll_session().is_some(), "only the first hello made a session");
    assert!(p.responder.poll_session().is_none());
}

#[test]
fn tampered_signatures() {
    let mut p = Pair::seeded(5);
    let mut hello = MeshSessionHello::decode(&p.initiator.poll_transmit().expect("hello")).expect("decodes");
    let genuine = hello.encode();
    if let Some(sig) = hello.signature.as_mut() {
        sig[10] ^= 0x01;
    }
    assert_eq!(code(p.responder.handle(p.now, &hello.encode(), &mut p.rng)), "invalid_signature");
    hello.signature = None;
    assert_eq!(code(p.responder.handle(p.now, &hello.encode(), &mut p.rng)), "missing_signature");
    // A rejected hello leaves no trace: the genuine one is still accepted.
    assert_eq!(p.responder.handle(p.now, &genuine, &mut p.rng), Ok(()));
    let ack = p.responder.poll_transmit().expect("ack").payload;
    let mut forged = MeshSessionAck::decode(&ack).expect("ack decodes");
    if let Some(sig) = forged.signature.as_mut() {
        sig[63] ^= 0x80;
    }
    assert_eq!(code(p.initiator.handle(p.now, &forged.encode())), "invalid_signature");
    forged.signature = MeshSessionAck::decode(&ack).expect("ack").signature;
    forged.session_id.0[0] ^= 1;
    assert_eq!(code(p.initiator.handle(p.now, &forged.encode())), "invalid_signature");
    assert_eq!(p.initiator.handle(p.now, &ack), Ok(()), "the genuine ack still completes the handshake");
    assert_eq!(code(p.initiator.handle(p.now, &ack)), "unexpected_message");
}

#[test]
fn malformed_bytes_are_the_peers_fault() {
    let mut p = Pair::seeded(6);
    let err = p.responder.handle(p.now, &[0xa0], &mut p.rng).expect_err("empty map");
    assert_eq!((err.code(), err.blame()), ("malformed", Blame::Peer));
    assert_eq!(code(p.initiator.handle(p.now, b"\xff")), "malformed");
}

fn frame_for(session: &Session, payload: u8) -> Vec<u8> {
    let header = FrameHeader {
        flags: FrameFlags::DEFAULT,
        object_id: ObjectId([payload; 32]),
        symbol_size: 256,
        zone_key_id: [1; 8],
        zone_id_hash: [2; 32],
        epoch_id: EpochId(3),
        sender_instance_id: 4,
        frame_seq: session.next_datagram_seq(),
    };
    let rec = SymbolRecord { esi: 0, k: 1, data: vec![payload; 256], auth_tag: [0; 16] };
    FcpsFrame::new(header, vec![rec]).expect("frame").encode()
}

#[test]
fn macd_datagrams_both_ways_with_replay_rejection() {
    let mut p = Pair::seeded(8);
    let (mut i, mut r) = p.sessions();

    let d1 = i.seal_datagram(&frame_for(&i, 1)).expect("seal");
    let got = r.open_datagram(&d1).expect("open");
    assert_eq!(got.seq, 1);
    let view = FrameView::parse(got.frame).expect("frame");
    crate::fcps::admit(&got, &view, &crate::fcps::AdmissionLimits::default()).expect("admitted");

    let back = r.seal_datagram(&frame_for(&r, 2)).expect("seal");
    assert_eq!(i.open_datagram(&back).map(|d| d.seq), Ok(1));

    // Replay, reflection, tampering and foreign sessions are all rejected…
    assert_eq!(code(r.open_datagram(&d1)), "replay");
    let d2 = i.seal_datagram(&frame_for(&i, 3)).expect("seal");
    assert_eq!(code(i.open_datagram(&d2)), "mac_invalid", "a reflected datagram has the wrong direction");
    let mut bad = d2.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(code(r.open_datagram(&bad)), "mac_invalid");
    let mut foreign = d2.clone();
    foreign[0] ^= 1;
    assert_eq!(code(r.open_datagram(&foreign)), "wrong_session");
    assert_eq!(code(r.open_datagram(&d2[..39])), "too_short");
    // …and a forgery does not move the window: the genuine datagram still opens.
    assert_eq!(r.open_datagram(&d2).map(|d| d.seq), Ok(2));

    // Reordering inside the window is fine; older than 128 behind is not.
    let held = i.seal_datagram(&[]).expect("seal");
    let mut last_seq = 0;
    for _ in 0..130 {
        let d = i.seal_datagram(&[]).expect("seal");
        last_seq = r.open_datagram(&d).expect("in order").seq;
    }
    assert_eq!(last_seq, 133);
    assert_eq!(code(r.open_datagram(&held)), "replay", "seq 3 is 130 behind");
    let err = r.open_datagram(&held).expect_err("replay");
    assert_eq!(err.misbehavior().and_then(|m| m.fcp_reason()), Some("FCP_ERR_REPLAY"));

    // Too large to send is a local error.
    let err = i.seal_datagram(&vec![0; 1161]).expect_err("too large");
    assert_eq!((err.code(), err.blame()), ("payload_too_large", Blame::Local));
}

#[test]
fn control_frames_both_ways() {
    let mut p = Pair::seeded(9);
    let (mut i, mut r) = p.sessions();
    let c1 = i.seal_control(b"invoke").expect("seal");
    assert_eq!(r.open_control(&c1).as_deref(), Ok(&b"invoke"[..]));
    assert_eq!(code(r.open_control(&c1)), "seq_not_increasing");
    let c2 = r.seal_control(b"response").expect("seal");
    assert_eq!(code(r.open_control(&c2)), "aead_invalid", "own frames do not open in the receive direction");
    assert_eq!(i.open_control(&c2).as_deref(), Ok(&b"response"[..]));
}

#[test]
fn transport_limits_set_the_datagram_limit() {
    let mut p = Pair::new(Setup {
        initiator: InitiatorConfig { transport_limits: Some(1400), ..InitiatorConfig::default() },
        ..Setup::default()
    });
    let (i, r) = p.sessions();
    assert_eq!((i.max_datagram_bytes(), r.max_datagram_bytes()), (1400, 1400));
    let mut p = Pair::new(Setup {
        initiator: InitiatorConfig { transport_limits: Some(0), ..InitiatorConfig::default() },
        ..Setup::default()
    });
    let (i, _) = p.sessions();
    assert_eq!(i.max_datagram_bytes(), 1200, "0 means the default");
    assert!(!i.needs_rekey(T0 + 86_399));
    assert!(i.needs_rekey(T0 + 86_400));
}

#[test]
fn debug_output_holds_no_secrets() {
    let mut p = Pair::seeded(10);
    let (i, _) = p.sessions();
    let text = format!("{i:?} {:?} {:?}", p.initiator, p.responder);
    for secret in [i.keys().k_mac_i2r().as_bytes(), i.keys().k_mac_r2i().as_bytes(), i.keys().k_ctx().as_bytes()] {
        assert!(!text.contains(&hex::encode(secret)));
    }
    assert!(text.contains("SessionKeys(..)"));
}
