//! Windows: a connector's `[sandbox]` section as an AppContainer profile, as data a
//! launcher applies (spec/sandbox-platforms.md).
//!
//! [`compile`] resolves the section's paths against the Windows host paths of
//! [`AppContainerInputs`] (`$CONNECTOR_STATE` is the state dir, as on Linux) and returns
//! an [`AppContainerProfile`]:
//!
//! - [`AppContainerProfile::container_name`]: `fcp.<connector id>.<16 hex digits>`,
//!   deterministic, at most 64 characters of `[-_.A-Za-z0-9]` (the rules of
//!   `CreateAppContainerProfile`); the digits hash the connector id and the state dir,
//!   so two instances of one connector get two containers and cannot read each other's
//!   state;
//! - [`AppContainerProfile::capabilities`]: none. Without `internetClient`,
//!   `internetClientServer` or `privateNetworkClientServer` the container reaches no
//!   network; [`Network::LoopbackProxy`] records the loopback exemption and the firewall
//!   blocks that leave it only the egress proxy's port;
//! - [`AppContainerProfile::filesystem`]: an ACL grant to the container's SID per path:
//!   the program (read, execute), the read-only paths (read; execute too without
//!   `deny_exec`), the writable paths (read, write; never execute), the state dir (read,
//!   unless it is writable), the libraries beside the program (read, execute);
//! - [`AppContainerProfile::child_processes`] and [`JobLimits`]: `deny_exec` becomes the
//!   child-process mitigation and an active-process limit of 1; otherwise the limit is
//!   the jail's pids limit. Memory, CPU rate and the UI restrictions are job limits; the
//!   wall clock stays with the supervisor (a job limits CPU time only).
//!
//! Manifest paths must be Windows paths here (`C:\…`, `C:/…` or `\\server\share\…`):
//! a POSIX path such as `/usr` means nothing on Windows and is refused, as are `..`,
//! reserved characters, names ending in a dot or a space, `\\?\` and `\\.\` forms, and
//! the root of a drive or share. Pure: nothing is resolved on disk.

use std::collections::BTreeSet;
use std::num::{NonZeroU16, NonZeroU32};

use fcp_proto::id::CanonicalId;
use serde::{Deserialize, Serialize};

use crate::jail::{BindOrigin, JailLimits};
use crate::manifest::{SandboxPath, SandboxSection};

use super::{refuse_control, Egress, PlatformError};

/// What [`compile`] needs besides the `[sandbox]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppContainerInputs {
    /// The connector's id (`[connector] id`); the container name starts with it.
    pub connector_id: CanonicalId,
    /// The connector program (an absolute Windows path).
    pub program: String,
    /// DLLs the program loads from outside the system directories (absolute Windows
    /// paths). System DLLs are readable by every app container already.
    pub libraries: Vec<String>,
    /// The instance's state dir (an absolute Windows path): `$CONNECTOR_STATE`.
    pub state_dir: String,
    /// The machine's logical processors: a job's CPU rate is a share of all of them.
    pub processors: NonZeroU32,
    /// Where the connector may connect.
    pub egress: Egress,
}

/// The AppContainer a connector runs in, as data. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppContainerProfile {
    /// `pszAppContainerName` of `CreateAppContainerProfile`; its SID is
    /// `DeriveAppContainerSidFromAppContainerName` of it.
    pub container_name: String,
    /// `pszDisplayName`.
    pub display_name: String,
    /// `pszDescription`.
    pub description: String,
    /// The capability SIDs in `SECURITY_CAPABILITIES` (always empty: no network
    /// capability, no library or device access).
    pub capabilities: Vec<String>,
    /// The program, as written in the ACL grants.
    pub program: String,
    /// Whether the connector may create processes.
    pub child_processes: ChildProcesses,
    /// The ACL grants to the container's SID, sorted by path.
    pub filesystem: Vec<FileGrant>,
    /// What the connector may reach.
    pub network: Network,
    /// The job object the connector runs in.
    pub job: JobLimits,
}

/// Whether a connector may create processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildProcesses {
    /// It may, up to [`JobLimits::active_process_limit`].
    Allowed,
    /// `deny_exec`: `PROC_THREAD_ATTRIBUTE_CHILD_PROCESS_POLICY` is
    /// `PROCESS_CREATION_CHILD_PROCESS_RESTRICTED`, and the job allows one process.
    Denied,
}

/// A right an ACL grant gives the container's SID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRight {
    /// `FILE_GENERIC_READ`: read files, list directories.
    Read,
    /// `FILE_GENERIC_WRITE | DELETE | FILE_DELETE_CHILD`: write, create and delete.
    Write,
    /// `FILE_GENERIC_EXECUTE`: run programs and load DLLs.
    Execute,
}

/// One explicit allow ACE for the container's SID, inherited by files and directories
/// below the path (`OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGrant {
    /// The path (normal, absolute).
    pub path: String,
    /// The rights.
    pub rights: BTreeSet<FileRight>,
    /// Why it is granted (the first reason, when a path is named twice).
    pub origin: BindOrigin,
}

/// What a connector may reach over the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Network {
    /// Nothing: no capability and no loopback exemption.
    None,
    /// Only the egress proxy, over TCP on loopback.
    LoopbackProxy {
        /// The proxy's port.
        port: NonZeroU16,
        /// The container is exempt from loopback isolation
        /// (`NetworkIsolationSetAppContainerConfig`); that opens every loopback port…
        loopback_exemption: bool,
        /// …so these firewall rules, scoped to the container's SID, block every other one.
        /// (Windows Firewall lets a block rule win over any allow rule, so the proxy is
        /// what the blocks leave out.)
        outbound_blocks: Vec<FirewallBlock>,
    },
}

/// An outbound Windows Firewall block rule for the container's package SID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallBlock {
    /// The rule's name; it starts with the container name, so a launcher finds its rules.
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The remote addresses.
    pub remote_addresses: Vec<String>,
    /// The remote ports; empty means every port.
    pub remote_ports: Vec<PortRange>,
}

/// A transport protocol of a firewall rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// An inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port.
    pub last: u16,
}

/// The limits of the job object the connector is assigned to before it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// `JOB_OBJECT_LIMIT_JOB_MEMORY` in bytes (`memory_mb`); `None` for the manifest's 0.
    pub job_memory_bytes: Option<u64>,
    /// `JOBOBJECT_CPU_RATE_CONTROL_INFORMATION::CpuRate` with `ENABLE | HARD_CAP`: the
    /// share of the whole machine in hundredths of a percent (1–10000), that is
    /// `cpu_percent` × 100 divided by the processors, rounded up.
    pub cpu_rate: u32,
    /// `JOB_OBJECT_LIMIT_ACTIVE_PROCESS`: 1 with `deny_exec`, else the jail's pids limit.
    pub active_process_limit: u32,
    /// `wall_clock_timeout_ms`, enforced by the supervisor.
    pub wall_clock_ms: u64,
    /// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: the connector dies with the supervisor's handle.
    pub kill_on_job_close: bool,
    /// `JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION`: no error dialog.
    pub die_on_unhandled_exception: bool,
    /// `JOBOBJECT_BASIC_UI_RESTRICTIONS`.
    pub ui_restrictions: Vec<UiRestriction>,
}

/// A `JOB_OBJECT_UILIMIT_*` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiRestriction {
    /// `DESKTOP`: no desktop switching or creation.
    Desktop,
    /// `DISPLAYSETTINGS`.
    DisplaySettings,
    /// `EXITWINDOWS`: no logoff or shutdown.
    ExitWindows,
    /// `GLOBALATOMS`: its own atom table.
    GlobalAtoms,
    /// `HANDLES`: no USER handles of processes outside the job.
    Handles,
    /// `READCLIPBOARD`.
    ReadClipboard,
    /// `SYSTEMPARAMETERS`.
    SystemParameters,
    /// `WRITECLIPBOARD`.
    WriteClipboard,
}

impl UiRestriction {
    /// Every restriction; a connector gets all of them.
    pub const ALL: [UiRestriction; 8] = [
        UiRestriction::Desktop,
        UiRestriction::DisplaySettings,
        UiRestriction::ExitWindows,
        UiRestriction::GlobalAtoms,
        UiRestriction::Handles,
        UiRestriction::ReadClipboard,
        UiRestriction::SystemParameters,
        UiRestriction::WriteClipboard,
    ];
}

/// The longest container name `CreateAppContainerProfile` accepts.
pub const MAX_CONTAINER_NAME: usize = 64;

/// The loopback addresses the firewall blocks cover.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1"];

/// Compiles `sandbox` into the AppContainer profile of one connector instance. See the
/// module docs.
pub fn compile(sandbox: &SandboxSection, inputs: &AppContainerInputs) -> Result<AppContainerProfile, PlatformError> {
    use FileRight::{Execute, Read, Write};

    let program = windows_path(&inputs.program)?;
    let state_dir = windows_path(&inputs.state_dir)?;
    let mut grants: Vec<FileGrant> = Vec::new();
    let mut state_writable = false;
    for path in &sandbox.fs_writable_paths {
        let (path, is_state_dir) = resolve(path, &state_dir)?;
        state_writable |= is_state_dir;
        grant(&mut grants, path, &[Read, Write], BindOrigin::WritablePath);
    }
    let readonly: &[FileRight] = if sandbox.deny_exec { &[Read] } else { &[Read, Execute] };
    for path in &sandbox.fs_readonly_paths {
        let (path, _) = resolve(path, &state_dir)?;
        grant(&mut grants, path, readonly, BindOrigin::ReadonlyPath);
    }
    if !state_writable {
        grant(&mut grants, state_dir.clone(), &[Read], BindOrigin::StateDir);
    }
    grant(&mut grants, program.clone(), &[Read, Execute], BindOrigin::Program);
    for library in &inputs.libraries {
        grant(&mut grants, windows_path(library)?, &[Read, Execute], BindOrigin::Library);
    }
    grants.sort_by(|a, b| a.path.cmp(&b.path));

    let container_name = container_name(&inputs.connector_id, &state_dir);
    let network = match inputs.egress {
        Egress::None => Network::None,
        Egress::LoopbackProxy { port } => Network::LoopbackProxy {
            port,
            loopback_exemption: true,
            outbound_blocks: vec![
                FirewallBlock {
                    name: format!("{container_name}: tcp to loopback but the egress proxy"),
                    protocol: Protocol::Tcp,
                    remote_addresses: LOOPBACK.map(str::to_owned).to_vec(),
                    remote_ports: ports_except(port),
                },
                FirewallBlock {
                    name: format!("{container_name}: udp to loopback"),
                    protocol: Protocol::Udp,
                    remote_addresses: LOOPBACK.map(str::to_owned).to_vec(),
                    remote_ports: Vec::new(),
                },
            ],
        },
    };
    let cpu_rate = (u32::from(sandbox.cpu_percent.max(1)) * 100).div_ceil(inputs.processors.get()).clamp(1, 10_000);
    let id = inputs.connector_id.as_str();
    Ok(AppContainerProfile {
        container_name,
        display_name: format!("FCP connector {id}"),
        description: format!("FCP connector {id}, confined as its [sandbox] section says"),
        capabilities: Vec::new(),
        program,
        child_processes: if sandbox.deny_exec { ChildProcesses::Denied } else { ChildProcesses::Allowed },
        filesystem: grants,
        network,
        job: JobLimits {
            job_memory_bytes: (sandbox.memory_mb > 0).then(|| u64::from(sandbox.memory_mb) << 20),
            cpu_rate,
            active_process_limit: if sandbox.deny_exec { 1 } else { JailLimits::DEFAULT_PIDS_MAX },
            wall_clock_ms: sandbox.wall_clock_timeout_ms,
            kill_on_job_close: true,
            die_on_unhandled_exception: true,
            ui_restrictions: UiRestriction::ALL.to_vec(),
        },
    })
}

/// Adds `rights` for `path`, to the grant already there if the path is named twice.
fn grant(grants: &mut Vec<FileGrant>, path: String, rights: &[FileRight], origin: BindOrigin) {
    match grants.iter_mut().find(|g| g.path == path) {
        Some(existing) => existing.rights.extend(rights),
        None => grants.push(FileGrant { path, rights: rights.iter().copied().collect(), origin }),
    }
}

/// A manifest path as a normal Windows path, and whether it is the state dir itself.
fn resolve(path: &SandboxPath, state_dir: &str) -> Result<(String, bool), PlatformError> {
    let resolved = match path {
        SandboxPath::Absolute(text) => windows_path(text)?,
        SandboxPath::ConnectorState(sub) if sub.is_empty() => state_dir.to_owned(),
        SandboxPath::ConnectorState(sub) => windows_path(&format!("{state_dir}\\{sub}"))?,
    };
    let is_state_dir = resolved == state_dir;
    Ok((resolved, is_state_dir))
}

/// `text` as a normal absolute Windows path: `X:\a\b` (the drive letter upper-cased) or
/// `\\server\share\a`, `/` read as `\`, empty and `.` components dropped. See the module
/// docs for what is refused.
fn windows_path(text: &str) -> Result<String, PlatformError> {
    refuse_control(text)?;
    let unnormal = || PlatformError::UnnormalPath { path: text.to_owned() };
    let slashed = text.replace('/', "\\");
    let (mut out, rest) = if let Some(unc) = slashed.strip_prefix("\\\\") {
        let mut parts = unc.splitn(3, '\\');
        let (server, share) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        if matches!(server, "?" | ".") || !component(server) || !component(share) {
            return Err(unnormal());
        }
        (format!("\\\\{server}\\{share}"), parts.next().unwrap_or_default())
    } else {
        match slashed.as_bytes() {
            [drive, b':', b'\\', ..] if drive.is_ascii_alphabetic() => {
                (format!("{}:", char::from(drive.to_ascii_uppercase())), slashed.get(3..).unwrap_or_default())
            }
            _ => return Err(PlatformError::RelativePath { path: text.to_owned() }),
        }
    };
    let mut named = false;
    for name in rest.split('\\').filter(|n| !n.is_empty() && *n != ".") {
        if name == ".." || !component(name) {
            return Err(unnormal());
        }
        out.push('\\');
        out.push_str(name);
        named = true;
    }
    if !named {
        return Err(PlatformError::ForbiddenPath { path: text.to_owned() });
    }
    Ok(out)
}

/// Whether `name` can be one component of a Windows path as written: non-empty, none of
/// `<>:"|?*`, not ending in a dot or a space (Windows would strip those, so the grant
/// would name another file).
fn component(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['<', '>', ':', '"', '|', '?', '*'])
        && !name.ends_with('.')
        && !name.ends_with(' ')
}

/// `fcp.<id, ':' as '-', at most 43 characters>.<first 8 bytes of a BLAKE3 key derivation
/// over the id and the state dir, in hex>`: at most 64 characters of `[-_.a-z0-9]`.
fn container_name(id: &CanonicalId, state_dir: &str) -> String {
    const READABLE: usize = MAX_CONTAINER_NAME - "fcp.".len() - ".".len() - 16;
    let mut hasher = blake3::Hasher::new_derive_key("fcp-policy 2025 appcontainer name v1");
    hasher.update(id.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(state_dir.as_bytes());
    let digest = hasher.finalize();
    let readable: String = id.as_str().chars().take(READABLE).map(|c| if c == ':' { '-' } else { c }).collect();
    format!("fcp.{readable}.{}", hex::encode(digest.as_bytes().get(..8).unwrap_or_default()))
}

/// Every port but `port`, as ranges.
fn ports_except(port: NonZeroU16) -> Vec<PortRange> {
    let port = port.get();
    let mut ranges = Vec::new();
    if port > 1 {
        ranges.push(PortRange { first: 1, last: port - 1 });
    }
    if port < u16::MAX {
        ranges.push(PortRange { first: port + 1, last: u16::MAX });
    }
    ranges
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::SandboxProfile;

    fn section() -> SandboxSection {
        SandboxSection {
            profile: SandboxProfile::Strict,
            memory_mb: 64,
            cpu_percent: 20,
            wall_clock_timeout_ms: 1000,
            fs_readonly_paths: vec![SandboxPath::Absolute("C:\\ProgramData\\fcp\\shared".into())],
            fs_writable_paths: vec![SandboxPath::ConnectorState(String::new())],
            deny_exec: true,
            deny_ptrace: true,
        }
    }

    fn inputs() -> AppContainerInputs {
        AppContainerInputs {
            connector_id: CanonicalId::new("fcp.echo").expect("canonical"),
            program: "C:\\Program Files\\FCP\\fcp-echo.exe".into(),
            libraries: Vec::new(),
            state_dir: "C:\\ProgramData\\fcp\\state\\fcp.echo-1".into(),
            processors: NonZeroU32::new(4).expect("non-zero"),
            egress: Egress::None,
        }
    }

    fn profile_with(edit: impl FnOnce(&mut SandboxSection)) -> Result<AppContainerProfile, PlatformError> {
        let mut s = section();
        edit(&mut s);
        compile(&s, &inputs())
    }

    fn rights(profile: &AppContainerProfile, path: &str) -> Option<Vec<FileRight>> {
        profile.filesystem.iter().find(|g| g.path == path).map(|g| g.rights.iter().copied().collect())
    }

    #[test]
    fn windows_paths_are_normalised() {
        for (given, want) in [
            ("C:\\a\\b", "C:\\a\\b"),
            ("c:/a/b/", "C:\\a\\b"),
            ("D:\\a\\\\.\\b", "D:\\a\\b"),
            ("\\\\srv\\share\\dir", "\\\\srv\\share\\dir"),
            ("//srv/share/dir/x y", "\\\\srv\\share\\dir\\x y"),
            ("C:\\Program Files (x86)\\Ünï", "C:\\Program Files (x86)\\Ünï"),
        ] {
            assert_eq!(windows_path(given), Ok(want.to_owned()), "{given}");
        }
    }

    #[test]
    fn bad_windows_paths_are_refused() {
        for relative in ["/usr", "\\usr", "C:", "C:relative", "relative\\x", "", "1:\\x"] {
            assert_eq!(
                windows_path(relative),
                Err(PlatformError::RelativePath { path: relative.into() }),
                "{relative}"
            );
        }
        for unnormal in [
            "C:\\a\\..\\b",
            "C:\\a:b",
            "C:\\a\\b.",
            "C:\\a\\b ",
            "C:\\a\\*",
            "C:\\a\\\"b\"",
            "\\\\?\\C:\\x",
            "\\\\.\\pipe\\x",
            "\\\\srv",
            "\\\\srv\\\\x",
        ] {
            assert_eq!(
                windows_path(unnormal),
                Err(PlatformError::UnnormalPath { path: unnormal.into() }),
                "{unnormal}"
            );
        }
        for root in ["C:\\", "c:/", "C:\\.\\", "\\\\srv\\share", "\\\\srv\\share\\"] {
            assert_eq!(windows_path(root), Err(PlatformError::ForbiddenPath { path: root.into() }), "{root}");
        }
        assert_eq!(windows_path("C:\\a\0"), Err(PlatformError::NulInPath { path: "C:\\a\0".into() }));
        assert_eq!(windows_path("C:\\a\nb"), Err(PlatformError::ControlCharacter { path: "C:\\a\nb".into() }));
    }

    #[test]
    fn bad_manifest_paths_and_inputs_are_refused() {
        let posix = profile_with(|s| s.fs_readonly_paths = vec![SandboxPath::Absolute("/usr".into())]);
        assert_eq!(posix, Err(PlatformError::RelativePath { path: "/usr".into() }));
        let escape = profile_with(|s| s.fs_writable_paths = vec![SandboxPath::ConnectorState("a/../../x".into())]);
        assert!(matches!(escape, Err(PlatformError::UnnormalPath { .. })), "{escape:?}");
        let mut bad = inputs();
        bad.state_dir = "state".into();
        assert_eq!(compile(&section(), &bad), Err(PlatformError::RelativePath { path: "state".into() }));
        let mut bad = inputs();
        bad.libraries = vec!["C:\\x\\..\\y.dll".into()];
        assert!(matches!(compile(&section(), &bad), Err(PlatformError::UnnormalPath { .. })));
    }

    #[test]
    fn deny_exec_denies_children_and_execute() {
        let profile = profile_with(|s| s.deny_exec = true).expect("profile");
        assert_eq!(profile.child_processes, ChildProcesses::Denied);
        assert_eq!(profile.job.active_process_limit, 1);
        assert_eq!(rights(&profile, "C:\\ProgramData\\fcp\\shared"), Some(vec![FileRight::Read]));
        assert_eq!(
            rights(&profile, "C:\\Program Files\\FCP\\fcp-echo.exe"),
            Some(vec![FileRight::Read, FileRight::Execute])
        );

        let profile = profile_with(|s| s.deny_exec = false).expect("profile");
        assert_eq!(profile.child_processes, ChildProcesses::Allowed);
        assert_eq!(profile.job.active_process_limit, JailLimits::DEFAULT_PIDS_MAX);
        assert_eq!(rights(&profile, "C:\\ProgramData\\fcp\\shared"), Some(vec![FileRight::Read, FileRight::Execute]));
    }

    #[test]
    fn only_writable_paths_are_writable_and_never_executable() {
        let state = "C:\\ProgramData\\fcp\\state\\fcp.echo-1";
        let profile = profile_with(|_| {}).expect("profile");
        assert_eq!(rights(&profile, state), Some(vec![FileRight::Read, FileRight::Write]));
        let writable: Vec<&str> = profile
            .filesystem
            .iter()
            .filter(|g| g.rights.contains(&FileRight::Write))
            .map(|g| g.path.as_str())
            .collect();
        assert_eq!(writable, [state]);

        let profile = profile_with(|s| s.fs_writable_paths = vec![SandboxPath::ConnectorState("cache/x".into())])
            .expect("profile");
        assert_eq!(rights(&profile, state), Some(vec![FileRight::Read]));
        let cache = "C:\\ProgramData\\fcp\\state\\fcp.echo-1\\cache\\x";
        assert_eq!(rights(&profile, cache), Some(vec![FileRight::Read, FileRight::Write]));
        assert_eq!(profile.filesystem.iter().find(|g| g.path == state).map(|g| g.origin), Some(BindOrigin::StateDir));
    }

    #[test]
    fn a_path_named_twice_gets_one_grant_with_both_rights() {
        let profile = profile_with(|s| {
            s.deny_exec = false;
            s.fs_writable_paths = vec![SandboxPath::Absolute("D:\\data".into())];
            s.fs_readonly_paths = vec![SandboxPath::Absolute("d:/data/".into())];
        })
        .expect("profile");
        let data: Vec<&FileGrant> = profile.filesystem.iter().filter(|g| g.path == "D:\\data").collect();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].rights, [FileRight::Read, FileRight::Write, FileRight::Execute].into());
        assert_eq!(data[0].origin, BindOrigin::WritablePath);
    }

    #[test]
    fn no_capability_and_network_only_to_the_proxy() {
        let profile = profile_with(|_| {}).expect("profile");
        assert!(profile.capabilities.is_empty());
        assert_eq!(profile.network, Network::None);

        let mut with_proxy = inputs();
        with_proxy.egress = Egress::LoopbackProxy { port: NonZeroU16::new(3128).expect("non-zero") };
        let profile = compile(&section(), &with_proxy).expect("profile");
        assert!(profile.capabilities.is_empty());
        let Network::LoopbackProxy { port, loopback_exemption, outbound_blocks } = &profile.network else {
            panic!("{:?}", profile.network)
        };
        assert_eq!((port.get(), *loopback_exemption), (3128, true));
        assert_eq!(outbound_blocks[0].protocol, Protocol::Tcp);
        assert_eq!(
            outbound_blocks[0].remote_ports,
            [PortRange { first: 1, last: 3127 }, PortRange { first: 3129, last: 65535 }]
        );
        assert_eq!((outbound_blocks[1].protocol, outbound_blocks[1].remote_ports.len()), (Protocol::Udp, 0));
        for block in outbound_blocks {
            assert_eq!(block.remote_addresses, ["127.0.0.0/8", "::1"]);
            assert!(block.name.starts_with(&profile.container_name));
        }
    }

    #[test]
    fn the_ports_left_open_are_exactly_the_proxy() {
        for port in [1u16, 2, 80, 3128, 65534, 65535] {
            let ranges = ports_except(NonZeroU16::new(port).expect("non-zero"));
            let blocked = |p: u16| ranges.iter().any(|r| (r.first..=r.last).contains(&p));
            assert!(!blocked(port), "{port}");
            for other in [1u16, 2, 79, 81, 3127, 3129, 65534, 65535].into_iter().filter(|p| *p != port) {
                assert!(blocked(other), "{other} with the proxy on {port}");
            }
            assert!(ranges.iter().all(|r| r.first <= r.last && r.first >= 1));
        }
    }

    #[test]
    fn job_limits_follow_the_manifest() {
        let profile = profile_with(|_| {}).expect("profile");
        assert_eq!(profile.job.job_memory_bytes, Some(64 << 20));
        assert_eq!(profile.job.cpu_rate, 500, "20% of one core is 5% of four");
        assert_eq!(profile.job.wall_clock_ms, 1000);
        assert!(profile.job.kill_on_job_close && profile.job.die_on_unhandled_exception);
        assert_eq!(profile.job.ui_restrictions, UiRestriction::ALL);

        let rate = |percent: u8, processors: u32| {
            let mut i = inputs();
            i.processors = NonZeroU32::new(processors).expect("non-zero");
            let s = SandboxSection { cpu_percent: percent, memory_mb: 0, ..section() };
            compile(&s, &i).map(|p| (p.job.cpu_rate, p.job.job_memory_bytes))
        };
        assert_eq!(rate(100, 1), Ok((10_000, None)));
        assert_eq!(rate(255, 1), Ok((10_000, None)), "capped at the whole machine");
        assert_eq!(rate(1, 64), Ok((2, None)), "rounded up");
        assert_eq!(rate(0, 3), Ok((34, None)), "a 0 from a hand-built section counts as 1%");
        assert_eq!(rate(150, 2), Ok((7_500, None)));
    }

    #[test]
    fn container_names_are_deterministic_and_distinct_per_instance() {
        let id = CanonicalId::new("fcp.echo").expect("canonical");
        let a = container_name(&id, "C:\\state\\1");
        assert_eq!(a, container_name(&id, "C:\\state\\1"));
        assert_ne!(a, container_name(&id, "C:\\state\\2"));
        assert!(a.starts_with("fcp.fcp.echo."), "{a}");
        let long = CanonicalId::new(&format!("org:{}", "x".repeat(124))).expect("canonical");
        let name = container_name(&long, "C:\\s");
        assert_eq!(name.len(), MAX_CONTAINER_NAME);
        assert!(name.starts_with("fcp.org-xxx"), "{name}");
    }

    #[test]
    fn the_profile_round_trips_through_json() {
        let mut i = inputs();
        i.egress = Egress::LoopbackProxy { port: NonZeroU16::new(8080).expect("non-zero") };
        let profile = compile(&section(), &i).expect("profile");
        let json = serde_json::to_string_pretty(&profile).expect("serializes");
        assert_eq!(serde_json::from_str::<AppContainerProfile>(&json).expect("parses"), profile);
        let mut value = serde_json::to_value(&profile).expect("serializes");
        value["surprise"] = serde_json::json!(true);
        assert!(serde_json::from_value::<AppContainerProfile>(value).is_err(), "unknown fields are refused");
    }

    proptest! {
        #[test]
        fn container_names_follow_the_appcontainer_rules(id in "[a-z0-9][a-z0-9._:-]{0,127}", state in "\\PC{0,40}") {
            let id = CanonicalId::new(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let name = container_name(&id, &state);
            prop_assert!(name.len() <= MAX_CONTAINER_NAME, "{}", name);
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')), "{}", name);
        }

        #[test]
        fn arbitrary_paths_never_panic_and_come_out_normal(text in any::<String>(), drive: bool) {
            let text = if drive { format!("C:\\{text}") } else { text };
            if let Ok(path) = windows_path(&text) {
                prop_assert!(!path.chars().any(|c| c.is_control() || c == '/'), "{:?}", path);
                prop_assert!(path.starts_with("\\\\") || path.as_bytes().get(1..3) == Some(b":\\"), "{:?}", path);
                prop_assert_eq!(windows_path(&path), Ok(path.clone()), "normalising is idempotent");
                let names = path.trim_start_matches('\\').split('\\').skip(1);
                for name in names {
                    prop_assert!(component(name) && name != "." && name != "..", "{:?} in {:?}", name, path);
                }
            }
            let mut s = section();
            s.fs_readonly_paths = vec![SandboxPath::Absolute(text)];
            let _ = compile(&s, &inputs());
        }
    }
}
