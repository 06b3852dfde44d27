//! [`PlainProcess`]: a plain child process with the hardening that needs no privilege.

use std::process::{Command, Stdio};

use crate::error::SandboxError;
use crate::jailed::Jailed;
use crate::layers::{Layer, Layers};
use crate::pipe::pipe;
use crate::prexec::{self, ChildPlan, Step};
use crate::spec::SpawnSpec;
use crate::{state_dir, sys, Sandbox};

/// The backend that runs a connector as a plain child process.
///
/// Between fork and exec the child, in this order: arms `PR_SET_PDEATHSIG(SIGKILL)` and
/// exits if the spawning process is already gone; starts its own session and process
/// group (`setsid`); sets umask 077; sets `RLIMIT_CORE` to 0 and `RLIMIT_NOFILE`,
/// `RLIMIT_NPROC`, `RLIMIT_FSIZE` and (when `memory_mb` is set) `RLIMIT_AS` from the
/// spec, soft and hard; marks every fd above 2 close-on-exec (`close_range`, or a walk
/// of `/proc/self/fd`); sets `PR_SET_NO_NEW_PRIVS`. Its environment is exactly the
/// spec's, its stdio are pipes, its working dir the spec's (by default the state dir,
/// created 0700 if missing). Any failed step fails the spawn with its own
/// [`SandboxError`] variant.
///
/// It cannot confine the connector: no namespaces, private root, Landlock, seccomp,
/// cgroup (so `cpu_percent` is not enforced and memory only as address space) or
/// capability drop. [`PlainProcess::LAYERS`] lists what it applies; a spec whose
/// [`Degradation`](crate::Degradation) does not allow the rest is refused before
/// anything is created.
///
/// The death signal fires when the *thread* that spawned the connector exits, not the
/// process: spawn from a thread that lives as long as the connector (not a pooled
/// blocking thread that may be retired). On macOS there is no death signal and no
/// no_new_privs, and fds are marked up to the `RLIMIT_NOFILE` soft limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainProcess;

impl PlainProcess {
    /// The backend's name.
    pub const NAME: &'static str = "plain";

    /// The layers this backend puts in force on this platform.
    #[cfg(target_os = "linux")]
    pub const LAYERS: Layers = Layers::of(&[
        Layer::CleanEnvironment,
        Layer::FdHygiene,
        Layer::ParentDeathSignal,
        Layer::ProcessGroup,
        Layer::ResourceLimits,
        Layer::NoNewPrivs,
    ]);

    /// The layers this backend puts in force on this platform.
    #[cfg(not(target_os = "linux"))]
    pub const LAYERS: Layers =
        Layers::of(&[Layer::CleanEnvironment, Layer::FdHygiene, Layer::ProcessGroup, Layer::ResourceLimits]);

    /// The backend.
    pub fn new() -> PlainProcess {
        PlainProcess
    }
}

impl Sandbox for PlainProcess {
    fn spawn(&self, spec: &SpawnSpec) -> Result<Jailed, SandboxError> {
        let missing = spec.degradation().check(Self::NAME, Self::LAYERS)?;
        state_dir::prepare(spec.state_dir())?;
        let (report_read, report_write) = pipe(true).map_err(|source| SandboxError::ReportPipe { source })?;

        let mut command = Command::new(spec.program());
        command
            .args(spec.args())
            .env_clear()
            .envs(spec.environment().iter())
            .current_dir(spec.working_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sys::install(&mut command, ChildPlan::new(spec.limits()), report_write);
        let spawned = command.spawn();
        // The command owns the hook and with it our copy of the report pipe's write end.
        drop(command);

        match spawned {
            Ok(child) => {
                Ok(Jailed::from_child(child, Self::NAME, Self::LAYERS, missing, spec.limits().wall_clock_timeout))
            }
            Err(source) => {
                // std reaps a child whose hook or exec failed before returning, so a report,
                // if the child wrote one, is already in the (non-blocking) pipe.
                let mut report = [0u8; Step::LEN];
                let len = rustix::io::read(&report_read, &mut report).unwrap_or(0);
                Err(prexec::spawn_error(&report[..len], spec.program(), source))
            }
        }
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn layers(&self) -> Layers {
        Self::LAYERS
    }
}
