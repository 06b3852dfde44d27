//! Registers the pre-exec hook and runs its steps in the child.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::process::{self, Rlimit};

use super::fds;
use crate::prexec::{ChildPlan, Step};
use crate::spec::Resource;

/// Makes `command` run the steps of `plan` in the child after fork, before exec. On a
/// failed step the child writes the [`Step`] to `report` and the spawn fails with the
/// step's errno.
pub(crate) fn install(command: &mut Command, plan: ChildPlan, report: OwnedFd) {
    let hook = move || match run(&plan) {
        Ok(()) => Ok(()),
        Err((step, errno)) => {
            // The write cannot block (an empty pipe takes Step::LEN bytes); if it fails
            // the parent still gets the errno, as a plain spawn error.
            let _ = rustix::io::write(&report, &step.encode());
            Err(io::Error::from(errno))
        }
    };
    // SAFETY: `pre_exec` requires the hook to be safe to run in a forked child of a
    // possibly multi-threaded process, i.e. async-signal-safe. `run` only copies the
    // plain integers of `plan` (captured by value before fork) and makes direct syscalls
    // (prctl, getppid, setsid, umask, setrlimit, close_range or fcntl, write to the
    // already open `report` fd); it allocates nothing, takes no lock and touches no
    // thread-local or global state of the parent. Building an `io::Error` from an errno
    // does not allocate.
    unsafe {
        command.pre_exec(hook);
    }
}

/// The steps, in order. Runs in the child.
fn run(plan: &ChildPlan) -> Result<(), (Step, Errno)> {
    #[cfg(target_os = "linux")]
    {
        process::set_parent_process_death_signal(Some(process::Signal::KILL))
            .map_err(|e| (Step::ParentDeathSignal, e))?;
        // The parent may have died between fork and prctl; the death signal would then never come.
        if process::getppid() != Some(plan.parent) {
            return Err((Step::ParentDied, Errno::SRCH));
        }
    }
    process::setsid().map_err(|e| (Step::NewSession, e))?;
    process::umask(Mode::from_raw_mode(0o077));
    for (resource, value) in plan.rlimits.iter().flatten() {
        let limit = Rlimit { current: Some(*value), maximum: Some(*value) };
        process::setrlimit(kernel_resource(*resource), limit).map_err(|e| (Step::Rlimit(*resource), e))?;
    }
    fds::mark_cloexec_above_stdio().map_err(|e| (Step::CloseFds, e))?;
    #[cfg(target_os = "linux")]
    rustix::thread::set_no_new_privs(true).map_err(|e| (Step::NoNewPrivs, e))?;
    Ok(())
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
