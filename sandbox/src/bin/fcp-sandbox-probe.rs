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
