//! Other programs and processes: exec with deny_exec, ptrace, signals to the host,
//! and a setuid binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use rustix::io::Errno;
use serde_json::json;

use crate::harness::{privileged, Expect, Findings, HostProcess, Jail, Outcome};

#[test]
fn exec_is_killed_under_deny_exec() {
    if !privileged("exec_is_killed_under_deny_exec") {
        return;
    }
    let jail = Jail::strict();
    let mut findings = Findings::default();
    findings.attempt(&jail, &["exec", "/bin/sh", "-c", "id"], Expect::Seccomp("execve"));
    // Not even its own binary, which the jail did exec once.
    let program = jail.program.display().to_string();
    findings.attempt(&jail, &["exec", &program, "whoami"], Expect::Seccomp("execve"));
    findings.assert_none();

    // Without deny_exec the host's shell still does not exist inside.
    let jail = Jail::with(&[("deny_exec", "false")]);
    let mut findings = Findings::default();
    findings.attempt(&jail, &["exec", "/bin/sh", "-c", "id"], Expect::Errno(Errno::NOENT));
    findings.assert_none();
}

#[test]
fn ptrace_and_signals_do_not_reach_the_host() {
    if !privileged("ptrace_and_signals_do_not_reach_the_host") {
        return;
    }
    let jail = Jail::strict();
    let mut host = HostProcess::start();
    let pid = host.pid().to_string();
    let mut findings = Findings::default();
    findings.attempt(&jail, &["ptrace-parent"], Expect::Seccomp("ptrace"));
    findings.attempt(&jail, &["ptrace", &pid], Expect::Seccomp("ptrace"));
    // The host's pid names no process in the jail's pid namespace; -1 means every process
    // the caller may signal, which there is none but itself.
    findings.attempt(&jail, &["kill", &pid], Expect::Errno(Errno::SRCH));
    findings.attempt(&jail, &["kill", "-1"], Expect::Errno(Errno::SRCH));
    findings.check(host.alive(), || format!("the host process {pid} was killed from the jail"));
    findings.assert_none();
}

/// A setuid-root (and setgid-root) copy of the hostile program in a read-only folder, in
/// a jail that may exec: the exec is refused, or the program runs with the jail's ids
/// and no capability (binds are nosuid, and no_new_privs is set).
#[test]
fn a_setuid_binary_gives_nothing() {
    if !privileged("a_setuid_binary_gives_nothing") {
        return;
    }
    let jail = Jail::with(&[("deny_exec", "false")]);
    let setuid = jail.readonly.join("setuid-hostile");
    fs::copy(crate::harness::hostile(), &setuid).expect("copy the hostile program");
    std::os::unix::fs::chown(&setuid, Some(0), Some(0)).expect("chown root:root");
    fs::set_permissions(&setuid, fs::Permissions::from_mode(0o6755)).expect("chmod 6755");
    assert_eq!(fs::metadata(&setuid).expect("stat").permissions().mode() & 0o7777, 0o6755, "set-id bits are set");

    let run = jail.run(&["exec", &setuid.display().to_string(), "whoami"]);
    let mut findings = Findings::default();
    match run.outcome() {
        Outcome::Denied(_) => {}
        Outcome::Allowed(report) if report["attempt"] == "whoami" => {
            let ids = json!([65534, 65534, 65534]);
            findings.check(report["uids"] == ids && report["gids"] == ids, || {
                format!("the setuid binary changed the ids: {report}")
            });
            for set in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
                findings.check(report["status"][set] == "0000000000000000", || {
                    format!("the setuid binary gained {set}: {report}")
                });
            }
        }
        other => findings.check(false, || format!("exec of the setuid binary: {other}\n{run}")),
    }
    findings.assert_none();
}
