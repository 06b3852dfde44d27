//! The device side: its state directory under fcpd's home, the enrollment steps, and
//! what fcpd calls at start (spec/attest.md §2, §5).
//!
//! ```text
//! HOME/node.json, HOME/keys/node-{signing,issuance,encryption}.key   plaintext node keys (until sealed)
//! HOME/attest/state.cbor          TCTI, EK public, SRK name, AK blob, PCR choices
//! HOME/attest/node-keys.sealed    the three node key seeds, sealed by the TPM (plaintext removed)
//! HOME/attest/request.cbor        the last enrollment request (public)
//! HOME/attest/enrollment.cbor     the owner's grant: DeviceEnrollment + NodeKeyAttestation
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fcp_proto::cbor;
use fcp_proto::keys::{
    DevicePosture, NodeEncryptionKey, NodeIssuanceKey, NodeKeys, NodeSigningKey, OwnerPublicKey, PostureKind,
};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::evidence::{
    ActivationResponse, CredentialChallenge, EnrollmentGrant, EnrollmentRequest, PcrValue, TpmEvidence,
};
use crate::tpm::{KeyBlob, Tpm};
use crate::wire::PcrSelection;
use crate::AttestError;

/// First line of fcpd's key files.
const KEY_HEADER: &str = "fcp-key-v1";
const NODE_KEY_FILES: [&str; 3] = ["node-signing", "node-issuance", "node-encryption"];
/// Where the kernel exposes the firmware's TCG event log.
const EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// The attestation state directory of a home.
pub fn state_dir(home: &Path) -> PathBuf {
    home.join("attest")
}

pub(crate) fn restrict_dir(dir: &Path) -> Result<(), AttestError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(AttestError::io(dir))
}

/// Writes atomically (temp file, fsync, rename) with `mode`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AttestError> {
    let dir = path.parent().ok_or_else(|| AttestError::State(format!("{} has no parent", path.display())))?;
    fs::create_dir_all(dir).map_err(AttestError::io(dir))?;
    let mut n = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(n)));
    let mut f =
        fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(AttestError::io(&tmp))?;
    f.write_all(bytes).map_err(AttestError::io(&tmp))?;
    f.sync_all().map_err(AttestError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(AttestError::io(path))?;
    Ok(())
}

/// What this device recorded about its TPM at enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    /// The TCTI enrollment used (FCP_TCTI overrides it).
    pub tcti: String,
    /// EK public (TPMT_PUBLIC): a different one means another TPM.
    #[serde(with = "serde_bytes")]
    pub ek_public: Vec<u8>,
    /// SRK name: a different one means the TPM was cleared.
    #[serde(with = "serde_bytes")]
    pub srk_name: Vec<u8>,
    /// The attestation key.
    pub ak: KeyBlob,
    /// PCRs quoted.
    pub pcrs: Vec<u8>,
}

/// The node keys as sealed by the TPM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedKeys {
    /// The sealed-data object.
    pub blob: KeyBlob,
    /// PCRs of its policy (empty: none).
    pub policy_pcrs: Vec<u8>,
}

fn read_cbor<T: serde::de::DeserializeOwned>(path: &Path, max: usize) -> Result<Option<T>, AttestError> {
    match fs::read(path) {
        Ok(b) => cbor::from_slice(&b, cbor::Limits::with_max_len(max))
            .map(Some)
            .map_err(|e| AttestError::State(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AttestError::Io { path: path.to_owned(), source: e }),
    }
}

fn write_cbor<T: Serialize>(path: &Path, v: &T) -> Result<(), AttestError> {
    let b = cbor::to_vec(v).map_err(|e| AttestError::State(e.to_string()))?;
    write_atomic(path, &b, 0o600)
}

/// The recorded TPM state, if this device enrolled with one.
pub fn read_state(home: &Path) -> Result<Option<DeviceState>, AttestError> {
    read_cbor(&state_dir(home).join("state.cbor"), 1 << 16)
}

/// The sealed node keys, if any.
pub fn read_sealed(home: &Path) -> Result<Option<SealedKeys>, AttestError> {
    read_cbor(&state_dir(home).join("node-keys.sealed"), 1 << 16)
}

/// The installed enrollment, if any.
pub fn read_grant(home: &Path) -> Result<Option<EnrollmentGrant>, AttestError> {
    match fs::read(state_dir(home).join("enrollment.cbor")) {
        Ok(b) => EnrollmentGrant::decode(&b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AttestError::Io { path: state_dir(home).join("enrollment.cbor"), source: e }),
    }
}

fn node_id(home: &Path) -> Result<String, AttestError> {
    #[derive(Deserialize)]
    struct NodeInfo {
        node_id: String,
    }
    let p = home.join("node.json");
    let info: NodeInfo = serde_json::from_slice(&fs::read(&p).map_err(AttestError::io(&p))?)
        .map_err(|e| AttestError::State(format!("{}: {e}", p.display())))?;
    Ok(info.node_id)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, AttestError> {
    let meta = fs::metadata(path).map_err(AttestError::io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(AttestError::State(format!("{} is readable by others; chmod 600 it", path.display())));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(AttestError::io(path))?);
    let mut lines = text.lines();
    if lines.next() != Some(KEY_HEADER) {
        return Err(AttestError::State(format!("{} is not an fcp key file", path.display())));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(lines.next().unwrap_or("").trim(), out.as_mut())
        .map_err(|_| AttestError::State(format!("{}: key is not 64 hex digits", path.display())))?;
    Ok(out)
}

/// The owner key of an owner node's home (`HOME/keys/owner.key`), for `fcp enroll`.
pub fn owner_key(home: &Path) -> Result<fcp_proto::keys::OwnerKey, AttestError> {
    Ok(fcp_proto::keys::OwnerKey::from_seed(&*read_key_file(&home.join("keys").join("owner.key"))?))
}

fn keys_from_seeds(node_id: String, seeds: &[u8]) -> Result<NodeKeys, AttestError> {
    if seeds.len() != 96 {
        return Err(AttestError::Unseal(format!("unsealed {} bytes, expected 96", seeds.len())));
    }
    let part = |i: usize| -> [u8; 32] {
        let mut a = [0u8; 32];
        a.copy_from_slice(&seeds[32 * i..32 * (i + 1)]);
        a
    };
    let (s, i, e) = (Zeroizing::new(part(0)), Zeroizing::new(part(1)), Zeroizing::new(part(2)));
    Ok(NodeKeys {
        node_id,
        signing: NodeSigningKey::from_seed(&s),
        issuance: NodeIssuanceKey::from_seed(&i),
        encryption: NodeEncryptionKey::from_bytes(*e),
    })
}

fn seeds(keys: &NodeKeys) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(96));
    v.extend_from_slice(keys.signing.to_seed().as_ref());
    v.extend_from_slice(keys.issuance.to_seed().as_ref());
    v.extend_from_slice(keys.encryption.to_bytes().as_ref());
    v
}

/// Where the node keys came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Plaintext key files.
    Files,
    /// Unsealed by the TPM into this process's memory.
    Tpm,
}

/// Checks that `tpm` is the TPM recorded in `state`, not another one or a cleared one.
pub fn check_identity(tpm: &mut dyn Tpm, state: &DeviceState) -> Result<(), AttestError> {
    if tpm.ek_public()? != state.ek_public {
        return Err(AttestError::TpmReplaced);
    }
    if tpm.srk_name()? != state.srk_name {
        return Err(AttestError::TpmCleared);
    }
    Ok(())
}

/// The node keys: unsealed by `tpm` when sealed, else from the key files.
pub fn load_node_keys(home: &Path, tpm: Option<&mut dyn Tpm>) -> Result<(NodeKeys, KeySource), AttestError> {
    let id = node_id(home)?;
    match read_sealed(home)? {
        Some(sealed) => {
            let tpm = tpm.ok_or_else(|| {
                AttestError::State("the node keys are sealed by a TPM, and no TPM was reached".into())
            })?;
            if let Some(state) = read_state(home)? {
                check_identity(tpm, &state)?;
            }
            let data = tpm.unseal(&sealed.blob, &sealed.policy_pcrs)?;
            Ok((keys_from_seeds(id, &data)?, KeySource::Tpm))
        }
        None => {
            let k = |name: &str| read_key_file(&home.join("keys").join(format!("{name}.key")));
            let keys = NodeKeys {
                node_id: id,
                signing: NodeSigningKey::from_seed(&*k("node-signing")?),
                issuance: NodeIssuanceKey::from_seed(&*k("node-issuance")?),
                encryption: NodeEncryptionKey::from_bytes(*k("node-encryption")?),
            };
            Ok((keys, KeySource::Files))
        }
    }
}

/// What fcpd calls at start: `Ok(None)` when the node keys are not sealed (fcpd reads
/// its key files as always), the unsealed keys when they are. Opens the TPM through
/// `FCP_TCTI` or the TCTI recorded at enrollment.
#[cfg(feature = "tss")]
pub fn load_sealed_node_keys(home: &Path) -> Result<Option<NodeKeys>, AttestError> {
    if read_sealed(home)?.is_none() {
        return Ok(None);
    }
    let configured = read_state(home)?.map(|s| s.tcti);
    let mut tpm = crate::tpm::tss::TssTpm::open(&crate::tpm::tcti_from_env(configured.as_deref()))?;
    load_node_keys(home, Some(&mut tpm)).map(|(k, _)| Some(k))
}

/// Options of [`request`].
#[derive(Clone, Debug)]
pub struct RequestOptions {
    /// The TCTI (recorded for fcpd).
    pub tcti: String,
    /// PCRs to quote (SHA-256 bank).
    pub pcrs: Vec<u8>,
    /// Seal the node keys and remove the plaintext files.
    pub seal: bool,
    /// PCRs the seal's policy binds (empty: no PCR policy).
    pub seal_pcrs: Vec<u8>,
}

/// Step 1 on the device: with `tpm`, make (or reuse) the AK, seal the node keys when
/// asked, quote with the qualifying data, and gather the evidence; without, a plain
/// statement. Signed by the node signing key.
pub fn request(
    home: &Path,
    mut tpm: Option<&mut dyn Tpm>,
    owner_nonce: [u8; 32],
    opts: &RequestOptions,
    rng: &mut impl CryptoRngCore,
    now: u64,
) -> Result<EnrollmentRequest, AttestError> {
    let dir = state_dir(home);
    fs::create_dir_all(&dir).map_err(AttestError::io(&dir))?;
    restrict_dir(&dir)?;
    let (keys, _) = load_node_keys(home, tpm.as_mut().map(|t| &mut **t as &mut dyn Tpm))?;
    let mut request_id = [0u8; 16];
    rng.fill_bytes(&mut request_id);
    let mut req = EnrollmentRequest {
        request_id: request_id.to_vec(),
        owner_nonce: owner_nonce.to_vec(),
        node_id: keys.node_id.clone(),
        signing_key: keys.signing.public(),
        encryption_key: keys.encryption.public().to_vec(),
        issuance_key: keys.issuance.public(),
        created_at: now,
        tpm: None,
        signature: Vec::new(),
    };
    if let Some(tpm) = tpm {
        let state = ensure_state(home, tpm, opts)?;
        let keys_sealed = match read_sealed(home)? {
            Some(s) => {
                if opts.seal && s.policy_pcrs != opts.seal_pcrs {
                    return Err(AttestError::State(format!(
                        "the node keys are already sealed with PCR policy {:?}; re-enroll with the same --seal-pcrs",
                        s.policy_pcrs
                    )));
                }
                true
            }
            None if opts.seal => {
                seal_node_keys(home, tpm, &keys, &opts.seal_pcrs)?;
                true
            }
            None => false,
        };
        let sel = PcrSelection::sha256(&state.pcrs);
        let (quote, quote_signature) = tpm.quote(&state.ak, &req.qualifying_data()?, &sel)?;
        let values = tpm.pcr_read(&state.pcrs)?;
        let info = tpm.info()?;
        let event_log = if state.tcti.starts_with("device") {
            fs::read(EVENT_LOG).ok().filter(|l| l.len() <= crate::evidence::MAX_EVENT_LOG_LEN)
        } else {
            None
        };
        req.tpm = Some(TpmEvidence {
            manufacturer: info.manufacturer,
            firmware_version: info.firmware_version,
            ek_public: state.ek_public.clone(),
            ek_certificate: tpm.ek_certificate()?,
            ak_public: state.ak.public.clone(),
            quote,
            quote_signature,
            pcrs: sel.slots().zip(values).map(|((_, index), v)| PcrValue { index, value: v.to_vec() }).collect(),
            event_log,
            keys_sealed,
            seal_pcrs: read_sealed(home)?.map(|s| s.policy_pcrs).unwrap_or_default(),
        });
    }
    req.sign(&keys.signing)?;
    write_atomic(&dir.join("request.cbor"), &req.encode()?, 0o600)?;
    Ok(req)
}

/// Makes the AK and records the TPM's identity, or reuses what is recorded when it is
/// still this TPM. A cleared or replaced TPM gets a fresh AK here (re-enrollment), but
/// keys sealed by the old one are gone, which [`load_node_keys`] reports first.
fn ensure_state(home: &Path, tpm: &mut dyn Tpm, opts: &RequestOptions) -> Result<DeviceState, AttestError> {
    let path = state_dir(home).join("state.cbor");
    if let Some(s) = read_state(home)? {
        if check_identity(tpm, &s).is_ok() && s.pcrs == opts.pcrs {
            return Ok(s);
        }
    }
    let state = DeviceState {
        tcti: opts.tcti.clone(),
        ek_public: tpm.ek_public()?,
        srk_name: tpm.srk_name()?,
        ak: tpm.create_ak()?,
        pcrs: opts.pcrs.clone(),
    };
    write_cbor(&path, &state)?;
    Ok(state)
}

/// Seals the node keys, checks they unseal to the same keys, then removes the
/// plaintext key files: from here on they exist only sealed and in fcpd's memory.
pub fn seal_node_keys(home: &Path, tpm: &mut dyn Tpm, keys: &NodeKeys, policy_pcrs: &[u8]) -> Result<(), AttestError> {
    let data = seeds(keys);
    let blob = tpm.seal(&data, policy_pcrs)?;
    let back = tpm.unseal(&blob, policy_pcrs)?;
    if back.as_slice() != data.as_slice() {
        return Err(AttestError::Unseal("the sealed keys came back different".into()));
    }
    write_cbor(&state_dir(home).join("node-keys.sealed"), &SealedKeys { blob, policy_pcrs: policy_pcrs.to_vec() })?;
    for name in NODE_KEY_FILES {
        let p = home.join("keys").join(format!("{name}.key"));
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AttestError::Io { path: p, source: e }),
        }
    }
    Ok(())
}

/// What [`reset`] did.
#[derive(Clone, Debug, Serialize)]
pub struct ResetReport {
    /// Where the old attestation state went.
    pub moved_to: Option<PathBuf>,
    /// Whether fresh node keys were written (the old ones were sealed and are gone).
    pub new_keys: bool,
    /// The new signing kid.
    pub signing_kid: String,
}

/// The re-enrollment path after a cleared or replaced TPM (spec/attest.md §5): moves
/// `HOME/attest/` aside to `HOME/attest.lost-<now>/` and, when the node keys were sealed
/// (and so are gone), writes fresh node keys as key files. fcpd then starts as a node
/// without posture, and `fcp-attest request` enrolls it again. With `tpm` given and
/// still unsealing the keys, nothing is lost and nothing is done unless `force`.
pub fn reset(
    home: &Path,
    tpm: Option<&mut dyn Tpm>,
    force: bool,
    rng: &mut impl CryptoRngCore,
    now: u64,
) -> Result<ResetReport, AttestError> {
    let sealed = read_sealed(home)?.is_some();
    if sealed && !force {
        if let Some(tpm) = tpm {
            if load_node_keys(home, Some(tpm)).is_ok() {
                return Err(AttestError::State(
                    "this TPM still unseals the node keys: nothing to reset (--force discards them anyway)".into(),
                ));
            }
        }
    }
    let dir = state_dir(home);
    let moved_to = if dir.exists() {
        let to = home.join(format!("attest.lost-{now}"));
        fs::rename(&dir, &to).map_err(AttestError::io(&to))?;
        Some(to)
    } else {
        None
    };
    let id = node_id(home)?;
    let have_files = NODE_KEY_FILES.iter().all(|n| home.join("keys").join(format!("{n}.key")).exists());
    let (keys, new_keys) = if sealed || !have_files {
        let keys = NodeKeys::generate(&id, rng).map_err(AttestError::Key)?;
        for (name, secret) in [
            ("node-signing", keys.signing.to_seed()),
            ("node-issuance", keys.issuance.to_seed()),
            ("node-encryption", keys.encryption.to_bytes()),
        ] {
            let text = Zeroizing::new(format!("{KEY_HEADER}\n{}\n", hex::encode(*secret)));
            write_atomic(&home.join("keys").join(format!("{name}.key")), text.as_bytes(), 0o600)?;
        }
        (keys, true)
    } else {
        (load_node_keys(home, None)?.0, false)
    };
    Ok(ResetReport { moved_to, new_keys, signing_kid: keys.signing.kid().to_string() })
}

/// Step 3 on the device: TPM2_ActivateCredential with the recorded AK; the response is
/// signed by the node signing key.
pub fn activate(
    home: &Path,
    tpm: &mut dyn Tpm,
    challenge: &CredentialChallenge,
) -> Result<ActivationResponse, AttestError> {
    let state = read_state(home)?.ok_or_else(|| {
        AttestError::State("no TPM enrollment in progress here: run `fcp-attest request` first".into())
    })?;
    let last: Option<EnrollmentRequest> = match fs::read(state_dir(home).join("request.cbor")) {
        Ok(b) => Some(EnrollmentRequest::decode(&b)?),
        Err(_) => None,
    };
    if last.as_ref().map(|r| &r.request_id) != Some(&challenge.request_id) {
        return Err(AttestError::State("the challenge answers a request this device did not make last".into()));
    }
    check_identity(tpm, &state)?;
    let secret = tpm.activate_credential(&state.ak, &challenge.id_object, &challenge.encrypted_secret)?;
    let (keys, _) = load_node_keys(home, Some(tpm))?;
    let mut r =
        ActivationResponse { request_id: challenge.request_id.clone(), secret: secret.to_vec(), signature: Vec::new() };
    r.sign(&keys.signing)?;
    Ok(r)
}

/// Step 4 on the device: keep the owner's grant after checking it names this node's
/// keys, as sent in the last request, and is signed by `owner` when given.
pub fn install(
    home: &Path,
    grant: &EnrollmentGrant,
    owner: Option<&OwnerPublicKey>,
    now: u64,
) -> Result<(), AttestError> {
    let p = state_dir(home).join("request.cbor");
    let last = EnrollmentRequest::decode(&fs::read(&p).map_err(AttestError::io(&p))?)?;
    if grant.request_id != last.request_id {
        return Err(AttestError::refused("attest.wrong_request", "the grant answers another request"));
    }
    check_grant_names(grant, &last)?;
    if let Some(owner) = owner {
        verify_grant(grant, owner, now)?;
    }
    write_atomic(&state_dir(home).join("enrollment.cbor"), &grant.encode()?, 0o600)
}

/// The grant's attestation and enrollment name exactly the request's node and keys.
pub fn check_grant_names(grant: &EnrollmentGrant, req: &EnrollmentRequest) -> Result<(), AttestError> {
    let a = &grant.attestation;
    if a.node_id != req.node_id
        || a.signing_key != req.signing_key
        || a.encryption_key.as_slice() != req.encryption_key.as_slice()
        || a.issuance_key != req.issuance_key
        || grant.enrollment.node_id != req.node_id
        || grant.enrollment.node_sig_pubkey != req.signing_key
    {
        return Err(AttestError::refused(
            "attest.node_key_mismatch",
            "the grant names other node keys than the request",
        ));
    }
    Ok(())
}

fn verify_grant(grant: &EnrollmentGrant, owner: &OwnerPublicKey, now: u64) -> Result<(), AttestError> {
    grant.enrollment.verify(owner, now).map_err(AttestError::Key)?;
    // The 24 h NodeKeyAttestation is renewed by its owner; here only its signature and
    // fields count, checked at its own issue time.
    grant.attestation.verify(owner, grant.attestation.issued_at).map_err(AttestError::Key)?;
    Ok(())
}

/// The posture fcpd may claim at `now`: the installed grant verifies against `owner`,
/// its enrollment is unexpired, it names exactly `keys`, its posture is hardware-backed,
/// and `source` shows the keys really came out of the TPM in this process.
pub fn node_posture(
    home: &Path,
    owner: &OwnerPublicKey,
    keys: &NodeKeys,
    source: KeySource,
    now: u64,
) -> Result<DevicePosture, AttestError> {
    let grant = read_grant(home)?.ok_or_else(|| {
        AttestError::State("this node is not enrolled with a TPM posture (no attest/enrollment.cbor)".into())
    })?;
    verify_grant(&grant, owner, now)?;
    let a = &grant.attestation;
    if a.node_id != keys.node_id
        || a.signing_key != keys.signing.public()
        || a.encryption_key != keys.encryption.public()
        || a.issuance_key != keys.issuance.public()
    {
        return Err(AttestError::refused("attest.node_key_mismatch", "the enrollment names other node keys"));
    }
    let posture = a.posture.clone().ok_or_else(|| AttestError::State("the enrollment carries no posture".into()))?;
    if posture.kind != PostureKind::Tpm || !posture.hardware_backed {
        return Err(AttestError::State("the enrolled posture is software only".into()));
    }
    if source != KeySource::Tpm {
        return Err(AttestError::State("the node keys were read from files, not unsealed by the TPM".into()));
    }
    Ok(posture)
}
