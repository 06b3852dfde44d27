//! Deterministic CBOR (digest §1.1): a canonical encoder and a strict decoder.
//!
//! Every FCP object is hashed and signed over its deterministic encoding, so two
//! implementations must agree on every byte. No maintained crate rejects every
//! non-canonical form on decode, so this module is the thin strict layer: it
//! parses into [`Value`], re-encodes canonically and compares bytes. Typed objects
//! go through serde with ciborium's data model ([`to_vec`], [`from_slice`]), but only
//! after the bytes have passed [`decode`].
//!
//! Rules (digest §1.1): definite lengths, shortest heads, map keys sorted by the
//! bytes of their own encoding, no duplicate keys, no tags, only `false`, `true` and
//! `null` as simple values, finite floats in their shortest width (−0.0 becomes 0.0),
//! nesting at most 128 containers deep, input at most 64 MiB.

use std::cmp::Ordering;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest input any decoder accepts (digest §1.1).
pub const MAX_CANONICAL_LEN: usize = 64 * 1024 * 1024;
/// Deepest nesting of arrays and maps (digest §1.1).
pub const MAX_DEPTH: usize = 128;

/// A CBOR data item in the FCP data model.
///
/// Integers span the whole CBOR range, −2^64 ..= 2^64−1. Maps keep their entries in
/// the order given; the encoder sorts them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Major types 0 and 1.
    Int(i128),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5.
    Map(Vec<(Value, Value)>),
    /// `f4` / `f5`.
    Bool(bool),
    /// `f6`.
    Null,
    /// A finite float; encoded in its shortest lossless width.
    Float(f64),
}

impl Value {
    /// Text value.
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(s.into())
    }

    /// Byte-string value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Value::Bytes(b.into())
    }

    /// Looks up a text key in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Limits a strict decode runs under. Every decoder in FCP names its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, checked before decoding.
    pub max_len: usize,
    /// Deepest accepted nesting of arrays and maps.
    pub max_depth: usize,
}

impl Limits {
    /// The generic limits of digest §1.1: 64 MiB and depth 128.
    pub const CANONICAL: Limits = Limits { max_len: MAX_CANONICAL_LEN, max_depth: MAX_DEPTH };

    /// The same depth with a smaller size cap.
    pub const fn with_max_len(max_len: usize) -> Limits {
        Limits { max_len, max_depth: MAX_DEPTH }
    }
}

/// Why bytes are not well-formed CBOR in the FCP data model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The input is longer than the decoder's limit.
    #[error("input of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ends inside an item.
    #[error("truncated input")]
    Truncated,
    /// A text string is not UTF-8.
    #[error("invalid utf-8 in text string")]
    InvalidUtf8,
    /// Additional information 28–30.
    #[error("reserved additional information {0}")]
    ReservedInfo(u8),
    /// A break byte with no indefinite-length item open.
    #[error("unexpected break")]
    UnexpectedBreak,
    /// Indefinite length on an integer, tag or simple value.
    #[error("indefinite length on major type {0}")]
    IndefiniteNotAllowed(u8),
    /// A chunk of the wrong type inside an indefinite-length string.
    #[error("bad chunk in indefinite-length string")]
    BadChunk,
    /// A simple value other than false, true or null.
    #[error("unsupported simple value")]
    UnsupportedSimple,
    /// Nesting deeper than the limit.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
}

/// A strict decode failure, with the reason codes of `vectors/README.md` §5.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Not well-formed, or outside the FCP data model or limits.
    #[error("malformed cbor: {0}")]
    Malformed(#[source] Malformed),
    /// Bytes remain after one complete item.
    #[error("trailing bytes after the item")]
    TrailingBytes,
    /// A tag appears somewhere.
    #[error("cbor tags are not allowed")]
    Tag,
    /// Two map keys have equal canonical encodings.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A NaN or infinite float.
    #[error("non-finite float")]
    NonFiniteFloat,
    /// Decodes, but its canonical re-encoding differs.
    #[error("not in canonical form")]
    NonCanonical,
}

impl CanonicalError {
    /// The stable reason code (`vectors/README.md` §5.3).
    pub fn code(&self) -> &'static str {
        match self {
            CanonicalError::Malformed(_) => "malformed",
            CanonicalError::TrailingBytes => "trailing_bytes",
            CanonicalError::Tag => "tag",
            CanonicalError::DuplicateKey => "duplicate_key",
            CanonicalError::NonFiniteFloat => "non_finite_float",
            CanonicalError::NonCanonical => "non_canonical",
        }
    }
}

/// An encode failure: the value has no canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An integer outside −2^64 ..= 2^64−1.
    #[error("integer out of cbor range")]
    IntegerRange,
    /// NaN or ±Infinity.
    #[error("non-finite float")]
    NonFiniteFloat,
    /// Two keys of one map encode the same.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A tag in a serialized value.
    #[error("cbor tags are not allowed")]
    Tag,
}

/// A serde bridge failure.
#[derive(Debug, thiserror::Error)]
pub enum CborError {
    /// The bytes are not strict canonical CBOR.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The value has no canonical encoding.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The value does not fit the Rust type.
    #[error("cbor value does not match the expected shape: {0}")]
    Shape(String),
}

// ---------------------------------------------------------------------------
// Encoder

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.push(m | 24);
        out.push(n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_float(out: &mut Vec<u8>, v: f64) -> Result<(), EncodeError> {
    if !v.is_finite() {
        return Err(EncodeError::NonFiniteFloat);
    }
    // −0.0 is normalised to 0.0 (digest §1.1).
    let v = if v == 0.0 { 0.0 } else { v };
    let h = half::f16::from_f64(v);
    if h.to_f64() == v {
        out.push(0xf9);
        out.extend_from_slice(&h.to_bits().to_be_bytes());
        return Ok(());
    }
    let s = v as f32;
    if f64::from(s) == v {
        out.push(0xfa);
        out.extend_from_slice(&s.to_bits().to_be_bytes());
        return Ok(());
    }
    out.push(0xfb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
    Ok(())
}

fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), EncodeError> {
    match v {
        Value::Int(i) => {
            if *i >= 0 {
                let n = u64::try_from(*i).map_err(|_| EncodeError::IntegerRange)?;
                write_head(out, 0, n);
            } else {
                let n = u64::try_from(-1 - *i).map_err(|_| EncodeError::IntegerRange)?;
                write_head(out, 1, n);
            }
        }
        Value::Bytes(b) => {
            write_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            write_head(out, 3, t.len() as u64);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            write_head(out, 4, items.len() as u64);
            for item in items {
                write_value(out, item)?;
            }
        }
        Value::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, &Value)> = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let mut kb = Vec::new();
                write_value(&mut kb, k)?;
                encoded.push((kb, val));
            }
            encoded.sort_by(|a, b| a.0.cmp(&b.0));
            if encoded.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(EncodeError::DuplicateKey);
            }
            write_head(out, 5, encoded.len() as u64);
            for (kb, val) in encoded {
                out.extend_from_slice(&kb);
                write_value(out, val)?;
            }
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        Value::Float(f) => write_float(out, *f)?,
    }
    Ok(())
}

/// Encodes a value deterministically (digest §1.1).
pub fn encode(v: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write_value(&mut out, v)?;
    Ok(out)
}

/// Appends the deterministic encoding of `v` to `out`.
pub fn encode_into(out: &mut Vec<u8>, v: &Value) -> Result<(), EncodeError> {
    write_value(out, v)
}

/// Orders two values by their canonical encodings, as map keys are ordered.
pub fn canonical_cmp(a: &Value, b: &Value) -> Result<Ordering, EncodeError> {
    Ok(encode(a)?.cmp(&encode(b)?))
}

// ---------------------------------------------------------------------------
// Strict decoder

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

enum Head {
    /// Definite argument.
    Arg(u64),
    /// Additional information 31.
    Indefinite,
}

const BREAK: u8 = 0xff;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CanonicalError> {
        let end = self.pos.checked_add(n).ok_or(CanonicalError::Malformed(Malformed::Truncated))?;
        let s = self.buf.get(self.pos..end).ok_or(CanonicalError::Malformed(Malformed::Truncated))?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, CanonicalError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn argument(&mut self, info: u8) -> Result<Head, CanonicalError> {
        Ok(match info {
            0..=23 => Head::Arg(u64::from(info)),
            24 => Head::Arg(u64::from(self.byte()?)),
            25 => {
                let b = self.take(2)?;
                Head::Arg(u64::from(u16::from_be_bytes([b[0], b[1]])))
            }
            26 => {
                let b = self.take(4)?;
                Head::Arg(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Head::Arg(u64::from_be_bytes(a))
            }
            28..=30 => return Err(CanonicalError::Malformed(Malformed::ReservedInfo(info))),
            _ => Head::Indefinite,
        })
    }

    /// A length that must fit in what is left of the input.
    fn length(&self, n: u64) -> Result<usize, CanonicalError> {
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.remaining())
            .ok_or(CanonicalError::Malformed(Malformed::Truncated))
    }

    fn string_chunks(&mut self, major: u8) -> Result<Vec<u8>, CanonicalError> {
        let mut out = Vec::new();
        loop {
            let b = self.byte()?;
            if b == BREAK {
                return Ok(out);
            }
            if b >> 5 != major {
                return Err(CanonicalError::Malformed(Malformed::BadChunk));
            }
            match self.argument(b & 0x1f)? {
                Head::Arg(n) => {
                    let n = self.length(n)?;
                    out.extend_from_slice(self.take(n)?);
                }
                Head::Indefinite => return Err(CanonicalError::Malformed(Malformed::BadChunk)),
            }
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        if depth > self.max_depth {
            return Err(CanonicalError::Malformed(Malformed::TooDeep(self.max_depth)));
        }
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        match major {
            0 | 1 => match self.argument(info)? {
                Head::Arg(n) if major == 0 => Ok(Value::Int(i128::from(n))),
                Head::Arg(n) => Ok(Value::Int(-1 - i128::from(n))),
                Head::Indefinite => Err(CanonicalError::Malformed(Malformed::IndefiniteNotAllowed(major))),
            },
            2 | 3 => {
                let raw = match self.argument(info)? {
                    Head::Arg(n) => {
                        let n = self.length(n)?;
                        self.take(n)?.to_vec()
                    }
                    Head::Indefinite => self.string_chunks(major)?,
                };
                if major == 2 {
                    Ok(Value::Bytes(raw))
                } else {
                    String::from_utf8(raw)
                        .map(Value::Text)
                        .map_err(|_| CanonicalError::Malformed(Malformed::InvalidUtf8))
                }
            }
            4 => {
                let mut items = Vec::new();
                match self.argument(info)? {
                    Head::Arg(n) => {
                        // Every item takes at least one byte: bound the count before allocating.
                        let n = self.length(n)?;
                        items.reserve(n);
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    Head::Indefinite => {
                        while self.peek() != Some(BREAK) {
                            items.push(self.item(depth + 1)?);
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Array(items))
            }
            5 => {
                let mut entries = Vec::new();
                match self.argument(info)? {
                    Head::Arg(n) => {
                        let n = self.length(n)?;
                        entries.reserve(n / 2);
                        for _ in 0..n {
                            let k = self.item(depth + 1)?;
                            let v = self.item(depth + 1)?;
                            entries.push((k, v));
                        }
                    }
                    Head::Indefinite => {
                        while self.peek() != Some(BREAK) {
                            let k = self.item(depth + 1)?;
                            let v = self.item(depth + 1)?;
                            entries.push((k, v));
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Map(entries))
            }
            6 => match self.argument(info)? {
                Head::Arg(_) => Err(CanonicalError::Tag),
                Head::Indefinite => Err(CanonicalError::Malformed(Malformed::IndefiniteNotAllowed(6))),
            },
            _ => self.simple(info),
        }
    }

    fn simple(&mut self, info: u8) -> Result<Value, CanonicalError> {
        let float = match info {
            20 => return Ok(Value::Bool(false)),
            21 => return Ok(Value::Bool(true)),
            22 => return Ok(Value::Null),
            25 => {
                let b = self.take(2)?;
                half::f16::from_bits(u16::from_be_bytes([b[0], b[1]])).to_f64()
            }
            26 => {
                let b = self.take(4)?;
                f64::from(f32::from_bits(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                f64::from_bits(u64::from_be_bytes(a))
            }
            28..=30 => return Err(CanonicalError::Malformed(Malformed::ReservedInfo(info))),
            31 => return Err(CanonicalError::Malformed(Malformed::UnexpectedBreak)),
            24 => {
                self.byte()?;
                return Err(CanonicalError::Malformed(Malformed::UnsupportedSimple));
            }
            _ => return Err(CanonicalError::Malformed(Malformed::UnsupportedSimple)),
        };
        if float.is_finite() {
            Ok(Value::Float(float))
        } else {
            Err(CanonicalError::NonFiniteFloat)
        }
    }
}

/// Parses one well-formed item (any encoding) and returns it with the bytes it used.
///
/// This is the lenient half of [`decode`]: it enforces the data model (no tags, no
/// unsupported simple values, finite floats, depth and size limits) but not canonical form.
pub fn parse_prefix(bytes: &[u8], limits: Limits) -> Result<(Value, usize), CanonicalError> {
    if bytes.len() > limits.max_len {
        return Err(CanonicalError::Malformed(Malformed::TooLarge { len: bytes.len(), max: limits.max_len }));
    }
    let mut r = Reader { buf: bytes, pos: 0, max_depth: limits.max_depth };
    let v = r.item(0)?;
    Ok((v, r.pos))
}

/// Strictly decodes exactly one canonical item (digest §1.1).
///
/// Decodes, re-encodes canonically and compares bytes; rejects trailing bytes, tags,
/// duplicate keys, non-finite floats and every non-canonical form.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Value, CanonicalError> {
    let (v, used) = parse_prefix(bytes, limits)?;
    if used != bytes.len() {
        return Err(CanonicalError::TrailingBytes);
    }
    let re = encode(&v).map_err(|e| match e {
        EncodeError::DuplicateKey => CanonicalError::DuplicateKey,
        EncodeError::NonFiniteFloat => CanonicalError::NonFiniteFloat,
        EncodeError::Tag => CanonicalError::Tag,
        // Decoded integers are always in range.
        EncodeError::IntegerRange => CanonicalError::NonCanonical,
    })?;
    if re != bytes {
        return Err(CanonicalError::NonCanonical);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// serde bridge, through ciborium's data model

fn from_ciborium(v: ciborium::Value) -> Result<Value, EncodeError> {
    Ok(match v {
        ciborium::Value::Integer(i) => Value::Int(i128::from(i)),
        ciborium::Value::Bytes(b) => Value::Bytes(b),
        ciborium::Value::Float(f) => {
            if !f.is_finite() {
                return Err(EncodeError::NonFiniteFloat);
            }
            Value::Float(f)
        }
        ciborium::Value::Text(t) => Value::Text(t),
        ciborium::Value::Bool(b) => Value::Bool(b),
        ciborium::Value::Null => Value::Null,
        ciborium::Value::Tag(..) => return Err(EncodeError::Tag),
        ciborium::Value::Array(a) => Value::Array(a.into_iter().map(from_ciborium).collect::<Result<_, _>>()?),
        ciborium::Value::Map(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| Ok((from_ciborium(k)?, from_ciborium(v)?)))
                .collect::<Result<_, EncodeError>>()?,
        ),
        _ => return Err(EncodeError::Tag),
    })
}

fn to_ciborium(v: Value) -> Result<ciborium::Value, CborError> {
    Ok(match v {
        Value::Int(i) => ciborium::Value::Integer(
            ciborium::value::Integer::try_from(i).map_err(|_| CborError::Encode(EncodeError::IntegerRange))?,
        ),
        Value::Bytes(b) => ciborium::Value::Bytes(b),
        Value::Text(t) => ciborium::Value::Text(t),
        Value::Array(a) => ciborium::Value::Array(a.into_iter().map(to_ciborium).collect::<Result<_, _>>()?),
        Value::Map(m) => ciborium::Value::Map(
            m.into_iter().map(|(k, v)| Ok((to_ciborium(k)?, to_ciborium(v)?))).collect::<Result<_, CborError>>()?,
        ),
        Value::Bool(b) => ciborium::Value::Bool(b),
        Value::Null => ciborium::Value::Null,
        Value::Float(f) => ciborium::Value::Float(f),
    })
}

/// Converts a serializable value into a [`Value`].
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, CborError> {
    let cv = ciborium::Value::serialized(v).map_err(|e| CborError::Shape(e.to_string()))?;
    Ok(from_ciborium(cv)?)
}

/// Converts a [`Value`] into a deserializable type.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, CborError> {
    to_ciborium(v)?.deserialized().map_err(|e| CborError::Shape(e.to_string()))
}

/// Serializes a value to deterministic CBOR.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CborError> {
    Ok(encode(&to_value(v)?)?)
}

/// Deterministic CBOR of a map-shaped value with one top-level text key left out: the
/// unsigned view that signatures cover (`signature`, `quorum_signatures`, …).
pub fn to_vec_without<T: Serialize + ?Sized>(v: &T, field: &str) -> Result<Vec<u8>, CborError> {
    let mut v = to_value(v)?;
    if let Value::Map(entries) = &mut v {
        entries.retain(|(k, _)| !matches!(k, Value::Text(t) if t == field));
    }
    Ok(encode(&v)?)
}

/// Strictly decodes canonical CBOR into a typed value.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8], limits: Limits) -> Result<T, CborError> {
    from_value(decode(bytes, limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn reason(s: &str) -> &'static str {
        match decode(&hex(s), Limits::CANONICAL) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn integer_extremes_round_trip() {
        for (v, h) in [
            (Value::Int(-(1i128 << 64)), "3bffffffffffffffff"),
            (Value::Int((1i128 << 64) - 1), "1bffffffffffffffff"),
            (Value::Int(-1), "20"),
            (Value::Int(24), "1818"),
        ] {
            assert_eq!(hex::encode(encode(&v).expect("encodes")), h);
            assert_eq!(decode(&hex(h), Limits::CANONICAL), Ok(v));
        }
        assert_eq!(encode(&Value::Int(1i128 << 64)), Err(EncodeError::IntegerRange));
    }

    #[test]
    fn floats_take_shortest_width() {
        assert_eq!(hex::encode(encode(&Value::Float(1.5)).expect("f")), "f93e00");
        assert_eq!(hex::encode(encode(&Value::Float(1.0)).expect("f")), "f93c00");
        assert_eq!(hex::encode(encode(&Value::Float(-0.0)).expect("f")), "f90000");
        assert_eq!(hex::encode(encode(&Value::Float(100000.0)).expect("f")), "fa47c35000");
        assert_eq!(hex::encode(encode(&Value::Float(1.1)).expect("f")), "fb3ff199999999999a");
        assert_eq!(encode(&Value::Float(f64::NAN)), Err(EncodeError::NonFiniteFloat));
        assert_eq!(reason("f93e00"), "ok");
        assert_eq!(reason("fa3fc00000"), "non_canonical");
        assert_eq!(reason("f98000"), "non_canonical");
        assert_eq!(reason("f97e00"), "non_finite_float");
        assert_eq!(reason("fb7ff0000000000000"), "non_finite_float");
    }

    #[test]
    fn rejections_carry_their_reason() {
        assert_eq!(reason("f7"), "malformed");
        assert_eq!(reason("f820"), "malformed");
        assert_eq!(reason("e0"), "malformed");
        assert_eq!(reason("1c"), "malformed");
        assert_eq!(reason("ff"), "malformed");
        assert_eq!(reason("1f"), "malformed");
        assert_eq!(reason("5f4101610200ff"), "malformed"); // text chunk in a byte string
        assert_eq!(reason("62c328"), "malformed");
        assert_eq!(reason("5f4101ff"), "non_canonical");
        assert_eq!(reason("c11a6553f100"), "tag");
        assert_eq!(reason("a2f98000 00 f90000 01".replace(' ', "").as_str()), "duplicate_key");
        assert_eq!(reason("5bffffffffffffffff"), "malformed");
        assert_eq!(reason("9bffffffffffffffff"), "malformed");
    }

    #[test]
    fn nesting_limit_is_128() {
        let mut ok = vec![0x81u8; 128];
        ok.push(0);
        assert!(decode(&ok, Limits::CANONICAL).is_ok(), "128 nested arrays decode");
        let mut deep = vec![0x81u8; 129];
        deep.push(0);
        assert_eq!(decode(&deep, Limits::CANONICAL).map_err(|e| e.code()), Err("malformed"));
    }

    #[test]
    fn size_limit_is_checked_first() {
        let limits = Limits::with_max_len(3);
        assert_eq!(
            decode(&[0x44, 1, 2, 3, 4], limits),
            Err(CanonicalError::Malformed(Malformed::TooLarge { len: 5, max: 3 }))
        );
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|i| Value::Int(i128::from(i))),
            any::<u64>().prop_map(|i| Value::Int(i128::from(i))),
            any::<u64>().prop_map(|i| Value::Int(-1 - i128::from(i))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,20}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::Float),
            any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Value::Float(f64::from(f))),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())),
            ]
        })
    }

    fn normalise(v: Value) -> Value {
        match v {
            Value::Float(f) if f.abs() == 0.0 => Value::Float(0.0),
            Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
            Value::Map(m) => {
                let mut m: Vec<_> = m.into_iter().map(|(k, v)| (normalise(k), normalise(v))).collect();
                m.sort_by_key(|a| encode(&a.0).expect("k"));
                Value::Map(m)
            }
            other => other,
        }
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_identity(v in arb_value()) {
            let bytes = encode(&v).expect("generated values encode");
            let back = decode(&bytes, Limits::CANONICAL).expect("canonical bytes decode");
            prop_assert_eq!(back, normalise(v));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = decode(&bytes, Limits::CANONICAL) {
                // Whatever is accepted re-encodes to exactly the input.
                prop_assert_eq!(encode(&v).expect("accepted values encode"), bytes);
            }
        }

        #[test]
        fn huge_declared_lengths_do_not_allocate(prefix in 0x98u8..=0x9b, tail in proptest::collection::vec(any::<u8>(), 8..16)) {
            let mut bytes = vec![prefix];
            bytes.extend(tail);
            let _ = decode(&bytes, Limits::CANONICAL);
        }
    }
}
