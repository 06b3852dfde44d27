//! Syscalls a hostile connector would try, for the escape probe
//! (`fcp-sandbox-probe attempt NAME`, house style §3.2 point 14). Each attempt uses
//! arguments that do nothing harmful if the syscall is let through (null pointers,
//! invalid fds, queries), so what matters is how it fails: a jailed probe is killed by
//! SIGSYS or gets an errno from the filter.

use std::fmt;
use std::str::FromStr;

use rustix::io::Errno;

use super::sys;

/// One escape attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attempt {
    /// `ptrace(PTRACE_TRACEME)`.
    Ptrace,
    /// `process_vm_readv` of itself with no iovecs.
    ProcessVmReadv,
    /// `mount` of a tmpfs on `/tmp`.
    Mount,
    /// `umount2("/proc", MNT_DETACH)`.
    Umount,
    /// `pivot_root(".", ".")`.
    PivotRoot,
    /// `unshare(CLONE_NEWUSER)`.
    Unshare,
    /// `setns(0, 0)`.
    Setns,
    /// `clone(CLONE_NEWNS | SIGCHLD)`; a child that gets through exits at once.
    CloneNewNamespace,
    /// `clone3(NULL, 0)`: the filter answers ENOSYS.
    Clone3,
    /// `bpf(BPF_MAP_CREATE, NULL, 0)`.
    Bpf,
    /// `perf_event_open(NULL, 0, -1, -1, 0)`.
    PerfEventOpen,
    /// `keyctl(KEYCTL_GET_KEYRING_ID, 0, 0)`.
    Keyctl,
    /// `userfaultfd(0)`.
    Userfaultfd,
    /// `io_uring_setup(0, NULL)`.
    IoUringSetup,
    /// `personality(0xffffffff)` (a query).
    Personality,
    /// `open_by_handle_at(-1, NULL, 0)`.
    OpenByHandleAt,
    /// `kexec_load(0, 0, NULL, 0)`.
    KexecLoad,
    /// `finit_module(-1, NULL, 0)`.
    FinitModule,
    /// `socket(AF_INET, SOCK_RAW, 0)`.
    RawSocket,
    /// `socket(AF_PACKET, SOCK_DGRAM, 0)`.
    PacketSocket,
    /// `memfd_create`.
    MemfdCreate,
    /// `getpid` through its x32 number (x86-64 only).
    X32Syscall,
    /// `ioctl(0, TIOCSTI, NULL)`: typing into a terminal.
    Tiocsti,
    /// `socket(AF_INET, SOCK_STREAM, 0)`: allowed (the control case).
    TcpSocket,
}

impl Attempt {
    /// Every attempt.
    pub const ALL: [Attempt; 24] = [
        Attempt::Ptrace,
        Attempt::ProcessVmReadv,
        Attempt::Mount,
        Attempt::Umount,
        Attempt::PivotRoot,
        Attempt::Unshare,
        Attempt::Setns,
        Attempt::CloneNewNamespace,
        Attempt::Clone3,
        Attempt::Bpf,
        Attempt::PerfEventOpen,
        Attempt::Keyctl,
        Attempt::Userfaultfd,
        Attempt::IoUringSetup,
        Attempt::Personality,
        Attempt::OpenByHandleAt,
        Attempt::KexecLoad,
        Attempt::FinitModule,
        Attempt::RawSocket,
        Attempt::PacketSocket,
        Attempt::MemfdCreate,
        Attempt::X32Syscall,
        Attempt::Tiocsti,
        Attempt::TcpSocket,
    ];

    /// The attempt's name on the probe's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Attempt::Ptrace => "ptrace",
            Attempt::ProcessVmReadv => "process_vm_readv",
            Attempt::Mount => "mount",
            Attempt::Umount => "umount",
            Attempt::PivotRoot => "pivot_root",
            Attempt::Unshare => "unshare",
            Attempt::Setns => "setns",
            Attempt::CloneNewNamespace => "clone_newns",
            Attempt::Clone3 => "clone3",
            Attempt::Bpf => "bpf",
            Attempt::PerfEventOpen => "perf_event_open",
            Attempt::Keyctl => "keyctl",
            Attempt::Userfaultfd => "userfaultfd",
            Attempt::IoUringSetup => "io_uring_setup",
            Attempt::Personality => "personality",
            Attempt::OpenByHandleAt => "open_by_handle_at",
            Attempt::KexecLoad => "kexec_load",
            Attempt::FinitModule => "finit_module",
            Attempt::RawSocket => "raw_socket",
            Attempt::PacketSocket => "packet_socket",
            Attempt::MemfdCreate => "memfd_create",
            Attempt::X32Syscall => "x32",
            Attempt::Tiocsti => "tiocsti",
            Attempt::TcpSocket => "tcp_socket",
        }
    }

    /// Makes the attempt. `Ok` means the kernel ran the syscall and it succeeded.
    pub fn run(self) -> Result<(), Errno> {
        use rustix::net::{socket, AddressFamily, SocketType};
        match self {
            Attempt::Mount => rustix::mount::mount(
                c"tmpfs",
                c"/tmp",
                c"tmpfs",
                rustix::mount::MountFlags::empty(),
                None::<&std::ffi::CStr>,
            ),
            Attempt::Umount => rustix::mount::unmount(c"/proc", rustix::mount::UnmountFlags::DETACH),
            Attempt::PivotRoot => rustix::process::pivot_root(c".", c"."),
            Attempt::RawSocket => socket(AddressFamily::INET, SocketType::RAW, None).map(drop),
            Attempt::PacketSocket => socket(AddressFamily::PACKET, SocketType::DGRAM, None).map(drop),
            Attempt::TcpSocket => socket(AddressFamily::INET, SocketType::STREAM, None).map(drop),
            Attempt::MemfdCreate => rustix::fs::memfd_create(c"fcp-probe", rustix::fs::MemfdFlags::CLOEXEC).map(drop),
            Attempt::CloneNewNamespace => sys::attempt_clone_new_namespace(),
            other => sys::attempt_raw(other),
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Attempt {
    type Err = UnknownAttempt;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Attempt::ALL.into_iter().find(|a| a.as_str() == s).ok_or(UnknownAttempt)
    }
}

/// A name that is no [`Attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown attempt")]
pub struct UnknownAttempt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for attempt in Attempt::ALL {
            assert_eq!(attempt.as_str().parse::<Attempt>(), Ok(attempt));
        }
        assert_eq!("reboot".parse::<Attempt>(), Err(UnknownAttempt));
    }
}
