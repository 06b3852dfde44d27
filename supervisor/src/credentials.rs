//! fcpd's secret store for credentials the egress proxy injects (host-protocol.md §7):
//! one file per credential under `<home>/credentials/` (the folder 0700, each file
//! 0600, written atomically). A connector never sees a secret: it is configured with
//! the credential's id (`credential_id`), and the proxy swaps the real value in, only
//! toward the hosts the credential is bound to, only over TLS it intercepts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fcp_egress::mitm::{Auth, Credential, CredentialSet};
use fcp_proto::control::{CredentialAuth, SecretText};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// One stored credential (the file's JSON).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    id: String,
    hosts: Vec<String>,
    auth: CredentialAuth,
    secret: SecretText,
    placeholder: Option<String>,
}

/// The store.
#[derive(Debug)]
pub struct CredentialStore {
    dir: PathBuf,
}

/// Whether `id` is a usable credential id: 1 to 128 of `[A-Za-z0-9._-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl CredentialStore {
    /// The store in `dir`, created 0700 if missing.
    pub fn open(dir: &Path) -> std::io::Result<CredentialStore> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(CredentialStore { dir: dir.to_owned() })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Stores (or replaces) a credential, after checking it the way the proxy will use
    /// it: an id, bound hosts that are names or `*.` wildcards, a header name and
    /// values that fit in a header.
    pub fn add(
        &self,
        id: &str,
        hosts: Vec<String>,
        auth: CredentialAuth,
        secret: SecretText,
        placeholder: Option<String>,
    ) -> Result<(), String> {
        if !valid_id(id) {
            return Err(format!("credential id {id:?}: expected 1 to 128 of A-Z a-z 0-9 . _ -"));
        }
        if secret.0.is_empty() {
            return Err("the secret is empty".into());
        }
        let stored = Stored { id: id.to_owned(), hosts, auth, secret, placeholder };
        CredentialSet::new(vec![credential(&stored)], None).map_err(|e| format!("credential {id}: {e}"))?;
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| e.to_string())?);
        crate::home::write_atomic(&self.path(id), &bytes, 0o600).map_err(|e| e.to_string())
    }

    /// Forgets a credential; `false` when there was none.
    pub fn remove(&self, id: &str) -> Result<bool, String> {
        if !valid_id(id) {
            return Err(format!("credential id {id:?} is not valid"));
        }
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    fn load(&self, id: &str) -> Result<Stored, String> {
        if !valid_id(id) {
            return Err(format!("credential id {id:?} is not valid"));
        }
        let bytes = Zeroizing::new(fs::read(self.path(id)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("no credential {id} is stored (fcp credential add)"),
            _ => format!("credential {id}: {e}"),
        })?);
        serde_json::from_slice(&bytes).map_err(|e| format!("credential {id} is unreadable: {e}"))
    }

    /// Every stored credential without its secret.
    pub fn list(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else { return out };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
            .collect();
        ids.sort();
        for id in ids {
            match self.load(&id) {
                Ok(s) => out.push(json!({
                    "id": s.id,
                    "hosts": s.hosts,
                    "auth": s.auth,
                    "placeholder": s.placeholder.is_some(),
                })),
                Err(e) => out.push(json!({ "id": id, "error": e })),
            }
        }
        out
    }

    /// The credential set of an instance whose config names `ids`; the first is the
    /// default (injected for a connector that sends no auth header at all).
    pub fn set_for(&self, ids: &[String]) -> Result<CredentialSet, String> {
        let credentials = ids.iter().map(|id| self.load(id).map(|s| credential(&s))).collect::<Result<Vec<_>, _>>()?;
        CredentialSet::new(credentials, ids.first().map(String::as_str)).map_err(|e| e.to_string())
    }
}

fn credential(s: &Stored) -> Credential {
    let secret = Zeroizing::new(s.secret.0.clone());
    let auth = match &s.auth {
        CredentialAuth::Bearer => Auth::Bearer(secret),
        CredentialAuth::Basic { user } => Auth::Basic { user: user.clone(), password: secret },
        CredentialAuth::Header { header } => Auth::Header { name: header.clone(), value: secret },
    };
    Credential { id: s.id.clone(), hosts: s.hosts.clone(), auth, placeholder: s.placeholder.clone() }
}

/// The credential ids an instance's operator config names: `credential_id` (a string)
/// and `credential_ids` (an array of strings), host-protocol.md §7.
pub fn ids_in(config: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut ids: Vec<String> =
        config.get("credential_id").and_then(Value::as_str).map(str::to_owned).into_iter().collect();
    for id in config.get("credential_ids").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stored_0600_listed_without_secrets_and_loaded_into_a_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::open(&tmp.path().join("credentials")).expect("store");
        store
            .add(
                "gh-1",
                vec!["api.github.com".into()],
                CredentialAuth::Bearer,
                SecretText("ghp_verysecretvalue".into()),
                None,
            )
            .expect("add");
        let mode = fs::metadata(tmp.path().join("credentials/gh-1.json")).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let listed = serde_json::to_string(&store.list()).expect("json");
        assert!(listed.contains("gh-1") && listed.contains("api.github.com"));
        assert!(!listed.contains("ghp_verysecretvalue"), "{listed}");
        let set = store.set_for(&["gh-1".into()]).expect("set");
        assert!(!format!("{set:?}").contains("ghp_verysecretvalue"));
        assert!(store.set_for(&["missing".into()]).expect_err("missing").contains("no credential missing"));
        assert!(store.remove("gh-1").expect("remove"));
        assert!(!store.remove("gh-1").expect("remove again"));
    }

    #[test]
    fn bad_ids_hosts_and_empty_secrets_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::open(tmp.path()).expect("store");
        let add = |id: &str, host: &str, secret: &str| {
            store.add(id, vec![host.into()], CredentialAuth::Bearer, SecretText(secret.into()), None)
        };
        assert!(add("../x", "a.example", "s").is_err());
        assert!(add("ok", "a.example", "").is_err());
        assert!(add("ok", "10.0.0.1", "s").is_err(), "an address is not a host to bind a credential to");
        assert!(add("ok", "a.example", "s").is_ok());
    }

    #[test]
    fn instance_configs_name_credentials_by_id() {
        let config = json!({ "credential_id": "a", "credential_ids": ["b", "a"], "other": 1 });
        assert_eq!(ids_in(config.as_object().expect("object")), ["a", "b"]);
        assert!(ids_in(json!({}).as_object().expect("object")).is_empty());
    }
}
