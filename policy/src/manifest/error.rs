//! Manifest violations and the error that carries them (`vectors/README.md` §5.17).

use std::fmt;

/// The rule a manifest breaks. Each has a stable code (`vectors/README.md` §5.17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Not parseable as TOML 1.1 (duplicate keys and redefined tables included).
    TomlSyntax,
    /// A key the table does not define.
    UnknownKey,
    /// A required key or section is missing, or there are no operations.
    MissingKey,
    /// A value outside its type, range, set or format.
    BadValue,
    /// `connector.version` or `manifest.min_mesh_version` is not strict SemVer.
    InvalidSemver,
    /// A capability id appears twice within or across the three lists.
    DuplicateCapability,
    /// `capabilities.forbidden` lacks `system.exec`.
    SystemExecNotForbidden,
    /// `zones.home` is in `zones.forbidden`.
    HomeZoneForbidden,
    /// A `network.*` capability id contains `:`.
    NetworkCapabilityHost,
    /// A capability id embeds a URL scheme, a port, a hostname TLD or an IPv4 address.
    CapabilityLint,
    /// An operation's capability is not in required ∪ optional.
    OpCapabilityUndeclared,
    /// An operation's capability is forbidden.
    OpCapabilityForbidden,
    /// A timeout is 0.
    TimeoutZero,
    /// `network_constraints.connect_timeout_ms` exceeds `total_timeout_ms`.
    ConnectGtTotal,
    /// A sandbox path is neither absolute nor `$CONNECTOR_STATE[/normal/components]`.
    SandboxPathInvalid,
    /// The declared interface_hash differs from the recomputed one.
    InterfaceHashMismatch,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::TomlSyntax,
        Rule::UnknownKey,
        Rule::MissingKey,
        Rule::BadValue,
        Rule::InvalidSemver,
        Rule::DuplicateCapability,
        Rule::SystemExecNotForbidden,
        Rule::HomeZoneForbidden,
        Rule::NetworkCapabilityHost,
        Rule::CapabilityLint,
        Rule::OpCapabilityUndeclared,
        Rule::OpCapabilityForbidden,
        Rule::TimeoutZero,
        Rule::ConnectGtTotal,
        Rule::SandboxPathInvalid,
        Rule::InterfaceHashMismatch,
    ];

    /// The stable code of `vectors/README.md` §5.17.
    pub fn code(self) -> &'static str {
        match self {
            Rule::TomlSyntax => "toml_syntax",
            Rule::UnknownKey => "unknown_key",
            Rule::MissingKey => "missing_key",
            Rule::BadValue => "bad_value",
            Rule::InvalidSemver => "invalid_semver",
            Rule::DuplicateCapability => "duplicate_capability",
            Rule::SystemExecNotForbidden => "system_exec_not_forbidden",
            Rule::HomeZoneForbidden => "home_zone_forbidden",
            Rule::NetworkCapabilityHost => "network_capability_host",
            Rule::CapabilityLint => "capability_lint",
            Rule::OpCapabilityUndeclared => "op_capability_undeclared",
            Rule::OpCapabilityForbidden => "op_capability_forbidden",
            Rule::TimeoutZero => "timeout_zero",
            Rule::ConnectGtTotal => "connect_gt_total",
            Rule::SandboxPathInvalid => "sandbox_path_invalid",
            Rule::InterfaceHashMismatch => "interface_hash_mismatch",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One broken rule, where it was found, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    rule: Rule,
    path: String,
    message: String,
}

impl Violation {
    pub(crate) fn new(rule: Rule, path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { rule, path: path.into(), message: message.into() }
    }

    /// The rule broken.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// The rule's stable code, e.g. `bad_value`.
    pub fn code(&self) -> &'static str {
        self.rule.code()
    }

    /// The TOML key path, e.g. `provides.operations.foo.network_constraints.port_allow[0]`;
    /// empty for the whole document.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A lowercase human explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.rule.code(), self.message)
        } else {
            write!(f, "{} at {}: {}", self.rule.code(), self.path, self.message)
        }
    }
}

/// Why a manifest text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text breaks one or more rules; every violation found is listed, in document order
    /// of the checks.
    #[error("invalid manifest ({} violation(s)): {}", violations.len(), Summary(violations))]
    Invalid {
        /// Every violation found (never empty).
        violations: Vec<Violation>,
    },
    /// An interface hash string is not `blake3-256:fcp.interface.v2:` followed by 64
    /// lowercase hex digits.
    #[error("interface_hash must be \"blake3-256:fcp.interface.v2:\" followed by 64 lowercase hex digits")]
    InterfaceHashSyntax,
    /// `fix_interface_hash`: there is no `manifest.interface_hash` string to rewrite.
    #[error("no manifest.interface_hash string to rewrite")]
    NoInterfaceHash,
    /// `fill_defaults`: the text with its defaults written out would not validate exactly
    /// like the original (a safeguard; the edit is refused).
    #[error("writing the defaults out would change what the manifest means")]
    DefaultsChangeMeaning,
}

impl ManifestError {
    /// The violations carried (empty for errors that are not rule violations).
    pub fn violations(&self) -> &[Violation] {
        match self {
            ManifestError::Invalid { violations } => violations,
            ManifestError::InterfaceHashSyntax
            | ManifestError::NoInterfaceHash
            | ManifestError::DefaultsChangeMeaning => &[],
        }
    }

    /// The sorted, deduplicated set of rule codes broken.
    pub fn codes(&self) -> Vec<&'static str> {
        let mut codes: Vec<&'static str> = self.violations().iter().map(Violation::code).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

struct Summary<'a>(&'a [Violation]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_readme_table() {
        let codes: Vec<&str> = Rule::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), 16);
        assert!(codes.contains(&"system_exec_not_forbidden"));
        assert!(codes.contains(&"interface_hash_mismatch"));
        let mut sorted = codes.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len());
    }

    #[test]
    fn error_lists_every_violation_and_sorted_codes() {
        let e = ManifestError::Invalid {
            violations: vec![
                Violation::new(Rule::TimeoutZero, "sandbox.wall_clock_timeout_ms", "must be > 0"),
                Violation::new(Rule::BadValue, "sandbox.cpu_percent", "must be > 0"),
                Violation::new(Rule::TimeoutZero, "timeouts.request_timeout_ms", "must be > 0"),
            ],
        };
        assert_eq!(e.codes(), vec!["bad_value", "timeout_zero"]);
        let text = e.to_string();
        assert!(text.starts_with("invalid manifest (3 violation(s)): timeout_zero at sandbox.wall_clock_timeout_ms"));
        assert!(text.contains("bad_value at sandbox.cpu_percent: must be > 0"));
    }
}
