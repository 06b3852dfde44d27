//! `LinuxJail` against the real kernel, as root: the probe binary reports from inside
//! the jail what it can see and do. Run without root, each test says it was skipped;
//! with `FCP_REQUIRE_PRIVILEGED=1` (CI) a test that cannot run fails.

#![cfg(target_os = "linux")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;

use fcp_policy::manifest::SandboxPath;
use fcp_sandbox::{Breach, Degradation, Jailed, Layer, Layers, LinuxJail, Sandbox, SandboxError, SpawnSpec};
use serde_json::{json, Value};

const PROBE: &str = env!("CARGO_BIN_EXE_fcp-sandbox-probe");

/// The backend, or `None` (after saying so) when this test cannot run here.
fn jail(test: &str) -> Option<LinuxJail> {
    let required = required();
    if !rustix::process::geteuid().is_root() {
        assert!(!required, "{test}: needs root and FCP_REQUIRE_PRIVILEGED=1");
        eprintln!("SKIPPED {test}: needs root");
        return None;
    }
    let jail = LinuxJail::new().expect("the linux jail starts as root");
    if required {
        assert_eq!(jail.landlock_missing_reason(), None, "{test}: Landlock must be fully enforced in CI");
        assert_eq!(jail.cgroups_missing_reason(), None, "{test}: cgroups must be usable in CI");
    }
    Some(jail)
}

fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().canonicalize().expect("canonical").join("state");
    (tmp, state)
}

fn required() -> bool {
    std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
}

/// A spec built from the minimal manifest. In CI nothing may be missing; elsewhere the
/// layers this kernel lacks (Landlock, cgroups) may be.
fn spec(state: &Path, mode: &[&str]) -> SpawnSpec {
    let manifest =
        fcp_policy::manifest::Manifest::parse(include_str!("data/manifest_minimal.toml")).expect("valid manifest");
    let spec = SpawnSpec::from_manifest(&manifest, PROBE, state).expect("spec");
    let degradation = match LinuxJail::new() {
        Ok(jail) if !required() => Degradation::AllowMissing(Layers::ALL.difference(jail.layers())),
        _ => Degradation::Refuse,
    };
    mode.iter().fold(spec, |s, a| s.arg(*a)).with_degradation(degradation)
}

/// Runs the probe to exit: (status, stdout, stderr).
fn run(mut jailed: Jailed) -> (std::process::ExitStatus, String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let mut stderr = jailed.take_stderr().expect("stderr");
    let reader = thread::spawn(move || stderr.read_to_string(&mut err).map(|_| err));
    jailed.take_stdout().expect("stdout").read_to_string(&mut out).expect("read stdout");
    let err = reader.join().expect("stderr thread").expect("read stderr");
    let status = jailed.wait().expect("wait");
    (status, out, err)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {out}"))
}

/// Spawns the probe in `mode` with the minimal manifest's spec, runs it to exit, and
/// parses its JSON report.
fn report(jail: &LinuxJail, state: &Path, mode: &[&str]) -> Value {
    let jailed = jail.spawn(&spec(state, mode)).expect("spawned");
    assert_eq!(jailed.backend(), "linux-jail");
    assert_eq!(jailed.missing_layers(), Layers::ALL.difference(jail.layers()));
    let (status, out, err) = run(jailed);
    assert!(status.success(), "{status:?}: {err}");
    json(&out)
}

#[test]
fn the_connector_is_pid_1_with_the_specs_hygiene() {
    let Some(jail) = jail("the_connector_is_pid_1_with_the_specs_hygiene") else { return };
    let (_tmp, state) = state_dir();
    let got = report(&jail, &state, &["report"]);
    assert_eq!(got["pid"], json!(1));
    assert_eq!(got["pgid"], json!(1));
    assert_eq!(got["sid"], json!(1));
    assert_eq!(got["ppid"], Value::Null, "the parent is outside the pid namespace");
    assert_eq!(got["env"], json!({ "CONNECTOR_STATE": state.display().to_string() }));
    assert_eq!(got["cwd"], json!(state.display().to_string()));
    let fds: Vec<&String> = got["fds"].as_object().expect("fds").keys().collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", got["fds"]);
    assert_eq!(got["no_new_privs"], json!("1"));
    assert_eq!(got["pdeathsig"], json!(9), "armed again after the uid switch");
    assert_eq!(got["umask"], json!("0077"));
    if jail.layers().contains(Layer::Cgroups) {
        let parent = rustix::process::getrlimit(rustix::process::Resource::As);
        assert_eq!(got["rlimits"]["as"], json!([parent.current, parent.maximum]), "the cgroup limits memory");
    } else {
        assert_eq!(got["rlimits"]["as"], json!([64u64 << 20, 64u64 << 20]));
    }
    assert_eq!(got["rlimits"]["core"], json!([0, 0]));
}

#[test]
fn the_connector_has_no_privilege_and_sees_only_its_paths() {
    let Some(jail) = jail("the_connector_has_no_privilege_and_sees_only_its_paths") else { return };
    let (_tmp, state) = state_dir();
    let got = report(&jail, &state, &["jail-report"]);
    assert_eq!(
        (got["uid"].clone(), got["gid"].clone(), got["euid"].clone()),
        (json!(65534), json!(65534), json!(65534))
    );
    assert_eq!(got["hostname"], json!("fcp-connector"));
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(got["status"][set], json!("0000000000000000"), "{set}: {}", got["status"]);
    }
    assert_eq!(got["status"]["NoNewPrivs"], json!("1"));
    assert_eq!(got["status"]["Seccomp"], json!("2"), "filter mode");
    assert_eq!(got["caps"], json!({ "effective": [], "permitted": [] }));

    let path = |p: &str| got["paths"][p].clone();
    let enoent = json!("errno 2");
    // Host files and directories outside the plan do not exist in the jail.
    for p in ["/etc/shadow", "/etc/passwd", "/home", "/root", "/sys"] {
        assert_eq!(path(p)["exists"], json!(false), "{p}: {}", path(p));
        assert_eq!(path(p)["read"], enoent, "{p}");
    }
    // The jail's own pid namespace has no pid 1 environment to read but its own, and
    // the fresh /proc shows processes only.
    assert_eq!(path("/proc")["read"], json!("ok"));
    // Only the state dir is writable.
    let state_key = state.display().to_string();
    assert_eq!(path(&state_key)["write"], json!("ok"), "{}", path(&state_key));
    let exe_dir = Path::new(PROBE).parent().expect("dir").display().to_string();
    for p in ["/", "/tmp", "/usr", "/dev", "/proc", exe_dir.as_str()] {
        let write = path(p)["write"].clone();
        assert_ne!(write, json!("ok"), "{p} is writable: {}", path(p));
    }
    // The read-only paths of the manifest are readable; / itself is not (Landlock).
    assert_eq!(path("/usr")["read"], json!("ok"));
    assert_eq!(path("/dev/null")["write"], json!("ok"));
    assert_ne!(path("/")["read"], json!("ok"), "{}", path("/"));
    assert_eq!(path("/tmp")["exists"], json!(true), "the state dir's ancestors are mount points");
}

/// Runs `fcp-sandbox-probe attempt NAME` in the jail: `Ok(line)` when it printed, or
/// `Err(signal)` when it was killed.
fn attempt(jail: &LinuxJail, state: &Path, name: &str) -> Result<String, i32> {
    let jailed = jail.spawn(&spec(state, &["attempt", name])).expect("spawned");
    let (status, out, err) = run(jailed);
    match std::os::unix::process::ExitStatusExt::signal(&status) {
        Some(signal) => Err(signal),
        None => {
            assert!(status.success(), "{name}: {status:?}: {err}");
            Ok(out.trim().to_owned())
        }
    }
}

#[test]
fn escape_attempts_are_killed_or_refused() {
    let Some(jail) = jail("escape_attempts_are_killed_or_refused") else { return };
    let (_tmp, state) = state_dir();
    let killed = [
        "ptrace",
        "process_vm_readv",
        "mount",
        "umount",
        "pivot_root",
        "unshare",
        "setns",
        "clone_newns",
        "bpf",
        "perf_event_open",
        "keyctl",
        "userfaultfd",
        "io_uring_setup",
        "personality",
        "open_by_handle_at",
        "kexec_load",
        "finit_module",
        "raw_socket",
        "packet_socket",
        "memfd_create",
        "tiocsti",
    ];
    for name in killed {
        assert_eq!(attempt(&jail, &state, name), Err(libc::SIGSYS), "{name}");
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(attempt(&jail, &state, "x32"), Err(libc::SIGSYS), "x32");
    }
    assert_eq!(attempt(&jail, &state, "clone3"), Ok(format!("denied {}", libc::ENOSYS)));
    assert_eq!(attempt(&jail, &state, "tcp_socket"), Ok("allowed".to_owned()), "the control case");
}

#[test]
fn deny_exec_kills_an_exec() {
    let Some(jail) = jail("deny_exec_kills_an_exec") else { return };
    let (_tmp, state) = state_dir();
    let jailed = jail.spawn(&spec(&state, &["exec-self"])).expect("spawned");
    let (status, out, _) = run(jailed);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGSYS), "{status:?} {out}");
}

#[test]
fn without_deny_exec_the_connector_may_exec_itself() {
    let Some(jail) = jail("without_deny_exec_the_connector_may_exec_itself") else { return };
    let (_tmp, state) = state_dir();
    let mut isolation = spec(&state, &[]).isolation().clone();
    isolation.deny_exec = false;
    let jailed = jail.spawn(&spec(&state, &["exec-self"]).with_isolation(isolation)).expect("spawned");
    let (status, out, err) = run(jailed);
    assert!(status.success(), "{status:?} {out} {err}");
    assert_eq!(out, "", "the exec replaced the probe");
}

#[test]
fn the_connector_runs_in_its_own_limited_cgroup() {
    let Some(jail) = jail("the_connector_runs_in_its_own_limited_cgroup") else { return };
    if !jail.layers().contains(Layer::Cgroups) {
        eprintln!("SKIPPED the_connector_runs_in_its_own_limited_cgroup: {:?}", jail.cgroups_missing_reason());
        return;
    }
    let (_tmp, state) = state_dir();
    let got = report(&jail, &state, &["jail-report"]);
    let view = got["cgroup"].as_str().expect("cgroup view");
    assert!(view.lines().all(|l| l.ends_with(":/")), "the connector's cgroup is its namespace's root: {view}");

    let mut jailed = jail.spawn(&spec(&state, &["sleep", "60"])).expect("spawned");
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", jailed.pid())).expect("host view");
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let name = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.starts_with("fcp-") {
            continue;
        }
        let root = Path::new("/sys/fs/cgroup");
        let dir = if controllers.is_empty() {
            root.join(path.trim_start_matches('/'))
        } else {
            root.join(controllers.split(',').next().unwrap_or("")).join(path.trim_start_matches('/'))
        };
        dirs.push((controllers.to_owned(), dir));
    }
    let read = |p: PathBuf| std::fs::read_to_string(&p).map(|t| t.trim().to_owned()).unwrap_or_default();
    let limits: Vec<(String, String)> = dirs
        .iter()
        .flat_map(|(controllers, dir)| match controllers.as_str() {
            "" => vec![
                ("memory.max".to_owned(), read(dir.join("memory.max"))),
                ("cpu.max".to_owned(), read(dir.join("cpu.max"))),
                ("pids.max".to_owned(), read(dir.join("pids.max"))),
            ],
            c if c.contains("memory") => vec![("memory".to_owned(), read(dir.join("memory.limit_in_bytes")))],
            c if c.contains("cpu") && !c.contains("cpuset") => {
                vec![("cpu".to_owned(), read(dir.join("cpu.cfs_quota_us")))]
            }
            c if c.contains("pids") => vec![("pids".to_owned(), read(dir.join("pids.max")))],
            _ => Vec::new(),
        })
        .collect();
    let expected_v1 = [("memory", "67108864"), ("cpu", "20000"), ("pids", "1024")];
    let expected_v2 = [("memory.max", "67108864"), ("cpu.max", "20000 100000"), ("pids.max", "1024")];
    let got: Vec<(&str, &str)> = limits.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut v1 = expected_v1.to_vec();
    v1.sort();
    let mut v2 = expected_v2.to_vec();
    v2.sort();
    assert!(sorted == v1 || sorted == v2, "cgroup limits: {got:?} in {dirs:?}");

    jailed.kill().expect("kill");
    jailed.wait().expect("wait");
    drop(jailed);
    for (_, dir) in &dirs {
        assert!(!dir.exists(), "{} is removed with the handle", dir.display());
    }
}

#[test]
fn a_missing_readonly_path_fails_the_spawn() {
    let Some(jail) = jail("a_missing_readonly_path_fails_the_spawn") else { return };
    let (tmp, state) = state_dir();
    let missing = tmp.path().join("nowhere");
    let mut isolation = spec(&state, &[]).isolation().clone();
    isolation.fs_readonly_paths.push(SandboxPath::Absolute(missing.display().to_string()));
    match jail.spawn(&spec(&state, &["report"]).with_isolation(isolation)) {
        Err(SandboxError::BindSource { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn kill_ends_the_connector_and_its_namespace() {
    let Some(jail) = jail("kill_ends_the_connector_and_its_namespace") else { return };
    let (_tmp, state) = state_dir();
    let mut jailed = jail.spawn(&spec(&state, &["sleep", "60"])).expect("spawned");
    assert_eq!(jailed.try_wait().expect("try_wait"), None);
    jailed.kill().expect("kill");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&jailed.wait().expect("wait")), Some(libc::SIGKILL));
    jailed.kill().expect("killing a dead connector is not an error");
}

#[test]
fn a_failed_step_in_the_child_names_the_step() {
    let Some(jail) = jail("a_failed_step_in_the_child_names_the_step") else { return };
    let (_tmp, state) = state_dir();
    // Another temp dir exists on the host but is not bound into the jail.
    let other = tempfile::tempdir().expect("tempdir");
    let outside = other.path().canonicalize().expect("canonical");
    let spec = spec(&state, &["report"]).with_working_dir(&outside).expect("absolute");
    match jail.spawn(&spec) {
        Err(SandboxError::ChangeDir { path, source }) => {
            assert_eq!(path, outside);
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_replaced_program_is_resolved_again() {
    let Some(jail) = jail("a_replaced_program_is_resolved_again") else { return };
    let (tmp, state) = state_dir();
    let program = tmp.path().canonicalize().expect("canonical").join("connector");
    std::fs::copy(PROBE, &program).expect("copy");
    let spec_for = |program: &Path| {
        let base = spec(&state, &[]);
        SpawnSpec::new(program, &state)
            .expect("spec")
            .arg("exit")
            .arg("3")
            .with_isolation(base.isolation().clone())
            .with_degradation(base.degradation())
    };
    let code = |jailed: Jailed| run(jailed).0.code();
    assert_eq!(code(jail.spawn(&spec_for(&program)).expect("first")), Some(3));
    // Replace it with a file that is no ELF binary: the cached resolution must not hide that.
    std::fs::remove_file(&program).expect("remove");
    std::fs::write(&program, b"#!/bin/sh\n").expect("write");
    match jail.spawn(&spec_for(&program)) {
        Err(SandboxError::ParseElf { path, .. }) => assert_eq!(path, program),
        other => panic!("unexpected {other:?}"),
    }
}

/// The user-namespace path: the probe, run as uid 65534, jails itself with LinuxJail
/// (`fcp-sandbox-probe jail STATE jail-report`).
#[test]
fn an_unprivileged_supervisor_jails_in_a_user_namespace() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let Some(_) = jail("an_unprivileged_supervisor_jails_in_a_user_namespace") else { return };
    let (tmp, state) = state_dir();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(&state).expect("state dir");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    // A copy nobody can reach wherever the checkout is (CI's may be below a 0700 dir).
    let probe = tmp.path().join("probe");
    std::fs::copy(PROBE, &probe).expect("copy the probe");
    let output = std::process::Command::new(&probe)
        .args(["jail".as_ref(), state.as_os_str(), "jail-report".as_ref()])
        .uid(65534)
        .gid(65534)
        .env_clear()
        .output()
        .expect("run the probe as nobody");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    // Without root the supervisor cannot make cgroups here; everything else is in force.
    assert_eq!(stderr.trim(), "missing: cgroups");
    let got = json(&String::from_utf8_lossy(&output.stdout));
    assert_eq!((got["uid"].clone(), got["gid"].clone(), got["pid"].clone()), (json!(65534), json!(65534), json!(1)));
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(got["status"][set], json!("0000000000000000"), "{set}");
    }
    assert_eq!(got["status"]["NoNewPrivs"], json!("1"));
    assert_eq!(got["status"]["Seccomp"], json!("2"));
    let path = |p: &str| got["paths"][p].clone();
    for p in ["/etc/shadow", "/home", "/root", "/sys"] {
        assert_eq!(path(p)["exists"], json!(false), "{p}");
    }
    assert_eq!(path(&state.display().to_string())["write"], json!("ok"));
    for p in ["/", "/tmp", "/usr", "/dev"] {
        assert_ne!(path(p)["write"], json!("ok"), "{p}");
    }
}

#[test]
fn a_readonly_path_behind_an_absolute_symlink_is_bound() {
    let Some(jail) = jail("a_readonly_path_behind_an_absolute_symlink_is_bound") else { return };
    let (tmp, state) = state_dir();
    let base = tmp.path().canonicalize().expect("canonical");
    let real = base.join("real");
    std::fs::create_dir(&real).expect("dir");
    std::fs::write(real.join("config"), b"x").expect("file");
    let link = base.join("link");
    std::os::unix::fs::symlink(&real, &link).expect("absolute symlink");
    let mut isolation = spec(&state, &[]).isolation().clone();
    isolation.fs_readonly_paths.push(SandboxPath::Absolute(link.display().to_string()));
    let file = link.join("config").display().to_string();
    let jailed = jail.spawn(&spec(&state, &["jail-report", &file]).with_isolation(isolation)).expect("spawned");
    let (status, out, err) = run(jailed);
    assert!(status.success(), "{status:?}: {err}");
    let got = json(&out);
    assert_eq!(got["paths"][&file]["read"], json!("ok"), "{}", got["paths"][&file]);
    assert_ne!(got["paths"][&file]["write"], json!("ok"));
}

/// Spawns the probe with `limits` and runs it to exit with the jail's own enforcement.
fn run_limited(jail: &LinuxJail, state: &Path, mode: &[&str], limits: fcp_sandbox::Limits) -> Jailed {
    let mut jailed = jail.spawn(&spec(state, mode).with_limits(limits)).expect("spawned");
    let mut stdout = jailed.take_stdout().expect("stdout");
    let reader = thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    jailed.wait_timeout().expect("wait");
    drop(reader);
    jailed
}

fn limits(jail: &LinuxJail, test: &str) -> Option<fcp_sandbox::Limits> {
    if !jail.layers().contains(Layer::Cgroups) {
        eprintln!("SKIPPED {test}: {:?}", jail.cgroups_missing_reason());
        return None;
    }
    let manifest =
        fcp_policy::manifest::Manifest::parse(include_str!("data/manifest_minimal.toml")).expect("valid manifest");
    Some(fcp_sandbox::Limits::from_manifest(&manifest.sandbox))
}

#[test]
fn a_seccomp_kill_is_a_breach_that_names_the_syscall() {
    let Some(jail) = jail("a_seccomp_kill_is_a_breach_that_names_the_syscall") else { return };
    let (_tmp, state) = state_dir();
    let jailed = jail.spawn(&spec(&state, &["attempt", "bpf"])).expect("spawned");
    let mut jailed = jailed;
    let status = jailed.wait().expect("wait");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGSYS));
    let breach = jailed.breach().expect("a breach");
    assert_eq!(breach.limit(), "seccomp");
    let syscall = breach.syscall().expect("the kernel's audit record names the syscall (CAP_AUDIT_READ as root)");
    assert_eq!((syscall.name, syscall.number), (Some("bpf"), libc::SYS_bpf), "{breach}");
}

#[test]
fn memory_past_the_limit_is_an_out_of_memory_breach() {
    let Some(jail) = jail("memory_past_the_limit_is_an_out_of_memory_breach") else { return };
    let Some(limits) = limits(&jail, "memory_past_the_limit_is_an_out_of_memory_breach") else { return };
    let (_tmp, state) = state_dir();
    // The minimal manifest allows 64 MiB.
    let jailed = run_limited(&jail, &state, &["alloc", "256"], limits);
    assert_eq!(jailed.breach(), Some(Breach::Memory));
    assert!(jailed.counters().expect("counters").oom_kills >= 1);
    // Within the limit there is no breach.
    let (_tmp, state) = state_dir();
    let limits = self::limits(&jail, "within").expect("limits");
    let jailed = run_limited(&jail, &state, &["alloc", "16"], limits);
    assert_eq!(jailed.breach(), None);
    assert_eq!(jailed.counters().expect("counters").oom_kills, 0);
}

#[test]
fn a_fork_past_the_pids_limit_kills_the_connector() {
    let Some(jail) = jail("a_fork_past_the_pids_limit_kills_the_connector") else { return };
    let Some(mut limits) = limits(&jail, "a_fork_past_the_pids_limit_kills_the_connector") else { return };
    limits.pids_max = 8;
    let (_tmp, state) = state_dir();
    let jailed = run_limited(&jail, &state, &["fork-many", "100"], limits);
    assert_eq!(jailed.breach(), Some(Breach::Pids));
    assert!(jailed.counters().expect("counters").pids_max_hits >= 1);
}

#[test]
fn outliving_the_wall_clock_is_a_breach() {
    let Some(jail) = jail("outliving_the_wall_clock_is_a_breach") else { return };
    let (_tmp, state) = state_dir();
    let manifest =
        fcp_policy::manifest::Manifest::parse(include_str!("data/manifest_minimal.toml")).expect("valid manifest");
    let mut limits = fcp_sandbox::Limits::from_manifest(&manifest.sandbox);
    limits.wall_clock_timeout = std::time::Duration::from_millis(200);
    let jailed = run_limited(&jail, &state, &["sleep", "60"], limits);
    assert_eq!(jailed.breach(), Some(Breach::WallClock));
}

#[test]
fn a_layer_left_out_must_be_allowed_like_a_missing_one() {
    let Some(jail) = jail("a_layer_left_out_must_be_allowed_like_a_missing_one") else { return };
    let (_tmp, state) = state_dir();
    let without = jail.without(Layers::of(&[Layer::Seccomp])).expect("seccomp is optional");
    assert!(!without.layers().contains(Layer::Seccomp));
    let refused = spec(&state, &["jail-report"]).with_degradation(Degradation::Refuse);
    match without.spawn(&refused) {
        Err(SandboxError::LayersMissing { refused, .. }) => assert!(refused.contains(Layer::Seccomp)),
        other => panic!("unexpected {other:?}"),
    }
    let allowed = Layers::ALL.difference(without.layers());
    let got = {
        let jailed =
            without.spawn(&spec(&state, &["jail-report"]).with_degradation(Degradation::AllowMissing(allowed)));
        let (status, out, err) = run(jailed.expect("spawned"));
        assert!(status.success(), "{err}");
        json(&out)
    };
    assert_eq!(got["status"]["Seccomp"], "0", "no filter: {got}");
    assert!(LinuxJail::new().expect("jail").without(Layers::of(&[Layer::Namespaces])).is_err(), "not optional");
}

#[test]
fn with_a_network_landlock_lets_the_connector_connect_only_to_its_ports() {
    let Some(jail) = jail("with_a_network_landlock_lets_the_connector_connect_only_to_its_ports") else { return };
    if jail.landlock_abi().is_none_or(|abi| abi < 4) {
        eprintln!("SKIPPED: Landlock ABI 4 (TCP rules) is not available");
        return;
    }
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = |l: &std::net::TcpListener| l.local_addr().expect("addr").port();
    // The host's own namespace stands in for the supervisor's per-jail network here, so
    // the listeners are reachable and only Landlock decides.
    let netns: std::os::fd::OwnedFd = std::fs::File::open("/proc/self/ns/net").expect("netns").into();
    let network = fcp_sandbox::JailNetwork {
        netns: std::sync::Arc::new(netns),
        files: Vec::new(),
        tcp_ports: vec![port(&allowed)],
    };
    let (_tmp, state) = state_dir();
    let attempt = |target: u16| {
        let spec = spec(&state, &["connect", &format!("127.0.0.1:{target}")]).with_network(network.clone());
        let (status, out, err) = run(jail.spawn(&spec).expect("spawned"));
        assert!(status.success(), "{err}");
        out.trim().to_owned()
    };
    assert_eq!(attempt(port(&allowed)), "connected");
    assert_eq!(attempt(port(&other)), format!("denied {}", libc::EACCES));
    let plan = jail.plan(&spec(&state, &[]).with_network(network.clone())).expect("plan");
    assert_eq!(plan.landlock.tcp_connect, Some(vec![port(&allowed)]));
}
