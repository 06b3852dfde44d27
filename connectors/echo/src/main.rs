//! `fcp-echo`, the `fcp.echo` connector (`manifest.toml`): the smallest real connector,
//! for tests and benchmarks of the host protocol. `echo` returns its input; `fail` fails
//! with the FCP error its input describes in the category-tagged form
//! (host-protocol §6.2), or with `Internal` when it describes none. It takes no config,
//! opens no socket and touches no file. The protocol itself is fcp-sdk's.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use fcp_sdk::{
    AiHints, ApprovalMode, ConnectorError, ConnectorInfo, FcpConnector, FcpError, Idempotency, Introspection,
    OperationInfo, RiskLevel, SafetyTier, SelfCheckReport, SelfCheckStatus, SimulateRequest, SimulateResponse,
};
use serde_json::{json, Map, Value};

/// The capability both operations need.
const CAPABILITY: &str = "echo.call";

/// The connector; it has no state.
#[derive(Clone, Copy, Debug, Default)]
struct Echo;

impl FcpConnector for Echo {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "fcp.echo",
            version: env!("CARGO_PKG_VERSION"),
            manifest_toml: include_str!("../manifest.toml"),
        }
    }

    fn introspect(&self) -> Introspection {
        Introspection {
            operations: vec![
                operation(
                    "echo",
                    "Returns its input unchanged.",
                    json!({}),
                    hints("Testing the path from agent to connector and back.", r#"{"hello": "world"}"#, "fail"),
                ),
                operation(
                    "fail",
                    "Fails with the FCP error its input describes (category-tagged), or with Internal.",
                    json!({"type": "object"}),
                    hints(
                        "Testing how failures travel back to the caller.",
                        r#"{"category": "RateLimited", "retry_after_ms": 250}"#,
                        "echo",
                    ),
                ),
            ],
            ..Introspection::default()
        }
    }

    /// There is nothing to configure; any key is a mistake and is refused (fail closed).
    fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError> {
        match config.keys().next() {
            None => Ok(()),
            Some(key) => Err(FcpError::InvalidRequest {
                code: fcp_sdk::ErrorCode::INVALID_JSON,
                message: format!("fcp.echo takes no config; unknown key {key:?}"),
            }),
        }
    }

    fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError> {
        match operation {
            "echo" => Ok(input),
            "fail" => {
                Err(serde_json::from_value(input).unwrap_or_else(|_| FcpError::internal("fcp.echo was asked to fail")))
            }
            other => Err(FcpError::unknown_operation(other)),
        }
    }

    fn simulate(&mut self, request: &SimulateRequest) -> SimulateResponse {
        let would_succeed = request.operation.as_str() == "echo";
        let mut verdict = SimulateResponse::verdict(request.id.clone(), would_succeed);
        if !would_succeed {
            verdict.failure_reason = Some("fail always fails".into());
        }
        verdict
    }

    fn self_check(&mut self) -> SelfCheckReport {
        SelfCheckReport { status: SelfCheckStatus::Ok, reason_code: None, message: None, details: None }
    }
}

fn operation(id: &str, description: &str, input_schema: Value, ai_hints: AiHints) -> OperationInfo {
    OperationInfo {
        id: id.into(),
        summary: description.into(),
        description: Some(description.into()),
        input_schema,
        output_schema: json!({}),
        capability: CAPABILITY.into(),
        risk_level: RiskLevel::Low,
        safety_tier: SafetyTier::Safe,
        idempotency: Idempotency::Strict,
        ai_hints,
        rate_limit: None,
        requires_approval: Some(ApprovalMode::None),
    }
}

fn hints(when_to_use: &str, example: &str, related: &str) -> AiHints {
    AiHints {
        when_to_use: when_to_use.into(),
        common_mistakes: Vec::new(),
        examples: vec![example.into()],
        related: vec![related.into()],
    }
}

fn main() -> ExitCode {
    // The loop logs its own failure to stderr.
    match fcp_sdk::run(Echo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_returns_its_input() {
        let input = json!({"nested": [1, "two", {"three": null}]});
        assert_eq!(Echo.invoke("echo", input.clone()), Ok(input));
    }

    #[test]
    fn fail_fails_as_asked() {
        let asked = json!({"category": "ResourceNotFound", "resource": "echo://nothing"});
        assert_eq!(Echo.invoke("fail", asked), Err(FcpError::ResourceNotFound { resource: "echo://nothing".into() }));
        assert_eq!(Echo.invoke("fail", json!({})), Err(FcpError::internal("fcp.echo was asked to fail")));
    }

    #[test]
    fn config_keys_are_refused() {
        assert_eq!(Echo.configure(&Map::new()), Ok(()));
        let config = Map::from_iter([("api_key".to_owned(), json!("x"))]);
        assert_eq!(Echo.configure(&config).map_err(|e| e.code()), Err(fcp_sdk::ErrorCode::INVALID_JSON));
    }
}
