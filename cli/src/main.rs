//! `fcp`, the FCP operator CLI.
//!
//! Commands that run library code directly live here (`fcp vectors check`); commands
//! that talk to fcpd arrive with the supervisor.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vectors(cmd) => vectors::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fcp: {e:#}");
            ExitCode::from(2)
        }
    }
}
