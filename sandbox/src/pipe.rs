//! Close-on-exec pipes, for the pre-exec report and for [`RecordingSandbox`](crate::RecordingSandbox)'s fake stdio.

use std::io;
use std::os::fd::OwnedFd;

/// A close-on-exec pipe `(read, write)`, both ends non-blocking when `nonblocking`.
pub(crate) fn pipe(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        use rustix::pipe::PipeFlags;
        let flags = if nonblocking { PipeFlags::CLOEXEC | PipeFlags::NONBLOCK } else { PipeFlags::CLOEXEC };
        Ok(rustix::pipe::pipe_with(flags)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        use rustix::io::FdFlags;
        let (read, write) = rustix::pipe::pipe()?;
        for end in [&read, &write] {
            rustix::io::fcntl_setfd(end, FdFlags::CLOEXEC)?;
            if nonblocking {
                rustix::io::ioctl_fionbio(end, true)?;
            }
        }
        Ok((read, write))
    }
}
