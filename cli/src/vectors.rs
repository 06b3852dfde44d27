//! `fcp vectors check`: runs every golden-vector case through the real code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

/// Vector commands.
#[derive(Subcommand)]
pub(crate) enum VectorsCommand {
    /// Run every vector file (`*.json`) in the given folders.
    ///
    /// Prints one line per case (PASS, FAIL or SKIP with the reason) and a last line
    /// `N passed, M failed, K skipped`. Exits 0 only when no case failed, 1 when one
    /// did, 2 on usage or I/O errors. Manifest paths inside cases are relative to the
    /// folder of the vector file.
    Check(CheckArgs),
}

/// Arguments of `fcp vectors check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Folders holding vector files, e.g. ../shared/vectors spec/vectors.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Print JSON: {"cases": [...], "passed", "failed", "skipped"}.
    #[arg(long)]
    json: bool,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Serialize)]
struct CaseResult {
    file: String,
    kind: String,
    name: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize)]
struct Report {
    cases: Vec<CaseResult>,
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// Kinds that may be skipped, and why. Empty: every kind is implemented.
const SKIPPABLE: &[(&str, &str)] = &[];

fn run_one(kind: &str, case: &serde_json::Value, base: &Path) -> (&'static str, Option<String>) {
    use fcp_proto::conformance::Outcome;
    let load = |rel: &str| std::fs::read_to_string(base.join(rel)).map_err(|e| format!("{rel}: {e}"));
    let outcome =
        fcp_proto::conformance::run_case(kind, case).or_else(|| fcp_policy::conformance::run_case(kind, case, &load));
    match outcome {
        Some(Outcome::Pass) => ("pass", None),
        Some(Outcome::Fail(why)) => ("fail", Some(why)),
        None => match SKIPPABLE.iter().find(|(k, _)| *k == kind) {
            Some((_, why)) => ("skip", Some((*why).to_owned())),
            None => ("fail", Some(format!("no implementation for vector kind {kind:?}"))),
        },
    }
}

fn vector_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

pub(crate) fn run(cmd: VectorsCommand) -> anyhow::Result<ExitCode> {
    let VectorsCommand::Check(args) = cmd;
    let mut report = Report { cases: Vec::new(), passed: 0, failed: 0, skipped: 0 };
    for dir in &args.dirs {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        for path in vector_files(dir)? {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let doc: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            let Some(kind) = doc.get("kind").and_then(|k| k.as_str()) else {
                bail!("{}: no \"kind\" field", path.display());
            };
            let Some(cases) = doc.get("cases").and_then(|c| c.as_array()) else {
                bail!("{}: no \"cases\" array", path.display());
            };
            for case in cases {
                let name = case.get("name").and_then(|n| n.as_str()).unwrap_or("(unnamed)").to_owned();
                let (result, detail) = run_one(kind, case, dir);
                match result {
                    "pass" => report.passed += 1,
                    "skip" => report.skipped += 1,
                    _ => report.failed += 1,
                }
                if !(args.json || args.quiet && result == "pass") {
                    let tag = result.to_uppercase();
                    match &detail {
                        Some(d) => println!("{tag} {kind}/{name}: {d}"),
                        None => println!("{tag} {kind}/{name}"),
                    }
                }
                report.cases.push(CaseResult {
                    file: path.display().to_string(),
                    kind: kind.to_owned(),
                    name,
                    result,
                    detail,
                });
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} passed, {} failed, {} skipped", report.passed, report.failed, report.skipped);
    }
    Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
