//! What the jail's child does between clone and exec, from a [`ChildPlan`] prepared
//! before the clone. Everything here is a direct syscall on prepared data: no
//! allocation, no lock, no panic (async-signal-safe, as the child of a multi-threaded
//! process must be).

use std::ffi::{c_char, CString};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::process::{self, Rlimit};
use rustix::thread::{CapabilitiesSecureBits, CapabilitySet, CapabilitySets};

use super::step::JailStep;
use super::sys;
use crate::spec::Resource;

/// The old root's mount point while the jail's mounts are made, relative to the new root.
pub(super) const OLD_ROOT: &std::ffi::CStr = c".fcp-oldroot";
/// The same, absolute once pivoted.
pub(super) const OLD_ROOT_ABS: &std::ffi::CStr = c"/.fcp-oldroot";

/// A mount point to create in the fresh root before the binds.
#[derive(Debug)]
pub(super) struct MountPoint {
    pub(super) path: CString,
    pub(super) dir: bool,
}

/// One bind: source below the old root, target in the new root, and the flags it is
/// remounted with.
#[derive(Debug)]
pub(super) struct BindOp {
    pub(super) source: CString,
    pub(super) target: CString,
    pub(super) flags: MountFlags,
}

/// Everything the child needs, prepared before the clone.
#[derive(Debug)]
pub(super) struct ChildPlan {
    /// The parent's end of the report pipe (the child closes its copy).
    pub(super) report_read: RawFd,
    /// In a user namespace: the read end of the pipe on which the parent says the id maps
    /// are written, and the parent's write end (the child closes its copy).
    pub(super) id_maps: Option<(OwnedFd, RawFd)>,
    /// The child's end of the report pipe (close-on-exec).
    pub(super) report: OwnedFd,
    /// The network namespace to enter (the supervisor's per-jail network), instead of
    /// the new one clone would make.
    pub(super) netns: Option<std::sync::Arc<OwnedFd>>,
    /// The child's ends of the stdio pipes.
    pub(super) stdin: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
    /// The connector's `cgroup.procs` files (empty when cgroups are allowed missing).
    pub(super) cgroup_procs: Vec<OwnedFd>,
    pub(super) hostname: Vec<u8>,
    /// The host dir the tmpfs root is mounted on (the state dir, which always exists).
    pub(super) stage: CString,
    pub(super) tmpfs_options: CString,
    pub(super) mount_points: Vec<MountPoint>,
    pub(super) binds: Vec<BindOp>,
    pub(super) proc_target: CString,
    pub(super) working_dir: CString,
    pub(super) rlimits: Vec<(Resource, u64)>,
    /// The Landlock ruleset with every host-path rule, and the rights for /proc; `None`
    /// when Landlock is allowed missing.
    pub(super) landlock: Option<(OwnedFd, u64)>,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// The seccomp programs in install order (the allowlist last), pointing into `programs`.
    pub(super) seccomp: Vec<libc::sock_fprog>,
    pub(super) programs: Arc<Vec<seccompiler::BpfProgram>>,
    /// The program, shared with the backend's cache so its address (which the seccomp
    /// filter compares `execve`'s path with) stays the same across spawns.
    pub(super) program: Arc<CString>,
    pub(super) args: Vec<CString>,
    pub(super) env: Vec<CString>,
    /// `program`, `args` and a null pointer.
    pub(super) argv: Vec<*const c_char>,
    /// `env` and a null pointer.
    pub(super) envp: Vec<*const c_char>,
}

/// Runs the steps and execs; returns the failed step.
pub(super) fn run(plan: &ChildPlan) -> (JailStep, Errno) {
    match steps(plan) {
        Ok(()) => (JailStep::Exec, sys::execve(&plan.program, &plan.argv, &plan.envp)),
        Err(failed) => failed,
    }
}

/// The child's entry point: runs, reports a failure on the pipe, exits.
pub(super) fn main(plan: &ChildPlan) -> std::convert::Infallible {
    sys::close_inherited(plan.report_read);
    if let Some((_, parent_end)) = &plan.id_maps {
        sys::close_inherited(*parent_end);
    }
    let (step, errno) = run(plan);
    // The write cannot block (an empty pipe takes 8 bytes); if it fails the parent sees
    // the child exit without exec.
    let _ = rustix::io::write(&plan.report, &step.encode(errno));
    sys::exit_child(127)
}

fn steps(plan: &ChildPlan) -> Result<(), (JailStep, Errno)> {
    use JailStep as S;
    let at = |step: JailStep| move |e: Errno| (step, e);

    if let Some((ready, _)) = &plan.id_maps {
        // One byte once the parent wrote uid_map and gid_map; EOF if it gave up or died.
        let mut byte = [0u8; 1];
        loop {
            match rustix::io::read(ready, &mut byte) {
                Ok(1) => break,
                Ok(_) => return Err((S::WaitIdMap, Errno::PIPE)),
                Err(Errno::INTR) => {}
                Err(e) => return Err((S::WaitIdMap, e)),
            }
        }
    }
    if let Some(netns) = &plan.netns {
        rustix::thread::move_into_link_name_space(netns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .map_err(at(S::EnterNetwork))?;
    }
    process::set_parent_process_death_signal(Some(process::Signal::KILL)).map_err(at(S::ParentDeathSignal))?;
    // The parent may have died before the death signal was armed: then nobody reads the
    // report pipe any more (the child closed its own copy of the read end).
    let mut fds = [PollFd::new(&plan.report, PollFlags::OUT)];
    let _ = rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }));
    if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
        return Err((S::ParentDied, Errno::SRCH));
    }
    rustix::stdio::dup2_stdin(&plan.stdin).map_err(at(S::Stdio))?;
    rustix::stdio::dup2_stdout(&plan.stdout).map_err(at(S::Stdio))?;
    rustix::stdio::dup2_stderr(&plan.stderr).map_err(at(S::Stdio))?;
    // Into the connector's cgroup first, then a cgroup namespace rooted there.
    for procs in &plan.cgroup_procs {
        rustix::io::write(procs, b"0").map_err(at(S::EnterCgroup))?;
    }
    sys::unshare_cgroup_namespace().map_err(at(S::UnshareCgroup))?;
    process::setsid().map_err(at(S::NewSession))?;
    process::umask(Mode::from_raw_mode(0o022));
    rustix::system::sethostname(&plan.hostname).map_err(at(S::SetHostname))?;

    // A fresh tmpfs becomes the root; the old root stays reachable below it until every
    // bind is made, so no source is shadowed by the tmpfs.
    rustix::mount::mount_change(c"/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(at(S::MakeMountsPrivate))?;
    rustix::mount::mount(
        c"tmpfs",
        plan.stage.as_c_str(),
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(plan.tmpfs_options.as_c_str()),
    )
    .map_err(at(S::MountRoot))?;
    process::chdir(plan.stage.as_c_str()).map_err(at(S::PivotRoot))?;
    rustix::fs::mkdir(OLD_ROOT, Mode::from_raw_mode(0o700)).map_err(at(S::PivotRoot))?;
    process::pivot_root(c".", OLD_ROOT).map_err(at(S::PivotRoot))?;
    process::chdir(c"/").map_err(at(S::PivotRoot))?;

    for (i, point) in plan.mount_points.iter().enumerate() {
        let step = S::MakeMountPoint(index(i));
        if point.dir {
            match rustix::fs::mkdir(point.path.as_c_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err((step, e)),
            }
        } else {
            let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            drop(rustix::fs::open(point.path.as_c_str(), flags, Mode::from_raw_mode(0o644)).map_err(at(step))?);
        }
    }
    for (i, bind) in plan.binds.iter().enumerate() {
        rustix::mount::mount_bind(bind.source.as_c_str(), bind.target.as_c_str()).map_err(at(S::Bind(index(i))))?;
        rustix::mount::mount_remount(bind.target.as_c_str(), MountFlags::BIND | bind.flags, c"")
            .map_err(at(S::RemountBind(index(i))))?;
    }
    rustix::mount::mount(
        c"proc",
        plan.proc_target.as_c_str(),
        c"proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(c"subset=pid"),
    )
    .map_err(at(S::MountProc))?;
    rustix::mount::unmount(OLD_ROOT_ABS, UnmountFlags::DETACH).map_err(at(S::UnmountOldRoot))?;
    rustix::fs::rmdir(OLD_ROOT_ABS).map_err(at(S::UnmountOldRoot))?;
    let root_flags =
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount_remount(c"/", root_flags, c"").map_err(at(S::RemountRootReadOnly))?;
    process::chdir(plan.working_dir.as_c_str()).map_err(at(S::ChangeDir))?;

    let socket = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(at(S::Loopback))?;
    sys::bring_up_loopback(socket.as_fd()).map_err(at(S::Loopback))?;
    drop(socket);

    for (resource, value) in &plan.rlimits {
        let limit = Rlimit { current: Some(*value), maximum: Some(*value) };
        process::setrlimit(kernel_resource(*resource), limit).map_err(at(S::Rlimit(*resource)))?;
    }
    sys::mark_cloexec_above_stdio().map_err(at(S::CloseFds))?;

    if let Some((ruleset, proc_access)) = &plan.landlock {
        let proc = rustix::fs::open(plan.proc_target.as_c_str(), OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(at(S::LandlockProc))?;
        sys::landlock_add_path_rule(ruleset.as_fd(), proc.as_fd(), *proc_access).map_err(at(S::LandlockProc))?;
    }

    // Capabilities: lock the securebits so that root regains nothing, drop the bounding
    // and ambient sets, then switch to the unprivileged ids (which clears the permitted
    // and effective sets), clear them again explicitly and check that nothing is left.
    let locked = CapabilitiesSecureBits::NO_ROOT
        | CapabilitiesSecureBits::NO_ROOT_LOCKED
        | CapabilitiesSecureBits::NO_SETUID_FIXUP_LOCKED
        | CapabilitiesSecureBits::KEEP_CAPS_LOCKED
        | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE
        | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE_LOCKED;
    rustix::thread::set_capabilities_secure_bits(locked).map_err(at(S::SecureBits))?;
    for cap in 0..64u8 {
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(Errno::INVAL) => break,
            Err(e) => return Err((S::DropBoundingCapability(cap), e)),
        }
    }
    rustix::thread::clear_ambient_capability_set().map_err(at(S::ClearAmbient))?;
    // In a user namespace setgroups is denied (so that dropping a group cannot grant
    // access); the supervisor's own supplementary groups stay, unmapped.
    if plan.id_maps.is_none() {
        rustix::thread::set_thread_groups(&[]).map_err(at(S::SetGroups))?;
    }
    let gid = rustix::process::Gid::from_raw(plan.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(at(S::SetGid))?;
    let uid = rustix::process::Uid::from_raw(plan.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(at(S::SetUid))?;
    // A change of credentials clears the death signal: arm it again.
    process::set_parent_process_death_signal(Some(process::Signal::KILL)).map_err(at(S::ParentDeathSignal))?;
    let none = CapabilitySet::empty();
    rustix::thread::set_capabilities(None, CapabilitySets { effective: none, permitted: none, inheritable: none })
        .map_err(at(S::ClearCapabilities))?;
    let sets = rustix::thread::capabilities(None).map_err(at(S::ClearCapabilities))?;
    if !(sets.effective.is_empty() && sets.permitted.is_empty() && sets.inheritable.is_empty()) {
        return Err((S::ClearCapabilities, Errno::PERM));
    }
    for cap in 0..64u8 {
        match rustix::thread::capability_is_in_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
            Ok(false) | Err(Errno::INVAL) => {}
            Ok(true) => return Err((S::DropBoundingCapability(cap), Errno::PERM)),
            Err(e) => return Err((S::DropBoundingCapability(cap), e)),
        }
    }

    rustix::thread::set_no_new_privs(true).map_err(at(S::NoNewPrivs))?;
    if let Some((ruleset, _)) = &plan.landlock {
        sys::landlock_restrict_self(ruleset).map_err(at(S::LandlockRestrict))?;
    }
    process::umask(Mode::from_raw_mode(0o077));
    for (i, prog) in plan.seccomp.iter().enumerate() {
        sys::seccomp_install(prog).map_err(at(S::InstallSeccomp(index(i))))?;
    }
    Ok(())
}

/// A list index as a report argument (the lists are far shorter than 2^16).
fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

fn kernel_resource(resource: Resource) -> process::Resource {
    match resource {
        Resource::Core => process::Resource::Core,
        Resource::Nofile => process::Resource::Nofile,
        Resource::Nproc => process::Resource::Nproc,
        Resource::Fsize => process::Resource::Fsize,
        Resource::As => process::Resource::As,
    }
}
