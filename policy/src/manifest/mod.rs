//! Connector manifests (digest §11): parsed, validated and hashed.
//!
//! [`Manifest::parse`] reads a TOML 1.1 manifest with the parser the reference
//! implementation (\[I\]) uses, applies every rule of digest §11.1 and §11.3, and
//! recomputes the interface hash of §11.2. It reports every violation it finds, each
//! with a stable code from `vectors/README.md` §5.17 and the TOML key path, and it is
//! never stricter than \[I\] (the "Accepted by \[I\]" list of §11.1 validates).
//!
//! [`compute_interface`] and [`fix_interface_hash`] work on texts that break other
//! rules, so `fcp manifest fix` can repair a stale hash before `fcp manifest check`
//! reports the rest. [`fill_defaults`] writes out the defaults the validator assumes,
//! without changing what the text means.
//!
//! Pure: no I/O. The caller reads the file.

mod defaults;
mod error;
mod hash;
mod lint;
mod model;
mod net;
mod read;
mod tree;
mod validate;

pub use defaults::{fill_defaults, FixReport};
pub use error::{ManifestError, Rule, Violation};
pub use hash::{Interface, InterfaceHash};
pub use model::*;

use fcp_proto::cbor;

impl Manifest {
    /// Parses and validates a manifest text. The error lists every violation found.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let checked = validate::check(text);
        match checked.manifest {
            Some(manifest) if checked.violations.is_empty() => Ok(manifest),
            _ => Err(ManifestError::Invalid { violations: checked.violations }),
        }
    }

    /// The interface descriptor of digest §11.2, as a CBOR value.
    pub fn interface_descriptor(&self) -> cbor::Value {
        hash::descriptor(&self.connector, &self.capabilities, &self.operations)
    }

    /// The deterministic CBOR encoding of [`Manifest::interface_descriptor`].
    pub fn descriptor_cbor(&self) -> Vec<u8> {
        hash::encode(&self.interface_descriptor())
    }

    /// The recomputed interface hash; for a parsed manifest it equals
    /// `self.header.interface_hash`.
    pub fn interface_hash(&self) -> InterfaceHash {
        InterfaceHash::of_descriptor(&self.descriptor_cbor())
    }
}

/// Recomputes the interface of a manifest text. Violations of rules the descriptor does
/// not depend on (sandbox, zones, a stale declared hash …) do not stop it; the error lists
/// every violation when the descriptor cannot be built.
pub fn compute_interface(text: &str) -> Result<Interface, ManifestError> {
    let checked = validate::check(text);
    checked.interface.ok_or(ManifestError::Invalid { violations: checked.violations })
}

/// Rewrites the value of `manifest.interface_hash` with the recomputed hash and leaves
/// every other byte of `text` as it is. The text may break rules that the descriptor
/// does not depend on.
pub fn fix_interface_hash(text: &str) -> Result<String, ManifestError> {
    let interface = compute_interface(text)?;
    let span = tree::string_span(text, &["manifest", "interface_hash"]).ok_or(ManifestError::NoInterfaceHash)?;
    let (Some(before), Some(after)) = (text.get(..span.start), text.get(span.end..)) else {
        return Err(ManifestError::NoInterfaceHash);
    };
    Ok(format!("{before}\"{}\"{after}", interface.hash))
}

/// Vector cases of the manifest kinds.
pub mod vectors {
    use serde_json::Value as Json;

    use super::{compute_interface, Manifest};
    use crate::conformance::Loader;

    fn load_manifest(case: &Json, load: Loader<'_>) -> Result<String, String> {
        let path = case["manifest"].as_str().ok_or("case has no manifest path")?;
        load(path)
    }

    fn expected(case: &Json) -> Result<&serde_json::Map<String, Json>, String> {
        case["expected"].as_object().ok_or_else(|| "case has no expected object".to_owned())
    }

    /// Runs one `interface_hash` case.
    pub fn interface_hash(case: &Json, load: Loader<'_>) -> Result<(), String> {
        let text = load_manifest(case, load)?;
        let interface = compute_interface(&text).map_err(|e| e.to_string())?;
        for (field, want) in expected(case)? {
            let got = match field.as_str() {
                "interface_hash" => interface.hash.to_string(),
                "descriptor_cbor" => hex::encode(&interface.descriptor_cbor),
                other => return Err(format!("unknown expected field {other:?}")),
            };
            if want.as_str() != Some(got.as_str()) {
                return Err(format!("{field}: expected {want}, got {got:?}"));
            }
        }
        Ok(())
    }

    /// Runs one `manifest_validation` case.
    pub fn manifest_validation(case: &Json, load: Loader<'_>) -> Result<(), String> {
        let text = load_manifest(case, load)?;
        let (valid, codes, detail) = match Manifest::parse(&text) {
            Ok(_) => (true, Vec::new(), String::new()),
            Err(e) => (false, e.codes(), e.to_string()),
        };
        for (field, want) in expected(case)? {
            match field.as_str() {
                "valid" => {
                    if want.as_bool() != Some(valid) {
                        return Err(format!("valid: expected {want}, got {valid} ({detail})"));
                    }
                }
                "violations" => {
                    let mut want_codes: Vec<&str> = want
                        .as_array()
                        .ok_or("violations is not an array")?
                        .iter()
                        .map(|c| c.as_str().ok_or("violation code is not a string"))
                        .collect::<Result<_, _>>()?;
                    want_codes.sort_unstable();
                    want_codes.dedup();
                    if want_codes != codes {
                        return Err(format!("violations: expected {want_codes:?}, got {codes:?} ({detail})"));
                    }
                }
                other => return Err(format!("unknown expected field {other:?}")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A manifest that uses every section. Its interface hash is a placeholder; use
    /// [`fixed`] to get a valid text.
    pub(crate) const BASE: &str = r#"
[manifest]
format = "fcp-connector-manifest"
schema_version = "2.1"
min_mesh_version = "2.0.0"
min_protocol = "fcp2-sym/2.0"
protocol_features = ["fcps.aead.xchacha20poly1305", "fcps.aead.xchacha20poly1305"]
max_datagram_bytes = 1200
interface_hash = "blake3-256:fcp.interface.v2:0000000000000000000000000000000000000000000000000000000000000000"

[connector]
id = "fcp.sample"
name = "Sample"
version = "1.2.3-rc.1+build.5"
description = "Sample connector"
archetypes = ["operational", "bidirectional", "operational"]
format = "native"
status = "experimental"

[connector.state]
model = "singleton_writer"
state_schema_version = "1"
migration_hint = "init"

[zones]
home = "z:work"
allowed_sources = ["z:owner", "z:project:*"]
allowed_targets = ["z:work", "z:work"]
forbidden = ["z:public"]

[capabilities]
required = ["network.dns", "network.egress", "sample.read"]
optional = ["sample.write"]
forbidden = ["system.exec", "network.listen"]

[provides.operations."sample.read"]
description = "Read things"
capability = "sample.read"
risk_level = "low"
safety_tier = "safe"
requires_approval = "none"
idempotency = "strict"
rate_limit = "60/min"
input_schema = { type = "object", properties = { n = { type = "integer", maximum = 100, scale = 1.5 } } }
output_schema = { type = "object" }

[provides.operations."sample.read".network_constraints]
host_allow = ["api.sample.com", "*.sample.com", "api.sample.com"]
port_allow = [8443, 443, 443]
ip_allow = ["2001:db8::1", "10.0.0.2", "10.0.0.1"]
cidr_deny = ["10.0.0.1/8", "192.168.0.0/16"]
require_sni = true
spki_pins = ["base64:YmFy", "base64:Zm9v"]
dns_max_ips = 0
max_redirects = 0
connect_timeout_ms = 5000
total_timeout_ms = 5000

[provides.operations."sample.read".ai_hints]
when_to_use = ""
future_key = { anything = [1, 2.5, "x"] }
related = ["sample.write"]

[provides.operations."sample.write"]
description = "Write things"
capability = "sample.write"
risk_level = "high"
safety_tier = "forbidden"
requires_approval = "approval_required"
idempotency = "best_effort"
migration_supported = true
revocation_freshness = "critical"
rate_limit = { max = 5, per_ms = 1000, burst = 0, scope = "per_zone", pool_name = "writes.v1", note = "ignored" }
input_schema = "free text"
output_schema = [1, -0.0, nan, 1979-05-27 07:32:00.500z]
network_constraints = { host_allow = ["none.invalid"], port_allow = [0], dns_max_ips = 0, require_sni = false }

[provides.events."sample.changed"]
description = "Something changed"
streaming = true
topic = "changes"
schema = { type = "object" }

[event_caps]
streaming = true
replay = false
min_buffer_events = 10

[timeouts]
request_timeout_ms = 1000

[performance_budget]
cold_start_max_ms = 250
idle_cpu_max_pct = 0.5

[sandbox]
profile = "strict"
memory_mb = 0
cpu_percent = 150
wall_clock_timeout_ms = 30000
fs_readonly_paths = ["/usr", "/usr/../etc"]
fs_writable_paths = ["$CONNECTOR_STATE", "$CONNECTOR_STATE/cache//x"]
deny_exec = false
deny_ptrace = true

[[rate_limits.pools]]
id = "reads"
requests = 100
window_ms = 60000
burst = 20
unit = "requests"
enforcement = "soft"
scope = "credential"

[rate_limits.operation_pools]
"sample.read" = ["reads"]
"no.such.operation" = ["reads"]

[signatures]
publisher_signatures = [{ kid = "a", sig = "base64:Zm9v" }, { kid = "b", sig = "base64:" }]
publisher_threshold = "+1-of-02"
registry_signature = { kid = "reg", sig = "base64:YmF6" }
transparency_log_entry = "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"

[supply_chain]
attestations = [{ type = "in-toto", object_id = "objectid:2222222222222222222222222222222222222222222222222222222222222222" }]

[policy]
require_transparency_log = true
require_attestation_types = ["code-review"]
min_slsa_level = 4

[security]
description_scan = "block"

[sampling]
enabled = true
max_tool_rounds = 0
allowed_models = ["m1"]
"#;

    /// `text` with its interface hash recomputed.
    pub(crate) fn fixed(text: &str) -> String {
        fix_interface_hash(text).expect("descriptor builds")
    }

    /// The sorted codes `text` breaks, with their paths.
    pub(crate) fn violations(text: &str) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = match Manifest::parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.violations().iter().map(|v| (v.code(), v.path().to_owned())).collect(),
        };
        v.sort();
        v
    }

    #[test]
    fn base_manifest_is_valid_once_its_hash_is_fixed() {
        let stale = violations(BASE);
        assert_eq!(stale, vec![("interface_hash_mismatch", "manifest.interface_hash".to_owned())]);
        let text = fixed(BASE);
        let m = Manifest::parse(&text).expect("valid");
        assert_eq!(m.interface_hash(), m.header.interface_hash);
        assert_eq!(fix_interface_hash(&text).as_deref(), Ok(text.as_str()));
        // Only the hash line changed.
        let changed: Vec<(&str, &str)> = BASE.lines().zip(text.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].1.starts_with("interface_hash = \"blake3-256:fcp.interface.v2:"));
    }

    #[test]
    fn typed_values_have_defaults_filled_in() {
        let m = Manifest::parse(&fixed(BASE)).expect("valid");
        assert_eq!(m.header.schema_version, Version2 { major: 2, minor: 1 });
        assert_eq!(m.header.min_protocol.name, "fcp2-sym");
        assert_eq!(m.connector.version.to_string(), "1.2.3-rc.1+build.5");
        assert_eq!(m.connector.status, ConnectorStatus::Experimental);
        assert_eq!(m.zones.allowed_sources[1], ZonePattern::AnyProject);
        let read = &m.operations[&fcp_proto::id::CanonicalId::new("sample.read").expect("id")];
        assert_eq!(
            read.rate_limit,
            Some(RateLimit { max: 60, per_ms: 60_000, burst: None, scope: None, pool_name: None })
        );
        assert_eq!(read.revocation_freshness, RevocationFreshness::Safe);
        let nc = read.network_constraints.as_ref().expect("constraints");
        assert!(nc.deny_localhost && nc.deny_private_ranges && nc.deny_ip_literals);
        assert_eq!((nc.dns_max_ips, nc.max_redirects, nc.max_response_bytes), (0, 0, 10_485_760));
        assert_eq!(nc.cidr_deny[0].prefix_len(), 8);
        assert_eq!(nc.spki_pins, vec![b"bar".to_vec(), b"foo".to_vec()]);
        let write = &m.operations[&fcp_proto::id::CanonicalId::new("sample.write").expect("id")];
        assert_eq!(write.requires_approval, ApprovalMode::ElevationToken);
        assert_eq!(write.safety_tier, SafetyTier::Forbidden);
        assert_eq!(write.rate_limit.as_ref().and_then(|r| r.scope), Some(RateLimitScope::PerZone));
        assert_eq!(write.output_schema[3]["$__toml_private_datetime"], "1979-05-27T07:32:00.5Z");
        assert_eq!(m.timeouts, Timeouts { request_timeout_ms: 1000, ..Timeouts::default() });
        assert_eq!(m.performance_budget.cold_start_max_ms, Some(250.0));
        assert_eq!(
            m.sandbox.fs_writable_paths,
            vec![SandboxPath::ConnectorState(String::new()), SandboxPath::ConnectorState("cache//x".into())]
        );
        assert_eq!(m.signatures.publisher_threshold, Some(Threshold { k: 1, n: 2 }));
        assert_eq!(m.signatures.transparency_log_entry.map(|o| o.0), Some([0xab; 32]));
        assert_eq!(m.security.description_scan, DescriptionScan::Block);
        assert_eq!((m.sampling.max_rpm, m.sampling.max_tool_rounds), (10, 0));
    }

    #[test]
    fn descriptor_follows_digest_11_2() {
        let m = Manifest::parse(&fixed(BASE)).expect("valid");
        let d = cbor::decode(&m.descriptor_cbor(), cbor::Limits::with_max_len(1 << 20)).expect("canonical");
        let text = |v: &cbor::Value| match v {
            cbor::Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        };
        let list = |v: Option<&cbor::Value>| match v {
            Some(cbor::Value::Array(a)) => a.iter().map(text).collect::<Vec<_>>(),
            other => vec![format!("{other:?}")],
        };
        assert_eq!(list(d.get("archetypes")), ["bidirectional", "operational"]);
        let state = d.get("state").expect("state");
        assert_eq!(state.get("model").map(text).as_deref(), Some("singleton_writer"));
        assert_eq!(state.get("migration_hint").map(text).as_deref(), Some("init"));
        let Some(cbor::Value::Array(ops)) = d.get("operations") else { panic!("operations") };
        assert_eq!(
            ops.iter().map(|o| o.get("id").map(text)).collect::<Vec<_>>(),
            [Some("sample.read".to_owned()), Some("sample.write".to_owned())]
        );
        let nc = ops[0].get("network_constraints").expect("constraints");
        assert_eq!(list(nc.get("host_allow")), ["*.sample.com", "api.sample.com", "api.sample.com"]);
        assert_eq!(
            nc.get("port_allow"),
            Some(&cbor::Value::Array(vec![cbor::Value::Int(443), cbor::Value::Int(443), cbor::Value::Int(8443)]))
        );
        assert_eq!(list(nc.get("cidr_deny")), ["10.0.0.1/8", "192.168.0.0/16"]);
        assert_eq!(list(nc.get("spki_pins")), ["base64:YmFy", "base64:Zm9v"]);
        let Some(cbor::Value::Array(ips)) = nc.get("ip_allow") else { panic!("ip_allow") };
        assert!(ips[0].get("V4").is_some() && ips[1].get("V4").is_some() && ips[2].get("V6").is_some());
        assert_eq!(ips[0].get("V4"), Some(&cbor::Value::Array([10, 0, 0, 1].map(cbor::Value::Int).to_vec())));
        assert_eq!(ops[0].get("rate_limit").and_then(|r| r.get("per_ms")), Some(&cbor::Value::Int(60_000)));
        assert_eq!(ops[0].get("migration_supported"), None);
        assert_eq!(ops[1].get("migration_supported"), Some(&cbor::Value::Bool(true)));
        assert_eq!(ops[1].get("requires_approval").map(text).as_deref(), Some("elevation_token"));
        let rl = ops[1].get("rate_limit").expect("rate limit");
        assert_eq!(rl.get("note"), None);
        assert_eq!(rl.get("burst"), Some(&cbor::Value::Int(0)));
        let Some(cbor::Value::Array(out)) = ops[1].get("output_schema") else { panic!("output_schema") };
        assert_eq!(out[1], cbor::Value::Float(0.0));
        assert_eq!(out[2], cbor::Value::Null);
        assert_eq!(out[3].get("$__toml_private_datetime").map(text).as_deref(), Some("1979-05-27T07:32:00.5Z"));
        assert_eq!(ops[1].get("network_constraints").and_then(|n| n.get("ip_allow")), None);
    }

    #[test]
    fn the_hash_ignores_what_the_descriptor_leaves_out() {
        let text = fixed(BASE);
        let base = compute_interface(&text).expect("interface").hash;
        for (old, new) in [
            ("name = \"Sample\"", "name = \"Renamed\""),
            ("memory_mb = 0", "memory_mb = 512"),
            ("home = \"z:work\"", "home = \"z:owner\""),
            ("when_to_use = \"\"", "when_to_use = \"often\""),
            ("revocation_freshness = \"critical\"", "revocation_freshness = \"safe\""),
            ("min_slsa_level = 4", "min_slsa_level = 1"),
            ("[\"operational\", \"bidirectional\", \"operational\"]", "[\"bidirectional\", \"operational\"]"),
            (
                "required = [\"network.dns\", \"network.egress\", \"sample.read\"]",
                "required = [\"sample.read\", \"network.egress\", \"network.dns\"]",
            ),
        ] {
            assert!(text.contains(old), "{old}");
            let changed = text.replace(old, new);
            assert_eq!(compute_interface(&changed).expect("interface").hash, base, "{old} -> {new}");
        }
        for (old, new) in [
            ("description = \"Read things\"", "description = \"Read more things\""),
            ("port_allow = [8443, 443, 443]", "port_allow = [8443, 443]"),
            ("migration_supported = true", "migration_supported = false"),
            ("id = \"fcp.sample\"", "id = \"fcp.other\""),
            ("model = \"singleton_writer\"", "model = \"stateless\""),
        ] {
            let changed = text.replace(old, new);
            assert_ne!(compute_interface(&changed).expect("interface").hash, base, "{old} -> {new}");
        }
    }

    #[test]
    fn fix_needs_a_buildable_descriptor_and_a_hash_string() {
        let broken = BASE.replace("risk_level = \"low\"", "risk_level = \"tiny\"");
        let err = fix_interface_hash(&broken).expect_err("descriptor cannot be built");
        assert_eq!(err.codes(), ["bad_value"]);
        let no_hash = BASE.replace(
            "interface_hash = \"blake3-256:fcp.interface.v2:0000000000000000000000000000000000000000000000000000000000000000\"",
            "",
        );
        assert_eq!(fix_interface_hash(&no_hash), Err(ManifestError::NoInterfaceHash));
        // Other broken rules do not stop the fix.
        let zone = fixed(&BASE.replace("forbidden = [\"z:public\"]", "forbidden = [\"z:work\"]"));
        assert_eq!(violations(&zone), [("home_zone_forbidden", "zones.forbidden".to_owned())]);
    }
}
