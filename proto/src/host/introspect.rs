//! `introspect` (host-protocol §4.4): the connector's operation catalogue.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::decision::SafetyTier;

use super::handshake::EventCaps;

/// The typed `introspect` result. Unknown extra keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Introspection {
    /// The operations.
    pub operations: Vec<OperationInfo>,
    /// Events, connector-specific.
    #[serde(default)]
    pub events: Vec<Value>,
    /// Resource types, connector-specific.
    #[serde(default)]
    pub resource_types: Vec<Value>,
    /// Auth capabilities, connector-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_caps: Option<Value>,
    /// Event capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_caps: Option<EventCaps>,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationInfo {
    /// The operation id.
    pub id: String,
    /// One line.
    pub summary: String,
    /// More.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// JSON Schema of the output.
    pub output_schema: Value,
    /// The capability the operation needs.
    pub capability: String,
    /// Risk.
    pub risk_level: RiskLevel,
    /// Safety tier.
    pub safety_tier: SafetyTier,
    /// Idempotency.
    pub idempotency: Idempotency,
    /// Hints for an AI caller.
    #[serde(default)]
    pub ai_hints: AiHints,
    /// Rate limit, connector-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Value>,
    /// Approval needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<ApprovalMode>,
}

/// `risk_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// `idempotency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idempotency {
    /// Not idempotent.
    None,
    /// Idempotent where the provider allows.
    BestEffort,
    /// Idempotent.
    Strict,
}

/// `requires_approval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// No approval.
    None,
    /// Policy decides.
    Policy,
    /// A human approves.
    Interactive,
    /// An elevation token is needed.
    ElevationToken,
}

/// `ai_hints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiHints {
    /// When to use the operation.
    #[serde(default)]
    pub when_to_use: String,
    /// Common mistakes.
    #[serde(default)]
    pub common_mistakes: Vec<String>,
    /// Examples.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Related operations.
    #[serde(default)]
    pub related: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_operation_decodes_and_round_trips() {
        let wire = json!({
            "ai_hints": {"when_to_use": "w", "common_mistakes": [], "examples": ["e"], "related": []},
            "capability": "hackernews.read",
            "description": "d",
            "id": "hackernews.item.get",
            "idempotency": "strict",
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object"},
            "risk_level": "low",
            "safety_tier": "safe",
            "summary": "s",
            "extra": "ignored"
        });
        let op: OperationInfo = serde_json::from_value(wire.clone()).expect("decodes");
        assert_eq!(op.idempotency, Idempotency::Strict);
        assert_eq!(op.safety_tier, SafetyTier::Safe);
        let mut expected = wire;
        expected.as_object_mut().expect("object").remove("extra");
        assert_eq!(serde_json::to_value(&op).expect("serialises"), expected);
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        let bad = json!({"id": "x", "summary": "s", "input_schema": {}, "output_schema": {}, "capability": "c",
            "risk_level": "extreme", "safety_tier": "safe", "idempotency": "none"});
        assert!(serde_json::from_value::<OperationInfo>(bad).is_err());
    }
}
