//! `fcp keygen`: makes a publisher key and writes it to a new key file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use fcp_proto::keys::PublisherKey;
use serde::Serialize;

use crate::keyfile;

/// Arguments of `fcp keygen`.
#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// The key file to create (mode 0600). An existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Print JSON: {"out", "role", "kid", "public_key"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    out: String,
    role: &'static str,
    kid: String,
    public_key: String,
}

pub(crate) fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = PublisherKey::generate(&mut rand_core::OsRng);
    keyfile::write_seed(&args.out, &key.to_seed())?;
    let report = Report {
        out: args.out.display().to_string(),
        role: "publisher",
        kid: key.kid().to_string(),
        public_key: hex::encode(key.public().to_bytes()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("wrote publisher key {} (mode 0600)", report.out);
        println!("kid         {}", report.kid);
        println!("public key  {}", report.public_key);
    }
    Ok(ExitCode::SUCCESS)
}
