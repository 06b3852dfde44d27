//! Syscall numbers back to names, for the audit record of a seccomp kill. The table covers
//! every syscall the jail's seccomp plan names (its allowlist and deny list); a kill on any
//! other number is reported by number (anything not on the allowlist is killed).

/// The name of syscall `nr` on the native architecture, if the plan names it.
pub(crate) fn name(nr: i64) -> Option<&'static str> {
    let (_, name) = COMMON.iter().chain(ARCH_ONLY).find(|(n, _)| *n == nr)?;
    Some(name.strip_prefix("SYS_").unwrap_or(name))
}

macro_rules! table {
    ($($name:ident)*) => { &[$((libc::$name, stringify!($name))),*] };
}

#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[(i64, &str)] = table!(
    SYS_access SYS_arch_prctl SYS_dup2 SYS_epoll_create SYS_epoll_wait SYS_fork SYS_getpgrp
    SYS_ioperm SYS_iopl SYS_lstat SYS_mkdir SYS_open SYS_pipe SYS_poll SYS_readlink SYS_rename
    SYS_renameat SYS_rmdir SYS_select SYS_stat SYS_time SYS_unlink SYS_vfork
);
#[cfg(not(target_arch = "x86_64"))]
const ARCH_ONLY: &[(i64, &str)] = &[];

const COMMON: &[(i64, &str)] = table!(
    SYS_accept SYS_accept4 SYS_acct SYS_add_key SYS_adjtimex SYS_bind SYS_bpf SYS_brk SYS_capget
    SYS_chdir SYS_chroot SYS_clock_adjtime SYS_clock_getres SYS_clock_gettime SYS_clock_nanosleep
    SYS_clock_settime SYS_clone SYS_clone3 SYS_close SYS_close_range SYS_connect SYS_copy_file_range
    SYS_delete_module SYS_dup SYS_dup3 SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_pwait
    SYS_epoll_pwait2 SYS_eventfd2 SYS_execve SYS_execveat SYS_exit SYS_exit_group SYS_faccessat
    SYS_faccessat2 SYS_fadvise64 SYS_fallocate SYS_fchdir SYS_fchmod SYS_fchmodat SYS_fcntl
    SYS_fdatasync SYS_finit_module SYS_flock SYS_fsconfig SYS_fsmount SYS_fsopen SYS_fspick
    SYS_fstat SYS_fstatfs SYS_fsync SYS_ftruncate SYS_futex SYS_get_robust_list SYS_getcwd
    SYS_getdents64 SYS_getegid SYS_geteuid SYS_getgid SYS_getgroups SYS_getpeername SYS_getpgid
    SYS_getpid SYS_getppid SYS_getrandom SYS_getresgid SYS_getresuid SYS_getrusage SYS_getsid
    SYS_getsockname SYS_getsockopt SYS_gettid SYS_gettimeofday SYS_getuid SYS_init_module
    SYS_io_uring_enter SYS_io_uring_register SYS_io_uring_setup SYS_ioctl SYS_kexec_file_load
    SYS_kexec_load SYS_keyctl SYS_kill SYS_linkat SYS_listen SYS_lseek SYS_madvise SYS_memfd_create
    SYS_mkdirat SYS_mmap SYS_mount SYS_mount_setattr SYS_move_mount SYS_mprotect SYS_mremap
    SYS_munmap SYS_name_to_handle_at SYS_nanosleep SYS_newfstatat SYS_open_by_handle_at
    SYS_open_tree SYS_openat SYS_perf_event_open SYS_personality SYS_pipe2 SYS_pivot_root SYS_ppoll
    SYS_prctl SYS_pread64 SYS_preadv SYS_preadv2 SYS_prlimit64 SYS_process_vm_readv
    SYS_process_vm_writev SYS_pselect6 SYS_ptrace SYS_pwrite64 SYS_pwritev SYS_pwritev2 SYS_quotactl
    SYS_read SYS_readlinkat SYS_readv SYS_reboot SYS_recvfrom SYS_recvmmsg SYS_recvmsg SYS_renameat2
    SYS_request_key SYS_restart_syscall SYS_rseq SYS_rt_sigaction SYS_rt_sigprocmask
    SYS_rt_sigreturn SYS_rt_sigsuspend SYS_rt_sigtimedwait SYS_sched_getaffinity SYS_sched_yield
    SYS_sendfile SYS_sendmmsg SYS_sendmsg SYS_sendto SYS_set_robust_list SYS_set_tid_address
    SYS_setdomainname SYS_sethostname SYS_setns SYS_setsockopt SYS_settimeofday SYS_shutdown
    SYS_sigaltstack SYS_socket SYS_socketpair SYS_splice SYS_statfs SYS_statx SYS_swapoff SYS_swapon
    SYS_symlinkat SYS_sysinfo SYS_syslog SYS_tgkill SYS_timerfd_create SYS_timerfd_gettime
    SYS_timerfd_settime SYS_tkill SYS_umask SYS_umount2 SYS_uname SYS_unlinkat SYS_unshare
    SYS_userfaultfd SYS_utimensat SYS_wait4 SYS_waitid SYS_write SYS_writev
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_map_back_to_the_plans_names() {
        assert_eq!(name(libc::SYS_bpf), Some("bpf"));
        assert_eq!(name(libc::SYS_io_uring_setup), Some("io_uring_setup"));
        assert_eq!(name(libc::SYS_execve), Some("execve"));
        assert_eq!(name(-1), None);
        let arch = fcp_policy::jail::Arch::native().expect("a supported architecture");
        let plan = crate::linux::seccomp::tests::plan(arch, true);
        for rule in plan.allow.iter().chain(plan.deny.iter().map(|d| &d.rule)) {
            let named = COMMON.iter().chain(ARCH_ONLY).any(|(_, n)| n.strip_prefix("SYS_") == Some(&rule.syscall));
            assert!(named, "{} is missing", rule.syscall);
        }
    }
}
