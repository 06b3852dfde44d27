//! The FCP error taxonomy (host-protocol §6): the `FCP-NNNN` codes, the category-tagged
//! [`FcpError`] that travels inside an `InvokeResponse`, and the [`FcpErrorResponse`]
//! that is the JSON-RPC `error` member.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// An FCP error code, written `FCP-` plus four digits on the wire (host-protocol §6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(u16);

impl ErrorCode {
    /// Ours, never sent: an error member whose `code` is not `FCP-NNNN`.
    pub const UNSPECIFIED: ErrorCode = ErrorCode(0);
    /// Bad JSON, bad frame or bad config.
    pub const INVALID_JSON: ErrorCode = ErrorCode(1001);
    /// Unknown method or operation.
    pub const UNKNOWN_METHOD: ErrorCode = ErrorCode(1002);
    /// Bad or missing params.
    pub const INVALID_PARAMS: ErrorCode = ErrorCode(1003);
    /// Checksum mismatch, or an operation-level request error.
    pub const CHECKSUM_MISMATCH: ErrorCode = ErrorCode(1004);
    /// Version mismatch, or an operation-level request error.
    pub const VERSION_MISMATCH: ErrorCode = ErrorCode(1005);
    /// A missing required field.
    pub const MISSING_FIELD: ErrorCode = ErrorCode(1006);
    /// The capability token has expired.
    pub const TOKEN_EXPIRED: ErrorCode = ErrorCode(2002);
    /// The capability token signature does not verify.
    pub const INVALID_SIGNATURE: ErrorCode = ErrorCode(2003);
    /// The capability token is not valid yet.
    pub const TOKEN_NOT_YET_VALID: ErrorCode = ErrorCode(2005);
    /// The capability is denied.
    pub const CAPABILITY_DENIED: ErrorCode = ErrorCode(3001);
    /// Rate limited (retryable).
    pub const RATE_LIMITED: ErrorCode = ErrorCode(3002);
    /// The token does not grant this operation.
    pub const OPERATION_NOT_GRANTED: ErrorCode = ErrorCode(3003);
    /// The resource is outside the token's constraints.
    pub const RESOURCE_NOT_ALLOWED: ErrorCode = ErrorCode(3004);
    /// A token constraint denies the call.
    pub const CONSTRAINT_DENIED: ErrorCode = ErrorCode(3005);
    /// The denial code of the default `simulate`; no [`FcpError`] variant has it.
    pub const SIMULATION_DENIED: ErrorCode = ErrorCode(3010);
    /// Zone violation.
    pub const ZONE_VIOLATION: ErrorCode = ErrorCode(4001);
    /// Taint violation.
    pub const TAINT_VIOLATION: ErrorCode = ErrorCode(4002);
    /// Elevation required.
    pub const ELEVATION_REQUIRED: ErrorCode = ErrorCode(4003);
    /// `configure` has not succeeded yet.
    pub const NOT_CONFIGURED: ErrorCode = ErrorCode(5002);
    /// `handshake` has not succeeded yet.
    pub const NOT_HANDSHAKEN: ErrorCode = ErrorCode(5003);
    /// A health check failed.
    pub const HEALTH_CHECK_FAILED: ErrorCode = ErrorCode(5004);
    /// The connector does not stream.
    pub const STREAMING_NOT_SUPPORTED: ErrorCode = ErrorCode(5005);
    /// The configuration leaked a secret.
    pub const CONFIGURATION_LEAKED_SECRET: ErrorCode = ErrorCode(5006);
    /// Resource not found.
    pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(6001);
    /// Resource exhausted (retryable).
    pub const RESOURCE_EXHAUSTED: ErrorCode = ErrorCode(6002);
    /// Conflict.
    pub const CONFLICT: ErrorCode = ErrorCode(6003);
    /// Budget exceeded (retryable).
    pub const BUDGET_EXCEEDED: ErrorCode = ErrorCode(6004);
    /// An external service answered 429.
    pub const EXTERNAL_RATE_LIMITED: ErrorCode = ErrorCode(7001);
    /// An external service timed out (504, or `UpstreamTimeout`).
    pub const UPSTREAM_TIMEOUT: ErrorCode = ErrorCode(7002);
    /// Any other external failure, or `DependencyUnavailable`.
    pub const DEPENDENCY_UNAVAILABLE: ErrorCode = ErrorCode(7003);
    /// Internal connector error.
    pub const INTERNAL: ErrorCode = ErrorCode(9001);

    /// A code from its number; `None` above 9999, which four digits cannot write.
    pub const fn new(n: u16) -> Option<ErrorCode> {
        if n <= 9999 {
            Some(ErrorCode(n))
        } else {
            None
        }
    }

    /// The number after `FCP-`.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Parses exactly `FCP-` followed by four ASCII digits.
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        let digits = s.strip_prefix("FCP-")?;
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(ErrorCode)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FCP-{:04}", self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({self})")
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ErrorCode::from_wire(&s)
            .ok_or_else(|| serde::de::Error::custom("error code must be \"FCP-\" followed by four digits"))
    }
}

/// The inner `code` of `InvalidRequest`, `MalformedFrame`, `Unauthorized` and
/// `ConnectorUnavailable` is a bare integer in the category-tagged form.
mod numeric_code {
    use super::ErrorCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(code: &ErrorCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(code.get())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        let n = u16::deserialize(d)?;
        ErrorCode::new(n).ok_or_else(|| serde::de::Error::custom(format!("error code {n} has more than four digits")))
    }
}

/// The FCP error taxonomy (host-protocol §6.2). On the wire inside an `InvokeResponse`
/// it is internally tagged by `category`; as a JSON-RPC error it becomes an
/// [`FcpErrorResponse`] through [`FcpError::to_response`].
///
/// The `Display` text is the wire `message` and follows the reference wording
/// ("Connector not handshaken"), so our connectors read like the reference ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "category")]
pub enum FcpError {
    /// A bad request; `code` is 1001–1005.
    #[error("Invalid request: {message}")]
    InvalidRequest {
        /// The code, not normalised: connectors use 1001–1005 freely.
        #[serde(with = "numeric_code")]
        code: ErrorCode,
        /// What was wrong.
        message: String,
    },
    /// A malformed frame.
    #[error("Malformed frame: {message}")]
    MalformedFrame {
        /// The code.
        #[serde(with = "numeric_code")]
        code: ErrorCode,
        /// What was wrong.
        message: String,
    },
    /// A required field is missing (1006).
    #[error("Missing required field: {field}")]
    MissingField {
        /// The field.
        field: String,
    },
    /// Checksum mismatch (1004).
    #[error("Checksum mismatch")]
    ChecksumMismatch,
    /// Version mismatch (1005).
    #[error("Version mismatch: expected {expected}, got {actual}")]
    VersionMismatch {
        /// The version expected.
        expected: String,
        /// The version seen.
        actual: String,
    },
    /// Unauthorized, with its own code.
    #[error("Unauthorized: {message}")]
    Unauthorized {
        /// The code.
        #[serde(with = "numeric_code")]
        code: ErrorCode,
        /// What was wrong.
        message: String,
    },
    /// The token has expired (2002).
    #[error("Token expired")]
    TokenExpired,
    /// The token is not valid yet (2005).
    #[error("Token not yet valid")]
    TokenNotYetValid,
    /// The token signature does not verify (2003).
    #[error("Invalid signature")]
    InvalidSignature,
    /// The capability is denied (3001).
    #[error("Capability denied: {capability}: {reason}")]
    CapabilityDenied {
        /// The capability.
        capability: String,
        /// Why.
        reason: String,
    },
    /// Rate limited (3002, retryable).
    #[error("Rate limited: retry after {retry_after_ms} ms")]
    RateLimited {
        /// When to retry.
        retry_after_ms: u64,
        /// Which limit, connector-specific.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        violation: Option<Value>,
    },
    /// The token does not grant the operation (3003).
    #[error("Operation not granted: {operation}")]
    OperationNotGranted {
        /// The operation.
        operation: String,
    },
    /// The resource is not allowed (3004).
    #[error("Resource not allowed: {resource}")]
    ResourceNotAllowed {
        /// The resource.
        resource: String,
    },
    /// A token constraint denies the call (3005).
    #[error("Capability constraint denied ({kind}, {claim_type}): {detail}")]
    CapabilityConstraintDenied {
        /// `exact_mismatch`, …
        kind: String,
        /// The claim type.
        claim_type: String,
        /// Details.
        detail: String,
    },
    /// Zone violation (4001).
    #[error("Zone violation: {message}")]
    ZoneViolation {
        /// The source zone.
        source_zone: String,
        /// The target zone.
        target_zone: String,
        /// What was wrong.
        message: String,
    },
    /// Taint violation (4002).
    #[error("Taint violation: {origin_zone} -> {target_zone} for {capability}")]
    TaintViolation {
        /// The origin zone.
        origin_zone: String,
        /// The target zone.
        target_zone: String,
        /// The capability.
        capability: String,
    },
    /// Elevation required (4003).
    #[error("Elevation required for {capability}")]
    ElevationRequired {
        /// The capability.
        capability: String,
        /// How long an elevation would last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_seconds: Option<u64>,
    },
    /// The connector is unavailable (retryable), with its own code.
    #[error("Connector unavailable: {message}")]
    ConnectorUnavailable {
        /// The code.
        #[serde(with = "numeric_code")]
        code: ErrorCode,
        /// What was wrong.
        message: String,
    },
    /// `configure` has not succeeded (5002).
    #[error("Connector not configured")]
    NotConfigured,
    /// `handshake` has not succeeded (5003).
    #[error("Connector not handshaken")]
    NotHandshaken,
    /// A health check failed (5004).
    #[error("Health check failed: {reason}")]
    HealthCheckFailed {
        /// Why.
        reason: String,
    },
    /// The connector does not stream (5005).
    #[error("Streaming not supported")]
    StreamingNotSupported,
    /// The configuration leaked a secret (5006).
    #[error("Configuration leaked a secret (detector {detector})")]
    ConfigurationLeakedSecret {
        /// A hash of the field name.
        field_name_hash: String,
        /// Which detector fired.
        detector: String,
    },
    /// Resource not found (6001).
    #[error("Resource not found: {resource}")]
    ResourceNotFound {
        /// The resource.
        resource: String,
    },
    /// Resource exhausted (6002, retryable).
    #[error("Resource exhausted: {resource}")]
    ResourceExhausted {
        /// The resource.
        resource: String,
    },
    /// Conflict (6003).
    #[error("Conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// Budget exceeded (6004, retryable).
    #[error("Budget exceeded: {metric} {used}/{limit} in {window_seconds} s")]
    BudgetExceeded {
        /// The metric.
        metric: String,
        /// Used so far.
        used: u64,
        /// The limit.
        limit: u64,
        /// The window.
        window_seconds: u64,
    },
    /// An external service failed: 7001 for HTTP 429, 7002 for 504, else 7003.
    #[error("External service error ({service}): {message}")]
    External {
        /// The service.
        service: String,
        /// What failed.
        message: String,
        /// The HTTP status, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_code: Option<u16>,
        /// Whether a retry may succeed.
        retryable: bool,
        /// When to retry, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// The upstream timed out (7002, retryable).
    #[error("Upstream timeout: {service}")]
    UpstreamTimeout {
        /// The service.
        service: String,
    },
    /// A dependency is unavailable (7003, retryable).
    #[error("Dependency unavailable: {service}")]
    DependencyUnavailable {
        /// The service.
        service: String,
    },
    /// Internal connector error (9001).
    #[error("Internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl FcpError {
    /// `InvalidRequest` with code 1003: bad or missing params.
    pub fn invalid_params(message: impl Into<String>) -> FcpError {
        FcpError::InvalidRequest { code: ErrorCode::INVALID_PARAMS, message: message.into() }
    }

    /// `InvalidRequest` with code 1002: an operation the connector does not have.
    pub fn unknown_operation(operation: &str) -> FcpError {
        FcpError::InvalidRequest { code: ErrorCode::UNKNOWN_METHOD, message: format!("Unknown operation: {operation}") }
    }

    /// `Internal` (9001).
    pub fn internal(message: impl Into<String>) -> FcpError {
        FcpError::Internal { message: message.into() }
    }

    /// The `category` tag: the variant name.
    pub fn category(&self) -> &'static str {
        match self {
            FcpError::InvalidRequest { .. } => "InvalidRequest",
            FcpError::MalformedFrame { .. } => "MalformedFrame",
            FcpError::MissingField { .. } => "MissingField",
            FcpError::ChecksumMismatch => "ChecksumMismatch",
            FcpError::VersionMismatch { .. } => "VersionMismatch",
            FcpError::Unauthorized { .. } => "Unauthorized",
            FcpError::TokenExpired => "TokenExpired",
            FcpError::TokenNotYetValid => "TokenNotYetValid",
            FcpError::InvalidSignature => "InvalidSignature",
            FcpError::CapabilityDenied { .. } => "CapabilityDenied",
            FcpError::RateLimited { .. } => "RateLimited",
            FcpError::OperationNotGranted { .. } => "OperationNotGranted",
            FcpError::ResourceNotAllowed { .. } => "ResourceNotAllowed",
            FcpError::CapabilityConstraintDenied { .. } => "CapabilityConstraintDenied",
            FcpError::ZoneViolation { .. } => "ZoneViolation",
            FcpError::TaintViolation { .. } => "TaintViolation",
            FcpError::ElevationRequired { .. } => "ElevationRequired",
            FcpError::ConnectorUnavailable { .. } => "ConnectorUnavailable",
            FcpError::NotConfigured => "NotConfigured",
            FcpError::NotHandshaken => "NotHandshaken",
            FcpError::HealthCheckFailed { .. } => "HealthCheckFailed",
            FcpError::StreamingNotSupported => "StreamingNotSupported",
            FcpError::ConfigurationLeakedSecret { .. } => "ConfigurationLeakedSecret",
            FcpError::ResourceNotFound { .. } => "ResourceNotFound",
            FcpError::ResourceExhausted { .. } => "ResourceExhausted",
            FcpError::Conflict { .. } => "Conflict",
            FcpError::BudgetExceeded { .. } => "BudgetExceeded",
            FcpError::External { .. } => "External",
            FcpError::UpstreamTimeout { .. } => "UpstreamTimeout",
            FcpError::DependencyUnavailable { .. } => "DependencyUnavailable",
            FcpError::Internal { .. } => "Internal",
        }
    }

    /// The wire code (host-protocol §6.2 table).
    pub fn code(&self) -> ErrorCode {
        match self {
            FcpError::InvalidRequest { code, .. }
            | FcpError::MalformedFrame { code, .. }
            | FcpError::Unauthorized { code, .. }
            | FcpError::ConnectorUnavailable { code, .. } => *code,
            FcpError::MissingField { .. } => ErrorCode::MISSING_FIELD,
            FcpError::ChecksumMismatch => ErrorCode::CHECKSUM_MISMATCH,
            FcpError::VersionMismatch { .. } => ErrorCode::VERSION_MISMATCH,
            FcpError::TokenExpired => ErrorCode::TOKEN_EXPIRED,
            FcpError::TokenNotYetValid => ErrorCode::TOKEN_NOT_YET_VALID,
            FcpError::InvalidSignature => ErrorCode::INVALID_SIGNATURE,
            FcpError::CapabilityDenied { .. } => ErrorCode::CAPABILITY_DENIED,
            FcpError::RateLimited { .. } => ErrorCode::RATE_LIMITED,
            FcpError::OperationNotGranted { .. } => ErrorCode::OPERATION_NOT_GRANTED,
            FcpError::ResourceNotAllowed { .. } => ErrorCode::RESOURCE_NOT_ALLOWED,
            FcpError::CapabilityConstraintDenied { .. } => ErrorCode::CONSTRAINT_DENIED,
            FcpError::ZoneViolation { .. } => ErrorCode::ZONE_VIOLATION,
            FcpError::TaintViolation { .. } => ErrorCode::TAINT_VIOLATION,
            FcpError::ElevationRequired { .. } => ErrorCode::ELEVATION_REQUIRED,
            FcpError::NotConfigured => ErrorCode::NOT_CONFIGURED,
            FcpError::NotHandshaken => ErrorCode::NOT_HANDSHAKEN,
            FcpError::HealthCheckFailed { .. } => ErrorCode::HEALTH_CHECK_FAILED,
            FcpError::StreamingNotSupported => ErrorCode::STREAMING_NOT_SUPPORTED,
            FcpError::ConfigurationLeakedSecret { .. } => ErrorCode::CONFIGURATION_LEAKED_SECRET,
            FcpError::ResourceNotFound { .. } => ErrorCode::RESOURCE_NOT_FOUND,
            FcpError::ResourceExhausted { .. } => ErrorCode::RESOURCE_EXHAUSTED,
            FcpError::Conflict { .. } => ErrorCode::CONFLICT,
            FcpError::BudgetExceeded { .. } => ErrorCode::BUDGET_EXCEEDED,
            FcpError::External { status_code: Some(429), .. } => ErrorCode::EXTERNAL_RATE_LIMITED,
            FcpError::External { status_code: Some(504), .. } | FcpError::UpstreamTimeout { .. } => {
                ErrorCode::UPSTREAM_TIMEOUT
            }
            FcpError::External { .. } | FcpError::DependencyUnavailable { .. } => ErrorCode::DEPENDENCY_UNAVAILABLE,
            FcpError::Internal { .. } => ErrorCode::INTERNAL,
        }
    }

    /// Whether a retry may succeed (§6.2 table; `External` says so itself).
    pub fn retryable(&self) -> bool {
        match self {
            FcpError::RateLimited { .. }
            | FcpError::ConnectorUnavailable { .. }
            | FcpError::ResourceExhausted { .. }
            | FcpError::BudgetExceeded { .. }
            | FcpError::UpstreamTimeout { .. }
            | FcpError::DependencyUnavailable { .. } => true,
            FcpError::External { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// When to retry, in milliseconds, if the variant says.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            FcpError::RateLimited { retry_after_ms, .. } => Some(*retry_after_ms),
            FcpError::External { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The JSON-RPC `error` member for this error (§6.1). `details` holds the variant's
    /// fields other than `code`, `message`, `retryable` and `retry_after` (so `External`
    /// gives `{service, status_code}` and `CapabilityDenied` `{capability, reason}`), or
    /// is absent when nothing is left.
    pub fn to_response(&self) -> FcpErrorResponse {
        let details = match serde_json::to_value(self) {
            Ok(Value::Object(mut fields)) => {
                for key in ["category", "code", "message", "retryable", "retry_after"] {
                    fields.remove(key);
                }
                (!fields.is_empty()).then_some(Value::Object(fields))
            }
            _ => None,
        };
        FcpErrorResponse {
            code: self.code(),
            message: self.to_string(),
            retryable: self.retryable(),
            retry_after_ms: self.retry_after_ms(),
            details,
            ai_recovery_hint: None,
        }
    }
}

/// The JSON-RPC `error` member (host-protocol §6.1): not a JSON-RPC error object, its
/// `code` is a string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FcpErrorResponse {
    /// `FCP-NNNN`.
    pub code: ErrorCode,
    /// The error's display text.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// When to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Variant-specific fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Advice for an AI caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_recovery_hint: Option<String>,
}

impl FcpErrorResponse {
    /// Reads an `error` member tolerantly: this never fails, because the member's only
    /// job is to say the call failed. Missing or mistyped fields take defaults; a `code`
    /// that is not `FCP-NNNN` becomes [`ErrorCode::UNSPECIFIED`] and, when `details` is
    /// absent, the whole member is kept as `details`. A string member becomes the message.
    pub fn from_wire(member: &Value) -> FcpErrorResponse {
        let empty = Map::new();
        let (fields, message_fallback) = match member {
            Value::Object(fields) => (fields, String::new()),
            Value::String(s) => (&empty, s.clone()),
            other => (&empty, other.to_string()),
        };
        let code = fields.get("code").and_then(Value::as_str).and_then(ErrorCode::from_wire);
        let mut details = fields.get("details").cloned();
        if code.is_none() && details.is_none() {
            details = Some(member.clone());
        }
        FcpErrorResponse {
            code: code.unwrap_or(ErrorCode::UNSPECIFIED),
            message: fields.get("message").and_then(Value::as_str).map_or(message_fallback, str::to_owned),
            retryable: fields.get("retryable").and_then(Value::as_bool).unwrap_or(false),
            retry_after_ms: fields.get("retry_after_ms").and_then(Value::as_u64),
            details,
            ai_recovery_hint: fields.get("ai_recovery_hint").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

impl From<&FcpError> for FcpErrorResponse {
    fn from(e: &FcpError) -> FcpErrorResponse {
        e.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One value of every variant, with the code and retryability of the §6.2 table.
    fn every_variant() -> Vec<(FcpError, u16, bool)> {
        let s = |x: &str| x.to_owned();
        vec![
            (
                FcpError::InvalidRequest { code: ErrorCode::UNKNOWN_METHOD, message: s("Unknown method: x") },
                1002,
                false,
            ),
            (FcpError::InvalidRequest { code: ErrorCode::VERSION_MISMATCH, message: s("op-level") }, 1005, false),
            (FcpError::MalformedFrame { code: ErrorCode::INVALID_JSON, message: s("bad") }, 1001, false),
            (FcpError::MissingField { field: s("instance_id") }, 1006, false),
            (FcpError::ChecksumMismatch, 1004, false),
            (FcpError::VersionMismatch { expected: s("1"), actual: s("2") }, 1005, false),
            (
                FcpError::Unauthorized { code: ErrorCode::new(2001).expect("2001 < 10000"), message: s("no") },
                2001,
                false,
            ),
            (FcpError::TokenExpired, 2002, false),
            (FcpError::TokenNotYetValid, 2005, false),
            (FcpError::InvalidSignature, 2003, false),
            (FcpError::CapabilityDenied { capability: s("a.b"), reason: s("r") }, 3001, false),
            (FcpError::RateLimited { retry_after_ms: 1500, violation: Some(json!({"pool": "p"})) }, 3002, true),
            (FcpError::OperationNotGranted { operation: s("a.op") }, 3003, false),
            (FcpError::ResourceNotAllowed { resource: s("r://x") }, 3004, false),
            (
                FcpError::CapabilityConstraintDenied { kind: s("exact_mismatch"), claim_type: s("c"), detail: s("d") },
                3005,
                false,
            ),
            (FcpError::ZoneViolation { source_zone: s("z:a"), target_zone: s("z:b"), message: s("m") }, 4001, false),
            (
                FcpError::TaintViolation { origin_zone: s("z:a"), target_zone: s("z:b"), capability: s("c") },
                4002,
                false,
            ),
            (FcpError::ElevationRequired { capability: s("c"), ttl_seconds: Some(60) }, 4003, false),
            (
                FcpError::ConnectorUnavailable { code: ErrorCode::new(5001).expect("5001 < 10000"), message: s("m") },
                5001,
                true,
            ),
            (FcpError::NotConfigured, 5002, false),
            (FcpError::NotHandshaken, 5003, false),
            (FcpError::HealthCheckFailed { reason: s("r") }, 5004, false),
            (FcpError::StreamingNotSupported, 5005, false),
            (FcpError::ConfigurationLeakedSecret { field_name_hash: s("h"), detector: s("d") }, 5006, false),
            (FcpError::ResourceNotFound { resource: s("r") }, 6001, false),
            (FcpError::ResourceExhausted { resource: s("r") }, 6002, true),
            (FcpError::Conflict { message: s("m") }, 6003, false),
            (FcpError::BudgetExceeded { metric: s("m"), used: 5, limit: 4, window_seconds: 60 }, 6004, true),
            (external(Some(429), true), 7001, true),
            (external(Some(504), true), 7002, true),
            (external(Some(503), false), 7003, false),
            (external(None, false), 7003, false),
            (FcpError::UpstreamTimeout { service: s("s") }, 7002, true),
            (FcpError::DependencyUnavailable { service: s("s") }, 7003, true),
            (FcpError::Internal { message: s("m") }, 9001, false),
        ]
    }

    fn external(status_code: Option<u16>, retryable: bool) -> FcpError {
        FcpError::External {
            service: "svc".into(),
            message: "m".into(),
            status_code,
            retryable,
            retry_after: retryable.then_some(1500),
        }
    }

    #[test]
    fn every_variant_has_its_code_and_retryability() {
        for (e, code, retryable) in every_variant() {
            assert_eq!(e.code().get(), code, "{e:?}");
            assert_eq!(e.retryable(), retryable, "{e:?}");
        }
    }

    #[test]
    fn every_variant_round_trips_category_tagged() {
        for (e, _, _) in every_variant() {
            let v = serde_json::to_value(&e).expect("serialises");
            assert_eq!(v["category"], json!(e.category()), "{v}");
            let back: FcpError = serde_json::from_value(v).expect("deserialises");
            assert_eq!(back, e);
        }
    }

    #[test]
    fn every_variant_round_trips_as_response() {
        for (e, code, retryable) in every_variant() {
            let r = e.to_response();
            assert_eq!(r.code.get(), code);
            assert_eq!(r.retryable, retryable);
            assert_eq!(r.message, e.to_string());
            let text = serde_json::to_string(&r).expect("serialises");
            let back: FcpErrorResponse = serde_json::from_str(&text).expect("deserialises");
            assert_eq!(back, r);
            assert_eq!(FcpErrorResponse::from_wire(&serde_json::to_value(&r).expect("value")), r);
        }
    }

    #[test]
    fn reference_category_forms_decode() {
        let e: FcpError = serde_json::from_str(r#"{"category":"NotHandshaken"}"#).expect("decodes");
        assert_eq!(e, FcpError::NotHandshaken);
        let e: FcpError = serde_json::from_str(
            r#"{"category":"External","service":"s","message":"m","status_code":503,"retryable":true,"retry_after":1500}"#,
        )
        .expect("decodes");
        assert_eq!(e.code(), ErrorCode::DEPENDENCY_UNAVAILABLE);
        assert_eq!(e.retry_after_ms(), Some(1500));
        assert_eq!(
            e.to_response().details,
            Some(json!({"service": "s", "status_code": 503})),
            "§6.1: External details are {{service, status_code}}"
        );
        let e: FcpError = serde_json::from_str(r#"{"category":"InvalidRequest","code":1002,"message":"x"}"#)
            .expect("the inner code is an integer");
        assert_eq!(e.code(), ErrorCode::UNKNOWN_METHOD);
    }

    #[test]
    fn details_follow_the_reference_examples() {
        let d = FcpError::CapabilityDenied { capability: "c".into(), reason: "r".into() }.to_response().details;
        assert_eq!(d, Some(json!({"capability": "c", "reason": "r"})));
        let d = FcpError::ZoneViolation { source_zone: "z:a".into(), target_zone: "z:b".into(), message: "m".into() }
            .to_response()
            .details;
        assert_eq!(d, Some(json!({"source_zone": "z:a", "target_zone": "z:b"})));
        assert_eq!(FcpError::NotConfigured.to_response().details, None);
    }

    #[test]
    fn unknown_category_and_bad_inner_code_are_rejected() {
        assert!(serde_json::from_str::<FcpError>(r#"{"category":"Frobnicated"}"#).is_err());
        assert!(
            serde_json::from_str::<FcpError>(r#"{"category":"InvalidRequest","code":10000,"message":"x"}"#).is_err()
        );
    }

    #[test]
    fn codes_parse_strictly() {
        assert_eq!(ErrorCode::from_wire("FCP-1002"), Some(ErrorCode::UNKNOWN_METHOD));
        assert_eq!(ErrorCode::from_wire("FCP-0000"), Some(ErrorCode::UNSPECIFIED));
        for bad in ["FCP-102", "FCP-10020", "fcp-1002", "FCP-+102", "FCP-1a02", "1002", "", "FCP-"] {
            assert_eq!(ErrorCode::from_wire(bad), None, "{bad}");
        }
        assert_eq!(ErrorCode::new(10_000), None);
        assert_eq!(ErrorCode::INVALID_PARAMS.to_string(), "FCP-1003");
        assert_eq!(serde_json::to_string(&ErrorCode::INTERNAL).expect("serialises"), "\"FCP-9001\"");
    }

    #[test]
    fn tolerant_reading_of_error_members() {
        let r = FcpErrorResponse::from_wire(&json!({"code": "FCP-1001", "message": "Invalid JSON: x"}));
        assert_eq!(r.code, ErrorCode::INVALID_JSON);
        assert_eq!(r.message, "Invalid JSON: x");
        assert!(!r.retryable);
        let odd = json!({"code": -32600, "message": "json-rpc style"});
        let r = FcpErrorResponse::from_wire(&odd);
        assert_eq!(r.code, ErrorCode::UNSPECIFIED);
        assert_eq!(r.details, Some(odd));
        let r = FcpErrorResponse::from_wire(&json!("boom"));
        assert_eq!((r.code, r.message.as_str()), (ErrorCode::UNSPECIFIED, "boom"));
        let r = FcpErrorResponse::from_wire(&Value::Null);
        assert_eq!(r.message, "null");
    }

    #[test]
    fn reference_messages_are_kept() {
        assert_eq!(FcpError::NotHandshaken.to_string(), "Connector not handshaken");
        assert_eq!(FcpError::NotConfigured.to_string(), "Connector not configured");
        let e =
            FcpError::InvalidRequest { code: ErrorCode::UNKNOWN_METHOD, message: "Unknown method: frobnicate".into() };
        assert_eq!(e.to_string(), "Invalid request: Unknown method: frobnicate");
        assert_eq!(
            FcpError::MissingField { field: "instance_id".into() }.to_string(),
            "Missing required field: instance_id"
        );
    }
}
