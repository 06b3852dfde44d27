//! [`SandboxError`]: one variant per step that can fail (house style §3.2 point 3).

use std::io;
use std::path::PathBuf;

use crate::layers::Layers;
use crate::spec::Resource;

/// A failed step of building a [`SpawnSpec`](crate::SpawnSpec), spawning a connector, or
/// controlling it. Steps that run in the child between fork and exec (parent death
/// signal, session, rlimits, fds, no_new_privs) are reported back to the parent with
/// the errno, so each has its own variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The program path is not absolute (the environment is cleared, so there is no PATH lookup).
    #[error("program {program} is not an absolute path")]
    RelativeProgram {
        /// The program as given.
        program: PathBuf,
    },
    /// The state dir or working dir is not absolute.
    #[error("directory {path} is not an absolute path")]
    RelativeDir {
        /// The path as given.
        path: PathBuf,
    },
    /// An environment variable name or value that `execve` cannot carry.
    #[error("environment variable {name:?}: {reason}")]
    EnvVar {
        /// The variable's name, lossily converted.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend cannot put these layers in force and the owner policy does not allow them missing.
    #[error("backend {backend} cannot apply {refused} and the degradation policy does not allow it")]
    LayersMissing {
        /// The backend's [`Sandbox::name`](crate::Sandbox::name).
        backend: &'static str,
        /// The missing layers the policy does not allow.
        refused: Layers,
    },
    /// Looking at the state dir failed.
    #[error("inspect state dir {path}")]
    InspectStateDir {
        /// The state dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating the missing state dir failed.
    #[error("create state dir {path}")]
    CreateStateDir {
        /// The state dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The state dir exists but is not a directory (a symlink counts as not a directory).
    #[error("state dir {path} is not a directory")]
    StateDirNotDirectory {
        /// The state dir.
        path: PathBuf,
    },
    /// Opening the pipe on which the child reports a failed pre-exec step failed.
    #[error("open the pre-exec report pipe")]
    ReportPipe {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// fork, chdir or exec failed (anything that is not one of the pre-exec steps below).
    #[error("spawn {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `prctl(PR_SET_PDEATHSIG)` failed in the child.
    #[error("set the parent death signal")]
    ParentDeathSignal {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The spawning process died before the child armed its parent death signal; the child exited.
    #[error("the spawning process died before the child was armed")]
    ParentDied,
    /// `setsid` failed in the child.
    #[error("start a new session")]
    NewSession {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `setrlimit` failed in the child (a limit above the hard limit needs privilege).
    #[error("set {resource}")]
    Rlimit {
        /// The resource.
        resource: Resource,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Marking every fd above 2 close-on-exec failed in the child.
    #[error("close fds above 2")]
    CloseFds {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed in the child.
    #[error("set no_new_privs")]
    NoNewPrivs {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Signalling the connector's process group failed.
    #[error("kill process group {pid}")]
    Kill {
        /// The connector's pid (and process group id).
        pid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for the connector failed.
    #[error("wait for {pid}")]
    Wait {
        /// The connector's pid.
        pid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
