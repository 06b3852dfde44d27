//! `PlainProcess` against real processes. The probe binary reports from inside what it
//! got; nothing is mocked. None of these tests needs privilege. Linux only: the probe
//! reads `/proc`.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fcp_sandbox::{
    Degradation, Jailed, Layers, Limits, Outcome, PlainProcess, Resource, Sandbox, SandboxError, SpawnSpec,
    CONNECTOR_STATE_VAR,
};
use rustix::io::FdFlags;
use serde_json::{json, Value};

const PROBE: &str = env!("CARGO_BIN_EXE_fcp-sandbox-probe");

/// How long a killed process may take to disappear before a test fails.
const BOUND: Duration = Duration::from_secs(10);

fn spec(state_dir: &Path, mode: &[&str]) -> SpawnSpec {
    let spec = SpawnSpec::new(PROBE, state_dir).expect("absolute paths");
    mode.iter().fold(spec, |s, a| s.arg(*a)).with_degradation(Degradation::allow_plain_process())
}

fn spawn(spec: &SpawnSpec) -> Jailed {
    PlainProcess::new().spawn(spec).expect("spawned")
}

/// Runs the probe to exit and returns its stdout and stderr.
fn run(mut jailed: Jailed) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let mut stderr = jailed.take_stderr().expect("stderr");
    let reader = thread::spawn(move || stderr.read_to_string(&mut err).map(|_| err));
    jailed.take_stdout().expect("stdout").read_to_string(&mut out).expect("read stdout");
    let err = reader.join().expect("stderr thread").expect("read stderr");
    let status = jailed.wait().expect("wait");
    assert!(status.success(), "probe failed: {status:?}, stderr: {err}");
    (out, err)
}

/// Spawns the probe in `report` mode with `spec` and parses its report.
fn report(spec: SpawnSpec) -> Value {
    let (out, _) = run(spawn(&spec.arg("report")));
    serde_json::from_str(&out).expect("probe prints JSON")
}

fn state_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().canonicalize().expect("canonical").join("state");
    (tmp, state)
}

/// `(state, pgrp)` of a process from `/proc/<pid>/stat`, or `None` once it is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether `pid` is gone or a zombie (dead, waiting for a reaper that may never come here).
fn is_dead(pid: u32) -> bool {
    matches!(stat(pid), None | Some(('Z' | 'X', _)))
}

fn wait_until_dead(pid: u32) {
    let start = Instant::now();
    while !is_dead(pid) {
        assert!(start.elapsed() < BOUND, "process {pid} still alive after {BOUND:?}: {:?}", stat(pid));
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn environment_is_exactly_the_specs() {
    let (_tmp, state) = state_dir();
    let spec = spec(&state, &[])
        .env("FCP_A", "1")
        .and_then(|s| s.env("FCP_B", "two words = ok"))
        .and_then(|s| s.env(CONNECTOR_STATE_VAR, state.as_os_str()))
        .expect("valid env");
    assert!(std::env::var_os("PATH").is_some(), "the test process has a PATH that must not leak");
    let got = report(spec);
    let state = state.display().to_string();
    assert_eq!(got["env"], json!({ "CONNECTOR_STATE": state, "FCP_A": "1", "FCP_B": "two words = ok" }));
}

#[test]
fn only_stdio_survives_even_when_the_parent_leaks_fds() {
    let (tmp, state) = state_dir();
    // Three fds without close-on-exec: a file, a pipe, and a copy far above the rest.
    let file = fs::File::create(tmp.path().join("leak")).expect("create");
    let (pipe_read, pipe_write) = rustix::pipe::pipe().expect("pipe");
    let high = rustix::io::fcntl_dupfd_cloexec(&file, 1000).expect("dup");
    for fd in [file.as_fd(), pipe_read.as_fd(), pipe_write.as_fd(), high.as_fd()] {
        rustix::io::fcntl_setfd(fd, FdFlags::empty()).expect("clear cloexec");
        assert_eq!(rustix::io::fcntl_getfd(fd).expect("getfd"), FdFlags::empty());
    }
    let limits = Limits { nofile: 64, ..Limits::default() };
    let got = report(spec(&state, &[]).with_limits(limits));
    let fds: Vec<&String> = got["fds"].as_object().expect("fds").keys().collect();
    assert_eq!(fds, ["0", "1", "2"], "open fds: {}", got["fds"]);
    for fd in ["0", "1", "2"] {
        assert!(got["fds"][fd].as_str().expect("target").starts_with("pipe:"), "{}", got["fds"]);
    }
}

#[test]
fn rlimits_are_set_soft_and_hard() {
    let (_tmp, state) = state_dir();
    let limits = Limits {
        memory_mb: std::num::NonZeroU32::new(512),
        nofile: 64,
        nproc: 512,
        fsize_bytes: Some(1 << 20),
        ..Limits::default()
    };
    let got = report(spec(&state, &[]).with_limits(limits));
    assert_eq!(
        got["rlimits"],
        json!({
            "core": [0, 0],
            "nofile": [64, 64],
            "nproc": [512, 512],
            "fsize": [1 << 20, 1 << 20],
            "as": [512u64 << 20, 512u64 << 20],
        })
    );
}

#[test]
fn no_memory_limit_leaves_the_address_space_alone() {
    let (_tmp, state) = state_dir();
    let got = report(spec(&state, &[]));
    let parent = rustix::process::getrlimit(rustix::process::Resource::As);
    assert_eq!(got["rlimits"]["as"], json!([parent.current, parent.maximum]));
    assert_eq!(got["rlimits"]["core"], json!([0, 0]));
}

#[test]
fn runs_in_the_state_dir_created_0700() {
    let (_tmp, state) = state_dir();
    assert!(!state.exists());
    let got = report(spec(&state, &[]));
    assert_eq!(got["cwd"], json!(state.display().to_string()));
    assert_eq!(fs::metadata(&state).expect("created").permissions().mode() & 0o777, 0o700);
    assert_eq!(got["umask"], json!("0077"));
}

#[test]
fn working_dir_can_differ_from_the_state_dir() {
    let (tmp, state) = state_dir();
    let work = tmp.path().canonicalize().expect("canonical");
    let got = report(spec(&state, &[]).with_working_dir(&work).expect("absolute"));
    assert_eq!(got["cwd"], json!(work.display().to_string()));
    assert!(state.is_dir(), "the state dir is still created");
}

#[test]
fn leads_its_own_session_and_process_group() {
    let (_tmp, state) = state_dir();
    let got = report(spec(&state, &[]));
    let pid = got["pid"].as_u64().expect("pid");
    assert_eq!(got["sid"].as_u64(), Some(pid));
    assert_eq!(got["pgid"].as_u64(), Some(pid));
    assert_eq!(got["ppid"].as_u64(), Some(u64::from(std::process::id())));
    let own_group = rustix::process::getpgid(None).expect("getpgid").as_raw_nonzero().get();
    assert_ne!(got["pgid"].as_u64(), u64::try_from(own_group).ok());
}

#[test]
fn no_new_privs_and_death_signal_are_set() {
    let (_tmp, state) = state_dir();
    let got = report(spec(&state, &[]));
    assert_eq!(got["no_new_privs"], json!("1"));
    assert_eq!(got["pdeathsig"], json!(9));
}

#[test]
fn stdio_is_piped() {
    let (_tmp, state) = state_dir();
    let mut jailed = spawn(&spec(&state, &["echo"]));
    let mut stdin = jailed.take_stdin().expect("stdin");
    stdin.write_all(b"hello\nconnector").expect("write");
    drop(stdin);
    let (out, err) = run(jailed);
    assert_eq!(out, "hello\nconnector");
    assert_eq!(err, "stderr-ok");

    let mut jailed = spawn(&spec(&state, &["report", "--stdin"]));
    jailed.take_stdin().expect("stdin").write_all(b"request").expect("write");
    // wait() would close stdin too; run() reads stdout first, so close it here.
    let (out, _) = run(jailed);
    let got: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(got["stdin"], json!("request"));
}

#[test]
fn exit_status_is_reported() {
    let (_tmp, state) = state_dir();
    let mut jailed = spawn(&spec(&state, &["exit", "7"]));
    assert_eq!(jailed.wait().expect("wait").code(), Some(7));
    assert_eq!(jailed.try_wait().expect("try_wait").and_then(|s| s.code()), Some(7));
    assert_eq!(jailed.backend(), "plain");
    assert_eq!(jailed.layers(), PlainProcess::LAYERS);
    assert_eq!(jailed.missing_layers(), Layers::ALL.difference(PlainProcess::LAYERS));
}

#[test]
fn killing_the_parent_kills_the_child() {
    let (_tmp, state) = state_dir();
    // The intermediate probe spawns a sleeping probe through PlainProcess, prints its pid
    // and exits without killing it.
    let mut intermediate = Command::new(PROBE)
        .arg("spawn-plain")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("intermediate");
    let mut line = String::new();
    BufReader::new(intermediate.stdout.take().expect("stdout")).read_line(&mut line).expect("read pid");
    assert!(intermediate.wait().expect("wait").success());
    let pid: u32 = line.trim().parse().expect("pid line");
    wait_until_dead(pid);
}

#[test]
fn kill_kills_the_process_group() {
    let (_tmp, state) = state_dir();
    let mut jailed = spawn(&spec(&state, &["fork-sleep"]));
    let mut line = String::new();
    BufReader::new(jailed.take_stdout().expect("stdout")).read_line(&mut line).expect("read pid");
    let grandchild: u32 = line.trim().parse().expect("pid line");
    assert_eq!(stat(grandchild).map(|(_, pgrp)| pgrp), Some(jailed.pid()), "the grandchild is in the group");
    jailed.kill().expect("kill");
    assert_eq!(jailed.wait().expect("wait").signal(), Some(libc::SIGKILL));
    wait_until_dead(grandchild);
    jailed.kill().expect("killing a dead group is not an error");
}

#[test]
fn wait_timeout_enforces_the_wall_clock() {
    let (_tmp, state) = state_dir();
    let limits = Limits { wall_clock_timeout: Duration::from_millis(300), ..Limits::default() };
    let start = Instant::now();
    let mut jailed = spawn(&spec(&state, &["sleep", "30"]).with_limits(limits));
    match jailed.wait_timeout().expect("wait") {
        Outcome::TimedOut(status) => assert_eq!(status.signal(), Some(libc::SIGKILL)),
        other => panic!("unexpected {other:?}"),
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < BOUND, "{elapsed:?}");

    let mut jailed = spawn(&spec(&state, &["exit", "0"]).with_limits(Limits::default()));
    match jailed.wait_timeout().expect("wait") {
        Outcome::Exited(status) => assert_eq!(status.code(), Some(0)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn dropping_the_handle_kills_the_connector() {
    let (_tmp, state) = state_dir();
    let jailed = spawn(&spec(&state, &["sleep", "60"]));
    let pid = jailed.pid();
    assert!(!is_dead(pid));
    drop(jailed);
    wait_until_dead(pid);
}

#[test]
fn refuses_without_an_explicit_degradation() {
    let (_tmp, state) = state_dir();
    let spec = spec(&state, &["report"]).with_degradation(Degradation::Refuse);
    match PlainProcess::new().spawn(&spec) {
        Err(SandboxError::LayersMissing { backend: "plain", refused }) => {
            assert_eq!(refused, Layers::ALL.difference(PlainProcess::LAYERS));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!state.exists(), "a refused spawn creates nothing");
}

#[test]
fn a_failed_rlimit_names_the_resource() {
    let (_tmp, state) = state_dir();
    // Above fs.nr_open, so not even root may set it.
    let limits = Limits { nofile: 1 << 40, ..Limits::default() };
    match PlainProcess::new().spawn(&spec(&state, &["report"]).with_limits(limits)) {
        Err(SandboxError::Rlimit { resource: Resource::Nofile, source }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let (tmp, state) = state_dir();
    let program = tmp.path().join("no-such-connector");
    let spec = SpawnSpec::new(&program, &state).expect("spec").with_degradation(Degradation::allow_plain_process());
    match PlainProcess::new().spawn(&spec) {
        Err(SandboxError::Spawn { program: got, source }) => {
            assert_eq!(got, program);
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_state_dir_that_is_a_file_is_refused() {
    let (tmp, state) = state_dir();
    fs::write(&state, b"").expect("write");
    match PlainProcess::new().spawn(&spec(&state, &["report"])) {
        Err(SandboxError::StateDirNotDirectory { path }) => assert_eq!(path, state),
        other => panic!("unexpected {other:?}"),
    }
    drop(tmp);
}

#[test]
fn the_manifest_spec_runs() {
    let (_tmp, state) = state_dir();
    let text = include_str!("data/manifest_minimal.toml");
    let manifest = fcp_policy::manifest::Manifest::parse(text).expect("valid manifest");
    let spec = SpawnSpec::from_manifest(&manifest, PROBE, &state)
        .expect("spec")
        .with_degradation(Degradation::allow_plain_process());
    let got = report(spec);
    let expected: BTreeMap<&str, String> = [(CONNECTOR_STATE_VAR, state.display().to_string())].into();
    assert_eq!(got["env"], json!(expected));
    assert_eq!(got["rlimits"]["as"], json!([64u64 << 20, 64u64 << 20]));
}
