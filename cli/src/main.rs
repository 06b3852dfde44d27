//! `fcp`, the FCP operator CLI.
//!
//! Commands that run library code directly live here (`fcp vectors check`); commands
//! that talk to fcpd arrive with the supervisor.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod files;
mod keyfile;
mod keygen;
mod manifest;
mod package;
mod vectors;

/// The FCP operator CLI.
#[derive(Parser)]
#[command(name = "fcp", version, about, long_about = None)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vectors(cmd) => vectors::run(cmd),
        Command::Manifest(cmd) => manifest::run(cmd),
        Command::Package(cmd) => package::run(cmd),
        Command::Keygen(args) => keygen::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcp: {e:#}");
            ExitCode::from(2)
        }
    }
}
