//! `fcp-test-typed`: the typed dialect (host-protocol §9), on fcp-sdk's loop. The SDK
//! answers with a typed handshake (nonce echoed), a `HealthSnapshot` and
//! `InvokeResponse` envelopes, and refuses invokes before `configure` and `handshake`.

use fcp_sdk::{
    AiHints, ApprovalMode, ConnectorError, ConnectorInfo, FcpConnector, FcpError, Idempotency, Introspection,
    InvokeRequest, OperationInfo, RiskLevel, SafetyTier,
};
use serde_json::{json, Map, Value};

use crate::ops;

/// The connector id in `connectors/fcp-test-typed.toml`.
pub const CONNECTOR_ID: &str = "fcp.test.typed";

/// The typed test connector; it keeps no state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Typed;

impl FcpConnector for Typed {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: CONNECTOR_ID,
            version: env!("CARGO_PKG_VERSION"),
            manifest_toml: include_str!("../connectors/fcp-test-typed.toml"),
        }
    }

    fn introspect(&self) -> Introspection {
        Introspection {
            operations: ops::OPERATIONS.iter().map(|id| operation(id)).collect(),
            ..Introspection::default()
        }
    }

    /// It takes no config: any key is refused (fail closed), so a test can watch fcpd
    /// handle a refused `configure`.
    fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError> {
        match config.keys().next() {
            None => Ok(()),
            Some(key) => Err(FcpError::invalid_params(format!("{CONNECTOR_ID} takes no config; unknown key {key:?}"))),
        }
    }

    fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError> {
        ops::run(operation, "", input)
    }

    fn invoke_request(&mut self, request: InvokeRequest) -> Result<Value, ConnectorError> {
        ops::run(request.operation.as_str(), &request.id, request.input)
    }
}

fn operation(id: &str) -> OperationInfo {
    OperationInfo {
        id: id.into(),
        summary: format!("fcp-integration test operation {id}"),
        description: None,
        input_schema: if id == "echo" { json!({"type": "object"}) } else { json!({}) },
        output_schema: json!({}),
        capability: ops::CAPABILITY.into(),
        risk_level: RiskLevel::Low,
        safety_tier: SafetyTier::Safe,
        idempotency: Idempotency::Strict,
        ai_hints: AiHints::default(),
        rate_limit: None,
        requires_approval: Some(ApprovalMode::None),
    }
}
