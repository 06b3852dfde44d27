//! Reading vector cases: hex fields, integers, and the JSON → CBOR mapping of
//! `vectors/README.md` §2.1.

use serde_json::Value as Json;

use crate::cbor::Value;

/// The field `name` of a case, or an error naming it.
pub fn field<'a>(case: &'a Json, name: &str) -> Result<&'a Json, String> {
    case.get(name).ok_or_else(|| format!("case has no field {name:?}"))
}

/// A text field.
pub fn text<'a>(case: &'a Json, name: &str) -> Result<&'a str, String> {
    field(case, name)?.as_str().ok_or_else(|| format!("field {name:?} is not text"))
}

/// A text field that may be null.
pub fn opt_text<'a>(case: &'a Json, name: &str) -> Result<Option<&'a str>, String> {
    match case.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| format!("field {name:?} is not text")),
    }
}

/// An unsigned integer field (up to 2^64−1).
pub fn uint(case: &Json, name: &str) -> Result<u64, String> {
    field(case, name)?.as_u64().ok_or_else(|| format!("field {name:?} is not an unsigned integer"))
}

/// An unsigned integer field that may be null or absent.
pub fn opt_uint(case: &Json, name: &str) -> Result<Option<u64>, String> {
    match case.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("field {name:?} is not an unsigned integer")),
    }
}

/// A hex field as bytes.
pub fn bytes(case: &Json, name: &str) -> Result<Vec<u8>, String> {
    hex::decode(text(case, name)?).map_err(|e| format!("field {name:?} is not hex: {e}"))
}

/// A hex field of exactly `N` bytes.
pub fn array<const N: usize>(case: &Json, name: &str) -> Result<[u8; N], String> {
    let b = bytes(case, name)?;
    b.as_slice().try_into().map_err(|_| format!("field {name:?} has {} bytes, expected {N}", b.len()))
}

/// A hex field that may be null.
pub fn opt_bytes(case: &Json, name: &str) -> Result<Option<Vec<u8>>, String> {
    match opt_text(case, name)? {
        None => Ok(None),
        Some(s) => hex::decode(s).map(Some).map_err(|e| format!("field {name:?} is not hex: {e}")),
    }
}

/// The `expected` object of a case.
pub fn expected(case: &Json) -> Result<&Json, String> {
    field(case, "expected")
}

/// Compares one expected hex field with what was computed.
pub fn check_hex(expected: &Json, name: &str, got: &[u8]) -> Result<(), String> {
    let want = text(expected, name)?;
    let got = hex::encode(got);
    if want == got {
        Ok(())
    } else {
        Err(format!("{name}: expected {want}, got {got}"))
    }
}

/// Compares one expected field (any JSON) with what was computed.
pub fn check_json(expected: &Json, name: &str, got: &Json) -> Result<(), String> {
    let want = field(expected, name)?;
    if want == got {
        Ok(())
    } else {
        Err(format!("{name}: expected {want}, got {got}"))
    }
}

/// Compares the `error` code of an expected failure.
pub fn check_error(expected: &Json, got: Result<(), &str>) -> Result<(), String> {
    let want = expected.get("error").and_then(Json::as_str);
    match (want, got) {
        (Some(w), Err(g)) if w == g => Ok(()),
        (Some(w), Err(g)) => Err(format!("error: expected {w}, got {g}")),
        (Some(w), Ok(())) => Err(format!("error: expected {w}, but it succeeded")),
        (None, Err(g)) => Err(format!("unexpected error {g}")),
        (None, Ok(())) => Ok(()),
    }
}

/// Converts JSON-ish (§2.1) into a CBOR value.
pub fn to_cbor(v: &Json) -> Result<Value, String> {
    Ok(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Int(i128::from(u))
            } else if let Some(i) = n.as_i64() {
                Value::Int(i128::from(i))
            } else {
                return Err(format!("number {n} is not an integer"));
            }
        }
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_cbor).collect::<Result<_, _>>()?),
        Json::Object(o) => {
            if o.len() == 1 {
                if let Some(h) = o.get("$bytes") {
                    let h = h.as_str().ok_or("$bytes is not text")?;
                    return hex::decode(h).map(Value::Bytes).map_err(|e| format!("$bytes: {e}"));
                }
                if let Some(pairs) = o.get("$map") {
                    let pairs = pairs.as_array().ok_or("$map is not an array")?;
                    let mut out = Vec::with_capacity(pairs.len());
                    for p in pairs {
                        match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => out.push((to_cbor(k)?, to_cbor(v)?)),
                            _ => return Err("$map entry is not a pair".into()),
                        }
                    }
                    return Ok(Value::Map(out));
                }
            }
            Value::Map(o.iter().map(|(k, v)| Ok((Value::Text(k.clone()), to_cbor(v)?))).collect::<Result<_, String>>()?)
        }
    })
}
