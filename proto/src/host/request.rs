//! Requests (host-protocol §2, §4): the methods, the `"<epoch>:<seq>"` ids, the typed
//! [`Request`], its encoding as the reference host writes it, and its decoding on the
//! connector side.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::fcp_error::{ErrorCode, FcpError};
use super::handshake::HandshakeRequest;
use super::invoke::{InvokeRequest, SimulateRequest};
use super::lifecycle::ShutdownRequest;
use super::subscribe::{SubscribeRequest, UnsubscribeRequest};
use super::{JSONRPC_VERSION, MAX_FRAME_BYTES};

/// Every method a reference connector routes (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `configure` (§4.1).
    Configure,
    /// `handshake` (§4.2).
    Handshake,
    /// `health` (§4.3).
    Health,
    /// `introspect` (§4.4).
    Introspect,
    /// `self_check` (§4.5).
    SelfCheck,
    /// `doctor` (§4.6); the reference host never sends it.
    Doctor,
    /// `invoke` (§4.7).
    Invoke,
    /// `simulate` (§4.8).
    Simulate,
    /// `subscribe` (§4.9); the reference host never sends it.
    Subscribe,
    /// `unsubscribe` (§4.9); the reference host never sends it.
    Unsubscribe,
    /// `shutdown` (§4.10); the reference host never sends it.
    Shutdown,
}

impl Method {
    /// All methods.
    pub const ALL: [Method; 11] = [
        Method::Configure,
        Method::Handshake,
        Method::Health,
        Method::Introspect,
        Method::SelfCheck,
        Method::Doctor,
        Method::Invoke,
        Method::Simulate,
        Method::Subscribe,
        Method::Unsubscribe,
        Method::Shutdown,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Configure => "configure",
            Method::Handshake => "handshake",
            Method::Health => "health",
            Method::Introspect => "introspect",
            Method::SelfCheck => "self_check",
            Method::Doctor => "doctor",
            Method::Invoke => "invoke",
            Method::Simulate => "simulate",
            Method::Subscribe => "subscribe",
            Method::Unsubscribe => "unsubscribe",
            Method::Shutdown => "shutdown",
        }
    }

    /// The method with this wire name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request id, written as the JSON string `"<epoch>:<seq>"` (§2). `seq` counts up for
/// the life of the process; `epoch` goes up by one after each read timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId {
    /// Timeouts so far.
    pub epoch: u64,
    /// Requests so far.
    pub seq: u64,
}

impl RequestId {
    /// Parses the canonical form only: two decimal u64 without sign or leading zeros,
    /// so that a parsed id prints back as the same text.
    pub fn parse(s: &str) -> Option<RequestId> {
        fn number(s: &str) -> Option<u64> {
            let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
            if !canonical || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        let (epoch, seq) = s.split_once(':')?;
        Some(RequestId { epoch: number(epoch)?, seq: number(seq)? })
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.seq)
    }
}

/// A typed request: one variant per method, holding its params.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The operator's connector config, sent verbatim as params.
    Configure(Map<String, Value>),
    /// Binds the process to a zone and host key.
    Handshake(HandshakeRequest),
    /// Params `{}`.
    Health,
    /// Params `{}`.
    Introspect,
    /// Params `{}`.
    SelfCheck,
    /// Params `{}`.
    Doctor,
    /// Runs an operation.
    Invoke(Box<InvokeRequest>),
    /// Asks whether an invoke would succeed.
    Simulate(Box<SimulateRequest>),
    /// Subscribes to topics.
    Subscribe(SubscribeRequest),
    /// Unsubscribes.
    Unsubscribe(UnsubscribeRequest),
    /// Asks the connector to stop its work (it keeps reading until EOF).
    Shutdown(ShutdownRequest),
}

impl Request {
    /// The method.
    pub fn method(&self) -> Method {
        match self {
            Request::Configure(_) => Method::Configure,
            Request::Handshake(_) => Method::Handshake,
            Request::Health => Method::Health,
            Request::Introspect => Method::Introspect,
            Request::SelfCheck => Method::SelfCheck,
            Request::Doctor => Method::Doctor,
            Request::Invoke(_) => Method::Invoke,
            Request::Simulate(_) => Method::Simulate,
            Request::Subscribe(_) => Method::Subscribe,
            Request::Unsubscribe(_) => Method::Unsubscribe,
            Request::Shutdown(_) => Method::Shutdown,
        }
    }

    /// Decodes params for `method` as a typed connector reads them: every field the
    /// reference types require, unknown keys ignored, `type` checked when present.
    pub fn from_params(method: Method, params: Value) -> Result<Request, RequestError> {
        let invalid = |e: serde_json::Error| RequestError::InvalidParams { method, reason: e.to_string() };
        Ok(match method {
            Method::Configure => match params {
                Value::Object(config) => Request::Configure(config),
                _ => return Err(RequestError::InvalidParams { method, reason: "params must be an object".into() }),
            },
            Method::Handshake => Request::Handshake(serde_json::from_value(params).map_err(invalid)?),
            Method::Health => Request::Health,
            Method::Introspect => Request::Introspect,
            Method::SelfCheck => Request::SelfCheck,
            Method::Doctor => Request::Doctor,
            Method::Invoke => Request::Invoke(Box::new(serde_json::from_value(params).map_err(invalid)?)),
            Method::Simulate => Request::Simulate(Box::new(serde_json::from_value(params).map_err(invalid)?)),
            Method::Subscribe => Request::Subscribe(serde_json::from_value(params).map_err(invalid)?),
            Method::Unsubscribe => Request::Unsubscribe(serde_json::from_value(params).map_err(invalid)?),
            Method::Shutdown => Request::Shutdown(serde_json::from_value(params).map_err(invalid)?),
        })
    }
}

/// Why a request could not be encoded (host side) or read (connector side).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A request line longer than the frame cap (connector side).
    #[error("request line exceeds {limit} bytes")]
    FrameTooLong {
        /// The cap.
        limit: usize,
    },
    /// A line that is not UTF-8.
    #[error("request line is not valid UTF-8")]
    InvalidUtf8,
    /// A line that is not JSON.
    #[error("invalid JSON: {reason}")]
    InvalidJson {
        /// The parser's message.
        reason: String,
    },
    /// JSON that is not an object.
    #[error("request is not a JSON object")]
    NotAnObject,
    /// No string `method`.
    #[error("request has no method")]
    MissingMethod,
    /// A method no connector routes.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// Params that do not decode.
    #[error("invalid {method} params: {reason}")]
    InvalidParams {
        /// The method.
        method: Method,
        /// The decoder's message.
        reason: String,
    },
    /// An encoded request over the frame cap; refused before writing, the transport stays
    /// usable (host side, §1).
    #[error("request of {len} bytes exceeds the frame cap of {limit}")]
    Oversized {
        /// Encoded length without the `\n`.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// serde_json refused to encode the params (only a non-string map key can cause it).
    #[error("encode request params: {reason}")]
    Encode {
        /// serde_json's message.
        reason: String,
    },
}

impl RequestError {
    /// The code a connector answers with (§6.2: 1001 bad JSON/frame, 1002 unknown
    /// method, 1003 bad params). The host-side encode failures use 1003 too.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::FrameTooLong { .. } | RequestError::InvalidUtf8 | RequestError::InvalidJson { .. } => {
                ErrorCode::INVALID_JSON
            }
            RequestError::UnknownMethod(_) => ErrorCode::UNKNOWN_METHOD,
            RequestError::NotAnObject
            | RequestError::MissingMethod
            | RequestError::InvalidParams { .. }
            | RequestError::Oversized { .. }
            | RequestError::Encode { .. } => ErrorCode::INVALID_PARAMS,
        }
    }

    /// The `InvalidRequest` a connector answers with. An unknown method reads
    /// "Unknown method: …", as in the reference connectors.
    pub fn to_fcp_error(&self) -> FcpError {
        let message = match self {
            RequestError::UnknownMethod(name) => format!("Unknown method: {name}"),
            other => other.to_string(),
        };
        FcpError::InvalidRequest { code: self.code(), message }
    }
}

#[derive(Serialize)]
struct Envelope<'a, P: Serialize> {
    jsonrpc: &'static str,
    id: String,
    method: &'static str,
    params: &'a P,
}

/// `{}`.
#[derive(Serialize)]
struct NoParams {}

/// One request line, `\n` included, exactly as the reference host writes it (compact
/// JSON, keys `jsonrpc, id, method, params`, params in the reference field order). Over
/// [`MAX_FRAME_BYTES`] it is refused.
pub fn encode_request(id: RequestId, request: &Request) -> Result<Vec<u8>, RequestError> {
    encode_request_within(id, request, MAX_FRAME_BYTES)
}

/// [`encode_request`] with another frame cap.
pub fn encode_request_within(id: RequestId, request: &Request, frame_cap: usize) -> Result<Vec<u8>, RequestError> {
    fn line<P: Serialize>(id: RequestId, method: Method, params: &P) -> Result<Vec<u8>, RequestError> {
        let envelope = Envelope { jsonrpc: JSONRPC_VERSION, id: id.to_string(), method: method.as_str(), params };
        serde_json::to_vec(&envelope).map_err(|e| RequestError::Encode { reason: e.to_string() })
    }
    let method = request.method();
    let mut bytes = match request {
        Request::Configure(config) => line(id, method, config),
        Request::Handshake(p) => line(id, method, p),
        Request::Health | Request::Introspect | Request::SelfCheck | Request::Doctor => line(id, method, &NoParams {}),
        Request::Invoke(p) => line(id, method, p),
        Request::Simulate(p) => line(id, method, p),
        Request::Subscribe(p) => line(id, method, p),
        Request::Unsubscribe(p) => line(id, method, p),
        Request::Shutdown(p) => line(id, method, p),
    }?;
    if bytes.len() > frame_cap {
        return Err(RequestError::Oversized { len: bytes.len(), limit: frame_cap });
    }
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ZoneId;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.as_str()), Some(m));
        }
        assert_eq!(Method::from_name("frobnicate"), None);
        assert_eq!(Method::from_name("Health"), None);
    }

    #[test]
    fn ids_parse_only_in_canonical_form() {
        assert_eq!(RequestId::parse("0:0"), Some(RequestId { epoch: 0, seq: 0 }));
        assert_eq!(RequestId::parse("1:7"), Some(RequestId { epoch: 1, seq: 7 }));
        let max = format!("{}:{}", u64::MAX, u64::MAX);
        assert_eq!(RequestId::parse(&max), Some(RequestId { epoch: u64::MAX, seq: u64::MAX }));
        for bad in
            ["", ":", "0", "0:", ":0", "00:1", "0:01", "+1:1", "-1:1", "1:1:1", "a:1", " 0:0", "18446744073709551616:0"]
        {
            assert_eq!(RequestId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parameterless_methods_send_empty_objects() {
        let line = encode_request(RequestId { epoch: 0, seq: 1 }, &Request::Health).expect("encodes");
        assert_eq!(line, b"{\"jsonrpc\":\"2.0\",\"id\":\"0:1\",\"method\":\"health\",\"params\":{}}\n");
    }

    #[test]
    fn oversized_requests_are_refused() {
        let mut config = Map::new();
        config.insert("blob".into(), json!("x".repeat(100)));
        let id = RequestId { epoch: 0, seq: 0 };
        let r = Request::Configure(config);
        let err = encode_request_within(id, &r, 64).expect_err("over the cap");
        assert!(matches!(err, RequestError::Oversized { limit: 64, len } if len > 64), "{err}");
        let full = encode_request_within(id, &r, 4096).expect("fits");
        let exact = encode_request_within(id, &r, full.len() - 1).expect("the cap excludes the newline");
        assert_eq!(exact, full);
    }

    #[test]
    fn params_decode_per_method() {
        assert!(matches!(Request::from_params(Method::Doctor, json!({"ignored": 1})), Ok(Request::Doctor)));
        let err = Request::from_params(Method::Configure, json!([1])).expect_err("not an object");
        assert_eq!(err.code(), ErrorCode::INVALID_PARAMS);
        let err = Request::from_params(Method::Handshake, json!({})).expect_err("fields missing");
        assert_eq!(err.code(), ErrorCode::INVALID_PARAMS);
        assert!(err.to_string().starts_with("invalid handshake params: missing field"), "{err}");
        let e = RequestError::UnknownMethod("frobnicate".into()).to_fcp_error();
        assert_eq!(e.to_string(), "Invalid request: Unknown method: frobnicate");
        assert_eq!(e.code(), ErrorCode::UNKNOWN_METHOD);
    }

    fn any_request() -> impl Strategy<Value = Request> {
        let zone = ZoneId::new("z:work").expect("zone");
        prop_oneof![
            proptest::collection::btree_map("[a-z_]{1,8}", "[ -~]{0,16}", 0..4)
                .prop_map(|m| { Request::Configure(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()) }),
            (any::<[u8; 32]>(), any::<[u8; 32]>(), proptest::option::of("/[a-z/]{0,20}")).prop_map(
                move |(k, n, dir)| {
                    let mut h = HandshakeRequest::new(zone.clone(), k, n);
                    h.zone_dir = dir;
                    Request::Handshake(h)
                }
            ),
            Just(Request::Health),
            Just(Request::Introspect),
            Just(Request::SelfCheck),
            Just(Request::Doctor),
            (any::<Option<u64>>(), any::<Option<bool>>(), proptest::option::of("[ -~]{0,16}")).prop_map(
                |(deadline_ms, drain, reason)| Request::Shutdown(ShutdownRequest { deadline_ms, drain, reason })
            ),
        ]
    }

    proptest! {
        #[test]
        fn encoded_requests_decode_back(seq in any::<u64>(), epoch in any::<u64>(), request in any_request()) {
            let id = RequestId { epoch, seq };
            let line = encode_request(id, &request).expect("small requests encode");
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let v: Value = serde_json::from_slice(&line).expect("JSON");
            prop_assert_eq!(&v["jsonrpc"], "2.0");
            prop_assert_eq!(v["id"].as_str().and_then(RequestId::parse), Some(id));
            let method = v["method"].as_str().and_then(Method::from_name).expect("known method");
            let back = Request::from_params(method, v["params"].clone()).expect("decodes");
            prop_assert_eq!(back, request);
        }

        #[test]
        fn ids_round_trip(epoch in any::<u64>(), seq in any::<u64>()) {
            let id = RequestId { epoch, seq };
            prop_assert_eq!(RequestId::parse(&id.to_string()), Some(id));
        }
    }
}
