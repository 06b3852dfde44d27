//! The jail plan: a connector's `[sandbox]` section compiled into typed, serializable
//! data that a backend installs as it is (house style §3.2 point 8: compile, then apply).
//!
//! [`compile`] takes the manifest and the facts only the caller can know ([`JailInputs`]:
//! the binary and the files it needs, the state dir, the CPU architecture) and returns a
//! [`JailPlan`]:
//!
//! - [`JailPlan::namespaces`]: the namespaces to create (a user namespace is added by
//!   the backend when the supervisor is not root, see [`Identity`]);
//! - [`JailPlan::mounts`]: a fresh tmpfs root, read-only binds of the declared
//!   read-only paths and of the binary, its loader, its libraries and the CA
//!   certificates, writable binds of exactly the declared writable paths, a fresh
//!   `/proc` and four device nodes; nothing else, no `/sys`;
//! - [`JailPlan::landlock`]: the same filesystem policy again as Landlock rules;
//! - [`JailPlan::seccomp`]: an allowlist fitted to Rust/tokio connectors, with argument
//!   conditions, the deny list with its actions, and the default action;
//! - [`JailPlan::limits`]: memory, CPU, pids and wall clock.
//!
//! Profiles (`sandbox.profile`, digest §11 leaves their meaning to the implementation):
//! `strict` is the plan above; `strict_plus` also denies exec and ptrace whatever the
//! section says; `moderate` is the same plan, but a backend on a kernel without Landlock
//! may start it (the mount namespace still confines the filesystem; the missing layer is
//! audited); `permissive` is `moderate` whose syscalls off the allowlist answer ENOSYS
//! instead of killing (the deny list still kills). In every profile the connector gets no
//! raw sockets and no network but its own namespace's.
//!
//! Pure: it reads no file. Paths are jail paths (what the connector sees); a bind's
//! source is the host path.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, SandboxPath, SandboxProfile, SandboxSection};

/// A CPU architecture the seccomp program is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (`AUDIT_ARCH_X86_64`; x32 syscall numbers are refused).
    X86_64,
    /// AArch64 (`AUDIT_ARCH_AARCH64`).
    Aarch64,
}

impl Arch {
    /// The architecture this crate was compiled for, if it is one the jail supports.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The directories the dynamic loader searches when no `ld.so.cache` is present, in
    /// its order (the Debian multiarch directory first). A backend resolves a binary's
    /// `DT_NEEDED` entries against these and binds each library where it was found.
    pub fn library_dirs(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => {
                &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
            }
            Arch::Aarch64 => {
                &["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
            }
        }
    }

    /// The name as written in plans (`x86_64`, `aarch64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file the binary needs at run time: where the loader looks for it inside the jail,
/// and the host file bound there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuntimeFile {
    /// The path inside the jail (`PT_INTERP` as written, or a library dir joined with a
    /// `DT_NEEDED` name).
    pub jail_path: PathBuf,
    /// The host file, symlinks resolved.
    pub host_path: PathBuf,
}

/// The connector binary and what it needs to start, found by the caller (the backend
/// parses the ELF file's `PT_INTERP` and `DT_NEEDED` entries and resolves them against
/// [`Arch::library_dirs`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binary {
    /// The program's absolute host path; it is bound at the same path inside the jail.
    pub path: PathBuf,
    /// The dynamic loader (`None` for a static binary).
    pub interpreter: Option<RuntimeFile>,
    /// The shared libraries, transitively.
    pub libraries: Vec<RuntimeFile>,
}

/// What [`compile`] needs besides the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailInputs {
    /// The binary and its runtime files.
    pub binary: Binary,
    /// The instance's state dir (absolute host path): `$CONNECTOR_STATE`. It is bound at
    /// the same path, so the connector's `CONNECTOR_STATE` variable stays valid.
    pub state_dir: PathBuf,
    /// The architecture the seccomp program is for.
    pub arch: Arch,
    /// With a network: the TCP ports the connector may connect to (the operations'
    /// `port_allow`, DNS and the proxy's port), enforced by Landlock on ABI 4 and later.
    pub tcp_connect: Option<Vec<u16>>,
    /// Files the supervisor provides for the jail's network, bound read-only: the
    /// jail's `/etc/resolv.conf` (naming the egress proxy's DNS responder) and the trust
    /// store of the proxy's per-jail CA. Each is a [`RuntimeFile`] (host path, jail path).
    pub network_files: Vec<RuntimeFile>,
}

/// A namespace the jail creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// A user namespace (only when the supervisor is not root; see [`Identity`]).
    User,
    /// A mount namespace: the private root lives here.
    Mount,
    /// A pid namespace: the connector is pid 1 and sees only its descendants.
    Pid,
    /// An IPC namespace: no System V IPC or POSIX message queues of the host.
    Ipc,
    /// A UTS namespace: its own hostname.
    Uts,
    /// A cgroup namespace: the connector's cgroup is its root.
    Cgroup,
    /// A network namespace: only a loopback interface, brought up.
    Net,
}

/// The unprivileged uid and gid the connector runs as inside the jail. When the
/// supervisor is root the jail switches to them directly; otherwise the backend creates
/// a user namespace that maps them to the supervisor's own ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The uid inside.
    pub uid: u32,
    /// The gid inside.
    pub gid: u32,
}

impl Identity {
    /// `nobody`/`nogroup`.
    pub const NOBODY: Identity = Identity { uid: 65534, gid: 65534 };
}

/// Why a bind is in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindOrigin {
    /// `sandbox.fs_readonly_paths`.
    ReadonlyPath,
    /// `sandbox.fs_writable_paths`.
    WritablePath,
    /// The state dir, read-only because no writable path names it.
    StateDir,
    /// The connector binary.
    Program,
    /// The dynamic loader.
    Interpreter,
    /// A shared library.
    Library,
    /// The CA certificates.
    Certificates,
    /// A device node.
    Device,
    /// A file the supervisor provides for the jail's network ([`JailInputs::network_files`]).
    Network,
}

/// How a bind may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindAccess {
    /// Read-only, nosuid, nodev.
    ReadOnly,
    /// Writable, nosuid, nodev.
    ReadWrite,
    /// A device node: read and write, nosuid, devices allowed.
    Device,
}

/// One mount, in the order a backend performs them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mount {
    /// A fresh tmpfs that becomes `/` (`pivot_root`); remounted read-only once every
    /// other mount is in place.
    TmpfsRoot {
        /// Its size limit in bytes (it only holds the mount points).
        size_bytes: u64,
    },
    /// A bind of a host path at `target`.
    Bind {
        /// The host path.
        source: PathBuf,
        /// The path inside the jail.
        target: PathBuf,
        /// Read-only, writable, or a device.
        access: BindAccess,
        /// Whether a missing source fails the spawn; an optional bind with a missing
        /// source is left out.
        required: bool,
        /// Why it is there.
        origin: BindOrigin,
    },
    /// A fresh procfs for the pid namespace, showing only processes (`subset=pid`).
    Proc {
        /// Where (`/proc`).
        target: PathBuf,
    },
}

impl Mount {
    /// The path inside the jail.
    pub fn target(&self) -> &Path {
        match self {
            Mount::TmpfsRoot { .. } => Path::new("/"),
            Mount::Bind { target, .. } | Mount::Proc { target } => target,
        }
    }
}

/// A Landlock filesystem access right (the `LANDLOCK_ACCESS_FS_*` flags of ABI 1 to 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsAccess {
    /// Execute a file.
    Execute,
    /// Open a file for writing.
    WriteFile,
    /// Open a file for reading.
    ReadFile,
    /// List a directory.
    ReadDir,
    /// Remove a directory.
    RemoveDir,
    /// Unlink a file.
    RemoveFile,
    /// Create a character device.
    MakeChar,
    /// Create a directory.
    MakeDir,
    /// Create a regular file.
    MakeReg,
    /// Create a socket.
    MakeSock,
    /// Create a fifo.
    MakeFifo,
    /// Create a block device.
    MakeBlock,
    /// Create a symlink.
    MakeSym,
    /// Link or rename across directories (ABI 2).
    Refer,
    /// Truncate a file (ABI 3).
    Truncate,
    /// ioctl on a device (ABI 5).
    IoctlDev,
}

impl FsAccess {
    /// Every right; the ruleset handles all of them the kernel supports, so anything not
    /// granted by a rule is denied.
    pub const ALL: [FsAccess; 16] = [
        FsAccess::Execute,
        FsAccess::WriteFile,
        FsAccess::ReadFile,
        FsAccess::ReadDir,
        FsAccess::RemoveDir,
        FsAccess::RemoveFile,
        FsAccess::MakeChar,
        FsAccess::MakeDir,
        FsAccess::MakeReg,
        FsAccess::MakeSock,
        FsAccess::MakeFifo,
        FsAccess::MakeBlock,
        FsAccess::MakeSym,
        FsAccess::Refer,
        FsAccess::Truncate,
        FsAccess::IoctlDev,
    ];

    /// Whether the right applies to a file that is not a directory (Landlock refuses
    /// directory rights on such a rule; a backend keeps only these for a file).
    pub fn applies_to_files(self) -> bool {
        matches!(
            self,
            FsAccess::Execute | FsAccess::WriteFile | FsAccess::ReadFile | FsAccess::Truncate | FsAccess::IoctlDev
        )
    }
}

/// One Landlock rule: `access` is allowed beneath `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRule {
    /// The path inside the jail (the same inode as the bind's source).
    pub path: PathBuf,
    /// The rights granted.
    pub access: BTreeSet<FsAccess>,
}

/// The Landlock half of the filesystem policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// The rights the ruleset handles (denied unless a rule grants them).
    pub handled: BTreeSet<FsAccess>,
    /// The rules.
    pub rules: Vec<LandlockRule>,
    /// With a network: the only TCP ports the connector may connect to (Landlock ABI 4
    /// and later); binding any TCP port is denied. `None` (loopback only): no TCP rule.
    #[serde(default)]
    pub tcp_connect: Option<Vec<u16>>,
}

/// What the seccomp filter does with a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompAction {
    /// Let it through.
    Allow,
    /// Kill the whole connector with SIGSYS.
    KillProcess,
    /// Fail it with this errno, without running it.
    Errno(u32),
}

/// How an argument is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgOp {
    /// `arg == value`.
    Eq,
    /// `arg != value`.
    Ne,
    /// `arg & mask == value`.
    MaskedEq(u64),
}

/// The value an argument is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgValue {
    /// A constant.
    Const(u64),
    /// The address of the program path the backend passes to its own `execve`, known only
    /// in the backend when it builds the filter. With `deny_exec` this lets exactly the
    /// jail's own exec through; the connector cannot exec anything after it.
    ExecPathPointer,
}

/// One condition on one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArgCondition {
    /// The argument's index (0–5).
    pub arg: u8,
    /// Whether the comparison looks at all 64 bits (`true`) or the low 32 (`false`, for `int` arguments).
    pub wide: bool,
    /// The comparison.
    pub op: ArgOp,
    /// The value.
    pub value: ArgValue,
}

/// A syscall and when a rule matches it: always (no alternatives), or when every
/// condition of at least one alternative holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallRule {
    /// The syscall's name as in the kernel's tables for the plan's arch.
    pub syscall: String,
    /// The alternatives (OR of ANDs); empty means unconditionally.
    pub when: Vec<Vec<ArgCondition>>,
}

/// A syscall on the deny list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedSyscall {
    /// The syscall and the conditions under which it is denied.
    pub rule: SyscallRule,
    /// What happens instead.
    pub action: SeccompAction,
    /// Why, for `fcp sandbox explain`.
    pub reason: String,
}

/// The seccomp policy as data. A backend installs the deny list (one filter per action)
/// and the allowlist (allowed rules pass, everything else takes
/// [`SeccompPlan::default_action`]); the kernel applies the strictest verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPlan {
    /// The architecture.
    pub arch: Arch,
    /// What happens to a syscall that no allow rule matches (x32 numbers included).
    pub default_action: SeccompAction,
    /// The allowlist.
    pub allow: Vec<SyscallRule>,
    /// The deny list.
    pub deny: Vec<DeniedSyscall>,
}

impl SeccompPlan {
    /// The allow rule for `syscall`, if any.
    pub fn allowed(&self, syscall: &str) -> Option<&SyscallRule> {
        self.allow.iter().find(|r| r.syscall == syscall)
    }

    /// The deny entry for `syscall`, if any.
    pub fn denied(&self, syscall: &str) -> Option<&DeniedSyscall> {
        self.deny.iter().find(|d| d.rule.syscall == syscall)
    }
}

/// Resource limits of the jail (the cgroup's, and the wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailLimits {
    /// `memory_mb` in bytes (`memory.max`, v1 `memory.limit_in_bytes`); `None` for the manifest's 0.
    pub memory_bytes: Option<u64>,
    /// `cpu_percent` (100 = one core): the quota per [`JailLimits::CPU_PERIOD_US`].
    pub cpu_percent: u8,
    /// `pids.max`.
    pub pids_max: u32,
    /// `wall_clock_timeout_ms`.
    pub wall_clock_ms: u64,
}

impl JailLimits {
    /// The CPU accounting period in microseconds.
    pub const CPU_PERIOD_US: u64 = 100_000;
    /// The default `pids.max`: room for tokio's workers and blocking pool.
    pub const DEFAULT_PIDS_MAX: u32 = 1024;

    /// The CPU quota in microseconds per period.
    pub fn cpu_quota_us(&self) -> u64 {
        u64::from(self.cpu_percent) * JailLimits::CPU_PERIOD_US / 100
    }
}

/// The whole jail of one connector instance. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailPlan {
    /// Namespaces created when the supervisor is root (a backend adds
    /// [`Namespace::User`] otherwise).
    pub namespaces: Vec<Namespace>,
    /// The hostname inside the UTS namespace.
    pub hostname: String,
    /// The uid and gid inside.
    pub identity: Identity,
    /// The mounts, in order: the tmpfs root, binds sorted by target, `/proc`.
    pub mounts: Vec<Mount>,
    /// The Landlock rules.
    pub landlock: LandlockPlan,
    /// The seccomp policy.
    pub seccomp: SeccompPlan,
    /// The limits.
    pub limits: JailLimits,
    /// `PR_SET_NO_NEW_PRIVS` (always set).
    pub no_new_privs: bool,
    /// Whether every capability is dropped from every set and the securebits locked
    /// (always).
    pub drop_capabilities: bool,
}

impl JailPlan {
    /// The binds, in mount order.
    pub fn binds(&self) -> impl Iterator<Item = (&Path, &Path, BindAccess, BindOrigin)> {
        self.mounts.iter().filter_map(|m| match m {
            Mount::Bind { source, target, access, origin, .. } => Some((&**source, &**target, *access, *origin)),
            _ => None,
        })
    }

    /// The jail paths the connector can write to (device nodes aside).
    pub fn writable_paths(&self) -> Vec<&Path> {
        self.binds().filter(|(_, _, access, _)| *access == BindAccess::ReadWrite).map(|(_, t, _, _)| t).collect()
    }
}

/// The plan as text for an operator (`fcp sandbox explain`); `--json` is the serde form.
impl fmt::Display for JailPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[Namespace]| v.iter().map(|n| format!("{n:?}").to_lowercase()).collect::<Vec<_>>().join(", ");
        writeln!(f, "namespaces: {} (and user, when the supervisor is not root)", names(&self.namespaces))?;
        writeln!(f, "hostname: {}", self.hostname)?;
        writeln!(f, "runs as: uid {} gid {}", self.identity.uid, self.identity.gid)?;
        writeln!(f, "mounts:")?;
        for mount in &self.mounts {
            match mount {
                Mount::TmpfsRoot { size_bytes } => {
                    writeln!(f, "  tmpfs {:<40} size {size_bytes}, read-only once populated", "/")?
                }
                Mount::Bind { source, target, access, required, origin } => {
                    let access = match access {
                        BindAccess::ReadOnly => "ro",
                        BindAccess::ReadWrite => "rw",
                        BindAccess::Device => "dev",
                    };
                    let from = if source == target { String::new() } else { format!(" <- {}", source.display()) };
                    let optional = if *required { "" } else { ", if present" };
                    writeln!(f, "  {access:<5} {:<40} {origin:?}{optional}{from}", target.display())?;
                }
                Mount::Proc { target } => writeln!(f, "  proc  {:<40} fresh, processes only", target.display())?,
            }
        }
        writeln!(f, "landlock (every other path denied):")?;
        for rule in &self.landlock.rules {
            let access: Vec<String> = rule.access.iter().map(|a| format!("{a:?}")).collect();
            writeln!(f, "  {:<46} {}", rule.path.display(), access.join(" "))?;
        }
        if let Some(ports) = &self.landlock.tcp_connect {
            let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
            writeln!(f, "  tcp: connect only to ports {}; no bind (ABI 4 and later)", list.join(", "))?;
        }
        let seccomp = &self.seccomp;
        writeln!(
            f,
            "seccomp ({}): {} syscalls allowed, anything else {:?}",
            seccomp.arch,
            seccomp.allow.len(),
            seccomp.default_action
        )?;
        for denied in &seccomp.deny {
            let when = if denied.rule.when.is_empty() { "" } else { " (some arguments)" };
            writeln!(f, "  {:<22} {:?}{when}: {}", denied.rule.syscall, denied.action, denied.reason)?;
        }
        let limits = &self.limits;
        let memory = limits.memory_bytes.map_or_else(|| "unlimited".to_owned(), |b| format!("{} MiB", b >> 20));
        writeln!(
            f,
            "limits: memory {memory}, cpu {}% ({} us per {} us), pids {}, wall clock {} ms",
            limits.cpu_percent,
            limits.cpu_quota_us(),
            JailLimits::CPU_PERIOD_US,
            limits.pids_max,
            limits.wall_clock_ms
        )?;
        write!(
            f,
            "privileges: no_new_privs {}, every capability dropped and securebits locked {}",
            self.no_new_privs, self.drop_capabilities
        )
    }
}

/// Why a manifest cannot be compiled into a jail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JailPlanError {
    /// A sandbox path is not an absolute, normal path (`..`, a Windows form, …).
    #[error("sandbox path {path} is not an absolute normal path")]
    UnnormalPath {
        /// The path as written.
        path: String,
    },
    /// A sandbox path would expose the host's root, `/proc`, `/sys` or `/dev`.
    #[error("sandbox path {path} may not be bound into a jail")]
    ForbiddenPath {
        /// The path as written.
        path: String,
    },
    /// An input path (binary, state dir, runtime file) is not absolute and normal.
    #[error("input path {path} is not an absolute normal path")]
    UnnormalInput {
        /// The path.
        path: PathBuf,
    },
}

/// The host paths that are never bound (a jail gets its own `/proc` and `/dev` nodes).
const FORBIDDEN: [&str; 3] = ["/proc", "/sys", "/dev"];
/// The device nodes of the jail.
const DEVICES: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"];
/// The CA certificates (bound when present).
const CERTIFICATES: [&str; 2] = ["/etc/ssl/certs", "/usr/share/ca-certificates"];
/// The size of the tmpfs root: it holds only mount points.
const ROOT_SIZE_BYTES: u64 = 1 << 20;

/// Compiles `manifest`'s `[sandbox]` section into a jail plan. See [`compile_section`].
pub fn compile(manifest: &Manifest, inputs: &JailInputs) -> Result<JailPlan, JailPlanError> {
    compile_section(&manifest.sandbox, inputs)
}

/// Compiles a `[sandbox]` section into a jail plan.
///
/// Fails on a path that is not absolute and normal, and on one that names `/`, `/proc`,
/// `/sys` or `/dev` (or lies below the last three). A writable path below a read-only
/// one stays writable (binds are mounted in target order, parents first); a path named
/// both read-only and writable is writable; a read-only path below a writable one is
/// left out of the mounts (its parent's bind already shows it) but keeps its own
/// Landlock rule.
pub fn compile_section(sandbox: &SandboxSection, inputs: &JailInputs) -> Result<JailPlan, JailPlanError> {
    let mut tightened;
    let sandbox = if sandbox.profile == SandboxProfile::StrictPlus {
        // strict_plus: exec and ptrace denied whatever the section says.
        tightened = sandbox.clone();
        tightened.deny_exec = true;
        tightened.deny_ptrace = true;
        &tightened
    } else {
        sandbox
    };
    for path in [&inputs.binary.path, &inputs.state_dir] {
        normal_input(path)?;
    }
    for file in inputs.binary.interpreter.iter().chain(&inputs.binary.libraries).chain(&inputs.network_files) {
        normal_input(&file.jail_path)?;
        normal_input(&file.host_path)?;
    }

    let mut binds: Vec<Bind> = Vec::new();
    let mut state_writable = false;
    for path in &sandbox.fs_writable_paths {
        let (target, is_state) = resolve(path, &inputs.state_dir)?;
        state_writable |= is_state && target == inputs.state_dir;
        binds.push(Bind::same(target, BindAccess::ReadWrite, BindOrigin::WritablePath, true));
    }
    for path in &sandbox.fs_readonly_paths {
        let (target, _) = resolve(path, &inputs.state_dir)?;
        binds.push(Bind::same(target, BindAccess::ReadOnly, BindOrigin::ReadonlyPath, true));
    }
    if !state_writable {
        binds.push(Bind::same(inputs.state_dir.clone(), BindAccess::ReadOnly, BindOrigin::StateDir, true));
    }
    binds.push(Bind::same(inputs.binary.path.clone(), BindAccess::ReadOnly, BindOrigin::Program, true));
    if let Some(interp) = &inputs.binary.interpreter {
        binds.push(Bind::file(interp, BindOrigin::Interpreter));
    }
    for lib in &inputs.binary.libraries {
        binds.push(Bind::file(lib, BindOrigin::Library));
    }
    for cert in CERTIFICATES {
        binds.push(Bind::same(PathBuf::from(cert), BindAccess::ReadOnly, BindOrigin::Certificates, false));
    }
    for dev in DEVICES {
        binds.push(Bind::same(PathBuf::from(dev), BindAccess::Device, BindOrigin::Device, true));
    }
    for file in &inputs.network_files {
        binds.push(Bind::file(file, BindOrigin::Network));
    }

    let mut landlock = landlock_plan(&binds, sandbox.deny_exec);
    landlock.tcp_connect = inputs.tcp_connect.as_ref().map(|ports| {
        let mut ports = ports.clone();
        ports.sort_unstable();
        ports.dedup();
        ports
    });
    let mounts = mount_list(binds);
    let limits = JailLimits {
        memory_bytes: (sandbox.memory_mb > 0).then(|| u64::from(sandbox.memory_mb) << 20),
        cpu_percent: sandbox.cpu_percent.max(1),
        pids_max: JailLimits::DEFAULT_PIDS_MAX,
        wall_clock_ms: sandbox.wall_clock_timeout_ms,
    };
    Ok(JailPlan {
        namespaces: vec![
            Namespace::Mount,
            Namespace::Pid,
            Namespace::Ipc,
            Namespace::Uts,
            Namespace::Cgroup,
            Namespace::Net,
        ],
        hostname: "fcp-connector".to_owned(),
        identity: Identity::NOBODY,
        mounts,
        landlock,
        seccomp: seccomp::plan(inputs.arch, sandbox.deny_exec, sandbox.profile),
        limits,
        no_new_privs: true,
        drop_capabilities: true,
    })
}

/// A bind before de-duplication.
#[derive(Clone, Debug)]
struct Bind {
    source: PathBuf,
    target: PathBuf,
    access: BindAccess,
    origin: BindOrigin,
    required: bool,
}

impl Bind {
    fn same(path: PathBuf, access: BindAccess, origin: BindOrigin, required: bool) -> Bind {
        Bind { source: path.clone(), target: path, access, origin, required }
    }

    fn file(file: &RuntimeFile, origin: BindOrigin) -> Bind {
        Bind {
            source: file.host_path.clone(),
            target: file.jail_path.clone(),
            access: BindAccess::ReadOnly,
            origin,
            required: true,
        }
    }
}

/// Binds sorted by target (parents first), a path named twice kept once with the wider
/// access, and read-only binds below a writable bind of the same host tree left out.
fn mount_list(mut binds: Vec<Bind>) -> Vec<Mount> {
    // Writable before read-only for the same target, so the first of a target wins.
    let rank = |a: BindAccess| match a {
        BindAccess::ReadWrite => 0,
        BindAccess::Device => 1,
        BindAccess::ReadOnly => 2,
    };
    binds.sort_by(|a, b| a.target.cmp(&b.target).then(rank(a.access).cmp(&rank(b.access))));
    let mut kept: Vec<Bind> = Vec::new();
    for bind in binds {
        if kept.iter().any(|k| k.target == bind.target) {
            continue;
        }
        // Shown already by a writable parent bind of the same host path.
        let covered = kept.iter().any(|k| {
            k.access == BindAccess::ReadWrite
                && k.source == k.target
                && bind.source == bind.target
                && bind.target.starts_with(&k.target)
        });
        if covered && bind.access == BindAccess::ReadOnly {
            continue;
        }
        kept.push(bind);
    }
    let mut mounts = vec![Mount::TmpfsRoot { size_bytes: ROOT_SIZE_BYTES }];
    mounts.extend(kept.into_iter().map(|b| Mount::Bind {
        source: b.source,
        target: b.target,
        access: b.access,
        required: b.required,
        origin: b.origin,
    }));
    mounts.push(Mount::Proc { target: PathBuf::from("/proc") });
    mounts
}

fn landlock_plan(binds: &[Bind], deny_exec: bool) -> LandlockPlan {
    use FsAccess::*;
    let read: &[FsAccess] = &[ReadFile, ReadDir];
    let write: &[FsAccess] =
        &[ReadFile, ReadDir, WriteFile, Truncate, MakeReg, MakeDir, MakeSym, RemoveFile, RemoveDir, Refer];
    let mut rules: Vec<LandlockRule> = Vec::new();
    for bind in binds {
        let mut access: BTreeSet<FsAccess> = match (bind.access, bind.origin) {
            (_, BindOrigin::Program | BindOrigin::Interpreter) => [ReadFile, Execute].into(),
            (_, BindOrigin::Library) => [ReadFile].into(),
            (BindAccess::Device, _) => [ReadFile, WriteFile].into(),
            (BindAccess::ReadWrite, _) => write.iter().copied().collect(),
            (BindAccess::ReadOnly, _) => read.iter().copied().collect(),
        };
        if !deny_exec && bind.access == BindAccess::ReadOnly && bind.origin == BindOrigin::ReadonlyPath {
            access.insert(Execute);
        }
        match rules.iter_mut().find(|r| r.path == bind.target) {
            Some(rule) => rule.access.extend(access),
            None => rules.push(LandlockRule { path: bind.target.clone(), access }),
        }
    }
    rules.push(LandlockRule { path: PathBuf::from("/proc"), access: read.iter().copied().collect() });
    rules.sort_by(|a, b| a.path.cmp(&b.path));
    LandlockPlan { handled: FsAccess::ALL.into_iter().collect(), rules, tcp_connect: None }
}

/// A manifest path as a normal absolute jail path, and whether it is below the state dir.
fn resolve(path: &SandboxPath, state_dir: &Path) -> Result<(PathBuf, bool), JailPlanError> {
    match path {
        SandboxPath::Absolute(text) => {
            let normal = normal(text).ok_or_else(|| JailPlanError::UnnormalPath { path: text.clone() })?;
            if normal == Path::new("/") || FORBIDDEN.iter().any(|f| normal.starts_with(f)) {
                return Err(JailPlanError::ForbiddenPath { path: text.clone() });
            }
            Ok((normal, false))
        }
        SandboxPath::ConnectorState(sub) => {
            if sub.is_empty() {
                return Ok((state_dir.to_path_buf(), true));
            }
            let rest = normal(&format!("/{sub}"))
                .and_then(|p| p.strip_prefix("/").ok().map(Path::to_path_buf))
                .ok_or_else(|| JailPlanError::UnnormalPath { path: path.to_string() })?;
            Ok((state_dir.join(rest), true))
        }
    }
}

/// `text` with empty and `.` components dropped, if it is absolute and has no `..`.
fn normal(text: &str) -> Option<PathBuf> {
    if !text.starts_with('/') || text.contains('\0') {
        return None;
    }
    let mut out = PathBuf::from("/");
    for component in Path::new(text).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn normal_input(path: &Path) -> Result<(), JailPlanError> {
    let text = path.to_str();
    match text.and_then(normal) {
        Some(n) if n == path => Ok(()),
        _ => Err(JailPlanError::UnnormalInput { path: path.to_path_buf() }),
    }
}

/// The seccomp allowlist and deny list.
mod seccomp {
    use super::*;

    /// `CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
    /// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`.
    pub(super) const CLONE_NAMESPACE_FLAGS: u64 =
        0x80 | 0x2_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
    pub(super) const AF_UNIX: u64 = 1;
    pub(super) const AF_INET: u64 = 2;
    pub(super) const AF_INET6: u64 = 10;
    pub(super) const AF_PACKET: u64 = 17;
    pub(super) const SOCK_STREAM: u64 = 1;
    pub(super) const SOCK_DGRAM: u64 = 2;
    pub(super) const SOCK_RAW: u64 = 3;
    pub(super) const SOCK_SEQPACKET: u64 = 5;
    /// The type bits of `socket`'s second argument (the rest are `SOCK_NONBLOCK`/`SOCK_CLOEXEC`).
    pub(super) const SOCK_TYPE_MASK: u64 = 0xf;
    const ENOSYS: u32 = 38;

    /// Syscalls a Rust/tokio connector makes on both architectures, unconditionally allowed.
    const COMMON: &[&str] = &[
        // memory
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "mprotect",
        "madvise",
        // files and fds
        "read",
        "write",
        "readv",
        "writev",
        "pread64",
        "pwrite64",
        "preadv",
        "pwritev",
        "preadv2",
        "pwritev2",
        "openat",
        "close",
        "close_range",
        "fstat",
        "newfstatat",
        "statx",
        "fstatfs",
        "statfs",
        "lseek",
        "fcntl",
        "dup",
        "dup3",
        "pipe2",
        "getdents64",
        "readlinkat",
        "faccessat",
        "faccessat2",
        "getcwd",
        "chdir",
        "fchdir",
        "mkdirat",
        "unlinkat",
        "renameat",
        "renameat2",
        "symlinkat",
        "linkat",
        "fchmod",
        "fchmodat",
        "ftruncate",
        "fallocate",
        "fsync",
        "fdatasync",
        "flock",
        "utimensat",
        "fadvise64",
        "copy_file_range",
        "sendfile",
        "splice",
        "umask",
        // events and time
        "ppoll",
        "pselect6",
        "epoll_create1",
        "epoll_ctl",
        "epoll_pwait",
        "epoll_pwait2",
        "eventfd2",
        "timerfd_create",
        "timerfd_settime",
        "timerfd_gettime",
        "clock_gettime",
        "clock_getres",
        "clock_nanosleep",
        "nanosleep",
        "gettimeofday",
        // threads and signals
        "futex",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "set_tid_address",
        "sched_yield",
        "sched_getaffinity",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "rt_sigtimedwait",
        "rt_sigsuspend",
        "sigaltstack",
        "restart_syscall",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "kill",
        "tgkill",
        "tkill",
        // identity and system
        "getpid",
        "gettid",
        "getppid",
        "getpgid",
        "getsid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "getresuid",
        "getresgid",
        "getgroups",
        "capget",
        "getrandom",
        "uname",
        "getrusage",
        "sysinfo",
        // sockets (socket itself is conditional)
        "socketpair",
        "connect",
        "bind",
        "listen",
        "accept",
        "accept4",
        "getsockname",
        "getpeername",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "sendmmsg",
        "recvmmsg",
        "shutdown",
        "setsockopt",
        "getsockopt",
    ];

    /// The x86-64 legacy forms that libc and std still use there.
    const X86_64_ONLY: &[&str] = &[
        "arch_prctl",
        "open",
        "stat",
        "lstat",
        "access",
        "pipe",
        "dup2",
        "poll",
        "select",
        "epoll_wait",
        "epoll_create",
        "readlink",
        "mkdir",
        "rmdir",
        "unlink",
        "rename",
        "time",
        "getpgrp",
        "vfork",
        "fork",
    ];

    /// ioctl requests a connector may make (asm-generic values, the same on both arches):
    /// TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX. TIOCSTI and the rest kill.
    const IOCTLS: [u64; 6] = [0x5401, 0x5413, 0x541b, 0x5421, 0x5450, 0x5451];

    /// prctl options a connector may use: PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_NAME,
    /// PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_SET_VMA.
    const PRCTLS: [u64; 7] = [2, 3, 15, 16, 38, 39, 0x5356_4d41];

    /// Always denied (kill), with the reason.
    const ALWAYS_DENIED: &[(&str, &str)] = &[
        ("ptrace", "debugging another process"),
        ("process_vm_readv", "reading another process's memory"),
        ("process_vm_writev", "writing another process's memory"),
        ("mount", "changing the jail's mounts"),
        ("umount2", "changing the jail's mounts"),
        ("pivot_root", "changing the jail's root"),
        ("chroot", "changing the jail's root"),
        ("open_tree", "changing the jail's mounts"),
        ("move_mount", "changing the jail's mounts"),
        ("fsopen", "changing the jail's mounts"),
        ("fsmount", "changing the jail's mounts"),
        ("fsconfig", "changing the jail's mounts"),
        ("fspick", "changing the jail's mounts"),
        ("mount_setattr", "changing the jail's mounts"),
        ("unshare", "leaving the jail's namespaces"),
        ("setns", "entering other namespaces"),
        ("bpf", "kernel attack surface"),
        ("perf_event_open", "kernel attack surface and side channels"),
        ("keyctl", "the kernel keyring"),
        ("add_key", "the kernel keyring"),
        ("request_key", "the kernel keyring"),
        ("userfaultfd", "kernel exploitation aid"),
        ("kexec_load", "replacing the kernel"),
        ("kexec_file_load", "replacing the kernel"),
        ("init_module", "loading kernel modules"),
        ("finit_module", "loading kernel modules"),
        ("delete_module", "unloading kernel modules"),
        ("open_by_handle_at", "escaping the mount tree by file handle"),
        ("name_to_handle_at", "file handles"),
        ("io_uring_setup", "io_uring bypasses seccomp"),
        ("io_uring_enter", "io_uring bypasses seccomp"),
        ("io_uring_register", "io_uring bypasses seccomp"),
        ("personality", "changing the syscall ABI and address space layout"),
        ("reboot", "host control"),
        ("swapon", "host control"),
        ("swapoff", "host control"),
        ("syslog", "the kernel log"),
        ("acct", "host control"),
        ("settimeofday", "the host clock"),
        ("clock_settime", "the host clock"),
        ("clock_adjtime", "the host clock"),
        ("adjtimex", "the host clock"),
        ("sethostname", "the jail's identity"),
        ("setdomainname", "the jail's identity"),
        ("quotactl", "host control"),
    ];

    fn cond(arg: u8, wide: bool, op: ArgOp, value: u64) -> ArgCondition {
        ArgCondition { arg, wide, op, value: ArgValue::Const(value) }
    }

    fn rule(name: &str, when: Vec<Vec<ArgCondition>>) -> SyscallRule {
        SyscallRule { syscall: name.to_owned(), when }
    }

    pub(super) fn plan(arch: Arch, deny_exec: bool, profile: SandboxProfile) -> SeccompPlan {
        let mut allow: Vec<SyscallRule> = COMMON.iter().map(|n| rule(n, Vec::new())).collect();
        if arch == Arch::X86_64 {
            allow.extend(X86_64_ONLY.iter().map(|n| rule(n, Vec::new())));
        }
        // clone without namespace flags (threads, fork); clone3's flags sit in memory a
        // filter cannot read, so it answers ENOSYS and libc falls back to clone.
        allow.push(rule("clone", vec![vec![cond(0, true, ArgOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)]]));
        // sockets: unix, IPv4 and IPv6 stream and datagram (and unix seqpacket); never
        // raw, never packet.
        let mut sockets = Vec::new();
        for domain in [AF_UNIX, AF_INET, AF_INET6] {
            for kind in [SOCK_STREAM, SOCK_DGRAM] {
                sockets.push(vec![
                    cond(0, false, ArgOp::Eq, domain),
                    cond(1, false, ArgOp::MaskedEq(SOCK_TYPE_MASK), kind),
                ]);
            }
        }
        sockets.push(vec![
            cond(0, false, ArgOp::Eq, AF_UNIX),
            cond(1, false, ArgOp::MaskedEq(SOCK_TYPE_MASK), SOCK_SEQPACKET),
        ]);
        allow.push(rule("socket", sockets));
        allow.push(rule("ioctl", IOCTLS.iter().map(|r| vec![cond(1, false, ArgOp::Eq, *r)]).collect()));
        allow.push(rule("prctl", PRCTLS.iter().map(|o| vec![cond(0, false, ArgOp::Eq, *o)]).collect()));
        // getrlimit only: prlimit64 with a NULL new limit.
        allow.push(rule("prlimit64", vec![vec![cond(2, true, ArgOp::Eq, 0)]]));
        let exec_path = ArgCondition { arg: 0, wide: true, op: ArgOp::Eq, value: ArgValue::ExecPathPointer };
        if deny_exec {
            allow.push(rule("execve", vec![vec![exec_path]]));
        } else {
            allow.extend(["execve", "execveat", "memfd_create"].iter().map(|n| rule(n, Vec::new())));
        }
        allow.sort_by(|a, b| a.syscall.cmp(&b.syscall));

        let kill = |name: &str, when, reason: &str| DeniedSyscall {
            rule: rule(name, when),
            action: SeccompAction::KillProcess,
            reason: reason.to_owned(),
        };
        let mut deny: Vec<DeniedSyscall> =
            ALWAYS_DENIED.iter().map(|(name, reason)| kill(name, Vec::new(), reason)).collect();
        if arch == Arch::X86_64 {
            deny.push(kill("iopl", Vec::new(), "raw I/O ports"));
            deny.push(kill("ioperm", Vec::new(), "raw I/O ports"));
        }
        deny.push(DeniedSyscall {
            rule: rule("clone3", Vec::new()),
            action: SeccompAction::Errno(ENOSYS),
            reason: "its flags cannot be filtered; libc falls back to clone".to_owned(),
        });
        // Any namespace flag, one alternative per flag bit (a filter has no "masked not equal").
        let namespace_bits = (0..64).map(|bit| 1u64 << bit).filter(|b| CLONE_NAMESPACE_FLAGS & b != 0);
        deny.push(kill(
            "clone",
            namespace_bits.map(|b| vec![cond(0, true, ArgOp::MaskedEq(b), b)]).collect(),
            "creating namespaces",
        ));
        deny.push(kill("socket", vec![vec![cond(0, false, ArgOp::Eq, AF_PACKET)]], "AF_PACKET sockets"));
        deny.push(kill(
            "socket",
            vec![vec![cond(1, false, ArgOp::MaskedEq(SOCK_TYPE_MASK), SOCK_RAW)]],
            "SOCK_RAW sockets",
        ));
        if deny_exec {
            let not_own = ArgCondition { op: ArgOp::Ne, ..exec_path };
            deny.push(kill("execve", vec![vec![not_own]], "deny_exec"));
            deny.push(kill("execveat", Vec::new(), "deny_exec"));
            deny.push(kill("memfd_create", Vec::new(), "deny_exec (an executable memfd)"));
        }
        // permissive: a syscall off the allowlist answers ENOSYS instead of killing; the
        // deny list still kills.
        let default_action = if profile == SandboxProfile::Permissive {
            SeccompAction::Errno(ENOSYS)
        } else {
            SeccompAction::KillProcess
        };
        SeccompPlan { arch, default_action, allow, deny }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[manifest]
format = "fcp-connector-manifest"
schema_version = "2.1"
min_mesh_version = "2.0.0"
min_protocol = "fcp2-sym/2.0"
protocol_features = []
max_datagram_bytes = 1200
interface_hash = "blake3-256:fcp.interface.v2:1a67a9e7fb3a86469c1d493a8d4a430c260ae087b3afc45693789c78be7a9e3b"

[connector]
id = "fcp.minimal"
name = "Minimal Connector"
version = "0.1.0"
description = "Minimal manifest for tests"
archetypes = ["operational"]
format = "native"

[zones]
home = "z:work"
allowed_sources = ["z:work"]
allowed_targets = ["z:work"]
forbidden = []

[capabilities]
required = ["network.dns", "minimal.op"]
optional = []
forbidden = ["system.exec"]

[provides.operations.minimal_op]
description = "Minimal operation"
capability = "minimal.op"
risk_level = "low"
safety_tier = "safe"
requires_approval = "none"
idempotency = "none"
input_schema = { type = "object" }
output_schema = { type = "object" }

[sandbox]
profile = "strict"
memory_mb = 64
cpu_percent = 20
wall_clock_timeout_ms = 1000
fs_readonly_paths = ["/usr"]
fs_writable_paths = ["$CONNECTOR_STATE"]
deny_exec = true
deny_ptrace = true
"#;

    fn inputs(arch: Arch) -> JailInputs {
        JailInputs {
            tcp_connect: None,
            network_files: Vec::new(),
            binary: Binary {
                path: PathBuf::from("/opt/fcp/minimal"),
                interpreter: Some(RuntimeFile {
                    jail_path: PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
                    host_path: PathBuf::from("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
                }),
                libraries: vec![RuntimeFile {
                    jail_path: PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                    host_path: PathBuf::from("/usr/lib/x86_64-linux-gnu/libc.so.6"),
                }],
            },
            state_dir: PathBuf::from("/var/lib/fcp/minimal"),
            arch,
        }
    }

    fn section() -> SandboxSection {
        Manifest::parse(MINIMAL).expect("valid manifest").sandbox
    }

    fn plan_with(edit: impl FnOnce(&mut SandboxSection)) -> Result<JailPlan, JailPlanError> {
        let mut s = section();
        edit(&mut s);
        compile_section(&s, &inputs(Arch::X86_64))
    }

    #[test]
    fn profiles_tighten_or_relax_only_what_they_say() {
        let strict = plan_with(|s| {
            s.profile = SandboxProfile::Strict;
            s.deny_exec = false;
            s.deny_ptrace = false;
        })
        .expect("plan");
        assert!(strict.seccomp.allowed("execveat").is_some(), "strict keeps the section's deny_exec = false");
        assert_eq!(strict.seccomp.default_action, SeccompAction::KillProcess);

        let plus = plan_with(|s| {
            s.profile = SandboxProfile::StrictPlus;
            s.deny_exec = false;
            s.deny_ptrace = false;
        })
        .expect("plan");
        assert!(plus.seccomp.denied("execveat").is_some(), "strict_plus denies exec whatever the section says");
        assert!(plus.seccomp.denied("memfd_create").is_some());

        let permissive = plan_with(|s| s.profile = SandboxProfile::Permissive).expect("plan");
        assert_eq!(permissive.seccomp.default_action, SeccompAction::Errno(38));
        assert_eq!(permissive.seccomp.deny, strict_deny(), "the deny list still kills");
        let moderate = plan_with(|s| s.profile = SandboxProfile::Moderate).expect("plan");
        assert_eq!(moderate.seccomp.default_action, SeccompAction::KillProcess);
    }

    fn strict_deny() -> Vec<DeniedSyscall> {
        plan_with(|s| s.profile = SandboxProfile::Strict).expect("plan").seccomp.deny
    }

    #[test]
    fn the_minimal_manifest_compiles_to_this_plan() {
        let manifest = Manifest::parse(MINIMAL).expect("valid manifest");
        let plan = compile(&manifest, &inputs(Arch::X86_64)).expect("plan");
        assert_eq!(
            plan.namespaces,
            [Namespace::Mount, Namespace::Pid, Namespace::Ipc, Namespace::Uts, Namespace::Cgroup, Namespace::Net]
        );
        assert_eq!(plan.identity, Identity::NOBODY);
        let mounts: Vec<String> = plan
            .mounts
            .iter()
            .map(|m| match m {
                Mount::TmpfsRoot { size_bytes } => format!("tmpfs / {size_bytes}"),
                Mount::Bind { source, target, access, required, origin } => format!(
                    "{access:?} {} -> {} {origin:?}{}",
                    source.display(),
                    target.display(),
                    if *required { "" } else { " optional" }
                ),
                Mount::Proc { target } => format!("proc {}", target.display()),
            })
            .collect();
        assert_eq!(
            mounts,
            [
                "tmpfs / 1048576",
                "Device /dev/full -> /dev/full Device",
                "Device /dev/null -> /dev/null Device",
                "Device /dev/urandom -> /dev/urandom Device",
                "Device /dev/zero -> /dev/zero Device",
                "ReadOnly /etc/ssl/certs -> /etc/ssl/certs Certificates optional",
                "ReadOnly /usr/lib/x86_64-linux-gnu/libc.so.6 -> /lib/x86_64-linux-gnu/libc.so.6 Library",
                "ReadOnly /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 -> /lib64/ld-linux-x86-64.so.2 Interpreter",
                "ReadOnly /opt/fcp/minimal -> /opt/fcp/minimal Program",
                "ReadOnly /usr -> /usr ReadonlyPath",
                "ReadOnly /usr/share/ca-certificates -> /usr/share/ca-certificates Certificates optional",
                "ReadWrite /var/lib/fcp/minimal -> /var/lib/fcp/minimal WritablePath",
                "proc /proc",
            ]
        );
        assert_eq!(plan.writable_paths(), [Path::new("/var/lib/fcp/minimal")]);
        assert_eq!(
            plan.limits,
            JailLimits { memory_bytes: Some(64 << 20), cpu_percent: 20, pids_max: 1024, wall_clock_ms: 1000 }
        );
        assert_eq!(plan.limits.cpu_quota_us(), 20_000);
        assert!(plan.no_new_privs && plan.drop_capabilities);
        assert_eq!(plan.seccomp.default_action, SeccompAction::KillProcess);
    }

    #[test]
    fn the_plan_round_trips_through_json() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let plan = compile_section(&section(), &inputs(arch)).expect("plan");
            let json = serde_json::to_string(&plan).expect("serializes");
            let back: JailPlan = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, plan);
        }
        let plan = compile_section(&section(), &inputs(Arch::X86_64)).expect("plan");
        let json = serde_json::to_value(&plan).expect("serializes");
        assert_eq!(json["mounts"][0], serde_json::json!({ "kind": "tmpfs_root", "size_bytes": 1048576 }));
        assert_eq!(json["seccomp"]["default_action"], serde_json::json!("kill_process"));
        assert_eq!(json["namespaces"][0], serde_json::json!("mount"));
    }

    #[test]
    fn the_deny_list_always_holds_the_always_denied_syscalls() {
        let always = [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "personality",
        ];
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for deny_exec in [true, false] {
                let s = SandboxSection { deny_exec, deny_ptrace: false, ..section() };
                let plan = compile_section(&s, &inputs(arch)).expect("plan").seccomp;
                for name in always {
                    let denied = plan.denied(name).unwrap_or_else(|| panic!("{name} not denied on {arch}"));
                    assert_eq!(denied.action, SeccompAction::KillProcess, "{name}");
                    assert!(denied.rule.when.is_empty(), "{name} is denied unconditionally");
                    assert_eq!(plan.allowed(name), None, "{name} is also allowed");
                }
                let clone3 = plan.denied("clone3").expect("clone3");
                assert_eq!(clone3.action, SeccompAction::Errno(38));
                assert_eq!(plan.allowed("clone3"), None);
                assert_eq!(plan.default_action, SeccompAction::KillProcess);
            }
        }
    }

    #[test]
    fn no_unconditional_deny_is_allowed() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let plan = compile_section(&section(), &inputs(arch)).expect("plan").seccomp;
            for denied in plan.deny.iter().filter(|d| d.rule.when.is_empty()) {
                assert_eq!(plan.allowed(&denied.rule.syscall), None, "{}", denied.rule.syscall);
            }
            let mut names: Vec<&str> = plan.allow.iter().map(|r| r.syscall.as_str()).collect();
            let count = names.len();
            names.dedup();
            assert_eq!(names.len(), count, "one allow rule per syscall");
        }
    }

    #[test]
    fn deny_exec_adds_execve_execveat_and_memfd_create() {
        let plan = plan_with(|s| s.deny_exec = true).expect("plan").seccomp;
        for name in ["execveat", "memfd_create"] {
            assert_eq!(
                plan.denied(name).map(|d| (d.action, d.rule.when.is_empty())),
                Some((SeccompAction::KillProcess, true))
            );
            assert_eq!(plan.allowed(name), None);
        }
        let own = ArgCondition { arg: 0, wide: true, op: ArgOp::Eq, value: ArgValue::ExecPathPointer };
        assert_eq!(plan.allowed("execve").map(|r| r.when.clone()), Some(vec![vec![own]]));
        assert_eq!(
            plan.denied("execve").map(|d| d.rule.when.clone()),
            Some(vec![vec![ArgCondition { op: ArgOp::Ne, ..own }]])
        );

        let plan = plan_with(|s| s.deny_exec = false).expect("plan").seccomp;
        for name in ["execve", "execveat", "memfd_create"] {
            assert_eq!(plan.denied(name), None, "{name}");
            assert_eq!(plan.allowed(name).map(|r| r.when.is_empty()), Some(true), "{name}");
        }
    }

    #[test]
    fn deny_exec_takes_execute_off_the_readonly_paths() {
        let rule = |plan: &JailPlan, path: &str| {
            plan.landlock.rules.iter().find(|r| r.path == Path::new(path)).map(|r| r.access.clone())
        };
        let plan = plan_with(|s| s.deny_exec = true).expect("plan");
        assert_eq!(rule(&plan, "/usr"), Some([FsAccess::ReadFile, FsAccess::ReadDir].into()));
        assert_eq!(rule(&plan, "/opt/fcp/minimal"), Some([FsAccess::Execute, FsAccess::ReadFile].into()));
        assert_eq!(rule(&plan, "/lib/x86_64-linux-gnu/libc.so.6"), Some([FsAccess::ReadFile].into()));
        assert_eq!(rule(&plan, "/proc"), Some([FsAccess::ReadFile, FsAccess::ReadDir].into()));
        assert_eq!(rule(&plan, "/dev/null"), Some([FsAccess::WriteFile, FsAccess::ReadFile].into()));
        let plan = plan_with(|s| s.deny_exec = false).expect("plan");
        assert_eq!(rule(&plan, "/usr"), Some([FsAccess::Execute, FsAccess::ReadFile, FsAccess::ReadDir].into()));
        assert_eq!(plan.landlock.handled.len(), FsAccess::ALL.len());
    }

    #[test]
    fn only_the_writable_paths_are_writable() {
        let plan = plan_with(|s| {
            s.fs_writable_paths =
                vec![SandboxPath::ConnectorState("cache".into()), SandboxPath::Absolute("/srv/out".into())];
            s.fs_readonly_paths = vec![SandboxPath::Absolute("/srv".into()), SandboxPath::Absolute("/etc/app".into())];
        })
        .expect("plan");
        assert_eq!(plan.writable_paths(), [Path::new("/srv/out"), Path::new("/var/lib/fcp/minimal/cache")]);
        // The state dir itself is then only readable.
        let state = plan.binds().find(|b| b.1 == Path::new("/var/lib/fcp/minimal")).expect("state dir bound");
        assert_eq!((state.2, state.3), (BindAccess::ReadOnly, BindOrigin::StateDir));
        let write_rules: Vec<&Path> = plan
            .landlock
            .rules
            .iter()
            .filter(|r| r.access.contains(&FsAccess::WriteFile) && !r.path.starts_with("/dev"))
            .map(|r| r.path.as_path())
            .collect();
        assert_eq!(write_rules, [Path::new("/srv/out"), Path::new("/var/lib/fcp/minimal/cache")]);

        let plan = plan_with(|s| {
            s.fs_writable_paths = Vec::new();
        })
        .expect("plan");
        assert!(plan.writable_paths().is_empty());
    }

    #[test]
    fn a_path_named_twice_is_bound_once_with_the_wider_access() {
        let plan = plan_with(|s| {
            s.fs_writable_paths = vec![SandboxPath::Absolute("/srv/data".into())];
            s.fs_readonly_paths =
                vec![SandboxPath::Absolute("/srv/data".into()), SandboxPath::Absolute("/srv/data/sub".into())];
        })
        .expect("plan");
        let srv: Vec<_> = plan.binds().filter(|b| b.1.starts_with("/srv")).map(|b| (b.1, b.2)).collect();
        assert_eq!(srv, [(Path::new("/srv/data"), BindAccess::ReadWrite)]);
    }

    #[test]
    fn unnormal_and_forbidden_paths_are_refused() {
        for bad in ["/usr/../etc", "C:/x", "\\\\host\\share", "relative", "/a/\0"] {
            let result = plan_with(|s| s.fs_readonly_paths = vec![SandboxPath::Absolute(bad.into())]);
            assert_eq!(result, Err(JailPlanError::UnnormalPath { path: bad.into() }), "{bad}");
        }
        for bad in ["/", "//", "/proc", "/proc/1/root", "/sys/fs", "/dev", "/dev/sda", "/./dev"] {
            let result = plan_with(|s| s.fs_writable_paths = vec![SandboxPath::Absolute(bad.into())]);
            assert_eq!(result, Err(JailPlanError::ForbiddenPath { path: bad.into() }), "{bad}");
        }
        let result = plan_with(|s| s.fs_writable_paths = vec![SandboxPath::ConnectorState("a/../../x".into())]);
        assert!(matches!(result, Err(JailPlanError::UnnormalPath { .. })), "{result:?}");
        // `.` and doubled slashes are normalised.
        let plan =
            plan_with(|s| s.fs_readonly_paths = vec![SandboxPath::Absolute("/srv//./app/".into())]).expect("plan");
        assert!(plan.binds().any(|b| b.1 == Path::new("/srv/app")));

        let mut bad = inputs(Arch::X86_64);
        bad.state_dir = PathBuf::from("/var/lib/../fcp");
        assert_eq!(
            compile_section(&section(), &bad),
            Err(JailPlanError::UnnormalInput { path: PathBuf::from("/var/lib/../fcp") })
        );
    }

    #[test]
    fn sockets_are_never_raw_or_packet() {
        use seccomp::*;
        let plan = compile_section(&section(), &inputs(Arch::X86_64)).expect("plan").seccomp;
        let socket = plan.allowed("socket").expect("socket rule");
        for alternative in &socket.when {
            let domain = alternative.iter().find(|c| c.arg == 0).expect("domain condition");
            assert_eq!(domain.op, ArgOp::Eq);
            assert!(matches!(domain.value, ArgValue::Const(AF_UNIX | AF_INET | AF_INET6)), "{domain:?}");
            let kind = alternative.iter().find(|c| c.arg == 1).expect("type condition");
            assert_eq!(kind.op, ArgOp::MaskedEq(SOCK_TYPE_MASK));
            assert!(!matches!(kind.value, ArgValue::Const(SOCK_RAW)), "{kind:?}");
        }
        let clone = plan.allowed("clone").expect("clone rule");
        assert_eq!(
            clone.when,
            vec![vec![ArgCondition {
                arg: 0,
                wide: true,
                op: ArgOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                value: ArgValue::Const(0)
            }]]
        );
    }

    #[test]
    fn arch_specific_syscalls_stay_on_their_arch() {
        let x86 = compile_section(&section(), &inputs(Arch::X86_64)).expect("plan").seccomp;
        let arm = compile_section(&section(), &inputs(Arch::Aarch64)).expect("plan").seccomp;
        for name in ["open", "arch_prctl", "poll", "dup2"] {
            assert!(x86.allowed(name).is_some(), "{name}");
            assert!(arm.allowed(name).is_none(), "{name}");
        }
        assert!(x86.denied("iopl").is_some() && arm.denied("iopl").is_none());
        assert_eq!(arm.arch, Arch::Aarch64);
    }

    #[test]
    fn limits_follow_the_manifest() {
        let plan = plan_with(|s| {
            s.memory_mb = 0;
            s.cpu_percent = 150;
            s.wall_clock_timeout_ms = 5;
        })
        .expect("plan");
        assert_eq!(plan.limits.memory_bytes, None);
        assert_eq!(plan.limits.cpu_quota_us(), 150_000);
        assert_eq!(plan.limits.wall_clock_ms, 5);
    }

    #[test]
    fn the_explanation_names_every_layer() {
        let plan = compile_section(&section(), &inputs(Arch::X86_64)).expect("plan");
        let text = plan.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "namespaces: mount, pid, ipc, uts, cgroup, net (and user, when the supervisor is not root)"
        );
        assert_eq!(lines[2], "runs as: uid 65534 gid 65534");
        for needle in [
            "  tmpfs /",
            "  rw    /var/lib/fcp/minimal",
            "  ro    /usr                                     ReadonlyPath",
            "  ro    /lib64/ld-linux-x86-64.so.2              Interpreter <- /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "  dev   /dev/null",
            "  proc  /proc",
            "  /usr                                           ReadFile ReadDir",
            "  ptrace                 KillProcess: debugging another process",
            "  clone3                 Errno(38): its flags cannot be filtered; libc falls back to clone",
            "  execve                 KillProcess (some arguments): deny_exec",
            "limits: memory 64 MiB, cpu 20% (20000 us per 100000 us), pids 1024, wall clock 1000 ms",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(needle)), "no line starts with {needle:?} in\n{text}");
        }
        assert!(text.ends_with("every capability dropped and securebits locked true"), "{text}");
    }

    #[test]
    fn native_arch_is_known_here() {
        assert!(
            matches!(Arch::native(), Some(Arch::X86_64 | Arch::Aarch64))
                || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64")))
        );
        assert_eq!(Arch::X86_64.library_dirs()[0], "/lib/x86_64-linux-gnu");
        assert_eq!(Arch::Aarch64.to_string(), "aarch64");
    }
}
