//! `fcp sandbox explain` and `fcp sandbox run`, driven through the real binary. `run`
//! needs root (the jail); without it those tests say they were skipped, and with
//! `FCP_REQUIRE_PRIVILEGED=1` (CI) a skip is a failure. The escape suite that runs a
//! hostile program through `fcp sandbox run` is in integration/tests/escape.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const ECHO_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../connectors/echo/manifest.toml");

fn fcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fcp")).args(args).output().expect("fcp runs")
}

fn root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"), "{test}: needs root");
    eprintln!("SKIPPED {test}: needs root");
    false
}

fn manifest_with(dir: &Path, profile: &str) -> PathBuf {
    let text = std::fs::read_to_string(ECHO_MANIFEST).expect("echo manifest");
    let text = text.replace("profile = \"strict\"", &format!("profile = \"{profile}\""));
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn explain_prints_the_plan_and_its_json_form() {
    let out = fcp(&["sandbox", "explain", "--manifest", ECHO_MANIFEST, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let plan = &v["plan"];
    assert_eq!(plan["hostname"], "fcp-connector");
    assert_eq!(plan["no_new_privs"], true);
    let denied: Vec<&str> = plan["seccomp"]["deny"]
        .as_array()
        .expect("deny")
        .iter()
        .filter_map(|d| d["rule"]["syscall"].as_str())
        .collect();
    for syscall in ["ptrace", "bpf", "io_uring_setup", "unshare", "keyctl", "execveat"] {
        assert!(denied.contains(&syscall), "{syscall} is denied: {denied:?}");
    }
    assert!(v["machine"]["backend"].is_string());

    let text = fcp(&["sandbox", "explain", "--manifest", ECHO_MANIFEST]);
    let text = String::from_utf8(text.stdout).expect("utf-8");
    assert!(text.contains("landlock (every other path denied):"), "{text}");
    assert!(text.contains("limits: memory"), "{text}");
}

#[test]
fn profiles_change_the_plan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let explain = |profile: &str| -> Value {
        let m = manifest_with(tmp.path(), profile);
        let out = fcp(&["sandbox", "explain", "--manifest", m.to_str().expect("utf-8"), "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    assert_eq!(explain("strict")["plan"]["seccomp"]["default_action"], "kill_process");
    assert_eq!(explain("permissive")["plan"]["seccomp"]["default_action"]["errno"], 38);
    // --profile overrides the manifest.
    let out = fcp(&["sandbox", "explain", "--manifest", ECHO_MANIFEST, "--profile", "permissive", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["plan"]["seccomp"]["default_action"]["errno"], 38);
}

#[test]
fn a_bad_manifest_or_layer_name_is_a_usage_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[manifest]\nformat = 1\n").expect("write");
    let out = fcp(&["sandbox", "explain", "--manifest", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a valid manifest"));
    let out = fcp(&["sandbox", "run", "--manifest", ECHO_MANIFEST, "--allow-degraded", "magic", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown layer \"magic\""));
}

#[test]
fn run_passes_stdio_through_and_returns_the_programs_status() {
    if !root("run_passes_stdio_through_and_returns_the_programs_status") {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_fcp"))
        .args([
            "sandbox",
            "run",
            "--manifest",
            ECHO_MANIFEST,
            "--",
            "/bin/sh",
            "-c",
            "read line; echo \"$line\"; echo err >&2; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fcp runs");
    child.stdin.take().expect("stdin").write_all(b"through the jail\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"through the jail\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn run_reports_a_signal_as_128_plus_it_and_a_seccomp_kill_by_name() {
    if !root("run_reports_a_signal_as_128_plus_it_and_a_seccomp_kill_by_name") {
        return;
    }
    // PROGRAM is pid 1 of its namespace, which ignores signals it has no handler for (even
    // from itself); the jail's own kills are what end it by a signal.
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = tmp.path().join("summary.json");
    // deny_exec is on in the echo manifest: the shell's exec of another program is killed,
    // and the shell is PROGRAM.
    let out = fcp(&[
        "sandbox",
        "run",
        "--manifest",
        ECHO_MANIFEST,
        "--summary",
        summary.to_str().expect("utf-8"),
        "--",
        "/bin/sh",
        "-c",
        "exec /bin/true",
    ]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSYS), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");
    assert_eq!(v["signal"], libc::SIGSYS);
    assert_eq!(v["breach"]["limit"], "seccomp");
    assert_eq!(v["breach"]["syscall"], "execve");
    assert_eq!(v["missing"], serde_json::json!([]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("killed by seccomp for execve"));
}

#[test]
fn a_jail_that_cannot_be_set_up_exits_125_and_runs_nothing() {
    if !root("a_jail_that_cannot_be_set_up_exits_125_and_runs_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(ECHO_MANIFEST).expect("manifest");
    let missing = tmp.path().join("not-there");
    let text = text.replace("fs_readonly_paths = []", &format!("fs_readonly_paths = [\"{}\"]", missing.display()));
    assert!(text.contains("not-there"), "the echo manifest lists fs_readonly_paths = []");
    let manifest = tmp.path().join("m.toml");
    std::fs::write(&manifest, text).expect("write");
    let marker = tmp.path().join("ran");
    let script = format!("touch {}", marker.display());
    let out = fcp(&["sandbox", "run", "--manifest", manifest.to_str().expect("utf-8"), "--", "/bin/sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be set up"));
    assert!(!marker.exists());
}
