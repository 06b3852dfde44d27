//! [`Seatbelt`] (macOS): a plain child process confined by a seatbelt profile.
//!
//! For each spawn the parent creates the state dir (0700), resolves the program and the
//! state dir to their canonical paths (seatbelt matches the paths lookups resolve to),
//! and compiles the spec's `[sandbox]` section with
//! [`fcp_policy::platform::seatbelt::compile`]. The child then runs the plain backend's
//! steps (session, umask, rlimits, fds above 2 close-on-exec) and, last, `sandbox_init`
//! with the profile (`sys/seatbelt.rs`), and execs the canonical program: the program is
//! the first image that runs under the profile, and the profile holds for every process
//! it starts. A profile `sandbox_init` refuses fails the spawn with
//! [`SandboxError::SandboxInit`] and its message.
//!
//! **Not yet run on a Mac.** This workspace is built and tested on Linux only; the
//! profile translation is tested there against golden files, this file only by review.
//! The first macOS run should spawn the escape probe under it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fcp_policy::jail::{Arch, Binary, JailInputs};
use fcp_policy::platform::seatbelt::{self, SeatbeltProfile};
use fcp_policy::platform::Egress;

use crate::error::SandboxError;
use crate::jailed::Jailed;
use crate::layers::Layers;
use crate::pipe::pipe;
use crate::plain::PlainProcess;
use crate::prexec::{self, ChildPlan, Step};
use crate::spec::SpawnSpec;
use crate::{state_dir, sys, Sandbox};

/// The macOS backend: [`PlainProcess`]'s hygiene plus a seatbelt profile compiled from
/// the spec's `[sandbox]` section: default deny, the declared paths only, exec of the
/// program only under `deny_exec`, and network only to the egress proxy (see
/// [`fcp_policy::platform::seatbelt`]).
///
/// [`Seatbelt::LAYERS`] are the plain backend's: the [`Layer`](crate::Layer) vocabulary
/// names the Linux jail's mechanisms, and seatbelt is none of them (it confines files,
/// exec and network like Landlock and the network namespace together, but has no
/// seccomp, namespaces, cgroups or uid switch). A spec's
/// [`Degradation`](crate::Degradation) must therefore allow the Linux layers missing;
/// the confinement this backend adds is recorded by its name in audit records.
/// spec/sandbox-platforms.md lists what is weaker than on Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seatbelt {
    egress: Egress,
}

impl Seatbelt {
    /// The backend's name.
    pub const NAME: &'static str = "macos-seatbelt";

    /// The layers of [`Layer`](crate::Layer) this backend puts in force (see the type docs).
    pub const LAYERS: Layers = PlainProcess::LAYERS;

    /// The backend; every connector it spawns may reach `egress` and nothing else.
    pub fn new(egress: Egress) -> Seatbelt {
        Seatbelt { egress }
    }

    /// The profile this backend applies for `spec`, and the canonical program it execs.
    /// The state dir must exist ([`Sandbox::spawn`] creates it first).
    pub fn profile(&self, spec: &SpawnSpec) -> Result<(SeatbeltProfile, PathBuf), SandboxError> {
        let program = canonical(spec.program())?;
        let inputs = JailInputs {
            tcp_connect: None,
            network_files: Vec::new(),
            binary: Binary { path: program.clone(), interpreter: None, libraries: Vec::new() },
            state_dir: canonical(spec.state_dir())?,
            // Only the Linux seccomp plan depends on it; a Mac is x86-64 or arm64.
            arch: Arch::native().ok_or(SandboxError::UnsupportedArch)?,
        };
        let profile = seatbelt::compile(&spec.sandbox_section(), &inputs, self.egress)
            .map_err(|source| SandboxError::CompileSeatbelt { source })?;
        Ok((profile, program))
    }
}

impl Sandbox for Seatbelt {
    fn spawn(&self, spec: &SpawnSpec) -> Result<Jailed, SandboxError> {
        let missing = spec.degradation().check(Self::NAME, Self::LAYERS)?;
        state_dir::prepare(spec.state_dir())?;
        let (profile, program) = self.profile(spec)?;
        let (report_read, report_write) = pipe(true).map_err(|source| SandboxError::ReportPipe { source })?;
        let (seatbelt_read, seatbelt_write) = pipe(true).map_err(|source| SandboxError::ReportPipe { source })?;

        let mut command = Command::new(&program);
        command
            .args(spec.args())
            .env_clear()
            .envs(spec.environment().iter())
            .current_dir(spec.working_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Hooks run in the order they are added: the plain steps, then sandbox_init.
        sys::install(&mut command, ChildPlan::new(spec.limits()), report_write);
        sys::install_seatbelt(&mut command, profile.to_c_string(), seatbelt_write);
        let spawned = command.spawn();
        // The command owns the hooks and with them our copies of the reports' write ends.
        drop(command);

        match spawned {
            Ok(child) => {
                Ok(Jailed::from_child(child, Self::NAME, Self::LAYERS, missing, spec.limits().wall_clock_timeout))
            }
            Err(source) => {
                // std reaps a child whose hook or exec failed before returning, so a
                // report, if the child wrote one, is already in its (non-blocking) pipe.
                let mut report = [0u8; Step::LEN];
                let len = rustix::io::read(&report_read, &mut report).unwrap_or(0);
                if len > 0 {
                    return Err(prexec::spawn_error(&report[..len], &program, source));
                }
                let mut report = [0u8; sys::SEATBELT_REPORT_LEN];
                let len = rustix::io::read(&seatbelt_read, &mut report).unwrap_or(0);
                match report.get(..len) {
                    Some([version, message @ ..]) if *version == sys::SEATBELT_REPORT_VERSION => {
                        Err(SandboxError::SandboxInit {
                            message: String::from_utf8_lossy(message).into_owned(),
                            source,
                        })
                    }
                    _ => Err(prexec::spawn_error(&[], &program, source)),
                }
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

fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(path).map_err(|source| SandboxError::ResolvePath { path: path.to_owned(), source })
}
