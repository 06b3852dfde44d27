//! fcp-sandbox-probe: a test helper that reports, from inside, what a sandbox backend
//! did to it (in the role of youki's `runtimetest`). Used by `sandbox/tests/` and the
//! spawn benchmark; it is not a connector.
//!
//! Modes (the first argument):
//! - `report [--stdin]`: prints one JSON object: pid, ppid, pgid, sid, cwd, env, open fds,
//!   rlimits, NoNewPrivs, Umask, parent death signal (and stdin, read to EOF, with `--stdin`).
//! - `echo`: copies stdin to stdout, then writes `stderr-ok` to stderr.
//! - `exit CODE`: exits with CODE at once.
//! - `sleep SECS`: sleeps.
//! - `fork-sleep`: starts `fcp-sandbox-probe sleep 60` as a child (same process group),
//!   prints its pid on a line, then sleeps.
//! - `spawn-plain STATE_DIR`: spawns `fcp-sandbox-probe sleep 60` through
//!   `PlainProcess`, prints its pid on a line, and exits at once without killing it.
//! - `jail-report [PATH…]`: prints one JSON object of what a jail should have taken away: ids,
//!   hostname, the capability, no_new_privs and seccomp lines of `/proc/self/status`,
//!   the capability sets as the `caps` crate reads them, and for a list of paths whether
//!   they exist, can be read, and can be written (a file created and removed); the
//!   extra PATHs are looked at too.
//! - `attempt NAME` (Linux): makes one escape attempt
//!   ([`fcp_sandbox::escape::Attempt`]) and prints `allowed` or `denied ERRNO`; a
//!   seccomp kill ends the process with SIGSYS instead.
//! - `connect ADDR`: a TCP connection to ADDR; prints `connected` or `denied ERRNO`.
//! - `alloc MB`: allocates and touches MB MiB, then prints `allocated MB`.
//! - `fork-many N`: starts N sleeping children; when one is refused it prints
//!   `refused after K: ERROR` and sleeps.
//! - `exec-self`: replaces itself with `fcp-sandbox-probe exit 0` (an exec attempt).
//! - `jail STATE_DIR MODE…` (Linux): runs `fcp-sandbox-probe MODE…` through `LinuxJail`
//!   with the minimal test manifest, allowing missing only the layers the backend lacks
//!   (printed to stderr as `missing: …`), copies its stdout, and exits with its code
//!   (or 128 + its signal). Run by a non-root user it exercises the user-namespace path.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::thread;
use std::time::Duration;
use std::{env, fs};

use fcp_sandbox::{Degradation, PlainProcess, Sandbox, SpawnSpec};
use serde_json::{json, Value};

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["report"] => report(false)?,
        ["report", "--stdin"] => report(true)?,
        ["echo"] => {
            io::copy(&mut io::stdin().lock(), &mut io::stdout().lock())?;
            io::stderr().write_all(b"stderr-ok")?;
        }
        ["exit", code] => return Ok(ExitCode::from(code.parse::<u8>()?)),
        ["sleep", secs] => thread::sleep(Duration::from_secs(secs.parse()?)),
        ["fork-sleep"] => {
            let child = Command::new(env::current_exe()?).args(["sleep", "60"]).spawn()?;
            println!("{}", child.id());
            io::stdout().flush()?;
            thread::sleep(Duration::from_secs(60));
        }
        ["spawn-plain", state_dir] => {
            let spec = SpawnSpec::new(env::current_exe()?, Path::new(state_dir))?
                .arg("sleep")
                .arg("60")
                .with_degradation(Degradation::allow_plain_process());
            let jailed = PlainProcess::new().spawn(&spec)?;
            println!("{}", jailed.pid());
            io::stdout().flush()?;
            // Exit without running Jailed's destructor, which would kill the child: the
            // point is to see the death signal do it.
            std::process::exit(0);
        }
        ["jail-report", extra @ ..] => jail_report(extra)?,
        #[cfg(target_os = "linux")]
        ["attempt", name] => {
            let attempt: fcp_sandbox::escape::Attempt = name.parse()?;
            match attempt.run() {
                Ok(()) => println!("allowed"),
                Err(errno) => println!("denied {}", errno.raw_os_error()),
            }
        }
        #[cfg(target_os = "linux")]
        ["jail", state_dir, mode @ ..] => return jail(Path::new(state_dir), mode),
        ["connect", addr] => match std::net::TcpStream::connect(addr) {
            Ok(_) => println!("connected"),
            Err(e) => println!("denied {}", e.raw_os_error().unwrap_or(0)),
        },
        ["alloc", mb] => {
            // Touch every page, so the memory is resident and counted.
            let mut blocks = Vec::new();
            for _ in 0..mb.parse::<usize>()? {
                blocks.push(vec![1u8; 1 << 20]);
            }
            println!("allocated {}", blocks.len());
        }
        ["fork-many", n] => {
            // Children that sleep, until the pids limit refuses one.
            let mut children = Vec::new();
            for _ in 0..n.parse::<usize>()? {
                match Command::new(env::current_exe()?).args(["sleep", "60"]).spawn() {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        println!("refused after {}: {e}", children.len());
                        io::stdout().flush()?;
                        thread::sleep(Duration::from_secs(60));
                    }
                }
            }
            println!("started {}", children.len());
        }
        ["exec-self"] => {
            use std::os::unix::process::CommandExt;
            let err = Command::new(env::current_exe()?).args(["exit", "0"]).exec();
            println!("denied {}", err.raw_os_error().unwrap_or(0));
        }
        _ => return Err(format!("unknown mode {args:?}").into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn report(with_stdin: bool) -> Result<(), Box<dyn Error>> {
    use rustix::process::{getpgid, getpid, getppid, getrlimit, getsid, Resource};

    let pid = getpid();
    let env: BTreeMap<String, String> =
        env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect();

    // Every open fd but the one this listing uses, with what it points at.
    let own_listing = format!("/proc/{}/fd", pid.as_raw_nonzero());
    let mut fds = BTreeMap::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let target = fs::read_link(entry.path()).map(|t| t.display().to_string()).unwrap_or_default();
        if target != own_listing {
            fds.insert(entry.file_name().to_string_lossy().parse::<u32>()?, target);
        }
    }

    let limit = |resource| {
        let l = getrlimit(resource);
        json!([l.current, l.maximum])
    };
    let status = fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Option<String> {
        status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
    };
    #[cfg(target_os = "linux")]
    let pdeathsig = rustix::process::parent_process_death_signal()?.map(|s| s.as_raw());
    #[cfg(not(target_os = "linux"))]
    let pdeathsig: Option<i32> = None;

    let stdin = if with_stdin {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        Value::String(text)
    } else {
        Value::Null
    };

    let report = json!({
        "pid": pid.as_raw_nonzero().get(),
        "ppid": getppid().map(|p| p.as_raw_nonzero().get()),
        "pgid": getpgid(None)?.as_raw_nonzero().get(),
        "sid": getsid(None)?.as_raw_nonzero().get(),
        "cwd": env::current_dir()?.display().to_string(),
        "env": env,
        "fds": fds,
        "rlimits": {
            "core": limit(Resource::Core),
            "nofile": limit(Resource::Nofile),
            "nproc": limit(Resource::Nproc),
            "fsize": limit(Resource::Fsize),
            "as": limit(Resource::As),
        },
        "no_new_privs": field("NoNewPrivs"),
        "umask": field("Umask"),
        "pdeathsig": pdeathsig,
        "stdin": stdin,
    });
    println!("{report}");
    Ok(())
}

/// The paths `jail-report` looks at, besides the state dir and the program's directory.
const PATHS: [&str; 12] = [
    "/",
    "/etc/shadow",
    "/etc/passwd",
    "/home",
    "/root",
    "/sys",
    "/tmp",
    "/usr",
    "/dev",
    "/proc/1/environ",
    "/dev/null",
    "/proc",
];

fn jail_report(extra: &[&str]) -> Result<(), Box<dyn Error>> {
    let status = fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Value {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
            .map_or(Value::Null, Value::String)
    };
    let caps_of = |set| -> Value {
        match caps::read(None, set) {
            Ok(found) => {
                let mut names: Vec<String> = found.iter().map(|c| c.to_string()).collect();
                names.sort();
                json!(names)
            }
            Err(e) => json!(format!("error: {e}")),
        }
    };
    let errno = |e: &io::Error| json!(e.raw_os_error().map_or_else(|| e.to_string(), |n| format!("errno {n}")));
    let mut paths: Vec<String> = PATHS.iter().chain(extra).map(|p| (*p).to_owned()).collect();
    if let Some(state) = env::var_os(fcp_sandbox::CONNECTOR_STATE_VAR) {
        paths.push(state.to_string_lossy().into_owned());
    }
    if let Some(dir) = env::current_exe()?.parent() {
        paths.push(dir.display().to_string());
    }
    let mut seen = serde_json::Map::new();
    for path in paths {
        let p = Path::new(&path);
        let exists = fs::symlink_metadata(p).is_ok();
        let read = if p.is_dir() { fs::read_dir(p).map(drop) } else { fs::read(p).map(drop) };
        let write = if p.is_dir() {
            let file = p.join(".fcp-probe-write");
            fs::write(&file, b"x").and_then(|()| fs::remove_file(&file))
        } else {
            fs::OpenOptions::new().append(true).open(p).map(drop)
        };
        let outcome = |r: io::Result<()>| r.map_or_else(|e| errno(&e), |()| json!("ok"));
        seen.insert(path, json!({ "exists": exists, "read": outcome(read), "write": outcome(write) }));
    }
    let uname = rustix::system::uname();
    let report = json!({
        "pid": std::process::id(),
        "uid": rustix::process::getuid().as_raw(),
        "gid": rustix::process::getgid().as_raw(),
        "euid": rustix::process::geteuid().as_raw(),
        "hostname": uname.nodename().to_string_lossy(),
        "status": {
            "CapEff": field("CapEff"),
            "CapPrm": field("CapPrm"),
            "CapInh": field("CapInh"),
            "CapBnd": field("CapBnd"),
            "CapAmb": field("CapAmb"),
            "NoNewPrivs": field("NoNewPrivs"),
            "Seccomp": field("Seccomp"),
        },
        "caps": {
            "effective": caps_of(caps::CapSet::Effective),
            "permitted": caps_of(caps::CapSet::Permitted),
        },
        "paths": seen,
        "cgroup": fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
    });
    println!("{report}");
    Ok(())
}

#[cfg(target_os = "linux")]
fn jail(state_dir: &Path, mode: &[&str]) -> Result<ExitCode, Box<dyn Error>> {
    use fcp_sandbox::{Layers, LinuxJail};
    use std::os::unix::process::ExitStatusExt;

    let manifest = fcp_policy::manifest::Manifest::parse(include_str!("../../tests/data/manifest_minimal.toml"))?;
    let jail = LinuxJail::new()?;
    let missing = Layers::ALL.difference(jail.layers());
    eprintln!("missing: {missing}");
    let spec = mode
        .iter()
        .fold(SpawnSpec::from_manifest(&manifest, env::current_exe()?, state_dir)?, |s, a| s.arg(*a))
        .with_degradation(Degradation::AllowMissing(missing));
    let mut jailed = jail.spawn(&spec)?;
    let mut out = String::new();
    jailed.take_stdout().ok_or("no stdout")?.read_to_string(&mut out)?;
    print!("{out}");
    io::stdout().flush()?;
    let status = jailed.wait()?;
    let code = status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(255);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
