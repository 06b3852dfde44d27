//! [`SpawnSpec`]: everything a backend needs to start one connector, as typed values.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::num::{NonZeroU32, NonZeroU8};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcp_policy::manifest::{Manifest, SandboxPath, SandboxProfile, SandboxSection};

use crate::error::SandboxError;
use crate::layers::Degradation;

/// The environment variable naming the connector's state dir (digest §11.1 `$CONNECTOR_STATE`).
pub const CONNECTOR_STATE_VAR: &str = "CONNECTOR_STATE";

/// What to spawn and how to confine it. Built with [`SpawnSpec::new`] or
/// [`SpawnSpec::from_manifest`]; fields are private so the program and directories are
/// always absolute and the environment always valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnSpec {
    program: PathBuf,
    args: Vec<OsString>,
    env: Environment,
    working_dir: PathBuf,
    state_dir: PathBuf,
    limits: Limits,
    isolation: Isolation,
    degradation: Degradation,
    network: Option<JailNetwork>,
}

/// A network the supervisor prepared for the jail (the egress crate's per-jail
/// namespace, whose only way out is the egress proxy). Without one, the Linux jail gives
/// the connector a new, empty network namespace (loopback only).
#[derive(Clone, Debug)]
pub struct JailNetwork {
    /// The network namespace the connector is placed in.
    pub netns: std::sync::Arc<std::os::fd::OwnedFd>,
    /// Files bound read-only into the jail: (host path, jail path), e.g. its
    /// `/etc/resolv.conf` and the proxy CA's trust store.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The only TCP ports the connector may connect to (Landlock ABI 4 and later; it may
    /// bind none): the operations' `port_allow`, DNS and the proxy's port.
    pub tcp_ports: Vec<u16>,
}

impl PartialEq for JailNetwork {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.netns, &other.netns)
            && self.files == other.files
            && self.tcp_ports == other.tcp_ports
    }
}

impl Eq for JailNetwork {}

impl SpawnSpec {
    /// A spec for `program` (absolute) with `state_dir` (absolute) as its state and
    /// working directory, no arguments, an empty environment, [`Limits::default`],
    /// [`Isolation::strictest`] and [`Degradation::Refuse`].
    pub fn new(program: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Result<SpawnSpec, SandboxError> {
        let program = program.into();
        if !program.is_absolute() {
            return Err(SandboxError::RelativeProgram { program });
        }
        let state_dir = absolute_dir(state_dir.into())?;
        Ok(SpawnSpec {
            program,
            args: Vec::new(),
            env: Environment::default(),
            working_dir: state_dir.clone(),
            state_dir,
            limits: Limits::default(),
            isolation: Isolation::strictest(),
            degradation: Degradation::Refuse,
            network: None,
        })
    }

    /// The spec for a connector described by `manifest`: its `[sandbox]` limits and
    /// isolation, `CONNECTOR_STATE=<state_dir>` as the only environment variable, and
    /// `state_dir` as working directory. Degradation stays [`Degradation::Refuse`]; only
    /// the owner's configuration may change it ([`SpawnSpec::with_degradation`]).
    pub fn from_manifest(
        manifest: &Manifest,
        program: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Result<SpawnSpec, SandboxError> {
        let mut spec = SpawnSpec::new(program, state_dir)?;
        let state = spec.state_dir.clone().into_os_string();
        spec.env.insert(CONNECTOR_STATE_VAR, state)?;
        spec.limits = Limits::from_manifest(&manifest.sandbox);
        spec.isolation = Isolation::from_manifest(&manifest.sandbox);
        Ok(spec)
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> SpawnSpec {
        self.args.push(arg.into());
        self
    }

    /// Sets one environment variable (see [`Environment::insert`]).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Result<SpawnSpec, SandboxError> {
        self.env.insert(name, value)?;
        Ok(self)
    }

    /// Replaces the working directory (absolute). It must exist when the connector is spawned.
    pub fn with_working_dir(mut self, dir: impl Into<PathBuf>) -> Result<SpawnSpec, SandboxError> {
        self.working_dir = absolute_dir(dir.into())?;
        Ok(self)
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> SpawnSpec {
        self.limits = limits;
        self
    }

    /// Replaces the isolation.
    #[must_use]
    pub fn with_isolation(mut self, isolation: Isolation) -> SpawnSpec {
        self.isolation = isolation;
        self
    }

    /// Replaces the degradation policy. Only the owner's configuration should pass
    /// anything but [`Degradation::Refuse`].
    #[must_use]
    pub fn with_degradation(mut self, degradation: Degradation) -> SpawnSpec {
        self.degradation = degradation;
        self
    }

    /// The program (absolute).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments after the program name.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// The exact environment of the connector.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// The working directory (the state dir unless replaced).
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// The connector's state dir (`$CONNECTOR_STATE`); a real backend creates it 0700 if missing.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The isolation the manifest asks for.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// The degradation policy.
    pub fn degradation(&self) -> Degradation {
        self.degradation
    }

    /// Places the connector in `network` instead of a new, empty network namespace.
    #[must_use]
    pub fn with_network(mut self, network: JailNetwork) -> SpawnSpec {
        self.network = Some(network);
        self
    }

    /// The network the supervisor prepared, if any.
    pub fn network(&self) -> Option<&JailNetwork> {
        self.network.as_ref()
    }

    /// The `[sandbox]` section this spec carries, for a backend that compiles it (the
    /// Linux jail's plan, the seatbelt and AppContainer profiles).
    pub fn sandbox_section(&self) -> SandboxSection {
        let (isolation, limits) = (&self.isolation, &self.limits);
        SandboxSection {
            profile: isolation.profile,
            memory_mb: limits.memory_mb.map_or(0, |m| m.get()),
            cpu_percent: limits.cpu_percent.get(),
            wall_clock_timeout_ms: u64::try_from(limits.wall_clock_timeout.as_millis()).unwrap_or(u64::MAX),
            fs_readonly_paths: isolation.fs_readonly_paths.clone(),
            fs_writable_paths: isolation.fs_writable_paths.clone(),
            deny_exec: isolation.deny_exec,
            deny_ptrace: isolation.deny_ptrace,
        }
    }
}

fn absolute_dir(path: PathBuf) -> Result<PathBuf, SandboxError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(SandboxError::RelativeDir { path })
    }
}

/// The connector's exact environment: nothing is inherited from the supervisor.
/// Names are non-empty and hold neither `=` nor NUL; values hold no NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment(BTreeMap<OsString, OsString>);

impl Environment {
    /// Sets `name` to `value`, returning the previous value.
    pub fn insert(
        &mut self,
        name: impl Into<OsString>,
        value: impl Into<OsString>,
    ) -> Result<Option<OsString>, SandboxError> {
        let (name, value) = (name.into(), value.into());
        let bad = |reason| SandboxError::EnvVar { name: name.to_string_lossy().into_owned(), reason };
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(bad("empty name"));
        }
        if bytes.contains(&b'=') {
            return Err(bad("name contains '='"));
        }
        if bytes.contains(&0) {
            return Err(bad("name contains NUL"));
        }
        if value.as_bytes().contains(&0) {
            return Err(bad("value contains NUL"));
        }
        Ok(self.0.insert(name, value))
    }

    /// The value of `name`.
    pub fn get(&self, name: impl AsRef<OsStr>) -> Option<&OsStr> {
        self.0.get(name.as_ref()).map(OsString::as_os_str)
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.0.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Resource limits. The manifest gives the first three; the rest are the supervisor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `sandbox.wall_clock_timeout_ms`: how long the connector may run
    /// (enforced by [`Jailed::wait_timeout`](crate::Jailed::wait_timeout), see there).
    pub wall_clock_timeout: Duration,
    /// `sandbox.memory_mb`; `None` (the manifest's 0) sets no limit. The plain backend
    /// applies it as `RLIMIT_AS`, which counts address space, not resident memory.
    pub memory_mb: Option<NonZeroU32>,
    /// `sandbox.cpu_percent` (100 = one core). Only a cgroup enforces it.
    pub cpu_percent: NonZeroU8,
    /// `RLIMIT_NOFILE`, soft and hard.
    pub nofile: u64,
    /// `RLIMIT_NPROC`, soft and hard. The kernel counts every task of the real uid, not
    /// only this connector's, and does not enforce it for root; the pids cgroup is the
    /// per-connector limit.
    pub nproc: u64,
    /// `RLIMIT_FSIZE` in bytes, soft and hard; `None` sets no limit.
    pub fsize_bytes: Option<u64>,
    /// How many processes and threads the connector's cgroup may hold (the `pids`
    /// controller). Only a cgroup enforces it; reaching it is a breach.
    pub pids_max: u32,
}

impl Limits {
    /// Default `RLIMIT_NOFILE`.
    pub const DEFAULT_NOFILE: u64 = 1024;
    /// Default `RLIMIT_NPROC`.
    pub const DEFAULT_NPROC: u64 = 4096;
    /// Default `RLIMIT_FSIZE`: 1 GiB.
    pub const DEFAULT_FSIZE_BYTES: u64 = 1 << 30;

    /// The limits of a manifest's `[sandbox]`, with the default nofile, nproc and fsize.
    pub fn from_manifest(sandbox: &SandboxSection) -> Limits {
        Limits {
            wall_clock_timeout: Duration::from_millis(sandbox.wall_clock_timeout_ms),
            memory_mb: NonZeroU32::new(sandbox.memory_mb),
            // Validation keeps cpu_percent in 1..=255; a 0 could only come from a hand-built
            // section and gets the smallest share.
            cpu_percent: NonZeroU8::new(sandbox.cpu_percent).unwrap_or(NonZeroU8::MIN),
            ..Limits::default()
        }
    }

    /// `RLIMIT_AS` in bytes, from [`Limits::memory_mb`].
    pub fn address_space_bytes(&self) -> Option<u64> {
        self.memory_mb.map(|mb| u64::from(mb.get()) << 20)
    }

    /// Every rlimit a backend sets, in the order it sets them: `RLIMIT_CORE` is always 0.
    pub fn rlimits(&self) -> impl Iterator<Item = (Resource, u64)> {
        [
            Some((Resource::Core, 0)),
            Some((Resource::Nofile, self.nofile)),
            Some((Resource::Nproc, self.nproc)),
            self.fsize_bytes.map(|b| (Resource::Fsize, b)),
            self.address_space_bytes().map(|b| (Resource::As, b)),
        ]
        .into_iter()
        .flatten()
    }
}

impl Default for Limits {
    /// 60 s wall clock (the manifest's `[timeouts]` default), no memory limit, one core,
    /// and the default nofile, nproc, fsize and pids.
    fn default() -> Self {
        Limits {
            wall_clock_timeout: Duration::from_secs(60),
            memory_mb: None,
            cpu_percent: NonZeroU8::MIN.saturating_add(99),
            nofile: Limits::DEFAULT_NOFILE,
            nproc: Limits::DEFAULT_NPROC,
            fsize_bytes: Some(Limits::DEFAULT_FSIZE_BYTES),
            pids_max: fcp_policy::jail::JailLimits::DEFAULT_PIDS_MAX,
        }
    }
}

/// A resource limited with `setrlimit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `RLIMIT_CORE`.
    Core,
    /// `RLIMIT_NOFILE`.
    Nofile,
    /// `RLIMIT_NPROC`.
    Nproc,
    /// `RLIMIT_FSIZE`.
    Fsize,
    /// `RLIMIT_AS`.
    As,
}

impl Resource {
    /// Every resource, in the order a backend sets them.
    pub const ALL: [Resource; 5] = [Resource::Core, Resource::Nofile, Resource::Nproc, Resource::Fsize, Resource::As];

    /// The kernel's name (`RLIMIT_CORE` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Core => "RLIMIT_CORE",
            Resource::Nofile => "RLIMIT_NOFILE",
            Resource::Nproc => "RLIMIT_NPROC",
            Resource::Fsize => "RLIMIT_FSIZE",
            Resource::As => "RLIMIT_AS",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the manifest asks the jail to confine. The plain backend applies none of it;
/// it is carried so the full jail can, and so the supervisor can audit what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// `sandbox.profile`.
    pub profile: SandboxProfile,
    /// `sandbox.fs_readonly_paths`.
    pub fs_readonly_paths: Vec<SandboxPath>,
    /// `sandbox.fs_writable_paths`.
    pub fs_writable_paths: Vec<SandboxPath>,
    /// `sandbox.deny_exec`.
    pub deny_exec: bool,
    /// `sandbox.deny_ptrace`.
    pub deny_ptrace: bool,
}

impl Isolation {
    /// The tightest isolation: `strict_plus`, no paths, exec and ptrace denied.
    pub fn strictest() -> Isolation {
        Isolation {
            profile: SandboxProfile::StrictPlus,
            fs_readonly_paths: Vec::new(),
            fs_writable_paths: Vec::new(),
            deny_exec: true,
            deny_ptrace: true,
        }
    }

    /// The isolation of a manifest's `[sandbox]`.
    pub fn from_manifest(sandbox: &SandboxSection) -> Isolation {
        Isolation {
            profile: sandbox.profile,
            fs_readonly_paths: sandbox.fs_readonly_paths.clone(),
            fs_writable_paths: sandbox.fs_writable_paths.clone(),
            deny_exec: sandbox.deny_exec,
            deny_ptrace: sandbox.deny_ptrace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = include_str!("../tests/data/manifest_minimal.toml");

    #[test]
    fn from_manifest_takes_the_sandbox_section() {
        let manifest = Manifest::parse(MINIMAL).expect("valid manifest");
        let spec = SpawnSpec::from_manifest(&manifest, "/opt/fcp/minimal", "/var/lib/fcp/minimal").expect("spec");
        assert_eq!(spec.program(), Path::new("/opt/fcp/minimal"));
        assert!(spec.args().is_empty());
        assert_eq!(spec.state_dir(), Path::new("/var/lib/fcp/minimal"));
        assert_eq!(spec.working_dir(), Path::new("/var/lib/fcp/minimal"));
        assert_eq!(spec.environment().len(), 1);
        assert_eq!(spec.environment().get(CONNECTOR_STATE_VAR), Some(OsStr::new("/var/lib/fcp/minimal")));
        let limits = spec.limits();
        assert_eq!(limits.wall_clock_timeout, Duration::from_millis(1000));
        assert_eq!(limits.memory_mb, NonZeroU32::new(64));
        assert_eq!(limits.cpu_percent.get(), 20);
        assert_eq!(limits.nofile, Limits::DEFAULT_NOFILE);
        assert_eq!(limits.nproc, Limits::DEFAULT_NPROC);
        assert_eq!(
            limits.rlimits().collect::<Vec<_>>(),
            vec![
                (Resource::Core, 0),
                (Resource::Nofile, Limits::DEFAULT_NOFILE),
                (Resource::Nproc, Limits::DEFAULT_NPROC),
                (Resource::Fsize, Limits::DEFAULT_FSIZE_BYTES),
                (Resource::As, 64 << 20),
            ]
        );
        let isolation = spec.isolation();
        assert_eq!(isolation.profile, SandboxProfile::Strict);
        assert_eq!(isolation.fs_readonly_paths, vec![SandboxPath::Absolute("/usr".into())]);
        assert_eq!(isolation.fs_writable_paths, vec![SandboxPath::ConnectorState(String::new())]);
        assert!(isolation.deny_exec && isolation.deny_ptrace);
        assert_eq!(spec.degradation(), Degradation::Refuse);
    }

    #[test]
    fn zero_memory_sets_no_address_space_limit() {
        let manifest = Manifest::parse(MINIMAL).expect("valid manifest");
        let mut sandbox = manifest.sandbox.clone();
        sandbox.memory_mb = 0;
        let limits = Limits::from_manifest(&sandbox);
        assert_eq!(limits.memory_mb, None);
        assert_eq!(limits.rlimits().map(|(r, _)| r).collect::<Vec<_>>(), Resource::ALL[..4].to_vec());
    }

    #[test]
    fn relative_paths_are_rejected() {
        match SpawnSpec::new("connector", "/state") {
            Err(SandboxError::RelativeProgram { program }) => assert_eq!(program, Path::new("connector")),
            other => panic!("unexpected {other:?}"),
        }
        match SpawnSpec::new("/bin/true", "state") {
            Err(SandboxError::RelativeDir { path }) => assert_eq!(path, Path::new("state")),
            other => panic!("unexpected {other:?}"),
        }
        let spec = SpawnSpec::new("/bin/true", "/state").expect("spec");
        match spec.with_working_dir("../x") {
            Err(SandboxError::RelativeDir { path }) => assert_eq!(path, Path::new("../x")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn environment_rejects_what_execve_cannot_carry() {
        let mut env = Environment::default();
        for (name, value, reason) in [
            ("", "v", "empty name"),
            ("A=B", "v", "name contains '='"),
            ("A\0", "v", "name contains NUL"),
            ("A", "v\0w", "value contains NUL"),
        ] {
            match env.insert(name, value) {
                Err(SandboxError::EnvVar { reason: got, .. }) => assert_eq!(got, reason),
                other => panic!("unexpected {other:?} for {name:?}"),
            }
        }
        assert!(env.is_empty());
        assert_eq!(env.insert("A", "1").expect("valid"), None);
        assert_eq!(env.insert("A", "2").expect("valid"), Some(OsString::from("1")));
        assert_eq!(env.iter().collect::<Vec<_>>(), vec![(OsStr::new("A"), OsStr::new("2"))]);
    }
}
