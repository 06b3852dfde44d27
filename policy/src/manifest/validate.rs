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
