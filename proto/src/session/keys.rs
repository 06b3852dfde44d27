//! Session keys (digest §3.3, recipe A) and the per-datagram session MAC (§3.4).
//!
//! - `shared = X25519(initiator_eph_sk, responder_eph_pk)`.
//! - `info = "FCP2-SESSION-V1" || u8(suite) || lp32(initiator) || lp32(responder) ||
//!   hello_nonce || ack_nonce`.
//! - `OKM = HKDF-SHA256(salt = session_id, ikm = shared, info, L = 96)`, one extract and
//!   expand; `k_mac_i2r = OKM[0:32]`, `k_mac_r2i = OKM[32:64]`, `k_ctx = OKM[64:96]`.
//! - `mac = MAC(k_mac_dir, session_id || u8(direction) || u64le(seq) || frame)[0:16]`
//!   with HMAC-SHA256 (suite 1) or BLAKE3-keyed (suite 2).

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{Direction, Misbehavior, SessionError, SessionId, Suite, NONCE_LEN};
use crate::fcpc::ContextKey;
use crate::fcps::datagram::MAC_LEN;

/// Domain string of the key schedule info.
pub const SESSION_INFO_DOMAIN: &[u8] = b"FCP2-SESSION-V1";
/// HKDF output length: three 32-byte keys.
pub const OKM_LEN: usize = 96;

/// An X25519 ephemeral secret. Zeroized on drop; Debug shows the public key only.
pub struct EphemeralKey(StaticSecret);

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EphemeralKey(public {})", hex::encode(self.public_key()))
    }
}

impl EphemeralKey {
    /// A fresh key from the caller's RNG.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> EphemeralKey {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        EphemeralKey(StaticSecret::from(*b))
    }

    /// A key from fixed bytes (test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> EphemeralKey {
        EphemeralKey(StaticSecret::from(bytes))
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// `X25519(self, peer)`. A non-contributory result (the peer sent a low-order point)
    /// is the peer's fault: [`Misbehavior::WeakKey`].
    pub fn diffie_hellman(&self, peer_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, SessionError> {
        let shared = self.0.diffie_hellman(&PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(Misbehavior::WeakKey.into());
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

/// A 32-byte session MAC key. Zeroized on drop; Debug prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MacKey([u8; 32]);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MacKey {
        MacKey(bytes)
    }

    /// The key bytes, for conformance checks and key export.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The three keys of a session. Zeroized on drop; Debug prints nothing of them.
#[derive(Clone)]
pub struct SessionKeys {
    k_mac_i2r: MacKey,
    k_mac_r2i: MacKey,
    k_ctx: ContextKey,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// The initiator → responder MAC key.
    pub fn k_mac_i2r(&self) -> &MacKey {
        &self.k_mac_i2r
    }

    /// The responder → initiator MAC key.
    pub fn k_mac_r2i(&self) -> &MacKey {
        &self.k_mac_r2i
    }

    /// The FCPC key.
    pub fn k_ctx(&self) -> &ContextKey {
        &self.k_ctx
    }

    /// The MAC key of one direction.
    pub fn mac_key(&self, direction: Direction) -> &MacKey {
        match direction {
            Direction::InitiatorToResponder => &self.k_mac_i2r,
            Direction::ResponderToInitiator => &self.k_mac_r2i,
        }
    }
}

fn put_lp32(out: &mut Vec<u8>, s: &str) {
    // Node ids are canonical ids, at most 128 bytes (digest §1.5).
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `"FCP2-SESSION-V1" || u8(suite) || lp32(initiator) || lp32(responder) || hello_nonce ||
/// ack_nonce`.
pub fn key_schedule_info(
    suite: Suite,
    initiator_node_id: &str,
    responder_node_id: &str,
    hello_nonce: &[u8; NONCE_LEN],
    ack_nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let mut info = Vec::with_capacity(SESSION_INFO_DOMAIN.len() + 1 + 8 + 64 + 2 * NONCE_LEN);
    info.extend_from_slice(SESSION_INFO_DOMAIN);
    info.push(suite.id());
    put_lp32(&mut info, initiator_node_id);
    put_lp32(&mut info, responder_node_id);
    info.extend_from_slice(hello_nonce);
    info.extend_from_slice(ack_nonce);
    info
}

/// Recipe A (digest §3.3): one HKDF-SHA256 extract and expand to 96 bytes, split into
/// `k_mac_i2r`, `k_mac_r2i`, `k_ctx`. The suite byte in `info` is the negotiated suite.
pub fn derive_session_keys(
    suite: Suite,
    session_id: &SessionId,
    shared_secret: &[u8; 32],
    initiator_node_id: &str,
    responder_node_id: &str,
    hello_nonce: &[u8; NONCE_LEN],
    ack_nonce: &[u8; NONCE_LEN],
) -> SessionKeys {
    let info = key_schedule_info(suite, initiator_node_id, responder_node_id, hello_nonce, ack_nonce);
    let hk = Hkdf::<Sha256>::new(Some(&session_id.0), shared_secret);
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    hk.expand(&info, okm.as_mut()).expect("invariant: 96 bytes is a valid HKDF-SHA256 output length");
    let split =
        |at: usize| -> [u8; 32] { okm[at..at + 32].try_into().expect("invariant: 32-byte slice of a 96-byte OKM") };
    SessionKeys { k_mac_i2r: MacKey(split(0)), k_mac_r2i: MacKey(split(32)), k_ctx: ContextKey::from_bytes(split(64)) }
}

/// `session_id || u8(direction) || u64le(seq) || frame`.
pub fn mac_input(session_id: &SessionId, direction: Direction, seq: u64, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(25 + frame.len());
    out.extend_from_slice(&session_id.0);
    out.push(direction.to_u8());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(frame);
    out
}

/// The 16-byte session MAC (digest §3.4). The key is used as given; in a session it is
/// the [`SessionKeys::mac_key`] of `direction`.
pub fn session_mac(
    suite: Suite,
    key: &MacKey,
    session_id: &SessionId,
    direction: Direction,
    seq: u64,
    frame: &[u8],
) -> [u8; MAC_LEN] {
    let head = {
        let mut h = [0u8; 25];
        h[..16].copy_from_slice(&session_id.0);
        h[16] = direction.to_u8();
        h[17..].copy_from_slice(&seq.to_le_bytes());
        h
    };
    let mut out = [0u8; MAC_LEN];
    match suite {
        Suite::Suite1 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("invariant: HMAC takes any key length");
            m.update(&head);
            m.update(frame);
            out.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
        }
        Suite::Suite2 => {
            let mut h = blake3::Hasher::new_keyed(&key.0);
            h.update(&head);
            h.update(frame);
            out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
        }
    }
    out
}

/// Compares a received MAC with the computed one in constant time.
pub fn verify_session_mac(
    suite: Suite,
    key: &MacKey,
    session_id: &SessionId,
    direction: Direction,
    seq: u64,
    frame: &[u8],
    mac: &[u8; MAC_LEN],
) -> bool {
    let want = session_mac(suite, key, session_id, direction, seq, frame);
    let diff = want.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_a_upstream_vector() {
        let i = EphemeralKey::from_bytes([0x33; 32]);
        let r = EphemeralKey::from_bytes([0x44; 32]);
        let shared = i.diffie_hellman(&r.public_key()).expect("contributory");
        assert_eq!(*shared, *r.diffie_hellman(&i.public_key()).expect("contributory"));
        let keys = derive_session_keys(
            Suite::Suite1,
            &SessionId([0x88; 16]),
            &shared,
            "node-initiator",
            "node-responder",
            &[0x66; 16],
            &[0x77; 16],
        );
        assert_eq!(
            hex::encode(keys.k_mac_i2r().as_bytes()),
            "c8dc8bad8b3bfa7dbb3b0cc437cc5382dfaa10330466dcdde872fec4364a5b99"
        );
        let mac = session_mac(
            Suite::Suite1,
            keys.k_mac_i2r(),
            &SessionId([0x88; 16]),
            Direction::InitiatorToResponder,
            7,
            b"fcp-session-frame",
        );
        assert_eq!(hex::encode(mac), "17ff7519b65e2de17a8f537765dfb965");
        assert!(verify_session_mac(
            Suite::Suite1,
            keys.k_mac_i2r(),
            &SessionId([0x88; 16]),
            Direction::InitiatorToResponder,
            7,
            b"fcp-session-frame",
            &mac
        ));
        assert!(!verify_session_mac(
            Suite::Suite1,
            keys.k_mac_r2i(),
            &SessionId([0x88; 16]),
            Direction::InitiatorToResponder,
            7,
            b"fcp-session-frame",
            &mac
        ));
        assert_eq!(format!("{keys:?}"), "SessionKeys(..)");
    }

    #[test]
    fn low_order_points_are_rejected() {
        let k = EphemeralKey::from_bytes([5; 32]);
        assert_eq!(k.diffie_hellman(&[0; 32]).map(|_| ()), Err(SessionError::PeerMisbehaved(Misbehavior::WeakKey)));
        assert!(!format!("{k:?}").contains(&hex::encode([5u8; 32])));
    }
}
