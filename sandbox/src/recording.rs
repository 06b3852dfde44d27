//! [`RecordingSandbox`]: a fake backend for the supervisor's unit tests (house style §3.2
//! point 7). It records every spec, applies the same degradation check as a real
//! backend, and hands out a fake connector whose stdio are real pipes. Tests pass it in
//! explicitly; nothing selects it by `cfg!(test)`.

use std::fs::File;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::SandboxError;
use crate::jailed::Jailed;
use crate::layers::Layers;
use crate::pipe::pipe;
use crate::spec::SpawnSpec;
use crate::Sandbox;

/// A [`Sandbox`] that spawns nothing. See the module docs.
#[derive(Debug)]
pub struct RecordingSandbox {
    in_force: Layers,
    state: Mutex<Recorded>,
}

#[derive(Debug)]
struct Recorded {
    specs: Vec<SpawnSpec>,
    children: Vec<RecordedChild>,
    next_pid: u32,
    fail_next: Option<io::ErrorKind>,
}

impl RecordingSandbox {
    /// The backend's name.
    pub const NAME: &'static str = "recording";
    /// The first fake pid handed out; far above any real pid (`pid_max` is at most 2^22).
    pub const FIRST_PID: u32 = 1 << 30;

    /// A fake that claims to put `in_force` in force, so tests can exercise the
    /// degradation policy.
    pub fn new(in_force: Layers) -> RecordingSandbox {
        RecordingSandbox {
            in_force,
            state: Mutex::new(Recorded {
                specs: Vec::new(),
                children: Vec::new(),
                next_pid: RecordingSandbox::FIRST_PID,
                fail_next: None,
            }),
        }
    }

    /// Every spec passed to [`Sandbox::spawn`], refused and failed ones included, in order.
    pub fn specs(&self) -> Vec<SpawnSpec> {
        self.lock().specs.clone()
    }

    /// The fake connectors spawned since the last call, in order.
    pub fn take_children(&self) -> Vec<RecordedChild> {
        std::mem::take(&mut self.lock().children)
    }

    /// Makes the next spawn that passes the degradation check fail with
    /// [`SandboxError::Spawn`] of this kind.
    pub fn fail_next_spawn(&self, kind: io::ErrorKind) {
        self.lock().fail_next = Some(kind);
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sandbox for RecordingSandbox {
    fn spawn(&self, spec: &SpawnSpec) -> Result<Jailed, SandboxError> {
        let mut state = self.lock();
        state.specs.push(spec.clone());
        let missing = spec.degradation().check(Self::NAME, self.in_force)?;
        if let Some(kind) = state.fail_next.take() {
            return Err(SandboxError::Spawn { program: spec.program().to_owned(), source: kind.into() });
        }
        let spawn_err = |source| SandboxError::Spawn { program: spec.program().to_owned(), source };
        let (stdin_read, stdin_write) = pipe(false).map_err(spawn_err)?;
        let (stdout_read, stdout_write) = pipe(false).map_err(spawn_err)?;
        let (stderr_read, stderr_write) = pipe(false).map_err(spawn_err)?;
        let pid = state.next_pid;
        state.next_pid = pid.wrapping_add(1);
        let process = FakeProcess::default();
        state.children.push(RecordedChild {
            spec: spec.clone(),
            pid,
            stdin: Some(stdin_read.into()),
            stdout: Some(stdout_write.into()),
            stderr: Some(stderr_write.into()),
            process: process.clone(),
        });
        let stdio = (ChildStdin::from(stdin_write), ChildStdout::from(stdout_read), ChildStderr::from(stderr_read));
        Ok(Jailed::from_fake(pid, process, stdio, Self::NAME, self.in_force, missing, spec.limits().wall_clock_timeout))
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn layers(&self) -> Layers {
        self.in_force
    }
}

/// The connector side of a fake spawn: the spec, the other ends of its stdio, and
/// control over its exit.
#[derive(Debug)]
pub struct RecordedChild {
    spec: SpawnSpec,
    pid: u32,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    process: FakeProcess,
}

impl RecordedChild {
    /// The spec it was spawned with.
    pub fn spec(&self) -> &SpawnSpec {
        &self.spec
    }

    /// Its fake pid (as [`Jailed::pid`] reports it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the read end of the connector's stdin: what the supervisor writes.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.stdin.take()
    }

    /// Takes the write end of the connector's stdout: what the supervisor reads.
    pub fn take_stdout(&mut self) -> Option<File> {
        self.stdout.take()
    }

    /// Takes the write end of the connector's stderr.
    pub fn take_stderr(&mut self) -> Option<File> {
        self.stderr.take()
    }

    /// Makes the connector exit with `code` (ignored if it already exited or was killed).
    pub fn exit(&self, code: u8) {
        self.process.finish(ExitStatus::from_raw(i32::from(code) << 8));
    }

    /// How many times it was killed: [`Jailed::kill`], a wall-clock timeout, or dropping
    /// its [`Jailed`] before it exited.
    pub fn kills(&self) -> u32 {
        self.process.lock().kills
    }
}

/// The shared state of a fake connector.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeProcess(Arc<(Mutex<FakeState>, Condvar)>);

#[derive(Debug, Default)]
struct FakeState {
    status: Option<ExitStatus>,
    kills: u32,
}

impl FakeProcess {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, status: ExitStatus) {
        let mut state = self.lock();
        state.status.get_or_insert(status);
        self.0 .1.notify_all();
    }

    /// Records a kill; the connector dies of SIGKILL unless it already exited.
    pub(crate) fn kill(&self) {
        self.lock().kills += 1;
        self.finish(ExitStatus::from_raw(libc::SIGKILL));
    }

    pub(crate) fn try_wait(&self) -> Option<ExitStatus> {
        self.lock().status
    }

    pub(crate) fn wait(&self) -> ExitStatus {
        let mut state = self.lock();
        loop {
            if let Some(status) = state.status {
                return status;
            }
            state = self.0 .1.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::jailed::Outcome;
    use crate::layers::{Degradation, Layer};
    use crate::spec::Limits;

    fn spec() -> SpawnSpec {
        SpawnSpec::new("/opt/fcp/echo", "/var/lib/fcp/echo").expect("spec")
    }

    #[test]
    fn records_specs_and_pipes_stdio() {
        let sandbox = RecordingSandbox::new(Layers::ALL);
        let mut jailed = sandbox.spawn(&spec().arg("--serve")).expect("spawned");
        assert_eq!(jailed.pid(), RecordingSandbox::FIRST_PID);
        assert_eq!(jailed.backend(), "recording");
        assert_eq!(jailed.layers(), Layers::ALL);
        assert!(jailed.missing_layers().is_empty());
        assert_eq!(sandbox.specs(), vec![spec().arg("--serve")]);

        let mut children = sandbox.take_children();
        assert_eq!(children.len(), 1);
        let child = &mut children[0];
        assert_eq!(child.pid(), jailed.pid());
        assert_eq!(child.spec().args(), ["--serve"]);

        let mut to_child = jailed.take_stdin().expect("stdin");
        to_child.write_all(b"ping").expect("write");
        drop(to_child);
        let mut got = String::new();
        child.take_stdin().expect("stdin").read_to_string(&mut got).expect("read");
        assert_eq!(got, "ping");

        child.take_stdout().expect("stdout").write_all(b"pong").expect("write");
        let mut got = String::new();
        jailed.take_stdout().expect("stdout").read_to_string(&mut got).expect("read");
        assert_eq!(got, "pong");

        assert_eq!(jailed.try_wait().expect("try_wait"), None);
        child.exit(3);
        assert_eq!(jailed.wait().expect("wait").code(), Some(3));
        assert_eq!(child.kills(), 0);
        assert!(sandbox.take_children().is_empty());
    }

    #[test]
    fn kill_kills_and_wait_blocks_until_exit() {
        let sandbox = RecordingSandbox::new(Layers::ALL);
        let mut jailed = sandbox.spawn(&spec()).expect("spawned");
        let child = sandbox.take_children().pop().expect("child");
        let exiter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            child.exit(0);
            child
        });
        assert_eq!(jailed.wait().expect("wait").code(), Some(0));
        let child = exiter.join().expect("joined");
        jailed.kill().expect("kill");
        assert_eq!(child.kills(), 1);
        assert_eq!(jailed.wait().expect("wait").code(), Some(0), "an exited connector stays exited");

        let mut jailed = sandbox.spawn(&spec()).expect("spawned");
        let child = sandbox.take_children().pop().expect("child");
        jailed.kill().expect("kill");
        assert_eq!(jailed.wait().expect("wait").signal(), Some(libc::SIGKILL));
        assert_eq!(child.kills(), 1);
    }

    #[test]
    fn wait_timeout_kills_at_the_deadline() {
        let sandbox = RecordingSandbox::new(Layers::ALL);
        let limits = Limits { wall_clock_timeout: Duration::from_millis(10), ..Limits::default() };
        let mut jailed = sandbox.spawn(&spec().with_limits(limits)).expect("spawned");
        let child = sandbox.take_children().pop().expect("child");
        match jailed.wait_timeout().expect("waited") {
            Outcome::TimedOut(status) => assert_eq!(status.signal(), Some(libc::SIGKILL)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(child.kills(), 1);
    }

    #[test]
    fn applies_the_degradation_policy() {
        let in_force = Layers::ALL.difference(Layers::of(&[Layer::Seccomp]));
        let sandbox = RecordingSandbox::new(in_force);
        match sandbox.spawn(&spec()) {
            Err(SandboxError::LayersMissing { backend: "recording", refused }) => {
                assert_eq!(refused, Layers::of(&[Layer::Seccomp]));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(sandbox.take_children().is_empty());
        let allowed = spec().with_degradation(Degradation::AllowMissing(Layers::of(&[Layer::Seccomp])));
        let jailed = sandbox.spawn(&allowed).expect("allowed");
        assert_eq!(jailed.missing_layers(), Layers::of(&[Layer::Seccomp]));
        assert_eq!(sandbox.specs().len(), 2);
    }

    #[test]
    fn injected_spawn_failure() {
        let sandbox = RecordingSandbox::new(Layers::ALL);
        sandbox.fail_next_spawn(io::ErrorKind::NotFound);
        match sandbox.spawn(&spec()) {
            Err(SandboxError::Spawn { program, source }) => {
                assert_eq!(program, spec().program());
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("unexpected {other:?}"),
        }
        let _jailed = sandbox.spawn(&spec()).expect("only the next spawn fails");
    }
}
