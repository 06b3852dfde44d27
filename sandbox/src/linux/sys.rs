//! The jail's unsafe code (house style §3.2 point 6): the raw `clone` into new
//! namespaces, and the syscalls between fork and exec that neither rustix nor the
//! `landlock` and `seccompiler` crates offer without allocating. One syscall per block,
//! each with its invariants.

#![deny(clippy::undocumented_unsafe_blocks, clippy::multiple_unsafe_ops_per_block, unsafe_op_in_unsafe_fn)]

use std::convert::Infallible;
use std::ffi::{c_char, CStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use rustix::io::Errno;
use rustix::process::Pid;

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL)
}

/// Forks the calling process into the namespaces of `namespace_flags` (`CLONE_NEW*`
/// only) and runs `child` in the new process, which must end by exec or exit: it never
/// returns here. Returns the child's pid in the parent.
///
/// `child` runs in a copy of a possibly multi-threaded process in which only the
/// calling thread exists. It must be async-signal-safe: no allocation, no lock, no
/// panic; everything it needs was prepared before this call.
pub(super) fn clone_into_namespaces(namespace_flags: u64, child: impl FnOnce() -> Infallible) -> Result<Pid, Errno> {
    let flags = namespace_flags | libc::SIGCHLD as u64;
    // SAFETY: clone with a NULL stack and no CLONE_VM/CLONE_THREAD/CLONE_SETTLS/…_TID
    // flags is fork with namespace flags: the child gets a copy-on-write copy of this
    // address space and continues on its copy of this stack. The parent/child tid and
    // tls arguments are unused (0) because no flag refers to them. libc's fork handlers
    // do not run and its cached thread state in the child is stale, which is why the
    // child only runs `child`, which makes direct syscalls and never returns.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match rc {
        -1 => Err(last_errno()),
        // `child` returns an uninhabited type, which the compiler already treats as diverging.
        #[allow(unreachable_code)]
        0 => match child() {},
        pid => i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or(Errno::INVAL),
    }
}

/// Closes the child's copy of an fd the parent keeps (the read end of the report pipe).
pub(super) fn close_inherited(fd: RawFd) {
    // SAFETY: called only in the child right after clone, on a raw fd number that the
    // parent owns; in the child no Rust object owns this copy (the parent's OwnedFd is
    // never dropped here because the child never returns), so nothing uses it after.
    unsafe { libc::close(fd) };
}

/// Ends the child at once, without running destructors or atexit handlers.
pub(super) fn exit_child(code: i32) -> Infallible {
    // SAFETY: _exit is async-signal-safe and does not return.
    unsafe { libc::_exit(code) }
}

/// `execve(program, argv, envp)`; returns only on failure.
pub(super) fn execve(program: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::INVAL;
    }
    // SAFETY: `program` is NUL-terminated; `argv` and `envp` end in a null pointer
    // (checked above) and every other entry points into a CString the caller keeps
    // alive (the jail's child plan, which outlives the child).
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    last_errno()
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's uapi).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `LANDLOCK_RULE_PATH_BENEATH`.
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// `landlock_add_rule(ruleset, PATH_BENEATH, {access, parent})`.
pub(super) fn landlock_add_path_rule(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    access: u64,
) -> Result<(), Errno> {
    let attr = PathBeneathAttr { allowed_access: access, parent_fd: parent.as_raw_fd() };
    // SAFETY: both fds are borrowed, so open for the call; `attr` lives on this stack
    // for the call and has the kernel's layout; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `landlock_restrict_self(ruleset, 0)`.
pub(super) fn landlock_restrict_self(ruleset: impl AsFd) -> Result<(), Errno> {
    // SAFETY: the fd is borrowed for the call; the syscall reads no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_fd().as_raw_fd(), 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`. The caller set no_new_privs first.
pub(super) fn seccomp_install(prog: &libc::sock_fprog) -> Result<(), Errno> {
    // SAFETY: `prog` points at `len` instructions that the caller keeps alive (the child
    // plan); the kernel copies them and keeps no pointer.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, prog as *const libc::sock_fprog)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Sets `IFF_UP` on the loopback interface through `socket`, an `AF_INET` datagram socket.
pub(super) fn bring_up_loopback(socket: BorrowedFd<'_>) -> Result<(), Errno> {
    // An all-zero ifreq with the name "lo" and the flags set; built on the stack.
    let mut name = [0 as c_char; libc::IFNAMSIZ];
    for (slot, byte) in name.iter_mut().zip(b"lo") {
        *slot = *byte as c_char;
    }
    let request = libc::ifreq {
        ifr_name: name,
        ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_flags: (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short },
    };
    // SAFETY: SIOCSIFFLAGS reads a `struct ifreq`, which `request` is, alive on this
    // stack for the call; the socket fd is borrowed.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request as *const libc::ifreq) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Marks every fd above 2 close-on-exec (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`,
/// Linux 5.11; the jail needs Landlock, 5.13, anyway).
pub(super) fn mark_cloexec_above_stdio() -> Result<(), Errno> {
    /// `CLOSE_RANGE_CLOEXEC` from `include/uapi/linux/close_range.h`.
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes three integers and reads or writes no memory of ours;
    // with CLOSE_RANGE_CLOEXEC it only sets the close-on-exec flag.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `unshare(CLONE_NEWCGROUP)`: a cgroup namespace rooted at the current cgroup.
pub(super) fn unshare_cgroup_namespace() -> Result<(), Errno> {
    // SAFETY: `unshare_unsafe` is unsafe because CLONE_FILES and CLONE_FS can invalidate
    // fds or the cwd that Rust code relies on; CLONE_NEWCGROUP changes neither, only the
    // view of /proc/self/cgroup.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
}

/// Makes one of the escape probe's raw attempts. Only the attempts listed here reach the
/// kernel; the others are made through rustix by the caller.
pub(super) fn attempt_raw(attempt: super::escape::Attempt) -> Result<(), Errno> {
    use super::escape::Attempt as A;
    const NULL: usize = 0;
    const MINUS_ONE: usize = usize::MAX;
    let (nr, args): (libc::c_long, [usize; 5]) = match attempt {
        A::Ptrace => (libc::SYS_ptrace, [libc::PTRACE_TRACEME as usize, 0, NULL, NULL, 0]),
        A::ProcessVmReadv => (libc::SYS_process_vm_readv, [0, NULL, 0, NULL, 0]),
        A::Unshare => (libc::SYS_unshare, [libc::CLONE_NEWUSER as usize, 0, 0, 0, 0]),
        A::Setns => (libc::SYS_setns, [0, 0, 0, 0, 0]),
        A::Clone3 => (libc::SYS_clone3, [NULL, 0, 0, 0, 0]),
        A::Bpf => (libc::SYS_bpf, [0, NULL, 0, 0, 0]),
        A::PerfEventOpen => (libc::SYS_perf_event_open, [NULL, 0, MINUS_ONE, MINUS_ONE, 0]),
        A::Keyctl => (libc::SYS_keyctl, [0, 0, 0, 0, 0]),
        A::Userfaultfd => (libc::SYS_userfaultfd, [0, 0, 0, 0, 0]),
        A::IoUringSetup => (libc::SYS_io_uring_setup, [0, NULL, 0, 0, 0]),
        A::Personality => (libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0]),
        A::OpenByHandleAt => (libc::SYS_open_by_handle_at, [MINUS_ONE, NULL, 0, 0, 0]),
        A::KexecLoad => (libc::SYS_kexec_load, [0, 0, NULL, 0, 0]),
        A::FinitModule => (libc::SYS_finit_module, [MINUS_ONE, NULL, 0, 0, 0]),
        A::Tiocsti => (libc::SYS_ioctl, [0, libc::TIOCSTI as usize, NULL, 0, 0]),
        #[cfg(target_arch = "x86_64")]
        A::X32Syscall => (0x4000_0000 | libc::SYS_getpid, [0; 5]),
        _ => return Err(Errno::NOSYS),
    };
    // SAFETY: every (number, arguments) pair above passes only integers, invalid fds
    // and null pointers: the kernel reads and writes no memory of ours (a null pointer
    // it would dereference gives EFAULT), and none of the syscalls creates a thread or
    // process sharing our memory. Those that may succeed change only this process
    // (ptrace marks it traceable by its parent, unshare moves it to a new user
    // namespace, personality only reads), which is the probe's purpose.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if rc < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `clone(CLONE_NEWNS | SIGCHLD)`; a child that gets through exits at once and is reaped.
pub(super) fn attempt_clone_new_namespace() -> Result<(), Errno> {
    let child = clone_into_namespaces(libc::CLONE_NEWNS as u64, || exit_child(0))?;
    let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
    Ok(())
}
