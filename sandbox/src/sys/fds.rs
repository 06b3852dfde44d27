//! Marks every fd above 2 close-on-exec, in the child, without allocating.
//!
//! Marking rather than closing keeps the pipe on which std reports a failed exec (and our
//! own step report) open until exec, so failures still reach the parent; exec then
//! closes everything but stdin, stdout and stderr.

use rustix::io::Errno;

/// The first fd that does not survive exec.
const FIRST: u32 = 3;

/// Linux: `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (5.11+), else a walk of `/proc/self/fd`.
#[cfg(target_os = "linux")]
pub(super) fn mark_cloexec_above_stdio() -> Result<(), Errno> {
    /// `CLOSE_RANGE_CLOEXEC` from `include/uapi/linux/close_range.h` (libc does not export it).
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes three integers and reads or writes no memory of ours; with
    // CLOSE_RANGE_CLOEXEC it only sets the close-on-exec flag of this process's fds, which
    // invalidates no fd that Rust code holds.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, FIRST, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    let errno = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL);
    // ENOSYS: before 5.9; EINVAL: 5.9 and 5.10, which lack the CLOEXEC flag.
    if errno == Errno::NOSYS || errno == Errno::INVAL {
        mark_cloexec_via_proc()
    } else {
        Err(errno)
    }
}

/// Sets close-on-exec on every fd above 2 listed in `/proc/self/fd`, reading the
/// directory with `getdents64` into a buffer on the stack. Fails (and so fails the spawn)
/// when `/proc` is not mounted.
#[cfg(target_os = "linux")]
pub(crate) fn mark_cloexec_via_proc() -> Result<(), Errno> {
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, BorrowedFd};

    use rustix::fs::{Mode, OFlags, RawDir};
    use rustix::io::FdFlags;

    let dir = rustix::fs::open(c"/proc/self/fd", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(entry) = entries.next() {
        let Some(fd) = parse_fd(entry?.file_name().to_bytes()) else { continue };
        if fd < FIRST || fd == dir.as_raw_fd().unsigned_abs() {
            continue;
        }
        let Ok(fd) = i32::try_from(fd) else { continue };
        // SAFETY: `fd` is listed in /proc/self/fd, so it is open in this process, and
        // nothing closes it while the borrow lives: after fork the child runs only this
        // thread, and the borrow ends with the fcntl call below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_setfd(borrowed, FdFlags::CLOEXEC)?;
    }
    Ok(())
}

/// The fd number of a `/proc/self/fd` entry name; `None` for `.` and `..`.
#[cfg(target_os = "linux")]
fn parse_fd(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 {
        return None;
    }
    name.iter().try_fold(0u32, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u32::from(b - b'0')),
        _ => None,
    })
}

/// Elsewhere: `fcntl(F_SETFD, FD_CLOEXEC)` on every fd from 3 up to the `RLIMIT_NOFILE`
/// soft limit (at most 2^20). An fd opened above a since-lowered soft limit is missed.
#[cfg(not(target_os = "linux"))]
pub(super) fn mark_cloexec_above_stdio() -> Result<(), Errno> {
    use rustix::process::{getrlimit, Resource};

    const CAP: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(CAP).min(CAP);
    let end = libc::c_int::try_from(limit).unwrap_or(libc::c_int::MAX);
    for fd in FIRST as libc::c_int..end {
        // SAFETY: fcntl(F_SETFD) on an integer fd touches no memory; on an fd that is not
        // open it fails with EBADF, which is ignored below.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if rc == -1 {
            let errno = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL);
            if errno != Errno::BADF {
                return Err(errno);
            }
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parses_fd_names() {
        assert_eq!(parse_fd(b"0"), Some(0));
        assert_eq!(parse_fd(b"1023"), Some(1023));
        assert_eq!(parse_fd(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_fd(b"4294967296"), None);
        assert_eq!(parse_fd(b"."), None);
        assert_eq!(parse_fd(b".."), None);
        assert_eq!(parse_fd(b""), None);
        assert_eq!(parse_fd(b"12a"), None);
    }

    /// The fallback for kernels before 5.11, run in the test process itself: marking its
    /// fds close-on-exec changes nothing it relies on.
    #[test]
    fn the_proc_walk_marks_every_fd_above_stdio() {
        use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};

        let file = std::fs::File::open("/proc/self/status").expect("open");
        let high = rustix::io::fcntl_dupfd_cloexec(&file, 900).expect("dup");
        for fd in [&file as &dyn std::os::fd::AsFd, &high] {
            fcntl_setfd(fd.as_fd(), FdFlags::empty()).expect("clear");
        }
        super::super::mark_cloexec_via_proc().expect("walk");
        assert_eq!(fcntl_getfd(&file).expect("getfd"), FdFlags::CLOEXEC);
        assert_eq!(fcntl_getfd(&high).expect("getfd"), FdFlags::CLOEXEC);
    }
}
