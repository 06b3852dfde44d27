//! `fcp`, the FCP operator CLI.
//!
//! Commands that run library code directly (`fcp vectors check`, `fcp manifest`,
//! `fcp package`) and commands that talk to fcpd over its control socket.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod credential;
mod daemon;
mod doctor;
mod egress;
mod enroll;
mod files;
mod keyfile;
mod keygen;
mod manifest;
mod package;
mod quickstart;
mod sandbox;
mod vectors;

/// The FCP operator CLI.
#[derive(Parser)]
#[command(name = "fcp", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    socket: daemon::SocketArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Golden-vector conformance.
    #[command(subcommand)]
    Vectors(vectors::VectorsCommand),
    /// Connector manifests: check them against every rule, fix their interface_hash.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Build a signed connector package (manifest + binary); `inspect` shows one.
    Package(package::PackageCommand),
    /// Make a publisher key and write it to a new key file (mode 0600).
    Keygen(keygen::KeygenArgs),
    /// Create fcpd's state directory: keys (0600), node attestation, the standard zones.
    Init(daemon::InitArgs),
    /// From nothing to an audited, explained connector call, in a throwaway home.
    Quickstart(quickstart::QuickstartArgs),
    /// fcpd's node, zones and connectors.
    Status(daemon::StatusArgs),
    /// Install a signed connector package into a zone (fcpd verifies it).
    Install(daemon::InstallArgs),
    /// Installed connectors.
    List(daemon::ListArgs),
    /// Set an instance's config (credentials by `credential_id`; inline secrets only when allowed, audited).
    Configure(daemon::ConfigureArgs),
    /// The owner grants an operation to a principal; prints (or writes) a token.
    Grant(daemon::GrantArgs),
    /// Invoke an operation through fcpd's pipeline (exit 0 ok, 1 denied or failed).
    Invoke(daemon::InvokeArgs),
    /// Why a request was allowed or denied.
    Explain(daemon::ExplainArgs),
    /// Revoke a token, a grant, an issuance key or a connector binary.
    Revoke(daemon::RevokeArgs),
    /// A zone's audit chain: tail it, or verify it (exit 1 on a break).
    #[command(subcommand)]
    Audit(daemon::AuditCommand),
    /// Keys, zones, connectors, and what this kernel supports (Landlock, seccomp,
    /// namespaces, cgroups). Exit 1 when something needs attention.
    Doctor(doctor::DoctorArgs),
    /// Credentials the egress proxy injects for connectors (never shown to them).
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// The egress proxy: decide a connection as it would (`check`), or list fcpd's live
    /// jails and their counters (`status`).
    #[command(subcommand)]
    Egress(egress::EgressCommand),
    /// Run a program under a manifest's jail (like bwrap or nsjail); explain the jail.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Enroll a device: nonce, verify its TPM quote, finish its credential activation.
    #[command(subcommand)]
    Enroll(enroll::EnrollCommand),
    /// Benchmarks with JSON output (`fcp bench invoke-local --json`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Seconds since the epoch.
pub(crate) fn daemon_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `fcp … | head` closes the pipe early; print! then panics with EPIPE. Exit quietly
/// with 141 (128 + SIGPIPE) as a shell tool would, instead of a panic message.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vectors(cmd) => vectors::run(cmd),
        Command::Manifest(cmd) => manifest::run(cmd),
        Command::Package(cmd) => package::run(cmd),
        Command::Keygen(args) => keygen::run(args),
        Command::Init(a) => daemon::init(a),
        Command::Quickstart(a) => quickstart::run(a),
        Command::Status(a) => daemon::status(&cli.socket, a),
        Command::Install(a) => daemon::install(&cli.socket, a),
        Command::List(a) => daemon::list(&cli.socket, a),
        Command::Configure(a) => daemon::configure(&cli.socket, a),
        Command::Grant(a) => daemon::grant(&cli.socket, a),
        Command::Invoke(a) => daemon::invoke(&cli.socket, a),
        Command::Explain(a) => daemon::explain(&cli.socket, a),
        Command::Revoke(a) => daemon::revoke(&cli.socket, a),
        Command::Audit(a) => daemon::audit(&cli.socket, a),
        Command::Sandbox(a) => sandbox::run(a),
        Command::Egress(a) => egress::run(&cli.socket, a),
        Command::Credential(a) => credential::run(&cli.socket, a),
        Command::Bench(a) => bench::run(a),
        Command::Enroll(a) => enroll::run(a),
        Command::Doctor(a) => doctor::run(&cli.socket, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcp: {e:#}");
            ExitCode::from(2)
        }
    }
}
