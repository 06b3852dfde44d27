//! [`LinuxJail`]: the Linux backend that installs a [`JailPlan`] between fork and exec.
//!
//! For each spawn the parent, before forking:
//! 1. resolves the binary's loader and libraries (`binary`, cached per program) and
//!    compiles the spec into a plan with [`fcp_policy::jail::compile_section`];
//! 2. creates the connector's cgroup (`cgroup`) and prepares everything the child needs
//!    as plain data (`child::ChildPlan`): paths as C strings, the Landlock ruleset with
//!    every host-path rule (`landlock`), the seccomp programs (`seccomp`), argv and envp;
//! 3. clones into new mount, pid, ipc, uts and network namespaces, and a user namespace
//!    when it is not root, whose id maps it then writes (`sys`).
//!
//! The child then only makes direct syscalls (`child`): its cgroup and a cgroup
//! namespace rooted there, death signal, stdio, session,
//! hostname; a fresh tmpfs root with the plan's binds, `pivot_root`, a fresh `/proc`,
//! the old root detached and the new root read-only; loopback up; rlimits; fds above 2
//! close-on-exec; the `/proc` Landlock rule; securebits locked, every capability dropped
//! from every set, the unprivileged uid and gid; no_new_privs; Landlock enforced;
//! seccomp installed; exec. A failed step is reported on a pipe as a typed message
//! (`step`) and fails the spawn with its own [`SandboxError`] variant.

mod audit;
mod binary;
mod cgroup;
mod child;
pub mod escape;
mod landlock;
mod seccomp;
mod step;
#[allow(unsafe_code)]
mod sys;
mod syscalls;

use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_char, CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use fcp_policy::jail::{compile_section, Arch, BindAccess, BindOrigin, JailInputs, JailPlan, Mount};
use fcp_policy::manifest::SandboxPath;
use rustix::mount::MountFlags;

pub(crate) use self::audit::KernelLog;
pub(crate) use self::cgroup::Cgroup;
use self::cgroup::CgroupSupport;
use self::child::{BindOp, ChildPlan, MountPoint};
use self::landlock::LandlockSupport;
use self::step::{Context, JailStep};
use crate::error::SandboxError;
use crate::jailed::Jailed;
use crate::layers::{Layer, Layers};
use crate::pipe::pipe;
use crate::spec::SpawnSpec;
use crate::{state_dir, Sandbox};

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET`; the child
/// enters its cgroup namespace itself, once it is in its cgroup.
const NAMESPACE_FLAGS: u64 =
    (libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID | libc::CLONE_NEWNET) as u64;

/// The Linux jail backend. See the module docs for what it does, in order.
///
/// When the supervisor is not root, the connector also gets a user namespace in which
/// uid and gid 65534 map to the supervisor's own (its supplementary groups stay, as
/// setgroups is denied there), and the jail's steps use the capabilities of that
/// namespace. Each connector gets a cgroup (v2, else v1) below the supervisor's with the
/// plan's memory, CPU and pids limits; `RLIMIT_AS` is then not set, since the cgroup
/// limits resident memory. Landlock and cgroups are in force only when
/// [`LinuxJail::new`] found them usable; otherwise they are reported missing in
/// [`LinuxJail::layers`] and a spec's [`Degradation`](crate::Degradation) must allow that.
///
/// **deny_exec.** The seccomp filter is installed before the jail's own `execve`, so it
/// lets through exactly one `execve`: the one whose path argument is the address of the
/// jail's own program string. After the exec that address means nothing to the
/// connector; Landlock grants execute only on the program and its loader, and
/// `execveat` and `memfd_create` are denied.
#[derive(Debug)]
pub struct LinuxJail {
    arch: Arch,
    landlock: Option<LandlockSupport>,
    landlock_missing_reason: Option<String>,
    cgroups: Result<CgroupSupport, String>,
    /// Whether the supervisor is not root: connectors then get a user namespace in which
    /// the jail's uid and gid map to the supervisor's.
    unprivileged: bool,
    /// Resolved binaries by program path, with the file identity they were resolved from.
    binaries: Mutex<HashMap<PathBuf, Arc<Resolved>>>,
    /// The kernel log, for the syscall of a seccomp kill (`None` when unreadable).
    kernel_log: Option<Arc<KernelLog>>,
    /// Layers this backend leaves out on purpose ([`LinuxJail::without`]).
    left_out: Layers,
}

/// A program resolved once: its runtime files, the C string the jail execs (whose
/// address the seccomp filter compares with), and the seccomp programs compiled for it.
#[derive(Debug)]
struct Resolved {
    identity: FileIdentity,
    binary: fcp_policy::jail::Binary,
    exec_path: Arc<CString>,
    seccomp: Mutex<Vec<(fcp_policy::jail::SeccompPlan, Arc<Vec<seccompiler::BpfProgram>>)>>,
}

/// What tells a changed file: device, inode, size and modification time.
type FileIdentity = (u64, u64, u64, i64, i64);

fn identity(path: &Path) -> Result<FileIdentity, SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).map_err(|source| SandboxError::ReadBinary { path: path.to_owned(), source })?;
    Ok((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

impl LinuxJail {
    /// The backend's name.
    pub const NAME: &'static str = "linux-jail";

    /// The layers the backend puts in force when Landlock and cgroups are available.
    pub const LAYERS: Layers = Layers::ALL;

    /// Checks the machine: a supported CPU architecture, whether Landlock is fully
    /// enforced and whether cgroups can be made (without them the backend still works,
    /// reporting the layers missing). A supervisor that is not root jails connectors in
    /// a user namespace too.
    pub fn new() -> Result<LinuxJail, SandboxError> {
        let arch = Arch::native().ok_or(SandboxError::UnsupportedArch)?;
        let unprivileged = !rustix::process::geteuid().is_root();
        let (landlock, landlock_missing_reason) = match LandlockSupport::probe() {
            Ok(support) => (Some(support), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(LinuxJail {
            arch,
            landlock,
            landlock_missing_reason,
            cgroups: CgroupSupport::detect(),
            unprivileged,
            binaries: Mutex::new(HashMap::new()),
            kernel_log: KernelLog::open().ok(),
            left_out: Layers::EMPTY,
        })
    }

    /// The layers [`LinuxJail::without`] can leave out.
    pub const OPTIONAL: Layers = Layers::of(&[Layer::Landlock, Layer::Seccomp, Layer::Cgroups]);

    /// This backend leaving `layers` out, as a machine without them would: they are
    /// reported missing in [`LinuxJail::layers`], so a spec's
    /// [`Degradation`](crate::Degradation) must allow them or the spawn fails, exactly as
    /// on such a machine. For measuring what each layer costs (the cold-start
    /// benchmark). Only [`LinuxJail::OPTIONAL`] layers can be left out.
    pub fn without(mut self, layers: Layers) -> Result<LinuxJail, SandboxError> {
        if !layers.is_subset(Self::OPTIONAL) {
            return Err(SandboxError::LayersMissing {
                backend: Self::NAME,
                refused: layers.difference(Self::OPTIONAL),
            });
        }
        self.left_out = self.left_out.union(layers);
        Ok(self)
    }

    /// Why Landlock is missing, if it is.
    pub fn landlock_missing_reason(&self) -> Option<&str> {
        self.landlock_missing_reason.as_deref()
    }

    /// Why cgroups are missing, if they are.
    pub fn cgroups_missing_reason(&self) -> Option<&str> {
        self.cgroups.as_ref().err().map(String::as_str)
    }

    /// The Landlock ABI in use (1–5), if Landlock is in force.
    pub fn landlock_abi(&self) -> Option<i32> {
        self.landlock.map(|l| l.abi() as i32)
    }

    /// The plan this backend installs for `spec`: the spec's sandbox section and the
    /// binary's runtime files, compiled by [`fcp_policy::jail::compile_section`].
    ///
    /// A program's runtime files are resolved once and kept while its file (device,
    /// inode, size, mtime) is unchanged; a library replaced in place is still found at
    /// its path, and one that disappeared fails the spawn at its bind.
    pub fn plan(&self, spec: &SpawnSpec) -> Result<JailPlan, SandboxError> {
        let resolved = self.resolve(spec.program())?;
        let network_files = spec
            .network()
            .map(|n| {
                n.files
                    .iter()
                    .map(|(host, jail)| fcp_policy::jail::RuntimeFile {
                        host_path: host.clone(),
                        jail_path: jail.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let inputs = JailInputs {
            tcp_connect: spec.network().map(|n| n.tcp_ports.clone()),
            network_files,
            binary: resolved.binary.clone(),
            state_dir: spec.state_dir().to_owned(),
            arch: self.arch,
        };
        let mut plan =
            compile_section(&spec.sandbox_section(), &inputs).map_err(|source| SandboxError::CompileJail { source })?;
        plan.limits.pids_max = spec.limits().pids_max;
        Ok(plan)
    }

    fn resolve(&self, program: &Path) -> Result<Arc<Resolved>, SandboxError> {
        let id = identity(program)?;
        let lock = |m: &Mutex<HashMap<PathBuf, Arc<Resolved>>>| {
            // A panic while holding the lock leaves a consistent map behind.
            m.lock().unwrap_or_else(PoisonError::into_inner).get(program).filter(|r| r.identity == id).cloned()
        };
        if let Some(found) = lock(&self.binaries) {
            return Ok(found);
        }
        let resolved = Arc::new(Resolved {
            identity: id,
            binary: binary::resolve(program, self.arch)?,
            exec_path: Arc::new(cstring(program)?),
            seccomp: Mutex::new(Vec::new()),
        });
        self.binaries.lock().unwrap_or_else(PoisonError::into_inner).insert(program.to_owned(), Arc::clone(&resolved));
        Ok(resolved)
    }
}

impl Sandbox for LinuxJail {
    fn spawn(&self, spec: &SpawnSpec) -> Result<Jailed, SandboxError> {
        let in_force = self.layers();
        let missing = profile_degradation(spec).check(Self::NAME, in_force)?;
        state_dir::prepare(spec.state_dir())?;
        let resolved = self.resolve(spec.program())?;
        let plan = self.plan(spec)?;
        give_writable_paths(&plan, spec, !self.unprivileged)?;

        let (report_read, report_write) = pipe(false).map_err(|source| SandboxError::ReportPipe { source })?;
        let (stdin_read, stdin_write) = pipe(false).map_err(|source| SandboxError::ReportPipe { source })?;
        let (stdout_read, stdout_write) = pipe(false).map_err(|source| SandboxError::ReportPipe { source })?;
        let (stderr_read, stderr_write) = pipe(false).map_err(|source| SandboxError::ReportPipe { source })?;

        let fds = ChildFds {
            report_read: report_read.as_raw_fd(),
            report: report_write,
            stdin: stdin_read,
            stdout: stdout_write,
            stderr: stderr_write,
        };
        let mut cgroup = match &self.cgroups {
            Ok(support) if !self.left_out.contains(Layer::Cgroups) => Some(support.create(&plan.limits)?),
            _ => None,
        };
        let cgroup_procs = cgroup.as_mut().map(Cgroup::take_procs).unwrap_or_default();
        let landlock = self.landlock.filter(|_| !self.left_out.contains(Layer::Landlock));
        let (cx, mut child_plan) = prepare(&plan, spec, landlock, &resolved, fds)?;
        if self.left_out.contains(Layer::Seccomp) {
            child_plan.seccomp.clear();
        }
        child_plan.cgroup_procs = cgroup_procs;
        let mut flags = NAMESPACE_FLAGS;
        if let Some(network) = spec.network() {
            // The child enters the supervisor's namespace instead of a new one.
            if self.unprivileged {
                return Err(SandboxError::NetworkNeedsRoot);
            }
            flags &= !(libc::CLONE_NEWNET as u64);
            child_plan.netns = Some(Arc::clone(&network.netns));
        }
        let mut maps_ready = None;
        if self.unprivileged {
            flags |= libc::CLONE_NEWUSER as u64;
            let (read, write) = pipe(false).map_err(|source| SandboxError::ReportPipe { source })?;
            child_plan.id_maps = Some((read, write.as_raw_fd()));
            maps_ready = Some(write);
        }
        if cgroup.is_some() {
            // The cgroup limits memory; an address-space limit would only break runtimes
            // that reserve more than they use (thread stacks, allocator arenas).
            child_plan.rlimits.retain(|(r, _)| *r != crate::spec::Resource::As);
        }
        let cloned = sys::clone_into_namespaces(flags, || child::main(&child_plan));
        // The child's ends close here in the parent.
        drop(child_plan);
        let pid = cloned.map_err(|e| SandboxError::CloneNamespaces { source: e.into() })?;
        if let Some(ready) = maps_ready {
            if let Err(e) = write_id_maps(pid, plan.identity).and_then(|()| {
                rustix::io::write(&ready, &[1])
                    .map(drop)
                    .map_err(|e| SandboxError::WriteIdMap { path: PathBuf::from("id map pipe"), source: e.into() })
            }) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                return Err(e);
            }
        }

        // EOF means exec (the write end is close-on-exec) or death; a message means a failed step.
        let mut report = [0u8; step::LEN];
        let mut len = 0;
        while len < report.len() {
            match rustix::io::read(&report_read, &mut report[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                    return Err(SandboxError::ReadReport { source: e.into() });
                }
            }
        }
        if len > 0 {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            return Err(match JailStep::decode(&report[..len]) {
                Some((step, errno)) => step.into_error(errno, &cx),
                None => SandboxError::ReadReport { source: std::io::ErrorKind::InvalidData.into() },
            });
        }
        Ok(Jailed::from_pid(
            pid,
            cgroup,
            self.kernel_log.clone(),
            (stdin_write.into(), stdout_read.into(), stderr_read.into()),
            Self::NAME,
            (in_force, missing),
            spec.limits().wall_clock_timeout,
        ))
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn layers(&self) -> Layers {
        let mut missing = Layers::EMPTY;
        if self.landlock.is_none() {
            missing = missing.with(Layer::Landlock);
        }
        if self.cgroups.is_err() {
            missing = missing.with(Layer::Cgroups);
        }
        Self::LAYERS.difference(missing).difference(self.left_out)
    }
}

/// The spec's degradation policy, widened by its profile: `moderate` and `permissive`
/// may start without Landlock (see [`fcp_policy::jail`]'s profiles); the layer is still
/// reported missing, for the audit chain.
fn profile_degradation(spec: &SpawnSpec) -> crate::Degradation {
    use fcp_policy::manifest::SandboxProfile;
    match spec.isolation().profile {
        SandboxProfile::Moderate | SandboxProfile::Permissive => {
            crate::Degradation::AllowMissing(spec.degradation().allowed_missing().with(Layer::Landlock))
        }
        _ => spec.degradation(),
    }
}

/// Maps the jail's uid and gid to the supervisor's in the child's user namespace.
fn write_id_maps(pid: rustix::process::Pid, identity: fcp_policy::jail::Identity) -> Result<(), SandboxError> {
    let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    for (file, text) in [
        ("setgroups", "deny".to_owned()),
        ("uid_map", format!("{} {uid} 1", identity.uid)),
        ("gid_map", format!("{} {gid} 1", identity.gid)),
    ] {
        let path = proc.join(file);
        fs::write(&path, text).map_err(|source| SandboxError::WriteIdMap { path, source })?;
    }
    Ok(())
}

/// Creates the writable paths below the state dir and, when the supervisor is root,
/// gives them (and the state dir, when writable) to the jail's uid and gid; in a user
/// namespace the supervisor's own uid is the jail's. Writable paths outside the state
/// dir are the operator's to own.
///
/// The state dir is the connector's to write, so nothing below it is trusted: the walk
/// opens each component relative to its parent with `O_NOFOLLOW`, creates missing ones
/// with `mkdirat`, chowns through the open descriptor, and refuses a symlink
/// ([`SandboxError::SymlinkInStateDir`]) instead of following it.
fn give_writable_paths(plan: &JailPlan, spec: &SpawnSpec, root: bool) -> Result<(), SandboxError> {
    let (uid, gid) = (plan.identity.uid, plan.identity.gid);
    let state = spec.state_dir();
    for path in &spec.isolation().fs_writable_paths {
        let SandboxPath::ConnectorState(_) = path else { continue };
        for (_, target, access, origin) in plan.binds() {
            if access != BindAccess::ReadWrite || origin != BindOrigin::WritablePath || !target.starts_with(state) {
                continue;
            }
            walk_beneath(state, target, |dir, path| {
                if !root {
                    return Ok(());
                }
                rustix::fs::fchown(
                    dir,
                    Some(rustix::process::Uid::from_raw(uid)),
                    Some(rustix::process::Gid::from_raw(gid)),
                )
                .map_err(|e| SandboxError::ChownWritable { path: path.to_owned(), source: e.into() })
            })?;
        }
    }
    Ok(())
}

/// Opens `target`, a directory at or below `state`, one component at a time without
/// following symlinks, creating missing components (mode 0700), and calls `each` with
/// every directory from `state` down to `target`.
fn walk_beneath(
    state: &Path,
    target: &Path,
    mut each: impl FnMut(&OwnedFd, &Path) -> Result<(), SandboxError>,
) -> Result<(), SandboxError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let refused = |path: &Path| SandboxError::SymlinkInStateDir { path: path.to_owned() };
    let mut dir = rustix::fs::open(state, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => refused(state),
        e => SandboxError::CreateStateDir { path: state.to_owned(), source: e.into() },
    })?;
    let mut path = state.to_owned();
    each(&dir, &path)?;
    let rest = target.strip_prefix(state).map_err(|_| refused(target))?;
    for component in rest.components() {
        let std::path::Component::Normal(name) = component else { return Err(refused(target)) };
        path.push(name);
        let next = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(SandboxError::CreateStateDir { path: path.clone(), source: e.into() }),
                }
                rustix::fs::openat(&dir, name, flags, Mode::empty())
            }
            other => other,
        };
        dir = next.map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => refused(&path),
            e => SandboxError::CreateStateDir { path: path.clone(), source: e.into() },
        })?;
        each(&dir, &path)?;
    }
    Ok(())
}

/// The child's ends of the pipes.
struct ChildFds {
    report_read: RawFd,
    report: OwnedFd,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SandboxError::NulInPath { path: path.to_owned() })
}

fn old_root_path(source: &Path) -> Result<CString, SandboxError> {
    let mut bytes = child::OLD_ROOT_ABS.to_bytes().to_vec();
    bytes.extend_from_slice(source.as_os_str().as_bytes());
    CString::new(bytes).map_err(|_| SandboxError::NulInPath { path: source.to_owned() })
}

fn prepare(
    plan: &JailPlan,
    spec: &SpawnSpec,
    landlock: Option<LandlockSupport>,
    resolved: &Resolved,
    fds: ChildFds,
) -> Result<(Context, ChildPlan), SandboxError> {
    let mut cx = Context {
        root: spec.state_dir().to_owned(),
        working_dir: spec.working_dir().to_owned(),
        identity: (plan.identity.uid, plan.identity.gid),
        program: spec.program().to_owned(),
        ..Context::default()
    };
    let deny_exec = spec.isolation().deny_exec;
    let mut points: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
    let mut binds = Vec::new();
    let mut sources: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
    let mut tmpfs_size = 1u64 << 20;
    let mut proc_target = PathBuf::from("/proc");
    let state_real = fs::canonicalize(spec.state_dir())
        .map_err(|source| SandboxError::InspectStateDir { path: spec.state_dir().to_owned(), source })?;
    for mount in &plan.mounts {
        match mount {
            Mount::TmpfsRoot { size_bytes } => tmpfs_size = *size_bytes,
            Mount::Proc { target } => {
                proc_target = target.clone();
                add_points(&mut points, target, true);
            }
            Mount::Bind { source, target, access, required, origin } => {
                // Resolved on the host: below the old root an absolute symlink would point
                // into the new one.
                let real = match fs::canonicalize(source) {
                    Ok(real) => real,
                    Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(SandboxError::BindSource { path: source.clone(), source: e }),
                };
                // Below the state dir (the connector's to write) no symlink is followed:
                // the resolved path must be the path itself.
                if let Ok(rest) = source.strip_prefix(spec.state_dir()) {
                    if real.strip_prefix(&state_real).ok() != Some(rest) {
                        return Err(SandboxError::SymlinkInStateDir { path: source.clone() });
                    }
                }
                let is_dir = real.is_dir();
                let source = &real;
                add_points(&mut points, target, is_dir);
                let mut flags = MountFlags::NOSUID;
                match access {
                    BindAccess::ReadOnly => flags |= MountFlags::RDONLY | MountFlags::NODEV,
                    BindAccess::ReadWrite => flags |= MountFlags::NODEV,
                    BindAccess::Device => flags |= MountFlags::NOEXEC,
                }
                // A remount must keep the flags the source's mount has (inside a user
                // namespace they are locked), so they are added to the jail's.
                let source_flags = rustix::fs::statvfs(source)
                    .map_err(|e| SandboxError::BindSource { path: source.clone(), source: e.into() })?
                    .f_flag;
                for (from, to) in [
                    (rustix::fs::StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
                    (rustix::fs::StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
                    (rustix::fs::StatVfsMountFlags::NODEV, MountFlags::NODEV),
                    (rustix::fs::StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
                    (rustix::fs::StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
                    (rustix::fs::StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
                    (rustix::fs::StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
                ] {
                    if source_flags.contains(from) {
                        flags |= to;
                    }
                }
                let runs_code = matches!(origin, BindOrigin::Program | BindOrigin::Interpreter | BindOrigin::Library);
                if deny_exec && !runs_code {
                    flags |= MountFlags::NOEXEC;
                }
                binds.push(BindOp { source: old_root_path(source)?, target: cstring(target)?, flags });
                cx.binds.push((source.clone(), target.clone()));
                sources.push((source.clone(), target.clone(), is_dir));
            }
        }
    }
    cx.proc = proc_target.clone();
    let mount_points: Vec<MountPoint> = points
        .iter()
        .map(|(p, dir)| Ok(MountPoint { path: cstring(p)?, dir: *dir }))
        .collect::<Result<_, SandboxError>>()?;
    cx.mount_points = points.into_iter().map(|(p, _)| p).collect();

    let landlock = match landlock {
        Some(support) => {
            let refs: Vec<(&Path, &Path, bool)> =
                sources.iter().map(|(s, t, d)| (s.as_path(), t.as_path(), *d)).collect();
            Some(support.ruleset(&plan.landlock, &refs, &proc_target)?)
        }
        None => None,
    };

    let program = Arc::clone(&resolved.exec_path);
    let programs = {
        let mut compiled = resolved.seccomp.lock().unwrap_or_else(PoisonError::into_inner);
        match compiled.iter().find(|(p, _)| *p == plan.seccomp) {
            Some((_, programs)) => Arc::clone(programs),
            None => {
                let programs = Arc::new(seccomp::compile(&plan.seccomp, program.as_ptr() as u64)?);
                compiled.push((plan.seccomp.clone(), Arc::clone(&programs)));
                programs
            }
        }
    };
    let args = spec
        .args()
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| SandboxError::NulInPath { path: PathBuf::from(a) }))
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .environment()
        .iter()
        .map(|(k, v)| {
            let mut bytes = k.as_bytes().to_vec();
            bytes.push(b'=');
            bytes.extend_from_slice(v.as_bytes());
            // The spec's environment holds no NUL (Environment::insert checks).
            CString::new(bytes).map_err(|_| SandboxError::NulInPath { path: PathBuf::from(OsStr::new(k)) })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut child = ChildPlan {
        report_read: fds.report_read,
        id_maps: None,
        report: fds.report,
        netns: None,
        stdin: fds.stdin,
        stdout: fds.stdout,
        stderr: fds.stderr,
        cgroup_procs: Vec::new(),
        hostname: plan.hostname.as_bytes().to_vec(),
        stage: cstring(spec.state_dir())?,
        tmpfs_options: CString::new(format!("mode=0755,size={tmpfs_size},nr_inodes=4096"))
            .map_err(|_| SandboxError::NulInPath { path: PathBuf::new() })?,
        mount_points,
        binds,
        proc_target: cstring(&proc_target)?,
        working_dir: cstring(spec.working_dir())?,
        rlimits: spec.limits().rlimits().collect(),
        landlock,
        uid: plan.identity.uid,
        gid: plan.identity.gid,
        seccomp: Vec::new(),
        programs,
        program,
        args,
        env,
        argv: Vec::new(),
        envp: Vec::new(),
    };
    // These point into the heap buffers of `programs`, `program`, `args` and `env`, which
    // the plan owns and which do not move when the plan does.
    child.seccomp = child
        .programs
        .iter()
        .map(|prog| libc::sock_fprog {
            len: u16::try_from(prog.len()).unwrap_or(u16::MAX),
            filter: prog.as_ptr().cast::<libc::sock_filter>().cast_mut(),
        })
        .collect();
    child.argv = std::iter::once(child.program.as_ptr())
        .chain(child.args.iter().map(|a| a.as_ptr()))
        .chain(std::iter::once(std::ptr::null::<c_char>()))
        .collect();
    child.envp = child.env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    Ok((cx, child))
}

/// Adds `target`'s ancestors (as directories) and `target` itself to `points`.
fn add_points(points: &mut BTreeSet<(PathBuf, bool)>, target: &Path, is_dir: bool) {
    let mut ancestors: Vec<&Path> = target.ancestors().skip(1).filter(|a| *a != Path::new("/")).collect();
    ancestors.reverse();
    for a in ancestors {
        points.insert((a.to_owned(), true));
    }
    points.insert((target.to_owned(), is_dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_below_the_state_dir_creates_dirs_and_refuses_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        fs::create_dir(&state).expect("state");
        let mut seen = Vec::new();
        walk_beneath(&state, &state.join("a/b"), |_, p| {
            seen.push(p.to_owned());
            Ok(())
        })
        .expect("walked");
        assert_eq!(seen, [state.clone(), state.join("a"), state.join("a/b")]);
        assert!(state.join("a/b").is_dir());

        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, state.join("link")).expect("symlink");
        for target in [state.join("link"), state.join("link/deeper")] {
            match walk_beneath(&state, &target, |_, _| Ok(())) {
                Err(SandboxError::SymlinkInStateDir { path }) => assert_eq!(path, state.join("link")),
                other => panic!("{}: {other:?}", target.display()),
            }
        }
        assert!(!outside.join("deeper").exists(), "nothing was made through the link");
        std::os::unix::fs::symlink(&outside, tmp.path().join("state-link")).expect("symlink");
        assert!(matches!(
            walk_beneath(&tmp.path().join("state-link"), &tmp.path().join("state-link/x"), |_, _| Ok(())),
            Err(SandboxError::SymlinkInStateDir { .. })
        ));
    }
}
