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
    /// Reading the connector binary, or a library it needs, failed.
    #[error("read {path}")]
    ReadBinary {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The connector binary, or a library it needs, is not an ELF file this jail can run.
    #[error("parse ELF file {path}: {reason}")]
    ParseElf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A library named by `DT_NEEDED` is in none of the loader's standard directories.
    #[error("library {library} needed by {needed_by} is not in the standard library directories")]
    MissingLibrary {
        /// The `DT_NEEDED` name.
        library: String,
        /// The file that needs it.
        needed_by: PathBuf,
    },
    /// The jail cannot run on this CPU architecture.
    #[error("the jail does not support this CPU architecture")]
    UnsupportedArch,
    /// Writing the connector's user namespace id maps failed.
    #[error("write {path}")]
    WriteIdMap {
        /// The `/proc/<pid>/…` file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The spec cannot be compiled into a jail plan.
    #[error("compile the jail plan")]
    CompileJail {
        /// The cause.
        #[source]
        source: fcp_policy::jail::JailPlanError,
    },
    /// The spec cannot be compiled into a seatbelt profile (macOS).
    #[error("compile the seatbelt profile")]
    CompileSeatbelt {
        /// The cause.
        #[source]
        source: fcp_policy::platform::PlatformError,
    },
    /// The spec cannot be compiled into an AppContainer profile (Windows).
    #[error("compile the appcontainer profile")]
    CompileAppContainer {
        /// The cause.
        #[source]
        source: fcp_policy::platform::PlatformError,
    },
    /// Resolving a path to its canonical form (symlinks followed) failed.
    #[error("resolve {path}")]
    ResolvePath {
        /// The path as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `sandbox_init` refused the seatbelt profile in the child (macOS).
    #[error("apply the seatbelt profile: {message}")]
    SandboxInit {
        /// The start of `sandbox_init`'s message, lossily converted.
        message: String,
        /// The errno the child reported.
        #[source]
        source: io::Error,
    },
    /// The backend cannot start connectors on this platform yet.
    #[error("backend {backend} cannot start connectors yet: {reason}")]
    Unsupported {
        /// The backend's [`Sandbox::name`](crate::Sandbox::name).
        backend: &'static str,
        /// What is missing.
        reason: &'static str,
    },
    /// A required bind source is missing or cannot be inspected.
    #[error("inspect bind source {path}")]
    BindSource {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path cannot be passed to the kernel (it holds a NUL byte).
    #[error("path {path} holds a NUL byte")]
    NulInPath {
        /// The path, lossily.
        path: PathBuf,
    },
    /// Giving a writable path to the jail's uid failed.
    #[error("give {path} to the jail's uid")]
    ChownWritable {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path below the state dir is a symlink, or leads through one. The state dir is
    /// the connector's to write, so a link there (planted by an earlier run, say) could
    /// point a bind or a chown anywhere on the host; such paths are never followed.
    #[error("{path} is, or leads through, a symlink below the state dir; it is not followed")]
    SymlinkInStateDir {
        /// The path.
        path: PathBuf,
    },
    /// The kernel cannot enforce Landlock (in hard-requirement mode) or did not report
    /// the ruleset fully enforced.
    #[error("landlock is not fully enforced: {reason}")]
    LandlockNotEnforced {
        /// What the kernel or the check said.
        reason: String,
    },
    /// Building the Landlock ruleset failed.
    #[error("build the landlock ruleset")]
    LandlockRuleset {
        /// The cause.
        #[source]
        source: landlock::RulesetError,
    },
    /// Opening a Landlock rule's path failed.
    #[error("open {path} for a landlock rule")]
    LandlockPath {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: landlock::PathFdError,
    },
    /// Compiling the seccomp plan into BPF failed.
    #[error("compile the seccomp filter")]
    CompileSeccomp {
        /// The cause.
        #[source]
        source: seccompiler::Error,
    },
    /// Reading the kernel's last capability failed.
    #[error("find the kernel's capabilities")]
    KernelCapabilities {
        /// The cause.
        #[source]
        source: caps::errors::CapsError,
    },
    /// `clone` into new namespaces failed.
    #[error("clone into new namespaces")]
    CloneNamespaces {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating or configuring the connector's cgroup failed.
    #[error("set up cgroup file {path}")]
    Cgroup {
        /// The cgroup directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the child's step report failed.
    #[error("read the jail's step report")]
    ReadReport {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Moving itself into its cgroup failed in the child.
    #[error("enter the connector's cgroup")]
    EnterCgroup {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Entering a new cgroup namespace failed in the child.
    #[error("enter a new cgroup namespace")]
    UnshareCgroup {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Waiting for the parent to map its ids failed in the child.
    #[error("wait for the user namespace's id maps")]
    WaitIdMap {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Entering the network namespace the supervisor prepared failed in the child.
    #[error("enter the jail's network namespace")]
    EnterNetwork {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A jail network needs a supervisor that is root (the namespace is the host's
    /// root user's, which a jail in a user namespace cannot enter).
    #[error("a jail network needs fcpd to run as root")]
    NetworkNeedsRoot,
    /// Redirecting stdio to the pipes failed in the child.
    #[error("redirect stdio")]
    Stdio {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `sethostname` failed in the child.
    #[error("set the hostname")]
    SetHostname {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Making every mount private failed in the child.
    #[error("make mounts private")]
    MakeMountsPrivate {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Mounting the tmpfs that becomes the root failed in the child.
    #[error("mount the tmpfs root on {root}")]
    MountRoot {
        /// The host directory it was mounted on.
        root: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `pivot_root` failed in the child.
    #[error("pivot_root into {root}")]
    PivotRoot {
        /// The host directory holding the new root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating a mount point inside the jail failed in the child.
    #[error("make mount point {path}")]
    MakeMountPoint {
        /// The path inside the jail.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A bind mount failed in the child.
    #[error("bind {host} at {target}")]
    Bind {
        /// The host path.
        host: PathBuf,
        /// The path inside the jail.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Remounting a bind with its flags (read-only, nosuid, nodev) failed in the child.
    #[error("remount {target}")]
    RemountBind {
        /// The path inside the jail.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Mounting the fresh procfs failed in the child.
    #[error("mount proc at {path}")]
    MountProc {
        /// The path inside the jail.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Detaching the old root failed in the child.
    #[error("detach the old root")]
    UnmountOldRoot {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Remounting the tmpfs root read-only failed in the child.
    #[error("remount the root read-only")]
    RemountRootReadOnly {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `chdir` to the working dir failed in the child.
    #[error("change to {path}")]
    ChangeDir {
        /// The path inside the jail.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Bringing up the loopback interface failed in the child.
    #[error("bring up loopback")]
    Loopback {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Adding the Landlock rule for the fresh /proc failed in the child.
    #[error("add the landlock rule for /proc")]
    LandlockProc {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `landlock_restrict_self` failed in the child.
    #[error("enforce the landlock ruleset")]
    LandlockRestrict {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Locking the securebits failed in the child.
    #[error("lock the securebits")]
    SecureBits {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Dropping a capability from the bounding set failed in the child.
    #[error("drop capability {capability} from the bounding set")]
    DropBoundingCapability {
        /// The capability number.
        capability: u8,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Clearing the ambient capabilities failed in the child.
    #[error("clear the ambient capabilities")]
    ClearAmbient {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `setgroups` failed in the child.
    #[error("clear the supplementary groups")]
    SetGroups {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `setresgid` failed in the child.
    #[error("switch to gid {gid}")]
    SetGid {
        /// The gid.
        gid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `setresuid` failed in the child.
    #[error("switch to uid {uid}")]
    SetUid {
        /// The uid.
        uid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Clearing the capability sets failed in the child, or a capability survived.
    #[error("clear every capability")]
    ClearCapabilities {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Installing a seccomp filter failed in the child.
    #[error("install seccomp filter {filter}")]
    InstallSeccomp {
        /// Its position in the install order.
        filter: u16,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `execve` of the connector failed in the child.
    #[error("exec {program}")]
    Exec {
        /// The program.
        program: PathBuf,
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
