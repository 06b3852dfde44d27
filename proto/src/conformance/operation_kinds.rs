//! Kinds `operation_intent_signable` and `operation_receipt_signable` (`vectors/README.md`
//! §5.15): the \[I\] signable bytes of digest §8.1, with the header given as JSON-ish CBOR.

use serde_json::Value as Json;
use uuid::Uuid;

use super::json::{self, check_hex};
use crate::cbor;
use crate::id::ObjectId;
use crate::operation::{IntentSignable, ReceiptSignable, UsageMetric};

fn header_cbor(case: &Json) -> Result<Vec<u8>, String> {
    let header = json::to_cbor(json::field(case, "header")?)?;
    cbor::encode(&header).map_err(|e| format!("header: {e}"))
}

fn object_id(case: &Json, name: &str) -> Result<ObjectId, String> {
    json::array::<32>(case, name).map(ObjectId)
}

fn object_ids(case: &Json, name: &str) -> Result<Vec<ObjectId>, String> {
    let items = json::field(case, name)?.as_array().ok_or_else(|| format!("field {name:?} is not an array"))?;
    items
        .iter()
        .map(|v| {
            let mut id = [0u8; 32];
            let h = v.as_str().ok_or_else(|| format!("{name}: element is not hex text"))?;
            hex::decode_to_slice(h, &mut id).map_err(|e| format!("{name}: {e}"))?;
            Ok(ObjectId(id))
        })
        .collect()
}

/// `usage_metrics`, when a case carries it: `[{kind, amount, unit?, custom_id?}]` (the
/// current cases leave it out, which means absent).
fn usage_metrics(case: &Json) -> Result<Option<Vec<UsageMetric>>, String> {
    match case.get("usage_metrics") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(items)) => items
            .iter()
            .map(|m| {
                Ok(UsageMetric {
                    kind: json::text(m, "kind")?.to_owned(),
                    amount: json::uint(m, "amount")?,
                    unit: json::opt_text(m, "unit")?.map(str::to_owned),
                    custom_id: json::opt_text(m, "custom_id")?.map(str::to_owned),
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Some),
        Some(_) => Err("field \"usage_metrics\" is not an array".into()),
    }
}

pub(super) fn intent_signable(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let header = header_cbor(case)?;
    let jti = Uuid::parse_str(json::text(case, "capability_token_jti")?).map_err(|e| format!("jti: {e}"))?;
    let request = object_id(case, "request_object_id")?;
    let signable = IntentSignable {
        header_cbor: &header,
        request_object_id: &request,
        capability_token_jti: &jti,
        idempotency_key: json::opt_text(case, "idempotency_key")?,
        planned_at: json::uint(case, "planned_at")?,
        planned_by: json::text(case, "planned_by")?,
        lease_seq: json::opt_uint(case, "lease_seq")?,
        upstream_idempotency: json::opt_text(case, "upstream_idempotency")?,
    };
    let bytes = signable.to_bytes().map_err(|e| e.to_string())?;
    check_hex(exp, "header_cbor", &header)?;
    check_hex(exp, "signable_bytes", &bytes)
}

pub(super) fn receipt_signable(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let header = header_cbor(case)?;
    let request = object_id(case, "request_object_id")?;
    let outcomes = object_ids(case, "outcome_object_ids")?;
    let resources = object_ids(case, "resource_object_ids")?;
    let metrics = usage_metrics(case)?;
    let signable = ReceiptSignable {
        header_cbor: &header,
        request_object_id: &request,
        idempotency_key: json::opt_text(case, "idempotency_key")?,
        outcome_object_ids: &outcomes,
        resource_object_ids: &resources,
        usage_metrics: metrics.as_deref(),
        executed_at: json::uint(case, "executed_at")?,
        executed_by: json::text(case, "executed_by")?,
    };
    let bytes = signable.to_bytes().map_err(|e| e.to_string())?;
    check_hex(exp, "header_cbor", &header)?;
    check_hex(exp, "signable_bytes", &bytes)
}
