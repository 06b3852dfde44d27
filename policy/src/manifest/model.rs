//! The typed connector manifest (digest §11.1, §11.3).
//!
//! Every value here has passed the rules of digest §11.1: the only way to get a
//! [`Manifest`] is [`Manifest::parse`](crate::manifest::Manifest::parse). Defaults
//! are filled in, so consumers (the supervisor, the jail and egress compilers)
//! never re-apply them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use fcp_proto::id::{CanonicalId, ObjectId, ZoneId};

use super::hash::InterfaceHash;

/// Declares a closed set of snake_case names as a Rust enum with `as_str` and `from_name`.
macro_rules! name_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name as written in a manifest.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Looks a name up; `None` when it is not in the set.
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum! {
    /// `connector.archetypes` entries.
    Archetype {
        /// `bidirectional`
        Bidirectional = "bidirectional",
        /// `streaming`
        Streaming = "streaming",
        /// `operational`
        Operational = "operational",
        /// `storage`
        Storage = "storage",
        /// `knowledge`
        Knowledge = "knowledge",
    }
}

name_enum! {
    /// `connector.format`: how the connector binary runs.
    ConnectorFormat {
        /// A native executable.
        Native = "native",
        /// A WASI module.
        Wasi = "wasi",
    }
}

name_enum! {
    /// `connector.status` (default `ready`).
    ConnectorStatus {
        /// Fully functional.
        Ready = "ready",
        /// Proven in production.
        Proven = "proven",
        /// Declared operations are not implemented.
        Stub = "stub",
        /// In development.
        Experimental = "experimental",
        /// Superseded.
        Deprecated = "deprecated",
        /// Contract only; hidden from default discovery.
        Incubating = "incubating",
        /// High-risk surface that needs explicit operator approval.
        Quarantined = "quarantined",
        /// Built to attack the host (test connectors).
        Adversarial = "adversarial",
    }
}

name_enum! {
    /// `connector.state.model`.
    StateModel {
        /// No persistent state.
        Stateless = "stateless",
        /// One writer, fenced by a lease.
        SingletonWriter = "singleton_writer",
        /// Mergeable CRDT state.
        Crdt = "crdt",
    }
}

name_enum! {
    /// `connector.state.crdt_type`.
    CrdtType {
        /// Last-writer-wins map.
        LwwMap = "lww_map",
        /// Observed-remove set.
        OrSet = "or_set",
        /// Grow-only counter.
        GCounter = "g_counter",
        /// Positive-negative counter.
        PnCounter = "pn_counter",
    }
}

name_enum! {
    /// An operation's `risk_level`.
    RiskLevel {
        /// `low`
        Low = "low",
        /// `medium`
        Medium = "medium",
        /// `high`
        High = "high",
        /// `critical`
        Critical = "critical",
    }
}

name_enum! {
    /// An operation's `safety_tier`.
    SafetyTier {
        /// `safe`
        Safe = "safe",
        /// `risky`
        Risky = "risky",
        /// `dangerous`
        Dangerous = "dangerous",
        /// `critical`
        Critical = "critical",
        /// `forbidden`
        Forbidden = "forbidden",
    }
}

name_enum! {
    /// An operation's `idempotency`.
    Idempotency {
        /// Retrying may repeat the effect.
        None = "none",
        /// Retries are deduplicated when possible.
        BestEffort = "best_effort",
        /// Retries never repeat the effect.
        Strict = "strict",
    }
}

name_enum! {
    /// An operation's `revocation_freshness` (default `safe`).
    RevocationFreshness {
        /// `critical`
        Critical = "critical",
        /// `risky`
        Risky = "risky",
        /// `safe`
        Safe = "safe",
    }
}

name_enum! {
    /// The `scope` of an operation's table-form `rate_limit`.
    RateLimitScope {
        /// One bucket per connector.
        PerConnector = "per_connector",
        /// One bucket per zone.
        PerZone = "per_zone",
        /// One bucket per principal.
        PerPrincipal = "per_principal",
    }
}

name_enum! {
    /// `sandbox.profile`.
    SandboxProfile {
        /// No raw sockets; egress only through the proxy.
        Strict = "strict",
        /// `strict` with further restrictions.
        StrictPlus = "strict_plus",
        /// No raw sockets; egress only through the proxy.
        Moderate = "moderate",
        /// The loosest profile.
        Permissive = "permissive",
    }
}

name_enum! {
    /// A rate-limit pool's `unit`.
    PoolUnit {
        /// API requests.
        Requests = "requests",
        /// Tokens (LLM APIs).
        Tokens = "tokens",
        /// Bytes transferred.
        Bytes = "bytes",
        /// A connector-specific unit.
        Custom = "custom",
    }
}

name_enum! {
    /// A rate-limit pool's `enforcement`.
    PoolEnforcement {
        /// Block what would exceed the limit.
        Hard = "hard",
        /// Allow, but record a warning.
        Soft = "soft",
        /// An external limit we only report.
        Advisory = "advisory",
    }
}

name_enum! {
    /// A rate-limit pool's `scope`.
    PoolScope {
        /// Per connector instance.
        Instance = "instance",
        /// Per credential.
        Credential = "credential",
        /// Across all instances.
        Global = "global",
    }
}

name_enum! {
    /// Supply-chain attestation types.
    AttestationType {
        /// `in-toto`
        InToto = "in-toto",
        /// `reproducible-build`
        ReproducibleBuild = "reproducible-build",
        /// `code-review`
        CodeReview = "code-review",
    }
}

name_enum! {
    /// `security.description_scan` (default `warn`).
    DescriptionScan {
        /// Scan and warn.
        Warn = "warn",
        /// Scan and refuse.
        Block = "block",
        /// Do not scan.
        Off = "off",
    }
}

/// An operation's `requires_approval`. `approval_required` is read as [`ApprovalMode::ElevationToken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApprovalMode {
    /// No approval.
    None,
    /// Approval by policy.
    Policy,
    /// Interactive approval.
    Interactive,
    /// An elevation token (written `elevation_token` or `approval_required`).
    ElevationToken,
}

impl ApprovalMode {
    /// Every value.
    pub const ALL: &'static [ApprovalMode] =
        &[ApprovalMode::None, ApprovalMode::Policy, ApprovalMode::Interactive, ApprovalMode::ElevationToken];

    /// The normalised name (digest §11.2).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::None => "none",
            ApprovalMode::Policy => "policy",
            ApprovalMode::Interactive => "interactive",
            ApprovalMode::ElevationToken => "elevation_token",
        }
    }

    /// Looks a name up, accepting the `approval_required` alias.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "none" => Some(ApprovalMode::None),
            "policy" => Some(ApprovalMode::Policy),
            "interactive" => Some(ApprovalMode::Interactive),
            "elevation_token" | "approval_required" => Some(ApprovalMode::ElevationToken),
            _ => None,
        }
    }
}

impl fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated connector manifest (digest §11.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// `[manifest]`.
    pub header: ManifestHeader,
    /// `[connector]`.
    pub connector: Connector,
    /// `[zones]`.
    pub zones: Zones,
    /// `[capabilities]`.
    pub capabilities: Capabilities,
    /// `[provides.operations]`, by op id; never empty.
    pub operations: BTreeMap<CanonicalId, Operation>,
    /// `[provides.events]`, by event id.
    pub events: BTreeMap<CanonicalId, Event>,
    /// `[event_caps]`, when present.
    pub event_caps: Option<EventCaps>,
    /// `[timeouts]`, defaults filled in.
    pub timeouts: Timeouts,
    /// `[performance_budget]`; absent keys are `None`.
    pub performance_budget: PerformanceBudget,
    /// `[sandbox]`.
    pub sandbox: SandboxSection,
    /// `[rate_limits]`, empty when absent.
    pub rate_limits: RateLimits,
    /// `[signatures]`, empty when absent.
    pub signatures: Signatures,
    /// `[supply_chain]`, empty when absent.
    pub supply_chain: SupplyChain,
    /// `[policy]`, defaults when absent.
    pub policy: SupplyChainPolicy,
    /// `[security]`, defaults when absent.
    pub security: Security,
    /// `[sampling]`, defaults when absent.
    pub sampling: Sampling,
}

/// `[manifest]`: format and protocol requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHeader {
    /// `schema_version` (`MAJOR.MINOR`; the major is 2).
    pub schema_version: Version2,
    /// `min_mesh_version` (strict SemVer).
    pub min_mesh_version: semver::Version,
    /// `min_protocol` (`name/MAJOR.MINOR`).
    pub min_protocol: ProtocolRequirement,
    /// `protocol_features`; repeats are kept.
    pub protocol_features: Vec<CanonicalId>,
    /// `max_datagram_bytes` (> 0).
    pub max_datagram_bytes: u16,
    /// The declared `interface_hash`, equal to the recomputed one.
    pub interface_hash: InterfaceHash,
}

/// A `MAJOR.MINOR` pair of u16 parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version2 {
    /// The major part.
    pub major: u16,
    /// The minor part.
    pub minor: u16,
}

impl fmt::Display for Version2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `manifest.min_protocol`: a protocol name and version. Manifest validation does not
/// compare them with what a host supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolRequirement {
    /// The name before `/` (non-empty).
    pub name: String,
    /// The version after `/`.
    pub version: Version2,
}

/// `[connector]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connector {
    /// `id`.
    pub id: CanonicalId,
    /// `name` (non-blank).
    pub name: String,
    /// `version` (strict SemVer).
    pub version: semver::Version,
    /// `description` (non-blank).
    pub description: String,
    /// `archetypes` as written (non-empty; repeats kept).
    pub archetypes: Vec<Archetype>,
    /// `format`.
    pub format: ConnectorFormat,
    /// `status`.
    pub status: ConnectorStatus,
    /// The legacy `singleton_writer` flag, as written.
    pub singleton_writer: Option<bool>,
    /// `[connector.state]`, when present.
    pub state: Option<ConnectorState>,
}

impl Connector {
    /// The state model in force: `[connector.state]`, else the legacy flag, else stateless.
    pub fn effective_state_model(&self) -> StateModel {
        match (&self.state, self.singleton_writer) {
            (Some(state), _) => state.model,
            (None, Some(true)) => StateModel::SingletonWriter,
            (None, _) => StateModel::Stateless,
        }
    }
}

/// `[connector.state]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorState {
    /// `model`.
    pub model: StateModel,
    /// `state_schema_version` (non-blank).
    pub state_schema_version: String,
    /// `migration_hint`.
    pub migration_hint: Option<String>,
    /// `crdt_type`: present exactly when the model is crdt.
    pub crdt_type: Option<CrdtType>,
    /// `snapshot_every_updates` (crdt only).
    pub snapshot_every_updates: Option<u64>,
    /// `snapshot_every_bytes` (crdt only).
    pub snapshot_every_bytes: Option<u64>,
}

/// `[zones]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zones {
    /// `home`; never in `forbidden`.
    pub home: ZoneId,
    /// `allowed_sources`.
    pub allowed_sources: Vec<ZonePattern>,
    /// `allowed_targets`.
    pub allowed_targets: Vec<ZonePattern>,
    /// `forbidden`.
    pub forbidden: Vec<ZoneId>,
}

/// An entry of `zones.allowed_sources` or `zones.allowed_targets`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZonePattern {
    /// One zone.
    Zone(ZoneId),
    /// `z:project:*`: every project zone.
    AnyProject,
}

impl ZonePattern {
    /// The project wildcard as written.
    pub const PROJECT_WILDCARD: &'static str = "z:project:*";

    /// Does this pattern admit `zone`?
    pub fn matches(&self, zone: &ZoneId) -> bool {
        match self {
            ZonePattern::Zone(z) => z == zone,
            ZonePattern::AnyProject => zone.as_str().starts_with("z:project:"),
        }
    }
}

impl fmt::Display for ZonePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZonePattern::Zone(z) => f.write_str(z.as_str()),
            ZonePattern::AnyProject => f.write_str(Self::PROJECT_WILDCARD),
        }
    }
}

/// `[capabilities]`: no id twice, `system.exec` always forbidden.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `required`.
    pub required: Vec<CanonicalId>,
    /// `optional`.
    pub optional: Vec<CanonicalId>,
    /// `forbidden`.
    pub forbidden: Vec<CanonicalId>,
}

/// `[provides.operations."<op-id>"]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// `description` (non-blank).
    pub description: String,
    /// `capability`: declared in required ∪ optional, never forbidden.
    pub capability: CanonicalId,
    /// `risk_level`.
    pub risk_level: RiskLevel,
    /// `safety_tier`.
    pub safety_tier: SafetyTier,
    /// `requires_approval`, normalised.
    pub requires_approval: ApprovalMode,
    /// `idempotency`.
    pub idempotency: Idempotency,
    /// `input_schema`: any TOML value, as JSON (digest §11.2).
    pub input_schema: serde_json::Value,
    /// `output_schema`: any TOML value, as JSON.
    pub output_schema: serde_json::Value,
    /// `rate_limit`, in table form.
    pub rate_limit: Option<RateLimit>,
    /// `migration_supported` (default false).
    pub migration_supported: bool,
    /// `revocation_freshness` (default safe).
    pub revocation_freshness: RevocationFreshness,
    /// `network_constraints`, defaults filled in.
    pub network_constraints: Option<NetworkConstraints>,
    /// `ai_hints`, when present.
    pub ai_hints: Option<AiHints>,
}

/// An operation's rate limit; the shorthand `"N/unit"` is read into this form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// `max` (> 0).
    pub max: u32,
    /// `per_ms` (> 0).
    pub per_ms: u64,
    /// `burst`, any value.
    pub burst: Option<u32>,
    /// `scope`.
    pub scope: Option<RateLimitScope>,
    /// `pool_name` (non-empty, `[A-Za-z0-9_.-]`).
    pub pool_name: Option<String>,
}

/// An operation's `ai_hints` (unknown keys are ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiHints {
    /// `when_to_use` (may be blank).
    pub when_to_use: String,
    /// `common_mistakes`.
    pub common_mistakes: Vec<String>,
    /// `examples`.
    pub examples: Vec<String>,
    /// `related` operation or capability ids.
    pub related: Vec<CanonicalId>,
}

/// An operation's `network_constraints` (digest §11.3), defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct NetworkConstraints {
    /// `host_allow` (non-empty; repeats kept).
    pub host_allow: Vec<HostPattern>,
    /// `port_allow` (non-empty; 0 and repeats allowed).
    pub port_allow: Vec<u16>,
    /// `ip_allow`.
    pub ip_allow: Vec<IpAddr>,
    /// `cidr_deny`.
    pub cidr_deny: Vec<Cidr>,
    /// `deny_localhost` (default true).
    pub deny_localhost: bool,
    /// `deny_private_ranges` (default true).
    pub deny_private_ranges: bool,
    /// `deny_tailnet_ranges` (default true).
    pub deny_tailnet_ranges: bool,
    /// `require_sni` (required).
    pub require_sni: bool,
    /// `spki_pins`: decoded SHA-256(SPKI) values (length unchecked, as in \[I\]).
    pub spki_pins: Vec<Vec<u8>>,
    /// `deny_ip_literals` (default true).
    pub deny_ip_literals: bool,
    /// `require_host_canonicalization` (default true).
    pub require_host_canonicalization: bool,
    /// `dns_max_ips` (default 16; 0 allowed).
    pub dns_max_ips: u16,
    /// `max_redirects` (default 5).
    pub max_redirects: u8,
    /// `connect_timeout_ms` (default 10,000; > 0 and ≤ total).
    pub connect_timeout_ms: u32,
    /// `total_timeout_ms` (default 60,000; > 0).
    pub total_timeout_ms: u32,
    /// `max_response_bytes` (default 10 MiB; > 0).
    pub max_response_bytes: u64,
}

impl NetworkConstraints {
    /// Default `dns_max_ips`.
    pub const DEFAULT_DNS_MAX_IPS: u16 = 16;
    /// Default `max_redirects`.
    pub const DEFAULT_MAX_REDIRECTS: u8 = 5;
    /// Default `connect_timeout_ms`.
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 10_000;
    /// Default `total_timeout_ms`.
    pub const DEFAULT_TOTAL_TIMEOUT_MS: u32 = 60_000;
    /// Default `max_response_bytes`.
    pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10_485_760;
}

/// A `host_allow` entry that passed the host rules of digest §11.3: an exact host, or
/// `*.` followed by at least two labels. It need not be a valid DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPattern(pub(crate) String);

impl HostPattern {
    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The suffix after `*.` when this is a wildcard entry.
    pub fn wildcard_suffix(&self) -> Option<&str> {
        self.0.strip_prefix("*.")
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `cidr_deny` entry: an address and a prefix length. Host bits may be set; the text
/// is kept as written because the interface hash covers it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub(crate) text: String,
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The address part.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `[provides.events."<id>"]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `description` (non-blank).
    pub description: String,
    /// `streaming` (default false).
    pub streaming: bool,
    /// `replay` (default false).
    pub replay: bool,
    /// `requires_ack` (default false).
    pub requires_ack: bool,
    /// `topic` (non-blank when given).
    pub topic: Option<String>,
    /// `schema`: any value, as JSON.
    pub schema: Option<serde_json::Value>,
}

/// `[event_caps]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventCaps {
    /// `streaming`.
    pub streaming: bool,
    /// `replay`.
    pub replay: bool,
    /// `min_buffer_events` (> 0 when streaming).
    pub min_buffer_events: u32,
}

/// `[timeouts]`, each > 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `request_timeout_ms` (default 30,000).
    pub request_timeout_ms: u64,
    /// `connect_timeout_ms` (default 5,000).
    pub connect_timeout_ms: u64,
    /// `wall_clock_timeout_ms` (default 60,000).
    pub wall_clock_timeout_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { request_timeout_ms: 30_000, connect_timeout_ms: 5_000, wall_clock_timeout_ms: 60_000 }
    }
}

/// `[performance_budget]`: finite, non-negative numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerformanceBudget {
    /// `cold_start_max_ms`.
    pub cold_start_max_ms: Option<f64>,
    /// `local_invoke_max_ms`.
    pub local_invoke_max_ms: Option<f64>,
    /// `memory_uss_max_mb`.
    pub memory_uss_max_mb: Option<f64>,
    /// `idle_cpu_max_pct`.
    pub idle_cpu_max_pct: Option<f64>,
}

/// `[sandbox]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSection {
    /// `profile`.
    pub profile: SandboxProfile,
    /// `memory_mb` (0 allowed).
    pub memory_mb: u32,
    /// `cpu_percent` (1–255; above 100 allowed).
    pub cpu_percent: u8,
    /// `wall_clock_timeout_ms` (> 0).
    pub wall_clock_timeout_ms: u64,
    /// `fs_readonly_paths`.
    pub fs_readonly_paths: Vec<SandboxPath>,
    /// `fs_writable_paths`.
    pub fs_writable_paths: Vec<SandboxPath>,
    /// `deny_exec`.
    pub deny_exec: bool,
    /// `deny_ptrace`.
    pub deny_ptrace: bool,
}

/// A sandbox filesystem path (digest §11.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SandboxPath {
    /// An absolute path as written (not normalised: `/usr/../etc` stays as is).
    Absolute(String),
    /// `$CONNECTOR_STATE` (empty string) or a relative path of normal components below
    /// it, as written after `$CONNECTOR_STATE/`.
    ConnectorState(String),
}

impl SandboxPath {
    /// The `$CONNECTOR_STATE` placeholder.
    pub const CONNECTOR_STATE: &'static str = "$CONNECTOR_STATE";
}

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxPath::Absolute(p) => f.write_str(p),
            SandboxPath::ConnectorState(sub) if sub.is_empty() => f.write_str(Self::CONNECTOR_STATE),
            SandboxPath::ConnectorState(sub) => write!(f, "{}/{sub}", Self::CONNECTOR_STATE),
        }
    }
}

/// `[rate_limits]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// `[[rate_limits.pools]]` (ids unique, at most 1,024).
    pub pools: Vec<RateLimitPool>,
    /// `[rate_limits.operation_pools]`: name → pool ids (each pool exists).
    pub operation_pools: BTreeMap<String, Vec<String>>,
}

/// One `[[rate_limits.pools]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitPool {
    /// `id` (non-empty, any text).
    pub id: String,
    /// `requests` (1..=1e9).
    pub requests: u32,
    /// `window_ms` (1..=86,400,000).
    pub window_ms: u64,
    /// `burst` (1..=1e9).
    pub burst: Option<u32>,
    /// `unit`.
    pub unit: Option<PoolUnit>,
    /// `enforcement`.
    pub enforcement: Option<PoolEnforcement>,
    /// `scope`.
    pub scope: Option<PoolScope>,
    /// `description`.
    pub description: Option<String>,
}

/// `[signatures]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signatures {
    /// `publisher_signatures` (kids unique).
    pub publisher_signatures: Vec<SignatureEntry>,
    /// `publisher_threshold` (`k-of-n`).
    pub publisher_threshold: Option<Threshold>,
    /// `registry_signature`.
    pub registry_signature: Option<SignatureEntry>,
    /// `transparency_log_entry`.
    pub transparency_log_entry: Option<ObjectId>,
}

/// A `{kid, sig}` pair; `sig` is decoded from `base64:…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureEntry {
    /// `kid`, any text.
    pub kid: String,
    /// The decoded signature bytes.
    pub sig: Vec<u8>,
}

/// `publisher_threshold`: `k` of `n` signatures, 0 < k ≤ n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// Signatures needed.
    pub k: u8,
    /// Signers named.
    pub n: u8,
}

/// `[supply_chain]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupplyChain {
    /// `attestations` (object ids unique).
    pub attestations: Vec<Attestation>,
}

/// One supply-chain attestation reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// `type`.
    pub kind: AttestationType,
    /// `object_id`.
    pub object_id: ObjectId,
}

/// `[policy]`: supply-chain requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupplyChainPolicy {
    /// `require_transparency_log` (then a transparency log entry is present).
    pub require_transparency_log: bool,
    /// `require_attestation_types`.
    pub require_attestation_types: Vec<AttestationType>,
    /// `min_slsa_level` (0–4).
    pub min_slsa_level: Option<u8>,
    /// `trusted_builders`.
    pub trusted_builders: Vec<String>,
    /// `require_attestation_expiry`.
    pub require_attestation_expiry: bool,
}

/// `[security]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Security {
    /// `description_scan`.
    pub description_scan: DescriptionScan,
}

impl Default for Security {
    fn default() -> Self {
        Security { description_scan: DescriptionScan::Warn }
    }
}

/// `[sampling]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `llm_connector`.
    pub llm_connector: Option<String>,
    /// `max_rpm` (default 10; > 0).
    pub max_rpm: u32,
    /// `timeout_secs` (default 30; > 0).
    pub timeout_secs: u32,
    /// `max_tokens_cap` (default 4096; > 0).
    pub max_tokens_cap: u32,
    /// `max_tool_rounds` (default 5; 0 allowed).
    pub max_tool_rounds: u32,
    /// `model_override`.
    pub model_override: Option<String>,
    /// `allowed_models`.
    pub allowed_models: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            enabled: false,
            llm_connector: None,
            max_rpm: 10,
            timeout_secs: 30,
            max_tokens_cap: 4096,
            max_tool_rounds: 5,
            model_override: None,
            allowed_models: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Archetype::ALL {
            assert_eq!(Archetype::from_name(a.as_str()), Some(*a));
        }
        for s in SafetyTier::ALL {
            assert_eq!(SafetyTier::from_name(&s.to_string()), Some(*s));
        }
        assert_eq!(ConnectorStatus::from_name("adversarial"), Some(ConnectorStatus::Adversarial));
        assert_eq!(Idempotency::from_name("Strict"), None);
        assert_eq!(AttestationType::from_name("in-toto"), Some(AttestationType::InToto));
    }

    #[test]
    fn approval_alias_normalises() {
        assert_eq!(ApprovalMode::from_name("approval_required"), Some(ApprovalMode::ElevationToken));
        assert_eq!(ApprovalMode::ElevationToken.as_str(), "elevation_token");
        assert_eq!(ApprovalMode::from_name("approval"), None);
    }

    #[test]
    fn zone_patterns_match() {
        let project = ZoneId::new("z:project:alpha").expect("zone");
        let work = ZoneId::new("z:work").expect("zone");
        assert!(ZonePattern::AnyProject.matches(&project));
        assert!(!ZonePattern::AnyProject.matches(&work));
        assert!(ZonePattern::Zone(work.clone()).matches(&work));
        assert_eq!(ZonePattern::AnyProject.to_string(), "z:project:*");
    }

    #[test]
    fn sandbox_paths_display_as_written() {
        assert_eq!(SandboxPath::ConnectorState(String::new()).to_string(), "$CONNECTOR_STATE");
        assert_eq!(SandboxPath::ConnectorState("a//b".into()).to_string(), "$CONNECTOR_STATE/a//b");
        assert_eq!(SandboxPath::Absolute("/usr".into()).to_string(), "/usr");
    }

    #[test]
    fn effective_state_model_prefers_the_section() {
        let mut c = Connector {
            id: CanonicalId::new("fcp.x").expect("id"),
            name: "x".into(),
            version: semver::Version::new(1, 0, 0),
            description: "x".into(),
            archetypes: vec![Archetype::Operational],
            format: ConnectorFormat::Native,
            status: ConnectorStatus::Ready,
            singleton_writer: Some(true),
            state: None,
        };
        assert_eq!(c.effective_state_model(), StateModel::SingletonWriter);
        c.singleton_writer = Some(false);
        assert_eq!(c.effective_state_model(), StateModel::Stateless);
    }
}
