//! Kinds `session_key_schedule` (README §5.5), `session_hello` (§5.6),
//! `session_negotiation` (§5.7) and `session_mac` (§5.8).

use ed25519_dalek::SigningKey;
use serde_json::{json, Value as Json};

use super::frame_kinds::compare;
use super::json;
use crate::id::CanonicalId;
use crate::session::keys::{key_schedule_info, mac_input};
use crate::session::message::cookie_input;
use crate::session::{
    derive_session_keys, negotiate, session_mac, CookieKey, Direction, EphemeralKey, MacKey, MeshSessionAck,
    MeshSessionHello, MeshSessionHelloRetry, SessionError, SessionId, Suite,
};

fn suite(case: &Json, name: &str) -> Result<Suite, String> {
    let id = json::uint(case, name)?;
    Suite::from_id(id).ok_or_else(|| format!("{name} {id} is not a suite"))
}

fn suites(case: &Json, name: &str) -> Result<Vec<Suite>, String> {
    json::field(case, name)?
        .as_array()
        .ok_or_else(|| format!("{name} is not an array"))?
        .iter()
        .map(|v| v.as_u64().and_then(Suite::from_id).ok_or_else(|| format!("{name}: {v} is not a suite")))
        .collect()
}

fn node(case: &Json, name: &str) -> Result<CanonicalId, String> {
    CanonicalId::new(json::text(case, name)?).map_err(|e| e.to_string())
}

fn opt_array<const N: usize>(case: &Json, name: &str) -> Result<Option<[u8; N]>, String> {
    json::opt_bytes(case, name)?
        .map(|b| b.as_slice().try_into().map_err(|_| format!("{name} has {} bytes, expected {N}", b.len())))
        .transpose()
}

fn opt_u16(case: &Json, name: &str) -> Result<Option<u16>, String> {
    json::opt_uint(case, name)?.map(|v| u16::try_from(v).map_err(|_| format!("{name} does not fit u16"))).transpose()
}

fn verdict(r: Result<(), SessionError>) -> &'static str {
    r.map_or_else(|e| e.code(), |()| "valid")
}

pub(super) fn key_schedule(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let s = suite(case, "suite")?;
    let session_id = SessionId(json::array(case, "session_id")?);
    let init_id = json::text(case, "initiator_node_id")?;
    let resp_id = json::text(case, "responder_node_id")?;
    let hello_nonce = json::array(case, "hello_nonce")?;
    let ack_nonce = json::array(case, "ack_nonce")?;
    let i = EphemeralKey::from_bytes(json::array(case, "initiator_eph_sk")?);
    let r = EphemeralKey::from_bytes(json::array(case, "responder_eph_sk")?);
    let shared = i.diffie_hellman(&r.public_key()).map_err(|e| e.to_string())?;
    let keys = derive_session_keys(s, &session_id, &shared, init_id, resp_id, &hello_nonce, &ack_nonce);
    compare(
        exp,
        &json!({
            "initiator_eph_pk": hex::encode(i.public_key()),
            "responder_eph_pk": hex::encode(r.public_key()),
            "shared_secret": hex::encode(*shared),
            "info": hex::encode(key_schedule_info(s, init_id, resp_id, &hello_nonce, &ack_nonce)),
            "k_mac_i2r": hex::encode(keys.k_mac_i2r().as_bytes()),
            "k_mac_r2i": hex::encode(keys.k_mac_r2i().as_bytes()),
            "k_ctx": hex::encode(keys.k_ctx().as_bytes()),
        }),
    )
}

fn hello_from(h: &Json, eph: &EphemeralKey) -> Result<MeshSessionHello, String> {
    Ok(MeshSessionHello {
        from: node(h, "from")?,
        to: node(h, "to")?,
        eph_pubkey: eph.public_key(),
        nonce: json::array(h, "nonce")?,
        cookie: opt_array(h, "cookie")?,
        timestamp: json::uint(h, "timestamp")?,
        suites: suites(h, "suites")?,
        transport_limits: opt_u16(h, "transport_limits")?,
        signature: None,
    })
}

fn handshake(case: &Json, exp: &Json) -> Result<(), String> {
    let i_sign = SigningKey::from_bytes(&json::array(case, "initiator_signing_seed")?);
    let r_sign = SigningKey::from_bytes(&json::array(case, "responder_signing_seed")?);
    let i_eph = EphemeralKey::from_bytes(json::array(case, "initiator_eph_sk")?);
    let r_eph = EphemeralKey::from_bytes(json::array(case, "responder_eph_sk")?);
    let cookie_key = CookieKey::from_bytes(json::array(case, "cookie_key")?);

    let mut hello = hello_from(json::field(case, "hello")?, &i_eph)?;
    hello.sign(&i_sign);
    let a = json::field(case, "ack")?;
    let mut ack = MeshSessionAck {
        from: hello.to.clone(),
        to: hello.from.clone(),
        eph_pubkey: r_eph.public_key(),
        nonce: json::array(a, "nonce")?,
        session_id: SessionId(json::array(a, "session_id")?),
        suite: suite(a, "suite")?,
        timestamp: json::uint(a, "timestamp")?,
        signature: None,
    };
    ack.sign(&hello, &r_sign);
    let cookie = cookie_key.cookie(&hello);
    if hello.cookie.is_some_and(|c| c != cookie) {
        return Err("the hello carries a cookie other than the one the cookie key makes".into());
    }
    let ack_transcript = ack.transcript(&hello);
    let hello_cbor = hello.encode();
    let ack_cbor = ack.encode();
    compare(
        exp,
        &json!({
            "initiator_eph_pk": hex::encode(i_eph.public_key()),
            "responder_eph_pk": hex::encode(r_eph.public_key()),
            "hello_transcript": hex::encode(hello.transcript()),
            "hello_signature": hello.signature.map(hex::encode),
            "hello_cbor": hex::encode(&hello_cbor),
            "ack_transcript": hex::encode(&ack_transcript),
            "ack_signature": ack.signature.map(hex::encode),
            "ack_cbor": hex::encode(&ack_cbor),
            "ack_transcript_blake3": hex::encode(blake3::hash(&ack_transcript).as_bytes()),
            "cookie": hex::encode(cookie),
            "cookie_input": hex::encode(cookie_input(&hello)),
        }),
    )?;
    // What was built decodes back and verifies.
    let h2 = MeshSessionHello::decode(&hello_cbor).map_err(|e| format!("own hello: {e}"))?;
    let a2 = MeshSessionAck::decode(&ack_cbor).map_err(|e| format!("own ack: {e}"))?;
    if h2 != hello || a2 != ack {
        return Err("decoding the encodings did not give the messages back".into());
    }
    h2.verify(&i_sign.verifying_key()).map_err(|e| format!("own hello: {e}"))?;
    a2.verify(&h2, &r_sign.verifying_key()).map_err(|e| format!("own ack: {e}"))
}

fn verify(case: &Json, exp: &Json) -> Result<(), String> {
    let i_pk = json::array::<32>(case, "initiator_signing_pk")?;
    let r_pk = json::array::<32>(case, "responder_signing_pk")?;
    let ack_cbor = json::opt_bytes(case, "ack_cbor")?;
    let got = match MeshSessionHello::decode(&json::bytes(case, "hello_cbor")?) {
        // Nothing to check an ack against.
        Err(e) => json!({ "hello": e.code(), "ack": null }),
        Ok(hello) => {
            let ack = ack_cbor.map(|b| match MeshSessionAck::decode(&b) {
                Err(e) => e.code(),
                Ok(ack) => verdict(ack.verify_with_key_bytes(&hello, &r_pk)),
            });
            json!({ "hello": verdict(hello.verify_with_key_bytes(&i_pk)), "ack": ack })
        }
    };
    compare(exp, &got)
}

pub(super) fn hello(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    match json::text(case, "variant")? {
        "handshake" => handshake(case, exp),
        "hello_retry" => {
            let retry = MeshSessionHelloRetry {
                from: node(case, "from")?,
                to: node(case, "to")?,
                cookie: json::array(case, "cookie")?,
                timestamp: json::uint(case, "timestamp")?,
            };
            let bytes = retry.encode();
            compare(exp, &json!({ "cbor": hex::encode(&bytes) }))?;
            match MeshSessionHelloRetry::decode(&bytes) {
                Ok(back) if back == retry => Ok(()),
                other => Err(format!("decoding the encoding gave {other:?}")),
            }
        }
        "hello_transcript" => {
            let eph = EphemeralKey::from_bytes(json::array(case, "eph_sk")?);
            let hello = hello_from(case, &eph)?;
            compare(
                exp,
                &json!({ "eph_pubkey": hex::encode(eph.public_key()), "transcript": hex::encode(hello.transcript()) }),
            )
        }
        "verify" => verify(case, exp),
        other => Err(format!("unknown variant {other:?}")),
    }
}

pub(super) fn negotiation(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    // A suite id this implementation does not know can never be selected.
    let known = |name: &str| -> Result<Vec<Suite>, String> {
        Ok(json::field(case, name)?
            .as_array()
            .ok_or_else(|| format!("{name} is not an array"))?
            .iter()
            .filter_map(|v| v.as_u64().and_then(Suite::from_id))
            .collect())
    };
    let selected = negotiate(&known("initiator_suites")?, &known("responder_suites")?);
    compare(exp, &json!({ "selected": selected.map(Suite::id) }))
}

pub(super) fn mac(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let s = suite(case, "suite")?;
    let key = MacKey::from_bytes(json::array(case, "key")?);
    let session_id = SessionId(json::array(case, "session_id")?);
    let dir = u8::try_from(json::uint(case, "direction")?)
        .ok()
        .and_then(Direction::from_u8)
        .ok_or("direction is not 0 or 1")?;
    let seq = json::uint(case, "seq")?;
    let frame = json::bytes(case, "frame")?;
    compare(
        exp,
        &json!({
            "mac_input": hex::encode(mac_input(&session_id, dir, seq, &frame)),
            "mac": hex::encode(session_mac(s, &key, &session_id, dir, seq, &frame)),
        }),
    )
}
