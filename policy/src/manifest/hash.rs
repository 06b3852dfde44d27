//! The interface descriptor and interface_hash (digest §11.2).
//!
//! `interface_hash = "blake3-256:fcp.interface.v2:" + hex(BLAKE3("FCP2-INTERFACE-V1" ||
//! det-CBOR(descriptor)))`. The descriptor covers only what a caller of the connector
//! can observe: its id, archetypes, state model, capabilities and operations.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use fcp_proto::cbor::{self, Value};
use fcp_proto::id::CanonicalId;

use super::error::ManifestError;
use super::model::{Capabilities, Connector, NetworkConstraints, Operation, RateLimit, StateModel};

/// Text before the hex digest.
const PREFIX: &str = "blake3-256:fcp.interface.v2:";
/// BLAKE3 domain separation for the descriptor.
const DOMAIN: &[u8] = b"FCP2-INTERFACE-V1";
/// serde's key for a TOML datetime inside a JSON value (digest §11.2).
pub(crate) const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

/// A connector's interface hash: a BLAKE3-256 digest, written
/// `blake3-256:fcp.interface.v2:<64 lowercase hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceHash(pub [u8; 32]);

impl InterfaceHash {
    /// Hashes a deterministic CBOR descriptor.
    pub fn of_descriptor(descriptor_cbor: &[u8]) -> InterfaceHash {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        h.update(descriptor_cbor);
        InterfaceHash(*h.finalize().as_bytes())
    }
}

impl fmt::Display for InterfaceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for InterfaceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InterfaceHash({self})")
    }
}

impl FromStr for InterfaceHash {
    type Err = ManifestError;

    /// Accepts exactly the prefix and 64 lowercase hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(PREFIX).ok_or(ManifestError::InterfaceHashSyntax)?;
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ManifestError::InterfaceHashSyntax);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out).map_err(|_| ManifestError::InterfaceHashSyntax)?;
        Ok(InterfaceHash(out))
    }
}

/// A descriptor and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The recomputed interface hash.
    pub hash: InterfaceHash,
    /// The deterministic CBOR descriptor that was hashed.
    pub descriptor_cbor: Vec<u8>,
}

impl Interface {
    pub(crate) fn of(connector: &Connector, caps: &Capabilities, ops: &BTreeMap<CanonicalId, Operation>) -> Self {
        let descriptor_cbor = encode(&descriptor(connector, caps, ops));
        Interface { hash: InterfaceHash::of_descriptor(&descriptor_cbor), descriptor_cbor }
    }
}

/// Deterministic CBOR of a descriptor built by [`descriptor`].
pub(crate) fn encode(descriptor: &Value) -> Vec<u8> {
    // The builders below emit only text keys that are distinct within each map, integers
    // from u8..u64/i64, and floats taken from serde_json numbers, which are always finite.
    cbor::encode(descriptor).expect("invariant: descriptor maps have distinct keys and every float is finite")
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

fn sorted_dedup(ids: &[CanonicalId]) -> Value {
    let mut v: Vec<&str> = ids.iter().map(CanonicalId::as_str).collect();
    v.sort_unstable();
    v.dedup();
    Value::Array(v.into_iter().map(text).collect())
}

/// The descriptor map of digest §11.2.
pub(crate) fn descriptor(connector: &Connector, caps: &Capabilities, ops: &BTreeMap<CanonicalId, Operation>) -> Value {
    let mut archetypes: Vec<&str> = connector.archetypes.iter().map(|a| a.as_str()).collect();
    archetypes.sort_unstable();
    archetypes.dedup();
    map(vec![
        ("connector_id", text(connector.id.as_str())),
        ("archetypes", Value::Array(archetypes.into_iter().map(text).collect())),
        ("state", state(connector)),
        (
            "capabilities",
            map(vec![
                ("required", sorted_dedup(&caps.required)),
                ("optional", sorted_dedup(&caps.optional)),
                ("forbidden", sorted_dedup(&caps.forbidden)),
            ]),
        ),
        // BTreeMap iteration is already in op-id byte order.
        ("operations", Value::Array(ops.iter().map(|(id, op)| operation(id, op)).collect())),
    ])
}

/// `state`: the effective model; stateless carries nothing else, and the legacy flag alone
/// gives a bare singleton_writer.
fn state(connector: &Connector) -> Value {
    let Some(s) = &connector.state else {
        return map(vec![("model", text(connector.effective_state_model().as_str()))]);
    };
    let mut entries = vec![("model", text(s.model.as_str()))];
    if s.model == StateModel::Stateless {
        return map(entries);
    }
    entries.push(("state_schema_version", text(&s.state_schema_version)));
    if let Some(hint) = &s.migration_hint {
        entries.push(("migration_hint", text(hint)));
    }
    if s.model == StateModel::Crdt {
        if let Some(t) = s.crdt_type {
            entries.push(("crdt_type", text(t.as_str())));
        }
        if let Some(n) = s.snapshot_every_updates {
            entries.push(("snapshot_every_updates", Value::Int(n.into())));
        }
        if let Some(n) = s.snapshot_every_bytes {
            entries.push(("snapshot_every_bytes", Value::Int(n.into())));
        }
    }
    map(entries)
}

fn operation(id: &CanonicalId, op: &Operation) -> Value {
    let mut entries = vec![
        ("id", text(id.as_str())),
        ("capability", text(op.capability.as_str())),
        ("description", text(&op.description)),
        ("risk_level", text(op.risk_level.as_str())),
        ("safety_tier", text(op.safety_tier.as_str())),
        ("requires_approval", text(op.requires_approval.as_str())),
        ("idempotency", text(op.idempotency.as_str())),
        ("input_schema", json(&op.input_schema)),
        ("output_schema", json(&op.output_schema)),
    ];
    if op.migration_supported {
        entries.push(("migration_supported", Value::Bool(true)));
    }
    if let Some(rl) = &op.rate_limit {
        entries.push(("rate_limit", rate_limit(rl)));
    }
    if let Some(nc) = &op.network_constraints {
        entries.push(("network_constraints", network_constraints(nc)));
    }
    map(entries)
}

fn rate_limit(rl: &RateLimit) -> Value {
    let mut entries = vec![("max", Value::Int(rl.max.into())), ("per_ms", Value::Int(rl.per_ms.into()))];
    if let Some(b) = rl.burst {
        entries.push(("burst", Value::Int(b.into())));
    }
    if let Some(s) = rl.scope {
        entries.push(("scope", text(s.as_str())));
    }
    if let Some(p) = &rl.pool_name {
        entries.push(("pool_name", text(p)));
    }
    map(entries)
}

fn network_constraints(nc: &NetworkConstraints) -> Value {
    let mut hosts: Vec<&str> = nc.host_allow.iter().map(|h| h.as_str()).collect();
    hosts.sort_unstable();
    let mut ports = nc.port_allow.clone();
    ports.sort_unstable();
    let mut entries = vec![
        ("host_allow", Value::Array(hosts.into_iter().map(text).collect())),
        ("port_allow", Value::Array(ports.into_iter().map(|p| Value::Int(p.into())).collect())),
    ];
    if !nc.ip_allow.is_empty() {
        let mut ips = nc.ip_allow.clone();
        // IpAddr's order puts every IPv4 address before every IPv6 one, as [I]'s sort does.
        ips.sort_unstable();
        entries.push(("ip_allow", Value::Array(ips.iter().map(ip).collect())));
    }
    if !nc.cidr_deny.is_empty() {
        let mut cidrs: Vec<&str> = nc.cidr_deny.iter().map(|c| c.as_str()).collect();
        cidrs.sort_unstable();
        entries.push(("cidr_deny", Value::Array(cidrs.into_iter().map(text).collect())));
    }
    if !nc.spki_pins.is_empty() {
        let mut pins: Vec<&Vec<u8>> = nc.spki_pins.iter().collect();
        pins.sort_unstable();
        let pins = pins.into_iter().map(|p| Value::Text(format!("base64:{}", BASE64.encode(p)))).collect();
        entries.push(("spki_pins", Value::Array(pins)));
    }
    let flag = |b: bool| Value::Bool(b);
    entries.extend([
        ("deny_localhost", flag(nc.deny_localhost)),
        ("deny_private_ranges", flag(nc.deny_private_ranges)),
        ("deny_tailnet_ranges", flag(nc.deny_tailnet_ranges)),
        ("require_sni", flag(nc.require_sni)),
        ("deny_ip_literals", flag(nc.deny_ip_literals)),
        ("require_host_canonicalization", flag(nc.require_host_canonicalization)),
        ("dns_max_ips", Value::Int(nc.dns_max_ips.into())),
        ("max_redirects", Value::Int(nc.max_redirects.into())),
        ("connect_timeout_ms", Value::Int(nc.connect_timeout_ms.into())),
        ("total_timeout_ms", Value::Int(nc.total_timeout_ms.into())),
        ("max_response_bytes", Value::Int(nc.max_response_bytes.into())),
    ]);
    map(entries)
}

/// serde's non-human-readable `IpAddr`: `{"V4": [4 octets]}` or `{"V6": [16 octets]}`.
fn ip(addr: &IpAddr) -> Value {
    let octets = |b: &[u8]| Value::Array(b.iter().map(|o| Value::Int((*o).into())).collect());
    match addr {
        IpAddr::V4(a) => map(vec![("V4", octets(&a.octets()))]),
        IpAddr::V6(a) => map(vec![("V6", octets(&a.octets()))]),
    }
}

/// A schema value: JSON → CBOR as-is (integers stay integers, floats stay floats).
fn json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Int(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Int(i.into())
            } else {
                n.as_f64().map_or(Value::Null, Value::Float)
            }
        }
        serde_json::Value::String(s) => text(s),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json).collect()),
        serde_json::Value::Object(m) => Value::Map(m.iter().map(|(k, v)| (text(k), json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_text_form_is_strict() {
        let h = InterfaceHash([0xab; 32]);
        let s = h.to_string();
        assert_eq!(s, format!("blake3-256:fcp.interface.v2:{}", "ab".repeat(32)));
        assert_eq!(s.parse::<InterfaceHash>(), Ok(h));
        for bad in [
            format!("blake3-256:fcp.interface.v2:{}", "AB".repeat(32)),
            format!("blake3-256:fcp.interface.v2:{}", "ab".repeat(31)),
            format!("blake3-256:fcp.interface.v2:{}0", "ab".repeat(32)),
            format!("blake3-256:fcp.interface.v1:{}", "ab".repeat(32)),
            format!("sha256:fcp.interface.v2:{}", "ab".repeat(32)),
            "pending".to_owned(),
        ] {
            assert_eq!(bad.parse::<InterfaceHash>(), Err(ManifestError::InterfaceHashSyntax), "{bad}");
        }
    }

    #[test]
    fn ip_entries_use_serde_binary_form() {
        let v4: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(hex::encode(encode(&ip(&v4))), "a1625634840a000002");
        let v6: IpAddr = "::1".parse().expect("ip");
        let enc = encode(&ip(&v6));
        assert_eq!(&enc[..5], &[0xa1, 0x62, b'V', b'6', 0x90]);
    }

    #[test]
    fn schema_numbers_keep_their_kind() {
        let v: serde_json::Value =
            serde_json::json!({"a": 1.0, "b": -0.0, "c": 18_446_744_073_709_551_615u64, "d": -3});
        let enc = hex::encode(encode(&json(&v)));
        // {"a": f9 3c00, "b": f9 0000, "c": 1b ff.., "d": 22}
        assert_eq!(enc, "a46161f93c006162f9000061631bffffffffffffffff616422");
    }
}
