//! The one syscall of this crate that rustix does not offer safely.

use std::io;

/// `unshare(CLONE_NEWNET)`: moves the calling thread (only) into a new network
/// namespace.
pub(crate) fn unshare_network() -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe because unsharing CLONE_FILES or CLONE_FS
    // would break invariants other threads rely on (shared fd table, cwd). CLONE_NEWNET
    // changes only which network namespace this thread's new sockets belong to; the
    // thread is a dedicated one that creates sockets only for this namespace.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.map_err(io::Error::from)
}
