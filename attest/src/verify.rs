//! The owner's side of enrollment (spec/attest.md §3, §4). Checks run in a fixed order
//! and the first failure is the answer, with a stable `attest.*` code:
//!
//! 1. the request is signed by the node signing key it names (`attest.request_signature`);
//! 2. it is recent (`attest.stale_request`);
//! 3. the nonce was issued by this owner, is unexpired, and was never used
//!    (`attest.nonce_unknown`, `attest.nonce_expired`, `attest.nonce_used`);
//! 4. with a TPM: the AK is a restricted, fixed, TPM-generated ECDSA P-256 signing key
//!    (`attest.ak_not_restricted`); the quote is signed by it (`attest.quote_signature`);
//!    its qualifying data is the hash of this nonce, request id and node kids
//!    (`attest.qualifying_data`); it quotes the required PCRs (`attest.pcr_selection`);
//!    the reported PCR values hash to the quoted digest (`attest.pcr_digest`); the EK is
//!    a TCG-template ECC EK (`attest.bad_ek`);
//! 5. a credential for the AK's name, wrapped to the EK, must come back opened
//!    (`attest.activation_failed`) before the owner signs anything.

use std::fs;
use std::path::{Path, PathBuf};

use fcp_proto::id::ZoneId;
use fcp_proto::keys::{DeviceEnrollment, DevicePosture, NodeKeyAttestation, OwnerKey, PostureKind, StoragePermission};
use p256::ecdsa::signature::Verifier;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::credential::{check_ek, make_credential};
use crate::evidence::{ActivationResponse, CredentialChallenge, EnrollmentGrant, EnrollmentRequest, TpmEvidence};
use crate::wire::{attr, pcr_composite, EccPublic, EcdsaSignature, PcrSelection, QuoteInfo, ALG_ECDSA, ALG_SHA256};
use crate::AttestError;

/// The PCRs quoted unless configured otherwise: SHA-256 bank 0–5 and 7 (firmware,
/// firmware config, option ROMs, their config, boot manager, its config, Secure Boot
/// policy).
pub const DEFAULT_PCRS: [u8; 7] = [0, 1, 2, 3, 4, 5, 7];
/// How long an owner nonce stays usable by default.
pub const DEFAULT_NONCE_TTL_SECS: u64 = 600;
/// How far a request's `created_at` may lie in the future.
const MAX_SKEW_SECS: u64 = 300;

/// What the owner requires.
#[derive(Clone, Debug)]
pub struct Policy {
    /// PCRs (SHA-256 bank) that must be quoted.
    pub pcrs: Vec<u8>,
    /// Oldest acceptable request.
    pub max_request_age_secs: u64,
    /// How long a credential challenge stays answerable.
    pub challenge_ttl_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { pcrs: DEFAULT_PCRS.to_vec(), max_request_age_secs: 600, challenge_ttl_secs: 600 }
    }
}

/// What the owner grants a device that passed.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Zones it may join.
    pub allowed_zones: Vec<ZoneId>,
    /// How long the DeviceEnrollment (and with it the posture) holds.
    pub enrollment_validity_secs: u64,
    /// Tags of the NodeKeyAttestation.
    pub tags: Vec<String>,
}

/// Single-use owner nonces.
pub trait NonceStore {
    /// Consumes `nonce`: it must have been issued, be unexpired at `now`, and never have
    /// been consumed before. It is spent even when later checks fail.
    fn consume(&mut self, nonce: &[u8; 32], now: u64) -> Result<(), AttestError>;
}

/// Nonces as files: `DIR/issued/<hex>` holds the expiry; consuming renames it to
/// `DIR/used/<hex>`, which a second attempt cannot do (rename is atomic).
#[derive(Debug)]
pub struct DirNonceStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NonceFile {
    issued_at: u64,
    expires_at: u64,
}

impl DirNonceStore {
    /// A store under `dir` (created 0700 when missing).
    pub fn open(dir: &Path) -> Result<Self, AttestError> {
        for sub in ["issued", "used"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(AttestError::io(&p))?;
        }
        crate::device::restrict_dir(dir)?;
        Ok(DirNonceStore { dir: dir.to_owned() })
    }

    /// Issues a fresh nonce valid for `ttl_secs` from `now`.
    pub fn issue(&mut self, rng: &mut impl CryptoRngCore, now: u64, ttl_secs: u64) -> Result<[u8; 32], AttestError> {
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let f = NonceFile { issued_at: now, expires_at: now.saturating_add(ttl_secs) };
        let bytes = serde_json::to_vec(&f).map_err(|e| AttestError::State(e.to_string()))?;
        crate::device::write_atomic(&self.dir.join("issued").join(hex::encode(nonce)), &bytes, 0o600)?;
        Ok(nonce)
    }
}

impl NonceStore for DirNonceStore {
    fn consume(&mut self, nonce: &[u8; 32], now: u64) -> Result<(), AttestError> {
        let name = hex::encode(nonce);
        let from = self.dir.join("issued").join(&name);
        let to = self.dir.join("used").join(&name);
        if let Err(e) = fs::rename(&from, &to) {
            return Err(if to.exists() {
                AttestError::refused("attest.nonce_used", "this nonce was already used: ask the owner for a new one")
            } else if e.kind() == std::io::ErrorKind::NotFound {
                AttestError::refused("attest.nonce_unknown", "this owner never issued this nonce")
            } else {
                AttestError::Io { path: from, source: e }
            });
        }
        let f: NonceFile = serde_json::from_slice(&fs::read(&to).map_err(AttestError::io(&to))?)
            .map_err(|e| AttestError::State(format!("{}: {e}", to.display())))?;
        if now >= f.expires_at {
            return Err(AttestError::refused(
                "attest.nonce_expired",
                format!("the nonce expired {} s ago", now - f.expires_at),
            ));
        }
        Ok(())
    }
}

/// A request whose checks 1–4 passed.
#[derive(Clone, Debug)]
pub struct VerifiedRequest {
    /// The request.
    pub request: EnrollmentRequest,
    /// What its TPM evidence established, if it had any.
    pub tpm: Option<VerifiedTpm>,
}

/// What a verified quote established.
#[derive(Clone, Debug)]
pub struct VerifiedTpm {
    /// The AK's TPM name (what the credential is bound to).
    pub ak_name: Vec<u8>,
    /// The EK.
    pub ek: EccPublic,
    /// The quoted PCR digest.
    pub pcr_digest: [u8; 32],
    /// TPM manufacturer.
    pub manufacturer: String,
    /// Whether the node keys are sealed by the TPM.
    pub keys_sealed: bool,
}

/// Checks 1–4 (see the module docs).
pub fn verify_request(
    request: EnrollmentRequest,
    nonces: &mut impl NonceStore,
    policy: &Policy,
    now: u64,
) -> Result<VerifiedRequest, AttestError> {
    request.verify_signature()?;
    if request.created_at > now.saturating_add(MAX_SKEW_SECS)
        || now.saturating_sub(request.created_at) > policy.max_request_age_secs
    {
        return Err(AttestError::refused(
            "attest.stale_request",
            format!("request made at {}, now is {now}", request.created_at),
        ));
    }
    nonces.consume(&request.owner_nonce()?, now)?;
    let tpm = match &request.tpm {
        Some(ev) => Some(verify_quote(ev, &request.qualifying_data()?, &policy.pcrs)?),
        None => None,
    };
    Ok(VerifiedRequest { request, tpm })
}

/// Checks the TPM evidence against the qualifying data the owner expects (step 4).
pub fn verify_quote(ev: &TpmEvidence, qualifying: &[u8; 32], pcrs: &[u8]) -> Result<VerifiedTpm, AttestError> {
    let ak = EccPublic::decode(&ev.ak_public)
        .map_err(|e| AttestError::Malformed { what: "attestation key", why: e.to_string() })?;
    let need = attr::FIXED_TPM | attr::FIXED_PARENT | attr::SENSITIVE_DATA_ORIGIN | attr::RESTRICTED | attr::SIGN;
    if !ak.has(need) || ak.has(attr::DECRYPT) || ak.scheme != ALG_ECDSA || ak.scheme_hash != Some(ALG_SHA256) {
        return Err(AttestError::refused(
            "attest.ak_not_restricted",
            "the attestation key is not a restricted, fixed, TPM-generated ECDSA P-256 signing key",
        ));
    }
    let sig = EcdsaSignature::decode(&ev.quote_signature)
        .map_err(|e| AttestError::Malformed { what: "quote signature", why: e.to_string() })?;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&ak.sec1())
        .map_err(|_| AttestError::Evidence("attestation key is not a point on P-256".into()))?;
    let mut rs = [0u8; 64];
    rs[..32].copy_from_slice(&sig.r);
    rs[32..].copy_from_slice(&sig.s);
    let sig = p256::ecdsa::Signature::from_slice(&rs)
        .map_err(|_| AttestError::refused("attest.quote_signature", "quote signature scalars out of range"))?;
    vk.verify(&ev.quote, &sig).map_err(|_| {
        AttestError::refused("attest.quote_signature", "the quote is not signed by the attestation key")
    })?;
    let quote =
        QuoteInfo::decode(&ev.quote).map_err(|e| AttestError::Malformed { what: "quote", why: e.to_string() })?;
    if quote.extra_data != qualifying {
        return Err(AttestError::refused(
            "attest.qualifying_data",
            "the quote was not made for this nonce, request id and node keys",
        ));
    }
    let want = PcrSelection::sha256(pcrs);
    if quote.pcr_select != want {
        return Err(AttestError::refused(
            "attest.pcr_selection",
            format!("the quote covers {:?}, the owner requires sha256 {:?}", quote.pcr_select, want.0[0].pcrs),
        ));
    }
    let mut values = Vec::with_capacity(ev.pcrs.len());
    for ((_, idx), reported) in want.slots().zip(&ev.pcrs) {
        let v: [u8; 32] = reported.value.as_slice().try_into().map_err(|_| AttestError::Malformed {
            what: "pcr value",
            why: format!("PCR {} has {} bytes", reported.index, reported.value.len()),
        })?;
        if reported.index != idx {
            return Err(AttestError::refused("attest.pcr_values", "reported PCRs are not the quoted ones, in order"));
        }
        values.push(v);
    }
    if values.len() != want.0[0].pcrs.len() || ev.pcrs.len() != values.len() {
        return Err(AttestError::refused("attest.pcr_values", "reported PCRs are not the quoted ones, in order"));
    }
    let digest = pcr_composite(&values);
    if quote.pcr_digest != digest {
        return Err(AttestError::refused(
            "attest.pcr_digest",
            "the reported PCR values do not hash to the digest the TPM quoted",
        ));
    }
    let ek = EccPublic::decode(&ev.ek_public)
        .map_err(|e| AttestError::Malformed { what: "endorsement key", why: e.to_string() })?;
    check_ek(&ek).map_err(|e| AttestError::refused("attest.bad_ek", e.to_string()))?;
    Ok(VerifiedTpm {
        ak_name: ak.name(),
        ek,
        pcr_digest: digest,
        manufacturer: ev.manufacturer.clone(),
        keys_sealed: ev.keys_sealed,
    })
}

/// What the owner keeps between the challenge and the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEnrollment {
    /// The verified request.
    pub request: EnrollmentRequest,
    /// SHA-256 of the credential secret.
    #[serde(with = "serde_bytes")]
    pub secret_hash: Vec<u8>,
    /// Quoted PCR digest.
    #[serde(with = "serde_bytes")]
    pub pcr_digest: Vec<u8>,
    /// TPM manufacturer.
    pub manufacturer: String,
    /// Whether the keys are sealed.
    pub keys_sealed: bool,
    /// Deadline for the response.
    pub expires_at: u64,
}

/// Step 5, first half: a credential for the AK wrapped to the EK.
pub fn make_challenge(
    v: &VerifiedRequest,
    tpm: &VerifiedTpm,
    rng: &mut impl CryptoRngCore,
    policy: &Policy,
    now: u64,
) -> Result<(CredentialChallenge, PendingEnrollment), AttestError> {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(secret.as_mut());
    let made = make_credential(&tpm.ek, &tpm.ak_name, secret.as_ref(), rng)?;
    let expires_at = now.saturating_add(policy.challenge_ttl_secs);
    let challenge = CredentialChallenge {
        request_id: v.request.request_id.clone(),
        id_object: made.id_object,
        encrypted_secret: made.encrypted_secret,
        expires_at,
    };
    let pending = PendingEnrollment {
        request: v.request.clone(),
        secret_hash: Sha256::digest(secret.as_ref()).to_vec(),
        pcr_digest: tpm.pcr_digest.to_vec(),
        manufacturer: tpm.manufacturer.clone(),
        keys_sealed: tpm.keys_sealed,
        expires_at,
    };
    Ok((challenge, pending))
}

/// Step 5, second half: the response must hold the secret; then the owner signs.
pub fn finish(
    pending: &PendingEnrollment,
    response: &ActivationResponse,
    owner: &OwnerKey,
    grant: &Grant,
    now: u64,
) -> Result<EnrollmentGrant, AttestError> {
    if response.request_id != pending.request.request_id {
        return Err(AttestError::refused("attest.wrong_request", "the response answers another request"));
    }
    if now >= pending.expires_at {
        return Err(AttestError::refused("attest.challenge_expired", "the credential challenge expired"));
    }
    response.verify_signature(&pending.request.signing_key)?;
    // Both sides are SHA-256 outputs: comparing them leaks nothing about the secret.
    if Sha256::digest(&response.secret).as_slice() != pending.secret_hash.as_slice() {
        return Err(AttestError::refused(
            "attest.activation_failed",
            "the credential did not come back: the attestation key is not in the TPM of this endorsement key",
        ));
    }
    let posture = DevicePosture {
        kind: PostureKind::Tpm,
        hardware_backed: pending.keys_sealed,
        pcr_digest: Some(pending.pcr_digest.clone()),
        tpm_manufacturer: Some(pending.manufacturer.clone()),
        verified_at: now,
    };
    issue(&pending.request, Some(posture), owner, grant, now)
}

/// A device without a TPM: the owner admits it with posture `software`, which zones
/// requiring hardware-backed keys refuse.
pub fn issue_software(
    v: &VerifiedRequest,
    owner: &OwnerKey,
    grant: &Grant,
    now: u64,
) -> Result<EnrollmentGrant, AttestError> {
    if v.tpm.is_some() {
        return Err(AttestError::State("a request with TPM evidence must pass credential activation".into()));
    }
    let posture = DevicePosture {
        kind: PostureKind::Software,
        hardware_backed: false,
        pcr_digest: None,
        tpm_manufacturer: None,
        verified_at: now,
    };
    issue(&v.request, Some(posture), owner, grant, now)
}

fn issue(
    request: &EnrollmentRequest,
    posture: Option<DevicePosture>,
    owner: &OwnerKey,
    grant: &Grant,
    now: u64,
) -> Result<EnrollmentGrant, AttestError> {
    let keys = request.node_keys()?;
    let tags: Vec<&str> = grant.tags.iter().map(String::as_str).collect();
    let attestation = NodeKeyAttestation::issue_public(
        owner,
        &keys,
        &tags,
        now,
        now + fcp_proto::keys::MAX_ATTESTATION_VALIDITY_SECS,
        posture,
    )
    .map_err(AttestError::Key)?;
    let enrollment = DeviceEnrollment::issue(
        owner,
        &keys.node_id,
        keys.signing,
        grant.allowed_zones.clone(),
        vec![StoragePermission::StoreSymbols { zones: grant.allowed_zones.clone() }],
        now,
        Some(now.saturating_add(grant.enrollment_validity_secs)),
    )
    .map_err(AttestError::Key)?;
    Ok(EnrollmentGrant { request_id: request.request_id.clone(), enrollment, attestation })
}
