//! Kinds `schema_hash`, `canonical_cbor`, `canonical_cbor_decode`, `object_id`, `signing_bytes`.

use serde_json::Value as Json;

use super::json::{self, check_hex};
use crate::cbor::{self, Limits};
use crate::id::{ObjectId, ObjectIdKey, ZoneId};
use crate::schema::{self, SchemaId};

fn schema_of(v: &Json) -> Result<Result<SchemaId, schema::SchemaError>, String> {
    Ok(SchemaId::new(json::text(v, "namespace")?, json::text(v, "name")?, json::text(v, "version")?))
}

pub(super) fn schema_hash(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    match schema_of(json::field(case, "schema")?)? {
        Ok(s) => {
            json::check_error(exp, Ok(()))?;
            check_hex(exp, "preimage", &s.hash_preimage())?;
            check_hex(exp, "schema_hash", &s.hash().0)
        }
        Err(e) => json::check_error(exp, Err(e.code())),
    }
}

pub(super) fn canonical_cbor(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let value = json::to_cbor(json::field(case, "input")?)?;
    let bytes = cbor::encode(&value).map_err(|e| format!("encode: {e}"))?;
    check_hex(exp, "cbor", &bytes)?;
    let back = cbor::decode(&bytes, Limits::CANONICAL).map_err(|e| format!("strict decode of own output: {e}"))?;
    if cbor::encode(&back).map_err(|e| e.to_string())? != bytes {
        return Err("decoded value does not re-encode to the same bytes".into());
    }
    if let Some(s) = case.get("schema").filter(|s| !s.is_null()) {
        let s = schema_of(s)?.map_err(|e| e.to_string())?;
        let mut payload = s.hash().0.to_vec();
        payload.extend_from_slice(&bytes);
        check_hex(exp, "payload", &payload)?;
    }
    Ok(())
}

pub(super) fn canonical_cbor_decode(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let input = json::bytes(case, "cbor")?;
    let got = cbor::decode(&input, Limits::CANONICAL);
    let want_ok = json::field(exp, "canonical")?.as_bool().ok_or("expected.canonical is not a bool")?;
    match (want_ok, got) {
        (true, Ok(_)) => Ok(()),
        (true, Err(e)) => Err(format!("rejected as {}: {e}", e.code())),
        (false, Ok(_)) => Err("accepted".into()),
        (false, Err(e)) => json::check_json(exp, "reason", &Json::from(e.code())),
    }
}

pub(super) fn object_id(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let content = json::bytes(case, "content")?;
    match json::text(case, "form")? {
        "keyed" => {
            let key = ObjectIdKey(json::array::<32>(case, "object_id_key")?);
            let zone = ZoneId::new(json::text(case, "zone_id")?).map_err(|e| e.to_string())?;
            let schema = schema_of(json::field(case, "schema")?)?.map_err(|e| e.to_string())?;
            if exp.get("schema_hash").is_some() {
                check_hex(exp, "schema_hash", &schema.hash().0)?;
            }
            check_hex(exp, "object_id", &ObjectId::keyed(&key, &zone, &schema, &content).0)
        }
        "unscoped" => check_hex(exp, "object_id", &ObjectId::unscoped(&content).0),
        other => Err(format!("unknown form {other:?}")),
    }
}

pub(super) fn signing_bytes(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let id = json::text(case, "schema_id")?;
    let body = json::bytes(case, "cbor")?;
    check_hex(exp, "schema_hash8", &schema::schema_hash8(id))?;
    check_hex(exp, "signing_bytes", &schema::signing_bytes(id, &body))
}
