//! `invoke` and `simulate` (host-protocol §4.7, §4.8): the requests the host forwards
//! and the typed `InvokeResponse` / `SimulateResponse` envelopes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use super::check_tag;
use super::fcp_error::{ErrorCode, FcpError};
use crate::id::{CanonicalId, ObjectId, ZoneId};

/// `invoke` params. On the wire they start with `"type":"invoke"`, and we add
/// `operation_id` beside `operation` (host-protocol §10 rule 2) because 56 reference
/// connectors read only `operation_id`. Reading accepts either key, or both when equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "InvokeWire", try_from = "InvokeWire")]
pub struct InvokeRequest {
    /// The caller's request id (free-form; not the JSON-RPC id).
    pub id: String,
    /// The connector.
    pub connector_id: CanonicalId,
    /// The operation, e.g. `hackernews.item.get`.
    pub operation: CanonicalId,
    /// The zone.
    pub zone_id: ZoneId,
    /// Operation input.
    pub input: Value,
    /// COSE_Sign1 capability token; also the grant.
    pub capability_token: TokenBytes,
    /// Required when the token has a holder_node claim.
    pub holder_proof: Option<HolderProof>,
    /// Locale, pagination, trace id, tags.
    pub context: Option<InvokeContext>,
    /// At most 128 bytes.
    pub idempotency_key: Option<String>,
    /// Fencing token for `singleton_writer` connectors.
    pub lease_seq: Option<u64>,
    /// Advisory; the transport timeout stays 10 s.
    pub deadline_ms: Option<u64>,
    /// A UUID string.
    pub correlation_id: Option<String>,
    /// Provenance (digest §7), forwarded as given.
    pub provenance: Option<Value>,
    /// Approval tokens (digest §5.5), forwarded as given; omitted when empty.
    pub approval_tokens: Vec<Value>,
}

impl InvokeRequest {
    /// A request with no optional field set.
    pub fn new(
        id: impl Into<String>,
        connector_id: CanonicalId,
        operation: CanonicalId,
        zone_id: ZoneId,
        input: Value,
        capability_token: TokenBytes,
    ) -> InvokeRequest {
        InvokeRequest {
            id: id.into(),
            connector_id,
            operation,
            zone_id,
            input,
            capability_token,
            holder_proof: None,
            context: None,
            idempotency_key: None,
            lease_seq: None,
            deadline_ms: None,
            correlation_id: None,
            provenance: None,
            approval_tokens: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct InvokeWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    connector_id: CanonicalId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<CanonicalId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation_id: Option<CanonicalId>,
    zone_id: ZoneId,
    input: Value,
    capability_token: TokenBytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder_proof: Option<HolderProof>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<InvokeContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provenance: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approval_tokens: Vec<Value>,
}

impl From<InvokeRequest> for InvokeWire {
    fn from(r: InvokeRequest) -> InvokeWire {
        InvokeWire {
            kind: Some("invoke".into()),
            id: r.id,
            connector_id: r.connector_id,
            operation_id: Some(r.operation.clone()),
            operation: Some(r.operation),
            zone_id: r.zone_id,
            input: r.input,
            capability_token: r.capability_token,
            holder_proof: r.holder_proof,
            context: r.context,
            idempotency_key: r.idempotency_key,
            lease_seq: r.lease_seq,
            deadline_ms: r.deadline_ms,
            correlation_id: r.correlation_id,
            provenance: r.provenance,
            approval_tokens: r.approval_tokens,
        }
    }
}

impl TryFrom<InvokeWire> for InvokeRequest {
    type Error = String;
    fn try_from(w: InvokeWire) -> Result<InvokeRequest, String> {
        check_tag(w.kind.as_deref(), "invoke")?;
        Ok(InvokeRequest {
            id: w.id,
            connector_id: w.connector_id,
            operation: pick_operation(w.operation, w.operation_id)?,
            zone_id: w.zone_id,
            input: w.input,
            capability_token: w.capability_token,
            holder_proof: w.holder_proof,
            context: w.context,
            idempotency_key: w.idempotency_key,
            lease_seq: w.lease_seq,
            deadline_ms: w.deadline_ms,
            correlation_id: w.correlation_id,
            provenance: w.provenance,
            approval_tokens: w.approval_tokens,
        })
    }
}

/// `operation` or `operation_id`; both only when they agree.
fn pick_operation(operation: Option<CanonicalId>, operation_id: Option<CanonicalId>) -> Result<CanonicalId, String> {
    match (operation, operation_id) {
        (Some(a), Some(b)) if a != b => Err(format!("operation {a} and operation_id {b} differ")),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err("missing field `operation`".into()),
    }
}

/// `simulate` params: `invoke`'s minus the optional metadata, plus two flags. On the wire
/// they start with `"type":"simulate"` and carry `operation_id` too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "SimulateWire", try_from = "SimulateWire")]
pub struct SimulateRequest {
    /// The caller's request id.
    pub id: String,
    /// The connector.
    pub connector_id: CanonicalId,
    /// The operation.
    pub operation: CanonicalId,
    /// The zone.
    pub zone_id: ZoneId,
    /// Operation input.
    pub input: Value,
    /// COSE_Sign1 capability token.
    pub capability_token: TokenBytes,
    /// Ask for a cost estimate.
    pub estimate_cost: bool,
    /// Ask for availability.
    pub check_availability: bool,
    /// Locale, pagination, trace id, tags.
    pub context: Option<InvokeContext>,
    /// A UUID string.
    pub correlation_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SimulateWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    connector_id: CanonicalId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<CanonicalId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation_id: Option<CanonicalId>,
    zone_id: ZoneId,
    input: Value,
    capability_token: TokenBytes,
    #[serde(default)]
    estimate_cost: bool,
    #[serde(default)]
    check_availability: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<InvokeContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
}

impl From<SimulateRequest> for SimulateWire {
    fn from(r: SimulateRequest) -> SimulateWire {
        SimulateWire {
            kind: Some("simulate".into()),
            id: r.id,
            connector_id: r.connector_id,
            operation_id: Some(r.operation.clone()),
            operation: Some(r.operation),
            zone_id: r.zone_id,
            input: r.input,
            capability_token: r.capability_token,
            estimate_cost: r.estimate_cost,
            check_availability: r.check_availability,
            context: r.context,
            correlation_id: r.correlation_id,
        }
    }
}

impl TryFrom<SimulateWire> for SimulateRequest {
    type Error = String;
    fn try_from(w: SimulateWire) -> Result<SimulateRequest, String> {
        check_tag(w.kind.as_deref(), "simulate")?;
        Ok(SimulateRequest {
            id: w.id,
            connector_id: w.connector_id,
            operation: pick_operation(w.operation, w.operation_id)?,
            zone_id: w.zone_id,
            input: w.input,
            capability_token: w.capability_token,
            estimate_cost: w.estimate_cost,
            check_availability: w.check_availability,
            context: w.context,
            correlation_id: w.correlation_id,
        })
    }
}

/// Capability-token bytes. Written as a JSON array of byte integers, as the reference
/// host does; read from that or from a standard-base64 string, as connectors accept.
/// `Debug` shows only the length: a token is a bearer credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenBytes(pub Vec<u8>);

impl fmt::Debug for TokenBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenBytes({} bytes)", self.0.len())
    }
}

impl Serialize for TokenBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for TokenBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TokenVisitor;
        impl<'de> Visitor<'de> for TokenVisitor {
            type Value = TokenBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of bytes or a standard-base64 string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TokenBytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(TokenBytes(out))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TokenBytes, E> {
                decode_base64(s).map(TokenBytes).ok_or_else(|| E::custom("capability_token is not standard base64"))
            }
        }
        d.deserialize_any(TokenVisitor)
    }
}

/// Standard-alphabet base64, padded or not; `None` on any other byte or a bad length.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = s.as_bytes();
    let body = match bytes.len() % 4 {
        0 if bytes.ends_with(b"==") => &bytes[..bytes.len() - 2],
        0 if bytes.ends_with(b"=") => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&acc.to_be_bytes()[1..]),
            3 => {
                if acc & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&(acc >> 2).to_be_bytes()[2..]);
            }
            _ => {
                if acc & 0b1111 != 0 {
                    return None;
                }
                out.push((acc >> 4) as u8);
            }
        }
    }
    Some(out)
}

/// `holder_proof`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderProof {
    /// Hex of a 64-byte signature.
    pub signature: String,
    /// The holder node.
    pub holder_node: String,
}

/// `context`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeContext {
    /// Locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Pagination, operation-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Value>,
    /// W3C trace-id (32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_tags: Option<BTreeMap<String, String>>,
}

/// `InvokeResponse.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvokeStatus {
    /// `result` holds the output.
    Ok,
    /// `error` holds the failure.
    Error,
}

/// The typed `invoke` result (the envelope). On the wire it carries
/// `"type":"response"`. `status:"error"` needs an `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "InvokeResponseWire", try_from = "InvokeResponseWire")]
pub struct InvokeResponse {
    /// The caller's request id.
    pub id: String,
    /// Ok or error.
    pub status: InvokeStatus,
    /// The output, on ok.
    pub result: Option<Value>,
    /// The failure, category-tagged, on error.
    pub error: Option<FcpError>,
    /// OperationReceipt id.
    pub receipt_id: Option<ObjectId>,
    /// Audit event id.
    pub audit_event_id: Option<ObjectId>,
    /// DecisionReceipt id.
    pub decision_receipt_id: Option<ObjectId>,
    /// Resources touched.
    pub resource_uris: Vec<String>,
    /// Where to continue.
    pub next_cursor: Option<String>,
    /// Usage.
    pub usage_metrics: Option<Vec<UsageMetric>>,
    /// Timing and caching.
    pub response_metadata: Option<ResponseMetadata>,
}

/// The external service named when a connector's response exceeds the frame cap.
pub const RESPONSE_FRAME_SERVICE: &str = "connector_response_frame";
/// The custom usage metric carrying the size seen when the frame cap was exceeded.
pub const RESPONSE_FRAME_METRIC: &str = "connector_response_frame_bytes";

impl InvokeResponse {
    /// A successful envelope.
    pub fn ok(id: impl Into<String>, result: Value) -> InvokeResponse {
        InvokeResponse::bare(id.into(), InvokeStatus::Ok, Some(result), None)
    }

    /// A failed envelope.
    pub fn failed(id: impl Into<String>, error: FcpError) -> InvokeResponse {
        InvokeResponse::bare(id.into(), InvokeStatus::Error, None, Some(error))
    }

    /// What the reference host answers when an invoke's response frame exceeds the cap
    /// (host-protocol §1): `External{service:"connector_response_frame", retryable:false}`
    /// plus a custom usage metric with the bytes seen.
    pub fn frame_overflow(id: impl Into<String>, bytes_seen: usize) -> InvokeResponse {
        let mut r = InvokeResponse::failed(
            id,
            FcpError::External {
                service: RESPONSE_FRAME_SERVICE.into(),
                message: format!("connector response frame exceeds the cap ({bytes_seen} bytes seen)"),
                status_code: None,
                retryable: false,
                retry_after: None,
            },
        );
        r.usage_metrics = Some(vec![UsageMetric {
            kind: "custom".into(),
            amount: Number::from(bytes_seen as u64),
            unit: Some("bytes".into()),
            custom_id: Some(RESPONSE_FRAME_METRIC.into()),
        }]);
        r
    }

    fn bare(id: String, status: InvokeStatus, result: Option<Value>, error: Option<FcpError>) -> InvokeResponse {
        InvokeResponse {
            id,
            status,
            result,
            error,
            receipt_id: None,
            audit_event_id: None,
            decision_receipt_id: None,
            resource_uris: Vec::new(),
            next_cursor: None,
            usage_metrics: None,
            response_metadata: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct InvokeResponseWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    status: InvokeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<FcpError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receipt_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_event_id: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decision_receipt_id: Option<ObjectId>,
    #[serde(default)]
    resource_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage_metrics: Option<Vec<UsageMetric>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_metadata: Option<ResponseMetadata>,
}

impl From<InvokeResponse> for InvokeResponseWire {
    fn from(r: InvokeResponse) -> InvokeResponseWire {
        InvokeResponseWire {
            kind: Some("response".into()),
            id: r.id,
            status: r.status,
            result: r.result,
            error: r.error,
            receipt_id: r.receipt_id,
            audit_event_id: r.audit_event_id,
            decision_receipt_id: r.decision_receipt_id,
            resource_uris: r.resource_uris,
            next_cursor: r.next_cursor,
            usage_metrics: r.usage_metrics,
            response_metadata: r.response_metadata,
        }
    }
}

impl TryFrom<InvokeResponseWire> for InvokeResponse {
    type Error = String;
    fn try_from(w: InvokeResponseWire) -> Result<InvokeResponse, String> {
        check_tag(w.kind.as_deref(), "response")?;
        if w.status == InvokeStatus::Error && w.error.is_none() {
            return Err("status \"error\" without an error".into());
        }
        Ok(InvokeResponse {
            id: w.id,
            status: w.status,
            result: w.result,
            error: w.error,
            receipt_id: w.receipt_id,
            audit_event_id: w.audit_event_id,
            decision_receipt_id: w.decision_receipt_id,
            resource_uris: w.resource_uris,
            next_cursor: w.next_cursor,
            usage_metrics: w.usage_metrics,
            response_metadata: w.response_metadata,
        })
    }
}

/// One `usage_metrics` entry. `amount` keeps the number exactly as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageMetric {
    /// What was used.
    pub kind: String,
    /// How much.
    pub amount: Number,
    /// Unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// For `custom` metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
}

/// `response_metadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMetadata {
    /// Processing time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_time_ms: Option<u64>,
    /// Cache lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_secs: Option<u64>,
    /// Served from cache.
    #[serde(default)]
    pub from_cache: bool,
    /// When to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The typed `simulate` result; on the wire it carries `"type":"simulate_response"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "SimulateResponseWire", try_from = "SimulateResponseWire")]
pub struct SimulateResponse {
    /// The caller's request id.
    pub id: String,
    /// Whether the invoke would succeed.
    pub would_succeed: bool,
    /// Why not.
    pub failure_reason: Option<String>,
    /// The denial code, e.g. `FCP-3010` from the default simulate.
    pub denial_code: Option<ErrorCode>,
    /// Capabilities the token lacks.
    pub missing_capabilities: Vec<String>,
    /// Cost estimate, connector-specific.
    pub estimated_cost: Option<Value>,
    /// Availability, connector-specific.
    pub availability: Option<Value>,
    /// Timing and caching.
    pub response_metadata: Option<ResponseMetadata>,
}

impl SimulateResponse {
    /// A bare verdict with no optional field set.
    pub fn verdict(id: impl Into<String>, would_succeed: bool) -> SimulateResponse {
        SimulateResponse {
            id: id.into(),
            would_succeed,
            failure_reason: None,
            denial_code: None,
            missing_capabilities: Vec::new(),
            estimated_cost: None,
            availability: None,
            response_metadata: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SimulateResponseWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    would_succeed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    denial_code: Option<ErrorCode>,
    #[serde(default)]
    missing_capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    estimated_cost: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    availability: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_metadata: Option<ResponseMetadata>,
}

impl From<SimulateResponse> for SimulateResponseWire {
    fn from(r: SimulateResponse) -> SimulateResponseWire {
        SimulateResponseWire {
            kind: Some("simulate_response".into()),
            id: r.id,
            would_succeed: r.would_succeed,
            failure_reason: r.failure_reason,
            denial_code: r.denial_code,
            missing_capabilities: r.missing_capabilities,
            estimated_cost: r.estimated_cost,
            availability: r.availability,
            response_metadata: r.response_metadata,
        }
    }
}

impl TryFrom<SimulateResponseWire> for SimulateResponse {
    type Error = String;
    fn try_from(w: SimulateResponseWire) -> Result<SimulateResponse, String> {
        check_tag(w.kind.as_deref(), "simulate_response")?;
        Ok(SimulateResponse {
            id: w.id,
            would_succeed: w.would_succeed,
            failure_reason: w.failure_reason,
            denial_code: w.denial_code,
            missing_capabilities: w.missing_capabilities,
            estimated_cost: w.estimated_cost,
            availability: w.availability,
            response_metadata: w.response_metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn id(s: &str) -> CanonicalId {
        CanonicalId::new(s).expect("canonical")
    }

    fn zone(s: &str) -> ZoneId {
        ZoneId::new(s).expect("zone")
    }

    /// The todoist request of host-protocol §11.3 (`0:4`), the reference shape plus
    /// `operation_id`, byte for byte.
    #[test]
    fn invoke_params_match_the_captured_todoist_request() {
        let r = InvokeRequest::new(
            "req_4",
            id("fcp.todoist"),
            id("todoist.projects.list"),
            zone("z:work"),
            json!({}),
            TokenBytes::default(),
        );
        assert_eq!(
            serde_json::to_string(&r).expect("serialises"),
            r#"{"type":"invoke","id":"req_4","connector_id":"fcp.todoist","operation":"todoist.projects.list","operation_id":"todoist.projects.list","zone_id":"z:work","input":{},"capability_token":[]}"#
        );
    }

    #[test]
    fn invoke_params_read_either_operation_key() {
        let base =
            r#""type":"invoke","id":"r","connector_id":"fcp.x","zone_id":"z:work","input":{},"capability_token":[]"#;
        for (keys, ok) in [
            (r#""operation":"x.op""#, true),
            (r#""operation_id":"x.op""#, true),
            (r#""operation":"x.op","operation_id":"x.op""#, true),
            (r#""operation":"x.op","operation_id":"x.other""#, false),
            ("", false),
        ] {
            let sep = if keys.is_empty() { "" } else { "," };
            let text = format!("{{{base}{sep}{keys}}}");
            let r = serde_json::from_str::<InvokeRequest>(&text);
            assert_eq!(r.is_ok(), ok, "{text}: {r:?}");
            if let Ok(r) = r {
                assert_eq!(r.operation.as_str(), "x.op");
            }
        }
    }

    #[test]
    fn invoke_params_reject_a_wrong_type_and_accept_a_missing_one() {
        let text = r#"{"id":"r","connector_id":"fcp.x","operation":"x.op","zone_id":"z:work","input":1,"capability_token":[1,2]}"#;
        let r: InvokeRequest = serde_json::from_str(text).expect("no type is tolerated");
        assert_eq!(r.capability_token.0, [1, 2]);
        let wrong = text.replacen('{', r#"{"type":"simulate","#, 1);
        assert!(serde_json::from_str::<InvokeRequest>(&wrong).is_err());
    }

    #[test]
    fn full_invoke_params_round_trip() {
        let mut r = InvokeRequest::new(
            "r",
            id("fcp.x"),
            id("x.op"),
            zone("z:work"),
            json!({"a": [1]}),
            TokenBytes(vec![7; 40]),
        );
        r.holder_proof = Some(HolderProof { signature: "00".repeat(64), holder_node: "node-1".into() });
        r.context = Some(InvokeContext {
            locale: Some("en".into()),
            pagination: Some(json!({"cursor": "c"})),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            request_tags: Some(BTreeMap::from([("k".into(), "v".into())])),
        });
        r.idempotency_key = Some("demo-1".into());
        r.lease_seq = Some(3);
        r.deadline_ms = Some(5000);
        r.correlation_id = Some("62d27aa8-ebb6-4ac6-92fe-28ee321fc55d".into());
        r.provenance = Some(json!({"origin_zone": "z:work", "chain": [], "taint": [], "elevated": false}));
        r.approval_tokens = vec![json!({"t": 1})];
        let text = serde_json::to_string(&r).expect("serialises");
        assert_eq!(serde_json::from_str::<InvokeRequest>(&text).expect("decodes"), r);
    }

    #[test]
    fn tokens_read_from_base64() {
        let text = r#"{"id":"r","connector_id":"fcp.x","operation":"x.op","zone_id":"z:work","input":{},"capability_token":"hE2iASc="}"#;
        let r: InvokeRequest = serde_json::from_str(text).expect("base64 token");
        assert_eq!(r.capability_token.0, [132, 77, 162, 1, 39]);
        assert_eq!(format!("{:?}", r.capability_token), "TokenBytes(5 bytes)");
        for bad in ["hE2i*Sc=", "h===", "hE2iASd=", "hE2iA", "hE2iASc=="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
        assert_eq!(decode_base64(""), Some(vec![]));
        assert_eq!(decode_base64("hE2iASc"), Some(vec![132, 77, 162, 1, 39]), "unpadded");
    }

    #[test]
    fn simulate_params_carry_type_and_flags() {
        let r = SimulateRequest {
            id: "sim_1".into(),
            connector_id: id("fcp.tavily"),
            operation: id("tavily.search"),
            zone_id: zone("z:work"),
            input: json!({"query": "x"}),
            capability_token: TokenBytes::default(),
            estimate_cost: false,
            check_availability: false,
            context: None,
            correlation_id: None,
        };
        let text = serde_json::to_string(&r).expect("serialises");
        assert_eq!(
            text,
            r#"{"type":"simulate","id":"sim_1","connector_id":"fcp.tavily","operation":"tavily.search","operation_id":"tavily.search","zone_id":"z:work","input":{"query":"x"},"capability_token":[],"estimate_cost":false,"check_availability":false}"#
        );
        assert_eq!(serde_json::from_str::<SimulateRequest>(&text).expect("decodes"), r);
    }

    #[test]
    fn envelopes_round_trip_and_need_an_error_on_failure() {
        let ok = InvokeResponse::ok("req_3", json!({"id": 8863}));
        let text = serde_json::to_string(&ok).expect("serialises");
        assert_eq!(text, r#"{"type":"response","id":"req_3","status":"ok","result":{"id":8863},"resource_uris":[]}"#);
        assert_eq!(serde_json::from_str::<InvokeResponse>(&text).expect("decodes"), ok);
        let failed = InvokeResponse::failed("r", FcpError::NotHandshaken);
        let text = serde_json::to_string(&failed).expect("serialises");
        assert_eq!(serde_json::from_str::<InvokeResponse>(&text).expect("decodes"), failed);
        assert!(serde_json::from_str::<InvokeResponse>(r#"{"type":"response","id":"r","status":"error"}"#).is_err());
        assert!(serde_json::from_str::<InvokeResponse>(r#"{"type":"request","id":"r","status":"ok"}"#).is_err());
    }

    #[test]
    fn frame_overflow_is_the_reference_error() {
        let r = InvokeResponse::frame_overflow("req_9", 65_537);
        let e = r.error.as_ref().expect("error set");
        assert_eq!(e.code(), ErrorCode::DEPENDENCY_UNAVAILABLE);
        assert!(!e.retryable());
        assert!(matches!(e, FcpError::External { service, .. } if service == RESPONSE_FRAME_SERVICE));
        let m = &r.usage_metrics.as_ref().expect("metric set")[0];
        assert_eq!((m.custom_id.as_deref(), m.amount.as_u64()), (Some(RESPONSE_FRAME_METRIC), Some(65_537)));
    }

    #[test]
    fn simulate_response_round_trips() {
        let mut r = SimulateResponse::verdict("sim_1", false);
        r.failure_reason = Some("simulation not supported".into());
        r.denial_code = Some(ErrorCode::SIMULATION_DENIED);
        let text = serde_json::to_string(&r).expect("serialises");
        assert!(text.contains(r#""denial_code":"FCP-3010""#), "{text}");
        assert_eq!(serde_json::from_str::<SimulateResponse>(&text).expect("decodes"), r);
    }

    proptest! {
        #[test]
        fn base64_decodes_what_a_reference_encoder_writes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut text = String::new();
            for chunk in bytes.chunks(3) {
                let mut n = [0u8; 3];
                n[..chunk.len()].copy_from_slice(chunk);
                let v = u32::from(n[0]) << 16 | u32::from(n[1]) << 8 | u32::from(n[2]);
                for i in 0..=chunk.len() {
                    text.push(char::from(ALPHABET[(v >> (18 - 6 * i) & 63) as usize]));
                }
                text.push_str(&"=".repeat(3 - chunk.len()));
            }
            prop_assert_eq!(decode_base64(&text), Some(bytes.clone()));
            prop_assert_eq!(decode_base64(text.trim_end_matches('=')), Some(bytes));
        }
    }
}
