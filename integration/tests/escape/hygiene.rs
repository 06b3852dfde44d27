//! What the program inherits: no descriptor beyond stdin, stdout and stderr (even one
//! leaked into `fcp` without close-on-exec), and none of the host's environment.

use std::fs;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Instant;

use serde_json::json;

use crate::harness::{privileged, secret, Findings, Jail, Outcome, Run, SECRET_VAR};

/// The whole environment a connector gets, as fcpd sets it: its state dir and its zone
/// (`strict.toml`'s home zone), in the order the jail passes them.
pub(crate) fn jail_environment(jail: &Jail) -> impl Iterator<Item = (&'static str, String)> {
    [("CONNECTOR_STATE", jail.state.display().to_string()), ("FCP_ZONE", "z:work".to_owned())].into_iter()
}

#[test]
fn no_descriptor_is_inherited_beyond_stderr() {
    if !privileged("no_descriptor_is_inherited_beyond_stderr") {
        return;
    }
    let jail = Jail::strict();
    let leaked_file = jail.dir.join("leaked");
    fs::write(&leaked_file, secret()).expect("write the leaked file");
    let file = fs::File::open(&leaked_file).expect("open the leaked file");
    // dup gives a descriptor without close-on-exec: `fcp` inherits it.
    let leaked = rustix::io::dup(&file).expect("dup");
    assert!(!rustix::io::fcntl_getfd(&leaked).expect("F_GETFD").contains(rustix::io::FdFlags::CLOEXEC));
    let fd = leaked.as_raw_fd();

    let (mut cmd, summary) = jail.command(&["fds", "--wait-stdin"]);
    cmd.stdin(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn fcp sandbox run");
    drop(leaked);
    let inherited = fs::read_link(format!("/proc/{}/fd/{fd}", child.id()));
    // The program reports once its stdin closes, while fcp still holds the descriptor.
    drop(child.stdin.take());
    let run = Run::finish(format!("{cmd:?}"), child, &summary, started);
    assert_eq!(inherited.ok(), Some(leaked_file), "fcp inherited descriptor {fd}");

    let mut findings = Findings::default();
    match run.outcome() {
        Outcome::Denied(_) => {
            let report = run.report().unwrap_or_default();
            findings.check(report["fds"] == json!([0, 1, 2]), || format!("open descriptors: {report}"));
        }
        other => findings.check(false, || format!("descriptors beyond stderr: {other}\n{run}")),
    }
    findings.assert_none();
}

#[test]
fn the_hosts_environment_does_not_reach_the_program() {
    if !privileged("the_hosts_environment_does_not_reach_the_program") {
        return;
    }
    let jail = Jail::strict();
    let run = jail.run(&["env"]);
    let mut findings = Findings::default();
    match run.outcome() {
        Outcome::Allowed(report) => {
            let want: serde_json::Map<String, serde_json::Value> =
                jail_environment(&jail).map(|(k, v)| (k.to_owned(), v.into())).collect();
            findings.check(report["vars"] == serde_json::Value::Object(want), || {
                format!("the environment is more than the connector's: {report}")
            });
            findings.check(!report.to_string().contains(secret()), || format!("{SECRET_VAR} reached the program"));
        }
        other => findings.check(false, || format!("env: {other}\n{run}")),
    }
    let run = jail.run(&["read", "/proc/self/environ"]);
    findings.check(!run.stdout.contains(secret()), || format!("{SECRET_VAR} is in /proc/self/environ:\n{run}"));
    findings.assert_none();
}
