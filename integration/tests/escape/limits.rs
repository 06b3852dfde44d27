//! The manifest's limits: pids (a fork bomb), memory, CPU quota and wall clock. Each
//! breach ends the program the way the summary reports, and the host stays usable.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::Signal;
use serde_json::Value;

use crate::harness::{cgroup_dirs, file_id, heavy, privileged, processes_running, Findings, Jail, Outcome, Run};

/// How long the host may take to start and reap `true` while a jail misbehaves.
const RESPONSIVE: Duration = Duration::from_secs(1);

/// Whether `run` was killed by SIGKILL for `limit`, per its exit status and summary.
fn killed_for(run: &Run, limit: &str) -> bool {
    matches!(run.outcome(), Outcome::Killed { signal, breach } if signal == Signal::KILL.as_raw() && breach["limit"] == limit)
}

fn counter(run: &Run, name: &str) -> u64 {
    run.summary().get("counters").and_then(|c| c[name].as_u64()).unwrap_or(0)
}

#[test]
fn a_fork_bomb_is_held_by_the_pids_limit() {
    if !privileged("a_fork_bomb_is_held_by_the_pids_limit") {
        return;
    }
    let _heavy = heavy();
    // Its own copy of the program, so its processes are told apart by inode.
    let jail = Jail::strict().with_own_program();
    let program = file_id(&jail.program);
    let (mut cmd, summary) = jail.command(&["fork-bomb", "10000"]);
    cmd.stdin(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn fcp sandbox run");
    let command = format!("{cmd:?}");
    let fcp_cgroups = cgroup_dirs(child.id());

    // The jail is the process running the program; its cgroups are those that are not fcp's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (jail_pid, jail_cgroups) = loop {
        let found = processes_running(program).first().map(|pid| {
            let own: Vec<_> = cgroup_dirs(*pid).into_iter().filter(|d| !fcp_cgroups.contains(d)).collect();
            (*pid, own)
        });
        match found {
            Some((pid, own)) if !own.is_empty() => break (pid, own),
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the jail did not start in a cgroup of its own within 10 s");
            }
            _ => thread::sleep(Duration::from_millis(5)),
        }
    };

    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("start the bomb");
    // While it runs, the host must still start processes quickly.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let status = Command::new("true").stdin(Stdio::null()).status().expect("run true on the host");
                assert!(status.success());
                slowest = slowest.max(t.elapsed());
                thread::sleep(Duration::from_millis(20));
            }
            slowest
        })
    };
    let run = Run::finish(command, child, &summary, started);
    done.store(true, Ordering::Relaxed);
    let slowest = probe.join().expect("host probe");
    drop(stdin);

    let mut findings = Findings::default();
    findings.check(killed_for(&run, "pids"), || format!("not killed for its pids limit:\n{run}"));
    findings.check(counter(&run, "pids_max_hits") >= 1, || format!("no pids.max hit counted:\n{run}"));
    if let Some(report) = run.report() {
        findings.check(report["errno"] == Errno::AGAIN.raw_os_error(), || format!("fork failed otherwise: {report}"));
        findings.check(report["forked"].as_u64().is_some_and(|n| n < 1024), || format!("forked too many: {report}"));
    }
    findings.check(slowest < RESPONSIVE, || format!("the host took {slowest:?} to run `true` during the bomb"));
    findings.check(run.elapsed < Duration::from_secs(10), || format!("the bomb ran {:?}", run.elapsed));
    // Cleaned up: no process of the program left, the jail's cgroups removed.
    let deadline = Instant::now() + Duration::from_secs(2);
    while (!processes_running(program).is_empty() || jail_cgroups.iter().any(|d| d.exists()))
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    let left = processes_running(program);
    findings
        .check(left.is_empty(), || format!("{} bomb processes outlived the jail (pid 1 was {jail_pid})", left.len()));
    for dir in &jail_cgroups {
        findings.check(!dir.exists(), || format!("the jail's cgroup {} outlived it", dir.display()));
    }
    findings.assert_none();
}

#[test]
fn allocating_past_memory_mb_is_killed_as_out_of_memory() {
    if !privileged("allocating_past_memory_mb_is_killed_as_out_of_memory") {
        return;
    }
    let _heavy = heavy();
    let jail = Jail::strict();
    let mut findings = Findings::default();
    // memory_mb = 32: 8 MiB is fine, 256 MiB is not.
    let run = jail.run(&["alloc", "8"]);
    findings.check(matches!(run.outcome(), Outcome::Allowed(_)), || format!("8 MiB of 32 failed:\n{run}"));
    let run = jail.run(&["alloc", "256"]);
    findings.check(killed_for(&run, "memory"), || format!("not killed for its memory limit:\n{run}"));
    findings.check(counter(&run, "oom_kills") >= 1, || format!("no OOM kill counted:\n{run}"));
    findings.assert_none();
}

#[test]
fn spinning_is_throttled_to_cpu_percent() {
    if !privileged("spinning_is_throttled_to_cpu_percent") {
        return;
    }
    let _heavy = heavy();
    let jail = Jail::strict();
    let run = jail.run(&["spin", "2000"]);
    let mut findings = Findings::default();
    match run.outcome() {
        Outcome::Allowed(report) => {
            let (wall, cpu) = (report["wall_ms"].as_u64().unwrap_or(0), report["cpu_ms"].as_u64().unwrap_or(u64::MAX));
            // cpu_percent = 10: a tenth of the wall time, with room for the last period and
            // the scheduler's slack, but far from the whole core it asked for.
            findings.check(wall >= 2000 && cpu.saturating_mul(4) <= wall, || {
                format!("{cpu} ms of CPU in {wall} ms at cpu_percent 10: {report}")
            });
        }
        other => findings.check(false, || format!("spin: {other}\n{run}")),
    }
    findings.check(counter(&run, "cpu_throttled_periods") >= 1, || format!("no throttled period counted:\n{run}"));
    findings.check(run.summary()["breach"] == Value::Null, || format!("throttling is no breach:\n{run}"));
    findings.assert_none();
}

#[test]
fn outliving_the_wall_clock_is_killed() {
    if !privileged("outliving_the_wall_clock_is_killed") {
        return;
    }
    let jail = Jail::with(&[("wall_clock_timeout_ms", "1000")]);
    let run = jail.run(&["sleep", "30000"]);
    let mut findings = Findings::default();
    findings.check(killed_for(&run, "wall_clock"), || format!("not killed for its wall clock:\n{run}"));
    findings.check(run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(10), || {
        format!("killed after {:?} for a 1 s wall clock", run.elapsed)
    });
    findings.assert_none();
}
