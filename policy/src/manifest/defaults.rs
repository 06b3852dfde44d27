//! Lintable defaults written out (digest §11.1, §11.3).
//!
//! An optional key that a manifest leaves out takes the default the validator assumes.
//! [`fill_defaults`] writes a chosen set of those defaults into the text, so a reader
//! (and `fcp sandbox explain`) sees the value in force without knowing the defaults.
//! The edit is format-preserving (`toml_edit`): comments, key order and layout stay,
//! and each new key goes at the end of its table.
//!
//! Filling never changes meaning: the value written is the one the reader substitutes
//! for an absent key, so the validation result and the interface hash (whose descriptor
//! already carries the network-constraint defaults, §11.2) stay the same. The function
//! checks that on every call and refuses an edit that would not.
//!
//! The keys filled, where their table exists:
//!
//! - `manifest.protocol_features = []`;
//! - `connector.status = "ready"`;
//! - per operation, `revocation_freshness = "safe"`, and in its `network_constraints`
//!   the ten scalar keys that have defaults (§11.3; `require_sni` is required);
//! - `[timeouts]`, all three keys, the table created when it is absent;
//! - `sandbox.fs_readonly_paths = []` and `sandbox.fs_writable_paths = []`.
//!
//! Other optional keys (zone and capability lists, `migration_supported`, event flags,
//! `[security]`, `[sampling]`, the network-constraint lists …) are left as written: they
//! say nothing about the jail or the egress limits that a reader has to look up.

use toml_edit::{Array, DocumentMut, InlineTable, Item, Key, Table, TableLike, Value};

use super::error::{ManifestError, Rule, Violation};
use super::model::{ConnectorStatus, NetworkConstraints, RevocationFreshness, Timeouts};
use super::tree::join;
use super::validate;

/// A manifest text with its lintable defaults written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixReport {
    /// The text with every default filled in; byte-for-byte the input when nothing was
    /// missing.
    pub text: String,
    /// The key paths written, in the form violations use (e.g.
    /// `provides.operations."http.get".network_constraints.dns_max_ips`), in the order
    /// filled.
    pub filled: Vec<String>,
}

/// Writes out every lintable default the text leaves implicit (see the module docs).
///
/// The text may break rules: filling works on any TOML document and leaves values that
/// are present, even wrong ones, alone. A table that is absent stays absent (except
/// `[timeouts]`), and so does one that is not a table.
///
/// # Errors
///
/// [`ManifestError::Invalid`] with a `toml_syntax` violation when the text is not a TOML
/// document the validator reads; [`ManifestError::DefaultsChangeMeaning`] when the
/// edited text would not validate exactly like the input (nothing is returned then).
pub fn fill_defaults(text: &str) -> Result<FixReport, ManifestError> {
    let before = validate::check(text);
    let syntax: Vec<Violation> = before.violations.iter().filter(|v| v.rule() == Rule::TomlSyntax).cloned().collect();
    if !syntax.is_empty() {
        return Err(ManifestError::Invalid { violations: syntax });
    }
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| ManifestError::Invalid {
        violations: vec![Violation::new(Rule::TomlSyntax, "", e.message().to_lowercase())],
    })?;
    let mut filled = Vec::new();
    fill_document(doc.as_table_mut(), &mut filled);
    if filled.is_empty() {
        return Ok(FixReport { text: text.to_owned(), filled });
    }
    let edited = match_line_endings(text, doc.to_string());
    let after = validate::check(&edited);
    if after.violations != before.violations || after.manifest != before.manifest || after.interface != before.interface
    {
        return Err(ManifestError::DefaultsChangeMeaning);
    }
    Ok(FixReport { text: edited, filled })
}

/// A default value, as the validator's reader substitutes it for an absent key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    Bool(bool),
    Int(u64),
    Str(&'static str),
    EmptyList,
}

impl Fill {
    /// The TOML value; `None` for an integer beyond TOML's i64 (no default is).
    fn value(self) -> Option<Value> {
        Some(match self {
            Fill::Bool(b) => Value::from(b),
            Fill::Int(n) => Value::from(i64::try_from(n).ok()?),
            Fill::Str(s) => Value::from(s),
            Fill::EmptyList => Value::Array(Array::new()),
        })
    }
}

/// `[manifest]`.
const MANIFEST: &[(&str, Fill)] = &[("protocol_features", Fill::EmptyList)];

/// `[connector]`.
fn connector() -> [(&'static str, Fill); 1] {
    [("status", Fill::Str(ConnectorStatus::Ready.as_str()))]
}

/// `[provides.operations."<op-id>"]`.
fn operation() -> [(&'static str, Fill); 1] {
    [("revocation_freshness", Fill::Str(RevocationFreshness::Safe.as_str()))]
}

/// An operation's `network_constraints`: the scalar keys with a default, in the order
/// of digest §11.3.
const NETWORK_CONSTRAINTS: &[(&str, Fill)] = &[
    ("deny_localhost", Fill::Bool(true)),
    ("deny_private_ranges", Fill::Bool(true)),
    ("deny_tailnet_ranges", Fill::Bool(true)),
    ("deny_ip_literals", Fill::Bool(true)),
    ("require_host_canonicalization", Fill::Bool(true)),
    ("dns_max_ips", Fill::Int(NetworkConstraints::DEFAULT_DNS_MAX_IPS as u64)),
    ("max_redirects", Fill::Int(NetworkConstraints::DEFAULT_MAX_REDIRECTS as u64)),
    ("connect_timeout_ms", Fill::Int(NetworkConstraints::DEFAULT_CONNECT_TIMEOUT_MS as u64)),
    ("total_timeout_ms", Fill::Int(NetworkConstraints::DEFAULT_TOTAL_TIMEOUT_MS as u64)),
    ("max_response_bytes", Fill::Int(NetworkConstraints::DEFAULT_MAX_RESPONSE_BYTES)),
];

/// `[timeouts]`.
fn timeouts() -> [(&'static str, Fill); 3] {
    let d = Timeouts::default();
    [
        ("request_timeout_ms", Fill::Int(d.request_timeout_ms)),
        ("connect_timeout_ms", Fill::Int(d.connect_timeout_ms)),
        ("wall_clock_timeout_ms", Fill::Int(d.wall_clock_timeout_ms)),
    ]
}

/// `[sandbox]`.
const SANDBOX: &[(&str, Fill)] = &[("fs_readonly_paths", Fill::EmptyList), ("fs_writable_paths", Fill::EmptyList)];

/// Fills every table of the document, in the order of digest §11.1.
fn fill_document(root: &mut Table, filled: &mut Vec<String>) {
    if let Some(mut t) = root.get_mut("manifest").and_then(TableMut::of) {
        t.fill("manifest", MANIFEST, filled);
    }
    if let Some(mut t) = root.get_mut("connector").and_then(TableMut::of) {
        t.fill("connector", &connector(), filled);
    }
    let provides = root.get_mut("provides").and_then(TableMut::of);
    if let Some(mut ops) = provides.and_then(|p| p.into_item("operations")).and_then(TableMut::of) {
        for (key, item) in ops.iter_mut() {
            let Some(mut op) = TableMut::of(item) else { continue };
            let op_path = join("provides.operations", &key);
            op.fill(&op_path, &operation(), filled);
            if let Some(mut nc) = op.into_item("network_constraints").and_then(TableMut::of) {
                nc.fill(&join(&op_path, "network_constraints"), NETWORK_CONSTRAINTS, filled);
            }
        }
    }
    match root.get_mut("timeouts") {
        Some(item) => {
            if let Some(mut t) = TableMut::of(item) {
                t.fill("timeouts", &timeouts(), filled);
            }
        }
        None => {
            let mut t = Table::new();
            TableMut::Standard(&mut t).fill("timeouts", &timeouts(), filled);
            insert_table_before(root, "timeouts", t, "sandbox");
        }
    }
    if let Some(mut t) = root.get_mut("sandbox").and_then(TableMut::of) {
        t.fill("sandbox", SANDBOX, filled);
    }
}

/// A table the filler may write into: a standard or dotted table, or an inline one.
enum TableMut<'a> {
    Standard(&'a mut Table),
    Inline(&'a mut InlineTable),
}

impl<'a> TableMut<'a> {
    /// The table an item holds: standard, dotted or inline.
    fn of(item: &'a mut Item) -> Option<Self> {
        match item {
            Item::Table(t) => Some(TableMut::Standard(t)),
            Item::Value(Value::InlineTable(t)) => Some(TableMut::Inline(t)),
            Item::None | Item::Value(_) | Item::ArrayOfTables(_) => None,
        }
    }

    /// A standard table that exists only because a sub-table names it (`[a.b]` makes
    /// `a` implicit). The filler goes through it but writes nothing into it: such a
    /// section has no keys, so it lacks its required ones anyway, and a key would make a
    /// header appear.
    fn is_implicit(&self) -> bool {
        matches!(self, TableMut::Standard(t) if t.is_implicit() && !t.is_dotted())
    }

    /// The item under `key`, borrowed for as long as the table is.
    fn into_item(self, key: &str) -> Option<&'a mut Item> {
        match self {
            TableMut::Standard(t) => t.get_mut(key),
            TableMut::Inline(t) => TableLike::get_mut(t, key),
        }
    }

    /// Every entry, with its key.
    fn iter_mut(&mut self) -> Vec<(String, &mut Item)> {
        let entries = match self {
            TableMut::Standard(t) => t.iter_mut(),
            TableMut::Inline(t) => TableLike::iter_mut(*t),
        };
        entries.map(|(k, v)| (k.get().to_owned(), v)).collect()
    }

    /// Writes each key of `defaults` the table lacks, and records its path.
    fn fill(&mut self, path: &str, defaults: &[(&str, Fill)], filled: &mut Vec<String>) {
        if self.is_implicit() {
            return;
        }
        for &(key, fill) in defaults {
            let present = match self {
                TableMut::Standard(t) => t.contains_key(key),
                TableMut::Inline(t) => t.contains_key(key),
            };
            if present {
                continue;
            }
            let Some(value) = fill.value() else { continue };
            match self {
                TableMut::Standard(t) => {
                    t.insert(key, Item::Value(value));
                }
                TableMut::Inline(t) => insert_inline(t, key, value),
            }
            filled.push(join(path, key));
        }
    }
}

/// Adds a new `[key]` table to the root, placed just before the `[before]` header so it
/// sits where digest §11.1 lists it (and ahead of any comment that ends the file); at the
/// end when there is no such header.
fn insert_table_before(root: &mut Table, key: &str, mut table: Table, before: &str) {
    let anchor = match root.get(before) {
        Some(Item::Table(t)) if !t.is_dotted() => t.position(),
        _ => None,
    };
    if let Some(anchor) = anchor {
        shift_positions(root, anchor);
        table.set_position(Some(anchor));
    }
    root.insert(key, Item::Table(table));
}

/// Moves every table header at or after `from` one place later, freeing `from`.
fn shift_positions(table: &mut Table, from: isize) {
    for (_, item) in table.iter_mut() {
        let tables: Vec<&mut Table> = match item {
            Item::Table(t) => vec![t],
            Item::ArrayOfTables(a) => a.iter_mut().collect(),
            Item::None | Item::Value(_) => Vec::new(),
        };
        for t in tables {
            if let Some(p) = t.position().filter(|p| *p >= from) {
                t.set_position(Some(p + 1));
            }
            shift_positions(t, from);
        }
    }
}

/// `edited` with the line endings of `original`: `toml_edit` ends the lines it writes with
/// `\n`, so a text that used `\r\n` throughout gets `\r\n` on those lines too.
fn match_line_endings(original: &str, edited: String) -> String {
    let crlf = original.contains("\r\n") && original.matches('\n').count() == original.matches("\r\n").count();
    if !crlf {
        return edited;
    }
    let mut out = String::with_capacity(edited.len() + edited.len() / 16);
    let mut prev = None;
    for c in edited.chars() {
        if c == '\n' && prev != Some('\r') {
            out.push('\r');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// Appends `key = value` to an inline table laid out like its last entry: the new key
/// takes that entry's leading whitespace (a newline and indent in a multi-line TOML 1.1
/// table) and the whitespace before the closing brace moves behind the new value, so
/// `{ a = 1 }` becomes `{ a = 1, b = 2 }` rather than `{ a = 1 , b = 2 }`.
fn insert_inline(t: &mut InlineTable, key: &str, mut value: Value) {
    let mut new_key = Key::new(key);
    let last = t.iter().last().map(|(k, _)| k.to_owned());
    if let Some((last_key, Item::Value(last_value))) = last.and_then(|k| t.get_key_value_mut(&k)) {
        let dotted = last_value.as_inline_table().is_some_and(InlineTable::is_dotted);
        if !dotted {
            if let Some(prefix) = last_key.leaf_decor().prefix().cloned() {
                new_key.leaf_decor_mut().set_prefix(prefix);
            }
            if let Some(suffix) = last_value.decor().suffix().cloned() {
                value.decor_mut().set_suffix(suffix);
                last_value.decor_mut().set_suffix("");
            }
        }
    }
    t.insert_formatted(&new_key, value);
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::manifest::tests::{fixed, BASE};
    use crate::manifest::{compute_interface, Manifest};

    /// BASE without any of the keys `fill_defaults` writes.
    fn bare() -> String {
        let mut text = BASE.to_owned();
        for line in [
            "protocol_features = [\"fcps.aead.xchacha20poly1305\", \"fcps.aead.xchacha20poly1305\"]\n",
            "status = \"experimental\"\n",
            "dns_max_ips = 0\nmax_redirects = 0\nconnect_timeout_ms = 5000\ntotal_timeout_ms = 5000\n",
            "revocation_freshness = \"critical\"\n",
            "[timeouts]\nrequest_timeout_ms = 1000\n\n",
            "fs_readonly_paths = [\"/usr\", \"/usr/../etc\"]\n",
            "fs_writable_paths = [\"$CONNECTOR_STATE\", \"$CONNECTOR_STATE/cache//x\"]\n",
        ] {
            assert!(text.contains(line), "{line}");
            text = text.replacen(line, "", 1);
        }
        fixed(&text)
    }

    /// `text` filled, checked to mean what `text` means, and checked to be a fixed point.
    fn fill_keeping_meaning(text: &str) -> FixReport {
        let report = fill_defaults(text).expect("fills");
        let (before, after) = (validate::check(text), validate::check(&report.text));
        assert_eq!(after.violations, before.violations);
        assert_eq!(after.manifest, before.manifest);
        assert_eq!(after.interface, before.interface);
        let again = fill_defaults(&report.text).expect("fills again");
        assert_eq!(again, FixReport { text: report.text.clone(), filled: vec![] }, "filling twice is a no-op");
        report
    }

    /// The first line of `original` that `edited` does not keep, in order; `None` when
    /// `edited` keeps them all. A line that ends an inline table may have grown before
    /// its closing brace.
    fn first_lost_line<'a>(original: &'a str, edited: &str) -> Option<&'a str> {
        let kept = |line: &str, e: &str| {
            e == line
                || line.rfind('}').is_some_and(|brace| {
                    let (head, tail) = line.split_at(brace);
                    e.starts_with(head.trim_end()) && e.ends_with(tail)
                })
        };
        let mut edited = edited.lines();
        original.lines().find(|line| !edited.any(|e| kept(line, e)))
    }

    #[test]
    fn fills_every_lintable_default_with_the_value_the_validator_assumes() {
        let text = bare();
        let report = fill_keeping_meaning(&text);
        let mut want = vec!["manifest.protocol_features".to_owned(), "connector.status".to_owned()];
        for (op, written) in [("sample.read", ""), ("sample.write", "dns_max_ips")] {
            let op = format!("provides.operations.\"{op}\"");
            want.push(format!("{op}.revocation_freshness"));
            for (key, _) in NETWORK_CONSTRAINTS.iter().filter(|(k, _)| *k != written) {
                want.push(format!("{op}.network_constraints.{key}"));
            }
        }
        want.extend(
            ["request_timeout_ms", "connect_timeout_ms", "wall_clock_timeout_ms"].map(|k| format!("timeouts.{k}")),
        );
        want.extend(["sandbox.fs_readonly_paths".to_owned(), "sandbox.fs_writable_paths".to_owned()]);
        assert_eq!(report.filled, want);
        // The validator reads the written values as it read their absence.
        let (bare, filled) = (Manifest::parse(&text).expect("valid"), Manifest::parse(&report.text).expect("valid"));
        assert_eq!(filled, bare);
        assert_eq!(filled.timeouts, Timeouts::default());
        assert_eq!(filled.connector.status, ConnectorStatus::Ready);
        assert_eq!(first_lost_line(&text, &report.text), None, "{}", report.text);
        for line in [
            "protocol_features = []",
            "status = \"ready\"",
            "revocation_freshness = \"safe\"",
            "max_response_bytes = 10485760",
            "deny_tailnet_ranges = true",
            "fs_writable_paths = []",
            "\n[timeouts]\nrequest_timeout_ms = 30000\nconnect_timeout_ms = 5000\nwall_clock_timeout_ms = 60000\n\n[sandbox]\n",
            "network_constraints = { host_allow = [\"none.invalid\"], port_allow = [0], dns_max_ips = 0, \
             require_sni = false, deny_localhost = true, deny_private_ranges = true, deny_tailnet_ranges = true, \
             deny_ip_literals = true, require_host_canonicalization = true, max_redirects = 5, \
             connect_timeout_ms = 10000, total_timeout_ms = 60000, max_response_bytes = 10485760 }\n",
        ] {
            assert!(report.text.contains(line), "{line} not in:\n{}", report.text);
        }
    }

    #[test]
    fn a_manifest_that_spells_everything_out_is_left_as_is() {
        let text = fill_defaults(&bare()).expect("fills").text;
        assert_eq!(fill_defaults(&text), Ok(FixReport { text: text.clone(), filled: vec![] }));
        // BASE writes non-default values; those stay.
        let base = fill_keeping_meaning(&fixed(BASE));
        assert!(base.text.contains("status = \"experimental\"") && base.text.contains("request_timeout_ms = 1000"));
        assert!(!base.filled.iter().any(|p| p == "connector.status" || p == "timeouts.request_timeout_ms"));
    }

    #[test]
    fn every_vector_and_connector_manifest_keeps_its_meaning() {
        let shared = match std::env::var_os("FCP_SHARED_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        };
        let manifests = shared.join("vectors/manifest");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors");
        let mut files = Vec::new();
        for dir in [manifests.join("valid"), manifests.join("connectors"), manifests.join("invalid"), workspace] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("entry").path())
                .flat_map(|p| if p.is_dir() { vec![p.join("manifest.toml")] } else { vec![p] })
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            assert!(!found.is_empty(), "no manifests in {}", dir.display());
            found.sort();
            files.extend(found);
        }
        let mut filled_somewhere = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).expect("manifest");
            let report = fill_keeping_meaning(&text);
            let valid = !file.starts_with(manifests.join("invalid"));
            if valid {
                let (before, after) = (Manifest::parse(&text), Manifest::parse(&report.text));
                let before = before.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                assert_eq!(after.as_ref(), Ok(&before), "{}", file.display());
                assert_eq!(after.map(|m| m.interface_hash()), Ok(before.header.interface_hash));
            }
            if let Ok(interface) = compute_interface(&text) {
                assert_eq!(compute_interface(&report.text), Ok(interface), "{}", file.display());
            }
            assert_eq!(first_lost_line(&text, &report.text), None, "{}", file.display());
            filled_somewhere += usize::from(!report.filled.is_empty());
        }
        assert!(filled_somewhere > 0, "no manifest had a default to fill");
    }

    #[test]
    fn present_values_stay_even_when_wrong_and_absent_sections_stay_absent() {
        let wrong = bare().replace("require_sni = true\n", "require_sni = true\ndeny_localhost = \"yes\"\n");
        let report = fill_keeping_meaning(&wrong);
        assert!(report.text.contains("deny_localhost = \"yes\""));
        assert!(!report.filled.iter().any(|p| p.ends_with("\"sample.read\".network_constraints.deny_localhost")));
        let codes = Manifest::parse(&report.text).expect_err("still invalid").codes();
        assert_eq!(codes, ["bad_value"]);

        // No [sandbox]: it stays missing; a [timeouts] that is not a table is left alone.
        let no_sandbox = "timeouts = 5\n[manifest]\nformat = 1\n";
        let report = fill_keeping_meaning(no_sandbox);
        assert_eq!(report.filled, ["manifest.protocol_features"]);
        assert_eq!(report.text, "timeouts = 5\n[manifest]\nformat = 1\nprotocol_features = []\n");
        // A table that only a sub-table names gets no keys.
        let implicit = "[sandbox.x]\ny = 1\n[timeouts]\n";
        assert_eq!(
            fill_keeping_meaning(implicit).filled,
            ["timeouts.request_timeout_ms", "timeouts.connect_timeout_ms", "timeouts.wall_clock_timeout_ms"]
        );
    }

    #[test]
    fn layout_survives_the_edit() {
        // Inline tables, one-line and TOML 1.1 multi-line, grow in their own style;
        // comments, dotted keys, CRLF and a missing final newline survive.
        let text = "# head\n[provides.operations.a] # op\nd = 1\nnetwork_constraints = { host_allow = [], require_sni = true } # nc\n\
                    [provides.operations.b]\nnetwork_constraints = {\n  require_sni = true,\n}\n\
                    [provides.operations.c]\nrevocation_freshness = \"risky\"\nnetwork_constraints.require_sni = true\n\
                    # the jail\n[sandbox]\nprofile = \"strict\"";
        let report = fill_keeping_meaning(text);
        let nc = "deny_localhost = true, deny_private_ranges = true, deny_tailnet_ranges = true, deny_ip_literals = true, \
                  require_host_canonicalization = true, dns_max_ips = 16, max_redirects = 5, connect_timeout_ms = 10000, \
                  total_timeout_ms = 60000, max_response_bytes = 10485760";
        let multi = nc.replace(", ", ",\n  ");
        let dotted =
            nc.replace(", ", "\nnetwork_constraints.").replace("deny_localhost", "network_constraints.deny_localhost");
        let want = format!(
            "# head\n[provides.operations.a] # op\nd = 1\nnetwork_constraints = {{ host_allow = [], require_sni = true, {nc} }} # nc\n\
             revocation_freshness = \"safe\"\n\
             [provides.operations.b]\nnetwork_constraints = {{\n  require_sni = true,\n  {multi},\n}}\nrevocation_freshness = \"safe\"\n\
             [provides.operations.c]\nrevocation_freshness = \"risky\"\nnetwork_constraints.require_sni = true\n{dotted}\n\
             \n[timeouts]\nrequest_timeout_ms = 30000\nconnect_timeout_ms = 5000\nwall_clock_timeout_ms = 60000\n\
             # the jail\n[sandbox]\nprofile = \"strict\"\nfs_readonly_paths = []\nfs_writable_paths = []\n"
        );
        assert_eq!(report.text, want);

        let crlf = fill_keeping_meaning("[sandbox]\r\nprofile = 1\r\n");
        assert_eq!(
            crlf.text,
            "[timeouts]\r\nrequest_timeout_ms = 30000\r\nconnect_timeout_ms = 5000\r\nwall_clock_timeout_ms = 60000\r\n\
             [sandbox]\r\nprofile = 1\r\nfs_readonly_paths = []\r\nfs_writable_paths = []\r\n"
        );
    }

    #[test]
    fn text_that_is_not_toml_is_refused() {
        let err = fill_defaults("[manifest\nformat = 1").expect_err("not toml");
        assert_eq!(err.codes(), ["toml_syntax"]);
        assert_eq!(fill_defaults("a = 1\na = 2\n").map_err(|e| e.codes()), Err(vec!["toml_syntax"]));
    }

    #[test]
    fn every_default_is_written_as_its_type() {
        for (_, fill) in NETWORK_CONSTRAINTS.iter().chain(MANIFEST).chain(SANDBOX).chain(&timeouts()) {
            assert!(fill.value().is_some(), "{fill:?}");
        }
        assert!(Fill::Int(u64::MAX).value().is_none());
        assert_eq!(operation()[0].1, Fill::Str("safe"));
        assert_eq!(connector()[0].1, Fill::Str("ready"));
    }
}
