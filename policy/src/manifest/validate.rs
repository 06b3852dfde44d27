//! One pass over a manifest text: every section read, then the rules that relate
//! sections, then the interface hash (digest §11.1, §11.2; `vectors/README.md` §5.17).

use std::collections::{BTreeMap, BTreeSet};

use fcp_proto::id::CanonicalId;

use super::error::{Rule, Violation};
use super::hash::Interface;
use super::model::*;
use super::read::{Reader, Table};
use super::tree::{self, Node};

/// Largest manifest text read (real manifests are tens of KiB).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The top-level sections.
const SECTIONS: &[&str] = &[
    "manifest",
    "connector",
    "zones",
    "capabilities",
    "provides",
    "event_caps",
    "timeouts",
    "performance_budget",
    "sandbox",
    "rate_limits",
    "signatures",
    "supply_chain",
    "policy",
    "security",
    "sampling",
];

/// The outcome of checking a text.
pub(crate) struct Checked {
    /// Every violation, in the order found.
    pub(crate) violations: Vec<Violation>,
    /// The manifest, when there is no violation.
    pub(crate) manifest: Option<Manifest>,
    /// The recomputed interface, whenever every value the descriptor reads is valid.
    pub(crate) interface: Option<Interface>,
}

/// Reads a required (`default` is `None`) or optional top-level section.
fn section<T>(
    r: &mut Reader,
    root: &Table,
    key: &str,
    default: Option<T>,
    read: impl FnOnce(&mut Reader, &Table, &str) -> Option<T>,
) -> Option<T> {
    match root.get(key) {
        Some(n) => r.table(n, key).and_then(|t| read(r, t, key)),
        None if default.is_none() => {
            r.push(Rule::MissingKey, key, "required section is missing");
            None
        }
        None => default,
    }
}

/// Checks a manifest text against every rule.
pub(crate) fn check(text: &str) -> Checked {
    let mut r = Reader::default();
    let root = if text.len() > MAX_MANIFEST_BYTES {
        r.push(Rule::TomlSyntax, "", format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes"));
        None
    } else {
        match tree::parse_document(text) {
            Ok(root) => Some(root),
            Err(e) => {
                r.push(Rule::TomlSyntax, "", e.0);
                None
            }
        }
    };
    let Some(root) = root else {
        return Checked { violations: r.into_violations(), manifest: None, interface: None };
    };
    r.keys(&root, "", SECTIONS);

    let header = section(&mut r, &root, "manifest", None, |r, t, p| r.header(t, p));
    let connector = section(&mut r, &root, "connector", None, |r, t, p| r.connector(t, p));
    let zones = section(&mut r, &root, "zones", None, |r, t, p| r.zones(t, p));
    let capabilities = section(&mut r, &root, "capabilities", None, |r, t, p| Some(r.capabilities(t, p)));
    let provides = section(&mut r, &root, "provides", None, |r, t, p| Some(r.provides(t, p)));
    let event_caps = section(&mut r, &root, "event_caps", Some(None), |r, t, p| r.event_caps(t, p).map(Some));
    let timeouts = section(&mut r, &root, "timeouts", Some(Timeouts::default()), |r, t, p| r.timeouts(t, p));
    let performance_budget =
        section(&mut r, &root, "performance_budget", Some(PerformanceBudget::default()), |r, t, p| {
            r.performance_budget(t, p)
        });
    let sandbox = section(&mut r, &root, "sandbox", None, |r, t, p| r.sandbox(t, p));
    let rate_limits = section(&mut r, &root, "rate_limits", Some(RateLimits::default()), |r, t, p| r.rate_limits(t, p));
    let signatures = section(&mut r, &root, "signatures", Some(Signatures::default()), |r, t, p| r.signatures(t, p));
    let supply_chain =
        section(&mut r, &root, "supply_chain", Some(SupplyChain::default()), |r, t, p| r.supply_chain(t, p));
    let policy = section(&mut r, &root, "policy", Some(SupplyChainPolicy::default()), |r, t, p| r.policy(t, p));
    let security = section(&mut r, &root, "security", Some(Security::default()), |r, t, p| r.security(t, p));
    let sampling = section(&mut r, &root, "sampling", Some(Sampling::default()), |r, t, p| r.sampling(t, p));

    if let (Some((caps, _)), Some(provides)) = (&capabilities, &provides) {
        operation_capabilities(&mut r, caps, &provides.op_capabilities);
    }
    if policy.as_ref().is_some_and(|p| p.require_transparency_log) && !has_transparency_log_entry(&root) {
        r.push(
            Rule::BadValue,
            "signatures.transparency_log_entry",
            "required when policy.require_transparency_log is true",
        );
    }

    // The descriptor reads the connector, the capabilities and the operations only.
    let operations = provides.as_ref().and_then(|p| p.operations.as_ref());
    let interface = match (&connector, &capabilities, operations) {
        (Some(connector), Some((caps, true)), Some(ops)) => Some(Interface::of(connector, caps, ops)),
        _ => None,
    };
    if let (Some(interface), Some(declared)) = (&interface, declared_hash(&root)) {
        let recomputed = interface.hash.to_string();
        if declared != recomputed {
            r.push(
                Rule::InterfaceHashMismatch,
                "manifest.interface_hash",
                format!("declared {declared:?}, recomputed {recomputed:?}"),
            );
        }
    }

    let mut violations = r.into_violations();
    let manifest = if violations.is_empty() {
        let parts = Parts {
            header,
            connector,
            zones,
            capabilities: capabilities.and_then(|(caps, complete)| complete.then_some(caps)),
            operations: operations.cloned(),
            events: provides.and_then(|p| p.events),
            event_caps,
            timeouts,
            performance_budget,
            sandbox,
            rate_limits,
            signatures,
            supply_chain,
            policy,
            security,
            sampling,
        };
        let assembled = parts.assemble();
        if assembled.is_none() {
            // Every reader that yields nothing records why; this keeps that promise checked.
            violations.push(Violation::new(Rule::BadValue, "", "internal: a section could not be read"));
        }
        assembled
    } else {
        None
    };
    if interface.is_none() && violations.is_empty() {
        violations.push(Violation::new(Rule::BadValue, "", "internal: the interface descriptor could not be built"));
    }
    Checked { violations, manifest, interface }
}

/// Each section as read; `None` where a value was bad.
struct Parts {
    header: Option<ManifestHeader>,
    connector: Option<Connector>,
    zones: Option<Zones>,
    capabilities: Option<Capabilities>,
    operations: Option<BTreeMap<CanonicalId, Operation>>,
    events: Option<BTreeMap<CanonicalId, Event>>,
    event_caps: Option<Option<EventCaps>>,
    timeouts: Option<Timeouts>,
    performance_budget: Option<PerformanceBudget>,
    sandbox: Option<SandboxSection>,
    rate_limits: Option<RateLimits>,
    signatures: Option<Signatures>,
    supply_chain: Option<SupplyChain>,
    policy: Option<SupplyChainPolicy>,
    security: Option<Security>,
    sampling: Option<Sampling>,
}

impl Parts {
    fn assemble(self) -> Option<Manifest> {
        Some(Manifest {
            header: self.header?,
            connector: self.connector?,
            zones: self.zones?,
            capabilities: self.capabilities?,
            operations: self.operations?,
            events: self.events?,
            event_caps: self.event_caps?,
            timeouts: self.timeouts?,
            performance_budget: self.performance_budget?,
            sandbox: self.sandbox?,
            rate_limits: self.rate_limits?,
            signatures: self.signatures?,
            supply_chain: self.supply_chain?,
            policy: self.policy?,
            security: self.security?,
            sampling: self.sampling?,
        })
    }
}

/// An operation's capability must not be forbidden, and must be declared in
/// required ∪ optional; the forbidden rule takes precedence.
fn operation_capabilities(r: &mut Reader, caps: &Capabilities, ops: &[(String, CanonicalId)]) {
    let declared: BTreeSet<&str> = caps.required.iter().chain(&caps.optional).map(|c| c.as_str()).collect();
    let forbidden: BTreeSet<&str> = caps.forbidden.iter().map(|c| c.as_str()).collect();
    for (path, cap) in ops {
        if forbidden.contains(cap.as_str()) {
            r.push(Rule::OpCapabilityForbidden, path, format!("capability {cap} is forbidden"));
        } else if !declared.contains(cap.as_str()) {
            r.push(
                Rule::OpCapabilityUndeclared,
                path,
                format!("capability {cap} is not in capabilities.required or capabilities.optional"),
            );
        }
    }
}

fn has_transparency_log_entry(root: &Table) -> bool {
    matches!(root.get("signatures"), Some(Node::Table(t)) if t.contains_key("transparency_log_entry"))
}

/// The declared `manifest.interface_hash`, when it is a string.
fn declared_hash(root: &Table) -> Option<&str> {
    let Some(Node::Table(m)) = root.get("manifest") else { return None };
    match m.get("interface_hash") {
        Some(Node::Str(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::{fixed, violations, BASE};
    use super::super::{compute_interface, fix_interface_hash, Manifest};

    /// `BASE` with one edit, its hash fixed when the descriptor still builds.
    fn broken(old: &str, new: &str) -> Vec<(&'static str, String)> {
        assert!(BASE.contains(old), "fixture lacks {old:?}");
        let text = BASE.replacen(old, new, 1);
        let text = fix_interface_hash(&text).unwrap_or(text);
        violations(&text)
    }

    fn one(code: &'static str, path: &str) -> Vec<(&'static str, String)> {
        vec![(code, path.to_owned())]
    }

    const READ: &str = "provides.operations.\"sample.read\"";
    const WRITE: &str = "provides.operations.\"sample.write\"";

    #[test]
    fn syntax_errors_stop_everything() {
        assert_eq!(violations("a = 1\na = 2\n"), one("toml_syntax", ""));
        assert_eq!(violations("[x\n"), one("toml_syntax", ""));
        assert_eq!(violations(&"[".repeat(200)), one("toml_syntax", ""));
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let text = format!("{}\n# {}", fixed(BASE), "x".repeat(super::MAX_MANIFEST_BYTES));
        assert_eq!(violations(&text), one("toml_syntax", ""));
    }

    #[test]
    fn unknown_keys_everywhere_but_ai_hints_and_rate_limit_tables() {
        assert_eq!(broken("status = ", "homepage = \"x\"\nstatus = "), one("unknown_key", "connector.homepage"));
        assert_eq!(broken("[event_caps]", "[extra]\nx = 1\n\n[event_caps]"), one("unknown_key", "extra"));
        assert_eq!(
            broken("require_sni = true", "require_sni = true\nproxy = \"x\""),
            one("unknown_key", &format!("{READ}.network_constraints.proxy"))
        );
        assert_eq!(
            broken("[[rate_limits.pools]]", "[[rate_limits.pools]]\nweight = 1"),
            one("unknown_key", "rate_limits.pools[0].weight")
        );
        assert_eq!(
            broken("kid = \"a\",", "kid = \"a\", alg = \"x\","),
            one("unknown_key", "signatures.publisher_signatures[0].alg")
        );
        // Ignored keys must still hold readable values.
        assert_eq!(
            broken("future_key = {", "huge = 1e999\nfuture_key = {"),
            one("bad_value", &format!("{READ}.ai_hints.huge"))
        );
        assert_eq!(
            broken("note = \"ignored\"", "note = 18446744073709551616"),
            one("bad_value", &format!("{WRITE}.rate_limit.note"))
        );
    }

    #[test]
    fn missing_keys() {
        assert_eq!(
            broken("require_sni = true\n", ""),
            one("missing_key", &format!("{READ}.network_constraints.require_sni"))
        );
        assert_eq!(broken("when_to_use = \"\"\n", ""), one("missing_key", &format!("{READ}.ai_hints.when_to_use")));
        assert_eq!(broken("replay = false\n", ""), one("missing_key", "event_caps.replay"));
        assert_eq!(broken("sig = \"base64:YmF6\" }", "}"), one("missing_key", "signatures.registry_signature.sig"));
        assert_eq!(broken("requests = 100\n", ""), one("missing_key", "rate_limits.pools[0].requests"));
        assert_eq!(
            broken("[sandbox]", "[sandboxes]"),
            vec![("missing_key", "sandbox".to_owned()), ("unknown_key", "sandboxes".to_owned())]
        );
        let no_ops = "[manifest]\n[connector]\n[zones]\n[capabilities]\n[provides.operations]\n[sandbox]\n";
        let v = violations(no_ops);
        assert!(v.contains(&("missing_key", "provides.operations".to_owned())), "{v:?}");
        assert!(v.contains(&("missing_key", "manifest.interface_hash".to_owned())), "{v:?}");
        assert!(v.contains(&("system_exec_not_forbidden", "capabilities.forbidden".to_owned())), "{v:?}");
        assert!(!v.iter().any(|(c, _)| *c == "interface_hash_mismatch"), "{v:?}");
    }

    #[test]
    fn bad_values_of_every_kind() {
        let nc = format!("{READ}.network_constraints");
        for (old, new, path) in [
            ("port_allow = [8443, 443, 443]", "port_allow = [8443, 65536]", format!("{nc}.port_allow[1]")),
            ("port_allow = [8443, 443, 443]", "port_allow = []", format!("{nc}.port_allow")),
            ("port_allow = [8443, 443, 443]", "port_allow = [\"443\"]", format!("{nc}.port_allow[0]")),
            ("dns_max_ips = 0\nmax", "dns_max_ips = 65536\nmax", format!("{nc}.dns_max_ips")),
            ("max_redirects = 0", "max_redirects = 256", format!("{nc}.max_redirects")),
            (
                "total_timeout_ms = 5000",
                "total_timeout_ms = 5000\nmax_response_bytes = 0",
                format!("{nc}.max_response_bytes"),
            ),
            ("\"api.sample.com\", \"*.sample.com\"", "\"API.sample.com\"", format!("{nc}.host_allow[0]")),
            ("\"api.sample.com\", \"*.sample.com\"", "\"10.0.0.1\"", format!("{nc}.host_allow[0]")),
            ("\"api.sample.com\", \"*.sample.com\"", "\"*.com\"", format!("{nc}.host_allow[0]")),
            ("\"api.sample.com\", \"*.sample.com\"", "\"localhost\"", format!("{nc}.host_allow[0]")),
            (
                "host_allow = [\"api.sample.com\", \"*.sample.com\", \"api.sample.com\"]",
                "host_allow = []",
                format!("{nc}.host_allow"),
            ),
            ("\"10.0.0.1/8\"", "\"10.0.0.1\"", format!("{nc}.cidr_deny[0]")),
            ("\"10.0.0.2\"", "\"10.0.0.02\"", format!("{nc}.ip_allow[1]")),
            ("\"base64:YmFy\"", "\"base64:Zm9\"", format!("{nc}.spki_pins[0]")),
            ("\"base64:YmFy\"", "\"base64:YmF=\"", String::new()),
            ("rate_limit = \"60/min\"", "rate_limit = \"60/week\"", format!("{READ}.rate_limit")),
            ("rate_limit = \"60/min\"", "rate_limit = \"0/min\"", format!("{READ}.rate_limit")),
            ("rate_limit = \"60/min\"", "rate_limit = 60", format!("{READ}.rate_limit")),
            ("per_ms = 1000, ", "", format!("{WRITE}.rate_limit.per_ms")),
            ("pool_name = \"writes.v1\"", "pool_name = \"a b\"", format!("{WRITE}.rate_limit.pool_name")),
            ("scope = \"per_zone\"", "scope = \"per_planet\"", format!("{WRITE}.rate_limit.scope")),
            ("risk_level = \"low\"", "risk_level = \"tiny\"", format!("{READ}.risk_level")),
            ("description = \"Read things\"", "description = \"  \"", format!("{READ}.description")),
            ("memory_mb = 0", "memory_mb = -1", "sandbox.memory_mb".to_owned()),
            ("memory_mb = 0", "memory_mb = \"64\"", "sandbox.memory_mb".to_owned()),
            ("cpu_percent = 150", "cpu_percent = 0", "sandbox.cpu_percent".to_owned()),
            ("cpu_percent = 150", "cpu_percent = 256", "sandbox.cpu_percent".to_owned()),
            ("profile = \"strict\"", "profile = \"lax\"", "sandbox.profile".to_owned()),
            ("deny_exec = false", "deny_exec = 0", "sandbox.deny_exec".to_owned()),
            ("max_datagram_bytes = 1200", "max_datagram_bytes = 0", "manifest.max_datagram_bytes".to_owned()),
            ("schema_version = \"2.1\"", "schema_version = \"3.0\"", "manifest.schema_version".to_owned()),
            ("schema_version = \"2.1\"", "schema_version = \"2.x\"", "manifest.schema_version".to_owned()),
            ("min_protocol = \"fcp2-sym/2.0\"", "min_protocol = \"/2.0\"", "manifest.min_protocol".to_owned()),
            ("min_protocol = \"fcp2-sym/2.0\"", "min_protocol = \"fcp2-sym/2\"", "manifest.min_protocol".to_owned()),
            ("format = \"fcp-connector-manifest\"", "format = \"fcp-manifest\"", "manifest.format".to_owned()),
            ("[\"fcps.aead.xchacha20poly1305\", ", "[\"Fcps\", ", "manifest.protocol_features[0]".to_owned()),
            ("name = \"Sample\"", "name = \" \"", "connector.name".to_owned()),
            ("id = \"fcp.sample\"", "id = \"FCP.sample\"", "connector.id".to_owned()),
            ("format = \"native\"", "format = \"elf\"", "connector.format".to_owned()),
            (
                "archetypes = [\"operational\", \"bidirectional\", \"operational\"]",
                "archetypes = []",
                "connector.archetypes".to_owned(),
            ),
            ("home = \"z:work\"", "home = \"z:Work\"", "zones.home".to_owned()),
            ("\"z:project:*\"", "\"z:*\"", "zones.allowed_sources[1]".to_owned()),
            ("forbidden = [\"z:public\"]", "forbidden = [\"z:project:*\"]", "zones.forbidden[0]".to_owned()),
            ("migration_hint = \"init\"", "crdt_type = \"or_set\"", "connector.state.crdt_type".to_owned()),
            ("model = \"singleton_writer\"", "model = \"crdt\"", "connector.state.crdt_type".to_owned()),
            ("min_buffer_events = 10", "min_buffer_events = 0", "event_caps.min_buffer_events".to_owned()),
            ("topic = \"changes\"", "topic = \"\"", "provides.events.\"sample.changed\".topic".to_owned()),
            ("requests = 100", "requests = 0", "rate_limits.pools[0].requests".to_owned()),
            ("window_ms = 60000", "window_ms = 86400001", "rate_limits.pools[0].window_ms".to_owned()),
            ("unit = \"requests\"", "unit = \"calls\"", "rate_limits.pools[0].unit".to_owned()),
            (
                "\"no.such.operation\" = [\"reads\"]",
                "\"no.such.operation\" = [\"writes\"]",
                "rate_limits.operation_pools.\"no.such.operation\"[0]".to_owned(),
            ),
            (
                "\"no.such.operation\" = [\"reads\"]",
                "\"no.such.operation\" = [\"reads\", \"reads\"]",
                "rate_limits.operation_pools.\"no.such.operation\"[1]".to_owned(),
            ),
            (
                "\"no.such.operation\" = [\"reads\"]",
                "\"no.such.operation\" = []",
                "rate_limits.operation_pools.\"no.such.operation\"".to_owned(),
            ),
            (
                "publisher_threshold = \"+1-of-02\"",
                "publisher_threshold = \"3-of-2\"",
                "signatures.publisher_threshold".to_owned(),
            ),
            (
                "publisher_threshold = \"+1-of-02\"",
                "publisher_threshold = \"3-of-3\"",
                "signatures.publisher_threshold".to_owned(),
            ),
            (
                "publisher_threshold = \"+1-of-02\"",
                "publisher_threshold = \"1-of-256\"",
                "signatures.publisher_threshold".to_owned(),
            ),
            ("publisher_threshold = \"+1-of-02\"\n", "", "signatures.publisher_threshold".to_owned()),
            ("kid = \"b\"", "kid = \"a\"", "signatures.publisher_signatures[1].kid".to_owned()),
            (
                "transparency_log_entry = \"ABAB",
                "transparency_log_entry = \"AB",
                "signatures.transparency_log_entry".to_owned(),
            ),
            (
                "require_attestation_types = [\"code-review\"]",
                "require_attestation_types = [\"fuzzing\"]",
                "policy.require_attestation_types[0]".to_owned(),
            ),
            ("min_slsa_level = 4", "min_slsa_level = 5", "policy.min_slsa_level".to_owned()),
            ("description_scan = \"block\"", "description_scan = \"loud\"", "security.description_scan".to_owned()),
            ("max_tool_rounds = 0", "timeout_secs = 0", "sampling.timeout_secs".to_owned()),
            ("cold_start_max_ms = 250", "cold_start_max_ms = -1", "performance_budget.cold_start_max_ms".to_owned()),
            ("cold_start_max_ms = 250", "cold_start_max_ms = nan", "performance_budget.cold_start_max_ms".to_owned()),
            ("input_schema = \"free text\"", "input_schema = 99999999999999999999", format!("{WRITE}.input_schema")),
        ] {
            let got = broken(old, new);
            if path.is_empty() {
                // Only the code is pinned: the path is a detail of the rule.
                assert_eq!(got.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["bad_value"], "{new}: {got:?}");
            } else {
                assert_eq!(got, one("bad_value", &path), "{old} -> {new}");
            }
        }
    }

    #[test]
    fn legacy_singleton_flag_conflicts_with_another_model() {
        let text = BASE
            .replacen("status = \"experimental\"", "status = \"experimental\"\nsingleton_writer = true", 1)
            .replacen("model = \"singleton_writer\"", "model = \"stateless\"", 1);
        // The state model cannot be decided, so no descriptor and no mismatch either.
        assert_eq!(violations(&text), one("bad_value", "connector.singleton_writer"));
        assert_eq!(fix_interface_hash(&text).map_err(|e| e.codes()), Err(vec!["bad_value"]));
    }

    #[test]
    fn transparency_log_and_attestations() {
        assert_eq!(
            broken(
                "transparency_log_entry = \"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\"\n",
                ""
            ),
            one("bad_value", "signatures.transparency_log_entry")
        );
        let dup = "{ type = \"code-review\", object_id = \"2222222222222222222222222222222222222222222222222222222222222222\" }]";
        assert_eq!(
            broken(
                "2222222222222222222222222222222222222222222222222222222222222222\" }]",
                &format!("2222222222222222222222222222222222222222222222222222222222222222\" }}, {dup}")
            ),
            one("bad_value", "supply_chain.attestations[1].object_id")
        );
    }

    #[test]
    fn versions_and_hash_syntax() {
        assert_eq!(
            broken("version = \"1.2.3-rc.1+build.5\"", "version = \"1.2\""),
            one("invalid_semver", "connector.version")
        );
        assert_eq!(
            broken("version = \"1.2.3-rc.1+build.5\"", "version = \"1.2.3-01\""),
            one("invalid_semver", "connector.version")
        );
        assert_eq!(
            broken("min_mesh_version = \"2.0.0\"", "min_mesh_version = \"v2.0.0\""),
            one("invalid_semver", "manifest.min_mesh_version")
        );
        assert_eq!(broken("version = \"1.2.3-rc.1+build.5\"", "version = 1"), one("bad_value", "connector.version"));
        // A malformed declared hash is a bad value and differs from the recomputed one.
        let text = BASE.replace("fcp.interface.v2:0000", "fcp.interface.v2:ABCD");
        assert_eq!(
            violations(&text),
            vec![
                ("bad_value", "manifest.interface_hash".to_owned()),
                ("interface_hash_mismatch", "manifest.interface_hash".to_owned())
            ]
        );
        // A hash that is not a string at all is only a bad value.
        let text = fixed(BASE);
        let line = text.lines().find(|l| l.starts_with("interface_hash")).expect("hash line");
        assert_eq!(violations(&text.replace(line, "interface_hash = 7")), one("bad_value", "manifest.interface_hash"));
    }

    #[test]
    fn capability_rules() {
        assert_eq!(
            broken("optional = [\"sample.write\"]", "optional = [\"sample.write\", \"network.dns\"]"),
            one("duplicate_capability", "capabilities.optional[1]")
        );
        assert_eq!(
            broken(
                "forbidden = [\"system.exec\", \"network.listen\"]",
                "forbidden = [\"network.listen\", \"network.listen\"]"
            ),
            vec![
                ("duplicate_capability", "capabilities.forbidden[1]".to_owned()),
                ("system_exec_not_forbidden", "capabilities.forbidden".to_owned())
            ]
        );
        assert_eq!(
            broken("\"network.egress\", \"sample.read\"]", "\"network.egress:api.sample.net\", \"sample.read\"]"),
            vec![
                ("capability_lint", "capabilities.required[1]".to_owned()),
                ("network_capability_host", "capabilities.required[1]".to_owned())
            ]
        );
        assert_eq!(
            broken("optional = [\"sample.write\"]", "optional = [\"sample.write\", \"sample.10.0.0.1\"]"),
            one("capability_lint", "capabilities.optional[1]")
        );
        assert_eq!(
            broken("capability = \"sample.read\"", "capability = \"sample.other\""),
            one("op_capability_undeclared", &format!("{READ}.capability"))
        );
        assert_eq!(
            broken("capability = \"sample.read\"", "capability = \"network.listen\""),
            one("op_capability_forbidden", &format!("{READ}.capability"))
        );
        assert_eq!(
            broken("capability = \"sample.read\"", "capability = \"http:sample\""),
            vec![
                ("capability_lint", format!("{READ}.capability")),
                ("op_capability_undeclared", format!("{READ}.capability"))
            ]
        );
    }

    #[test]
    fn zones_timeouts_and_paths() {
        assert_eq!(
            broken("forbidden = [\"z:public\"]", "forbidden = [\"z:public\", \"z:work\"]"),
            one("home_zone_forbidden", "zones.forbidden")
        );
        assert_eq!(
            broken("wall_clock_timeout_ms = 30000", "wall_clock_timeout_ms = 0"),
            one("timeout_zero", "sandbox.wall_clock_timeout_ms")
        );
        assert_eq!(
            broken("request_timeout_ms = 1000", "request_timeout_ms = 0"),
            one("timeout_zero", "timeouts.request_timeout_ms")
        );
        // A zero timeout is not also reported as connect > total.
        assert_eq!(
            broken("total_timeout_ms = 5000", "total_timeout_ms = 0"),
            one("timeout_zero", &format!("{READ}.network_constraints.total_timeout_ms"))
        );
        assert_eq!(
            broken("connect_timeout_ms = 5000", "connect_timeout_ms = 5001"),
            one("connect_gt_total", &format!("{READ}.network_constraints.connect_timeout_ms"))
        );
        assert_eq!(
            broken("\"$CONNECTOR_STATE/cache//x\"", "\"data/cache\""),
            one("sandbox_path_invalid", "sandbox.fs_writable_paths[1]")
        );
        assert_eq!(
            broken("\"/usr/../etc\"", "\"$CONNECTOR_STATE/../etc\""),
            one("sandbox_path_invalid", "sandbox.fs_readonly_paths[1]")
        );
        assert_eq!(broken("\"/usr/../etc\"", "5"), one("bad_value", "sandbox.fs_readonly_paths[1]"));
        assert_eq!(broken("max_tool_rounds = 0", "timeout_secs = 0"), one("bad_value", "sampling.timeout_secs"));
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let text = BASE
            .replace("homepage", "")
            .replacen("status = \"experimental\"", "status = \"experimental\"\nhomepage = \"x\"", 1)
            .replacen("forbidden = [\"z:public\"]", "forbidden = [\"z:work\"]", 1)
            .replacen("wall_clock_timeout_ms = 30000", "wall_clock_timeout_ms = 0", 1)
            .replacen("\"/usr/../etc\"", "\"etc\"", 1)
            .replacen("cpu_percent = 150", "cpu_percent = 0", 1);
        let text = fixed(&text);
        let codes: Vec<&str> = violations(&text).into_iter().map(|(c, _)| c).collect();
        assert_eq!(codes, ["bad_value", "home_zone_forbidden", "sandbox_path_invalid", "timeout_zero", "unknown_key"]);
    }

    #[test]
    fn not_stricter_than_the_reference() {
        for (old, new) in [
            ("forbidden = [\"z:public\"]", "forbidden = [\"z:public\", \"z:public\"]"),
            ("allowed_targets = [\"z:work\", \"z:work\"]", "allowed_targets = [\"z:public\"]"),
            ("id = \"fcp.sample\"", "id = \"sample\""),
            ("\"api.sample.com\", \"*.sample.com\"", "\"a_b.example.com\", \"a..b.com\", \"host:443\", \"127.1\""),
            ("safety_tier = \"safe\"", "safety_tier = \"dangerous\""),
            ("schema_version = \"2.1\"", "schema_version = \"+2.0009\""),
            ("min_protocol = \"fcp2-sym/2.0\"", "min_protocol = \"other/9.65535\""),
            ("max_datagram_bytes = 1200", "max_datagram_bytes = 65535"),
            ("total_timeout_ms = 5000", "total_timeout_ms = 5000\nmax_response_bytes = 18446744073709551615"),
            ("status = \"experimental\"", "status = \"adversarial\""),
            ("input_schema = \"free text\"", "input_schema = 18446744073709551615"),
            (
                "output_schema = { type = \"object\" }",
                "output_schema = {\n  type = \"object\",\n  title = \"\\e\\x41\",\n}",
            ),
            (
                "model = \"singleton_writer\"",
                "model = \"crdt\"\ncrdt_type = \"pn_counter\"\nsnapshot_every_bytes = 18446744073709551615",
            ),
        ] {
            assert_eq!(broken(old, new), vec![], "{old} -> {new}");
        }
        // The legacy flag alone means singleton_writer; false is the same as absent.
        let legacy = fixed(&BASE.replace(
            "[connector.state]\nmodel = \"singleton_writer\"\nstate_schema_version = \"1\"\nmigration_hint = \"init\"\n",
            "",
        ));
        let flagged = fixed(&legacy.replacen(
            "status = \"experimental\"",
            "status = \"experimental\"\nsingleton_writer = true",
            1,
        ));
        let off = fixed(&legacy.replacen(
            "status = \"experimental\"",
            "status = \"experimental\"\nsingleton_writer = false",
            1,
        ));
        let hash = |t: &str| Manifest::parse(t).expect("valid").interface_hash();
        assert_ne!(hash(&legacy), hash(&flagged));
        assert_eq!(hash(&legacy), hash(&off));
        let explicit = fixed(&flagged.replacen(
            "singleton_writer = true",
            "singleton_writer = true\n[connector.state]\nmodel = \"singleton_writer\"\nstate_schema_version = \"1\"\n[zones_placeholder]",
            1,
        ));
        assert!(violations(&explicit).iter().all(|(c, _)| *c == "unknown_key"));
    }

    /// A line of TOML-ish text: headers, keys, values of every type, and junk.
    fn tomlish_line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("port_allow".to_owned()),
            Just("host_allow".to_owned()),
            Just("capability".to_owned()),
            Just("rate_limit".to_owned()),
            Just("interface_hash".to_owned()),
            Just("fs_writable_paths".to_owned()),
            Just("model".to_owned()),
            "[a-z_.\"]{1,12}",
        ];
        let value = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            Just("nan".to_owned()),
            Just("-inf".to_owned()),
            Just("1979-05-27T07:32:00Z".to_owned()),
            "\"[ -~]{0,12}\"",
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("[1, \"x\", { a = 1 }]".to_owned()),
            "[ -~]{0,10}",
        ];
        prop_oneof![
            (key.clone(), value).prop_map(|(k, v)| format!("{k} = {v}")),
            key.clone().prop_map(|k| format!("[{k}]")),
            key.prop_map(|k| format!("[[{k}]]")),
            "[ -~]{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Err(e) = Manifest::parse(&text) {
                prop_assert!(!e.violations().is_empty());
            }
            let _ = fix_interface_hash(&text);
        }

        #[test]
        fn tomlish_edits_of_a_valid_manifest_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), tomlish_line()), 1..6)
        ) {
            let mut lines: Vec<String> = fixed(BASE).lines().map(str::to_owned).collect();
            for (at, line) in edits {
                let i = at.index(lines.len());
                lines[i] = line;
            }
            let text = lines.join("\n");
            match Manifest::parse(&text) {
                Ok(m) => prop_assert_eq!(m.interface_hash(), m.header.interface_hash),
                Err(e) => prop_assert!(!e.violations().is_empty()),
            }
            if let Ok(repaired) = fix_interface_hash(&text) {
                prop_assert!(!violations(&repaired).iter().any(|(c, _)| *c == "interface_hash_mismatch"));
            }
        }

        #[test]
        fn valid_manifests_hash_stably(
            description in "[a-zA-Z0-9 ]{0,20}[a-zA-Z0-9][\\PC]{0,10}",
            ports in proptest::collection::vec(any::<u16>(), 1..5),
            hosts in proptest::collection::vec("[a-z0-9-]{1,10}\\.[a-z]{2,6}", 1..4),
            archetypes in proptest::sample::subsequence(vec!["bidirectional", "streaming", "operational", "storage", "knowledge"], 1..5),
        ) {
            let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
            let list = |v: Vec<String>| format!("[{}]", v.join(", "));
            let text = BASE
                .replacen("description = \"Read things\"", &format!("description = {}", quote(&description)), 1)
                .replacen("port_allow = [8443, 443, 443]", &format!("port_allow = {}", list(ports.iter().map(u16::to_string).collect())), 1)
                .replacen(
                    "host_allow = [\"api.sample.com\", \"*.sample.com\", \"api.sample.com\"]",
                    &format!("host_allow = {}", list(hosts.iter().map(|h| quote(h)).collect())),
                    1,
                )
                .replacen(
                    "archetypes = [\"operational\", \"bidirectional\", \"operational\"]",
                    &format!("archetypes = {}", list(archetypes.iter().map(|a| quote(a)).collect())),
                    1,
                );
            let text = fixed(&text);
            let first = Manifest::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = Manifest::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(first.interface_hash(), first.header.interface_hash);
            prop_assert_eq!(first.interface_hash(), again.interface_hash());
            prop_assert_eq!(compute_interface(&text).map(|i| i.hash), Ok(first.interface_hash()));
            prop_assert_eq!(fix_interface_hash(&text), Ok(text.clone()));
            // Reordering list entries that the descriptor sorts keeps the hash.
            let mut reversed = ports.clone();
            reversed.reverse();
            let reordered = text.replacen(
                &format!("port_allow = {}", list(ports.iter().map(u16::to_string).collect())),
                &format!("port_allow = {}", list(reversed.iter().map(u16::to_string).collect())),
                1,
            );
            prop_assert_eq!(Manifest::parse(&reordered).map(|m| m.interface_hash()), Ok(first.interface_hash()));
        }
    }
}
