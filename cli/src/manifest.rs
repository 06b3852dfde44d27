//! `fcp manifest check` and `fcp manifest fix`: connector manifests judged and repaired by
//! `fcp-policy` (digest §11), reading and writing the file here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use fcp_policy::manifest::{compute_interface, fix_interface_hash, Manifest, ManifestError, Violation};
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
    /// Recompute `manifest.interface_hash` and write it back in place.
    ///
    /// Only the hash string changes; every other byte stays. The file is replaced all or
    /// nothing (a temporary file in the same folder, then a rename). With --check nothing is
    /// written: exits 0 when the hash is up to date, 1 when it is stale. Exits 1 when the
    /// hash cannot be recomputed (the violations are listed), 2 on usage or I/O errors.
    /// Other violations do not stop the fix; they are reported, see `fcp manifest check`.
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
    /// Only report whether the file is up to date; write nothing.
    #[arg(long)]
    check: bool,
    /// Print JSON: {"file", "up_to_date", "written", "interface_hash", "violations"}.
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
        let code = match e {
            ManifestError::NoInterfaceHash => "missing_key",
            _ => "bad_value",
        };
        return vec![ViolationJson { code, path: "manifest.interface_hash".into(), message: e.to_string() }];
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
    /// Whether the file already declared the recomputed hash.
    up_to_date: bool,
    /// Whether the file was rewritten.
    written: bool,
    /// The recomputed hash, when it could be computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    interface_hash: Option<String>,
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
    let mut report = FixReport { file, up_to_date: false, written: false, interface_hash: None, violations: vec![] };
    let text = match read_manifest(&args.file)? {
        Ok(text) => text,
        Err(not_utf8) => {
            report.violations.push(not_utf8);
            return finish_fix(&args, &report, "cannot fix: the file is not a manifest", 1);
        }
    };
    let fixed = match fix_interface_hash(&text) {
        Ok(fixed) => fixed,
        Err(e) => {
            report.violations = violations_of(&e);
            return finish_fix(&args, &report, "cannot recompute interface_hash", 1);
        }
    };
    report.interface_hash = compute_interface(&fixed).ok().map(|i| i.hash.to_string());
    report.up_to_date = fixed == text;
    report.violations = match Manifest::parse(&fixed) {
        Ok(_) => vec![],
        Err(e) => violations_of(&e),
    };
    let hash = report.interface_hash.clone().unwrap_or_default();
    if args.check {
        return if report.up_to_date {
            finish_fix(&args, &report, "interface_hash is up to date", 0)
        } else {
            finish_fix(&args, &report, &format!("interface_hash is stale; the recomputed hash is {hash}"), 1)
        };
    }
    if report.up_to_date {
        return finish_fix(&args, &report, "interface_hash is already up to date", 0);
    }
    // Write through a symlink to the file it names, rather than replacing the link.
    let target = std::fs::canonicalize(&args.file).with_context(|| format!("resolving {}", args.file.display()))?;
    let mode = files::mode_of(&target)?;
    files::write_atomically(&target, fixed.as_bytes(), mode)?;
    report.written = true;
    finish_fix(&args, &report, &format!("interface_hash set to {hash}"), 0)
}

fn finish_fix(args: &FixArgs, report: &FixReport, summary: &str, code: u8) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}: {summary}", report.file);
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
