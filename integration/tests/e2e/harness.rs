//! A real fcpd on a fresh home, driven through the real `fcp` binary (found by
//! [`bins`], see `tests/support/bins.rs`). The test connectors are this package's own
//! binaries.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

use crate::bins::bins;

/// How long fcpd may take to listen after `fcpd run` (it may have to repair its store
/// after a kill -9).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A test connector and the manifest it is installed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connector {
    /// `fcp-test-typed` with `connectors/fcp-test-typed.toml` (zones z:work and z:private).
    Typed,
    /// `fcp-test-mixed`.
    Mixed,
    /// `fcp-test-loose`.
    Loose,
    /// `fcp-test-typed` with `connectors/fcp-test-typed-risky.toml`: `echo` is risky.
    TypedRisky,
    /// The bundled `fcp.http` connector (install it with a manifest of the test's).
    Http,
}

impl Connector {
    pub(crate) fn id(self) -> &'static str {
        match self {
            Connector::Typed | Connector::TypedRisky => "fcp.test.typed",
            Connector::Mixed => "fcp.test.mixed",
            Connector::Loose => "fcp.test.loose",
            Connector::Http => "fcp.http",
        }
    }

    fn binary(self) -> PathBuf {
        PathBuf::from(match self {
            Connector::Typed | Connector::TypedRisky => env!("CARGO_BIN_EXE_fcp-test-typed"),
            Connector::Mixed => env!("CARGO_BIN_EXE_fcp-test-mixed"),
            Connector::Loose => env!("CARGO_BIN_EXE_fcp-test-loose"),
            Connector::Http => return bins().http.clone(),
        })
    }

    pub(crate) fn manifest(self) -> PathBuf {
        let name = match self {
            Connector::Typed => "fcp-test-typed.toml",
            Connector::Mixed => "fcp-test-mixed.toml",
            Connector::Loose => "fcp-test-loose.toml",
            Connector::TypedRisky => "fcp-test-typed-risky.toml",
            Connector::Http => return Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/http/manifest.toml"),
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors").join(name)
    }
}

/// Whether connectors get every jail layer here: root, or CI (`FCP_REQUIRE_PRIVILEGED=1`,
/// where a machine that cannot is a failure).
pub(crate) fn jailed_fully() -> bool {
    rustix::process::geteuid().is_root() || std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
}

/// One finished `fcp` (or `fcpd`) run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) command: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The exit code (`None` when killed by a signal).
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as one JSON document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout of {self} is not JSON ({e})"))
    }

    /// Panics unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), Some(code), "exit code of {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})\n--- stdout\n{}\n--- stderr\n{}", self.command, self.status, self.stdout, self.stderr)
    }
}

fn run(mut cmd: Command) -> Run {
    let command = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    Run {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A token from `fcp grant`.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// The token file (base64, as `fcp grant --out` writes it).
    pub(crate) token: PathBuf,
    /// The token id (hex).
    pub(crate) jti: String,
    /// When it expires (unix seconds).
    pub(crate) expires_at: u64,
}

/// One line of a test connector's invocation log (`fcp_integration::ops`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The connector process's token (see `fcp_integration::ops`).
    pub(crate) process: String,
    pub(crate) operation: String,
    pub(crate) request_id: String,
}

/// A fresh fcpd home with fcpd running on a socket of its own; fcpd is killed on drop.
pub(crate) struct Node {
    /// fcpd.toml.
    config: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) socket: PathBuf,
    work: PathBuf,
    log: PathBuf,
    publisher_key: PathBuf,
    child: Option<Child>,
    files: AtomicU32,
    // Last, so it is removed after fcpd is gone.
    _dir: TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Node {
    /// `fcpd init` on a fresh home trusting a fresh publisher key, then `fcpd run`, with
    /// egress off (the jails have loopback only; tests run many fcpd at once, and each
    /// egress needs its own table, pool and ports).
    pub(crate) fn start() -> Node {
        Node::start_with("[egress]\nenabled = false\n")
    }

    /// [`Node::start`] with `config` as fcpd.toml.
    pub(crate) fn start_with(config: &str) -> Node {
        let dir = tempfile::Builder::new().prefix("fcp-e2e-").tempdir().expect("make a temporary folder");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("make the work folder");
        let config_path = dir.path().join("fcpd.toml");
        std::fs::write(&config_path, config).expect("write fcpd.toml");
        let mut node = Node {
            config: config_path,
            home: dir.path().join("home"),
            socket: dir.path().join("fcpd.sock"),
            log: dir.path().join("fcpd.log"),
            publisher_key: work.join("publisher.key"),
            work,
            child: None,
            files: AtomicU32::new(0),
            _dir: dir,
        };
        let keygen = node.fcp(["keygen", "--json", "--out"], [&node.publisher_key]);
        keygen.expect_code(0);
        let public_key = keygen.json()["public_key"].as_str().expect("keygen prints public_key").to_owned();
        let mut init = Command::new(&bins().fcpd);
        init.args(["init", "--node-id", "node-e2e", "--json", "--trust-publisher", &public_key, "--home"])
            .arg(&node.home);
        run(init).expect_code(0);
        node.run_fcpd();
        node
    }

    /// Starts fcpd on the home and waits until it accepts connections.
    pub(crate) fn run_fcpd(&mut self) {
        assert!(self.child.is_none(), "fcpd is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open fcpd.log");
        let mut fcpd = Command::new(&bins().fcpd);
        fcpd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--home")
            .arg(&self.home)
            .arg("--socket")
            .arg(&self.socket);
        // Connectors run in the Linux jail. As root (CI) every layer must be in force, so
        // fcpd runs with the default policy that refuses a missing one; elsewhere the
        // owner's policy lets the layers this machine lacks be missing, audited per start.
        if !jailed_fully() {
            fcpd.arg("--allow-degraded-sandbox");
        }
        let mut child = fcpd
            .env("FCP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fcpd run");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("fcpd exited during start-up ({status}):\n{}", self.log_text());
            }
            if UnixStream::connect(&self.socket).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "fcpd did not listen within {START_TIMEOUT:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGTERM, then waits for fcpd to stop its connectors and exit 0.
    pub(crate) fn stop(&mut self) {
        let mut child = self.child.take().expect("fcpd is running");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM to fcpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for fcpd") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fcpd did not stop within 20 s of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "fcpd exited with {status} after SIGTERM:\n{}", self.log_text());
    }

    /// fcpd's process id, to signal it while other threads use the node.
    pub(crate) fn fcpd_pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_child(self.child.as_ref().expect("fcpd is running"))
    }

    /// Waits for an fcpd that was sent SIGKILL (see [`Node::fcpd_pid`]) and checks that
    /// the signal killed it.
    pub(crate) fn reap_killed(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.take().expect("fcpd was running").wait().expect("reap fcpd");
        assert_eq!(status.signal(), Some(9), "fcpd died of SIGKILL, not {status}:\n{}", self.log_text());
    }

    /// fcpd's log so far.
    pub(crate) fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A fresh path in the work folder.
    fn new_file(&self, stem: &str) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        self.work.join(format!("{stem}-{n}"))
    }

    /// `fcp --socket S <args> <paths>`.
    pub(crate) fn fcp<'a>(
        &self,
        args: impl IntoIterator<Item = &'a str>,
        paths: impl IntoIterator<Item = &'a PathBuf>,
    ) -> Run {
        let mut cmd = Command::new(&bins().fcp);
        cmd.arg("--socket").arg(&self.socket).args(args).args(paths);
        run(cmd)
    }

    /// Packages `connector` with this node's trusted publisher key and installs it in
    /// `zone`.
    pub(crate) fn install(&self, connector: Connector, zone: &str) -> Value {
        self.install_with(connector, zone, &connector.manifest())
    }

    /// [`Node::install`] with another manifest for `connector`'s binary.
    pub(crate) fn install_with(&self, connector: Connector, zone: &str, manifest: &Path) -> Value {
        let pkg = self.new_file("package");
        let binary = connector.binary();
        let mut cmd = Command::new(&bins().fcp);
        cmd.arg("package")
            .arg("--manifest")
            .arg(manifest)
            .arg("--binary")
            .arg(&binary)
            .arg("--key")
            .arg(&self.publisher_key)
            .arg("--out")
            .arg(&pkg);
        run(cmd).expect_code(0);
        let install = self.fcp(["install", "--json", "--zone", zone], [&pkg]);
        install.expect_code(0);
        let _ = std::fs::remove_file(&pkg);
        install.json()
    }

    /// `fcp grant` for `connector`/`operation` in `zone`; `extra` adds flags (`--ttl`).
    pub(crate) fn grant(&self, connector: Connector, zone: &str, operation: &str, extra: &[&str]) -> Grant {
        let token = self.new_file("token");
        let args = ["grant", "--json", "--zone", zone, "--connector", connector.id(), "--operation", operation];
        let run = self.fcp(args.into_iter().chain(extra.iter().copied()).chain(["--out"]), [&token]);
        run.expect_code(0);
        let v = run.json();
        Grant {
            token,
            jti: v["jti"].as_str().expect("grant prints jti").to_owned(),
            expires_at: v["expires_at"].as_u64().expect("grant prints expires_at"),
        }
    }

    /// `fcp invoke --json` of `connector`/`operation` in `zone` with `input`, with the
    /// token file if any; `extra` adds flags (`--intent`, `--idempotency-key K`).
    pub(crate) fn invoke(
        &self,
        connector: Connector,
        zone: &str,
        operation: &str,
        input: &Value,
        token: Option<&Path>,
        extra: &[&str],
    ) -> Run {
        let input = input.to_string();
        let mut cmd = Command::new(&bins().fcp);
        cmd.arg("--socket")
            .arg(&self.socket)
            .args(["invoke", operation, "--json", "--connector", connector.id(), "--zone", zone, "--input", &input])
            .args(extra);
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        run(cmd)
    }

    /// `fcp explain --json ID`.
    pub(crate) fn explain(&self, request_id: &str) -> Run {
        self.fcp(["explain", "--json", request_id], [])
    }

    /// Every audit event of `zone`, oldest first (`fcp audit tail --json`).
    pub(crate) fn audit_events(&self, zone: &str) -> Vec<Value> {
        let run = self.fcp(["audit", "tail", "--json", "--limit", "10000", "--zone", zone], []);
        run.expect_code(0);
        run.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?} is not JSON: {e}")))
            .collect()
    }

    /// `fcp audit verify --json --zone Z`.
    pub(crate) fn audit_verify(&self, zone: &str) -> Run {
        self.fcp(["audit", "verify", "--json", "--zone", zone], [])
    }

    /// What `connector` in `zone` really ran, from its invocation log in its state
    /// folder (`HOME/instances/<connector>@<zone with : as _>/`).
    pub(crate) fn invocations(&self, connector: Connector, zone: &str) -> Vec<Invocation> {
        let path = self
            .home
            .join("instances")
            .join(format!("{}@{}", connector.id(), zone.replace(':', "_")))
            .join(fcp_integration::ops::INVOCATIONS_LOG);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        text.lines()
            .map(|l| {
                let mut parts = l.splitn(3, ' ');
                let (Some(process), Some(operation), Some(request_id)) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("invocation log line {l:?} is not `<process> <op> <request id>`");
                };
                Invocation {
                    process: process.to_owned(),
                    operation: operation.to_owned(),
                    request_id: request_id.to_owned(),
                }
            })
            .collect()
    }
}
