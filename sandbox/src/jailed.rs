//! [`Jailed`]: a running connector, its stdio, and the layers around it.

use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use crate::breach::{Breach, LimitCounters};
use crate::error::SandboxError;
use crate::layers::Layers;
use crate::recording::FakeProcess;

/// A connector started by a [`Sandbox`](crate::Sandbox).
///
/// The connector leads its own process group; [`Jailed::kill`] signals the whole group.
/// Dropping a `Jailed` whose connector has not been reaped kills the group and reaps the
/// connector, so a connector never outlives its handle.
///
/// **Wall clock.** Nothing runs in the background: the wall-clock limit of the spec is
/// enforced only by [`Jailed::wait_timeout`], for a caller that blocks a thread on it. An
/// async caller (fcpd) instead sleeps until [`Jailed::deadline`] and calls
/// [`Jailed::kill`].
#[derive(Debug)]
pub struct Jailed {
    pid: u32,
    process: Process,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    backend: &'static str,
    in_force: Layers,
    missing: Layers,
    deadline: Instant,
    status: Option<ExitStatus>,
    /// Set when the jail killed the connector for its wall-clock limit.
    wall_clock_killed: bool,
    /// Set when the jail killed the connector for its pids limit.
    pids_killed: bool,
    /// The cgroup's counters and the breach, read once the connector was reaped.
    ending: Option<(Option<LimitCounters>, Option<Breach>)>,
}

#[derive(Debug)]
enum Process {
    Os(Child),
    Fake(FakeProcess),
    /// A child the backend forked itself (the Linux jail's clone), reaped with waitpid,
    /// and what to release once it is gone (its cgroup), dropped after the process.
    #[cfg(target_os = "linux")]
    Raw {
        pid: Pid,
        /// Its counters are read at the end; its `Drop` removes the cgroup.
        cgroup: Option<crate::linux::Cgroup>,
        /// Where the kernel logs seccomp kills, when readable.
        kernel_log: Option<std::sync::Arc<crate::linux::KernelLog>>,
    },
}

/// How [`Jailed::wait_timeout`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connector exited (or was killed by someone else) before the deadline.
    Exited(ExitStatus),
    /// The deadline passed; the process group was killed and the connector reaped.
    TimedOut(ExitStatus),
}

impl Jailed {
    /// Wraps a real child; its stdio must be piped.
    pub(crate) fn from_child(
        mut child: Child,
        backend: &'static str,
        in_force: Layers,
        missing: Layers,
        wall_clock: Duration,
    ) -> Jailed {
        Jailed {
            pid: child.id(),
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            process: Process::Os(child),
            backend,
            in_force,
            missing,
            deadline: deadline_after(wall_clock),
            status: None,
            wall_clock_killed: false,
            pids_killed: false,
            ending: None,
        }
    }

    /// Wraps a child the backend forked itself; `stdio` are the parent's ends of its pipes
    /// and `layers` those in force and those missing.
    #[cfg(target_os = "linux")]
    pub(crate) fn from_pid(
        pid: Pid,
        cgroup: Option<crate::linux::Cgroup>,
        kernel_log: Option<std::sync::Arc<crate::linux::KernelLog>>,
        stdio: (ChildStdin, ChildStdout, ChildStderr),
        backend: &'static str,
        (in_force, missing): (Layers, Layers),
        wall_clock: Duration,
    ) -> Jailed {
        Jailed {
            pid: pid.as_raw_nonzero().get().unsigned_abs(),
            process: Process::Raw { pid, cgroup, kernel_log },
            stdin: Some(stdio.0),
            stdout: Some(stdio.1),
            stderr: Some(stdio.2),
            backend,
            in_force,
            missing,
            deadline: deadline_after(wall_clock),
            status: None,
            wall_clock_killed: false,
            pids_killed: false,
            ending: None,
        }
    }

    /// Wraps a fake process of [`RecordingSandbox`](crate::RecordingSandbox).
    pub(crate) fn from_fake(
        pid: u32,
        process: FakeProcess,
        stdio: (ChildStdin, ChildStdout, ChildStderr),
        backend: &'static str,
        in_force: Layers,
        missing: Layers,
        wall_clock: Duration,
    ) -> Jailed {
        Jailed {
            pid,
            process: Process::Fake(process),
            stdin: Some(stdio.0),
            stdout: Some(stdio.1),
            stderr: Some(stdio.2),
            backend,
            in_force,
            missing,
            deadline: deadline_after(wall_clock),
            status: None,
            wall_clock_killed: false,
            pids_killed: false,
            ending: None,
        }
    }

    /// The connector's pid, which is also its process group and session id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the connector's stdin (the write end); `None` once taken.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Takes the connector's stdout (the read end); `None` once taken.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Takes the connector's stderr (the read end); `None` once taken.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stderr.take()
    }

    /// The [`Sandbox::name`](crate::Sandbox::name) of the backend that spawned it.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The layers in force around the connector.
    pub fn layers(&self) -> Layers {
        self.in_force
    }

    /// The layers that are not in force, all allowed by the spec's
    /// [`Degradation`](crate::Degradation). The caller writes one audit record for each.
    pub fn missing_layers(&self) -> Layers {
        self.missing
    }

    /// When the spec's wall-clock limit runs out (measured from the end of the spawn).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Sends SIGKILL to the connector's process group. A group that is already gone is
    /// not an error. Descendants that left the group (`setsid`) are out of reach of the
    /// plain backend; the pid namespace of the full jail closes that gap.
    pub fn kill(&mut self) -> Result<(), SandboxError> {
        match &mut self.process {
            Process::Fake(fake) => {
                fake.kill();
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Process::Raw { pid, .. } => {
                // The connector is pid 1 of its pid namespace: killing it kills everything in it.
                match rustix::process::kill_process_group(*pid, Signal::KILL) {
                    Ok(()) | Err(Errno::SRCH) => {}
                    Err(e) => return Err(SandboxError::Kill { pid: self.pid, source: e.into() }),
                }
                if self.status.is_none() {
                    match rustix::process::kill_process(*pid, Signal::KILL) {
                        Ok(()) | Err(Errno::SRCH) => {}
                        Err(e) => return Err(SandboxError::Kill { pid: self.pid, source: e.into() }),
                    }
                }
                Ok(())
            }
            Process::Os(child) => {
                let Some(group) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) else {
                    return Err(SandboxError::Kill { pid: self.pid, source: Errno::INVAL.into() });
                };
                match rustix::process::kill_process_group(group, Signal::KILL) {
                    Ok(()) | Err(Errno::SRCH) => {}
                    Err(e) => return Err(SandboxError::Kill { pid: self.pid, source: e.into() }),
                }
                // The connector itself too, in case it left its group; until it is reaped
                // its pid cannot be reused, and std skips the signal once it is.
                if self.status.is_none() {
                    child.kill().map_err(|source| SandboxError::Kill { pid: self.pid, source })?;
                }
                Ok(())
            }
        }
    }

    /// The exit status, once the connector was reaped ([`Jailed::try_wait`],
    /// [`Jailed::wait`]); `None` before.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The connector's exit status if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, SandboxError> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        self.status = match &mut self.process {
            Process::Os(child) => child.try_wait().map_err(|source| SandboxError::Wait { pid: self.pid, source })?,
            Process::Fake(fake) => fake.try_wait(),
            #[cfg(target_os = "linux")]
            Process::Raw { pid, .. } => wait_raw(*pid, rustix::process::WaitOptions::NOHANG)
                .map_err(|e| SandboxError::Wait { pid: self.pid, source: e.into() })?,
        };
        self.observe_end();
        Ok(self.status)
    }

    /// Waits for the connector to exit. Closes its stdin first if it was not taken, as
    /// [`Child::wait`] does, so a connector reading stdin sees EOF.
    pub fn wait(&mut self) -> Result<ExitStatus, SandboxError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        drop(self.stdin.take());
        let status = match &mut self.process {
            Process::Os(child) => child.wait().map_err(|source| SandboxError::Wait { pid: self.pid, source })?,
            Process::Fake(fake) => fake.wait(),
            #[cfg(target_os = "linux")]
            Process::Raw { pid, .. } => wait_raw(*pid, rustix::process::WaitOptions::empty())
                .map_err(|e| SandboxError::Wait { pid: self.pid, source: e.into() })?
                .ok_or_else(|| SandboxError::Wait { pid: self.pid, source: Errno::CHILD.into() })?,
        };
        self.status = Some(status);
        self.observe_end();
        Ok(status)
    }

    /// Waits for the connector until [`Jailed::deadline`]; past it, kills the process
    /// group and reaps the connector. A connector that hit its pids limit is killed too
    /// (see [`Jailed::enforce_limits`]). Blocks the calling thread, polling every few
    /// milliseconds.
    pub fn wait_timeout(&mut self) -> Result<Outcome, SandboxError> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Outcome::Exited(status));
            }
            if self.enforce_limits()? {
                return self.wait().map(Outcome::Exited);
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.kill_at_deadline()?;
                return self.wait().map(Outcome::TimedOut);
            }
            thread::sleep(pause.min(self.deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Kills the connector for outliving its wall-clock limit, so that its
    /// [`Jailed::breach`] says so. For a caller that watches [`Jailed::deadline`] itself.
    pub fn kill_at_deadline(&mut self) -> Result<(), SandboxError> {
        if self.status.is_none() {
            self.wall_clock_killed = true;
        }
        self.kill()
    }

    /// Kills a running connector whose cgroup counted a fork refused by its pids limit
    /// (memory needs nothing: the kernel's OOM killer ends it). Returns whether it did.
    /// A caller that does not block in [`Jailed::wait_timeout`] calls this now and then.
    pub fn enforce_limits(&mut self) -> Result<bool, SandboxError> {
        if self.status.is_some() || self.pids_killed {
            return Ok(false);
        }
        match self.counters() {
            Some(c) if c.pids_max_hits > 0 => {
                self.pids_killed = true;
                self.kill()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The connector's cgroup counters: read now while it runs, as they were when it was
    /// reaped afterwards. `None` without a cgroup (other backends, or cgroups missing).
    pub fn counters(&self) -> Option<LimitCounters> {
        if let Some((counters, _)) = &self.ending {
            return *counters;
        }
        match &self.process {
            #[cfg(target_os = "linux")]
            Process::Raw { cgroup: Some(cgroup), .. } => Some(cgroup.counters()),
            _ => None,
        }
    }

    /// What ended the connector, once it was reaped: the limit or filter it broke, or
    /// `None` when it exited or was killed for no breach (including by [`Jailed::kill`]).
    pub fn breach(&self) -> Option<Breach> {
        self.ending.as_ref().and_then(|(_, breach)| *breach)
    }

    /// Once the connector was reaped: reads its cgroup's counters (before the cgroup is
    /// removed) and works out the breach, in this order: the jail's own kills (wall
    /// clock, pids), the OOM killer, a seccomp kill (SIGSYS).
    fn observe_end(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let Some(status) = self.status else { return };
        if self.ending.is_some() {
            return;
        }
        let counters = self.counters();
        let breach = if self.wall_clock_killed {
            Some(Breach::WallClock)
        } else if self.pids_killed {
            Some(Breach::Pids)
        } else if counters.is_some_and(|c| c.oom_kills > 0) {
            Some(Breach::Memory)
        } else if status.signal() == Some(libc::SIGSYS) {
            Some(Breach::Seccomp(self.seccomp_syscall()))
        } else {
            None
        };
        self.ending = Some((counters, breach));
    }

    /// The syscall the kernel logged for this connector's seccomp kill.
    fn seccomp_syscall(&self) -> Option<crate::breach::Syscall> {
        match &self.process {
            #[cfg(target_os = "linux")]
            Process::Raw { kernel_log: Some(log), .. } => {
                log.seccomp_kill(self.pid).map(|k| crate::breach::Syscall { number: k.number, name: k.name })
            }
            _ => None,
        }
    }
}

impl Drop for Jailed {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        // Errors cannot be returned from drop; a failed kill leaves the wait to block
        // only if the connector is still alive, which the kill just tried to prevent.
        if self.kill().is_ok() {
            let _ = self.wait();
        }
    }
}

/// `waitpid(pid, options)` as an [`ExitStatus`], retried on EINTR.
#[cfg(target_os = "linux")]
fn wait_raw(pid: Pid, options: rustix::process::WaitOptions) -> Result<Option<ExitStatus>, Errno> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        match rustix::process::waitpid(Some(pid), options) {
            Ok(status) => {
                return Ok(status.map(|(_, s)| ExitStatus::from_raw(i32::from_ne_bytes(s.as_raw().to_ne_bytes()))))
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn deadline_after(wall_clock: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = Instant::now();
    // A limit past what Instant can hold is capped at a year; failing that, it is now.
    now.checked_add(wall_clock).or_else(|| now.checked_add(YEAR)).unwrap_or(now)
}
