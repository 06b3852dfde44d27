//! `fcp-attest`: the device's side of enrollment (spec/attest.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fcp_attest::device::{self, KeySource, RequestOptions};
use fcp_attest::evidence::{CredentialChallenge, EnrollmentGrant};
use fcp_attest::tpm::tss::TssTpm;
use fcp_attest::tpm::{tcti_from_env, Tpm};
use fcp_attest::verify::DEFAULT_PCRS;
use fcp_attest::AttestError;
use serde_json::json;

/// Proves this device's TPM, boot state and node keys to the owner.
#[derive(Parser)]
#[command(name = "fcp-attest", version, about)]
struct Cli {
    /// fcpd's state directory.
    #[arg(long, global = true, default_value = "/var/lib/fcp")]
    home: PathBuf,
    /// TCTI (TPM2TOOLS_TCTI syntax); default $FCP_TCTI, then what enrollment recorded,
    /// then device:/dev/tpmrm0.
    #[arg(long, global = true)]
    tcti: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make an enrollment request for the owner's nonce (from `fcp enroll nonce`). With a
    /// TPM: an attestation key, the node keys sealed, and a quote; without: a plain
    /// statement, which enrolls with posture "software".
    Request {
        /// The owner's nonce, 64 hex digits.
        #[arg(long)]
        owner_nonce: String,
        /// Where to write the request.
        #[arg(long)]
        out: PathBuf,
        /// PCRs to quote (SHA-256 bank), comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_PCRS.to_vec())]
        pcrs: Vec<u8>,
        /// Keep the node keys as plaintext files (posture is then not hardware-backed).
        #[arg(long)]
        no_seal: bool,
        /// Bind the sealed keys to these PCRs' current values (e.g. 7); a firmware or
        /// Secure Boot change then locks them until re-enrollment.
        #[arg(long, value_delimiter = ',')]
        seal_pcrs: Vec<u8>,
        /// Fail instead of enrolling as "software" when no TPM answers.
        #[arg(long)]
        require_tpm: bool,
    },
    /// Answer the owner's credential challenge (from `fcp enroll verify`).
    Activate {
        /// The challenge file.
        challenge: PathBuf,
        /// Where to write the response.
        #[arg(long)]
        out: PathBuf,
    },
    /// Keep the owner's grant (from `fcp enroll finish`) for fcpd.
    Install {
        /// The grant file.
        grant: PathBuf,
        /// The owner's public key (64 hex digits), to check the signatures now.
        #[arg(long)]
        owner: Option<String>,
    },
    /// After a cleared or replaced TPM: move HOME/attest aside, write fresh node keys
    /// when the old ones were sealed (they are gone), then restart fcpd and enroll again.
    Reset {
        /// Discard sealed keys even though this TPM still unseals them.
        #[arg(long)]
        force: bool,
    },
    /// TPM presence, manufacturer, handles, PCRs, and this node's enrollment.
    Status {
        /// PCRs to show.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_PCRS.to_vec())]
        pcrs: Vec<u8>,
    },
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn tcti(cli_tcti: Option<&str>, home: &Path) -> String {
    if let Some(t) = cli_tcti {
        return t.to_owned();
    }
    let recorded = device::read_state(home).ok().flatten().map(|s| s.tcti);
    tcti_from_env(recorded.as_deref())
}

fn main() -> ExitCode {
    // libtss2 logs every failed probe to stderr; our errors say what failed. Still
    // single-threaded here, so setting the variable races with nothing.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.downcast_ref::<AttestError>().map_or("error", AttestError::code);
            if json {
                println!("{}", json!({ "ok": false, "code": code, "error": format!("{e:#}") }));
            } else {
                eprintln!("fcp-attest: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.as_path();
    let tcti = tcti(cli.tcti.as_deref(), home);
    match cli.command {
        Cmd::Request { owner_nonce, out, pcrs, no_seal, seal_pcrs, require_tpm } => {
            let mut nonce = [0u8; 32];
            hex::decode_to_slice(owner_nonce.trim(), &mut nonce).context("--owner-nonce must be 64 hex digits")?;
            let mut tpm = match TssTpm::open(&tcti) {
                Ok(t) => Some(t),
                Err(e) if !require_tpm => {
                    if !cli.json {
                        eprintln!(
                            "fcp-attest: no TPM ({e}); enrolling with posture \"software\": zones that require hardware-backed keys (z:owner) will refuse this node"
                        );
                    }
                    None
                }
                Err(e) => return Err(e.into()),
            };
            let opts = RequestOptions { tcti: tcti.clone(), pcrs, seal: !no_seal, seal_pcrs };
            let req = device::request(
                home,
                tpm.as_mut().map(|t| t as &mut dyn Tpm),
                nonce,
                &opts,
                &mut rand_core::OsRng,
                now(),
            )?;
            let bytes = req.encode()?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            let ev = req.tpm.as_ref();
            if cli.json {
                println!(
                    "{}",
                    json!({
                        "ok": true, "out": out, "request_id": hex::encode(&req.request_id),
                        "node_id": req.node_id, "posture": if ev.is_some() { "tpm" } else { "software" },
                        "tpm_present": ev.is_some(), "tcti": tcti,
                        "manufacturer": ev.map(|e| e.manufacturer.clone()),
                        "keys_sealed": ev.is_some_and(|e| e.keys_sealed),
                        "pcrs": ev.map(|e| e.pcrs.iter().map(|p| p.index).collect::<Vec<_>>()),
                    })
                );
            } else {
                println!("wrote {} ({} bytes), request {}", out.display(), bytes.len(), hex::encode(&req.request_id));
                match ev {
                    Some(e) => println!(
                        "  TPM {} via {tcti}; node keys {}; quoted sha256 PCRs {:?}",
                        e.manufacturer,
                        if e.keys_sealed { "sealed by the TPM" } else { "in plaintext files" },
                        e.pcrs.iter().map(|p| p.index).collect::<Vec<_>>()
                    ),
                    None => println!("  no TPM: posture software"),
                }
                println!("next: on the owner node, `fcp enroll verify {}`", out.display());
            }
            Ok(())
        }
        Cmd::Activate { challenge, out } => {
            let bytes = std::fs::read(&challenge).with_context(|| format!("reading {}", challenge.display()))?;
            let c = CredentialChallenge::decode(&bytes)?;
            let mut tpm = TssTpm::open(&tcti)?;
            let resp = device::activate(home, &mut tpm, &c)?;
            std::fs::write(&out, resp.encode()?).with_context(|| format!("writing {}", out.display()))?;
            if cli.json {
                println!("{}", json!({ "ok": true, "out": out, "request_id": hex::encode(&resp.request_id) }));
            } else {
                println!("the TPM opened the owner's credential; wrote {}", out.display());
                println!("next: on the owner node, `fcp enroll finish {}`", out.display());
            }
            Ok(())
        }
        Cmd::Install { grant, owner } => {
            let bytes = std::fs::read(&grant).with_context(|| format!("reading {}", grant.display()))?;
            let g = EnrollmentGrant::decode(&bytes)?;
            let owner = match owner {
                Some(h) => {
                    let mut k = [0u8; 32];
                    hex::decode_to_slice(h.trim(), &mut k).context("--owner must be 64 hex digits")?;
                    Some(fcp_proto::keys::OwnerPublicKey::from_bytes(&k)?)
                }
                None => None,
            };
            device::install(home, &g, owner.as_ref(), now())?;
            let p = g.attestation.posture.clone();
            if cli.json {
                println!("{}", json!({ "ok": true, "node_id": g.attestation.node_id, "posture": p }));
            } else {
                println!(
                    "installed the enrollment of {}: posture {}; restart fcpd to use it",
                    g.attestation.node_id,
                    p.map_or("none".to_owned(), |p| format!(
                        "{:?}{}",
                        p.kind,
                        if p.hardware_backed { ", hardware-backed" } else { "" }
                    ))
                );
            }
            Ok(())
        }
        Cmd::Reset { force } => {
            let mut tpm = TssTpm::open(&tcti).ok();
            let r = device::reset(home, tpm.as_mut().map(|t| t as &mut dyn Tpm), force, &mut rand_core::OsRng, now())?;
            if cli.json {
                println!("{}", json!({ "ok": true, "report": r }));
            } else {
                if let Some(p) = &r.moved_to {
                    println!("moved the old attestation state to {}", p.display());
                }
                if r.new_keys {
                    println!(
                        "wrote new node keys (signing kid {}); the old ones were sealed by the lost TPM",
                        r.signing_kid
                    );
                    println!(
                        "  audit events signed before now verify only against the old key (see the moved request.cbor)"
                    );
                }
                println!(
                    "next: restart fcpd (posture: none), then `fcp enroll nonce` on the owner and `fcp-attest request`"
                );
            }
            Ok(())
        }
        Cmd::Status { pcrs } => status(home, &tcti, &pcrs, cli.json),
    }
}

fn status(home: &Path, tcti: &str, pcrs: &[u8], json_out: bool) -> anyhow::Result<()> {
    let state = device::read_state(home).ok().flatten();
    let sealed = device::read_sealed(home).ok().flatten();
    let grant = device::read_grant(home).ok().flatten();
    let mut out = json!({
        "tpm_present": false, "tcti": tcti,
        "enrolled": state.is_some(), "keys_sealed": sealed.is_some(),
        "seal_pcrs": sealed.as_ref().map(|s| s.policy_pcrs.clone()),
        "persistent_handles": [],
        "posture": grant.as_ref().and_then(|g| g.attestation.posture.clone()),
        "enrollment_expires_at": grant.as_ref().and_then(|g| g.enrollment.expires_at),
    });
    match TssTpm::open(tcti) {
        Ok(mut tpm) => {
            let info = tpm.info()?;
            let ek = tpm.ek_public()?;
            let srk = tpm.srk_name()?;
            let values = tpm.pcr_read(pcrs)?;
            let identity = state.as_ref().map(|s| match device::check_identity(&mut tpm, s) {
                Ok(()) => "same TPM as at enrollment".to_owned(),
                Err(e) => e.to_string(),
            });
            out["tpm_present"] = json!(true);
            out["manufacturer"] = json!(info.manufacturer);
            out["vendor"] = json!(info.vendor);
            out["firmware_version"] = json!(format!("{:#x}", info.firmware_version));
            out["ek_certificate"] = json!(tpm.ek_certificate()?.is_some());
            out["ek_name"] =
                json!(hex::encode(fcp_attest::wire::EccPublic::decode(&ek).map(|e| e.name()).unwrap_or_default()));
            out["srk_name"] = json!(hex::encode(&srk));
            out["identity"] = json!(identity);
            out["pcrs"] = json!(pcrs
                .iter()
                .zip(values)
                .map(|(p, v)| json!({ "bank": "sha256", "index": p, "value": hex::encode(v) }))
                .collect::<Vec<_>>());
            if sealed.is_some() {
                out["keys_unseal"] = json!(match device::load_node_keys(home, Some(&mut tpm)) {
                    Ok((_, KeySource::Tpm)) => "ok".to_owned(),
                    Ok((_, KeySource::Files)) => "files".to_owned(),
                    Err(e) => e.to_string(),
                });
            }
        }
        Err(e) => {
            out["error"] = json!(e.to_string());
        }
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if out["tpm_present"] == json!(true) {
        println!(
            "TPM present via {tcti}: manufacturer {} ({}), firmware {}",
            out["manufacturer"], out["vendor"], out["firmware_version"]
        );
        println!("  EK name  {} (certificate in NV: {})", out["ek_name"], out["ek_certificate"]);
        println!("  SRK name {}", out["srk_name"]);
        println!(
            "  handles  none persistent: SRK and EK are re-derived, AK and sealed keys reloaded from {}",
            device::state_dir(home).display()
        );
        if let Some(v) = out["pcrs"].as_array() {
            for p in v {
                println!("  PCR sha256:{:<2} {}", p["index"], p["value"].as_str().unwrap_or(""));
            }
        }
        if let Some(i) = out["identity"].as_str() {
            println!("  identity {i}");
        }
    } else {
        println!("no TPM via {tcti}: {}", out["error"].as_str().unwrap_or("unknown"));
        println!("  this node enrolls with posture \"software\"; zones that require hardware-backed keys refuse it");
    }
    println!("enrolled with a TPM: {}; node keys sealed: {}", out["enrolled"], out["keys_sealed"]);
    if let Some(p) = grant.and_then(|g| g.attestation.posture) {
        println!("posture: {:?}, hardware-backed {}, manufacturer {:?}", p.kind, p.hardware_backed, p.tpm_manufacturer);
    }
    Ok(())
}
