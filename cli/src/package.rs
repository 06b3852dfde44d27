//! `fcp package` builds and signs a connector package; `fcp package inspect` shows one and
//! checks that it is intact. Format and verification live in `fcp_proto::package`; the
//! manifest is judged by `fcp-policy` before anything is signed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fcp_policy::manifest::Manifest;
use fcp_proto::package::{host_target, package_digest, Arch, Package, Platform, MAX_PACKAGE_BYTES};
use serde::Serialize;

use crate::manifest::{read_manifest, violation_line, violations_of, ViolationJson};
use crate::{files, keyfile};

/// Permission bits of a written package: it holds nothing secret.
const PACKAGE_MODE: u32 = 0o644;
/// Room the package map needs beyond the manifest and the binary.
const PACKAGE_OVERHEAD: u64 = 4096;

/// Arguments of `fcp package`.
#[derive(Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "The manifest is validated first (as `fcp manifest check`) and an invalid one is \
                  refused. The package is signed by the publisher key and written all or nothing. \
                  Exits 0 when written, 1 when the manifest is invalid (violations listed as \
                  `CODE PATH: MESSAGE`), 2 on usage or I/O errors, including a key file more \
                  open than 0600."
)]
pub(crate) struct PackageCommand {
    #[command(subcommand)]
    command: Option<PackageSubcommand>,
    #[command(flatten)]
    build: BuildArgs,
}

/// `fcp package` subcommands.
#[derive(Subcommand)]
enum PackageSubcommand {
    /// Show a package and check that it is intact.
    ///
    /// Prints the format, the connector id and version from the manifest, the binary's
    /// size and BLAKE3, platform, arch and publisher kid, and whether the signature
    /// verifies under the publisher key the package carries. That proves the package is
    /// intact, not that its publisher is trusted: trusted publishers are owner policy,
    /// checked by `fcp install`. Exits 0 when the package decodes, its signature and binary
    /// hash verify and its manifest is valid; 1 when any of these fails; 2 on usage or I/O
    /// errors.
    Inspect(InspectArgs),
}

/// Build a signed connector package from a manifest and a connector binary.
#[derive(Args)]
struct BuildArgs {
    /// The connector manifest (TOML). It must pass `fcp manifest check`.
    #[arg(long, value_name = "M", required = true)]
    manifest: Option<PathBuf>,
    /// The connector binary.
    #[arg(long, value_name = "B", required = true)]
    binary: Option<PathBuf>,
    /// The publisher key file (from `fcp keygen`; mode 0600).
    #[arg(long, value_name = "K", required = true)]
    key: Option<PathBuf>,
    /// Where to write the package (replaced all or nothing).
    #[arg(long, value_name = "PKG", required = true)]
    out: Option<PathBuf>,
    /// The platform the binary runs on [default: this host's].
    #[arg(long, value_name = "P", value_parser = ["linux", "macos", "windows"])]
    platform: Option<String>,
    /// The architecture the binary runs on [default: this host's].
    #[arg(long, value_name = "A", value_parser = ["x86_64", "aarch64"])]
    arch: Option<String>,
    /// Print JSON: {"out", "package_blake3", "size", "publisher_kid", "connector_id",
    /// "connector_version", "platform", "arch", "binary_blake3", "binary_size"}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fcp package inspect`.
#[derive(Args)]
struct InspectArgs {
    /// The package file.
    package: PathBuf,
    /// Print JSON: {"file", "ok", "package_blake3", "size", "format", "connector_id",
    /// "connector_version", "platform", "arch", "binary_size", "binary_blake3",
    /// "publisher_kid", "publisher_key", "created_at", "signature": {"valid", "code",
    /// "message"}, "manifest": {"valid", "violations"}}; a package that does not decode
    /// gives {"file", "ok": false, "error": {"code", "message"}}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: PackageCommand) -> anyhow::Result<ExitCode> {
    match cmd.command {
        Some(PackageSubcommand::Inspect(args)) => inspect(&args),
        None => build(cmd.build),
    }
}

#[derive(Serialize)]
struct BuildReport {
    out: String,
    package_blake3: String,
    size: usize,
    publisher_kid: String,
    connector_id: String,
    connector_version: String,
    platform: &'static str,
    arch: &'static str,
    binary_blake3: String,
    binary_size: usize,
}

#[derive(Serialize)]
struct Refusal {
    refused: &'static str,
    violations: Vec<ViolationJson>,
}

fn target(platform: Option<&str>, arch: Option<&str>) -> anyhow::Result<(Platform, Arch)> {
    let host = host_target(std::env::consts::OS, std::env::consts::ARCH);
    let platform = match platform {
        Some(p) => Platform::parse(p).with_context(|| format!("unknown platform {p:?}"))?,
        None => host.as_ref().map(|h| h.0).map_err(|e| anyhow::anyhow!("{e}; pass --platform"))?,
    };
    let arch = match arch {
        Some(a) => Arch::parse(a).with_context(|| format!("unknown architecture {a:?}"))?,
        None => host.as_ref().map(|h| h.1).map_err(|e| anyhow::anyhow!("{e}; pass --arch"))?,
    };
    Ok((platform, arch))
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (Some(manifest_path), Some(binary_path), Some(key_path), Some(out)) =
        (&args.manifest, &args.binary, &args.key, &args.out)
    else {
        bail!("fcp package needs --manifest, --binary, --key and --out (or the inspect subcommand)");
    };
    let (platform, arch) = target(args.platform.as_deref(), args.arch.as_deref())?;

    // Judge the manifest before touching the key: an invalid one is never signed.
    let manifest = match read_manifest(manifest_path)? {
        Ok(text) => match Manifest::parse(&text) {
            Ok(m) => Ok((text, m)),
            Err(e) => Err(violations_of(&e)),
        },
        Err(not_utf8) => Err(vec![not_utf8]),
    };
    let (text, parsed) = match manifest {
        Ok(ok) => ok,
        Err(violations) => {
            let refused = "the manifest is invalid; nothing was written";
            if args.json {
                println!("{}", serde_json::to_string_pretty(&Refusal { refused, violations })?);
            } else {
                for v in &violations {
                    println!("{}", violation_line(v));
                }
                eprintln!("fcp: {}: {refused}", manifest_path.display());
            }
            return Ok(ExitCode::from(1));
        }
    };

    let max_binary = (MAX_PACKAGE_BYTES as u64).saturating_sub(text.len() as u64 + PACKAGE_OVERHEAD);
    let binary = files::read_bounded(binary_path, max_binary)?;
    let key = keyfile::read_publisher_key(key_path)?;
    let created_at = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();

    let package = Package::build(&key, &text, &binary, platform, arch, created_at);
    let bytes = package.to_bytes();
    if bytes.len() > MAX_PACKAGE_BYTES {
        bail!("the package would be {} bytes, over the limit of {MAX_PACKAGE_BYTES}", bytes.len());
    }
    // Read back what we are about to write, as an installer will.
    Package::from_bytes(&bytes)
        .and_then(|p| p.verify(&[key.public()]).map(|_| ()))
        .context("the package just built does not verify")?;
    files::write_atomically(out, &bytes, PACKAGE_MODE)?;

    let report = BuildReport {
        out: out.display().to_string(),
        package_blake3: hex::encode(package_digest(&bytes)),
        size: bytes.len(),
        publisher_kid: key.kid().to_string(),
        connector_id: parsed.connector.id.as_str().to_owned(),
        connector_version: parsed.connector.version.to_string(),
        platform: platform.as_str(),
        arch: arch.as_str(),
        binary_blake3: hex::encode(package.binary_hash()),
        binary_size: binary.len(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} bytes): {} {} for {}/{}",
            report.out, report.size, report.connector_id, report.connector_version, report.platform, report.arch
        );
        println!("package blake3  {}", report.package_blake3);
        println!("publisher kid   {}", report.publisher_kid);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Problem {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct SignatureStatus {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
struct ManifestStatus {
    valid: bool,
    violations: Vec<ViolationJson>,
}

#[derive(Serialize)]
struct InspectReport {
    file: String,
    ok: bool,
    package_blake3: String,
    size: usize,
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connector_version: Option<String>,
    platform: &'static str,
    arch: &'static str,
    binary_size: usize,
    binary_blake3: String,
    publisher_kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    publisher_key: Option<String>,
    created_at: u64,
    signature: SignatureStatus,
    manifest: ManifestStatus,
}

#[derive(Serialize)]
struct InspectRefusal {
    file: String,
    ok: bool,
    package_blake3: String,
    error: Problem,
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = files::read_bounded(&args.package, MAX_PACKAGE_BYTES as u64)?;
    let file = args.package.display().to_string();
    let package_blake3 = hex::encode(package_digest(&bytes));
    let package = match Package::from_bytes(&bytes) {
        Ok(p) => p,
        Err(e) => {
            let error = Problem { code: e.code(), message: e.to_string() };
            if args.json {
                let refusal = InspectRefusal { file, ok: false, package_blake3, error };
                println!("{}", serde_json::to_string_pretty(&refusal)?);
            } else {
                println!("{file}: refused: {} {}", error.code, error.message);
            }
            return Ok(ExitCode::from(1));
        }
    };
    let report = describe(&package, file, package_blake3, bytes.len());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_inspect(&report, &args.package);
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn describe(package: &Package, file: String, package_blake3: String, size: usize) -> InspectReport {
    let embedded = package.publisher_key();
    let verified = embedded.as_ref().map_err(Clone::clone).and_then(|k| package.verify(&[*k]).map(|_| ()));
    let signature = match verified {
        Ok(()) => SignatureStatus { valid: true, code: None, message: None },
        Err(e) => SignatureStatus { valid: false, code: Some(e.code()), message: Some(e.to_string()) },
    };
    let (connector, manifest) = match Manifest::parse(package.manifest()) {
        Ok(m) => (
            Some((m.connector.id.as_str().to_owned(), m.connector.version.to_string())),
            ManifestStatus { valid: true, violations: vec![] },
        ),
        Err(e) => (None, ManifestStatus { valid: false, violations: violations_of(&e) }),
    };
    let (connector_id, connector_version) = connector.unzip();
    InspectReport {
        file,
        ok: signature.valid && manifest.valid,
        package_blake3,
        size,
        format: package.format().to_owned(),
        connector_id,
        connector_version,
        platform: package.platform().as_str(),
        arch: package.arch().as_str(),
        binary_size: package.binary().len(),
        binary_blake3: hex::encode(package.binary_hash()),
        publisher_kid: package.publisher_kid().to_string(),
        publisher_key: embedded.ok().map(|k| hex::encode(k.to_bytes())),
        created_at: package.created_at(),
        signature,
        manifest,
    }
}

fn print_inspect(r: &InspectReport, path: &Path) {
    println!("package         {}", path.display());
    println!("package blake3  {} ({} bytes)", r.package_blake3, r.size);
    println!("format          {}", r.format);
    match (&r.connector_id, &r.connector_version) {
        (Some(id), Some(version)) => println!("connector       {id} {version}"),
        _ => println!("connector       (manifest invalid)"),
    }
    println!("platform        {}/{}", r.platform, r.arch);
    println!("binary          {} bytes, blake3 {}", r.binary_size, r.binary_blake3);
    println!("publisher kid   {}", r.publisher_kid);
    if let Some(key) = &r.publisher_key {
        println!("publisher key   {key}");
    }
    println!("created at      {} (unix seconds)", r.created_at);
    match (&r.signature.code, &r.signature.message) {
        (Some(code), Some(message)) => println!("signature       REFUSED {code}: {message}"),
        _ => println!(
            "signature       valid under the publisher key it carries (intact; whether to trust this \
             publisher is owner policy)"
        ),
    }
    if r.manifest.valid {
        println!("manifest        valid");
    } else {
        println!("manifest        INVALID, {} violation(s):", r.manifest.violations.len());
        for v in &r.manifest.violations {
            println!("  {}", violation_line(v));
        }
    }
}
