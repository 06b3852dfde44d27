//! File bytes as JSON text, within the 64 KiB frame (spec/host-protocol.md §2): `utf8`
//! content is cut where its escaped form would pass a budget, `base64` content is
//! bounded by the read length.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// How `content` is carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Encoding {
    /// UTF-8 text, as a JSON string.
    #[default]
    Utf8,
    /// Any bytes, as standard padded base64.
    Base64,
}

/// Why bytes could not become content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// Not UTF-8 at this index of the chunk.
    NotUtf8 {
        /// The index of the first bad byte.
        at: usize,
    },
    /// The first character does not fit in the bytes read (a `length` under 4).
    CharacterSplit,
}

/// Content, and how many of the chunk's bytes it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The text.
    pub(crate) content: String,
    /// Bytes of the chunk it covers (a prefix; the caller reports it as `length`).
    pub(crate) consumed: usize,
}

/// The bytes a `char` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Encodes a prefix of `chunk` whose JSON form fits in `budget` bytes. With `utf8`, a
/// character cut by the end of the chunk is left for the next read unless the chunk
/// reached the end of the file (`at_eof`), where it is an error.
pub(crate) fn encode(chunk: &[u8], encoding: Encoding, at_eof: bool, budget: usize) -> Result<Encoded, EncodeError> {
    match encoding {
        Encoding::Base64 => {
            // 4 bytes of text for every 3 of data, rounded down to whole groups.
            let fits = (budget / 4) * 3;
            let consumed = chunk.len().min(fits);
            let content = base64::engine::general_purpose::STANDARD.encode(&chunk[..consumed]);
            Ok(Encoded { content, consumed })
        }
        Encoding::Utf8 => {
            let text = match std::str::from_utf8(chunk) {
                Ok(text) => text,
                // error_len() == None: an incomplete character at the very end.
                Err(e) if e.error_len().is_none() && !at_eof => {
                    let valid = chunk.get(..e.valid_up_to()).unwrap_or_default();
                    std::str::from_utf8(valid).map_err(|_| EncodeError::NotUtf8 { at: 0 })?
                }
                Err(e) => return Err(EncodeError::NotUtf8 { at: e.valid_up_to() }),
            };
            if text.is_empty() && !chunk.is_empty() {
                return Err(EncodeError::CharacterSplit);
            }
            let mut used = 0;
            let mut consumed = text.len();
            for (i, c) in text.char_indices() {
                used += escaped_len(c);
                if used > budget {
                    consumed = i;
                    break;
                }
            }
            let content = text.get(..consumed).unwrap_or_default().to_owned();
            Ok(Encoded { content, consumed })
        }
    }
}

/// Decodes `fs.write` content.
pub(crate) fn decode(content: &str, encoding: Encoding) -> Result<Vec<u8>, base64::DecodeError> {
    match encoding {
        Encoding::Utf8 => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_len_matches_serde_json() {
        for c in ['a', '"', '\\', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', '😀', '\u{8}', '\u{c}'] {
            let json = serde_json::to_string(&c.to_string()).expect("json");
            assert_eq!(escaped_len(c), json.len() - 2, "{c:?}");
        }
    }

    #[test]
    fn utf8_within_budget() {
        let e = encode("héllo".as_bytes(), Encoding::Utf8, true, 100).expect("text");
        assert_eq!(e, Encoded { content: "héllo".into(), consumed: 6 });
        // Control characters cost 6 bytes each once escaped.
        let e = encode(b"\x01\x01\x01", Encoding::Utf8, true, 13).expect("text");
        assert_eq!(e, Encoded { content: "\x01\x01".into(), consumed: 2 });
        let json = serde_json::to_string(&e.content).expect("json");
        assert!(json.len() - 2 <= 13);
    }

    #[test]
    fn a_split_character_waits_for_the_next_read() {
        let bytes = "a€".as_bytes();
        let e = encode(&bytes[..3], Encoding::Utf8, false, 100).expect("prefix");
        assert_eq!(e, Encoded { content: "a".into(), consumed: 1 });
        assert_eq!(encode(&bytes[..3], Encoding::Utf8, true, 100), Err(EncodeError::NotUtf8 { at: 1 }));
        assert_eq!(encode(&bytes[1..3], Encoding::Utf8, false, 100), Err(EncodeError::CharacterSplit));
        assert_eq!(encode(b"ab\xffcd", Encoding::Utf8, false, 100), Err(EncodeError::NotUtf8 { at: 2 }));
    }

    #[test]
    fn base64_within_budget_and_back() {
        let bytes: Vec<u8> = (0..=255).collect();
        let e = encode(&bytes, Encoding::Base64, true, 1000).expect("all");
        assert_eq!(e.consumed, 256);
        assert_eq!(decode(&e.content, Encoding::Base64).expect("decode"), bytes);
        let e = encode(&bytes, Encoding::Base64, true, 8).expect("six bytes");
        assert_eq!((e.consumed, e.content.len()), (6, 8));
        assert_eq!(decode("héllo", Encoding::Utf8).expect("utf8"), "héllo".as_bytes());
        assert!(matches!(decode("not base64!", Encoding::Base64), Err(base64::DecodeError::InvalidByte(3, b' '))));
    }
}
