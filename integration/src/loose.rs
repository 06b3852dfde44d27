//! `fcp-test-loose`: the loose dialect (host-protocol §9), like tavily or todoist. It
//! parses no typed request: it reads the raw JSON, takes only `operation_id` and `input`
//! from an invoke (as 56 reference connectors do, §4.7), refuses `handshake` before
//! `configure` with `FCP-5002` (as tavily does, §3), answers the handshake ad hoc with no
//! nonce and no status, its health ad hoc, and every invoke with the bare output.

use fcp_proto::host::{encode_error, encode_result, ErrorCode, FcpError};
use serde_json::{json, Map, Value};

use crate::ops;

/// The connector id in `connectors/fcp-test-loose.toml`.
pub const CONNECTOR_ID: &str = "fcp.test.loose";

/// Life-cycle state of one process.
#[derive(Debug, Default)]
pub struct Loose {
    configured: bool,
    handshaken: bool,
    requests: u64,
}

impl Loose {
    /// The reply line for one request line; `None` for a blank line.
    pub fn answer(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(line) else {
            let e = FcpError::InvalidRequest { code: ErrorCode::INVALID_JSON, message: "Invalid JSON".into() };
            return Some(encode_error(None, &e.to_response()));
        };
        let id = request.remove("id");
        let method = request.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        let params = match request.remove("params") {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        Some(match self.dispatch(&method, &params) {
            Ok(result) => encode_result(id.as_ref(), result),
            Err(e) => encode_error(id.as_ref(), &e.to_response()),
        })
    }

    fn dispatch(&mut self, method: &str, params: &Map<String, Value>) -> Result<Value, FcpError> {
        match method {
            "configure" => {
                self.configured = true;
                Ok(json!({"connector_id": CONNECTOR_ID, "configured": true, "auth_mode": "none"}))
            }
            "handshake" if !self.configured => Err(FcpError::NotConfigured),
            "handshake" => {
                self.handshaken = true;
                Ok(json!({
                    "connector_id": CONNECTOR_ID,
                    "connector_version": env!("CARGO_PKG_VERSION"),
                    "protocol_version": "2.0",
                    "capabilities": [ops::CAPABILITY],
                    "streaming_supported": false,
                }))
            }
            "health" => Ok(json!({
                "status": if self.configured { "healthy" } else { "unconfigured" },
                "configured": self.configured,
                "handshaken": self.handshaken,
                "requests": self.requests,
            })),
            "introspect" => Ok(json!({
                "connector_id": CONNECTOR_ID,
                "version": env!("CARGO_PKG_VERSION"),
                "operations": ops::OPERATIONS.iter().map(|id| json!({"id": id, "capability": ops::CAPABILITY})).collect::<Vec<_>>(),
            })),
            "invoke" => {
                if !self.configured {
                    return Err(FcpError::NotConfigured);
                }
                let Some(operation) = params.get("operation_id").and_then(Value::as_str) else {
                    return Err(FcpError::invalid_params("Missing operation_id"));
                };
                self.requests += 1;
                let caller_id = params.get("id").and_then(Value::as_str).unwrap_or_default();
                ops::run(operation, caller_id, params.get("input").cloned().unwrap_or_else(|| json!({})))
            }
            "simulate" => Ok(json!({"allowed": true, "reason": "Supported operation."})),
            "self_check" => Ok(json!({"status": "ok"})),
            "doctor" => Ok(json!({"ready": self.configured, "passed": true, "checks": []})),
            "shutdown" => {
                self.configured = false;
                self.handshaken = false;
                Ok(json!({}))
            }
            other => Err(FcpError::InvalidRequest {
                code: ErrorCode::UNKNOWN_METHOD,
                message: format!("Unknown method: {other}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(c: &mut Loose, line: &str) -> Value {
        let out = c.answer(line.as_bytes()).expect("a request line gets a reply");
        serde_json::from_slice(&out).expect("the reply is JSON")
    }

    #[test]
    fn handshake_is_refused_before_configure_and_invoke_reads_only_operation_id() {
        let mut c = Loose::default();
        let hs = r#"{"jsonrpc":"2.0","id":"0:0","method":"handshake","params":{"zone":"z:work","nonce":[1]}}"#;
        assert_eq!(reply(&mut c, hs)["error"]["code"], "FCP-5002");
        let cfg = r#"{"jsonrpc":"2.0","id":"0:1","method":"configure","params":{}}"#;
        assert_eq!(reply(&mut c, cfg)["result"]["configured"], true);
        let hs = reply(&mut c, hs);
        assert_eq!(hs["result"]["protocol_version"], "2.0");
        assert_eq!(hs["result"].get("nonce"), None, "a loose handshake carries no nonce");
        let only_operation =
            r#"{"jsonrpc":"2.0","id":"0:2","method":"invoke","params":{"id":"r","operation":"echo","input":{"a":1}}}"#;
        assert_eq!(reply(&mut c, only_operation)["error"]["code"], "FCP-1003");
        let with_id = r#"{"jsonrpc":"2.0","id":"0:3","method":"invoke","params":{"id":"r","operation":"echo","operation_id":"echo","input":{"a":1}}}"#;
        let ok = reply(&mut c, with_id);
        assert_eq!((ok["id"].clone(), ok["result"].clone()), (json!("0:3"), json!({"a": 1})));
    }
}
