//! Reads the TOML tree into typed sections, recording every violation (digest §11.1).
//!
//! Each reader returns `Some` only when every value it covers has its typed form; it
//! records a violation for each value that does not, and keeps going, so one pass
//! reports everything. Rules that relate values inside one section are checked here
//! too; rules across sections are in `validate.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use fcp_proto::id::{CanonicalId, ObjectId, ZoneId};
use fcp_proto::schema::is_strict_semver;

use super::error::{Rule, Violation};
use super::hash::{InterfaceHash, TOML_DATETIME_KEY};
use super::lint::{capability_lint, is_network_capability_with_host, sandbox_path, SandboxPathKind};
use super::model::*;
use super::net::{host_entry_problem, parse_cidr};
use super::tree::{index, join, Int, Node};

pub(crate) type Table = BTreeMap<String, Node>;

/// Largest number of `[[rate_limits.pools]]`.
const MAX_POOLS: usize = 1024;
/// Largest number of `rate_limits.operation_pools` entries.
const MAX_OPERATION_POOL_ENTRIES: usize = 4096;
/// Largest number of pools one `operation_pools` entry may name.
const MAX_POOLS_PER_ENTRY: usize = 16;
/// Largest pool `requests` and `burst`.
const MAX_POOL_REQUESTS: u32 = 1_000_000_000;
/// Largest pool `window_ms` (24 h).
const MAX_POOL_WINDOW_MS: u64 = 86_400_000;

/// Collects violations while reading.
#[derive(Default)]
pub(crate) struct Reader {
    violations: Vec<Violation>,
}

impl Reader {
    pub(crate) fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    pub(crate) fn push(&mut self, rule: Rule, path: &str, message: impl Into<String>) {
        self.violations.push(Violation::new(rule, path, message));
    }

    /// Records a bad value and yields nothing.
    fn bad<T>(&mut self, path: &str, message: impl Into<String>) -> Option<T> {
        self.push(Rule::BadValue, path, message);
        None
    }

    /// Records a bad value and answers `false`, for `ok &= …` chains.
    fn reject(&mut self, path: &str, message: impl Into<String>) -> bool {
        self.push(Rule::BadValue, path, message);
        false
    }

    fn wrong_type<T>(&mut self, path: &str, expected: &str, found: &Node) -> Option<T> {
        self.bad(path, format!("expected {expected}, found {}", found.type_name()))
    }

    // -- table shape ------------------------------------------------------------------

    /// Reports every key of `t` outside `allowed`.
    pub(crate) fn keys(&mut self, t: &Table, path: &str, allowed: &[&str]) {
        for k in t.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.push(Rule::UnknownKey, &join(path, k), "unknown key");
        }
    }

    /// A required key: missing is `missing_key`.
    pub(crate) fn req<'n, T>(
        &mut self,
        t: &'n Table,
        parent: &str,
        key: &str,
        f: impl FnOnce(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = join(parent, key);
        match t.get(key) {
            Some(n) => f(self, n, &path),
            None => {
                self.push(Rule::MissingKey, &path, "required key is missing");
                None
            }
        }
    }

    /// An optional key: `Some(None)` when absent, `None` when present but bad.
    pub(crate) fn opt<'n, T>(
        &mut self,
        t: &'n Table,
        parent: &str,
        key: &str,
        f: impl FnOnce(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match t.get(key) {
            Some(n) => f(self, n, &join(parent, key)).map(Some),
            None => Some(None),
        }
    }

    /// An optional key with a default.
    fn dflt<'n, T>(
        &mut self,
        t: &'n Table,
        parent: &str,
        key: &str,
        default: T,
        f: impl FnOnce(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        self.opt(t, parent, key, f).map(|v| v.unwrap_or(default))
    }

    // -- scalars ----------------------------------------------------------------------

    pub(crate) fn table<'n>(&mut self, n: &'n Node, path: &str) -> Option<&'n Table> {
        match n {
            Node::Table(t) => Some(t),
            other => self.wrong_type(path, "a table", other),
        }
    }

    fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match n {
            Node::Str(s) => Some(s.clone()),
            other => self.wrong_type(path, "a string", other),
        }
    }

    fn non_blank(&mut self, n: &Node, path: &str) -> Option<String> {
        let s = self.string(n, path)?;
        if s.trim().is_empty() {
            return self.bad(path, "must not be blank");
        }
        Some(s)
    }

    fn boolean(&mut self, n: &Node, path: &str) -> Option<bool> {
        match n {
            Node::Bool(b) => Some(*b),
            other => self.wrong_type(path, "a boolean", other),
        }
    }

    fn int<T: TryFrom<i128>>(&mut self, n: &Node, path: &str, ty: &str) -> Option<T> {
        match n {
            Node::Int(Int::Value(v)) => match T::try_from(*v) {
                Ok(x) => Some(x),
                Err(_) => self.bad(path, format!("{v} is out of range for {ty}")),
            },
            Node::Int(_) => self.bad(path, format!("integer is out of range for {ty}")),
            other => self.wrong_type(path, "an integer", other),
        }
    }

    fn u8v(&mut self, n: &Node, path: &str) -> Option<u8> {
        self.int(n, path, "u8")
    }

    fn u16v(&mut self, n: &Node, path: &str) -> Option<u16> {
        self.int(n, path, "u16")
    }

    fn u32v(&mut self, n: &Node, path: &str) -> Option<u32> {
        self.int(n, path, "u32")
    }

    fn u64v(&mut self, n: &Node, path: &str) -> Option<u64> {
        self.int(n, path, "u64")
    }

    /// A name from a closed set.
    fn name<E>(&mut self, n: &Node, path: &str, from: fn(&str) -> Option<E>) -> Option<E> {
        let s = self.string(n, path)?;
        match from(&s) {
            Some(e) => Some(e),
            None => self.bad(path, format!("{s:?} is not an allowed value")),
        }
    }

    fn canonical_id(&mut self, n: &Node, path: &str) -> Option<CanonicalId> {
        let s = self.string(n, path)?;
        match CanonicalId::new(&s) {
            Ok(id) => Some(id),
            Err(_) => self.bad(path, format!("{s:?} is not a canonical id ([a-z0-9][a-z0-9._:-]*, 1-128 bytes)")),
        }
    }

    fn zone_id(&mut self, n: &Node, path: &str) -> Option<ZoneId> {
        let s = self.string(n, path)?;
        match ZoneId::new(&s) {
            Ok(z) => Some(z),
            Err(e) => self.bad(path, e.to_string()),
        }
    }

    fn zone_pattern(&mut self, n: &Node, path: &str) -> Option<ZonePattern> {
        let s = self.string(n, path)?;
        if s.contains('*') {
            if s == ZonePattern::PROJECT_WILDCARD {
                return Some(ZonePattern::AnyProject);
            }
            return self.bad(path, format!("{s:?}: the only zone wildcard is z:project:*"));
        }
        match ZoneId::new(&s) {
            Ok(z) => Some(ZonePattern::Zone(z)),
            Err(e) => self.bad(path, e.to_string()),
        }
    }

    fn semver(&mut self, n: &Node, path: &str) -> Option<semver::Version> {
        let s = self.string(n, path)?;
        match semver::Version::parse(&s) {
            Ok(v) if is_strict_semver(&s) => Some(v),
            _ => {
                self.push(Rule::InvalidSemver, path, format!("{s:?} is not a semver 2.0.0 version"));
                None
            }
        }
    }

    /// `"base64:"` + standard padded base64 with zero trailing bits.
    fn base64(&mut self, n: &Node, path: &str) -> Option<Vec<u8>> {
        let s = self.string(n, path)?;
        match s.strip_prefix("base64:").map(|b| BASE64.decode(b)) {
            Some(Ok(bytes)) => Some(bytes),
            _ => self.bad(path, "expected \"base64:\" and canonical padded base64"),
        }
    }

    fn object_id(&mut self, n: &Node, path: &str) -> Option<ObjectId> {
        let s = self.string(n, path)?;
        match ObjectId::from_str(&s) {
            Ok(id) => Some(id),
            Err(_) => self.bad(path, "expected 64 hex digits, optionally prefixed objectid:"),
        }
    }

    /// A `MAJOR.MINOR` pair of u16 written as text (Rust integer syntax).
    fn version2(&mut self, s: &str, path: &str) -> Option<Version2> {
        let parsed =
            s.split_once('.').and_then(|(a, b)| Some(Version2 { major: a.parse().ok()?, minor: b.parse().ok()? }));
        match parsed {
            Some(v) => Some(v),
            None => self.bad(path, format!("{s:?} is not MAJOR.MINOR with u16 parts")),
        }
    }

    // -- containers -------------------------------------------------------------------

    /// Every element through `f`; `None` when not an array. Elements that fail are `None`.
    fn each<'n, T>(
        &mut self,
        n: &'n Node,
        path: &str,
        mut f: impl FnMut(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<Vec<Option<T>>> {
        let Node::Array(items) = n else { return self.wrong_type(path, "an array", n) };
        Some(items.iter().enumerate().map(|(i, item)| f(self, item, &index(path, i))).collect())
    }

    /// A list whose every element is valid.
    fn list<'n, T>(
        &mut self,
        n: &'n Node,
        path: &str,
        f: impl FnMut(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.each(n, path, f)?.into_iter().collect()
    }

    fn strings(&mut self, n: &Node, path: &str) -> Option<Vec<String>> {
        self.list(n, path, Self::string)
    }

    /// A schema value: TOML → serde_json, as serde would convert it (digest §11.2).
    fn json(&mut self, n: &Node, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        match n {
            Node::Str(s) => Some(J::String(s.clone())),
            Node::Bool(b) => Some(J::Bool(*b)),
            Node::Int(Int::Value(v)) => {
                if let Ok(i) = i64::try_from(*v) {
                    Some(J::from(i))
                } else if let Ok(u) = u64::try_from(*v) {
                    Some(J::from(u))
                } else {
                    self.bad(path, "integer does not fit a json number (i64 or u64)")
                }
            }
            Node::Int(_) => self.bad(path, "integer does not fit a json number (i64 or u64)"),
            // nan and ±inf have no JSON form and become null.
            Node::Float(Some(f)) => Some(serde_json::Number::from_f64(*f).map_or(J::Null, J::Number)),
            Node::Float(None) => self.bad(path, "float overflows f64"),
            Node::Datetime(d) => {
                Some(J::Object([(TOML_DATETIME_KEY.to_owned(), J::String(d.clone()))].into_iter().collect()))
            }
            Node::Array(items) => {
                let items: Vec<Option<J>> =
                    items.iter().enumerate().map(|(i, item)| self.json(item, &index(path, i))).collect();
                Some(J::Array(items.into_iter().collect::<Option<_>>()?))
            }
            Node::Table(t) => {
                let entries: Vec<Option<(String, J)>> =
                    t.iter().map(|(k, v)| self.json(v, &join(path, k)).map(|v| (k.clone(), v))).collect();
                Some(J::Object(entries.into_iter().collect::<Option<_>>()?))
            }
        }
    }

    /// A value under a key that serde ignores still has to deserialise: integers within
    /// u128/i128 and finite-width floats. `buffered` (an untagged enum) also rejects
    /// integers beyond i64/u64.
    fn ignored(&mut self, n: &Node, path: &str, buffered: bool) -> bool {
        match n {
            Node::Int(Int::Value(v)) if buffered && i64::try_from(*v).is_err() && u64::try_from(*v).is_err() => {
                self.reject(path, "integer out of range")
            }
            Node::Int(Int::Overflow) | Node::Float(None) => self.reject(path, "number out of range"),
            Node::Int(Int::U128Only) if buffered => self.reject(path, "integer out of range"),
            Node::Array(items) => {
                items.iter().enumerate().fold(true, |ok, (i, item)| self.ignored(item, &index(path, i), buffered) && ok)
            }
            Node::Table(t) => t.iter().fold(true, |ok, (k, v)| self.ignored(v, &join(path, k), buffered) && ok),
            _ => true,
        }
    }

    // -- sections ---------------------------------------------------------------------

    /// `[manifest]`.
    pub(crate) fn header(&mut self, t: &Table, p: &str) -> Option<ManifestHeader> {
        self.keys(
            t,
            p,
            &[
                "format",
                "schema_version",
                "min_mesh_version",
                "min_protocol",
                "protocol_features",
                "max_datagram_bytes",
                "interface_hash",
            ],
        );
        let format = self.req(t, p, "format", |r, n, path| {
            let s = r.string(n, path)?;
            if s == "fcp-connector-manifest" {
                Some(())
            } else {
                r.bad(path, "must be \"fcp-connector-manifest\"")
            }
        });
        let schema_version = self.req(t, p, "schema_version", |r, n, path| {
            let s = r.string(n, path)?;
            let v = r.version2(&s, path)?;
            if v.major != 2 {
                return r.bad(path, format!("unsupported manifest schema major version {}", v.major));
            }
            Some(v)
        });
        let min_mesh_version = self.req(t, p, "min_mesh_version", Self::semver);
        let min_protocol = self.req(t, p, "min_protocol", |r, n, path| {
            let s = r.string(n, path)?;
            let Some((name, version)) = s.split_once('/') else {
                return r.bad(path, "expected name/MAJOR.MINOR");
            };
            if name.is_empty() {
                return r.bad(path, "protocol name must not be empty");
            }
            Some(ProtocolRequirement { name: name.to_owned(), version: r.version2(version, path)? })
        });
        let protocol_features =
            self.dflt(t, p, "protocol_features", Vec::new(), |r, n, path| r.list(n, path, Self::canonical_id));
        let max_datagram_bytes = self.req(t, p, "max_datagram_bytes", |r, n, path| {
            let v = r.u16v(n, path)?;
            if v == 0 {
                return r.bad(path, "must be > 0");
            }
            Some(v)
        });
        let interface_hash = self.req(t, p, "interface_hash", |r, n, path| {
            let s = r.string(n, path)?;
            match s.parse::<InterfaceHash>() {
                Ok(h) => Some(h),
                Err(e) => r.bad(path, e.to_string()),
            }
        });
        format?;
        Some(ManifestHeader {
            schema_version: schema_version?,
            min_mesh_version: min_mesh_version?,
            min_protocol: min_protocol?,
            protocol_features: protocol_features?,
            max_datagram_bytes: max_datagram_bytes?,
            interface_hash: interface_hash?,
        })
    }

    /// `[connector]`, including the `[connector.state]` rules that decide the effective
    /// state model.
    pub(crate) fn connector(&mut self, t: &Table, p: &str) -> Option<Connector> {
        self.keys(
            t,
            p,
            &["id", "name", "version", "description", "archetypes", "format", "status", "singleton_writer", "state"],
        );
        let id = self.req(t, p, "id", Self::canonical_id);
        let name = self.req(t, p, "name", Self::non_blank);
        let version = self.req(t, p, "version", Self::semver);
        let description = self.req(t, p, "description", Self::non_blank);
        let archetypes = self.req(t, p, "archetypes", |r, n, path| {
            let list = r.list(n, path, |r, n, path| r.name(n, path, Archetype::from_name))?;
            if list.is_empty() {
                return r.bad(path, "must list at least one archetype");
            }
            Some(list)
        });
        let format = self.req(t, p, "format", |r, n, path| r.name(n, path, ConnectorFormat::from_name));
        let status =
            self.dflt(t, p, "status", ConnectorStatus::Ready, |r, n, path| r.name(n, path, ConnectorStatus::from_name));
        let singleton_writer = self.opt(t, p, "singleton_writer", Self::boolean);
        let state = self.opt(t, p, "state", |r, n, path| {
            let st = r.table(n, path)?;
            r.state(st, path)
        });
        if let (Some(Some(true)), Some(Some(st))) = (singleton_writer, &state) {
            if st.model != StateModel::SingletonWriter {
                return self
                    .bad(&join(p, "singleton_writer"), "singleton_writer = true conflicts with connector.state.model");
            }
        }
        Some(Connector {
            id: id?,
            name: name?,
            version: version?,
            description: description?,
            archetypes: archetypes?,
            format: format?,
            status: status?,
            singleton_writer: singleton_writer?,
            state: state?,
        })
    }

    fn state(&mut self, t: &Table, p: &str) -> Option<ConnectorState> {
        self.keys(
            t,
            p,
            &[
                "model",
                "state_schema_version",
                "migration_hint",
                "crdt_type",
                "snapshot_every_updates",
                "snapshot_every_bytes",
            ],
        );
        let model = self.req(t, p, "model", |r, n, path| r.name(n, path, StateModel::from_name));
        let state_schema_version = self.req(t, p, "state_schema_version", Self::non_blank);
        let migration_hint = self.opt(t, p, "migration_hint", Self::string);
        let crdt_type = self.opt(t, p, "crdt_type", |r, n, path| r.name(n, path, CrdtType::from_name));
        let snapshot_every_updates = self.opt(t, p, "snapshot_every_updates", Self::u64v);
        let snapshot_every_bytes = self.opt(t, p, "snapshot_every_bytes", Self::u64v);
        let mut ok = true;
        match model {
            Some(StateModel::Crdt) if crdt_type == Some(None) => {
                ok &= self.reject(&join(p, "crdt_type"), "required when model = \"crdt\"");
            }
            Some(StateModel::Crdt) | None => {}
            Some(_) => {
                for key in ["crdt_type", "snapshot_every_updates", "snapshot_every_bytes"] {
                    if t.contains_key(key) {
                        ok &= self.reject(&join(p, key), "only allowed when model = \"crdt\"");
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        Some(ConnectorState {
            model: model?,
            state_schema_version: state_schema_version?,
            migration_hint: migration_hint?,
            crdt_type: crdt_type?,
            snapshot_every_updates: snapshot_every_updates?,
            snapshot_every_bytes: snapshot_every_bytes?,
        })
    }

    /// `[zones]`, including "home is not forbidden".
    pub(crate) fn zones(&mut self, t: &Table, p: &str) -> Option<Zones> {
        self.keys(t, p, &["home", "allowed_sources", "allowed_targets", "forbidden"]);
        let home = self.req(t, p, "home", Self::zone_id);
        let allowed_sources =
            self.dflt(t, p, "allowed_sources", Vec::new(), |r, n, path| r.list(n, path, Self::zone_pattern));
        let allowed_targets =
            self.dflt(t, p, "allowed_targets", Vec::new(), |r, n, path| r.list(n, path, Self::zone_pattern));
        let forbidden = self.opt(t, p, "forbidden", |r, n, path| r.each(n, path, Self::zone_id));
        if let (Some(home), Some(Some(forbidden))) = (&home, &forbidden) {
            if forbidden.iter().flatten().any(|z| z == home) {
                self.push(Rule::HomeZoneForbidden, &join(p, "forbidden"), format!("home zone {home} is forbidden"));
            }
        }
        let forbidden = match forbidden? {
            Some(list) => list.into_iter().collect::<Option<Vec<_>>>()?,
            None => Vec::new(),
        };
        Some(Zones { home: home?, allowed_sources: allowed_sources?, allowed_targets: allowed_targets?, forbidden })
    }

    /// `[capabilities]` with its own rules. Returns the valid ids (for the cross-section
    /// rules) and whether every entry was valid.
    pub(crate) fn capabilities(&mut self, t: &Table, p: &str) -> (Capabilities, bool) {
        self.keys(t, p, &["required", "optional", "forbidden"]);
        let mut caps = Capabilities::default();
        let mut complete = true;
        let mut seen = BTreeSet::new();
        for key in ["required", "optional", "forbidden"] {
            let list_path = join(p, key);
            let Some(entries) = self.opt(t, p, key, |r, n, path| r.each(n, path, Self::canonical_id)) else {
                complete = false;
                continue;
            };
            for (i, entry) in entries.unwrap_or_default().into_iter().enumerate() {
                let Some(id) = entry else {
                    complete = false;
                    continue;
                };
                let path = index(&list_path, i);
                if !seen.insert(id.as_str().to_owned()) {
                    self.push(Rule::DuplicateCapability, &path, format!("capability {id} appears more than once"));
                }
                if is_network_capability_with_host(id.as_str()) {
                    self.push(
                        Rule::NetworkCapabilityHost,
                        &path,
                        format!("network capability {id} encodes a host; use network_constraints"),
                    );
                }
                if let Some(why) = capability_lint(id.as_str()) {
                    self.push(Rule::CapabilityLint, &path, why);
                }
                match key {
                    "required" => caps.required.push(id),
                    "optional" => caps.optional.push(id),
                    _ => caps.forbidden.push(id),
                }
            }
        }
        // A forbidden value that is not an array is already a bad value.
        let forbidden_is_list = matches!(t.get("forbidden"), None | Some(Node::Array(_)));
        if forbidden_is_list && !caps.forbidden.iter().any(|c| c.as_str() == "system.exec") {
            self.push(Rule::SystemExecNotForbidden, &join(p, "forbidden"), "must include system.exec");
        }
        (caps, complete)
    }

    /// `[provides]`: the operations (all valid, or `None`) and each operation's
    /// capability (for the cross-section rules), and the events.
    pub(crate) fn provides(&mut self, t: &Table, p: &str) -> Provides {
        self.keys(t, p, &["operations", "events"]);
        let mut out = Provides::default();
        let ops_path = join(p, "operations");
        out.operations = match t.get("operations") {
            None => {
                self.push(Rule::MissingKey, &ops_path, "required key is missing");
                None
            }
            Some(n) => self.table(n, &ops_path).and_then(|ops| {
                if ops.is_empty() {
                    self.push(Rule::MissingKey, &ops_path, "must declare at least one operation");
                    return None;
                }
                let mut map = BTreeMap::new();
                let mut complete = true;
                for (op_id, node) in ops {
                    let path = join(&ops_path, op_id);
                    let id = match CanonicalId::new(op_id) {
                        Ok(id) => Some(id),
                        Err(_) => self.bad(&path, format!("operation id {op_id:?} is not a canonical id")),
                    };
                    let op = self.table(node, &path).and_then(|op| self.operation(op, &path, &mut out.op_capabilities));
                    match (id, op) {
                        (Some(id), Some(op)) => {
                            map.insert(id, op);
                        }
                        _ => complete = false,
                    }
                }
                complete.then_some(map)
            }),
        };
        out.events = self.dflt(t, p, "events", BTreeMap::new(), |r, n, path| {
            let events = r.table(n, path)?;
            let mut map = BTreeMap::new();
            let mut complete = true;
            for (event_id, node) in events {
                let path = join(path, event_id);
                let id = match CanonicalId::new(event_id) {
                    Ok(id) => Some(id),
                    Err(_) => r.bad(&path, format!("event id {event_id:?} is not a canonical id")),
                };
                let event = r.table(node, &path).and_then(|e| r.event(e, &path));
                match (id, event) {
                    (Some(id), Some(event)) => {
                        map.insert(id, event);
                    }
                    _ => complete = false,
                }
            }
            complete.then_some(map)
        });
        out
    }

    fn operation(&mut self, t: &Table, p: &str, capabilities: &mut Vec<(String, CanonicalId)>) -> Option<Operation> {
        self.keys(
            t,
            p,
            &[
                "description",
                "capability",
                "risk_level",
                "safety_tier",
                "requires_approval",
                "rate_limit",
                "idempotency",
                "migration_supported",
                "revocation_freshness",
                "input_schema",
                "output_schema",
                "network_constraints",
                "ai_hints",
            ],
        );
        let description = self.req(t, p, "description", Self::non_blank);
        let capability = self.req(t, p, "capability", Self::canonical_id);
        if let Some(cap) = &capability {
            let path = join(p, "capability");
            if let Some(why) = capability_lint(cap.as_str()) {
                self.push(Rule::CapabilityLint, &path, why);
            }
            capabilities.push((path, cap.clone()));
        }
        let risk_level = self.req(t, p, "risk_level", |r, n, path| r.name(n, path, RiskLevel::from_name));
        let safety_tier = self.req(t, p, "safety_tier", |r, n, path| r.name(n, path, SafetyTier::from_name));
        let requires_approval =
            self.req(t, p, "requires_approval", |r, n, path| r.name(n, path, ApprovalMode::from_name));
        let rate_limit = self.opt(t, p, "rate_limit", Self::rate_limit);
        let idempotency = self.req(t, p, "idempotency", |r, n, path| r.name(n, path, Idempotency::from_name));
        let migration_supported = self.dflt(t, p, "migration_supported", false, Self::boolean);
        let revocation_freshness = self.dflt(t, p, "revocation_freshness", RevocationFreshness::Safe, |r, n, path| {
            r.name(n, path, RevocationFreshness::from_name)
        });
        let input_schema = self.req(t, p, "input_schema", Self::json);
        let output_schema = self.req(t, p, "output_schema", Self::json);
        let network_constraints = self.opt(t, p, "network_constraints", |r, n, path| {
            let nc = r.table(n, path)?;
            r.network_constraints(nc, path)
        });
        let ai_hints = self.opt(t, p, "ai_hints", |r, n, path| {
            let h = r.table(n, path)?;
            r.ai_hints(h, path)
        });
        Some(Operation {
            description: description?,
            capability: capability?,
            risk_level: risk_level?,
            safety_tier: safety_tier?,
            requires_approval: requires_approval?,
            idempotency: idempotency?,
            input_schema: input_schema?,
            output_schema: output_schema?,
            rate_limit: rate_limit?,
            migration_supported: migration_supported?,
            revocation_freshness: revocation_freshness?,
            network_constraints: network_constraints?,
            ai_hints: ai_hints?,
        })
    }

    /// `rate_limit`: the shorthand `"N/unit"` or a table. \[I\] reads it as an untagged enum,
    /// so every failure, a missing `max` or `per_ms` included, is a bad value.
    fn rate_limit(&mut self, n: &Node, p: &str) -> Option<RateLimit> {
        let rl = match n {
            Node::Str(s) => {
                let Some((max, unit)) = s.split_once('/') else {
                    return self.bad(p, "expected \"N/unit\" or a table");
                };
                let Ok(max) = max.parse::<u32>() else {
                    return self.bad(p, format!("{max:?} is not a u32"));
                };
                let per_ms = match unit {
                    "sec" | "s" => 1_000,
                    "min" | "m" => 60_000,
                    "hour" | "h" => 3_600_000,
                    "day" | "d" => 86_400_000,
                    _ => return self.bad(p, format!("unknown rate unit {unit:?} (sec, min, hour or day)")),
                };
                RateLimit { max, per_ms, burst: None, scope: None, pool_name: None }
            }
            Node::Table(t) => {
                let mut ok = true;
                for (k, v) in t {
                    if !matches!(k.as_str(), "max" | "per_ms" | "burst" | "scope" | "pool_name") {
                        ok &= self.ignored(v, &join(p, k), true);
                    }
                }
                const NEEDS: &str = "a table-form rate_limit needs max and per_ms";
                let (max_path, per_ms_path) = (join(p, "max"), join(p, "per_ms"));
                let max = match t.get("max") {
                    Some(n) => self.u32v(n, &max_path),
                    None => self.bad(&max_path, NEEDS),
                };
                let per_ms = match t.get("per_ms") {
                    Some(n) => self.u64v(n, &per_ms_path),
                    None => self.bad(&per_ms_path, NEEDS),
                };
                let burst = self.opt(t, p, "burst", Self::u32v);
                let scope = self.opt(t, p, "scope", |r, n, path| r.name(n, path, RateLimitScope::from_name));
                let pool_name = self.opt(t, p, "pool_name", Self::string);
                if !ok {
                    return None;
                }
                RateLimit { max: max?, per_ms: per_ms?, burst: burst?, scope: scope?, pool_name: pool_name? }
            }
            other => return self.wrong_type(p, "a string or a table", other),
        };
        let mut ok = true;
        if rl.max == 0 || rl.per_ms == 0 {
            ok &= self.reject(p, "max and per_ms must be > 0");
        }
        if let Some(pool) = &rl.pool_name {
            if pool.is_empty() || !pool.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
                ok &= self.reject(&join(p, "pool_name"), "must be non-empty [A-Za-z0-9_.-]");
            }
        }
        ok.then_some(rl)
    }

    /// `network_constraints` (digest §11.3).
    fn network_constraints(&mut self, t: &Table, p: &str) -> Option<NetworkConstraints> {
        self.keys(
            t,
            p,
            &[
                "host_allow",
                "port_allow",
                "ip_allow",
                "cidr_deny",
                "deny_localhost",
                "deny_private_ranges",
                "deny_tailnet_ranges",
                "require_sni",
                "spki_pins",
                "deny_ip_literals",
                "require_host_canonicalization",
                "dns_max_ips",
                "max_redirects",
                "connect_timeout_ms",
                "total_timeout_ms",
                "max_response_bytes",
            ],
        );
        let deny_localhost = self.dflt(t, p, "deny_localhost", true, Self::boolean);
        let deny_private_ranges = self.dflt(t, p, "deny_private_ranges", true, Self::boolean);
        let deny_tailnet_ranges = self.dflt(t, p, "deny_tailnet_ranges", true, Self::boolean);
        let require_sni = self.req(t, p, "require_sni", Self::boolean);
        let deny_ip_literals = self.dflt(t, p, "deny_ip_literals", true, Self::boolean);
        let require_canonical = self.dflt(t, p, "require_host_canonicalization", true, Self::boolean);
        let host_allow = self.req(t, p, "host_allow", |r, n, path| {
            let hosts = r.list(n, path, |r, n, path| {
                let host = r.string(n, path)?;
                match host_entry_problem(&host, deny_ip_literals, require_canonical, deny_localhost) {
                    None => Some(HostPattern(host)),
                    Some(why) => r.bad(path, why),
                }
            })?;
            if hosts.is_empty() {
                return r.bad(path, "must not be empty");
            }
            Some(hosts)
        });
        let port_allow = self.req(t, p, "port_allow", |r, n, path| {
            let ports = r.list(n, path, Self::u16v)?;
            if ports.is_empty() {
                return r.bad(path, "must not be empty");
            }
            Some(ports)
        });
        let ip_allow = self.dflt(t, p, "ip_allow", Vec::new(), |r, n, path| {
            r.list(n, path, |r, n, path| {
                let s = r.string(n, path)?;
                match s.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => r.bad(path, format!("{s:?} is not an ip address")),
                }
            })
        });
        let cidr_deny = self.dflt(t, p, "cidr_deny", Vec::new(), |r, n, path| {
            r.list(n, path, |r, n, path| {
                let s = r.string(n, path)?;
                match parse_cidr(&s) {
                    Some((addr, prefix)) => Some(Cidr { text: s, addr, prefix }),
                    None => r.bad(path, format!("{s:?} is not address/prefix")),
                }
            })
        });
        let spki_pins = self.dflt(t, p, "spki_pins", Vec::new(), |r, n, path| r.list(n, path, Self::base64));
        let dns_max_ips = self.dflt(t, p, "dns_max_ips", NetworkConstraints::DEFAULT_DNS_MAX_IPS, Self::u16v);
        let max_redirects = self.dflt(t, p, "max_redirects", NetworkConstraints::DEFAULT_MAX_REDIRECTS, Self::u8v);
        let connect = self.dflt(t, p, "connect_timeout_ms", NetworkConstraints::DEFAULT_CONNECT_TIMEOUT_MS, Self::u32v);
        let total = self.dflt(t, p, "total_timeout_ms", NetworkConstraints::DEFAULT_TOTAL_TIMEOUT_MS, Self::u32v);
        let max_response_bytes =
            self.dflt(t, p, "max_response_bytes", NetworkConstraints::DEFAULT_MAX_RESPONSE_BYTES, |r, n, path| {
                let v = r.u64v(n, path)?;
                if v == 0 {
                    return r.bad(path, "must be > 0");
                }
                Some(v)
            });
        for (key, value) in [("connect_timeout_ms", connect), ("total_timeout_ms", total)] {
            if value == Some(0) {
                self.push(Rule::TimeoutZero, &join(p, key), "must be > 0");
            }
        }
        if let (Some(c), Some(t)) = (connect, total) {
            if c > 0 && t > 0 && c > t {
                self.push(
                    Rule::ConnectGtTotal,
                    &join(p, "connect_timeout_ms"),
                    format!("connect_timeout_ms ({c}) exceeds total_timeout_ms ({t})"),
                );
            }
        }
        Some(NetworkConstraints {
            host_allow: host_allow?,
            port_allow: port_allow?,
            ip_allow: ip_allow?,
            cidr_deny: cidr_deny?,
            deny_localhost: deny_localhost?,
            deny_private_ranges: deny_private_ranges?,
            deny_tailnet_ranges: deny_tailnet_ranges?,
            require_sni: require_sni?,
            spki_pins: spki_pins?,
            deny_ip_literals: deny_ip_literals?,
            require_host_canonicalization: require_canonical?,
            dns_max_ips: dns_max_ips?,
            max_redirects: max_redirects?,
            connect_timeout_ms: connect?,
            total_timeout_ms: total?,
            max_response_bytes: max_response_bytes?,
        })
    }

    /// `ai_hints`: unknown keys are ignored.
    fn ai_hints(&mut self, t: &Table, p: &str) -> Option<AiHints> {
        let mut ok = true;
        for (k, v) in t {
            if !matches!(k.as_str(), "when_to_use" | "common_mistakes" | "examples" | "related") {
                ok &= self.ignored(v, &join(p, k), false);
            }
        }
        let when_to_use = self.req(t, p, "when_to_use", Self::string);
        let common_mistakes = self.dflt(t, p, "common_mistakes", Vec::new(), Self::strings);
        let examples = self.dflt(t, p, "examples", Vec::new(), Self::strings);
        let related = self.dflt(t, p, "related", Vec::new(), |r, n, path| r.list(n, path, Self::canonical_id));
        if !ok {
            return None;
        }
        Some(AiHints {
            when_to_use: when_to_use?,
            common_mistakes: common_mistakes?,
            examples: examples?,
            related: related?,
        })
    }

    fn event(&mut self, t: &Table, p: &str) -> Option<Event> {
        self.keys(t, p, &["description", "streaming", "replay", "topic", "requires_ack", "schema"]);
        let description = self.req(t, p, "description", Self::non_blank);
        let streaming = self.dflt(t, p, "streaming", false, Self::boolean);
        let replay = self.dflt(t, p, "replay", false, Self::boolean);
        let requires_ack = self.dflt(t, p, "requires_ack", false, Self::boolean);
        let topic = self.opt(t, p, "topic", Self::non_blank);
        let schema = self.opt(t, p, "schema", Self::json);
        Some(Event {
            description: description?,
            streaming: streaming?,
            replay: replay?,
            requires_ack: requires_ack?,
            topic: topic?,
            schema: schema?,
        })
    }

    /// `[event_caps]`: all three keys are required when the section is present.
    pub(crate) fn event_caps(&mut self, t: &Table, p: &str) -> Option<EventCaps> {
        self.keys(t, p, &["streaming", "replay", "min_buffer_events"]);
        let streaming = self.req(t, p, "streaming", Self::boolean);
        let replay = self.req(t, p, "replay", Self::boolean);
        let min_buffer_events = self.req(t, p, "min_buffer_events", Self::u32v);
        if streaming == Some(true) && min_buffer_events == Some(0) {
            return self.bad(&join(p, "min_buffer_events"), "must be > 0 when streaming");
        }
        Some(EventCaps { streaming: streaming?, replay: replay?, min_buffer_events: min_buffer_events? })
    }

    /// `[timeouts]`.
    pub(crate) fn timeouts(&mut self, t: &Table, p: &str) -> Option<Timeouts> {
        self.keys(t, p, &["request_timeout_ms", "connect_timeout_ms", "wall_clock_timeout_ms"]);
        let d = Timeouts::default();
        let timeout = |r: &mut Self, key: &str, default: u64| {
            let v = r.dflt(t, p, key, default, Self::u64v);
            if v == Some(0) {
                r.push(Rule::TimeoutZero, &join(p, key), "must be > 0");
            }
            v
        };
        let request_timeout_ms = timeout(self, "request_timeout_ms", d.request_timeout_ms);
        let connect_timeout_ms = timeout(self, "connect_timeout_ms", d.connect_timeout_ms);
        let wall_clock_timeout_ms = timeout(self, "wall_clock_timeout_ms", d.wall_clock_timeout_ms);
        Some(Timeouts {
            request_timeout_ms: request_timeout_ms?,
            connect_timeout_ms: connect_timeout_ms?,
            wall_clock_timeout_ms: wall_clock_timeout_ms?,
        })
    }

    /// `[performance_budget]`: each a finite number ≥ 0.
    pub(crate) fn performance_budget(&mut self, t: &Table, p: &str) -> Option<PerformanceBudget> {
        self.keys(t, p, &["cold_start_max_ms", "local_invoke_max_ms", "memory_uss_max_mb", "idle_cpu_max_pct"]);
        let number = |r: &mut Self, n: &Node, path: &str| -> Option<f64> {
            let v = match n {
                Node::Int(Int::Value(v)) => *v as f64,
                Node::Float(Some(f)) => *f,
                Node::Int(_) | Node::Float(None) => return r.bad(path, "number out of range"),
                other => return r.wrong_type(path, "a number", other),
            };
            if v.is_finite() && v >= 0.0 {
                Some(v)
            } else {
                r.bad(path, "must be a finite number >= 0")
            }
        };
        let cold_start_max_ms = self.opt(t, p, "cold_start_max_ms", number);
        let local_invoke_max_ms = self.opt(t, p, "local_invoke_max_ms", number);
        let memory_uss_max_mb = self.opt(t, p, "memory_uss_max_mb", number);
        let idle_cpu_max_pct = self.opt(t, p, "idle_cpu_max_pct", number);
        Some(PerformanceBudget {
            cold_start_max_ms: cold_start_max_ms?,
            local_invoke_max_ms: local_invoke_max_ms?,
            memory_uss_max_mb: memory_uss_max_mb?,
            idle_cpu_max_pct: idle_cpu_max_pct?,
        })
    }

    /// `[sandbox]`.
    pub(crate) fn sandbox(&mut self, t: &Table, p: &str) -> Option<SandboxSection> {
        self.keys(
            t,
            p,
            &[
                "profile",
                "memory_mb",
                "cpu_percent",
                "wall_clock_timeout_ms",
                "fs_readonly_paths",
                "fs_writable_paths",
                "deny_exec",
                "deny_ptrace",
            ],
        );
        let profile = self.req(t, p, "profile", |r, n, path| r.name(n, path, SandboxProfile::from_name));
        let memory_mb = self.req(t, p, "memory_mb", Self::u32v);
        let cpu_percent = self.req(t, p, "cpu_percent", |r, n, path| {
            let v = r.u8v(n, path)?;
            if v == 0 {
                return r.bad(path, "must be > 0");
            }
            Some(v)
        });
        let wall_clock_timeout_ms = self.req(t, p, "wall_clock_timeout_ms", Self::u64v);
        if wall_clock_timeout_ms == Some(0) {
            self.push(Rule::TimeoutZero, &join(p, "wall_clock_timeout_ms"), "must be > 0");
        }
        let path_entry = |r: &mut Self, n: &Node, path: &str| -> Option<SandboxPath> {
            let s = r.string(n, path)?;
            match sandbox_path(&s) {
                Some(SandboxPathKind::Absolute) => Some(SandboxPath::Absolute(s)),
                Some(SandboxPathKind::ConnectorState(sub)) => Some(SandboxPath::ConnectorState(sub.to_owned())),
                None => {
                    r.push(
                        Rule::SandboxPathInvalid,
                        path,
                        format!("{s:?} is neither absolute nor $CONNECTOR_STATE[/normal/components]"),
                    );
                    None
                }
            }
        };
        let fs_readonly_paths =
            self.dflt(t, p, "fs_readonly_paths", Vec::new(), |r, n, path| r.list(n, path, path_entry));
        let fs_writable_paths =
            self.dflt(t, p, "fs_writable_paths", Vec::new(), |r, n, path| r.list(n, path, path_entry));
        let deny_exec = self.req(t, p, "deny_exec", Self::boolean);
        let deny_ptrace = self.req(t, p, "deny_ptrace", Self::boolean);
        Some(SandboxSection {
            profile: profile?,
            memory_mb: memory_mb?,
            cpu_percent: cpu_percent?,
            wall_clock_timeout_ms: wall_clock_timeout_ms?,
            fs_readonly_paths: fs_readonly_paths?,
            fs_writable_paths: fs_writable_paths?,
            deny_exec: deny_exec?,
            deny_ptrace: deny_ptrace?,
        })
    }

    /// `[rate_limits]`: pools and the operation → pools map.
    pub(crate) fn rate_limits(&mut self, t: &Table, p: &str) -> Option<RateLimits> {
        self.keys(t, p, &["pools", "operation_pools"]);
        let mut pool_ids = BTreeSet::new();
        let pools = self.dflt(t, p, "pools", Vec::new(), |r, n, path| {
            let entries = r.each(n, path, |r, n, path| {
                let pool = r.table(n, path)?;
                r.pool(pool, path)
            })?;
            let mut ok = true;
            if entries.len() > MAX_POOLS {
                ok &= r.reject(path, format!("at most {MAX_POOLS} pools"));
            }
            if let Node::Array(items) = n {
                for (i, item) in items.iter().enumerate() {
                    if let Some(Node::Str(id)) = table_entry(item, "id") {
                        if !pool_ids.insert(id.clone()) {
                            ok &= r.reject(&join(&index(path, i), "id"), format!("duplicate pool id {id:?}"));
                        }
                    }
                }
            }
            let pools: Option<Vec<RateLimitPool>> = entries.into_iter().collect();
            if ok {
                pools
            } else {
                None
            }
        });
        let operation_pools = self.dflt(t, p, "operation_pools", BTreeMap::new(), |r, n, path| {
            let map = r.table(n, path)?;
            let mut ok = true;
            if map.len() > MAX_OPERATION_POOL_ENTRIES {
                ok &= r.reject(path, format!("at most {MAX_OPERATION_POOL_ENTRIES} entries"));
            }
            let mut out = BTreeMap::new();
            for (name, ids) in map {
                let entry_path = join(path, name);
                if name.is_empty() {
                    ok &= r.reject(&entry_path, "operation name must not be empty");
                }
                let Some(ids) = r.strings(ids, &entry_path) else {
                    ok = false;
                    continue;
                };
                if ids.is_empty() {
                    ok &= r.reject(&entry_path, "must name at least one pool");
                }
                if ids.len() > MAX_POOLS_PER_ENTRY {
                    ok &= r.reject(&entry_path, format!("at most {MAX_POOLS_PER_ENTRY} pools"));
                }
                let mut seen = BTreeSet::new();
                for (i, id) in ids.iter().enumerate() {
                    let id_path = index(&entry_path, i);
                    if id.is_empty() {
                        ok &= r.reject(&id_path, "pool id must not be empty");
                    } else if !seen.insert(id.as_str()) {
                        ok &= r.reject(&id_path, format!("pool {id:?} named twice"));
                    } else if !pool_ids.contains(id) {
                        ok &= r.reject(&id_path, format!("unknown pool {id:?}"));
                    }
                }
                out.insert(name.clone(), ids);
            }
            ok.then_some(out)
        });
        Some(RateLimits { pools: pools?, operation_pools: operation_pools? })
    }

    fn pool(&mut self, t: &Table, p: &str) -> Option<RateLimitPool> {
        self.keys(t, p, &["id", "description", "requests", "window_ms", "burst", "unit", "enforcement", "scope"]);
        let id = self.req(t, p, "id", |r, n, path| {
            let s = r.string(n, path)?;
            if s.is_empty() {
                return r.bad(path, "must not be empty");
            }
            Some(s)
        });
        let description = self.opt(t, p, "description", Self::string);
        let requests = self.req(t, p, "requests", |r, n, path| {
            let v = r.u32v(n, path)?;
            if !(1..=MAX_POOL_REQUESTS).contains(&v) {
                return r.bad(path, format!("must be in 1..={MAX_POOL_REQUESTS}"));
            }
            Some(v)
        });
        let window_ms = self.req(t, p, "window_ms", |r, n, path| {
            let v = r.u64v(n, path)?;
            if !(1..=MAX_POOL_WINDOW_MS).contains(&v) {
                return r.bad(path, format!("must be in 1..={MAX_POOL_WINDOW_MS}"));
            }
            Some(v)
        });
        let burst = self.opt(t, p, "burst", |r, n, path| {
            let v = r.u32v(n, path)?;
            if !(1..=MAX_POOL_REQUESTS).contains(&v) {
                return r.bad(path, format!("must be in 1..={MAX_POOL_REQUESTS}"));
            }
            Some(v)
        });
        let unit = self.opt(t, p, "unit", |r, n, path| r.name(n, path, PoolUnit::from_name));
        let enforcement = self.opt(t, p, "enforcement", |r, n, path| r.name(n, path, PoolEnforcement::from_name));
        let scope = self.opt(t, p, "scope", |r, n, path| r.name(n, path, PoolScope::from_name));
        Some(RateLimitPool {
            id: id?,
            requests: requests?,
            window_ms: window_ms?,
            burst: burst?,
            unit: unit?,
            enforcement: enforcement?,
            scope: scope?,
            description: description?,
        })
    }

    /// `[signatures]`.
    pub(crate) fn signatures(&mut self, t: &Table, p: &str) -> Option<Signatures> {
        self.keys(
            t,
            p,
            &["publisher_signatures", "publisher_threshold", "registry_signature", "transparency_log_entry"],
        );
        let mut count = 0usize;
        let mut kids_ok = true;
        let publisher_signatures = self.dflt(t, p, "publisher_signatures", Vec::new(), |r, n, path| {
            let entries = r.each(n, path, Self::signature_entry)?;
            count = entries.len();
            let mut kids = BTreeSet::new();
            if let Node::Array(items) = n {
                for (i, item) in items.iter().enumerate() {
                    if let Some(Node::Str(kid)) = table_entry(item, "kid") {
                        if !kids.insert(kid.clone()) {
                            kids_ok &= r.reject(&join(&index(path, i), "kid"), format!("duplicate kid {kid:?}"));
                        }
                    }
                }
            }
            entries.into_iter().collect()
        });
        let threshold_path = join(p, "publisher_threshold");
        let publisher_threshold = self.opt(t, p, "publisher_threshold", |r, n, path| {
            let s = r.string(n, path)?;
            let parsed =
                s.split_once("-of-").and_then(|(k, n)| Some(Threshold { k: k.parse().ok()?, n: n.parse().ok()? }));
            let Some(th) = parsed else {
                return r.bad(path, format!("{s:?} is not k-of-n with u8 parts"));
            };
            if th.k == 0 || th.n == 0 || th.k > th.n {
                return r.bad(path, "needs 0 < k <= n");
            }
            Some(th)
        });
        let mut ok = kids_ok;
        match publisher_threshold {
            Some(None) if count > 0 => {
                ok &= self.reject(&threshold_path, "required when publisher_signatures is non-empty");
            }
            Some(Some(th)) if usize::from(th.k) > count => {
                ok &= self.reject(&threshold_path, format!("needs {} signatures, {count} given", th.k));
            }
            _ => {}
        }
        let registry_signature = self.opt(t, p, "registry_signature", Self::signature_entry);
        let transparency_log_entry = self.opt(t, p, "transparency_log_entry", Self::object_id);
        if !ok {
            return None;
        }
        Some(Signatures {
            publisher_signatures: publisher_signatures?,
            publisher_threshold: publisher_threshold?,
            registry_signature: registry_signature?,
            transparency_log_entry: transparency_log_entry?,
        })
    }

    fn signature_entry(&mut self, n: &Node, p: &str) -> Option<SignatureEntry> {
        let t = self.table(n, p)?;
        self.keys(t, p, &["kid", "sig"]);
        let kid = self.req(t, p, "kid", Self::string);
        let sig = self.req(t, p, "sig", Self::base64);
        Some(SignatureEntry { kid: kid?, sig: sig? })
    }

    /// `[supply_chain]`.
    pub(crate) fn supply_chain(&mut self, t: &Table, p: &str) -> Option<SupplyChain> {
        self.keys(t, p, &["attestations"]);
        let attestations = self.dflt(t, p, "attestations", Vec::new(), |r, n, path| {
            let entries = r.each(n, path, |r, n, path| {
                let a = r.table(n, path)?;
                r.keys(a, path, &["type", "object_id"]);
                let kind = r.req(a, path, "type", |r, n, path| r.name(n, path, AttestationType::from_name));
                let object_id = r.req(a, path, "object_id", Self::object_id);
                Some(Attestation { kind: kind?, object_id: object_id? })
            })?;
            let mut seen = BTreeSet::new();
            let mut ok = true;
            for (i, a) in entries.iter().enumerate() {
                if let Some(a) = a {
                    if !seen.insert(a.object_id) {
                        ok &= r.reject(&join(&index(path, i), "object_id"), "duplicate attestation object id");
                    }
                }
            }
            let list: Option<Vec<Attestation>> = entries.into_iter().collect();
            if ok {
                list
            } else {
                None
            }
        });
        Some(SupplyChain { attestations: attestations? })
    }

    /// `[policy]`.
    pub(crate) fn policy(&mut self, t: &Table, p: &str) -> Option<SupplyChainPolicy> {
        self.keys(
            t,
            p,
            &[
                "require_transparency_log",
                "require_attestation_types",
                "min_slsa_level",
                "trusted_builders",
                "require_attestation_expiry",
            ],
        );
        let require_transparency_log = self.dflt(t, p, "require_transparency_log", false, Self::boolean);
        let require_attestation_types = self.dflt(t, p, "require_attestation_types", Vec::new(), |r, n, path| {
            r.list(n, path, |r, n, path| r.name(n, path, AttestationType::from_name))
        });
        let min_slsa_level = self.opt(t, p, "min_slsa_level", |r, n, path| {
            let v = r.u8v(n, path)?;
            if v > 4 {
                return r.bad(path, "must be in 0..=4");
            }
            Some(v)
        });
        let trusted_builders = self.dflt(t, p, "trusted_builders", Vec::new(), Self::strings);
        let require_attestation_expiry = self.dflt(t, p, "require_attestation_expiry", false, Self::boolean);
        Some(SupplyChainPolicy {
            require_transparency_log: require_transparency_log?,
            require_attestation_types: require_attestation_types?,
            min_slsa_level: min_slsa_level?,
            trusted_builders: trusted_builders?,
            require_attestation_expiry: require_attestation_expiry?,
        })
    }

    /// `[security]`.
    pub(crate) fn security(&mut self, t: &Table, p: &str) -> Option<Security> {
        self.keys(t, p, &["description_scan"]);
        let description_scan = self.dflt(t, p, "description_scan", DescriptionScan::Warn, |r, n, path| {
            r.name(n, path, DescriptionScan::from_name)
        });
        Some(Security { description_scan: description_scan? })
    }

    /// `[sampling]`.
    pub(crate) fn sampling(&mut self, t: &Table, p: &str) -> Option<Sampling> {
        self.keys(
            t,
            p,
            &[
                "enabled",
                "llm_connector",
                "max_rpm",
                "timeout_secs",
                "max_tokens_cap",
                "max_tool_rounds",
                "model_override",
                "allowed_models",
            ],
        );
        let d = Sampling::default();
        let positive = |r: &mut Self, n: &Node, path: &str| -> Option<u32> {
            let v = r.u32v(n, path)?;
            if v == 0 {
                return r.bad(path, "must be > 0");
            }
            Some(v)
        };
        let enabled = self.dflt(t, p, "enabled", d.enabled, Self::boolean);
        let llm_connector = self.opt(t, p, "llm_connector", Self::string);
        let max_rpm = self.dflt(t, p, "max_rpm", d.max_rpm, positive);
        let timeout_secs = self.dflt(t, p, "timeout_secs", d.timeout_secs, positive);
        let max_tokens_cap = self.dflt(t, p, "max_tokens_cap", d.max_tokens_cap, positive);
        let max_tool_rounds = self.dflt(t, p, "max_tool_rounds", d.max_tool_rounds, Self::u32v);
        let model_override = self.opt(t, p, "model_override", Self::string);
        let allowed_models = self.dflt(t, p, "allowed_models", Vec::new(), Self::strings);
        Some(Sampling {
            enabled: enabled?,
            llm_connector: llm_connector?,
            max_rpm: max_rpm?,
            timeout_secs: timeout_secs?,
            max_tokens_cap: max_tokens_cap?,
            max_tool_rounds: max_tool_rounds?,
            model_override: model_override?,
            allowed_models: allowed_models?,
        })
    }
}

/// What `[provides]` yields.
#[derive(Default)]
pub(crate) struct Provides {
    /// Every operation by id, when all are valid.
    pub(crate) operations: Option<BTreeMap<CanonicalId, Operation>>,
    /// Each operation's capability with its path, whatever else is wrong with the operation.
    pub(crate) op_capabilities: Vec<(String, CanonicalId)>,
    /// Every event by id, when all are valid.
    pub(crate) events: Option<BTreeMap<CanonicalId, Event>>,
}

/// `n[key]` when `n` is a table.
fn table_entry<'n>(n: &'n Node, key: &str) -> Option<&'n Node> {
    match n {
        Node::Table(t) => t.get(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse_document;
    use super::*;

    /// Reads `value` (a TOML value) under key `v` with `f`; returns the result and the
    /// violations as (code, path).
    fn read<T>(
        value: &str,
        f: impl FnOnce(&mut Reader, &Node, &str) -> Option<T>,
    ) -> (Option<T>, Vec<(&'static str, String)>) {
        let doc = parse_document(&format!("v = {value}\n")).expect("toml");
        let mut r = Reader::default();
        let out = f(&mut r, &doc["v"], "v");
        (out, r.into_violations().iter().map(|v| (v.code(), v.path().to_owned())).collect())
    }

    #[test]
    fn schemas_convert_like_serde_json() {
        let (v, errs) =
            read("{ a = 18446744073709551615, b = -9223372036854775808, c = nan, d = 1979-05-27 }", Reader::json);
        assert!(errs.is_empty());
        let v = v.expect("json");
        assert_eq!(v["a"], serde_json::json!(18_446_744_073_709_551_615u64));
        assert_eq!(v["b"], serde_json::json!(i64::MIN));
        assert_eq!(v["c"], serde_json::Value::Null);
        assert_eq!(v["d"], serde_json::json!({"$__toml_private_datetime": "1979-05-27"}));
        let (v, errs) = read("[1, 18446744073709551616, 1e400]", Reader::json);
        assert_eq!(v, None);
        assert_eq!(errs, [("bad_value", "v[1]".to_owned()), ("bad_value", "v[2]".to_owned())]);
    }

    #[test]
    fn integers_take_the_range_of_their_rust_type() {
        assert_eq!(read("65535", Reader::u16v).0, Some(u16::MAX));
        assert_eq!(read("65536", Reader::u16v).1, [("bad_value", "v".to_owned())]);
        assert_eq!(read("18446744073709551615", Reader::u64v).0, Some(u64::MAX));
        assert_eq!(read("-1", Reader::u64v).1, [("bad_value", "v".to_owned())]);
        assert_eq!(read("1.0", Reader::u32v).1, [("bad_value", "v".to_owned())]);
        assert_eq!(read("0x10", Reader::u8v).0, Some(16));
    }

    #[test]
    fn rate_limit_forms() {
        for (text, max, per_ms) in [("\"60/min\"", 60, 60_000), ("\"+5/s\"", 5, 1_000), ("\"7/d\"", 7, 86_400_000)] {
            let (rl, errs) = read(text, Reader::rate_limit);
            assert!(errs.is_empty(), "{text}: {errs:?}");
            assert_eq!(rl.map(|r| (r.max, r.per_ms)), Some((max, per_ms)));
        }
        for text in [
            "\"60/minute\"",
            "\"-1/min\"",
            "\"60\"",
            "\"4294967296/s\"",
            "{ max = 0, per_ms = 1 }",
            "{ per_ms = 1 }",
            "[]",
        ] {
            let (rl, errs) = read(text, Reader::rate_limit);
            assert_eq!(rl, None, "{text}");
            assert!(errs.iter().all(|(c, _)| *c == "bad_value") && !errs.is_empty(), "{text}: {errs:?}");
        }
        let (rl, errs) = read("{ max = 1, per_ms = 18446744073709551615, extra = [1.5, \"x\"] }", Reader::rate_limit);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rl.map(|r| r.per_ms), Some(u64::MAX));
    }

    #[test]
    fn ignored_values_must_still_deserialise() {
        let mut r = Reader::default();
        let doc = parse_document("a = 170141183460469231731687303715884105728\nb = 1e999\n").expect("toml");
        assert!(r.ignored(&doc["a"], "a", false));
        assert!(!r.ignored(&doc["a"], "a", true));
        assert!(!r.ignored(&doc["b"], "b", false));
        assert_eq!(r.into_violations().len(), 2);
    }

    #[test]
    fn text_numbers_use_rust_integer_syntax() {
        let mut r = Reader::default();
        assert_eq!(r.version2("+2.007", "v"), Some(Version2 { major: 2, minor: 7 }));
        assert_eq!(r.version2("2.65536", "v"), None);
        assert_eq!(r.version2("2", "v"), None);
        assert_eq!(r.version2(" 2.0", "v"), None);
        assert_eq!(r.into_violations().len(), 3);
    }
}
