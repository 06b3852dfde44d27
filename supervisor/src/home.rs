//! The state directory: keys (0600, refused when more open), the node's attestation,
//! owner-signed zone definitions and policies, trusted publishers, and `fcpd init`.
//!
//! ```text
//! HOME/keys/{owner,node-signing,node-issuance,node-encryption}.key   0600
//! HOME/keys/zone-<zone>.oid                                           ObjectId key per zone
//! HOME/node.json                                                      node id
//! HOME/zones/<zone>.{definition,policy}.cbor                          OwnerSigned<…>
//! HOME/trusted-publishers.json                                        hex public keys
//! HOME/state.redb                                                     the store
//! HOME/connectors/<blake3>/{binary,manifest.toml}                     content-addressed
//! HOME/instances/<connector>@<zone>/                                  $CONNECTOR_STATE
//! HOME/attest/                                                        fcp-attest: TPM state, sealed node keys, enrollment
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fcp_proto::cbor;
use fcp_proto::id::{is_canonical_id, ObjectIdKey, ZoneId};
use fcp_proto::keys::{
    AttestationClaims, DevicePosture, NodeEncryptionKey, NodeIssuanceKey, NodeKeyAttestation, NodeKeys, NodeSigningKey,
    OwnerKey,
};
use fcp_proto::zone::{standard_zones, OwnerSigned, ZoneDefinition, ZonePolicy};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// First line of every key file.
const KEY_HEADER: &str = "fcp-key-v1";

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file others may read.
    #[error("{path} has mode {mode:o}; key files must be 0600 or stricter (chmod 600 {path})")]
    KeyTooOpen {
        /// The path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A file that does not parse.
    #[error("{path}: {why}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `init` over an existing home.
    #[error("{0} is already initialised; use another --home or remove it")]
    AlreadyInitialised(PathBuf),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// The node keys are sealed by a TPM that cannot give them back (spec/attest.md §5).
    #[error("the node keys are sealed by the TPM and cannot be unsealed")]
    Sealed(#[source] fcp_attest::AttestError),
}

impl HomeError {
    /// Whether retrying cannot help: the TPM that sealed the node keys was cleared or
    /// replaced, or its PCR policy no longer holds. fcpd exits with 78 (EX_CONFIG) then,
    /// which systemd/fcpd.service does not restart.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            HomeError::Sealed(
                fcp_attest::AttestError::TpmCleared
                    | fcp_attest::AttestError::TpmReplaced
                    | fcp_attest::AttestError::Unseal(_)
            )
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io { path: path.to_owned(), source }
}

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename)
/// with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    let dir = path.parent().ok_or_else(|| HomeError::Invalid(format!("{} has no parent", path.display())))?;
    let mut nonce = [0u8; 8];
    OsRng.fill_bytes(&mut nonce);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(nonce)));
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_key(path: &Path, secret: &[u8; 32]) -> Result<(), HomeError> {
    let text = zeroize::Zeroizing::new(format!("{KEY_HEADER}\n{}\n", hex::encode(secret)));
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Reads a 32-byte key file, refusing one whose mode is more open than 0600.
pub fn read_key(path: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, HomeError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(HomeError::KeyTooOpen { path: path.to_owned(), mode });
    }
    let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let mut lines = text.lines();
    let corrupt = |why: &str| HomeError::Corrupt { path: path.to_owned(), why: why.to_owned() };
    if lines.next() != Some(KEY_HEADER) {
        return Err(corrupt("not an fcp key file"));
    }
    let hexs = lines.next().ok_or_else(|| corrupt("no key line"))?;
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hexs.trim(), out.as_mut()).map_err(|_| corrupt("key is not 64 hex digits"))?;
    Ok(out)
}

/// `node.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// The node's canonical id.
    pub node_id: String,
}

/// Everything loaded from the state directory.
pub struct Home {
    /// The directory.
    pub dir: PathBuf,
    /// Owner key (present on the owner's own device).
    pub owner: OwnerKey,
    /// This node's keys.
    pub node: NodeKeys,
    /// Zone definitions and policies, owner-signed.
    pub zones: Vec<(OwnerSigned<ZoneDefinition>, OwnerSigned<ZonePolicy>)>,
    /// Trusted publisher keys (32-byte Ed25519).
    pub trusted_publishers: Vec<[u8; 32]>,
    /// The hardware posture this node proved at enrollment and still holds (its keys
    /// came out of the TPM at load), with the enrollment's end; or why it has none.
    pub posture: Result<(DevicePosture, u64), String>,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home").field("dir", &self.dir).field("node", &self.node.node_id).finish()
    }
}

fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("keys").join(format!("{name}.key"))
}

fn zone_file(dir: &Path, zone: &ZoneId, kind: &str) -> PathBuf {
    dir.join("zones").join(format!("{}.{kind}.cbor", zone.as_str().replace(':', "_")))
}

/// The default node id: `node-` + the sanitised host name.
pub fn default_node_id() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "local".into());
    let clean: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .take(60)
        .collect();
    let id = format!("node-{clean}");
    if is_canonical_id(&id) {
        id
    } else {
        "node-local".into()
    }
}

/// What `init` created, for the caller to print.
#[derive(Clone, Debug, Serialize)]
pub struct InitReport {
    /// The directory.
    pub home: PathBuf,
    /// Node id.
    pub node_id: String,
    /// Owner kid.
    pub owner_kid: String,
    /// Node signing kid.
    pub signing_kid: String,
    /// Node issuance kid.
    pub issuance_kid: String,
    /// Zones created.
    pub zones: Vec<String>,
}

/// Creates a new state directory with fresh keys and the five standard zones.
pub fn init(dir: &Path, node_id: &str, trusted_publishers: &[[u8; 32]]) -> Result<InitReport, HomeError> {
    if !is_canonical_id(node_id) {
        return Err(HomeError::Invalid(format!("node id {node_id:?} is not a canonical id")));
    }
    if dir.join("keys").exists() {
        return Err(HomeError::AlreadyInitialised(dir.to_owned()));
    }
    for sub in ["keys", "zones", "connectors", "instances"] {
        let p = dir.join(sub);
        fs::create_dir_all(&p).map_err(io(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).map_err(io(&p))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let mut rng = OsRng;
    let owner = OwnerKey::generate(&mut rng);
    let node = NodeKeys::generate(node_id, &mut rng).map_err(|e| HomeError::Invalid(e.to_string()))?;
    write_key(&key_path(dir, "owner"), &owner.to_seed())?;
    write_key(&key_path(dir, "node-signing"), &node.signing.to_seed())?;
    write_key(&key_path(dir, "node-issuance"), &node.issuance.to_seed())?;
    write_key(&key_path(dir, "node-encryption"), &node.encryption.to_bytes())?;
    let info = serde_json::to_vec_pretty(&NodeInfo { node_id: node_id.to_owned() })
        .map_err(|e| HomeError::Invalid(e.to_string()))?;
    write_atomic(&dir.join("node.json"), &info, 0o600)?;
    let mut zones = Vec::new();
    for (def, policy) in standard_zones() {
        let zone = def.zone_id.clone();
        let mut oid = [0u8; 32];
        rng.fill_bytes(&mut oid);
        write_key(&dir.join("keys").join(format!("zone-{}.oid", zone.as_str().replace(':', "_"))), &oid)?;
        let d = OwnerSigned::sign(&owner, def).map_err(|e| HomeError::Invalid(e.to_string()))?;
        let p = OwnerSigned::sign(&owner, policy).map_err(|e| HomeError::Invalid(e.to_string()))?;
        write_atomic(&zone_file(dir, &zone, "definition"), &enc(&d)?, 0o600)?;
        write_atomic(&zone_file(dir, &zone, "policy"), &enc(&p)?, 0o600)?;
        zones.push(zone.to_string());
    }
    let pubs: Vec<String> = trusted_publishers.iter().map(hex::encode).collect();
    let text = serde_json::to_vec_pretty(&pubs).map_err(|e| HomeError::Invalid(e.to_string()))?;
    write_atomic(&dir.join("trusted-publishers.json"), &text, 0o600)?;
    Ok(InitReport {
        home: dir.to_owned(),
        node_id: node_id.to_owned(),
        owner_kid: owner.kid().to_string(),
        signing_kid: node.signing.kid().to_string(),
        issuance_kid: node.issuance.kid().to_string(),
        zones,
    })
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, HomeError> {
    cbor::to_vec(v).map_err(|e| HomeError::Invalid(e.to_string()))
}

impl Home {
    /// Loads and checks everything `init` wrote.
    pub fn load(dir: &Path) -> Result<Home, HomeError> {
        if !dir.join("keys").is_dir() {
            return Err(HomeError::Invalid(format!(
                "{} is not initialised; run `fcp init --home {}`",
                dir.display(),
                dir.display()
            )));
        }
        let info_path = dir.join("node.json");
        let info: NodeInfo = serde_json::from_slice(&fs::read(&info_path).map_err(io(&info_path))?)
            .map_err(|e| HomeError::Corrupt { path: info_path.clone(), why: e.to_string() })?;
        let owner = OwnerKey::from_seed(&*read_key(&key_path(dir, "owner"))?);
        // Node keys sealed at enrollment come only from the TPM (spec/attest.md §2); a
        // node that never sealed them does not touch the TPM at all.
        let (node, source) = match fcp_attest::device::load_sealed_node_keys(dir).map_err(HomeError::Sealed)? {
            Some(keys) => (keys, fcp_attest::device::KeySource::Tpm),
            None => (
                NodeKeys {
                    node_id: info.node_id,
                    signing: NodeSigningKey::from_seed(&*read_key(&key_path(dir, "node-signing"))?),
                    issuance: NodeIssuanceKey::from_seed(&*read_key(&key_path(dir, "node-issuance"))?),
                    encryption: NodeEncryptionKey::from_bytes(*read_key(&key_path(dir, "node-encryption"))?),
                },
                fcp_attest::device::KeySource::Files,
            ),
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let posture = fcp_attest::device::node_posture(dir, &owner.public(), &node, source, now)
            .and_then(|p| {
                let until =
                    fcp_attest::device::read_grant(dir)?.and_then(|g| g.enrollment.expires_at).unwrap_or(u64::MAX);
                Ok((p, until))
            })
            .map_err(|e| e.to_string());
        let mut zones = Vec::new();
        for (def, _) in standard_zones() {
            let zone = def.zone_id;
            let read = |kind: &str| -> Result<Vec<u8>, HomeError> {
                let p = zone_file(dir, &zone, kind);
                fs::read(&p).map_err(io(&p))
            };
            let limits = cbor::Limits::with_max_len(1 << 20);
            let d: OwnerSigned<ZoneDefinition> = cbor::from_slice(&read("definition")?, limits)
                .map_err(|e| HomeError::Corrupt { path: zone_file(dir, &zone, "definition"), why: e.to_string() })?;
            let p: OwnerSigned<ZonePolicy> = cbor::from_slice(&read("policy")?, limits)
                .map_err(|e| HomeError::Corrupt { path: zone_file(dir, &zone, "policy"), why: e.to_string() })?;
            d.verify(&owner.public())
                .map_err(|e| HomeError::Corrupt { path: zone_file(dir, &zone, "definition"), why: e.to_string() })?;
            p.verify(&owner.public())
                .map_err(|e| HomeError::Corrupt { path: zone_file(dir, &zone, "policy"), why: e.to_string() })?;
            zones.push((d, p));
        }
        let tp_path = dir.join("trusted-publishers.json");
        let pubs: Vec<String> = match fs::read(&tp_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| HomeError::Corrupt { path: tp_path.clone(), why: e.to_string() })?,
            Err(_) => Vec::new(),
        };
        let trusted_publishers = pubs
            .iter()
            .map(|h| {
                let mut k = [0u8; 32];
                hex::decode_to_slice(h, &mut k).map(|()| k).map_err(|_| HomeError::Corrupt {
                    path: tp_path.clone(),
                    why: format!("{h:?} is not a 32-byte hex key"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Home { dir: dir.to_owned(), owner, node, zones, trusted_publishers, posture })
    }

    /// The ObjectId key of `zone`.
    pub fn object_id_key(&self, zone: &ZoneId) -> Result<ObjectIdKey, HomeError> {
        let p = self.dir.join("keys").join(format!("zone-{}.oid", zone.as_str().replace(':', "_")));
        Ok(ObjectIdKey(*read_key(&p)?))
    }

    /// A fresh owner-signed attestation of this node's keys, valid for 24 h from `now`.
    pub fn attest(&self, now: u64) -> Result<NodeKeyAttestation, HomeError> {
        NodeKeyAttestation::issue(
            &self.owner,
            AttestationClaims {
                node: &self.node,
                tags: &["fcpd"],
                issued_at: now,
                expires_at: now + 24 * 3600,
                posture: self.hardware_posture(now).ok().cloned(),
            },
        )
        .map_err(|e| HomeError::Invalid(e.to_string()))
    }

    /// This node's hardware posture at `now`, or why it has none: what a zone that
    /// requires hardware-backed keys asks before it gives the node anything.
    pub fn hardware_posture(&self, now: u64) -> Result<&DevicePosture, String> {
        match &self.posture {
            Ok((p, until)) if now < *until => Ok(p),
            Ok(_) => Err("its TPM enrollment expired; re-enroll it".to_owned()),
            Err(why) => Err(why.clone()),
        }
    }

    /// The verified policy of `zone`.
    pub fn zone_policy(&self, zone: &ZoneId) -> Option<&ZonePolicy> {
        self.zones.iter().map(|(_, p)| &p.body).find(|p| &p.zone_id == zone)
    }

    /// The verified definition of `zone`.
    pub fn zone_definition(&self, zone: &ZoneId) -> Option<&ZoneDefinition> {
        self.zones.iter().map(|(d, _)| &d.body).find(|d| &d.zone_id == zone)
    }

    /// Where the store lives.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("state.redb")
    }

    /// Where a connector binary of this hash lives.
    pub fn connector_dir(&self, binary_hash: &[u8; 32]) -> PathBuf {
        self.dir.join("connectors").join(hex::encode(binary_hash))
    }

    /// The state directory of an instance.
    pub fn instance_dir(&self, connector: &str, zone: &ZoneId) -> PathBuf {
        self.dir.join("instances").join(format!("{connector}@{}", zone.as_str().replace(':', "_")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_and_refuse_open_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("home");
        let report = init(&dir, "node-test", &[[7; 32]]).expect("init");
        assert_eq!(report.zones.len(), 5);
        assert!(matches!(init(&dir, "node-test", &[]), Err(HomeError::AlreadyInitialised(_))));
        let home = Home::load(&dir).expect("load");
        assert_eq!(home.node.node_id, "node-test");
        assert_eq!(home.trusted_publishers, vec![[7; 32]]);
        assert_eq!(home.owner.kid().to_string(), report.owner_kid);
        let mode = fs::metadata(key_path(&dir, "owner")).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::set_permissions(key_path(&dir, "owner"), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(Home::load(&dir), Err(HomeError::KeyTooOpen { mode: 0o644, .. })));
    }
}
