//! What the child does between fork and exec, as data, and the typed report it sends
//! back when a step fails (house style §3.2 point 10).
//!
//! The parent builds a [`ChildPlan`] before forking, so the child only copies plain
//! integers and allocates nothing. A failed step writes one [`Step`] message to a
//! close-on-exec pipe and returns its errno, which std hands back to the parent as the
//! spawn error; the parent joins the two into a [`SandboxError`] variant.

use std::io;
use std::path::Path;

use crate::error::SandboxError;
use crate::spec::{Limits, Resource};

/// The data the pre-exec hook needs, fixed before fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildPlan {
    /// The spawning process; the child checks it is still its parent once its death signal is armed.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) parent: rustix::process::Pid,
    /// The rlimits to set, soft and hard, in order.
    pub(crate) rlimits: [Option<(Resource, u64)>; Resource::ALL.len()],
}

impl ChildPlan {
    /// The plan for `limits`, spawned by the calling process.
    pub(crate) fn new(limits: &Limits) -> ChildPlan {
        let mut rlimits = [None; Resource::ALL.len()];
        for (slot, limit) in rlimits.iter_mut().zip(limits.rlimits()) {
            *slot = Some(limit);
        }
        ChildPlan { parent: rustix::process::getpid(), rlimits }
    }
}

/// A pre-exec step that failed, as reported by the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `PR_SET_PDEATHSIG`.
    ParentDeathSignal,
    /// The parent was gone once the death signal was armed.
    ParentDied,
    /// `setsid`.
    NewSession,
    /// `setrlimit` of one resource.
    Rlimit(Resource),
    /// Marking fds above 2 close-on-exec.
    CloseFds,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
}

impl Step {
    /// The version byte that starts every report.
    const VERSION: u8 = 1;
    /// The length of an encoded report.
    pub(crate) const LEN: usize = 3;

    /// `[version, step, resource]`.
    pub(crate) fn encode(self) -> [u8; Step::LEN] {
        let (tag, arg) = match self {
            Step::ParentDeathSignal => (1, 0),
            Step::ParentDied => (2, 0),
            Step::NewSession => (3, 0),
            Step::Rlimit(resource) => (4, resource_code(resource)),
            Step::CloseFds => (5, 0),
            Step::NoNewPrivs => (6, 0),
        };
        [Step::VERSION, tag, arg]
    }

    /// The step of a report, or `None` for anything [`Step::encode`] does not produce.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Step> {
        let [version, tag, arg] = *bytes else { return None };
        if version != Step::VERSION {
            return None;
        }
        match (tag, arg) {
            (1, 0) => Some(Step::ParentDeathSignal),
            (2, 0) => Some(Step::ParentDied),
            (3, 0) => Some(Step::NewSession),
            (4, code) => Resource::ALL.into_iter().find(|r| resource_code(*r) == code).map(Step::Rlimit),
            (5, 0) => Some(Step::CloseFds),
            (6, 0) => Some(Step::NoNewPrivs),
            _ => None,
        }
    }

    /// The error for this step failing with `source`.
    pub(crate) fn into_error(self, source: io::Error) -> SandboxError {
        match self {
            Step::ParentDeathSignal => SandboxError::ParentDeathSignal { source },
            Step::ParentDied => SandboxError::ParentDied,
            Step::NewSession => SandboxError::NewSession { source },
            Step::Rlimit(resource) => SandboxError::Rlimit { resource, source },
            Step::CloseFds => SandboxError::CloseFds { source },
            Step::NoNewPrivs => SandboxError::NoNewPrivs { source },
        }
    }
}

fn resource_code(resource: Resource) -> u8 {
    match resource {
        Resource::Core => 1,
        Resource::Nofile => 2,
        Resource::Nproc => 3,
        Resource::Fsize => 4,
        Resource::As => 5,
    }
}

/// The error for a failed spawn: the step the child reported in `report`, if any, else
/// a plain [`SandboxError::Spawn`] (fork, chdir or exec).
pub(crate) fn spawn_error(report: &[u8], program: &Path, source: io::Error) -> SandboxError {
    match Step::decode(report) {
        Some(step) => step.into_error(source),
        None => SandboxError::Spawn { program: program.to_owned(), source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_step() -> Vec<Step> {
        let mut steps =
            vec![Step::ParentDeathSignal, Step::ParentDied, Step::NewSession, Step::CloseFds, Step::NoNewPrivs];
        steps.extend(Resource::ALL.map(Step::Rlimit));
        steps
    }

    #[test]
    fn reports_round_trip() {
        for step in every_step() {
            assert_eq!(Step::decode(&step.encode()), Some(step));
        }
    }

    #[test]
    fn anything_else_is_not_a_report() {
        let encoded: Vec<_> = every_step().into_iter().map(Step::encode).collect();
        for version in 0..=2u8 {
            for tag in 0..=8u8 {
                for arg in 0..=7u8 {
                    let bytes = [version, tag, arg];
                    assert_eq!(Step::decode(&bytes).is_some(), encoded.contains(&bytes), "{bytes:?}");
                }
            }
        }
        assert_eq!(Step::decode(&[]), None);
        assert_eq!(Step::decode(&[1, 1]), None);
        assert_eq!(Step::decode(&[1, 1, 0, 0]), None);
    }

    #[test]
    fn spawn_error_names_the_step() {
        let eperm = || io::Error::from_raw_os_error(1);
        match spawn_error(&Step::Rlimit(Resource::Nofile).encode(), Path::new("/p"), eperm()) {
            SandboxError::Rlimit { resource: Resource::Nofile, source } => assert_eq!(source.raw_os_error(), Some(1)),
            other => panic!("unexpected {other:?}"),
        }
        match spawn_error(&[], Path::new("/p"), eperm()) {
            SandboxError::Spawn { program, source } => {
                assert_eq!(program, Path::new("/p"));
                assert_eq!(source.raw_os_error(), Some(1));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn plan_lists_the_rlimits_in_order() {
        let limits = Limits { fsize_bytes: None, ..Limits::default() };
        let plan = ChildPlan::new(&limits);
        assert_eq!(plan.parent, rustix::process::getpid());
        assert_eq!(
            plan.rlimits,
            [
                Some((Resource::Core, 0)),
                Some((Resource::Nofile, Limits::DEFAULT_NOFILE)),
                Some((Resource::Nproc, Limits::DEFAULT_NPROC)),
                None,
                None
            ]
        );
    }
}
