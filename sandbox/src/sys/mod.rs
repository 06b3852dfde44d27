//! The crate's only unsafe code: the hook that runs in the child between fork and exec
//! (house style §3.2 point 6), and on macOS the `sandbox_init` call at its end
//! (`seatbelt`). Every syscall goes through rustix where it has a safe wrapper; the
//! remaining `unsafe` blocks each hold one call and a `// SAFETY:` note.

#![deny(clippy::undocumented_unsafe_blocks, clippy::multiple_unsafe_ops_per_block, unsafe_op_in_unsafe_fn)]

mod fds;
mod pre_exec;
#[cfg(target_os = "macos")]
mod seatbelt;

#[cfg(all(test, target_os = "linux"))]
pub(crate) use fds::mark_cloexec_via_proc;
pub(crate) use pre_exec::install;
#[cfg(target_os = "macos")]
pub(crate) use seatbelt::{
    install as install_seatbelt, REPORT_LEN as SEATBELT_REPORT_LEN, REPORT_VERSION as SEATBELT_REPORT_VERSION,
};
