//! `fcp-http`, the `fcp.http` connector (`manifest.toml`): `http.get` and `http.post` to
//! the hosts its config allows.
//!
//! - **Config** (`configure`): `{"allow_hosts": [...], "allow_plain_http": false,
//!   "max_response_bytes": 32768, "timeout_ms": 30000}`, all optional (`config.rs`). No
//!   `allow_hosts` refuses every URL. Plain `http://` is refused unless
//!   `allow_plain_http` is set.
//! - **Allow list** (`allow.rs`): checked on the parsed URL before any connection.
//!   Redirects are not followed (a 3xx comes back as data); URLs with credentials and
//!   callers setting `Host`, framing or proxy headers are refused.
//! - **Egress.** `HTTPS_PROXY` and `SSL_CERT_FILE` are honoured (the egress issue sets
//!   them to route through its proxy); the manifest's `network_constraints` are what that
//!   proxy enforces on every connection, so this allow list can only narrow it.
//! - **Output**: `{status, headers, body, truncated, headers_truncated}`. `body` is text
//!   (invalid UTF-8 replaced), at most `max_response_bytes` bytes and cut further to fit
//!   the 64 KiB frame.
//! - **Errors** are typed (host-protocol §6.2): bad input `InvalidRequest` (1003), a host
//!   outside the allow list `ResourceNotAllowed` (3004), a timeout `UpstreamTimeout`
//!   (7002), other network failures `External` (7003).
//!
//! TLS is rustls with the bundled Mozilla roots (ring; no OpenSSL). The protocol itself
//! is fcp-sdk's.

#![forbid(unsafe_code)]

mod allow;
mod config;
mod fetch;

use std::process::ExitCode;

use fcp_sdk::{
    AiHints, ApprovalMode, ConnectorError, ConnectorInfo, FcpConnector, FcpError, Idempotency, Introspection,
    OperationInfo, RiskLevel, SafetyTier, SelfCheckReport, SelfCheckStatus, ShutdownRequest, SimulateRequest,
    SimulateResponse,
};
use serde_json::{json, Map, Value};
use ureq::http::Method;

use crate::config::{Client, Env};

/// The capability of `http.get`.
const READ_CAPABILITY: &str = "http.read";
/// The capability of `http.post`.
const WRITE_CAPABILITY: &str = "http.write";

/// The connector: its environment, and the client once configured.
#[derive(Debug, Default)]
struct Http {
    env: Env,
    client: Option<Client>,
}

fn method_of(operation: &str) -> Option<Method> {
    match operation {
        "http.get" => Some(Method::GET),
        "http.post" => Some(Method::POST),
        _ => None,
    }
}

impl FcpConnector for Http {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "fcp.http",
            version: env!("CARGO_PKG_VERSION"),
            manifest_toml: include_str!("../manifest.toml"),
        }
    }

    fn introspect(&self) -> Introspection {
        Introspection { operations: catalogue(), ..Introspection::default() }
    }

    /// Builds the client; on failure the previous one (if any) stays in use.
    fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError> {
        self.client = Some(config::configure(config, &self.env)?);
        Ok(())
    }

    fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError> {
        let client = self.client.as_ref().ok_or(FcpError::NotConfigured)?;
        let method = method_of(operation).ok_or_else(|| FcpError::unknown_operation(operation))?;
        let checked = fetch::check(client, method, input)?;
        Ok(fetch::send(client, checked)?)
    }

    /// Would the request be sent? Input, URL and allow list are checked; nothing is
    /// connected, so the far side may still fail.
    fn simulate(&mut self, request: &SimulateRequest) -> SimulateResponse {
        let outcome = match (self.client.as_ref(), method_of(request.operation.as_str())) {
            (None, _) => Err(FcpError::NotConfigured),
            (_, None) => Err(FcpError::unknown_operation(request.operation.as_str())),
            (Some(client), Some(method)) => {
                fetch::check(client, method, request.input.clone()).map(drop).map_err(FcpError::from)
            }
        };
        let mut verdict = SimulateResponse::verdict(request.id.clone(), outcome.is_ok());
        if let Err(e) = outcome {
            verdict.failure_reason = Some(e.to_string());
            verdict.denial_code = Some(e.code());
        }
        verdict
    }

    /// No request is made: a live check would be traffic the caller did not ask for.
    fn self_check(&mut self) -> SelfCheckReport {
        let (status, message) = match &self.client {
            None => (SelfCheckStatus::Degraded, Some("not configured".to_owned())),
            Some(c) if c.allow.is_empty() => {
                (SelfCheckStatus::Degraded, Some("allow_hosts is empty: every URL is refused".to_owned()))
            }
            Some(_) => (SelfCheckStatus::Ok, None),
        };
        SelfCheckReport { status, reason_code: None, message, details: None }
    }

    fn shutdown(&mut self, _: &ShutdownRequest) {
        self.client = None;
    }
}

/// The catalogue; `manifest.toml`'s `[provides.operations]` says the same
/// (tests/host_protocol.rs checks field by field).
fn catalogue() -> Vec<OperationInfo> {
    let common_mistakes = vec![
        "Only hosts in the operator's allow_hosts can be reached; others fail with ResourceNotAllowed.".to_owned(),
        "Redirects are not followed: ask again for the Location header's URL.".to_owned(),
    ];
    vec![
        OperationInfo {
            id: "http.get".into(),
            summary: "Sends an HTTPS GET to an allowed host and returns status, headers and body text.".into(),
            description: Some("Sends an HTTPS GET to an allowed host and returns status, headers and body text.".into()),
            input_schema: request_schema(false),
            output_schema: response_schema(),
            capability: READ_CAPABILITY.into(),
            risk_level: RiskLevel::Low,
            safety_tier: SafetyTier::Safe,
            idempotency: Idempotency::BestEffort,
            ai_hints: AiHints {
                when_to_use: "Reading a web API the operator allowed.".into(),
                common_mistakes: common_mistakes.clone(),
                examples: vec![r#"{"url": "https://api.github.com/zen", "headers": {"accept": "text/plain"}}"#.into()],
                related: vec!["http.post".into()],
            },
            rate_limit: None,
            requires_approval: Some(ApprovalMode::None),
        },
        OperationInfo {
            id: "http.post".into(),
            summary: "Sends an HTTPS POST with a text body to an allowed host and returns the response.".into(),
            description: Some(
                "Sends an HTTPS POST with a text body to an allowed host and returns the response.".into(),
            ),
            input_schema: request_schema(true),
            output_schema: response_schema(),
            capability: WRITE_CAPABILITY.into(),
            risk_level: RiskLevel::Medium,
            safety_tier: SafetyTier::Risky,
            idempotency: Idempotency::None,
            ai_hints: AiHints {
                when_to_use: "Changing something through a web API the operator allowed.".into(),
                common_mistakes,
                examples: vec![
                    r##"{"url": "https://api.github.com/markdown", "headers": {"content-type": "application/json"}, "body": "{\"text\": \"# hi\"}"}"##
                        .into(),
                ],
                related: vec!["http.get".into()],
            },
            rate_limit: None,
            requires_approval: Some(ApprovalMode::Policy),
        },
    ]
}

fn request_schema(with_body: bool) -> Value {
    let mut properties = json!({
        "url": {"type": "string", "description": "An https URL whose host is in the config's allow_hosts."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers."},
    });
    if with_body {
        properties["body"] = json!({"type": "string", "description": "The request body, as text."});
    }
    json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": properties})
}

fn response_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "headers", "body", "truncated", "headers_truncated"],
        "properties": {
            "status": {"type": "integer"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
            "truncated": {"type": "boolean"},
            "headers_truncated": {"type": "boolean"},
        },
    })
}

fn main() -> ExitCode {
    let connector = Http { env: Env::from_process(), client: None };
    // The loop logs its own failure to stderr.
    match fcp_sdk::run(connector) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcp_sdk::{ErrorCode, SimulateRequest};

    fn configured(config: Value) -> Http {
        let Value::Object(config) = config else { panic!("object") };
        let mut http = Http::default();
        http.configure(&config).expect("config");
        http
    }

    fn simulate(http: &mut Http, operation: &str, input: Value) -> SimulateResponse {
        let request: SimulateRequest = serde_json::from_value(json!({
            "id": "sim", "connector_id": "fcp.http", "operation": operation, "zone_id": "z:work",
            "input": input, "capability_token": [], "estimate_cost": false, "check_availability": false,
        }))
        .expect("simulate request");
        http.simulate(&request)
    }

    #[test]
    fn an_empty_allow_list_refuses_everything() {
        let mut http = configured(json!({}));
        let e = http.invoke("http.get", json!({"url": "https://api.github.com/"})).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::RESOURCE_NOT_ALLOWED);
        assert_eq!(http.self_check().status, SelfCheckStatus::Degraded);
    }

    #[test]
    fn simulate_checks_without_connecting() {
        let mut http = configured(json!({"allow_hosts": ["api.github.com"]}));
        let yes = simulate(&mut http, "http.get", json!({"url": "https://api.github.com/zen"}));
        assert_eq!((yes.would_succeed, yes.denial_code), (true, None));
        let no = simulate(&mut http, "http.post", json!({"url": "https://evil.example/"}));
        assert_eq!((no.would_succeed, no.denial_code), (false, Some(ErrorCode::RESOURCE_NOT_ALLOWED)));
        let bad = simulate(&mut http, "http.get", json!({"url": "https://api.github.com/", "body": "x"}));
        assert_eq!(bad.denial_code, Some(ErrorCode::INVALID_PARAMS));
        assert_eq!(http.self_check().status, SelfCheckStatus::Ok);
    }

    #[test]
    fn unconfigured_unknown_and_shut_down() {
        let mut http = Http::default();
        assert_eq!(http.invoke("http.get", json!({})), Err(FcpError::NotConfigured));
        let mut http = configured(json!({"allow_hosts": ["api.github.com"]}));
        assert_eq!(http.invoke("http.put", json!({})).map_err(|e| e.code()), Err(ErrorCode::UNKNOWN_METHOD));
        let bad = Map::from_iter([("allow_hosts".to_owned(), json!(["*"]))]);
        assert_eq!(http.configure(&bad).map_err(|e| e.code()), Err(ErrorCode::INVALID_JSON));
        let kept = simulate(&mut http, "http.get", json!({"url": "https://api.github.com/"}));
        assert!(kept.would_succeed, "a refused reconfigure keeps the working client");
        http.shutdown(&ShutdownRequest::default());
        assert_eq!(http.invoke("http.get", json!({})), Err(FcpError::NotConfigured));
    }
}
