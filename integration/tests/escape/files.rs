//! The host's files: secrets that must not exist inside, `/proc` as a way back to the
//! host's root, writes outside the state dir, and links planted in the state dir.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rustix::io::Errno;

use crate::harness::{privileged, secret, Expect, Findings, Jail, Outcome};

#[test]
fn host_secrets_do_not_exist_inside() {
    if !privileged("host_secrets_do_not_exist_inside") {
        return;
    }
    // A file only this test knows, under the host's /root.
    let in_root = tempfile::Builder::new().prefix("fcp-escape-").tempfile_in("/root").expect("a file under /root");
    fs::write(in_root.path(), secret()).expect("write the /root file");
    let in_root = in_root.path().display().to_string();

    let jail = Jail::strict();
    let mut findings = Findings::default();
    let enoent = Expect::Errno(Errno::NOENT);
    findings.attempt(&jail, &["read", "/etc/shadow"], enoent);
    findings.attempt(&jail, &["read", &in_root], enoent);
    findings.attempt(&jail, &["list", "/root"], enoent);
    findings.attempt(&jail, &["list", "/home"], enoent);
    // The test's own temporary folder holds the state dir: inside it is an empty mount
    // point, which the jail may not even list.
    findings.attempt(&jail, &["list", &jail.dir.display().to_string()], Expect::Errno(Errno::ACCESS));
    findings.attempt(&jail, &["read", &jail.dir.join("manifest.toml").display().to_string()], enoent);
    findings.assert_none();
}

#[test]
fn proc_leads_only_to_the_jail() {
    if !privileged("proc_leads_only_to_the_jail") {
        return;
    }
    let jail = Jail::strict();
    let mut host = crate::harness::HostProcess::start();
    let mut findings = Findings::default();
    let enoent = Expect::Errno(Errno::NOENT);

    // pid 1 of the jail's pid namespace is the program itself: its environ is its own.
    let run = jail.run(&["read", "/proc/1/environ"]);
    let own = crate::hygiene::jail_environment(&jail).map(|(k, v)| format!("{k}={v}\0")).collect::<String>();
    match run.outcome() {
        Outcome::Allowed(report) => findings.check(report["content"] == own.as_str(), || {
            format!("/proc/1/environ is not the program's own ({own:?}): {report}")
        }),
        Outcome::Denied(_) => {}
        other => findings.check(false, || format!("read /proc/1/environ: {other}\n{run}")),
    }
    // The host's processes do not exist in it.
    findings.attempt(&jail, &["read", &format!("/proc/{}/environ", host.pid())], enoent);
    // Through /proc/*/root is the jail's root, not the host's.
    for root in ["/proc/self/root", "/proc/1/root"] {
        findings.attempt(&jail, &["read", &format!("{root}/etc/shadow")], enoent);
        findings.attempt(&jail, &["list", &format!("{root}/home")], enoent);
        findings.attempt(&jail, &["list", &format!("{root}/root")], enoent);
        // Landlock grants nothing on the jail's root folder itself.
        findings.attempt(&jail, &["list", &format!("{root}/")], Expect::Errno(Errno::ACCESS));
    }
    findings.check(host.alive(), || "the host process died".to_owned());
    findings.assert_none();
}

#[test]
fn nothing_outside_the_state_dir_is_writable() {
    if !privileged("nothing_outside_the_state_dir_is_writable") {
        return;
    }
    let jail = Jail::strict();
    let mut findings = Findings::default();
    // The jail's root and every bind but the state dir are read-only mounts: the kernel
    // answers EROFS before Landlock is asked.
    let erofs = Expect::Errno(Errno::ROFS);
    let program_dir = jail.program.parent().expect("the program is in a folder").to_owned();
    for dir in ["/", "/tmp", "/dev", "/etc/ssl/certs"].into_iter().map(std::path::PathBuf::from).chain([
        jail.dir.clone(),
        jail.readonly.clone(),
        program_dir,
    ]) {
        if dir.starts_with("/etc/ssl") && !dir.exists() {
            continue;
        }
        findings.attempt(&jail, &["write", &dir.join("fcp-escape").display().to_string()], erofs);
    }
    findings.attempt(&jail, &["write", "/proc/fcp-escape"], Expect::Errno(Errno::NOENT));
    // A read-only file cannot be linked into the writable state dir to be written there:
    // a hard link never crosses mounts.
    let config = jail.readonly.join("config").display().to_string();
    let link = jail.state.join("config").display().to_string();
    findings.attempt(&jail, &["hardlink", &config, &link], Expect::Errno(Errno::XDEV));
    for entry in fs::read_dir(&jail.readonly).expect("list readonly/") {
        let name = entry.expect("entry").file_name();
        findings.check(name == "config", || format!("the jail wrote {name:?} into its read-only folder"));
    }
    findings.assert_none();
}

/// Links the test plants in the state dir before the program starts, as a previous
/// connector (or anyone with the state dir) could: they resolve inside the jail, and a
/// hard link to a host file is no way past the file's own permissions.
#[test]
fn links_planted_in_the_state_dir_lead_nowhere() {
    if !privileged("links_planted_in_the_state_dir_lead_nowhere") {
        return;
    }
    let jail = Jail::strict();
    fs::create_dir(&jail.state).expect("make the state dir");
    // A host secret outside the state dir, root's alone (as /etc/shadow is).
    let secret_file = jail.dir.join("host-secret");
    fs::write(&secret_file, secret()).expect("write the host secret");
    fs::set_permissions(&secret_file, fs::Permissions::from_mode(0o600)).expect("chmod 0600");

    let plant = |name: &str, target: &str| {
        std::os::unix::fs::symlink(target, jail.state.join(name)).expect("plant a symlink");
        jail.state.join(name).display().to_string()
    };
    let abs_shadow = plant("shadow", "/etc/shadow");
    let rel_shadow = plant("shadow-relative", &format!("{}etc/shadow", "../".repeat(16)));
    let to_secret = plant("host-secret", &secret_file.display().to_string());
    let to_root = plant("root", "/root");
    // Hard links from outside: the host secret (same filesystem, as the temporary folder
    // is), and /etc/shadow when it is on the state dir's filesystem.
    let hard_secret = jail.state.join("hard-secret");
    fs::hard_link(&secret_file, &hard_secret).expect("hard-link the host secret into the state dir");
    let hard_shadow = jail.state.join("hard-shadow");
    let shadow_linked = fs::hard_link("/etc/shadow", &hard_shadow).is_ok();

    let mut findings = Findings::default();
    let enoent = Expect::Errno(Errno::NOENT);
    findings.attempt(&jail, &["read", &abs_shadow], enoent);
    findings.attempt(&jail, &["read", &rel_shadow], enoent);
    findings.attempt(&jail, &["read", &to_secret], enoent);
    findings.attempt(&jail, &["list", &to_root], enoent);
    // The jail's uid is not the file's owner and has no capability to override that.
    findings.attempt(&jail, &["read", &hard_secret.display().to_string()], Expect::Errno(Errno::ACCESS));
    if shadow_linked {
        findings.attempt(&jail, &["read", &hard_shadow.display().to_string()], Expect::Errno(Errno::ACCESS));
    }
    // From inside: a hard link to a host file needs the file, and a symlink is killed.
    let link = jail.state.join("made-inside").display().to_string();
    findings.attempt(&jail, &["hardlink", "/etc/shadow", &link], enoent);
    // symlink (not symlinkat) is on neither of the plan's lists; the kill names it all the same.
    findings.attempt(&jail, &["symlink", "/etc/shadow", &link], Expect::Seccomp("symlink"));
    // The jail's uid got the state dir, never what a planted link points at.
    let meta = fs::metadata(&secret_file).expect("stat the host secret");
    findings.check((meta.uid(), meta.gid(), meta.mode() & 0o7777) == (0, 0, 0o600), || {
        format!("the host secret changed: uid {} gid {} mode {:o}", meta.uid(), meta.gid(), meta.mode())
    });
    findings.assert_none();
}

/// A symlink planted where the manifest declares a writable folder below the state dir
/// (`$CONNECTOR_STATE/data`), e.g. by an earlier version of the connector whose manifest
/// did not declare it: preparing the jail must not follow it, neither to give the
/// target to the jail's uid nor to bind the target writable into the jail. Either the
/// spawn is refused or the program finds nothing of the target.
#[test]
fn a_symlink_planted_at_a_writable_path_is_not_followed() {
    if !privileged("a_symlink_planted_at_a_writable_path_is_not_followed") {
        return;
    }
    let jail = Jail::with(&[("fs_writable_paths", r#"["$CONNECTOR_STATE", "$CONNECTOR_STATE/data"]"#)]);
    fs::create_dir(&jail.state).expect("make the state dir");
    // The target is the jail's own read-only folder, so it exists inside too.
    let data = jail.state.join("data");
    std::os::unix::fs::symlink(&jail.readonly, &data).expect("plant the symlink");
    let before = fs::metadata(&jail.readonly).expect("stat readonly/");

    let run = jail.run(&["write", &jail.readonly.join("written-from-jail").display().to_string()]);
    let mut findings = Findings::default();
    match run.outcome() {
        Outcome::Denied(_) => {}
        // Refused before the program ran: no report.
        Outcome::Other(_) if run.report().is_none() && run.status.code() != Some(0) => {}
        other => findings.check(false, || format!("writing into the symlink's target: {other}\n{run}")),
    }
    let after = fs::metadata(&jail.readonly).expect("stat readonly/");
    findings.check((after.uid(), after.gid(), after.mode()) == (before.uid(), before.gid(), before.mode()), || {
        format!(
            "preparing the jail followed $CONNECTOR_STATE/data -> {} and changed it from uid {} gid {} mode {:o} \
             to uid {} gid {} mode {:o}",
            jail.readonly.display(),
            before.uid(),
            before.gid(),
            before.mode(),
            after.uid(),
            after.gid(),
            after.mode()
        )
    });
    let names: Vec<String> = fs::read_dir(&jail.readonly)
        .expect("list readonly/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    findings.check(names == ["config"], || format!("the jail wrote into the symlink's target: {names:?}"));
    findings.assert_none();
}
