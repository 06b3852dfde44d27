//! `fcp-test-mixed`: the mixed dialect (host-protocol §9), like github or slack. It reads
//! requests as a typed connector does (`fcp_proto::host::Incoming`) and answers the
//! handshake typed, with the nonce echoed; but its health is an ad-hoc object and its
//! invoke result is the bare operation output, not an `InvokeResponse` envelope.

use std::time::Instant;

use fcp_proto::host::{
    encode_error, encode_result, CapabilityGrant, EventCaps, FcpError, HandshakeResponse, Incoming, Request,
};
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ops;

/// The connector id in `connectors/fcp-test-mixed.toml`.
pub const CONNECTOR_ID: &str = "fcp.test.mixed";

const MANIFEST: &str = include_str!("../connectors/fcp-test-mixed.toml");

/// Life-cycle state of one process.
#[derive(Debug)]
pub struct Mixed {
    started: Instant,
    configured: bool,
    handshaken: bool,
    requests: u64,
}

impl Default for Mixed {
    fn default() -> Mixed {
        Mixed { started: Instant::now(), configured: false, handshaken: false, requests: 0 }
    }
}

impl Mixed {
    /// The reply line for one request line; `None` for a blank line.
    pub fn answer(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let incoming = Incoming::decode(line)?;
        let outcome = match incoming.request {
            Ok(request) => self.dispatch(request),
            Err(e) => Err(e.to_fcp_error()),
        };
        Some(match outcome {
            Ok(result) => encode_result(incoming.id.as_ref(), result),
            Err(e) => encode_error(incoming.id.as_ref(), &e.to_response()),
        })
    }

    fn dispatch(&mut self, request: Request) -> Result<Value, FcpError> {
        match request {
            Request::Configure(_) => {
                self.configured = true;
                Ok(json!({"status": "configured"}))
            }
            Request::Handshake(h) => {
                let mut session = [0u8; 16];
                OsRng.fill_bytes(&mut session);
                self.handshaken = true;
                let response = HandshakeResponse {
                    status: HandshakeResponse::ACCEPTED.into(),
                    capabilities_granted: h
                        .capabilities_requested
                        .iter()
                        .map(|c| CapabilityGrant { capability: c.to_string(), operation: None })
                        .collect(),
                    session_id: uuid::Builder::from_random_bytes(session).into_uuid().to_string(),
                    manifest_hash: format!("sha256:{}", hex::encode(Sha256::digest(MANIFEST.as_bytes()))),
                    nonce: h.nonce,
                    event_caps: Some(EventCaps::default()),
                    auth_caps: None,
                    op_catalog_hash: None,
                };
                serde_json::to_value(response).map_err(|e| FcpError::internal(e.to_string()))
            }
            // Loose: what 129 of 180 reference connectors answer (host-protocol §4.3).
            Request::Health => Ok(json!({
                "status": if self.configured { "healthy" } else { "unconfigured" },
                "configured": self.configured,
                "handshaken": self.handshaken,
                "requests": self.requests,
                "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            })),
            Request::Introspect => Ok(json!({
                "operations": ops::OPERATIONS.iter().map(|id| json!({"id": id, "capability": ops::CAPABILITY})).collect::<Vec<_>>(),
            })),
            Request::Invoke(req) => {
                if !self.configured {
                    return Err(FcpError::NotConfigured);
                }
                if !self.handshaken {
                    return Err(FcpError::NotHandshaken);
                }
                self.requests += 1;
                // Bare: the output itself is the result.
                ops::run(req.operation.as_str(), &req.id, req.input)
            }
            Request::Simulate(req) => Ok(json!({
                "allowed": ops::OPERATIONS.contains(&req.operation.as_str()),
                "reason": "mixed test connector",
            })),
            Request::SelfCheck => Ok(json!({"status": "ok"})),
            Request::Doctor => Ok(json!({"ready": self.configured, "passed": true, "checks": []})),
            Request::Subscribe(_) | Request::Unsubscribe(_) => Err(FcpError::StreamingNotSupported),
            Request::Shutdown(_) => {
                self.configured = false;
                self.handshaken = false;
                Ok(json!({"status": "shutdown_accepted"}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(c: &mut Mixed, line: &str) -> Value {
        let out = c.answer(line.as_bytes()).expect("a request line gets a reply");
        serde_json::from_slice(&out).expect("the reply is JSON")
    }

    #[test]
    fn typed_handshake_loose_health_and_bare_invoke() {
        let mut c = Mixed::default();
        let invoke = r#"{"jsonrpc":"2.0","id":"0:9","method":"invoke","params":{"type":"invoke","id":"r","connector_id":"fcp.test.mixed","operation":"echo","zone_id":"z:work","input":{"a":1},"capability_token":[]}}"#;
        assert_eq!(reply(&mut c, invoke)["error"]["code"], "FCP-5002");
        assert_eq!(
            reply(&mut c, r#"{"jsonrpc":"2.0","id":"0:0","method":"configure","params":{}}"#)["result"]["status"],
            "configured"
        );
        assert_eq!(reply(&mut c, invoke)["error"]["code"], "FCP-5003");
        let nonce: Vec<u8> = (1..=32).collect();
        let hs = json!({"jsonrpc": "2.0", "id": "0:1", "method": "handshake", "params": {
            "protocol_version": "1.0.0", "zone": "z:work", "host_public_key": vec![0u8; 32], "nonce": nonce, "capabilities_requested": []}});
        let hs = reply(&mut c, &hs.to_string());
        assert_eq!((&hs["result"]["status"], &hs["result"]["nonce"]), (&json!("accepted"), &json!(nonce)));
        let health = reply(&mut c, r#"{"jsonrpc":"2.0","id":"0:2","method":"health","params":{}}"#);
        assert_eq!(health["result"]["status"], "healthy", "a loose health is a bare status string");
        assert_eq!(reply(&mut c, invoke)["result"], json!({"a": 1}), "a bare invoke result is the output itself");
    }
}
