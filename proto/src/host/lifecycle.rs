//! `health`, `self_check` and `shutdown` (host-protocol §4.3, §4.5, §4.10).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check_tag;

/// The typed `health` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// The state.
    pub status: HealthState,
    /// Milliseconds since the connector started.
    pub uptime_ms: u64,
    /// Load, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f32>,
    /// Anything the connector wants to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Rate-limit state, connector-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Value>,
}

/// `HealthSnapshot.status`: an object tagged by `state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HealthState {
    /// Starting up.
    Starting,
    /// Ready for calls.
    Ready,
    /// Working, with a problem.
    Degraded {
        /// Why.
        reason: String,
    },
    /// Not working.
    Error {
        /// Why.
        reason: String,
    },
    /// Shutting down.
    Stopping,
}

/// The `self_check` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfCheckReport {
    /// Outcome.
    pub status: SelfCheckStatus,
    /// A machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Connector-specific details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// `SelfCheckReport.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfCheckStatus {
    /// All good.
    Ok,
    /// Working, with a problem.
    Degraded,
    /// Not working.
    Failed,
    /// The connector has no self check.
    Unsupported,
}

/// `shutdown` params. On the wire they start with `"type":"shutdown"`, which typed
/// connectors require (they answer `FCP-1003` without it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ShutdownWire", try_from = "ShutdownWire")]
pub struct ShutdownRequest {
    /// How long the connector may take (connectors default to 10 000).
    pub deadline_ms: Option<u64>,
    /// Whether to finish in-flight work first.
    pub drain: Option<bool>,
    /// Why.
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ShutdownWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drain: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<ShutdownRequest> for ShutdownWire {
    fn from(r: ShutdownRequest) -> ShutdownWire {
        ShutdownWire { kind: Some("shutdown".into()), deadline_ms: r.deadline_ms, drain: r.drain, reason: r.reason }
    }
}

impl TryFrom<ShutdownWire> for ShutdownRequest {
    type Error = String;
    fn try_from(w: ShutdownWire) -> Result<ShutdownRequest, String> {
        check_tag(w.kind.as_deref(), "shutdown")?;
        Ok(ShutdownRequest { deadline_ms: w.deadline_ms, drain: w.drain, reason: w.reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_states_are_tagged_by_state() {
        for (state, wire) in [
            (HealthState::Starting, json!({"state": "starting"})),
            (HealthState::Ready, json!({"state": "ready"})),
            (
                HealthState::Degraded { reason: "not configured".into() },
                json!({"state": "degraded", "reason": "not configured"}),
            ),
            (HealthState::Error { reason: "x".into() }, json!({"state": "error", "reason": "x"})),
            (HealthState::Stopping, json!({"state": "stopping"})),
        ] {
            assert_eq!(serde_json::to_value(&state).expect("serialises"), wire);
            assert_eq!(serde_json::from_value::<HealthState>(wire).expect("decodes"), state);
        }
    }

    #[test]
    fn shutdown_carries_its_type() {
        let r = ShutdownRequest { deadline_ms: Some(1000), drain: Some(false), reason: None };
        assert_eq!(
            serde_json::to_string(&r).expect("serialises"),
            r#"{"type":"shutdown","deadline_ms":1000,"drain":false}"#
        );
        assert_eq!(serde_json::from_str::<ShutdownRequest>("{}").expect("loose: no type"), ShutdownRequest::default());
        assert!(serde_json::from_str::<ShutdownRequest>(r#"{"type":"invoke"}"#).is_err());
    }

    #[test]
    fn self_check_report_round_trips() {
        let r = SelfCheckReport {
            status: SelfCheckStatus::Degraded,
            reason_code: Some("self_check_retryable".into()),
            message: Some("HTTP error".into()),
            details: None,
        };
        let v = serde_json::to_value(&r).expect("serialises");
        assert_eq!(v["status"], "degraded");
        assert_eq!(serde_json::from_value::<SelfCheckReport>(v).expect("decodes"), r);
    }
}
