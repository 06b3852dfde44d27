//! ObjectHeader and stored objects (digest §1.4), with the header provenance in
//! the \[I\] shape (digest §7.2), so header bytes match the reference implementation.

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::{ObjectId, ObjectIdKey, ZoneId};
use crate::schema::SchemaId;

/// Domain string of stored-object content (digest §1.3; note V1 here, V2 in the id).
const STORED_OBJECT_DOMAIN: &[u8] = b"FCP2-OBJECT-V1";

/// Coarse taint of a header (\[I\] `taint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HeaderTaint {
    /// No untrusted input.
    Untainted,
    /// Some untrusted input.
    Tainted,
    /// Critical taint flags present.
    HighlyTainted,
}

/// One step of a header's provenance chain (\[I\] `{timestamp_ms, zone, actor, action, resource}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceStep {
    /// When (milliseconds).
    pub timestamp_ms: u64,
    /// In which zone.
    pub zone: ZoneId,
    /// Who.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// To what.
    pub resource: String,
}

/// The provenance carried in every header (\[I\]/\[C\] shape, digest §7.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderProvenance {
    /// Zone the data came from.
    pub origin_zone: ZoneId,
    /// Steps it went through.
    pub chain: Vec<ProvenanceStep>,
    /// Coarse taint.
    pub taint: HeaderTaint,
    /// Integrity was elevated by an approval.
    pub elevated: bool,
    /// The approval that elevated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_token: Option<String>,
}

impl HeaderProvenance {
    /// Untainted data that originates in `zone`.
    pub fn origin(zone: ZoneId) -> Self {
        HeaderProvenance {
            origin_zone: zone,
            chain: Vec::new(),
            taint: HeaderTaint::Untainted,
            elevated: false,
            elevation_token: None,
        }
    }
}

/// The header of every stored object (digest §1.4). It never contains its own id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectHeader {
    /// Schema of the body.
    pub schema: SchemaId,
    /// Owning zone.
    pub zone_id: ZoneId,
    /// Creation time (seconds).
    pub created_at: u64,
    /// Provenance.
    pub provenance: HeaderProvenance,
    /// Same-zone references; these drive GC.
    pub refs: Vec<ObjectId>,
    /// Cross-zone references; never GC roots.
    pub foreign_refs: Vec<ObjectId>,
    /// Optional time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

impl ObjectHeader {
    /// A header with no references.
    pub fn new(schema: SchemaId, zone_id: ZoneId, created_at: u64) -> Self {
        let provenance = HeaderProvenance::origin(zone_id.clone());
        ObjectHeader {
            schema,
            zone_id,
            created_at,
            provenance,
            refs: Vec::new(),
            foreign_refs: Vec::new(),
            ttl_secs: None,
        }
    }

    /// Deterministic CBOR of the header.
    pub fn to_cbor(&self) -> Result<Vec<u8>, cbor::CborError> {
        cbor::to_vec(self)
    }

    /// Stored-object content: `"FCP2-OBJECT-V1" || det-CBOR(header) || body` (digest §1.3).
    pub fn stored_content(&self, body: &[u8]) -> Result<Vec<u8>, cbor::CborError> {
        let mut out = STORED_OBJECT_DOMAIN.to_vec();
        out.extend_from_slice(&self.to_cbor()?);
        out.extend_from_slice(body);
        Ok(out)
    }

    /// The keyed ObjectId of an object with this header and `body`.
    pub fn object_id(&self, key: &ObjectIdKey, body: &[u8]) -> Result<ObjectId, cbor::CborError> {
        Ok(ObjectId::keyed(key, &self.zone_id, &self.schema, &self.stored_content(body)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of the reference implementation's `intent_minimal` vector.
    #[test]
    fn header_bytes_match_reference() {
        let schema = SchemaId::new("fcp.operation", "intent", "1.0.0").expect("schema");
        let h = ObjectHeader::new(schema, ZoneId::new("z:work").expect("zone"), 1_704_067_200);
        assert_eq!(
            hex::encode(h.to_cbor().expect("encode")),
            "a664726566738066736368656d61a3646e616d6566696e74656e746776657273696f6e65312e302e30696e616d6573706163656d6663702e6f7065726174696f6e677a6f6e655f6964667a3a776f726b6a637265617465645f61741a659200806a70726f76656e616e6365a465636861696e80657461696e7469556e7461696e74656468656c657661746564f46b6f726967696e5f7a6f6e6566\
7a3a776f726b6c666f726569676e5f7265667380"
        );
    }

    #[test]
    fn header_round_trips_and_rejects_unknown_fields() {
        let schema = SchemaId::new("fcp.core", "Blob", "1.0.0").expect("schema");
        let mut h = ObjectHeader::new(schema, ZoneId::new("z:work").expect("zone"), 5);
        h.refs.push(ObjectId([1; 32]));
        h.ttl_secs = Some(60);
        let bytes = h.to_cbor().expect("encode");
        let back: ObjectHeader = cbor::from_slice(&bytes, cbor::Limits::CANONICAL).expect("decode");
        assert_eq!(back, h);
        let mut v = cbor::to_value(&h).expect("value");
        if let cbor::Value::Map(m) = &mut v {
            m.push((cbor::Value::text("extra"), cbor::Value::Null));
        }
        let with_extra = cbor::encode(&v).expect("encode");
        assert!(cbor::from_slice::<ObjectHeader>(&with_extra, cbor::Limits::CANONICAL).is_err());
    }
}
