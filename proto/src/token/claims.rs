//! CWT claims of a capability token: the \[I\] integer keys of digest §5.2, the raw
//! claim map the COSE layer checks, and the typed reader the capability verifier uses.

use std::collections::BTreeMap;

use super::{TokenError, MAX_TOKEN_LEN};
use crate::cbor::{self, Limits, Value};
use crate::id::ObjectId;

/// The claim keys (digest §5.2, `vectors/README.md` §5.12). RFC 8392 keys 1–7, then the
/// \[I\] private keys −65537 … −65552.
pub mod label {
    /// `iss`: issuer string, e.g. `node:primary`.
    pub const ISS: i64 = 1;
    /// `sub`: subject.
    pub const SUB: i64 = 2;
    /// `aud`: audience; defaults to the zone id at sign time.
    pub const AUD: i64 = 3;
    /// `exp`: expiry, seconds.
    pub const EXP: i64 = 4;
    /// `nbf`: not before, seconds.
    pub const NBF: i64 = 5;
    /// `iat`: issued at, seconds.
    pub const IAT: i64 = 6;
    /// `cti`: token id (jti) bytes.
    pub const CTI: i64 = 7;
    /// Capability id.
    pub const CAPABILITY_ID: i64 = -65537;
    /// Zone id.
    pub const ZONE_ID: i64 = -65538;
    /// Operations granted.
    pub const OPERATIONS: i64 = -65539;
    /// Principal id.
    pub const PRINCIPAL_ID: i64 = -65540;
    /// Delegation depth.
    pub const DELEGATION_DEPTH: i64 = -65541;
    /// Id of the parent token.
    pub const PARENT_TOKEN: i64 = -65542;
    /// Issuing node.
    pub const ISS_NODE: i64 = -65543;
    /// Binary audience (an ObjectId).
    pub const AUD_BINARY: i64 = -65544;
    /// Grant objects (ObjectIds) the token derives from.
    pub const GRANT_OBJECT_IDS: i64 = -65545;
    /// The node that must prove possession.
    pub const HOLDER_NODE: i64 = -65546;
    /// Checkpoint id.
    pub const CHK_ID: i64 = -65547;
    /// Checkpoint sequence.
    pub const CHK_SEQ: i64 = -65548;
    /// Constraints (any CBOR value; in practice CapabilityConstraints).
    pub const CONSTRAINTS: i64 = -65549;
    /// Grants `[{capability, operation?}]`.
    pub const GRANTS: i64 = -65550;
    /// Target connector instance.
    pub const INSTANCE_ID: i64 = -65551;
    /// Claims schema version (1).
    pub const SCHEMA_VERSION: i64 = -65552;

    /// Every claim key of digest §5.2.
    pub const ALL: [i64; 23] = [
        ISS,
        SUB,
        AUD,
        EXP,
        NBF,
        IAT,
        CTI,
        CAPABILITY_ID,
        ZONE_ID,
        OPERATIONS,
        PRINCIPAL_ID,
        DELEGATION_DEPTH,
        PARENT_TOKEN,
        ISS_NODE,
        AUD_BINARY,
        GRANT_OBJECT_IDS,
        HOLDER_NODE,
        CHK_ID,
        CHK_SEQ,
        CONSTRAINTS,
        GRANTS,
        INSTANCE_ID,
        SCHEMA_VERSION,
    ];
}

/// The claims schema version \[I\] writes at sign time.
pub const CLAIMS_SCHEMA_VERSION: u64 = 1;

/// An integer-keyed claim map with untyped values: what the COSE layer signs and what
/// [`super::verify_cose`] hands back (digest §5.2 step 6).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClaimMap(BTreeMap<i64, Value>);

impl ClaimMap {
    /// An empty map.
    pub fn new() -> Self {
        ClaimMap(BTreeMap::new())
    }

    /// The value of a claim.
    pub fn get(&self, label: i64) -> Option<&Value> {
        self.0.get(&label)
    }

    /// Sets a claim, returning the old value.
    pub fn insert(&mut self, label: i64, value: Value) -> Option<Value> {
        self.0.insert(label, value)
    }

    /// Removes a claim.
    pub fn remove(&mut self, label: i64) -> Option<Value> {
        self.0.remove(&label)
    }

    /// Whether a claim is present.
    pub fn contains(&self, label: i64) -> bool {
        self.0.contains_key(&label)
    }

    /// The claims in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Value)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Number of claims.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no claims.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The map as a CBOR value.
    pub fn to_value(&self) -> Value {
        Value::Map(self.0.iter().map(|(k, v)| (Value::Int(i128::from(*k)), v.clone())).collect())
    }

    /// Deterministic CBOR of the map.
    pub fn to_cbor(&self) -> Result<Vec<u8>, TokenError> {
        cbor::encode(&self.to_value()).map_err(TokenError::Encode)
    }

    /// The map \[I\] `CoseToken::sign` actually signs: `aud` (3) := the zone id (−65538) when
    /// aud is absent and the zone id present, and `schema_version` (−65552) := 1 when absent.
    pub fn with_sign_time_additions(&self) -> ClaimMap {
        let mut m = self.clone();
        if !m.contains(label::AUD) {
            if let Some(zone) = m.get(label::ZONE_ID).cloned() {
                m.insert(label::AUD, zone);
            }
        }
        if !m.contains(label::SCHEMA_VERSION) {
            m.insert(label::SCHEMA_VERSION, Value::Int(i128::from(CLAIMS_SCHEMA_VERSION)));
        }
        m
    }

    /// Parses a signed payload (digest §5.2 step 6): at most 64 KiB, one strict canonical
    /// map (so no tags and no duplicate keys anywhere), every key an integer in i64.
    /// Values are not type-checked here; see [`CapabilityClaims::from_claim_map`].
    pub fn from_cbor(payload: &[u8]) -> Result<ClaimMap, TokenError> {
        if payload.len() > MAX_TOKEN_LEN {
            return Err(TokenError::InvalidClaims { reason: "payload larger than 64 KiB" });
        }
        let value =
            cbor::decode(payload, Limits::with_max_len(MAX_TOKEN_LEN)).map_err(TokenError::InvalidClaimsCbor)?;
        let Value::Map(entries) = value else {
            return Err(TokenError::InvalidClaims { reason: "payload is not a map" });
        };
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            let Value::Int(k) = k else {
                return Err(TokenError::InvalidClaims { reason: "claim key is not an integer" });
            };
            let k = i64::try_from(k).map_err(|_| TokenError::InvalidClaims { reason: "claim key does not fit i64" })?;
            if map.insert(k, v).is_some() {
                return Err(TokenError::InvalidClaims { reason: "duplicate claim key" });
            }
        }
        Ok(ClaimMap(map))
    }
}

/// One grant of the `grants` claim: a capability, optionally narrowed to one operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// Capability id.
    pub capability: String,
    /// Operation, if the grant is narrowed to one.
    pub operation: Option<String>,
}

impl Grant {
    fn to_value(&self) -> Value {
        let mut m = vec![(Value::text("capability"), Value::text(self.capability.clone()))];
        if let Some(op) = &self.operation {
            m.push((Value::text("operation"), Value::text(op.clone())));
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Grant, TokenError> {
        let bad = || TokenError::ClaimType { label: label::GRANTS, expected: "array of {capability, operation?} maps" };
        let Value::Map(entries) = v else { return Err(bad()) };
        let (mut capability, mut operation) = (None, None);
        for (k, v) in entries {
            let slot = match k {
                Value::Text(k) if k == "capability" => &mut capability,
                Value::Text(k) if k == "operation" => &mut operation,
                _ => return Err(bad()),
            };
            let Value::Text(t) = v else { return Err(bad()) };
            if slot.replace(t.clone()).is_some() {
                return Err(bad());
            }
        }
        Ok(Grant { capability: capability.ok_or_else(bad)?, operation })
    }
}

/// The typed claims of a capability token (digest §5.2 claim table).
///
/// Every claim is optional on the wire; the capability verifier decides which it
/// requires (aud, chk_id/chk_seq outside `z:public`, holder_node for Risky/Dangerous, …).
/// Integer keys this crate does not know are kept in `extra` and signed as given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapabilityClaims {
    /// 1 `iss`: issuer string.
    pub iss: Option<String>,
    /// 2 `sub`: subject.
    pub sub: Option<String>,
    /// 3 `aud`: audience (the connector id); set to the zone id at sign time when absent.
    pub aud: Option<String>,
    /// 4 `exp`: expiry, seconds.
    pub exp: Option<i64>,
    /// 5 `nbf`: not before, seconds.
    pub nbf: Option<i64>,
    /// 6 `iat`: issued at, seconds.
    pub iat: Option<i64>,
    /// 7 `cti`: the token id (jti).
    pub cti: Option<Vec<u8>>,
    /// −65537 capability id.
    pub capability_id: Option<String>,
    /// −65538 zone id.
    pub zone_id: Option<String>,
    /// −65539 operations granted.
    pub operations: Option<Vec<String>>,
    /// −65540 principal id.
    pub principal_id: Option<String>,
    /// −65541 delegation depth.
    pub delegation_depth: Option<u64>,
    /// −65542 id of the parent token.
    pub parent_token: Option<Vec<u8>>,
    /// −65543 issuing node.
    pub iss_node: Option<String>,
    /// −65544 binary audience.
    pub aud_binary: Option<ObjectId>,
    /// −65545 grant objects the token derives from.
    pub grant_object_ids: Option<Vec<ObjectId>>,
    /// −65546 node that must prove possession (digest §5.3).
    pub holder_node: Option<String>,
    /// −65547 checkpoint id.
    pub chk_id: Option<Vec<u8>>,
    /// −65548 checkpoint sequence.
    pub chk_seq: Option<u64>,
    /// −65549 constraints, any CBOR value (in practice CapabilityConstraints).
    pub constraints: Option<Value>,
    /// −65550 grants.
    pub grants: Option<Vec<Grant>>,
    /// −65551 target connector instance.
    pub instance_id: Option<String>,
    /// −65552 claims schema version.
    pub schema_version: Option<u64>,
    /// Integer claim keys outside the table, preserved as read.
    pub extra: BTreeMap<i64, Value>,
}

fn text(v: &str) -> Value {
    Value::text(v)
}

fn int(v: i64) -> Value {
    Value::Int(i128::from(v))
}

fn uint(v: u64) -> Value {
    Value::Int(i128::from(v))
}

fn texts(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| text(s)).collect())
}

fn read_text(l: i64, v: &Value) -> Result<String, TokenError> {
    match v {
        Value::Text(t) => Ok(t.clone()),
        _ => Err(TokenError::ClaimType { label: l, expected: "text" }),
    }
}

fn read_i64(l: i64, v: &Value) -> Result<i64, TokenError> {
    match v {
        Value::Int(i) => i64::try_from(*i).map_err(|_| TokenError::ClaimType { label: l, expected: "int in i64" }),
        _ => Err(TokenError::ClaimType { label: l, expected: "int" }),
    }
}

fn read_u64(l: i64, v: &Value) -> Result<u64, TokenError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| TokenError::ClaimType { label: l, expected: "uint" }),
        _ => Err(TokenError::ClaimType { label: l, expected: "uint" }),
    }
}

fn read_bytes(l: i64, v: &Value) -> Result<Vec<u8>, TokenError> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        _ => Err(TokenError::ClaimType { label: l, expected: "bstr" }),
    }
}

fn read_object_id(l: i64, v: &Value) -> Result<ObjectId, TokenError> {
    match v {
        Value::Bytes(b) => b
            .as_slice()
            .try_into()
            .map(ObjectId)
            .map_err(|_| TokenError::ClaimType { label: l, expected: "32-byte ObjectId" }),
        _ => Err(TokenError::ClaimType { label: l, expected: "bstr ObjectId" }),
    }
}

fn read_array<T>(l: i64, v: &Value, each: fn(i64, &Value) -> Result<T, TokenError>) -> Result<Vec<T>, TokenError> {
    match v {
        Value::Array(items) => items.iter().map(|i| each(l, i)).collect(),
        _ => Err(TokenError::ClaimType { label: l, expected: "array" }),
    }
}

impl CapabilityClaims {
    /// The integer-keyed map of these claims, exactly as given (no sign-time additions).
    ///
    /// Fails if an `extra` key collides with a claim of the table.
    pub fn to_claim_map(&self) -> Result<ClaimMap, TokenError> {
        let mut m = ClaimMap::new();
        let mut put = |l: i64, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(l, v);
            }
        };
        put(label::ISS, self.iss.as_deref().map(text));
        put(label::SUB, self.sub.as_deref().map(text));
        put(label::AUD, self.aud.as_deref().map(text));
        put(label::EXP, self.exp.map(int));
        put(label::NBF, self.nbf.map(int));
        put(label::IAT, self.iat.map(int));
        put(label::CTI, self.cti.clone().map(Value::Bytes));
        put(label::CAPABILITY_ID, self.capability_id.as_deref().map(text));
        put(label::ZONE_ID, self.zone_id.as_deref().map(text));
        put(label::OPERATIONS, self.operations.as_deref().map(texts));
        put(label::PRINCIPAL_ID, self.principal_id.as_deref().map(text));
        put(label::DELEGATION_DEPTH, self.delegation_depth.map(uint));
        put(label::PARENT_TOKEN, self.parent_token.clone().map(Value::Bytes));
        put(label::ISS_NODE, self.iss_node.as_deref().map(text));
        put(label::AUD_BINARY, self.aud_binary.map(|id| Value::bytes(id.0)));
        put(
            label::GRANT_OBJECT_IDS,
            self.grant_object_ids.as_ref().map(|ids| Value::Array(ids.iter().map(|id| Value::bytes(id.0)).collect())),
        );
        put(label::HOLDER_NODE, self.holder_node.as_deref().map(text));
        put(label::CHK_ID, self.chk_id.clone().map(Value::Bytes));
        put(label::CHK_SEQ, self.chk_seq.map(uint));
        put(label::CONSTRAINTS, self.constraints.clone());
        put(label::GRANTS, self.grants.as_ref().map(|g| Value::Array(g.iter().map(Grant::to_value).collect())));
        put(label::INSTANCE_ID, self.instance_id.as_deref().map(text));
        put(label::SCHEMA_VERSION, self.schema_version.map(uint));
        for (k, v) in &self.extra {
            if m.insert(*k, v.clone()).is_some() {
                return Err(TokenError::ClaimConflict { label: *k });
            }
        }
        Ok(m)
    }

    /// Deterministic CBOR of [`CapabilityClaims::to_claim_map`] (`claims_cbor` in the vectors).
    pub fn to_cbor(&self) -> Result<Vec<u8>, TokenError> {
        self.to_claim_map()?.to_cbor()
    }

    /// Reads typed claims out of a claim map, checking every known claim's type against the
    /// digest §5.2 table. Unknown integer keys go to `extra`.
    pub fn from_claim_map(map: &ClaimMap) -> Result<CapabilityClaims, TokenError> {
        let mut c = CapabilityClaims::default();
        for (l, v) in map.iter() {
            match l {
                label::ISS => c.iss = Some(read_text(l, v)?),
                label::SUB => c.sub = Some(read_text(l, v)?),
                label::AUD => c.aud = Some(read_text(l, v)?),
                label::EXP => c.exp = Some(read_i64(l, v)?),
                label::NBF => c.nbf = Some(read_i64(l, v)?),
                label::IAT => c.iat = Some(read_i64(l, v)?),
                label::CTI => c.cti = Some(read_bytes(l, v)?),
                label::CAPABILITY_ID => c.capability_id = Some(read_text(l, v)?),
                label::ZONE_ID => c.zone_id = Some(read_text(l, v)?),
                label::OPERATIONS => c.operations = Some(read_array(l, v, read_text)?),
                label::PRINCIPAL_ID => c.principal_id = Some(read_text(l, v)?),
                label::DELEGATION_DEPTH => c.delegation_depth = Some(read_u64(l, v)?),
                label::PARENT_TOKEN => c.parent_token = Some(read_bytes(l, v)?),
                label::ISS_NODE => c.iss_node = Some(read_text(l, v)?),
                label::AUD_BINARY => c.aud_binary = Some(read_object_id(l, v)?),
                label::GRANT_OBJECT_IDS => c.grant_object_ids = Some(read_array(l, v, read_object_id)?),
                label::HOLDER_NODE => c.holder_node = Some(read_text(l, v)?),
                label::CHK_ID => c.chk_id = Some(read_bytes(l, v)?),
                label::CHK_SEQ => c.chk_seq = Some(read_u64(l, v)?),
                label::CONSTRAINTS => c.constraints = Some(v.clone()),
                label::GRANTS => c.grants = Some(read_array(l, v, |_, g| Grant::from_value(g))?),
                label::INSTANCE_ID => c.instance_id = Some(read_text(l, v)?),
                label::SCHEMA_VERSION => c.schema_version = Some(read_u64(l, v)?),
                other => {
                    c.extra.insert(other, v.clone());
                }
            }
        }
        Ok(c)
    }

    /// The token id (`cti`), which holder proofs and revocation refer to.
    pub fn jti(&self) -> Option<&[u8]> {
        self.cti.as_deref()
    }

    /// The grants the token confers: the `grants` claim if present, otherwise one grant per
    /// operation of `capability_id` (what \[I\]'s token builder writes when grants is absent).
    pub fn effective_grants(&self) -> Vec<Grant> {
        if let Some(g) = &self.grants {
            return g.clone();
        }
        match (&self.capability_id, &self.operations) {
            (Some(cap), Some(ops)) => {
                ops.iter().map(|op| Grant { capability: cap.clone(), operation: Some(op.clone()) }).collect()
            }
            (Some(cap), None) => vec![Grant { capability: cap.clone(), operation: None }],
            _ => Vec::new(),
        }
    }

    /// The \[I\] `validate_timing` rule: refuses when `now ≥ exp` or `now < nbf` (seconds).
    /// Absent claims do not restrict; whether they are required is the verifier's policy.
    pub fn check_timing(&self, now_secs: u64) -> Result<(), TokenError> {
        let now = i128::from(now_secs);
        if let Some(exp) = self.exp {
            if now >= i128::from(exp) {
                return Err(TokenError::Expired { exp, now: now_secs });
            }
        }
        if let Some(nbf) = self.nbf {
            if now < i128::from(nbf) {
                return Err(TokenError::NotYetValid { nbf, now: now_secs });
            }
        }
        Ok(())
    }
}
