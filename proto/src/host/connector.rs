//! The connector side (host-protocol §1, §2): stdin bytes to typed requests, and replies
//! written as the typed reference connectors write them (keys sorted, compact, one line).
//!
//! Unlike the reference connectors we cap request lines too: an over-long line is
//! answered with `FCP-1001` and no `id`, which the host treats as desync.

use serde_json::{Map, Value};

use super::fcp_error::{FcpError, FcpErrorResponse};
use super::invoke::RESPONSE_FRAME_SERVICE;
use super::lines::{Line, LineBuffer};
use super::request::{Method, Request, RequestError};
use super::{JSONRPC_VERSION, MAX_FRAME_BYTES};

/// One request line, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    /// The request's `id`, verbatim, whatever its JSON type; `None` when the line had
    /// none or could not be parsed (the reply then has none either).
    pub id: Option<Value>,
    /// The typed request, or the error to answer.
    pub request: Result<Request, RequestError>,
}

impl Incoming {
    /// Reads one line (without its `\n`). Blank lines give `None`: connectors skip them.
    pub fn decode(line: &[u8]) -> Option<Incoming> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let fail = |id, error| Some(Incoming { id, request: Err(error) });
        let Ok(text) = std::str::from_utf8(line) else { return fail(None, RequestError::InvalidUtf8) };
        let value = match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => return fail(None, RequestError::InvalidJson { reason: e.to_string() }),
        };
        let Value::Object(mut object) = value else { return fail(None, RequestError::NotAnObject) };
        let id = object.remove("id");
        let Some(name) = object.get("method").and_then(Value::as_str) else {
            return fail(id, RequestError::MissingMethod);
        };
        let Some(method) = Method::from_name(name) else {
            return fail(id, RequestError::UnknownMethod(name.to_owned()));
        };
        let params = object.remove("params").unwrap_or_else(|| Value::Object(Map::new()));
        Some(Incoming { id, request: Request::from_params(method, params) })
    }
}

/// Splits stdin into requests, holding at most the cap.
#[derive(Clone, Debug)]
pub struct RequestReader {
    lines: LineBuffer,
}

impl Default for RequestReader {
    fn default() -> RequestReader {
        RequestReader::new()
    }
}

impl RequestReader {
    /// A reader with the 64 KiB cap.
    pub fn new() -> RequestReader {
        RequestReader::with_frame_cap(MAX_FRAME_BYTES)
    }

    /// A reader with another cap.
    pub fn with_frame_cap(frame_cap: usize) -> RequestReader {
        RequestReader { lines: LineBuffer::new(frame_cap) }
    }

    /// Takes stdin bytes; returns the requests they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Incoming> {
        let limit = self.lines.cap();
        self.lines
            .push(bytes)
            .into_iter()
            .filter_map(|line| match line {
                Line::Complete(line) => Incoming::decode(&line),
                Line::TooLong { .. } => Some(Incoming { id: None, request: Err(RequestError::FrameTooLong { limit }) }),
            })
            .collect()
    }

    /// Stdin closed: an unterminated last line still counts, as with a line iterator.
    pub fn finish(&mut self) -> Option<Incoming> {
        self.lines.finish().and_then(|line| Incoming::decode(&line))
    }

    /// Bytes held, never more than the cap.
    pub fn buffered(&self) -> usize {
        self.lines.buffered()
    }
}

/// `{"id":…,"jsonrpc":"2.0","result":…}` and `\n`; no `id` key when `id` is `None`.
pub fn encode_result(id: Option<&Value>, result: Value) -> Vec<u8> {
    reply_line(id, "result", result)
}

/// `{"error":…,"id":…,"jsonrpc":"2.0"}` and `\n`; no `id` key when `id` is `None`.
pub fn encode_error(id: Option<&Value>, error: &FcpErrorResponse) -> Vec<u8> {
    reply_line(id, "error", error_member(error))
}

/// A reply that fits the cap. A result that does not is replaced by the error the
/// reference host would report for it (`External{service:"connector_response_frame"}`,
/// `FCP-7003`), so the host gets a failure instead of a desync; an error that does not
/// loses its `details` and hint and has its message shortened. (A cap below about 100
/// bytes cannot hold even that; the line is then returned over the cap.)
pub fn encode_response(id: Option<&Value>, outcome: Result<Value, FcpErrorResponse>, frame_cap: usize) -> Vec<u8> {
    let mut error = match outcome {
        Ok(result) => {
            let line = encode_result(id, result);
            if line.len() <= frame_cap + 1 {
                return line;
            }
            FcpError::External {
                service: RESPONSE_FRAME_SERVICE.into(),
                message: format!("response of {} bytes exceeds the {frame_cap}-byte frame cap", line.len() - 1),
                status_code: None,
                retryable: false,
                retry_after: None,
            }
            .to_response()
        }
        Err(error) => error,
    };
    let line = encode_error(id, &error);
    if line.len() <= frame_cap + 1 {
        return line;
    }
    error.details = None;
    error.ai_recovery_hint = None;
    let message = std::mem::take(&mut error.message);
    let overhead = encode_error(id, &error).len();
    let mut cut = message.len().min((frame_cap + 1).saturating_sub(overhead));
    loop {
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        error.message = message[..cut].to_owned();
        let line = encode_error(id, &error);
        // Escapes can make the message longer on the wire than in memory.
        if line.len() <= frame_cap + 1 || cut == 0 {
            return line;
        }
        cut /= 2;
    }
}

fn error_member(e: &FcpErrorResponse) -> Value {
    let mut m = Map::new();
    if let Some(hint) = &e.ai_recovery_hint {
        m.insert("ai_recovery_hint".into(), Value::String(hint.clone()));
    }
    m.insert("code".into(), Value::String(e.code.to_string()));
    if let Some(details) = &e.details {
        m.insert("details".into(), details.clone());
    }
    m.insert("message".into(), Value::String(e.message.clone()));
    if let Some(ms) = e.retry_after_ms {
        m.insert("retry_after_ms".into(), Value::from(ms));
    }
    m.insert("retryable".into(), Value::Bool(e.retryable));
    Value::Object(m)
}

/// Keys go in sorted order (`error`, `id`, `jsonrpc`, `result`), as serde_json's default
/// map writes them; inserting them in that order keeps it so under `preserve_order` too.
fn reply_line(id: Option<&Value>, key: &'static str, member: Value) -> Vec<u8> {
    let (error, result) = if key == "error" { (Some(member), None) } else { (None, Some(member)) };
    let mut m = Map::new();
    if let Some(error) = error {
        m.insert("error".into(), error);
    }
    if let Some(id) = id {
        m.insert("id".into(), id.clone());
    }
    m.insert("jsonrpc".into(), Value::String(JSONRPC_VERSION.into()));
    if let Some(result) = result {
        m.insert(key.into(), result);
    }
    let mut line = Value::Object(m).to_string().into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fcp_error::ErrorCode;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn blank_lines_are_skipped_and_bad_lines_answered_without_id() {
        let mut r = RequestReader::new();
        let got = r.push(b"\n  \t\r\nnot json\n[1]\n{\"id\":\"0:1\"}\n{\"id\":7,\"method\":\"frobnicate\"}\n");
        let codes: Vec<(Option<Value>, ErrorCode)> = got
            .iter()
            .map(|i| (i.id.clone(), i.request.as_ref().map_err(RequestError::code).expect_err("bad")))
            .collect();
        assert_eq!(
            codes,
            [
                (None, ErrorCode::INVALID_JSON),
                (None, ErrorCode::INVALID_PARAMS),
                (Some(json!("0:1")), ErrorCode::INVALID_PARAMS),
                (Some(json!(7)), ErrorCode::UNKNOWN_METHOD),
            ]
        );
    }

    #[test]
    fn params_default_to_an_empty_object() {
        let i = Incoming::decode(br#"{"jsonrpc":"2.0","id":null,"method":"configure"}"#).expect("a request");
        assert_eq!(i.id, Some(Value::Null));
        assert_eq!(i.request, Ok(Request::Configure(Map::new())));
    }

    #[test]
    fn long_lines_are_answered_once_and_reading_goes_on() {
        let mut r = RequestReader::with_frame_cap(24);
        let got = r.push(b"{\"id\":\"0:0\",\"method\":\"health\"}\n{\"method\":\"health\"}\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].request, Err(RequestError::FrameTooLong { limit: 24 }));
        assert_eq!(got[1].request, Ok(Request::Health));
    }

    #[test]
    fn a_last_line_without_newline_counts() {
        let mut r = RequestReader::new();
        assert_eq!(r.push(br#"{"id":"0:0","method":"health","params":{}}"#), []);
        assert_eq!(r.finish().map(|i| i.request), Some(Ok(Request::Health)));
    }

    #[test]
    fn replies_are_sorted_and_compact() {
        let line = encode_result(Some(&json!("0:0")), json!({"status": "configured"}));
        assert_eq!(line, b"{\"id\":\"0:0\",\"jsonrpc\":\"2.0\",\"result\":{\"status\":\"configured\"}}\n");
        let e = FcpError::NotHandshaken.to_response();
        let line = encode_error(Some(&json!("0:3")), &e);
        assert_eq!(
            line,
            b"{\"error\":{\"code\":\"FCP-5003\",\"message\":\"Connector not handshaken\",\"retryable\":false},\"id\":\"0:3\",\"jsonrpc\":\"2.0\"}\n"
        );
        let line = encode_error(None, &FcpError::invalid_params("x").to_response());
        assert!(!String::from_utf8_lossy(&line).contains("\"id\""));
    }

    #[test]
    fn oversized_results_become_frame_errors() {
        let id = json!("0:5");
        let big = json!({"blob": "x".repeat(400)});
        let line = encode_response(Some(&id), Ok(big.clone()), 320);
        assert!(line.len() <= 321, "{}", line.len());
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v["error"]["code"], "FCP-7003");
        assert_eq!(v["error"]["details"]["service"], RESPONSE_FRAME_SERVICE);
        assert_eq!(v["id"], id);
        let tight = encode_response(Some(&id), Ok(big.clone()), 100);
        assert!(tight.len() <= 101, "{}", tight.len());
        let v: Value = serde_json::from_slice(&tight).expect("JSON");
        assert_eq!((&v["error"]["code"], &v["error"]["details"]), (&json!("FCP-7003"), &Value::Null));
        let fits = encode_response(Some(&id), Ok(big.clone()), 4096);
        assert_eq!(fits, encode_result(Some(&id), big));
        let long_error = FcpError::internal("é".repeat(400)).to_response();
        let line = encode_response(Some(&id), Err(long_error), 128);
        assert!(line.len() <= 129, "{}", line.len());
    }

    proptest! {
        #[test]
        fn arbitrary_stdin_never_panics_nor_overfills(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
            cap in 0usize..300,
        ) {
            let mut r = RequestReader::with_frame_cap(cap);
            for chunk in &chunks {
                for incoming in r.push(chunk) {
                    if let Err(e) = &incoming.request {
                        let line = encode_response(incoming.id.as_ref(), Err(e.to_fcp_error().to_response()), MAX_FRAME_BYTES);
                        prop_assert!(line.ends_with(b"\n"));
                    }
                }
                prop_assert!(r.buffered() <= cap);
            }
            let _ = r.finish();
        }
    }
}
