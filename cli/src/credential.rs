//! `fcp credential add|list|remove`: the credentials fcpd's egress proxy injects for
//! connectors configured with their id (`credential_id`). The secret is read from a file
//! or stdin, never from the command line (which other users can see).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fcp_proto::control::{ControlRequest, CredentialAuth, SecretText};
use zeroize::Zeroizing;

use crate::daemon::{Client, SocketArg};

/// Credential commands.
#[derive(Subcommand)]
pub(crate) enum CredentialCommand {
    /// Store a credential in fcpd (replacing one with the same id). The proxy sends it only
    /// over TLS it intercepts, only to the --host names, for connectors whose config names
    /// it (`fcp configure --config '{"credential_id": "ID"}'`); connectors never see it.
    Add(AddArgs),
    /// The stored credentials: ids, hosts and kinds (never secrets).
    List(ListArgs),
    /// Forget a credential.
    Remove(RemoveArgs),
}

/// Arguments of `fcp credential add`.
#[derive(Args)]
pub(crate) struct AddArgs {
    /// The id connectors name (e.g. a UUID).
    #[arg(long)]
    id: String,
    /// A host it may be sent to (repeatable): a name, or `*.` and a name.
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// Send it as `Authorization: Basic` with this user (default: `Authorization: Bearer`).
    #[arg(long, conflicts_with = "header")]
    basic_user: Option<String>,
    /// Send it in this header (e.g. x-api-key) instead of `Authorization`.
    #[arg(long)]
    header: Option<String>,
    /// Read the secret from this file (its first line); `-` reads stdin.
    #[arg(long)]
    secret_file: PathBuf,
    /// A dummy value connectors may be configured with instead of the secret; the proxy
    /// replaces it in flight.
    #[arg(long)]
    placeholder: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fcp credential list`.
#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fcp credential remove`.
#[derive(Args)]
pub(crate) struct RemoveArgs {
    /// The credential's id.
    #[arg(long)]
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(socket: &SocketArg, cmd: CredentialCommand) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(&socket.path())?;
    match cmd {
        CredentialCommand::Add(a) => {
            let mut raw = Zeroizing::new(String::new());
            if a.secret_file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut raw).context("reading the secret from stdin")?;
            } else {
                std::fs::File::open(&a.secret_file)
                    .and_then(|mut f| f.read_to_string(&mut raw))
                    .with_context(|| format!("reading the secret from {}", a.secret_file.display()))?;
            }
            let secret = raw.lines().next().unwrap_or("").trim().to_owned();
            if secret.is_empty() {
                bail!("the secret is empty");
            }
            let auth = match (a.basic_user, a.header) {
                (Some(user), _) => CredentialAuth::Basic { user },
                (None, Some(header)) => CredentialAuth::Header { header },
                (None, None) => CredentialAuth::Bearer,
            };
            let v = client.must(ControlRequest::CredentialAdd {
                id: a.id.clone(),
                hosts: a.hosts.clone(),
                auth,
                secret: SecretText(secret),
                placeholder: a.placeholder,
            })?;
            if a.json {
                println!("{v}");
            } else {
                println!("stored credential {} for {}", a.id, a.hosts.join(", "));
            }
        }
        CredentialCommand::List(a) => {
            let v = client.must(ControlRequest::CredentialList)?;
            if a.json {
                println!("{v:#}");
            } else {
                let list = v["credentials"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no credentials stored");
                }
                for c in list {
                    println!(
                        "{:<38} {:<8} {}",
                        c["id"].as_str().unwrap_or("?"),
                        c["auth"]["kind"].as_str().unwrap_or("?"),
                        c["hosts"]
                            .as_array()
                            .map(|h| h.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    );
                }
            }
        }
        CredentialCommand::Remove(a) => {
            let v = client.must(ControlRequest::CredentialRemove { id: a.id.clone() })?;
            if a.json {
                println!("{v}");
            } else {
                println!("removed credential {}", a.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
