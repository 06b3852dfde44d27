//! `fcp manifest check` and `fcp manifest fix`: connector manifests judged and repaired by
//! `fcp-policy` (digest §11), reading and writing the file here. `fix` writes out the
//! lintable defaults (`fill_defaults`) and then recomputes the interface hash.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use fcp_policy::manifest::{compute_interface, fill_defaults, fix_interface_hash, Manifest, ManifestError, Violation};
use fcp_proto::package::MAX_MANIFEST_BYTES;
use serde::Serialize;

use crate::files;

/// Manifest commands.
#[derive(Subcommand)]
pub(crate) enum ManifestCommand {
    /// Validate a connector manifest against every rule (digest §11).
    ///
    /// Exits 0 when it is valid; 1 when it is not, printing every violation on its own
    /// line as `CODE PATH: MESSAGE` (PATH is the TOML key path, `(document)` for the whole
    /// file); 2 on usage or I/O errors.
    Check(CheckArgs),
    /// Write out the defaults the validator assumes, recompute `manifest.interface_hash`,
    /// and save the file in place.
    ///
    /// Where a key is absent, its default is written out so the file shows the value in
    /// force: each operation's network_constraints limits (deny_*, dns_max_ips,
    /// max_redirects, the timeouts, max_response_bytes) and revocation_freshness,
    /// [timeouts], the sandbox path lists, connector.status and
    /// manifest.protocol_features. That never changes what the manifest means (its
    /// validation result and interface hash stay the same). Comments and layout stay; each
    /// filled key path is listed. The file is replaced all or nothing (a temporary file in
    /// the same folder, then a rename). With --check nothing is written: exits 0 when the
    /// file is up to date, 1 when the hash is stale or a default is missing. Exits 1 when
    /// the file is not TOML or the hash cannot be recomputed (the violations are listed), 2
    /// on usage or I/O errors. Other violations do not stop the fix; they are reported, see
    /// `fcp manifest check`.
    Fix(FixArgs),
}

/// Arguments of `fcp manifest check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The manifest (TOML).
    file: PathBuf,
    /// Print JSON: {"file", "valid", "connector_id", "connector_version", "interface_hash",
    /// "violations": [{"code", "path", "message"}]}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fcp manifest fix`.
#[derive(Args)]
pub(crate) struct FixArgs {
    /// The manifest (TOML), rewritten in place.
    file: PathBuf,
    /// Only report whether the file is up to date (hash and defaults); write nothing.
    #[arg(long)]
    check: bool,
    /// Print JSON: {"file", "up_to_date", "written", "interface_hash",
    /// "interface_hash_stale", "filled": [key paths], "violations"}.
    #[arg(long)]
    json: bool,
}

/// One violation as printed.
#[derive(Serialize)]
pub(crate) struct ViolationJson {
    code: &'static str,
    path: String,
    message: String,
}

impl From<&Violation> for ViolationJson {
    fn from(v: &Violation) -> Self {
        ViolationJson { code: v.code(), path: v.path().to_owned(), message: v.message().to_owned() }
    }
}

/// The violations of a refused manifest, in the form every command prints them.
pub(crate) fn violations_of(e: &ManifestError) -> Vec<ViolationJson> {
    if e.violations().is_empty() {
        // Not a rule violation (e.g. no interface_hash string): report the error itself.
        let (code, path) = match e {
            ManifestError::NoInterfaceHash => ("missing_key", "manifest.interface_hash"),
            ManifestError::DefaultsChangeMeaning => ("bad_value", ""),
            _ => ("bad_value", "manifest.interface_hash"),
        };
        return vec![ViolationJson { code, path: path.into(), message: e.to_string() }];
    }
    e.violations().iter().map(ViolationJson::from).collect()
}

/// `CODE PATH: MESSAGE`.
pub(crate) fn violation_line(v: &ViolationJson) -> String {
    let path = if v.path.is_empty() { "(document)" } else { v.path.as_str() };
    format!("{} {path}: {}", v.code, v.message)
}

/// A manifest file's text, or the violation that it is not UTF-8 (TOML is UTF-8).
pub(crate) fn read_manifest(path: &Path) -> anyhow::Result<Result<String, ViolationJson>> {
    let bytes = files::read_bounded(path, MAX_MANIFEST_BYTES as u64)?;
    Ok(String::from_utf8(bytes).map_err(|e| ViolationJson {
        code: "toml_syntax",
        path: String::new(),
        message: format!("not utf-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    }))
}

#[derive(Serialize)]
struct CheckReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface_hash: Option<String>,
    violations: Vec<ViolationJson>,
}

#[derive(Serialize)]
struct FixReport {
    file: String,
    /// Whether the file already declared the recomputed hash and every default.
    up_to_date: bool,
    /// Whether the file was rewritten.
    written: bool,
    /// The recomputed hash, when it could be computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    interface_hash: Option<String>,
    /// Whether the declared hash differed from the recomputed one.
    interface_hash_stale: bool,
    /// The key paths of the defaults written out (with --check: that would be).
    filled: Vec<String>,
    /// Violations after the fix (or those that stopped it).
    violations: Vec<ViolationJson>,
}

pub(crate) fn run(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManifestCommand::Check(args) => check(args),
        ManifestCommand::Fix(args) => fix(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let mut report = CheckReport {
        file,
        valid: false,
        connector_id: None,
        connector_version: None,
        interface_hash: None,
        violations: vec![],
    };
    match read_manifest(&args.file)? {
        Err(not_utf8) => report.violations.push(not_utf8),
        Ok(text) => match Manifest::parse(&text) {
            Ok(m) => {
                report.valid = true;
                report.connector_id = Some(m.connector.id.as_str().to_owned());
                report.connector_version = Some(m.connector.version.to_string());
                report.interface_hash = Some(m.header.interface_hash.to_string());
            }
            Err(e) => report.violations = violations_of(&e),
        },
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.valid {
        println!(
            "{}: valid ({} {})",
            report.file,
            report.connector_id.as_deref().unwrap_or_default(),
            report.connector_version.as_deref().unwrap_or_default()
        );
    } else {
        for v in &report.violations {
            println!("{}", violation_line(v));
        }
        eprintln!("fcp: {}: invalid manifest, {} violation(s)", report.file, report.violations.len());
    }
    Ok(if report.valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn fix(args: FixArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let mut report = FixReport {
        file,
        up_to_date: false,
        written: false,
        interface_hash: None,
        interface_hash_stale: false,
        filled: vec![],
        violations: vec![],
    };
    let text = match read_manifest(&args.file)? {
        Ok(text) => text,
        Err(not_utf8) => {
            report.violations.push(not_utf8);
            return finish_fix(&args, &report, "cannot fix: the file is not a manifest", 1);
        }
    };
    // Defaults first: they never change the hash, so the recomputed hash is the same either way.
    let filled = match fill_defaults(&text) {
        Ok(filled) => filled,
        Err(e) => {
            report.violations = violations_of(&e);
            return finish_fix(&args, &report, "cannot fill defaults", 1);
        }
    };
    let fixed = match fix_interface_hash(&filled.text) {
        Ok(fixed) => fixed,
        Err(e) => {
            report.violations = violations_of(&e);
            return finish_fix(&args, &report, "cannot recompute interface_hash", 1);
        }
    };
    report.interface_hash = compute_interface(&fixed).ok().map(|i| i.hash.to_string());
    report.interface_hash_stale = fixed != filled.text;
    report.filled = filled.filled;
    report.up_to_date = fixed == text;
    report.violations = match Manifest::parse(&fixed) {
        Ok(_) => vec![],
        Err(e) => violations_of(&e),
    };
    let hash = report.interface_hash.clone().unwrap_or_default();
    let defaults = report.filled.len();
    if args.check {
        if report.up_to_date {
            return finish_fix(&args, &report, "interface_hash and defaults are up to date", 0);
        }
        let mut changes = Vec::new();
        if report.interface_hash_stale {
            changes.push(format!("interface_hash is stale; the recomputed hash is {hash}"));
        }
        if defaults > 0 {
            changes.push(format!("{defaults} default(s) to write out"));
        }
        return finish_fix(&args, &report, &changes.join("; "), 1);
    }
    if report.up_to_date {
        return finish_fix(&args, &report, "interface_hash and defaults are already up to date", 0);
    }
    // Write through a symlink to the file it names, rather than replacing the link.
    let target = std::fs::canonicalize(&args.file).with_context(|| format!("resolving {}", args.file.display()))?;
    let mode = files::mode_of(&target)?;
    files::write_atomically(&target, fixed.as_bytes(), mode)?;
    report.written = true;
    let mut changes = Vec::new();
    if report.interface_hash_stale {
        changes.push(format!("interface_hash set to {hash}"));
    }
    if defaults > 0 {
        changes.push(format!("{defaults} default(s) written out"));
    }
    finish_fix(&args, &report, &changes.join("; "), 0)
}

fn finish_fix(args: &FixArgs, report: &FixReport, summary: &str, code: u8) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}: {summary}", report.file);
        let verb = if report.written { "filled" } else { "would fill" };
        for path in &report.filled {
            println!("{verb} {path}");
        }
        for v in &report.violations {
            println!("{}", violation_line(v));
        }
        if code == 0 && !report.violations.is_empty() {
            eprintln!(
                "fcp: {}: {} other violation(s) remain; see fcp manifest check",
                report.file,
                report.violations.len()
            );
        }
    }
    Ok(ExitCode::from(code))
}
