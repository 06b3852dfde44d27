//! The plan's Landlock rules as a ruleset, built in the parent in hard-requirement mode.
//!
//! Rules attach to inodes, and a bind mount shows the same inodes as its source, so the
//! parent opens each bind's host source and adds its rule before the clone; the child
//! only adds the rule for its fresh `/proc` and calls `landlock_restrict_self`. The
//! ruleset handles every right of the plan that the kernel's best ABI (up to 5)
//! supports; [`LandlockSupport::probe`] checks once, in a scratch thread, that such a
//! ruleset reports [`RulesetStatus::FullyEnforced`].

use std::os::fd::OwnedFd;
use std::path::Path;

use fcp_policy::jail::{FsAccess, LandlockPlan};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

use crate::error::SandboxError;

/// The best Landlock ABI this kernel enforces fully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LandlockSupport {
    abi: ABI,
}

impl LandlockSupport {
    /// Finds the best ABI (5 down to 1) whose filesystem rights the kernel supports in
    /// hard-requirement mode, and checks in a scratch thread that restricting with them
    /// reports fully enforced. `Err` when Landlock is missing or only partly enforced.
    pub(crate) fn probe() -> Result<LandlockSupport, SandboxError> {
        let abi = [ABI::V5, ABI::V4, ABI::V3, ABI::V2, ABI::V1]
            .into_iter()
            .find(|abi| hard(AccessFs::from_all(*abi)).is_ok())
            .ok_or_else(|| SandboxError::LandlockNotEnforced {
                reason: "the kernel supports no Landlock ABI".into(),
            })?;
        let access = AccessFs::from_all(abi);
        // restrict_self applies to the calling thread only; the scratch thread ends here.
        let status = std::thread::spawn(move || {
            hard(access)
                .and_then(|r| r.create())
                .and_then(|r| r.restrict_self())
                .map(|s| (s.ruleset, s.no_new_privs))
                .map_err(|e| e.to_string())
        })
        .join()
        .map_err(|_| SandboxError::LandlockNotEnforced { reason: "the probe thread panicked".into() })?
        .map_err(|reason| SandboxError::LandlockNotEnforced { reason })?;
        match status {
            (RulesetStatus::FullyEnforced, true) => Ok(LandlockSupport { abi }),
            other => Err(SandboxError::LandlockNotEnforced { reason: format!("the kernel reported {other:?}") }),
        }
    }

    /// The kernel's rights among `wanted`.
    fn supported(self, wanted: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
        wanted & AccessFs::from_all(self.abi)
    }

    /// The ABI, for reports.
    pub(crate) fn abi(self) -> ABI {
        self.abi
    }

    /// The ruleset of `plan` with a rule for every `(host path, jail path)` in
    /// `sources` (the binds that will be mounted), and the rights of the rule for
    /// `proc` (added by the child). Rules whose path has no source are left out.
    pub(crate) fn ruleset(
        self,
        plan: &LandlockPlan,
        sources: &[(&Path, &Path, bool)],
        proc: &Path,
    ) -> Result<(OwnedFd, u64), SandboxError> {
        let handled = self.supported(rights(plan.handled.iter().copied()));
        // TCP rules need ABI 4; on an older kernel the network namespace alone confines.
        let tcp = plan.tcp_connect.as_ref().filter(|_| self.abi as i32 >= ABI::V4 as i32);
        let mut ruleset = hard(handled);
        if tcp.is_some() {
            ruleset = ruleset.and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp));
        }
        let mut created =
            ruleset.and_then(|r| r.create()).map_err(|source| SandboxError::LandlockRuleset { source })?;
        for port in tcp.into_iter().flatten() {
            created = created
                .set_compatibility(CompatLevel::HardRequirement)
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|source| SandboxError::LandlockRuleset { source })?;
        }
        let mut proc_access = BitFlags::empty();
        for rule in &plan.rules {
            let access = self.supported(rights(rule.access.iter().copied()));
            if rule.path == proc {
                proc_access = access;
                continue;
            }
            let Some((host, _, is_dir)) = sources.iter().find(|(_, target, _)| *target == rule.path) else { continue };
            let access = if *is_dir { access } else { access & AccessFs::from_file(self.abi) };
            if access.is_empty() {
                continue;
            }
            let fd =
                PathFd::new(host).map_err(|source| SandboxError::LandlockPath { path: host.to_path_buf(), source })?;
            created = created
                .set_compatibility(CompatLevel::HardRequirement)
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|source| SandboxError::LandlockRuleset { source })?;
        }
        let fd: Option<OwnedFd> = created.into();
        let fd = fd.ok_or_else(|| SandboxError::LandlockNotEnforced { reason: "no ruleset fd".into() })?;
        Ok((fd, proc_access.bits()))
    }
}

fn hard(access: BitFlags<AccessFs>) -> Result<Ruleset, landlock::RulesetError> {
    Ruleset::default().set_compatibility(CompatLevel::HardRequirement).handle_access(access)
}

fn rights(access: impl Iterator<Item = FsAccess>) -> BitFlags<AccessFs> {
    access
        .map(|a| match a {
            FsAccess::Execute => AccessFs::Execute,
            FsAccess::WriteFile => AccessFs::WriteFile,
            FsAccess::ReadFile => AccessFs::ReadFile,
            FsAccess::ReadDir => AccessFs::ReadDir,
            FsAccess::RemoveDir => AccessFs::RemoveDir,
            FsAccess::RemoveFile => AccessFs::RemoveFile,
            FsAccess::MakeChar => AccessFs::MakeChar,
            FsAccess::MakeDir => AccessFs::MakeDir,
            FsAccess::MakeReg => AccessFs::MakeReg,
            FsAccess::MakeSock => AccessFs::MakeSock,
            FsAccess::MakeFifo => AccessFs::MakeFifo,
            FsAccess::MakeBlock => AccessFs::MakeBlock,
            FsAccess::MakeSym => AccessFs::MakeSym,
            FsAccess::Refer => AccessFs::Refer,
            FsAccess::Truncate => AccessFs::Truncate,
            FsAccess::IoctlDev => AccessFs::IoctlDev,
        })
        .fold(BitFlags::empty(), |acc, a| acc | a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_right_maps_to_a_distinct_flag() {
        let all = rights(FsAccess::ALL.into_iter());
        assert_eq!(all.iter().count(), FsAccess::ALL.len());
        assert_eq!(all, AccessFs::from_all(ABI::V5));
    }
}
