//! `fcp quickstart`: from nothing to an audited, explained connector call. It makes a
//! throwaway home, starts fcpd on it, packages and installs the bundled connectors,
//! mints a token, calls fcp.echo, shows a denied call with its explanation, and prints
//! the receipts and the verified audit chain.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use fcp_proto::control::{ControlRequest, InvokeCall};
use fcp_proto::package::{host_target, Package};
use serde_json::{json, Value};

use crate::daemon::{find_binary, Client};

/// The bundled connectors: (binary name, manifest text).
const BUNDLED: &[(&str, &str)] = &[
    ("fcp-echo", include_str!("../../connectors/echo/manifest.toml")),
    ("fcp-fs", include_str!("../../connectors/fs/manifest.toml")),
];

/// `fcp quickstart`.
#[derive(Args)]
pub(crate) struct QuickstartArgs {
    /// Use this folder instead of a temporary one (must not exist yet).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Keep the home and leave fcpd's files for inspection.
    #[arg(long)]
    keep: bool,
    /// Print one JSON summary instead of the walkthrough.
    #[arg(long)]
    json: bool,
}

pub(crate) struct Fcpd {
    child: Child,
    pub(crate) socket: PathBuf,
}

impl Drop for Fcpd {
    fn drop(&mut self) {
        let _ = Process::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_fcpd(home: &Path) -> anyhow::Result<Fcpd> {
    let socket = home.join("fcpd.sock");
    let log = std::fs::File::create(home.join("fcpd.log"))?;
    let mut fcpd = Process::new(find_binary("fcpd")?);
    fcpd.arg("run").arg("--home").arg(home).arg("--socket").arg(&socket);
    // Connectors run in the Linux jail. Not as root, this machine may lack layers
    // (cgroups, say): the owner's explicit policy lets them start without those, and
    // each start is audited as sandbox.degraded (shown in step 7).
    if !is_root() {
        fcpd.arg("--allow-degraded-sandbox");
    }
    let child = fcpd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().context("starting fcpd")?;
    let fcpd = Fcpd { child, socket };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if Client::connect(&fcpd.socket).is_ok() {
            return Ok(fcpd);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("fcpd did not start; see {}", home.join("fcpd.log").display())
}

pub(crate) fn run(a: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let tmp;
    let home = match &a.home {
        Some(h) => h.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("fcp-quickstart-{}", std::process::id()));
            tmp.clone()
        }
    };
    if home.exists() {
        bail!("{} already exists; quickstart wants a fresh folder", home.display());
    }
    let say = |s: &str| {
        if !a.json {
            println!("{s}");
        }
    };
    let result = walkthrough(&home, &say, a.json);
    if !a.keep {
        let _ = std::fs::remove_dir_all(&home);
    } else {
        say(&format!("\nkept {}", home.display()));
    }
    result
}

fn walkthrough(home: &Path, say: &dyn Fn(&str), json_out: bool) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(home)?;
    say(&format!("1. A throwaway home at {}", home.display()));
    let publisher = fcp_proto::keys::PublisherKey::generate(&mut rand_core::OsRng);
    let status = Process::new(find_binary("fcpd")?)
        .args(["init", "--node-id", "node-quickstart", "--json", "--home"])
        .arg(home.join("state"))
        .arg("--trust-publisher")
        .arg(hex::encode(publisher.public().to_bytes()))
        .stdout(Stdio::piped())
        .output()
        .context("fcpd init")?;
    if !status.status.success() {
        bail!("fcpd init failed: {}", String::from_utf8_lossy(&status.stderr));
    }
    let init: Value = serde_json::from_slice(&status.stdout)?;
    say(&format!(
        "   owner key {}, node {} (signing {}, issuance {}), zones {}",
        init["owner_kid"].as_str().unwrap_or("?"),
        init["node_id"].as_str().unwrap_or("?"),
        init["signing_kid"].as_str().unwrap_or("?"),
        init["issuance_kid"].as_str().unwrap_or("?"),
        init["zones"]
    ));
    let fcpd = start_fcpd(&home.join("state"))?;
    let mut c = Client::connect(&fcpd.socket)?;
    say(&format!("2. fcpd is listening on {}", fcpd.socket.display()));

    let (platform, arch) = host_target(std::env::consts::OS, std::env::consts::ARCH)?;
    let mut installed = Vec::new();
    for (bin, manifest) in BUNDLED {
        let binary = std::fs::read(find_binary(bin)?)?;
        let pkg = Package::build(&publisher, manifest, &binary, platform, arch, crate::daemon_now());
        let pkg_path = home.join(format!("{bin}.fcppkg"));
        crate::files::write_atomically(&pkg_path, &pkg.to_bytes(), 0o600)?;
        let package_path = pkg_path.to_str().ok_or_else(|| anyhow::anyhow!("home path is not UTF-8"))?.to_owned();
        let v = c.must(ControlRequest::Install { package_path, zone: "z:work".into() })?;
        say(&format!(
            "3. Installed {} {} in z:work: signed package verified, binary {}",
            v["connector"].as_str().unwrap_or("?"),
            v["version"].as_str().unwrap_or("?"),
            &v["binary_hash"].as_str().unwrap_or("?")[..16.min(v["binary_hash"].as_str().unwrap_or("").len())]
        ));
        installed.push(v);
    }

    let grant = c.must(ControlRequest::Grant {
        zone: "z:work".into(),
        connector: "fcp.echo".into(),
        operation: "echo".into(),
        principal: "agent:quickstart".into(),
        ttl_secs: Some(300),
    })?;
    say(&format!(
        "4. The owner granted agent:quickstart fcp.echo/echo for 5 minutes; token {}",
        grant["jti"].as_str().unwrap_or("?")
    ));
    let token = grant["token_b64"].as_str().map(str::to_owned);
    let call = |op: &str, input: Value, token: Option<String>| {
        ControlRequest::Invoke(InvokeCall {
            zone: "z:work".into(),
            connector: "fcp.echo".into(),
            operation: op.into(),
            input,
            token_b64: token,
            principal: "agent:quickstart".into(),
            idempotency_key: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            intent: false,
        })
    };
    let ok = c.must(call("echo", json!({"hello": "world"}), token.clone()))?;
    if ok["decision"] != "allow" || ok["outcome"]["status"] != "ok" {
        bail!("the allowed call did not succeed: {ok}");
    }
    say(&format!("5. Allowed call fcp.echo/echo → {}", ok["outcome"]["output"]));
    say(&format!(
        "   receipt: {}",
        serde_json::to_string_pretty(&ok["receipt"]).unwrap_or_default().replace('\n', "\n   ")
    ));
    let listed = c.must(ControlRequest::List)?;
    let echo_pid = listed["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["connector"] == "fcp.echo")
        .and_then(|i| i["pid"].as_u64());
    let jail = echo_pid.map(jail_facts).unwrap_or(Value::Null);
    say(&format!("   jail of fcp.echo (pid {}): {}", echo_pid.unwrap_or(0), jail_summary(&jail)));

    // fcp.fs: a risky write needs a declared intent (signed and audited before the
    // connector runs); then the file is read back.
    let mut fs_token = |op: &str| -> anyhow::Result<Option<String>> {
        let g = c.must(ControlRequest::Grant {
            zone: "z:work".into(),
            connector: "fcp.fs".into(),
            operation: op.into(),
            principal: "agent:quickstart".into(),
            ttl_secs: Some(300),
        })?;
        Ok(g["token_b64"].as_str().map(str::to_owned))
    };
    let (write_token, read_token) = (fs_token("fs.write")?, fs_token("fs.read")?);
    let fs_call = |op: &str, input: Value, token: Option<String>, intent: bool| {
        ControlRequest::Invoke(InvokeCall {
            zone: "z:work".into(),
            connector: "fcp.fs".into(),
            operation: op.into(),
            input,
            token_b64: token,
            principal: "agent:quickstart".into(),
            idempotency_key: None,
            traceparent: None,
            intent,
        })
    };
    let note = json!({"path": "hello.txt", "content": "written through fcpd\n", "mode": "overwrite"});
    let no_intent = c.must(fs_call("fs.write", note.clone(), write_token.clone(), false))?;
    say(&format!(
        "   fcp.fs/fs.write without a declared intent: {} — {}",
        no_intent["reason_code"].as_str().unwrap_or("?"),
        no_intent["message"].as_str().unwrap_or("")
    ));
    let wrote = c.must(fs_call("fs.write", note, write_token, true))?;
    let read = c.must(fs_call("fs.read", json!({"path": "hello.txt"}), read_token, false))?;
    if wrote["outcome"]["status"] != "ok" || read["outcome"]["output"]["content"] != "written through fcpd\n" {
        bail!("fcp.fs did not write and read back: {wrote} {read}");
    }
    say(&format!(
        "   fcp.fs/fs.write with an intent → {}; fs.read → {:?}",
        wrote["outcome"]["output"],
        read["outcome"]["output"]["content"].as_str().unwrap_or("")
    ));

    let denied = c.must(call("fail", json!({}), token))?;
    say(&format!(
        "6. Denied call fcp.echo/fail with the echo token: {} — {}",
        denied["reason_code"].as_str().unwrap_or("?"),
        denied["message"].as_str().unwrap_or("")
    ));
    let why =
        c.must(ControlRequest::Explain { request_id: denied["request_id"].as_str().unwrap_or_default().into() })?;
    say(&format!(
        "   fcp explain {} → {} ({})",
        why["request_id"].as_str().unwrap_or("?"),
        why["decision"].as_str().unwrap_or("?"),
        why["reason_code"].as_str().unwrap_or("?")
    ));
    say(&format!("   inputs: {}", why["inputs"]));

    let verify = c.must(ControlRequest::AuditVerify { zone: "z:work".into() })?;
    let tail = c.must(ControlRequest::AuditTail { zone: "z:work".into(), after_seq: None, limit: Some(50) })?;
    say(&format!("7. Audit chain of z:work verified: {} events, intact = {}", verify["events"], verify["ok"]));
    for e in tail["events"].as_array().into_iter().flatten() {
        let mut details = e["details"].to_string();
        if details.chars().count() > 110 {
            details = details.chars().take(107).chain("...".chars()).collect();
        }
        say(&format!("   {:>3} {:<24} {details}", e["seq"], e["event_type"].as_str().unwrap_or("?")));
    }
    let intact = verify["ok"] == true && denied["decision"] == "deny";
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "home": home, "init": init, "installed": installed, "grant": { "jti": grant["jti"], "expires_at": grant["expires_at"] },
                "allowed": ok, "jail": jail, "denied": denied, "explain": why, "audit_verify": verify, "audit": tail["events"],
            }))?
        );
    }
    drop(fcpd);
    Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn is_root() -> bool {
    #[cfg(target_os = "linux")]
    return rustix::process::geteuid().is_root();
    #[cfg(not(target_os = "linux"))]
    false
}

/// What the host sees of a connector process: the seccomp mode, no_new_privs, its
/// effective capabilities, its pid inside its namespace and which namespaces it shares
/// with `fcp` (none, in the jail).
fn jail_facts(pid: u64) -> Value {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return Value::Null };
    let field =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(|v| v.trim().to_owned());
    let shared: Vec<&str> = ["pid", "net", "mnt", "ipc", "uts", "cgroup", "user"]
        .into_iter()
        .filter(|ns| {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
            theirs.is_some() && theirs == std::fs::read_link(format!("/proc/self/ns/{ns}")).ok()
        })
        .collect();
    json!({
        "seccomp": field("Seccomp").as_deref() == Some("2"),
        "no_new_privs": field("NoNewPrivs").as_deref() == Some("1"),
        "cap_eff": field("CapEff"),
        "pid_inside": field("NSpid").and_then(|v| v.split_whitespace().last().map(str::to_owned)),
        "shared_namespaces": shared,
    })
}

fn jail_summary(jail: &Value) -> String {
    if jail.is_null() {
        return "not visible from here".to_owned();
    }
    format!(
        "seccomp filter {}, no_new_privs {}, CapEff {}, pid {} inside, namespaces shared with the host: {}",
        jail["seccomp"],
        jail["no_new_privs"],
        jail["cap_eff"].as_str().unwrap_or("?"),
        jail["pid_inside"].as_str().unwrap_or("?"),
        match jail["shared_namespaces"].as_array() {
            Some(v) if v.is_empty() => "none".to_owned(),
            Some(v) => v.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
            None => "?".to_owned(),
        }
    )
}
