//! `fcp doctor`: what this machine and this fcpd can do, and what is wrong.
//! Kernel features (Landlock, seccomp, namespaces, cgroup version) are read from
//! /proc and /sys; keys and zones from the state directory; the rest from fcpd.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use fcp_proto::control::ControlRequest;
use serde_json::{json, Value};

use crate::daemon::{Client, SocketArg};

/// `fcp doctor`.
#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// State directory to check key permissions in.
    #[arg(long, default_value = "/var/lib/fcp")]
    home: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Kernel features the jail needs.
pub(crate) fn kernel() -> Value {
    let lsm = read("/sys/kernel/security/lsm");
    let landlock = lsm.as_deref().map(|l| l.split(',').any(|m| m == "landlock"));
    let seccomp = read("/proc/self/status").map(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
    let seccomp_actions = read("/proc/sys/kernel/seccomp/actions_avail");
    let ns: Vec<&str> = ["user", "mnt", "pid", "ipc", "uts", "net", "cgroup"]
        .into_iter()
        .filter(|n| Path::new(&format!("/proc/self/ns/{n}")).exists())
        .collect();
    let max_userns = read("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok());
    let (cgroup, controllers) = match read("/sys/fs/cgroup/cgroup.controllers") {
        Some(c) => ("v2", c.split_whitespace().map(str::to_owned).collect::<Vec<_>>()),
        None => {
            let v1: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
                .map(|d| d.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect())
                .unwrap_or_default();
            (if v1.is_empty() { "none" } else { "v1" }, v1)
        }
    };
    json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "landlock_lsm_enabled": landlock,
        "lsm": lsm,
        "seccomp": seccomp,
        "seccomp_actions": seccomp_actions,
        "namespaces": ns,
        "max_user_namespaces": max_userns,
        "cgroup": cgroup,
        "cgroup_controllers": controllers,
    })
}

fn keys(home: &Path) -> Value {
    let dir = home.join("keys");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return json!({ "checked": false, "reason": format!("{} not readable (not initialised, or not root)", dir.display()) });
    };
    let mut bad = Vec::new();
    let mut n = 0;
    for e in entries.filter_map(Result::ok) {
        n += 1;
        if let Ok(m) = e.metadata() {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bad.push(format!("{} has mode {mode:o}", e.path().display()));
            }
        }
    }
    json!({ "checked": true, "files": n, "too_open": bad })
}

pub(crate) fn run(sock: &SocketArg, a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let k = kernel();
    let keys = keys(&a.home);
    let daemon = match Client::connect(&sock.path())
        .and_then(|mut c| Ok((c.must(ControlRequest::Status)?, c.must(ControlRequest::List)?)))
    {
        Ok((status, list)) => json!({ "reachable": true, "status": status, "connectors": list["connectors"] }),
        Err(e) => json!({ "reachable": false, "error": format!("{e:#}") }),
    };
    let mut problems = Vec::new();
    if daemon["reachable"] != true {
        problems.push(format!("fcpd is not reachable at {}", sock.path().display()));
    }
    for b in keys["too_open"].as_array().into_iter().flatten() {
        problems.push(format!("key file too open: {}", b.as_str().unwrap_or("?")));
    }
    if k["landlock_lsm_enabled"] == false {
        problems.push("Landlock is not an enabled LSM: the strict jail will refuse to start".into());
    }
    if k["cgroup"] == "none" {
        problems.push("no cgroup hierarchy mounted: connector limits cannot be enforced".into());
    }
    let report = json!({ "kernel": k, "keys": keys, "daemon": daemon, "problems": problems });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("kernel {}", k["kernel"].as_str().unwrap_or("?"));
        match k["landlock_lsm_enabled"].as_bool() {
            Some(b) => println!("  landlock LSM  {b}"),
            None => println!("  landlock LSM  unknown (securityfs not mounted; the jail probes the ABI itself)"),
        }
        println!("  seccomp       {} (actions: {})", k["seccomp"], k["seccomp_actions"].as_str().unwrap_or("?"));
        println!("  namespaces    {}", k["namespaces"]);
        println!("  cgroup        {} {}", k["cgroup"].as_str().unwrap_or("?"), k["cgroup_controllers"]);
        println!("keys            {}", keys);
        if daemon["reachable"] == true {
            let s = &daemon["status"];
            println!(
                "fcpd            node {} ({} connectors installed)",
                s["node_id"].as_str().unwrap_or("?"),
                s["installed"]
            );
            for z in s["zones"].as_array().into_iter().flatten() {
                println!(
                    "  {:<12} revocation seq {} audit next seq {}",
                    z["zone"].as_str().unwrap_or("?"),
                    z["revocation_seq"],
                    z["audit_next_seq"]
                );
            }
        } else {
            println!("fcpd            not reachable: {}", daemon["error"].as_str().unwrap_or("?"));
        }
        if problems.is_empty() {
            println!("no problems found");
        } else {
            for p in &problems {
                println!("PROBLEM: {p}");
            }
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
