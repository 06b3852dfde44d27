//! Kinds `datagram_envelope` (README §5.9), `fcps_frame` (§5.10) and `fcpc_frame`
//! (§5.11).

use serde_json::{json, Map, Value as Json};

use super::json;
use crate::fcpc::{self, ContextKey, FcpcFlags, FcpcOpened, DEFAULT_MAX_PAYLOAD_LEN, FCPC_HEADER_LEN, FCPC_TAG_LEN};
use crate::fcps::admission::{check_frame, AdmissionError};
use crate::fcps::frame::FRAME_HEADER_LEN;
use crate::fcps::{AdmissionLimits, Datagram, FcpsFrame, FrameFlags, FrameHeader, SymbolRecord};
use crate::id::{EpochId, ObjectId};
use crate::session::Direction;

/// Compares every field of `expected` with the computed object; a field that was not
/// computed fails.
pub(super) fn compare(expected: &Json, got: &Json) -> Result<(), String> {
    let exp = expected.as_object().ok_or("expected is not an object")?;
    let got = got.as_object().ok_or("computed value is not an object")?;
    for (name, want) in exp {
        match got.get(name) {
            Some(g) if g == want => {}
            Some(g) => return Err(format!("{name}: expected {want}, got {g}")),
            None => {
                return Err(format!("{name}: expected {want}, computed nothing (got {})", Json::Object(got.clone())))
            }
        }
    }
    Ok(())
}

fn error(code: &str) -> Json {
    json!({ "error": code })
}

fn usize_field(case: &Json, name: &str) -> Result<usize, String> {
    usize::try_from(json::uint(case, name)?).map_err(|_| format!("{name} does not fit usize"))
}

fn u16_field(case: &Json, name: &str) -> Result<u16, String> {
    u16::try_from(json::uint(case, name)?).map_err(|_| format!("{name} does not fit u16"))
}

fn u32_field(case: &Json, name: &str) -> Result<u32, String> {
    u32::try_from(json::uint(case, name)?).map_err(|_| format!("{name} does not fit u32"))
}

fn direction(case: &Json) -> Result<Direction, String> {
    u8::try_from(json::uint(case, "direction")?)
        .ok()
        .and_then(Direction::from_u8)
        .ok_or_else(|| "direction is not 0 or 1".to_owned())
}

// ---------------------------------------------------------------------------

fn datagram_json(d: &Datagram<'_>) -> Json {
    json!({
        "session_id": hex::encode(d.session_id),
        "seq": d.seq,
        "mac": hex::encode(d.mac),
        "frame": hex::encode(d.frame),
    })
}

pub(super) fn datagram_envelope(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    match json::text(case, "variant")? {
        "encode" => {
            let frame = json::bytes(case, "frame")?;
            let d = Datagram {
                session_id: json::array(case, "session_id")?,
                seq: json::uint(case, "seq")?,
                mac: json::array(case, "mac")?,
                frame: &frame,
            };
            let bytes = d.encode();
            compare(exp, &json!({ "datagram": hex::encode(&bytes) }))?;
            match Datagram::decode(&bytes, usize::MAX) {
                Ok(back) if back == d => Ok(()),
                other => Err(format!("decoding the encoding gave {other:?}")),
            }
        }
        "decode" => {
            let bytes = json::bytes(case, "datagram")?;
            let got = match Datagram::decode(&bytes, usize_field(case, "max_datagram_bytes")?) {
                Ok(d) => datagram_json(&d),
                Err(e) => error(e.code()),
            };
            compare(exp, &got)
        }
        other => Err(format!("unknown variant {other:?}")),
    }
}

// ---------------------------------------------------------------------------

/// The decode object of README §5.10: exactly the encode inputs.
fn frame_json(f: &FcpsFrame) -> Json {
    let h = f.header();
    let symbols: Vec<Json> = f
        .symbols()
        .iter()
        .map(|s| json!({ "esi": s.esi, "k": s.k, "data": hex::encode(&s.data), "auth_tag": hex::encode(s.auth_tag) }))
        .collect();
    json!({
        "version": crate::fcps::frame::FCPS_VERSION,
        "flags": h.flags.bits(),
        "object_id": hex::encode(h.object_id.0),
        "symbol_size": h.symbol_size,
        "zone_key_id": hex::encode(h.zone_key_id),
        "zone_id_hash": hex::encode(h.zone_id_hash),
        "epoch_id": h.epoch_id.0,
        "sender_instance_id": h.sender_instance_id,
        "frame_seq": h.frame_seq,
        "symbols": symbols,
    })
}

fn frame_from_inputs(case: &Json) -> Result<FcpsFrame, String> {
    let version = json::uint(case, "version")?;
    if version != u64::from(crate::fcps::frame::FCPS_VERSION) {
        return Err(format!("version {version} cannot be encoded: only version 1 exists"));
    }
    let header = FrameHeader {
        flags: FrameFlags::from_bits(u16_field(case, "flags")?).map_err(|e| e.to_string())?,
        object_id: ObjectId(json::array(case, "object_id")?),
        symbol_size: u16_field(case, "symbol_size")?,
        zone_key_id: json::array(case, "zone_key_id")?,
        zone_id_hash: json::array(case, "zone_id_hash")?,
        epoch_id: EpochId(json::uint(case, "epoch_id")?),
        sender_instance_id: json::uint(case, "sender_instance_id")?,
        frame_seq: json::uint(case, "frame_seq")?,
    };
    let symbols = json::field(case, "symbols")?
        .as_array()
        .ok_or("symbols is not an array")?
        .iter()
        .map(|s| {
            Ok(SymbolRecord {
                esi: u32_field(s, "esi")?,
                k: u16_field(s, "k")?,
                data: json::bytes(s, "data")?,
                auth_tag: json::array(s, "auth_tag")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    FcpsFrame::new(header, symbols).map_err(|e| e.to_string())
}

/// The inputs of an encode case, in the shape decode returns.
fn input_fields(case: &Json) -> Json {
    let keys = [
        "version",
        "flags",
        "object_id",
        "symbol_size",
        "zone_key_id",
        "zone_id_hash",
        "epoch_id",
        "sender_instance_id",
        "frame_seq",
        "symbols",
    ];
    Json::Object(keys.iter().filter_map(|k| case.get(*k).map(|v| ((*k).to_owned(), v.clone()))).collect::<Map<_, _>>())
}

pub(super) fn fcps_frame(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    match json::text(case, "variant")? {
        "encode" => {
            let frame = frame_from_inputs(case)?;
            let bytes = frame.encode();
            compare(exp, &json!({ "header": hex::encode(&bytes[..FRAME_HEADER_LEN]), "frame": hex::encode(&bytes) }))?;
            // Every encode case decodes back to its inputs (raw layout decoder).
            let back = FcpsFrame::decode(&bytes).map_err(|e| format!("own encoding rejected: {}", e.code()))?;
            compare(&input_fields(case), &frame_json(&back)).map_err(|e| format!("decode of encode: {e}"))?;
            // The [S] bounds are the separate admission check: layout_only frames fail it
            // on their symbol size, all others pass it.
            let view = crate::fcps::FrameView::parse(&bytes).map_err(|e| e.to_string())?;
            let open = AdmissionLimits { max_datagram_bytes: usize::MAX, max_symbols_per_frame: u32::MAX };
            let layout_only = case.get("layout_only").and_then(Json::as_bool).unwrap_or(false);
            match (layout_only, check_frame(&view, &open)) {
                (true, Err(AdmissionError::SymbolSizeOutOfBounds(_))) | (false, Ok(())) => Ok(()),
                (true, other) => Err(format!("layout_only frame: admission gave {other:?}")),
                (false, Err(e)) => Err(format!("frame within the spec bounds not admitted: {}", e.code())),
            }
        }
        "decode" => {
            let bytes = json::bytes(case, "frame")?;
            let got = match FcpsFrame::decode(&bytes) {
                Ok(f) => frame_json(&f),
                Err(e) => error(e.code()),
            };
            compare(exp, &got)
        }
        other => Err(format!("unknown variant {other:?}")),
    }
}

// ---------------------------------------------------------------------------

fn opened_json(o: &FcpcOpened) -> Json {
    json!({
        "session_id": hex::encode(o.session_id),
        "seq": o.seq,
        "flags": o.flags.bits(),
        "plaintext": hex::encode(&o.plaintext),
    })
}

pub(super) fn fcpc_frame(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let key = ContextKey::from_bytes(json::array(case, "k_ctx")?);
    let dir = direction(case)?;
    match json::text(case, "variant")? {
        "seal" => {
            let session_id: [u8; 16] = json::array(case, "session_id")?;
            let seq = json::uint(case, "seq")?;
            let flags = FcpcFlags::from_bits(u16_field(case, "flags")?).map_err(|e| e.to_string())?;
            let plaintext = json::bytes(case, "plaintext")?;
            let frame = fcpc::seal(&key, dir, &session_id, seq, flags, &plaintext).map_err(|e| e.to_string())?;
            let written = u16::from_le_bytes([frame[30], frame[31]]);
            let sealed_flags = FcpcFlags::from_bits(written).map_err(|e| e.to_string())?;
            let body_end = frame.len() - FCPC_TAG_LEN;
            compare(
                exp,
                &json!({
                    "flags": written,
                    "nonce": hex::encode(fcpc::nonce(dir, seq)),
                    "aad": hex::encode(fcpc::aad(&session_id, seq, sealed_flags)),
                    "header": hex::encode(&frame[..FCPC_HEADER_LEN]),
                    "ciphertext": hex::encode(&frame[FCPC_HEADER_LEN..body_end]),
                    "tag": hex::encode(&frame[body_end..]),
                    "frame": hex::encode(&frame),
                }),
            )?;
            let opened = fcpc::open(&key, dir, &frame, usize::MAX).map_err(|e| format!("own frame: {}", e.code()))?;
            compare(
                &json!({ "session_id": hex::encode(session_id), "seq": seq, "plaintext": hex::encode(&plaintext) }),
                &opened_json(&opened),
            )
        }
        "open" => {
            let frame = json::bytes(case, "frame")?;
            let max = match json::opt_uint(case, "max_payload_len")? {
                None => DEFAULT_MAX_PAYLOAD_LEN,
                Some(m) => usize::try_from(m).map_err(|_| "max_payload_len does not fit usize")?,
            };
            let got = match fcpc::open(&key, dir, &frame, max) {
                Ok(o) => opened_json(&o),
                Err(e) => error(e.code()),
            };
            compare(exp, &got)
        }
        other => Err(format!("unknown variant {other:?}")),
    }
}
