//! The local control socket between `fcp`/agents and `fcpd`: versioned, typed
//! messages, one JSON object per line (spec/agent-api.md).
//!
//! A request is `{"v": 1, "id": N, "request": {"type": "...", ...}}`; the answer is
//! `{"v": 1, "id": N, "ok": {...}}` or `{"v": 1, "id": N, "error": {"code", "message"}}`.
//! Unknown fields and unknown types are refused, never ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only protocol version.
pub const CONTROL_VERSION: u32 = 1;
/// Longest request or response line.
pub const MAX_CONTROL_LINE: usize = 8 * 1024 * 1024;

/// One request on the control socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlEnvelope {
    /// Protocol version; must be [`CONTROL_VERSION`].
    pub v: u32,
    /// Caller-chosen id echoed in the answer.
    pub id: u64,
    /// The request.
    pub request: ControlRequest,
}

/// What a caller asks fcpd to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    /// Daemon, keys, zones, connectors and kernel features.
    Status,
    /// Install a package file for one zone. fcpd reads the file only if the caller
    /// owns it (or is root), so it cannot be used to read files the caller could not.
    Install {
        /// Absolute path of the package file.
        package_path: String,
        /// Zone the instance is bound to.
        zone: String,
    },
    /// Installed connectors.
    List,
    /// Set an instance's operator config, sent with `configure` at its next start.
    /// Credentials go as `credential_id` references; a value under a secret-looking
    /// key is refused unless `allow_inline_secrets` (audited either way).
    Configure {
        /// Connector id.
        connector: String,
        /// Zone.
        zone: String,
        /// The config object.
        config: Value,
        /// The owner allows inline secrets for this connector.
        #[serde(default)]
        allow_inline_secrets: bool,
    },
    /// Stop an instance if it runs, start it again and wait for its first `health`
    /// answer: the connector's cold start, measured by fcpd.
    Restart {
        /// Connector id.
        connector: String,
        /// Zone.
        zone: String,
    },
    /// Owner grants a capability and this node mints a token for it.
    Grant {
        /// Zone.
        zone: String,
        /// Connector whose operation is granted.
        connector: String,
        /// Operation id.
        operation: String,
        /// Principal the token is for.
        principal: String,
        /// Token lifetime (default 300 s, at most 86,400 s).
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// Invoke an operation through the pipeline.
    Invoke(InvokeCall),
    /// Why a request was allowed or denied.
    Explain {
        /// The request id an invoke answered with.
        request_id: String,
    },
    /// Owner revokes something.
    Revoke {
        /// Zone.
        zone: String,
        /// What.
        target: RevokeTarget,
        /// Why, for people.
        reason: String,
    },
    /// Audit events of a zone after a seq.
    AuditTail {
        /// Zone.
        zone: String,
        /// Only events with a greater seq.
        #[serde(default)]
        after_seq: Option<u64>,
        /// Most events (default 50).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Recompute a zone's chain from the store.
    AuditVerify {
        /// Zone.
        zone: String,
    },
    /// The egress proxy's live jails: their links, addresses, the operation running,
    /// and their counters.
    EgressStatus,
    /// Store a credential the egress proxy injects for connectors configured with its
    /// `credential_id`, only toward `hosts`. Replaces one with the same id.
    CredentialAdd {
        /// The id connectors name (`credential_id`, `X-FCP-Credential-ID`).
        id: String,
        /// Where it may be sent: names, or `*.` wildcards.
        hosts: Vec<String>,
        /// How it is sent.
        auth: CredentialAuth,
        /// The secret: the token, password or header value.
        secret: SecretText,
        /// A dummy value connectors may be configured with instead; replaced in flight.
        #[serde(default)]
        placeholder: Option<String>,
    },
    /// The stored credentials: ids, hosts and kinds, never secrets.
    CredentialList,
    /// Forget a credential.
    CredentialRemove {
        /// Its id.
        id: String,
    },
}

/// How a credential is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialAuth {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(user:secret)`.
    Basic {
        /// The user name.
        user: String,
    },
    /// `<header>: <secret>`.
    Header {
        /// The header name.
        header: String,
    },
}

/// A secret on the control socket: zeroized on drop, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What a revocation names, as the CLI writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RevokeTarget {
    /// A token by its `cti` (hex).
    Token(String),
    /// A grant by its ObjectId (hex).
    Grant(String),
    /// An issuance key by kid (hex).
    IssuerKey(String),
    /// A connector binary by BLAKE3 (hex).
    ConnectorBinary(String),
}

/// An invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeCall {
    /// Zone the caller speaks from.
    pub zone: String,
    /// Connector id.
    pub connector: String,
    /// Operation id.
    pub operation: String,
    /// JSON input.
    pub input: Value,
    /// Capability token (standard base64), if any.
    #[serde(default)]
    pub token_b64: Option<String>,
    /// Principal (agent) making the call.
    pub principal: String,
    /// Same key, same receipt: the earlier answer is returned without running again.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// W3C `traceparent`.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// The caller declares its intent; required for risky and dangerous operations.
    #[serde(default)]
    pub intent: bool,
}

/// fcpd's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlResponse {
    /// Protocol version.
    pub v: u32,
    /// The request's id.
    pub id: u64,
    /// Success payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    /// Failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
}

/// A failure on the control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlError {
    /// Stable code, e.g. `request.malformed`, `connector.not_installed`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// Why a control line cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlCodecError {
    /// Longer than [`MAX_CONTROL_LINE`].
    #[error("control line of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not a request of this protocol.
    #[error("malformed control message: {0}")]
    Malformed(String),
    /// Another version.
    #[error("unsupported control protocol version {0}")]
    Version(u32),
}

impl ControlCodecError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ControlCodecError::TooLong(_) => "request.too_long",
            ControlCodecError::Malformed(_) => "request.malformed",
            ControlCodecError::Version(_) => "request.version",
        }
    }
}

impl ControlEnvelope {
    /// Reads one request line (without its `\n`).
    pub fn decode(line: &[u8]) -> Result<Self, ControlCodecError> {
        if line.len() > MAX_CONTROL_LINE {
            return Err(ControlCodecError::TooLong(line.len()));
        }
        let env: ControlEnvelope =
            serde_json::from_slice(line).map_err(|e| ControlCodecError::Malformed(e.to_string()))?;
        if env.v != CONTROL_VERSION {
            return Err(ControlCodecError::Version(env.v));
        }
        Ok(env)
    }

    /// One line, `\n`-terminated.
    pub fn encode(&self) -> Result<Vec<u8>, ControlCodecError> {
        let mut v = serde_json::to_vec(self).map_err(|e| ControlCodecError::Malformed(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }
}

impl ControlResponse {
    /// A success.
    pub fn ok(id: u64, value: Value) -> Self {
        ControlResponse { v: CONTROL_VERSION, id, ok: Some(value), error: None }
    }

    /// A failure.
    pub fn err(id: u64, code: &str, message: impl Into<String>) -> Self {
        ControlResponse {
            v: CONTROL_VERSION,
            id,
            ok: None,
            error: Some(ControlError { code: code.to_owned(), message: message.into() }),
        }
    }

    /// One line, `\n`-terminated.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| {
            b"{\"v\":1,\"id\":0,\"error\":{\"code\":\"internal\",\"message\":\"unencodable response\"}}".to_vec()
        });
        v.push(b'\n');
        v
    }

    /// Reads one response line.
    pub fn decode(line: &[u8]) -> Result<Self, ControlCodecError> {
        if line.len() > MAX_CONTROL_LINE {
            return Err(ControlCodecError::TooLong(line.len()));
        }
        serde_json::from_slice(line).map_err(|e| ControlCodecError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip_and_refuse_unknowns() {
        let env = ControlEnvelope {
            v: 1,
            id: 7,
            request: ControlRequest::Invoke(InvokeCall {
                zone: "z:work".into(),
                connector: "fcp.echo".into(),
                operation: "echo".into(),
                input: serde_json::json!({"message": "hi"}),
                token_b64: Some("AAAA".into()),
                principal: "agent:alice".into(),
                idempotency_key: Some("k1".into()),
                traceparent: None,
                intent: false,
            }),
        };
        let line = env.encode().expect("encode");
        assert_eq!(ControlEnvelope::decode(&line[..line.len() - 1]).expect("decode"), env);
        let with_extra = br#"{"v":1,"id":1,"request":{"type":"invoke","zone":"z","connector":"c","operation":"o","input":1,"principal":"p","evil":1}}"#;
        assert_eq!(ControlEnvelope::decode(with_extra).map_err(|e| e.code()).err(), Some("request.malformed"));
        assert_eq!(
            ControlEnvelope::decode(br#"{"v":1,"id":1,"request":{"type":"status"},"extra":1}"#)
                .map_err(|e| e.code())
                .err(),
            Some("request.malformed")
        );
        assert_eq!(
            ControlEnvelope::decode(br#"{"v":1,"id":1,"request":{"type":"format_disk"}}"#).map_err(|e| e.code()).err(),
            Some("request.malformed")
        );
        assert_eq!(
            ControlEnvelope::decode(br#"{"v":2,"id":1,"request":{"type":"status"}}"#).map_err(|e| e.code()).err(),
            Some("request.version")
        );
        let r = ControlEnvelope::decode(br#"{"v":1,"id":3,"request":{"type":"revoke","zone":"z:work","target":{"kind":"token","id":"ab"},"reason":"x"}}"#)
            .expect("revoke");
        assert!(matches!(r.request, ControlRequest::Revoke { target: RevokeTarget::Token(_), .. }));
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ControlEnvelope::decode(&bytes);
            let _ = ControlResponse::decode(&bytes);
        }
    }
}
