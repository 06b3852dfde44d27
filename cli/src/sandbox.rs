//! `fcp sandbox run` and `fcp sandbox explain`: a program under the jail a manifest's
//! connector gets from fcpd, the way one would use bwrap or nsjail, and the plan of that
//! jail in words or JSON.
//!
//! The spec is built as fcpd builds it (`SpawnSpec::from_manifest`, `CONNECTOR_STATE`
//! and `FCP_ZONE` in an otherwise empty environment, the state dir as working dir) and
//! spawned by the same backend, `LinuxJail`, with the same stdio: pipes, which this
//! command pumps to and from its own stdin, stdout and stderr.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use fcp_policy::jail::{Arch, Binary, JailInputs};
use fcp_policy::manifest::{Manifest, SandboxProfile};
use fcp_proto::package::MAX_MANIFEST_BYTES;
use fcp_sandbox::{Degradation, Layer, Layers, SpawnSpec};
use serde_json::json;

use crate::files;

/// Exit status when the jail could not be set up (the program never ran).
const JAIL_FAILED: u8 = 125;

/// Sandbox commands.
#[derive(Subcommand)]
pub(crate) enum SandboxCommand {
    /// Run PROGRAM under exactly the jail the manifest's connector gets from fcpd.
    ///
    /// PROGRAM's stdin, stdout and stderr are passed through (as pipes, like fcpd's).
    /// The exit status is PROGRAM's, or 128 + the signal that killed it; 125 when the
    /// jail could not be set up (the reason is printed, and PROGRAM never ran). When a
    /// limit or the seccomp filter ended PROGRAM, a line `fcp: sandbox: LIMIT: …` says
    /// which on stderr. Needs root (or an unprivileged user namespace) and Linux.
    Run(RunArgs),
    /// Print the effective jail of a manifest's connector: namespaces, mounts, Landlock
    /// rules, seccomp lists, limits, and what this machine can put in force.
    Explain(ExplainArgs),
}

/// Arguments of `fcp sandbox run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The connector manifest (TOML) whose [sandbox] section is the jail.
    #[arg(long)]
    manifest: PathBuf,
    /// The state dir ($CONNECTOR_STATE). Default: a new private temporary directory,
    /// removed afterwards.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Override the manifest's sandbox.profile.
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Let the jail start without these layers (comma-separated names as in `fcp
    /// doctor`, or `all`); each missing layer is reported. Default: refuse.
    #[arg(long, value_delimiter = ',')]
    allow_degraded: Vec<String>,
    /// Write a JSON summary here when PROGRAM ends: {"exit_code", "signal", "breach":
    /// {"limit", "syscall"} | null, "backend", "layers", "missing", "counters"}.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The program (a path, or a name looked up in PATH) and its arguments.
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

/// Arguments of `fcp sandbox explain`.
#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// The connector manifest (TOML).
    #[arg(long)]
    manifest: PathBuf,
    /// The connector binary, so its loader and libraries are listed. Default: a
    /// placeholder path and no runtime files.
    #[arg(long)]
    program: Option<PathBuf>,
    /// The state dir the plan is shown for.
    #[arg(long, default_value = "/var/lib/fcp/instances/CONNECTOR")]
    state_dir: PathBuf,
    /// Override the manifest's sandbox.profile.
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Print JSON: {"plan": the serialized JailPlan, "machine": {…}}.
    #[arg(long)]
    json: bool,
}

/// `sandbox.profile` values.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Profile {
    Strict,
    StrictPlus,
    Moderate,
    Permissive,
}

impl From<Profile> for SandboxProfile {
    fn from(p: Profile) -> SandboxProfile {
        match p {
            Profile::Strict => SandboxProfile::Strict,
            Profile::StrictPlus => SandboxProfile::StrictPlus,
            Profile::Moderate => SandboxProfile::Moderate,
            Profile::Permissive => SandboxProfile::Permissive,
        }
    }
}

pub(crate) fn run(cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SandboxCommand::Run(args) => run_program(args),
        SandboxCommand::Explain(args) => explain(args),
    }
}

fn load_manifest(path: &Path, profile: Option<Profile>) -> anyhow::Result<Manifest> {
    let bytes = files::read_bounded(path, MAX_MANIFEST_BYTES as u64)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let mut manifest = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => bail!("{} is not a valid manifest: {e} (see `fcp manifest check`)", path.display()),
    };
    if let Some(p) = profile {
        manifest.sandbox.profile = p.into();
    }
    Ok(manifest)
}

/// `name` as an absolute path: itself when it has a slash, else the first match in PATH.
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let candidate = if name.contains('/') {
        PathBuf::from(name)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .with_context(|| format!("{name} is not in PATH"))?
    };
    fs::canonicalize(&candidate).with_context(|| format!("program {}", candidate.display()))
}

fn parse_layers(names: &[String]) -> anyhow::Result<Layers> {
    let mut layers = Layers::EMPTY;
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name == "all" {
            return Ok(Layers::ALL);
        }
        let Some(layer) = Layer::ALL.iter().find(|l| l.as_str() == name) else {
            let known: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
            bail!("--allow-degraded: unknown layer {name:?} (known: {}, all)", known.join(", "));
        };
        layers = layers.with(*layer);
    }
    Ok(layers)
}

fn spec_for(manifest: &Manifest, program: &Path, state_dir: &Path, args: &[String]) -> anyhow::Result<SpawnSpec> {
    let spec = SpawnSpec::from_manifest(manifest, program, state_dir)
        .and_then(|s| s.env("FCP_ZONE", manifest.zones.home.as_str()))
        .context("the jail's spawn spec")?;
    Ok(args.iter().fold(spec, |s, a| s.arg(a)))
}

#[cfg(target_os = "linux")]
fn run_program(args: RunArgs) -> anyhow::Result<ExitCode> {
    use fcp_sandbox::{LinuxJail, Sandbox};
    use std::os::unix::process::ExitStatusExt;

    let manifest = load_manifest(&args.manifest, args.profile)?;
    let allowed = parse_layers(&args.allow_degraded)?;
    let (program, rest) = args.command.split_first().context("no program given")?;
    let program = find_program(program)?;
    let (_temporary, state_dir) = match &args.state_dir {
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("state dir {}", dir.display()))?;
            (None, fs::canonicalize(dir).with_context(|| format!("state dir {}", dir.display()))?)
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("fcp-sandbox-").tempdir().context("a temporary state dir")?;
            let path = fs::canonicalize(tmp.path()).context("the temporary state dir")?;
            (Some(tmp), path)
        }
    };
    let degradation = if allowed.is_empty() { Degradation::Refuse } else { Degradation::AllowMissing(allowed) };
    let spec = spec_for(&manifest, &program, &state_dir, rest)?.with_degradation(degradation);

    let jail = LinuxJail::new().context("the Linux jail")?;
    let mut jailed = match jail.spawn(&spec) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("fcp: sandbox: the jail could not be set up, {} did not run: {e}", program.display());
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            return Ok(ExitCode::from(JAIL_FAILED));
        }
    };
    for layer in jailed.missing_layers().iter() {
        eprintln!("fcp: sandbox: warning: layer {layer} is not in force (allowed by --allow-degraded)");
    }

    // stdin is pumped by a thread that is never joined: it may block on a terminal
    // after PROGRAM is gone.
    if let Some(mut to_child) = jailed.take_stdin() {
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut to_child);
        });
    }
    let pump = |from: Option<Box<dyn Read + Send>>, to: fn() -> Box<dyn Write>| {
        from.map(|mut from| {
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let mut out = to();
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
    };
    let stdout = pump(jailed.take_stdout().map(|s| Box::new(s) as Box<dyn Read + Send>), || Box::new(io::stdout()));
    let stderr = pump(jailed.take_stderr().map(|s| Box::new(s) as Box<dyn Read + Send>), || Box::new(io::stderr()));

    jailed.wait_timeout().context("waiting for the program")?;
    let status = jailed.wait().context("waiting for the program")?;
    // Everything in the jail is gone with its pid 1, so the pipes are at EOF.
    for pump in [stdout, stderr].into_iter().flatten() {
        let _ = pump.join();
    }
    let breach = jailed.breach();
    if let Some(breach) = &breach {
        eprintln!("fcp: sandbox: {}: {breach}", breach.limit());
    }
    if let Some(path) = &args.summary {
        let summary = json!({
            "exit_code": status.code(),
            "signal": status.signal(),
            "breach": breach.map(|b| json!({
                "limit": b.limit(),
                "syscall": b.syscall().map(|s| s.name.map_or_else(|| s.number.to_string(), str::to_owned)),
                "syscall_number": b.syscall().map(|s| s.number),
            })),
            "backend": jailed.backend(),
            "layers": jailed.layers().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "missing": jailed.missing_layers().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "counters": jailed.counters(),
        });
        files::write_atomically(path, format!("{summary:#}\n").as_bytes(), 0o644)?;
    }
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        (None, None) => u8::MAX,
    };
    Ok(ExitCode::from(code))
}

#[cfg(not(target_os = "linux"))]
fn run_program(_args: RunArgs) -> anyhow::Result<ExitCode> {
    bail!("fcp sandbox run needs the Linux jail; this platform's backend is not wired to the CLI yet")
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let manifest = load_manifest(&args.manifest, args.profile)?;
    let arch = Arch::native().context("this CPU architecture has no seccomp plan")?;
    #[cfg(target_os = "linux")]
    let (plan, machine) = {
        use fcp_sandbox::{LinuxJail, Sandbox};
        let jail = LinuxJail::new().context("the Linux jail")?;
        let plan = match &args.program {
            Some(program) => {
                let program = find_program(&program.to_string_lossy())?;
                jail.plan(&spec_for(&manifest, &program, &args.state_dir, &[])?)?
            }
            None => placeholder_plan(&manifest, &args.state_dir, arch)?,
        };
        let machine = json!({
            "backend": jail.name(),
            "root": rustix::process::geteuid().is_root(),
            "landlock_abi": jail.landlock_abi(),
            "landlock_missing": jail.landlock_missing_reason(),
            "cgroups_missing": jail.cgroups_missing_reason(),
            "missing_layers": Layers::ALL.difference(jail.layers()).iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        });
        (plan, machine)
    };
    #[cfg(not(target_os = "linux"))]
    let (plan, machine) = (placeholder_plan(&manifest, &args.state_dir, arch)?, json!({ "backend": null }));

    if args.json {
        println!("{:#}", json!({ "plan": plan, "machine": machine }));
    } else {
        println!(
            "jail of {} {} (profile {:?})",
            manifest.connector.id, manifest.connector.version, manifest.sandbox.profile
        );
        println!("{plan}");
        let missing = machine["missing_layers"].as_array().map(Vec::len).unwrap_or(0);
        if missing == 0 {
            println!("this machine: every layer can be put in force");
        } else {
            println!("this machine cannot put in force: {}", machine["missing_layers"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan with the connector's binary as a placeholder path and no runtime files.
fn placeholder_plan(manifest: &Manifest, state_dir: &Path, arch: Arch) -> anyhow::Result<fcp_policy::jail::JailPlan> {
    let inputs = JailInputs {
        tcp_connect: None,
        network_files: Vec::new(),
        binary: Binary { path: PathBuf::from("/opt/fcp/connector"), interpreter: None, libraries: Vec::new() },
        state_dir: state_dir.to_owned(),
        arch,
    };
    fcp_policy::jail::compile(manifest, &inputs).context("compiling the jail")
}
