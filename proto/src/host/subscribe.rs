//! `subscribe` / `unsubscribe` (host-protocol §4.9). The reference host sends neither;
//! request-response connectors answer `FCP-5005`. Events never arrive unsolicited: a
//! streaming connector buffers them and hands them out through `invoke`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check_tag;
use super::invoke::TokenBytes;

/// `subscribe` params; on the wire they start with `"type":"subscribe"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "SubscribeWire", try_from = "SubscribeWire")]
pub struct SubscribeRequest {
    /// The caller's request id.
    pub id: String,
    /// Topics.
    pub topics: Vec<String>,
    /// Where to resume, connector-specific.
    pub since: Option<Value>,
    /// Rate cap.
    pub max_events_per_sec: Option<u32>,
    /// Batching window.
    pub batch_ms: Option<u32>,
    /// Flow-control window.
    pub window_size: Option<u32>,
    /// Capability token.
    pub capability_token: Option<TokenBytes>,
}

#[derive(Serialize, Deserialize)]
struct SubscribeWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_events_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capability_token: Option<TokenBytes>,
}

impl From<SubscribeRequest> for SubscribeWire {
    fn from(r: SubscribeRequest) -> SubscribeWire {
        SubscribeWire {
            kind: Some("subscribe".into()),
            id: r.id,
            topics: r.topics,
            since: r.since,
            max_events_per_sec: r.max_events_per_sec,
            batch_ms: r.batch_ms,
            window_size: r.window_size,
            capability_token: r.capability_token,
        }
    }
}

impl TryFrom<SubscribeWire> for SubscribeRequest {
    type Error = String;
    fn try_from(w: SubscribeWire) -> Result<SubscribeRequest, String> {
        check_tag(w.kind.as_deref(), "subscribe")?;
        Ok(SubscribeRequest {
            id: w.id,
            topics: w.topics,
            since: w.since,
            max_events_per_sec: w.max_events_per_sec,
            batch_ms: w.batch_ms,
            window_size: w.window_size,
            capability_token: w.capability_token,
        })
    }
}

/// `unsubscribe` params; on the wire they start with `"type":"unsubscribe"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "UnsubscribeWire", try_from = "UnsubscribeWire")]
pub struct UnsubscribeRequest {
    /// The caller's request id.
    pub id: String,
    /// Topics.
    pub topics: Vec<String>,
    /// Capability token.
    pub capability_token: Option<TokenBytes>,
}

#[derive(Serialize, Deserialize)]
struct UnsubscribeWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capability_token: Option<TokenBytes>,
}

impl From<UnsubscribeRequest> for UnsubscribeWire {
    fn from(r: UnsubscribeRequest) -> UnsubscribeWire {
        UnsubscribeWire {
            kind: Some("unsubscribe".into()),
            id: r.id,
            topics: r.topics,
            capability_token: r.capability_token,
        }
    }
}

impl TryFrom<UnsubscribeWire> for UnsubscribeRequest {
    type Error = String;
    fn try_from(w: UnsubscribeWire) -> Result<UnsubscribeRequest, String> {
        check_tag(w.kind.as_deref(), "unsubscribe")?;
        Ok(UnsubscribeRequest { id: w.id, topics: w.topics, capability_token: w.capability_token })
    }
}

/// The typed `subscribe` result. Extra keys (slack adds `connection_status`) are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResponse {
    /// Topics now subscribed.
    pub confirmed_topics: Vec<String>,
    /// Cursor per topic.
    #[serde(default)]
    pub cursors: BTreeMap<String, Value>,
    /// Whether replay from a cursor works.
    #[serde(default)]
    pub replay_supported: bool,
    /// Buffer settings, connector-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_type_and_round_trip() {
        let s =
            SubscribeRequest { id: "s1".into(), topics: vec!["t".into()], batch_ms: Some(50), ..Default::default() };
        let text = serde_json::to_string(&s).expect("serialises");
        assert_eq!(text, r#"{"type":"subscribe","id":"s1","topics":["t"],"batch_ms":50}"#);
        assert_eq!(serde_json::from_str::<SubscribeRequest>(&text).expect("decodes"), s);
        let u = UnsubscribeRequest { id: "u1".into(), topics: vec!["t".into()], capability_token: None };
        let text = serde_json::to_string(&u).expect("serialises");
        assert_eq!(text, r#"{"type":"unsubscribe","id":"u1","topics":["t"]}"#);
        assert_eq!(serde_json::from_str::<UnsubscribeRequest>(&text).expect("decodes"), u);
        assert!(serde_json::from_str::<UnsubscribeRequest>(&text.replace("unsubscribe", "subscribe")).is_err());
    }

    #[test]
    fn response_ignores_extra_keys() {
        let r: SubscribeResponse = serde_json::from_str(
            r#"{"confirmed_topics":["t"],"cursors":{"t":"c1"},"replay_supported":false,"connection_status":"up"}"#,
        )
        .expect("decodes");
        assert_eq!(r.cursors["t"], "c1");
    }
}
