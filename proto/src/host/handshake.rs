//! `handshake` (host-protocol §4.2): the host's [`HandshakeRequest`] and the typed
//! [`HandshakeResponse`] that echoes its nonce.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::{CanonicalId, ZoneId};

/// The `protocol_version` the reference host sends.
pub const HOST_PROTOCOL_VERSION: &str = "1.0.0";

/// `handshake` params, fields in the order the reference host writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// [`HOST_PROTOCOL_VERSION`]; no connector checks it.
    pub protocol_version: String,
    /// The zone of the pending invoke.
    pub zone: ZoneId,
    /// Absolute path of the prepared per-zone cache dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_dir: Option<String>,
    /// The host's Ed25519 capability-token issuance public key.
    pub host_public_key: [u8; 32],
    /// Fresh per handshake; the connector must echo it.
    pub nonce: [u8; 32],
    /// Always empty from the reference host.
    #[serde(default)]
    pub capabilities_requested: Vec<CanonicalId>,
    /// Who the host is; the reference host omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
    /// Transport capabilities; the reference host omits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_caps: Option<TransportCaps>,
    /// The instance id the connector should adopt (35 reference connectors do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_instance_id: Option<CanonicalId>,
}

impl HandshakeRequest {
    /// A request as the reference host builds it: version `1.0.0`, no capabilities
    /// requested, no optional field set.
    pub fn new(zone: ZoneId, host_public_key: [u8; 32], nonce: [u8; 32]) -> HandshakeRequest {
        HandshakeRequest {
            protocol_version: HOST_PROTOCOL_VERSION.to_owned(),
            zone,
            zone_dir: None,
            host_public_key,
            nonce,
            capabilities_requested: Vec::new(),
            host: None,
            transport_caps: None,
            requested_instance_id: None,
        }
    }
}

/// `handshake.host`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub name: String,
    /// Host version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Host build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// `handshake.transport_caps`. Nothing is negotiated: no compression, and the frame cap
/// stays 64 KiB whatever `max_frame_size` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCaps {
    /// Compression schemes.
    #[serde(default)]
    pub compression: Vec<String>,
    /// Largest frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame_size: Option<u32>,
}

/// The typed `handshake` result. The host accepts it only when `status` is
/// `"accepted"` and `nonce` equals the request's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeResponse {
    /// Must be [`HandshakeResponse::ACCEPTED`].
    pub status: String,
    /// Typed connectors echo `capabilities_requested`.
    #[serde(default)]
    pub capabilities_granted: Vec<CapabilityGrant>,
    /// Fresh per handshake (a UUID string).
    pub session_id: String,
    /// `"sha256:" + hex(SHA-256(embedded manifest.toml))`; not the interface hash.
    pub manifest_hash: String,
    /// The request nonce, byte for byte.
    pub nonce: [u8; 32],
    /// Event capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_caps: Option<EventCaps>,
    /// Auth capabilities, connector-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_caps: Option<Value>,
    /// Operation catalogue hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_catalog_hash: Option<String>,
}

impl HandshakeResponse {
    /// The only `status` the host accepts.
    pub const ACCEPTED: &'static str = "accepted";
}

/// One entry of `capabilities_granted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityGrant {
    /// The capability.
    pub capability: String,
    /// The operation it is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// `event_caps`, all false/0 for request-response connectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCaps {
    /// Streams events.
    #[serde(default)]
    pub streaming: bool,
    /// Replays events.
    #[serde(default)]
    pub replay: bool,
    /// Minimum buffered events.
    #[serde(default)]
    pub min_buffer_events: u32,
    /// Needs acks.
    #[serde(default)]
    pub requires_ack: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_request_matches_the_reference_shape() {
        let zone = ZoneId::new("z:work").expect("valid zone");
        let r = HandshakeRequest::new(zone, [0; 32], [1; 32]);
        let v = serde_json::to_value(&r).expect("serialises");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["capabilities_requested", "host_public_key", "nonce", "protocol_version", "zone"]);
        assert_eq!(v["protocol_version"], "1.0.0");
    }

    #[test]
    fn request_with_bad_zone_or_short_key_is_rejected() {
        let good = r#"{"protocol_version":"1.0.0","zone":"z:work","host_public_key":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"nonce":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"#;
        let r: HandshakeRequest = serde_json::from_str(good).expect("decodes");
        assert!(r.capabilities_requested.is_empty());
        assert!(serde_json::from_str::<HandshakeRequest>(&good.replace("z:work", "work")).is_err());
        assert!(serde_json::from_str::<HandshakeRequest>(&good.replacen("[0,0,", "[0,", 1)).is_err());
        assert!(serde_json::from_str::<HandshakeRequest>(&good.replacen("[0,0,", "[256,0,", 1)).is_err());
    }

    #[test]
    fn response_round_trips() {
        let r = HandshakeResponse {
            status: HandshakeResponse::ACCEPTED.into(),
            capabilities_granted: vec![CapabilityGrant { capability: "echo.invoke".into(), operation: None }],
            session_id: "4ac015d0-d332-46c8-b67c-4f05c94a45a0".into(),
            manifest_hash: "sha256:00".into(),
            nonce: [9; 32],
            event_caps: Some(EventCaps::default()),
            auth_caps: None,
            op_catalog_hash: None,
        };
        let text = serde_json::to_string(&r).expect("serialises");
        assert_eq!(serde_json::from_str::<HandshakeResponse>(&text).expect("decodes"), r);
    }
}
