//! The typed report the jail's child sends when a step between fork and exec fails
//! (house style §3.2 point 10): `[version, tag, arg (u16 LE), errno (i32 LE)]`.

use std::io;
use std::path::PathBuf;

use rustix::io::Errno;

use crate::error::SandboxError;
use crate::spec::Resource;

/// A step of entering the jail, as the child reports it. Indexes point into the
/// [`Context`]'s lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JailStep {
    ParentDeathSignal,
    ParentDied,
    Stdio,
    NewSession,
    SetHostname,
    MakeMountsPrivate,
    MountRoot,
    PivotRoot,
    MakeMountPoint(u16),
    Bind(u16),
    RemountBind(u16),
    MountProc,
    UnmountOldRoot,
    RemountRootReadOnly,
    ChangeDir,
    Loopback,
    Rlimit(Resource),
    CloseFds,
    LandlockProc,
    SecureBits,
    DropBoundingCapability(u8),
    ClearAmbient,
    SetGroups,
    SetGid,
    SetUid,
    ClearCapabilities,
    NoNewPrivs,
    LandlockRestrict,
    InstallSeccomp(u16),
    Exec,
    EnterCgroup,
    UnshareCgroup,
    WaitIdMap,
    EnterNetwork,
}

/// What the parent knows to name the objects of a failed step.
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// The host dir the tmpfs root was mounted on.
    pub(crate) root: PathBuf,
    /// The mount points, by index.
    pub(crate) mount_points: Vec<PathBuf>,
    /// The binds `(host, target)`, by index.
    pub(crate) binds: Vec<(PathBuf, PathBuf)>,
    /// The procfs mount point.
    pub(crate) proc: PathBuf,
    /// The working dir.
    pub(crate) working_dir: PathBuf,
    /// The uid and gid inside.
    pub(crate) identity: (u32, u32),
    /// The program.
    pub(crate) program: PathBuf,
}

const VERSION: u8 = 1;
/// The length of an encoded report.
pub(crate) const LEN: usize = 8;

const RESOURCES: [Resource; 5] = Resource::ALL;

impl JailStep {
    fn tag_arg(self) -> (u8, u16) {
        use JailStep::*;
        match self {
            ParentDeathSignal => (1, 0),
            ParentDied => (2, 0),
            Stdio => (3, 0),
            NewSession => (4, 0),
            SetHostname => (5, 0),
            MakeMountsPrivate => (6, 0),
            MountRoot => (7, 0),
            PivotRoot => (8, 0),
            MakeMountPoint(i) => (9, i),
            Bind(i) => (10, i),
            RemountBind(i) => (11, i),
            MountProc => (12, 0),
            UnmountOldRoot => (13, 0),
            RemountRootReadOnly => (14, 0),
            ChangeDir => (15, 0),
            Loopback => (16, 0),
            Rlimit(r) => (17, RESOURCES.iter().position(|x| *x == r).map_or(u16::MAX, |p| p as u16)),
            CloseFds => (18, 0),
            LandlockProc => (19, 0),
            SecureBits => (20, 0),
            DropBoundingCapability(c) => (21, u16::from(c)),
            ClearAmbient => (22, 0),
            SetGroups => (23, 0),
            SetGid => (24, 0),
            SetUid => (25, 0),
            ClearCapabilities => (26, 0),
            NoNewPrivs => (27, 0),
            LandlockRestrict => (28, 0),
            InstallSeccomp(i) => (29, i),
            Exec => (30, 0),
            EnterCgroup => (31, 0),
            UnshareCgroup => (32, 0),
            WaitIdMap => (33, 0),
            EnterNetwork => (34, 0),
        }
    }

    /// The report of this step failing with `errno`.
    pub(crate) fn encode(self, errno: Errno) -> [u8; LEN] {
        let (tag, arg) = self.tag_arg();
        let [a0, a1] = arg.to_le_bytes();
        let [e0, e1, e2, e3] = errno.raw_os_error().to_le_bytes();
        [VERSION, tag, a0, a1, e0, e1, e2, e3]
    }

    /// The step and errno of a report, or `None` for anything [`JailStep::encode`] does not produce.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(JailStep, i32)> {
        use JailStep::*;
        let [version, tag, a0, a1, e0, e1, e2, e3] = *bytes else { return None };
        if version != VERSION {
            return None;
        }
        let arg = u16::from_le_bytes([a0, a1]);
        let errno = i32::from_le_bytes([e0, e1, e2, e3]);
        let step = match (tag, arg) {
            (1, 0) => ParentDeathSignal,
            (2, 0) => ParentDied,
            (3, 0) => Stdio,
            (4, 0) => NewSession,
            (5, 0) => SetHostname,
            (6, 0) => MakeMountsPrivate,
            (7, 0) => MountRoot,
            (8, 0) => PivotRoot,
            (9, i) => MakeMountPoint(i),
            (10, i) => Bind(i),
            (11, i) => RemountBind(i),
            (12, 0) => MountProc,
            (13, 0) => UnmountOldRoot,
            (14, 0) => RemountRootReadOnly,
            (15, 0) => ChangeDir,
            (16, 0) => Loopback,
            (17, i) => Rlimit(*RESOURCES.get(usize::from(i))?),
            (18, 0) => CloseFds,
            (19, 0) => LandlockProc,
            (20, 0) => SecureBits,
            (21, c) => DropBoundingCapability(u8::try_from(c).ok()?),
            (22, 0) => ClearAmbient,
            (23, 0) => SetGroups,
            (24, 0) => SetGid,
            (25, 0) => SetUid,
            (26, 0) => ClearCapabilities,
            (27, 0) => NoNewPrivs,
            (28, 0) => LandlockRestrict,
            (29, i) => InstallSeccomp(i),
            (30, 0) => Exec,
            (31, 0) => EnterCgroup,
            (32, 0) => UnshareCgroup,
            (33, 0) => WaitIdMap,
            (34, 0) => EnterNetwork,
            _ => return None,
        };
        Some((step, errno))
    }

    /// The error for this step failing with `errno`, naming its objects from `cx`.
    pub(crate) fn into_error(self, errno: i32, cx: &Context) -> SandboxError {
        use JailStep::*;
        let source = io::Error::from_raw_os_error(errno);
        let at = |list: &[PathBuf], i: u16| list.get(usize::from(i)).cloned().unwrap_or_default();
        let bind = |i: u16| cx.binds.get(usize::from(i)).cloned().unwrap_or_default();
        match self {
            ParentDeathSignal => SandboxError::ParentDeathSignal { source },
            ParentDied => SandboxError::ParentDied,
            Stdio => SandboxError::Stdio { source },
            NewSession => SandboxError::NewSession { source },
            SetHostname => SandboxError::SetHostname { source },
            MakeMountsPrivate => SandboxError::MakeMountsPrivate { source },
            MountRoot => SandboxError::MountRoot { root: cx.root.clone(), source },
            PivotRoot => SandboxError::PivotRoot { root: cx.root.clone(), source },
            MakeMountPoint(i) => SandboxError::MakeMountPoint { path: at(&cx.mount_points, i), source },
            Bind(i) => {
                let (host, target) = bind(i);
                SandboxError::Bind { host, target, source }
            }
            RemountBind(i) => SandboxError::RemountBind { target: bind(i).1, source },
            MountProc => SandboxError::MountProc { path: cx.proc.clone(), source },
            UnmountOldRoot => SandboxError::UnmountOldRoot { source },
            RemountRootReadOnly => SandboxError::RemountRootReadOnly { source },
            ChangeDir => SandboxError::ChangeDir { path: cx.working_dir.clone(), source },
            Loopback => SandboxError::Loopback { source },
            Rlimit(resource) => SandboxError::Rlimit { resource, source },
            CloseFds => SandboxError::CloseFds { source },
            LandlockProc => SandboxError::LandlockProc { source },
            SecureBits => SandboxError::SecureBits { source },
            DropBoundingCapability(capability) => SandboxError::DropBoundingCapability { capability, source },
            ClearAmbient => SandboxError::ClearAmbient { source },
            SetGroups => SandboxError::SetGroups { source },
            SetGid => SandboxError::SetGid { gid: cx.identity.1, source },
            SetUid => SandboxError::SetUid { uid: cx.identity.0, source },
            ClearCapabilities => SandboxError::ClearCapabilities { source },
            NoNewPrivs => SandboxError::NoNewPrivs { source },
            LandlockRestrict => SandboxError::LandlockRestrict { source },
            InstallSeccomp(filter) => SandboxError::InstallSeccomp { filter, source },
            Exec => SandboxError::Exec { program: cx.program.clone(), source },
            EnterCgroup => SandboxError::EnterCgroup { source },
            UnshareCgroup => SandboxError::UnshareCgroup { source },
            WaitIdMap => SandboxError::WaitIdMap { source },
            EnterNetwork => SandboxError::EnterNetwork { source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_step() -> Vec<JailStep> {
        use JailStep::*;
        let mut steps = vec![
            ParentDeathSignal,
            ParentDied,
            Stdio,
            NewSession,
            SetHostname,
            MakeMountsPrivate,
            MountRoot,
            PivotRoot,
            MakeMountPoint(3),
            Bind(0),
            Bind(700),
            RemountBind(2),
            MountProc,
            UnmountOldRoot,
            RemountRootReadOnly,
            ChangeDir,
            Loopback,
            CloseFds,
            LandlockProc,
            SecureBits,
            DropBoundingCapability(40),
            ClearAmbient,
            SetGroups,
            SetGid,
            SetUid,
            ClearCapabilities,
            NoNewPrivs,
            LandlockRestrict,
            InstallSeccomp(2),
            Exec,
            EnterCgroup,
            UnshareCgroup,
            WaitIdMap,
            EnterNetwork,
        ];
        steps.extend(Resource::ALL.map(Rlimit));
        steps
    }

    #[test]
    fn reports_round_trip() {
        for step in every_step() {
            let bytes = step.encode(Errno::PERM);
            assert_eq!(JailStep::decode(&bytes), Some((step, libc::EPERM)), "{step:?}");
        }
    }

    #[test]
    fn anything_else_is_not_a_report() {
        assert_eq!(JailStep::decode(&[]), None);
        assert_eq!(JailStep::decode(&[1, 1, 0, 0, 1, 0, 0]), None);
        assert_eq!(JailStep::decode(&[2, 1, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(JailStep::decode(&[1, 0, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(JailStep::decode(&[1, 35, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(JailStep::decode(&[1, 1, 1, 0, 1, 0, 0, 0]), None, "an argument where none belongs");
        assert_eq!(JailStep::decode(&[1, 17, 9, 0, 1, 0, 0, 0]), None, "no such resource");
        assert_eq!(JailStep::decode(&[1, 21, 0, 1, 1, 0, 0, 0]), None, "capability above 255");
    }

    #[test]
    fn errors_name_the_object() {
        let cx = Context {
            binds: vec![(PathBuf::from("/usr"), PathBuf::from("/usr"))],
            mount_points: vec![PathBuf::from("/dev")],
            identity: (65534, 65533),
            ..Context::default()
        };
        match JailStep::Bind(0).into_error(libc::ENOENT, &cx) {
            SandboxError::Bind { host, target, source } => {
                assert_eq!((host.to_str(), target.to_str()), (Some("/usr"), Some("/usr")));
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("unexpected {other:?}"),
        }
        match JailStep::MakeMountPoint(0).into_error(libc::EROFS, &cx) {
            SandboxError::MakeMountPoint { path, .. } => assert_eq!(path, PathBuf::from("/dev")),
            other => panic!("unexpected {other:?}"),
        }
        match JailStep::SetGid.into_error(libc::EPERM, &cx) {
            SandboxError::SetGid { gid, .. } => assert_eq!(gid, 65533),
            other => panic!("unexpected {other:?}"),
        }
    }
}
