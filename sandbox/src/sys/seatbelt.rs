//! `sandbox_init` (macOS): applies a seatbelt profile to the calling process. It runs in
//! the child between fork and exec, after the plain hygiene steps, so the connector's
//! program is the first image loaded under the profile.
//!
//! `sandbox_init` is declared in `<sandbox.h>` and marked deprecated since macOS 10.8; it
//! is still how a process confines itself without an entitlement (the `sandbox-exec`
//! tool and browsers' helper processes use it). It lives in libsystem_sandbox, which
//! libSystem re-exports, so no `#[link]` attribute is needed.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::io::Errno;

extern "C" {
    /// Compiles `profile` (SBPL source when `flags` is 0) and applies it to the calling
    /// process. Returns 0, or -1 with a message in `*errorbuf` to be freed with
    /// `sandbox_free_error`.
    fn sandbox_init(profile: *const c_char, flags: u64, errorbuf: *mut *mut c_char) -> c_int;
    /// Frees a message returned by `sandbox_init`.
    fn sandbox_free_error(errorbuf: *mut c_char);
}

/// The byte that starts a failure report.
pub(crate) const REPORT_VERSION: u8 = 1;
/// The longest failure report: [`REPORT_VERSION`] and the start of `sandbox_init`'s
/// message. Shorter than `PIPE_BUF`, so one write into the empty pipe never blocks.
pub(crate) const REPORT_LEN: usize = 256;

/// Makes `command` apply `profile` in the child, as the last pre-exec step. If
/// `sandbox_init` fails the child writes [`REPORT_VERSION`] and the start of its message
/// to `report`, and the spawn fails with `EPERM`.
pub(crate) fn install(command: &mut Command, profile: CString, report: OwnedFd) {
    let hook = move || apply(&profile, &report);
    // SAFETY: `pre_exec` requires the hook to be safe to run in a forked child of a
    // possibly multi-threaded process. The hook owns `profile` and `report` (moved in
    // before fork) and calls sandbox_init, sandbox_free_error and write(2). sandbox_init
    // compiles the profile and so allocates, which POSIX does not promise is safe after
    // fork; on macOS it is, because libSystem's fork() runs malloc's fork handlers, which
    // hold every zone lock across the fork and reset them in the child. We know of no
    // other lock sandbox_init takes that another thread of the parent could hold. This
    // has not run on a Mac yet (see the backend's docs).
    unsafe {
        command.pre_exec(hook);
    }
}

/// Applies the profile. Runs in the child.
fn apply(profile: &CString, report: &OwnedFd) -> io::Result<()> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `profile` is a NUL-terminated string that outlives the call; `error` is a
    // valid place for one `char *`; flags 0 says `profile` is SBPL source, not the name
    // of a built-in profile.
    let rc = unsafe { sandbox_init(profile.as_ptr(), 0, &mut error) };
    if rc == 0 {
        return Ok(());
    }
    let mut buf = [0u8; REPORT_LEN];
    buf[0] = REPORT_VERSION;
    let mut len = 1;
    if !error.is_null() {
        // SAFETY: on failure sandbox_init stores in `error` a NUL-terminated message it
        // allocated; it stays valid until sandbox_free_error below, and `message` is not
        // used after that.
        let message = unsafe { CStr::from_ptr(error) }.to_bytes();
        let n = message.len().min(REPORT_LEN - 1);
        buf[1..=n].copy_from_slice(&message[..n]);
        len += n;
        // SAFETY: `error` was allocated by sandbox_init and is freed once, here.
        unsafe { sandbox_free_error(error) };
    }
    // The write cannot block (see REPORT_LEN); if it fails, the parent still gets the errno.
    let _ = rustix::io::write(report, &buf[..len]);
    Err(io::Error::from(Errno::PERM))
}
