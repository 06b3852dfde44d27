//! `fcp egress check` (the proxy's pure decision, run here on a manifest) and `fcp egress
//! status` (fcpd's live jails, links and counters).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fcp_policy::egress::{decide, EgressConstraints, EgressDecision, EgressRequest};
use fcp_policy::manifest::Manifest;
use fcp_proto::control::ControlRequest;
use fcp_proto::package::MAX_MANIFEST_BYTES;
use serde_json::{json, Value};

use crate::daemon::{Client, SocketArg};
use crate::files;

/// Egress commands.
#[derive(Subcommand)]
pub(crate) enum EgressCommand {
    /// Decide one connection as the egress proxy would, with the same code: may OPERATION
    /// of the manifest's connector reach HOST:PORT?
    ///
    /// Exit 0 when allowed, 1 when denied (the reason code and the reason are printed),
    /// 2 on usage errors. A name needs the addresses the resolver returned (--resolved);
    /// without them it is denied as having no DNS answer, as the proxy would.
    Check(CheckArgs),
    /// fcpd's live jails: their links and addresses, the operation running, and their
    /// counters (connections allowed and denied, DNS answers, bytes, packets dropped).
    Status(StatusArgs),
}

/// Arguments of `fcp egress check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The connector manifest (TOML).
    #[arg(long)]
    manifest: PathBuf,
    /// The operation whose network_constraints decide.
    #[arg(long)]
    operation: String,
    /// The destination, HOST:PORT ([v6]:PORT for an IPv6 literal).
    #[arg(long)]
    dest: String,
    /// What DNS returned for the host, comma-separated.
    #[arg(long, value_delimiter = ',')]
    resolved: Vec<IpAddr>,
    /// The TLS ClientHello's server name.
    #[arg(long)]
    sni: Option<String>,
    /// Print JSON: {"allowed", "reason", "message", "addresses"}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `fcp egress status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// Print JSON (what fcpd answers).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(socket: &SocketArg, cmd: EgressCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EgressCommand::Check(args) => check(args),
        EgressCommand::Status(args) => status(socket, args),
    }
}

/// `HOST:PORT` or `[V6]:PORT`.
fn split_dest(dest: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = dest.rsplit_once(':').with_context(|| format!("--dest {dest:?}: expected HOST:PORT"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse().with_context(|| format!("--dest {dest:?}: {port:?} is not a port"))?;
    if host.is_empty() {
        bail!("--dest {dest:?}: no host");
    }
    Ok((host.to_owned(), port))
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let bytes = files::read_bounded(&args.manifest, MAX_MANIFEST_BYTES as u64)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", args.manifest.display()))?;
    let manifest = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => bail!("{} is not a valid manifest: {e} (see `fcp manifest check`)", args.manifest.display()),
    };
    let Some((_, operation)) = manifest.operations.iter().find(|(id, _)| id.as_str() == args.operation) else {
        let known: Vec<String> = manifest.operations.keys().map(|k| k.to_string()).collect();
        bail!("{} has no operation {:?} (it has: {})", manifest.connector.id, args.operation, known.join(", "));
    };
    let (host, port) = split_dest(&args.dest)?;
    let decision = match &operation.network_constraints {
        Some(nc) => decide(
            &EgressConstraints::from_manifest(nc),
            &EgressRequest { dest_host: host, dest_port: port, resolved_ips: args.resolved, sni: args.sni },
        ),
        None => {
            let message = format!("operation {} declares no network_constraints: it gets no network", args.operation);
            return Ok(report(args.json, false, "no_network_constraints", &message, &[]));
        }
    };
    Ok(match &decision {
        EgressDecision::Allow { addrs, .. } => report(args.json, true, "allowed", &decision.to_string(), addrs),
        EgressDecision::Deny(reason) => report(args.json, false, reason.code(), &decision.to_string(), &[]),
    })
}

fn report(json_out: bool, allowed: bool, reason: &str, message: &str, addrs: &[IpAddr]) -> ExitCode {
    if json_out {
        println!("{}", json!({ "allowed": allowed, "reason": reason, "message": message, "addresses": addrs }));
    } else {
        println!("{reason}: {message}");
    }
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn status(socket: &SocketArg, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(&socket.path())?;
    let v = client.must(ControlRequest::EgressStatus)?;
    if args.json {
        println!("{v:#}");
        return Ok(ExitCode::SUCCESS);
    }
    if v["enabled"] != true {
        println!("egress is off: jails have loopback only (see fcpd's log for why)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "egress: pool {}, table {}, proxy port {}, DNS port {}",
        v["pool"].as_str().unwrap_or("?"),
        v["table"].as_str().unwrap_or("?"),
        v["proxy_port"],
        v["dns_port"]
    );
    let jails = v["jails"].as_array().cloned().unwrap_or_default();
    if jails.is_empty() {
        println!("no live jails");
    }
    for j in &jails {
        let s = |k: &str| j[k].as_str().map(str::to_owned).unwrap_or_else(|| j[k].to_string());
        println!(
            "{:<8} {}@{}  {} -> {}  operation {}  allowed {} denied {}  dns {}/{} refused  up {} down {} bytes  dropped {} packets",
            s("link"),
            s("connector"),
            s("zone"),
            s("jail_addr"),
            s("host_addr"),
            if j["operation"] == Value::Null { "-".to_owned() } else { s("operation") },
            j["allowed"],
            j["denied"],
            j["dns_answered"],
            j["dns_refused"],
            j["bytes_up"],
            j["bytes_down"],
            j["dropped_packets"],
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_split_at_the_last_colon() {
        assert_eq!(split_dest("api.example.com:443").expect("ok"), ("api.example.com".into(), 443));
        assert_eq!(split_dest("[2001:db8::1]:8443").expect("ok"), ("2001:db8::1".into(), 8443));
        for bad in ["api.example.com", ":443", "a:b", "a:70000"] {
            assert!(split_dest(bad).is_err(), "{bad}");
        }
    }
}
