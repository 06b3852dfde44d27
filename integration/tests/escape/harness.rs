//! The escape suite's harness: the static hostile program, the jails it runs in (`fcp
//! sandbox run` with a manifest derived from `strict.toml`), how an attempt ended, and
//! the host-side bait (a process, listeners, files).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::Signal;
use serde_json::Value;
use tempfile::TempDir;

use crate::bins::{bins, build_dirs, cargo};

/// The environment variable every `fcp` run gets from the test, with [`secret`] as value:
/// it must not reach the jail.
pub(crate) const SECRET_VAR: &str = "FCP_ESCAPE_SECRET";

/// How long one `fcp sandbox run` may take before the test kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the test `test` can run here: it needs root. Without root it says
/// `skipped: needs root` and returns `false`; with `FCP_REQUIRE_PRIVILEGED=1` (CI) a skip
/// is a failure.
pub(crate) fn privileged(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let required = std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    assert!(!required, "{test}: needs root, and FCP_REQUIRE_PRIVILEGED=1 forbids skipping it");
    eprintln!("{test}: skipped: needs root");
    false
}

/// Serializes the tests that load the machine (fork bomb, CPU quota, memory), so that
/// each measures its own jail and the host stays usable for the others.
pub(crate) fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A value only this test process knows, put where the jail must not see it.
pub(crate) fn secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut bytes = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        format!("fcp-escape-secret-{}", hex::encode(bytes))
    })
}

/// The hostile program (`integration/hostile/`), built static once per test process:
/// the jail gives it no loader or libraries but its own.
pub(crate) fn hostile() -> &'static Path {
    static HOSTILE: OnceLock<PathBuf> = OnceLock::new();
    HOSTILE.get_or_init(build_hostile)
}

/// `cargo build -p fcp-hostile --release --target <native> --target-dir <target>/hostile-static`
/// with `+crt-static`. An explicit `--target` keeps RUSTFLAGS off build scripts (which
/// run on the host and need not link statically), and a target dir of its own keeps the
/// workspace's other builds from being rebuilt for the flag.
fn build_hostile() -> PathBuf {
    // The gnu triple of the machine's architecture: glibc links statically (`crt-static`).
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = build_dirs().target.join("hostile-static");
    let out = cargo()
        .args(["build", "--locked", "-p", "fcp-hostile", "--release", "--target", &triple, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build of fcp-hostile failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let program = target_dir.join(&triple).join("release").join("fcp-hostile");
    assert_static(&program);
    program
}

/// Panics unless `path` is an ELF file without a `PT_INTERP` program header (a static
/// or static-pie executable).
fn assert_static(path: &Path) {
    const PT_INTERP: u32 = 3;
    let elf = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(elf.len() > 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1, "not a 64-bit LE ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes"));
        assert_ne!(p_type, PT_INTERP, "{} has a PT_INTERP header: it is not static", path.display());
    }
}

/// A jail for the hostile program: a temporary folder holding the state dir, a
/// read-only folder of the test's own (with a file `config`), and the manifest:
/// `strict.toml` with that folder as its one `fs_readonly_paths` entry and any
/// `[sandbox]` lines the test replaces.
pub(crate) struct Jail {
    /// The temporary folder (canonical).
    pub(crate) dir: PathBuf,
    /// The state dir (`--state-dir`), created by `fcp` unless the test made it first.
    pub(crate) state: PathBuf,
    /// A host folder the manifest lists in `fs_readonly_paths`.
    pub(crate) readonly: PathBuf,
    /// The program run in the jail.
    pub(crate) program: PathBuf,
    manifest: PathBuf,
    runs: AtomicU32,
    _tmp: TempDir,
}

/// What `readonly/config` holds.
pub(crate) const CONFIG: &str = "allowed to read\n";

impl Jail {
    /// `strict.toml` as it is.
    pub(crate) fn strict() -> Jail {
        Jail::with(&[])
    }

    /// `strict.toml` with each `[sandbox]` line `key = …` of `replace` set to the given
    /// TOML value.
    pub(crate) fn with(replace: &[(&str, &str)]) -> Jail {
        let tmp = tempfile::Builder::new().prefix("fcp-escape-").tempdir().expect("make a temporary folder");
        let dir = tmp.path().canonicalize().expect("canonical temporary folder");
        let readonly = dir.join("readonly");
        fs::create_dir(&readonly).expect("make the read-only folder");
        fs::write(readonly.join("config"), CONFIG).expect("write readonly/config");
        let readonly_list = format!("[{:?}]", readonly.display().to_string());
        let mut lines = vec![("fs_readonly_paths", readonly_list.as_str())];
        lines.extend_from_slice(replace);
        let manifest = dir.join("manifest.toml");
        fs::write(&manifest, sandbox_lines(include_str!("strict.toml"), &lines)).expect("write the manifest");
        Jail {
            state: dir.join("state"),
            readonly,
            program: hostile().to_owned(),
            manifest,
            runs: AtomicU32::new(0),
            dir,
            _tmp: tmp,
        }
    }

    /// Runs a copy of the hostile program of this jail's own, so that its processes can
    /// be told from other tests' (by inode).
    pub(crate) fn with_own_program(mut self) -> Jail {
        let bin = self.dir.join("bin");
        fs::create_dir(&bin).expect("make bin/");
        let program = bin.join("fcp-hostile");
        fs::copy(hostile(), &program).expect("copy the hostile program");
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        self.program = program;
        self
    }

    /// `fcp sandbox run --manifest M --state-dir S --profile strict --summary F --
    /// PROGRAM ARGS…`, with [`SECRET_VAR`] in its environment, and the summary file.
    pub(crate) fn command(&self, args: &[&str]) -> (Command, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let summary = self.dir.join(format!("summary-{n}.json"));
        let mut cmd = Command::new(&bins().fcp);
        cmd.args(["sandbox", "run", "--manifest"])
            .arg(&self.manifest)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--profile", "strict", "--summary"])
            .arg(&summary)
            .arg("--")
            .arg(&self.program)
            .args(args)
            .env(SECRET_VAR, secret())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (cmd, summary)
    }

    /// Runs the hostile program with `args` in the jail to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let (mut cmd, summary) = self.command(args);
        let started = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Run::finish(format!("{cmd:?}"), child, &summary, started)
    }
}

/// `template` with the value of each `[sandbox]` line `key = …` of `lines` replaced.
fn sandbox_lines(template: &str, lines: &[(&str, &str)]) -> String {
    let sandbox = template.find("\n[sandbox]\n").expect("strict.toml has a [sandbox] section");
    let (head, mut tail) = (template[..sandbox].to_owned(), template[sandbox..].to_owned());
    for (key, value) in lines {
        let start = tail.find(&format!("\n{key} = ")).unwrap_or_else(|| panic!("[sandbox] has no {key}")) + 1;
        let end = tail[start..].find('\n').map_or(tail.len(), |e| start + e);
        tail.replace_range(start..end, &format!("{key} = {value}"));
    }
    head + &tail
}

/// One finished `fcp sandbox run`.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) command: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The `--summary` file, if `fcp` wrote one.
    pub(crate) summary: Option<Value>,
    pub(crate) elapsed: Duration,
}

impl Run {
    /// Reads `child`'s output to its end (killing it after [`RUN_TIMEOUT`]) and its summary.
    pub(crate) fn finish(command: String, mut child: Child, summary: &Path, started: Instant) -> Run {
        let pipe = |r: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_string(&mut s);
                }
                s
            })
        };
        let out = pipe(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
        let err = pipe(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for fcp") {
                break status;
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command} ran longer than {RUN_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        let summary = fs::read_to_string(summary).ok().map(|t| {
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("summary of {command} is not JSON ({e}): {t}"))
        });
        Run {
            command,
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
            summary,
            elapsed,
        }
    }

    /// How the attempt ended.
    pub(crate) fn outcome(&self) -> Outcome {
        let summary = self.summary.clone().unwrap_or(Value::Null);
        let signal = self.status.code().and_then(|c| c.checked_sub(128)).filter(|s| *s > 0);
        match (self.status.code(), signal, summary["signal"].as_i64()) {
            (Some(0), _, _) => match self.report() {
                Some(report) if report["result"] == "allowed" => Outcome::Allowed(report),
                Some(report) if report["result"] == "denied" => match report["errno"].as_i64() {
                    Some(errno) => Outcome::Denied(errno as i32),
                    None => Outcome::Other(format!("denied without an errno: {report}")),
                },
                _ => Outcome::Other(format!("exit 0 without a report:\n{self}")),
            },
            (Some(_), Some(signal), Some(reported)) if i64::from(signal) == reported => {
                Outcome::Killed { signal, breach: summary["breach"].clone() }
            }
            _ => Outcome::Other(format!("unexpected end:\n{self}")),
        }
    }

    /// The hostile program's JSON line, if it printed one.
    pub(crate) fn report(&self) -> Option<Value> {
        let line = self.stdout.lines().next()?;
        serde_json::from_str(line).ok()
    }

    /// The summary, which every run that started the program must have written.
    #[track_caller]
    pub(crate) fn summary(&self) -> &Value {
        self.summary.as_ref().unwrap_or_else(|| panic!("no --summary file:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` ({}, {:?})\n--- stdout\n{}\n--- stderr\n{}\n--- summary\n{}",
            self.command,
            self.status,
            self.elapsed,
            self.stdout,
            self.stderr,
            self.summary.as_ref().map_or("none".to_owned(), Value::to_string)
        )
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The kernel did it: a way out (the report says what it got).
    Allowed(Value),
    /// Refused with this errno.
    Denied(i32),
    /// `fcp` exited with 128 + `signal` and its summary names that signal and `breach`.
    Killed { signal: i32, breach: Value },
    /// Anything else (described).
    Other(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Allowed(report) => write!(f, "allowed: {report}"),
            Outcome::Denied(errno) => write!(f, "denied with {}", describe_errno(*errno)),
            Outcome::Killed { signal, breach } => write!(f, "killed by signal {signal}, breach {breach}"),
            Outcome::Other(what) => f.write_str(what),
        }
    }
}

/// What an attempt must end with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expect {
    /// Refused with this errno.
    Errno(Errno),
    /// Killed by SIGSYS, the summary naming the seccomp breach and this syscall.
    Seccomp(&'static str),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Errno(e) => write!(f, "denied with {}", describe_errno(e.raw_os_error())),
            Expect::Seccomp(name) => write!(f, "killed by SIGSYS for {name}"),
        }
    }
}

/// `ENOENT (No such file or directory)`-like text for an errno.
pub(crate) fn describe_errno(errno: i32) -> String {
    format!("errno {errno} ({})", std::io::Error::from_raw_os_error(errno))
}

/// Every way out the suite found, so that one run reports all of them.
#[derive(Default)]
pub(crate) struct Findings(Vec<String>);

impl Findings {
    /// Runs `args` in `jail` and records a finding unless it ended as `expect`.
    pub(crate) fn attempt(&mut self, jail: &Jail, args: &[&str], expect: Expect) -> Run {
        let run = jail.run(args);
        let attempt = args.join(" ");
        let got = run.outcome();
        let ok = match (&got, expect) {
            (Outcome::Denied(errno), Expect::Errno(want)) => *errno == want.raw_os_error(),
            (Outcome::Killed { signal, breach }, Expect::Seccomp(name)) => {
                *signal == Signal::SYS.as_raw()
                    && breach["limit"] == "seccomp"
                    && breach["syscall"] == name
                    && run.stdout.is_empty()
            }
            _ => false,
        };
        if !ok {
            self.0.push(format!("`{attempt}`: expected {expect}, got {got}\n{run}"));
        }
        run
    }

    /// Records `finding` unless `ok`.
    pub(crate) fn check(&mut self, ok: bool, finding: impl FnOnce() -> String) {
        if !ok {
            self.0.push(finding());
        }
    }

    /// Panics listing every finding.
    #[track_caller]
    pub(crate) fn assert_none(self) {
        assert!(self.0.is_empty(), "{} way(s) out of the jail:\n\n{}", self.0.len(), self.0.join("\n\n"));
    }
}

/// A `sleep 300` on the host, with [`SECRET_VAR`] in its environment; killed on drop.
pub(crate) struct HostProcess(Child);

impl HostProcess {
    pub(crate) fn start() -> HostProcess {
        let child = Command::new("sleep")
            .arg("300")
            .env(SECRET_VAR, secret())
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep on the host");
        HostProcess(child)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether it still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host's own addresses other than loopback and link-local: IPv4 from the FIB
/// trie's `/32 host LOCAL` leaves, IPv6 from `/proc/net/if_inet6` (global scope).
pub(crate) fn host_addresses() -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    let trie = fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut last = "";
    for line in trie.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr;
        } else if line.contains("/32 host LOCAL") {
            if let Ok(ip) = last.parse::<std::net::Ipv4Addr>() {
                if !ip.is_loopback() && !out.contains(&ip.into()) {
                    out.push(ip.into());
                }
            }
        }
    }
    for line in fs::read_to_string("/proc/net/if_inet6").unwrap_or_default().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // address, ifindex, prefix length, scope (0: global), flags, name
        if fields.len() < 6 || fields[3] != "00" || fields[0].len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(fields[0], 16) else { continue };
        let ip = std::net::Ipv6Addr::from(bits);
        if !ip.is_loopback() && !out.contains(&ip.into()) {
            out.push(ip.into());
        }
    }
    out
}

/// The (device, inode) of a file, to find the processes running it.
pub(crate) fn file_id(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.dev(), m.ino())
}

/// The host pids of the processes whose executable is the file `id`.
pub(crate) fn processes_running(id: (u64, u64)) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| fs::metadata(format!("/proc/{pid}/exe")).is_ok_and(|m| (m.dev(), m.ino()) == id))
        .collect()
}

/// The cgroup folders of process `pid` as the host sees them (`/proc/PID/cgroup`
/// resolved through the host's cgroup mounts in `/proc/self/mountinfo`), by hierarchy.
pub(crate) fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // (mount point, fstype, super options) of each cgroup mount.
    let cgroup_mounts: Vec<(String, String, String)> = mounts
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?.to_owned();
            let mut right = right.split_whitespace();
            let (fstype, options) = (right.next()?.to_owned(), right.nth(1)?.to_owned());
            fstype.starts_with("cgroup").then_some((point, fstype, options))
        })
        .collect();
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    own.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let (point, _, _) = cgroup_mounts.iter().find(|(_, fstype, options)| {
                if controllers.is_empty() {
                    fstype == "cgroup2"
                } else {
                    fstype == "cgroup" && controllers.split(',').all(|c| options.split(',').any(|o| o == c))
                }
            })?;
            Some(Path::new(point).join(path.trim_start_matches('/')))
        })
        .collect()
}
