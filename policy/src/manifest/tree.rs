//! The parsed TOML document as a plain tree, and TOML key paths.
//!
//! \[I\] parses with the `toml` crate and deserialises through serde, which sees
//! integers as the widest type they fit (i64, then u64, then i128/u128) and floats
//! checked for overflow. The tree keeps exactly that information, so each reader
//! can apply the range of its own Rust type (digest §11, "Types").

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Deepest nesting accepted when converting (the `toml` parser itself stops at 80).
const MAX_DEPTH: usize = 256;

/// A TOML integer as serde would see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Int {
    /// Fits in i128 (every integer an i64/u64 field can hold).
    Value(i128),
    /// Above i128::MAX but within u128: only ignored keys accept it.
    U128Only,
    /// Beyond u128: no Rust type takes it.
    Overflow,
}

/// A TOML value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(Int),
    /// `None` when the literal overflows f64 (the `toml` crate rejects it on read).
    Float(Option<f64>),
    Bool(bool),
    /// Printed the way the `toml` crate prints it.
    Datetime(String),
    Array(Vec<Node>),
    Table(BTreeMap<String, Node>),
}

impl Node {
    /// The TOML type, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Str(_) => "string",
            Node::Int(_) => "integer",
            Node::Float(_) => "float",
            Node::Bool(_) => "boolean",
            Node::Datetime(_) => "datetime",
            Node::Array(_) => "array",
            Node::Table(_) => "table",
        }
    }
}

/// Why a text is not a TOML document we can read.
#[derive(Debug)]
pub(crate) struct SyntaxError(pub(crate) String);

/// Parses a TOML 1.1 document with the same parser \[I\] uses.
pub(crate) fn parse_document(text: &str) -> Result<BTreeMap<String, Node>, SyntaxError> {
    let root = DeTable::parse(text).map_err(|e| SyntaxError(first_line(&e.to_string())))?;
    convert_table(root.get_ref(), 0)
}

fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("toml parse error").to_lowercase()
}

fn convert_table(t: &DeTable<'_>, depth: usize) -> Result<BTreeMap<String, Node>, SyntaxError> {
    let mut out = BTreeMap::new();
    for (k, v) in t.iter() {
        out.insert(k.get_ref().to_string(), convert(v.get_ref(), depth + 1)?);
    }
    Ok(out)
}

fn convert(v: &DeValue<'_>, depth: usize) -> Result<Node, SyntaxError> {
    if depth > MAX_DEPTH {
        return Err(SyntaxError("nesting too deep".into()));
    }
    Ok(match v {
        DeValue::String(s) => Node::Str(s.to_string()),
        DeValue::Integer(i) => Node::Int(integer(i.as_str(), i.radix())),
        DeValue::Float(f) => Node::Float(float(f.as_str())),
        DeValue::Boolean(b) => Node::Bool(*b),
        DeValue::Datetime(d) => Node::Datetime(d.to_string()),
        DeValue::Array(a) => Node::Array(a.iter().map(|x| convert(x.get_ref(), depth + 1)).collect::<Result<_, _>>()?),
        DeValue::Table(t) => Node::Table(convert_table(t, depth)?),
    })
}

/// The `toml` crate keeps integers as `from_str_radix` text; serde then tries i64, u64,
/// i128 and u128 in turn.
fn integer(text: &str, radix: u32) -> Int {
    if let Ok(v) = i128::from_str_radix(text, radix) {
        Int::Value(v)
    } else if u128::from_str_radix(text, radix).is_ok() {
        Int::U128Only
    } else {
        Int::Overflow
    }
}

/// The `toml` crate's float reading: Rust's parser, and an infinity that was not
/// written as `inf` is an overflow.
fn float(text: &str) -> Option<f64> {
    let f: f64 = text.parse().ok()?;
    if f.is_infinite() && !text.contains("inf") {
        None
    } else {
        Some(f)
    }
}

/// The byte range of the string value at `path` (table keys from the root), quotes
/// included; `None` when the text does not parse or the value is not a string.
pub(crate) fn string_span(text: &str, path: &[&str]) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let (last, parents) = path.split_last()?;
    for key in parents {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        let DeValue::Table(t) = v.get_ref() else { return None };
        table = t;
    }
    let (_, v) = table.iter().find(|(k, _)| k.get_ref() == last)?;
    matches!(v.get_ref(), DeValue::String(_)).then(|| v.span())
}

/// `parent.key`, quoting the key unless it is a bare TOML key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        let mut q = String::with_capacity(key.len() + 2);
        q.push('"');
        for c in key.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                c if c.is_control() => q.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => q.push(c),
            }
        }
        q.push('"');
        q
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_keep_their_full_range() {
        let doc = parse_document("a = 18446744073709551615\nb = -5\nc = 0xff\nd = 1_000\ne = 170141183460469231731687303715884105728\nf = 999999999999999999999999999999999999999999")
            .expect("toml");
        assert_eq!(doc["a"], Node::Int(Int::Value(18_446_744_073_709_551_615)));
        assert_eq!(doc["b"], Node::Int(Int::Value(-5)));
        assert_eq!(doc["c"], Node::Int(Int::Value(255)));
        assert_eq!(doc["d"], Node::Int(Int::Value(1000)));
        assert_eq!(doc["e"], Node::Int(Int::U128Only));
        assert_eq!(doc["f"], Node::Int(Int::Overflow));
    }

    #[test]
    fn floats_and_datetimes_read_like_the_toml_crate() {
        let doc = parse_document("a = 1e999\nb = inf\nc = -0.0\nd = nan\ne = 1979-05-27 07:32:00.500z\nf = 07:32\n")
            .expect("toml 1.1");
        assert_eq!(doc["a"], Node::Float(None));
        assert_eq!(doc["b"], Node::Float(Some(f64::INFINITY)));
        assert!(matches!(doc["c"], Node::Float(Some(z)) if z == 0.0 && z.is_sign_negative()));
        assert!(matches!(doc["d"], Node::Float(Some(n)) if n.is_nan()));
        assert_eq!(doc["e"], Node::Datetime("1979-05-27T07:32:00.5Z".into()));
        // The crate keeps an omitted seconds field omitted when printing.
        assert_eq!(doc["f"], Node::Datetime("07:32".into()));
    }

    #[test]
    fn toml_1_1_syntax_and_duplicate_keys() {
        let doc = parse_document("t = { a = 1,\n  b = \"\\e\\x41\", }\n").expect("toml 1.1 inline table");
        let Node::Table(t) = &doc["t"] else { panic!("table expected") };
        assert_eq!(t["b"], Node::Str("\u{1b}A".into()));
        assert!(parse_document("a = 1\na = 2\n").is_err());
        assert!(parse_document("[x]\n[x]\n").is_err());
    }

    #[test]
    fn paths_quote_non_bare_keys() {
        assert_eq!(join("", "provides"), "provides");
        assert_eq!(join("provides.operations", "exa.search"), "provides.operations.\"exa.search\"");
        assert_eq!(join("a", "say \"hi\""), "a.\"say \\\"hi\\\"\"");
        assert_eq!(index("x.port_allow", 2), "x.port_allow[2]");
    }
}
