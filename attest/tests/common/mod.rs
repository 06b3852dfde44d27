//! A private swtpm per test: free TCP ports on 127.0.0.1, its own state directory,
//! killed on drop. Without swtpm the tests say they were skipped, and fail when
//! FCP_REQUIRE_PRIVILEGED=1 (CI installs swtpm through scripts/setup.sh).

#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fcp_proto::keys::{NodeKeys, OwnerKey};
use rand_core::OsRng;

pub struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Whether `tools` are installed; if not, says the test is skipped, or panics when
/// FCP_REQUIRE_PRIVILEGED=1.
pub fn require(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: {missing:?} not installed and FCP_REQUIRE_PRIVILEGED=1 (run scripts/setup.sh)");
    }
    eprintln!("SKIPPED {test}: {missing:?} not installed (scripts/setup.sh installs them)");
    false
}

fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = l.local_addr() else { continue };
        let p = addr.port();
        if p < 65535 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free pair of TCP ports on 127.0.0.1");
}

impl Swtpm {
    pub fn start() -> Swtpm {
        for _ in 0..5 {
            let state = tempfile::tempdir().expect("tempdir");
            let port = free_port_pair();
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn swtpm");
            let mut s = Swtpm { child, port, _state: state };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return s;
                }
                if let Ok(Some(_)) = s.child.try_wait() {
                    break; // lost a race for the port: try another pair
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(s);
        }
        panic!("swtpm did not start");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a tpm2-tools command against `tcti`; panics with its output when it fails.
pub fn tpm2(tcti: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", tcti)
        .output()
        .expect("run tpm2-tools");
    out
}

/// A home as `fcpd init` leaves it, as far as fcp-attest reads it.
pub struct TestHome {
    pub dir: tempfile::TempDir,
    pub keys: NodeKeys,
    pub owner: OwnerKey,
}

impl TestHome {
    pub fn new(node_id: &str) -> TestHome {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = NodeKeys::generate(node_id, &mut OsRng).expect("keys");
        let owner = OwnerKey::generate(&mut OsRng);
        std::fs::write(dir.path().join("node.json"), format!("{{\"node_id\":\"{node_id}\"}}")).expect("node.json");
        let kdir = dir.path().join("keys");
        std::fs::create_dir(&kdir).expect("keys");
        for (name, secret) in [
            ("node-signing", *keys.signing.to_seed()),
            ("node-issuance", *keys.issuance.to_seed()),
            ("node-encryption", *keys.encryption.to_bytes()),
        ] {
            let p = kdir.join(format!("{name}.key"));
            std::fs::write(&p, format!("fcp-key-v1\n{}\n", hex::encode(secret))).expect("key");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        TestHome { dir, keys, owner }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("keys").join(format!("{name}.key"))
    }
}
