//! `fcp enroll`: the owner's side of device enrollment (spec/attest.md §3). The logic is
//! fcp-attest's verifier; this module keeps the owner's state under `HOME/enroll/`:
//!
//! ```text
//! HOME/enroll/nonces/{issued,used}/<nonce>   single-use owner nonces
//! HOME/enroll/pending/<request id>.cbor      a verified request awaiting its activation
//! HOME/enroll/done/<request id>.cbor         the grant issued
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fcp_attest::evidence::{ActivationResponse, EnrollmentRequest};
use fcp_attest::verify::{self, DirNonceStore, Grant, PendingEnrollment, Policy, DEFAULT_NONCE_TTL_SECS, DEFAULT_PCRS};
use fcp_proto::cbor;
use fcp_proto::id::ZoneId;
use rand_core::OsRng;
use serde_json::json;

/// `fcp enroll …`.
#[derive(Subcommand)]
pub(crate) enum EnrollCommand {
    /// Issue a single-use nonce for a device's `fcp-attest request --owner-nonce`.
    Nonce {
        #[command(flatten)]
        common: Common,
        /// How long the nonce stays usable, in seconds.
        #[arg(long, default_value_t = DEFAULT_NONCE_TTL_SECS)]
        ttl_secs: u64,
    },
    /// Verify a device's request: node-key signature, nonce, quote, PCRs. A TPM request
    /// is answered with a credential challenge (for `fcp-attest activate`); a request
    /// without a TPM with a grant of posture "software".
    Verify {
        #[command(flatten)]
        common: Common,
        /// The request file.
        request: PathBuf,
        /// Where to write the challenge (or, without a TPM, the grant).
        #[arg(long)]
        out: PathBuf,
        /// PCRs (SHA-256 bank) the quote must cover.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_PCRS.to_vec())]
        pcrs: Vec<u8>,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Check the device's activation response and issue the owner-signed
    /// DeviceEnrollment and NodeKeyAttestation carrying the posture.
    Finish {
        #[command(flatten)]
        common: Common,
        /// The response file.
        response: PathBuf,
        /// Where to write the grant (for `fcp-attest install`).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        grant: GrantArgs,
    },
}

#[derive(Args)]
pub(crate) struct Common {
    /// The owner node's fcpd home (holds the owner key).
    #[arg(long, default_value = "/var/lib/fcp")]
    home: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct GrantArgs {
    /// Zones the device may join.
    #[arg(long, value_delimiter = ',', default_values_t = ["z:owner", "z:private", "z:work", "z:community", "z:public"].map(String::from).to_vec())]
    zones: Vec<String>,
    /// Days the enrollment (and the posture it carries) holds before re-enrollment.
    #[arg(long, default_value_t = 30)]
    valid_days: u64,
}

impl GrantArgs {
    fn grant(&self) -> anyhow::Result<Grant> {
        let allowed_zones = self
            .zones
            .iter()
            .map(|z| ZoneId::new(z).map_err(|e| anyhow::anyhow!("zone {z:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Grant { allowed_zones, enrollment_validity_secs: self.valid_days * 86_400, tags: vec!["enrolled".into()] })
    }
}

fn dir(home: &Path, sub: &str) -> anyhow::Result<PathBuf> {
    let d = home.join("enroll").join(sub);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn refusal(json_out: bool, e: &fcp_attest::AttestError) -> ExitCode {
    if json_out {
        println!("{}", json!({ "ok": false, "code": e.code(), "error": e.to_string() }));
    } else {
        eprintln!("fcp enroll: refused: {e}");
    }
    ExitCode::from(1)
}

pub(crate) fn run(cmd: EnrollCommand) -> anyhow::Result<ExitCode> {
    let now = crate::daemon_now();
    match cmd {
        EnrollCommand::Nonce { common, ttl_secs } => {
            let mut store = DirNonceStore::open(&dir(&common.home, "nonces")?)?;
            let nonce = store.issue(&mut OsRng, now, ttl_secs)?;
            if common.json {
                println!("{}", json!({ "ok": true, "nonce": hex::encode(nonce), "expires_at": now + ttl_secs }));
            } else {
                println!("{}", hex::encode(nonce));
            }
            Ok(ExitCode::SUCCESS)
        }
        EnrollCommand::Verify { common, request, out, pcrs, grant } => {
            let bytes = std::fs::read(&request).with_context(|| format!("reading {}", request.display()))?;
            let owner = fcp_attest::device::owner_key(&common.home)?;
            let mut store = DirNonceStore::open(&dir(&common.home, "nonces")?)?;
            let policy = Policy { pcrs, ..Policy::default() };
            let verified = match EnrollmentRequest::decode(&bytes)
                .and_then(|r| verify::verify_request(r, &mut store, &policy, now))
            {
                Ok(v) => v,
                Err(e) => return Ok(refusal(common.json, &e)),
            };
            let req = &verified.request;
            let id = hex::encode(&req.request_id);
            match &verified.tpm {
                Some(t) => {
                    let (challenge, pending) = verify::make_challenge(&verified, t, &mut OsRng, &policy, now)?;
                    let p = dir(&common.home, "pending")?.join(format!("{id}.cbor"));
                    write(&p, &cbor::to_vec(&pending).map_err(|e| anyhow::anyhow!("{e}"))?)?;
                    write(&out, &challenge.encode()?)?;
                    if common.json {
                        println!(
                            "{}",
                            json!({ "ok": true, "request_id": id, "node_id": req.node_id, "posture": "tpm",
                                    "manufacturer": t.manufacturer, "pcr_digest": hex::encode(t.pcr_digest),
                                    "keys_sealed": t.keys_sealed, "next": "activate", "out": out })
                        );
                    } else {
                        println!(
                            "quote of {} verified: TPM {}, PCR digest {}",
                            req.node_id,
                            t.manufacturer,
                            hex::encode(t.pcr_digest)
                        );
                        println!("wrote the credential challenge to {}", out.display());
                        println!("next: on the device, `fcp-attest activate {} --out RESPONSE`", out.display());
                    }
                }
                None => {
                    let g = verify::issue_software(&verified, &owner, &grant.grant()?, now)?;
                    let bytes = g.encode()?;
                    write(&dir(&common.home, "done")?.join(format!("{id}.cbor")), &bytes)?;
                    write(&out, &bytes)?;
                    if common.json {
                        println!(
                            "{}",
                            json!({ "ok": true, "request_id": id, "node_id": req.node_id, "posture": "software",
                                    "hardware_backed": false, "next": "install", "out": out })
                        );
                    } else {
                        println!("{} has no TPM: enrolled with posture \"software\" (zones requiring hardware-backed keys refuse it)", req.node_id);
                        println!(
                            "wrote the grant to {}; next: on the device, `fcp-attest install {}`",
                            out.display(),
                            out.display()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnrollCommand::Finish { common, response, out, grant } => {
            let bytes = std::fs::read(&response).with_context(|| format!("reading {}", response.display()))?;
            let owner = fcp_attest::device::owner_key(&common.home)?;
            let resp = match ActivationResponse::decode(&bytes) {
                Ok(r) => r,
                Err(e) => return Ok(refusal(common.json, &e)),
            };
            let id = hex::encode(&resp.request_id);
            let p = dir(&common.home, "pending")?.join(format!("{id}.cbor"));
            let Ok(pb) = std::fs::read(&p) else {
                let e = fcp_attest::AttestError::Refused {
                    code: "attest.unknown_request",
                    why: format!("no pending enrollment {id} on this owner (already finished, or never verified here)"),
                };
                return Ok(refusal(common.json, &e));
            };
            let pending: PendingEnrollment = cbor::from_slice(&pb, cbor::Limits::with_max_len(4 << 20))
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            // One answer per challenge, right or wrong.
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            let g = match verify::finish(&pending, &resp, &owner, &grant.grant()?, now) {
                Ok(g) => g,
                Err(e) => return Ok(refusal(common.json, &e)),
            };
            let bytes = g.encode()?;
            write(&dir(&common.home, "done")?.join(format!("{id}.cbor")), &bytes)?;
            write(&out, &bytes)?;
            let posture = g.attestation.posture.clone();
            if common.json {
                println!(
                    "{}",
                    json!({ "ok": true, "request_id": id, "node_id": g.attestation.node_id, "posture": posture, "out": out })
                );
            } else {
                println!("credential activated: {} is enrolled", g.attestation.node_id);
                if let Some(p) = posture {
                    println!(
                        "  posture {:?}, hardware-backed {}, TPM {}, PCR digest {}",
                        p.kind,
                        p.hardware_backed,
                        p.tpm_manufacturer.unwrap_or_default(),
                        hex::encode(p.pcr_digest.unwrap_or_default())
                    );
                }
                println!(
                    "wrote the grant to {}; next: on the device, `fcp-attest install {}`",
                    out.display(),
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
