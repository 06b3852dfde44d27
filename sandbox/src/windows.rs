//! [`AppContainer`] (Windows): **the launch is not implemented yet.** The translation of
//! a connector's `[sandbox]` section into an AppContainer profile is
//! ([`fcp_policy::platform::appcontainer`], tested against golden files);
//! [`AppContainer::profile`] computes it for a spec, and [`Sandbox::spawn`] fails with
//! [`SandboxError::Unsupported`] and starts nothing. Nothing here could be compiled or
//! run (this workspace builds on Linux only, and the crate's other modules use Unix APIs),
//! so the steps below are written down rather than guessed at in untested unsafe code.
//!
//! A launch will, in this order, from an [`AppContainerProfile`]:
//!
//! 1. `CreateAppContainerProfile(container_name, display_name, description, no
//!    capabilities)`; on `ERROR_ALREADY_EXISTS`, `DeriveAppContainerSidFromAppContainerName`.
//! 2. For each [`FileGrant`](fcp_policy::platform::appcontainer::FileGrant): an allow ACE
//!    for the container's SID, inherited by files and directories below
//!    (`GetNamedSecurityInfoW`, `SetEntriesInAclW`, `SetNamedSecurityInfoW`); the ACEs
//!    are removed with the instance.
//! 3. For [`Network::LoopbackProxy`](fcp_policy::platform::appcontainer::Network): the
//!    container's loopback exemption (`NetworkIsolationSetAppContainerConfig`) and the
//!    firewall block rules for its package SID (`INetFwPolicy2`), before the process
//!    starts; none of either for [`Network::None`](fcp_policy::platform::appcontainer::Network).
//! 4. A job object (`CreateJobObjectW`) with
//!    `JOBOBJECT_EXTENDED_LIMIT_INFORMATION` (job memory, active processes,
//!    kill-on-job-close, die-on-unhandled-exception), `JOBOBJECT_CPU_RATE_CONTROL_INFORMATION`
//!    (`ENABLE | HARD_CAP`, the profile's rate) and `JOBOBJECT_BASIC_UI_RESTRICTIONS`.
//! 5. A `PROC_THREAD_ATTRIBUTE_LIST` with `PROC_THREAD_ATTRIBUTE_SECURITY_CAPABILITIES`
//!    (`SECURITY_CAPABILITIES { AppContainerSid, Capabilities: NULL, CapabilityCount: 0 }`),
//!    `PROC_THREAD_ATTRIBUTE_JOB_LIST` (the process starts inside the job, no race),
//!    `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` (only the three stdio pipe handles are
//!    inherited) and, when child processes are denied,
//!    `PROC_THREAD_ATTRIBUTE_CHILD_PROCESS_POLICY = PROCESS_CREATION_CHILD_PROCESS_RESTRICTED`.
//! 6. `CreateProcessW` of the program with `EXTENDED_STARTUPINFO_PRESENT |
//!    CREATE_UNICODE_ENVIRONMENT`, the spec's exact environment block and the state dir as
//!    working directory; the wall clock is the supervisor's, as on Linux.
//!
//! Every step must succeed or the launch fails and undoes the earlier ones (fail closed).

use std::num::NonZeroU32;
use std::path::Path;

use fcp_policy::manifest::Manifest;
use fcp_policy::platform::appcontainer::{self, AppContainerInputs, AppContainerProfile};
use fcp_policy::platform::{Egress, PlatformError};

use crate::error::SandboxError;
use crate::jailed::Jailed;
use crate::layers::Layers;
use crate::spec::SpawnSpec;
use crate::Sandbox;

/// The Windows backend. It computes AppContainer profiles but cannot launch connectors
/// yet: [`Sandbox::spawn`] always fails with [`SandboxError::Unsupported`]. See the
/// module docs for the launch steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppContainer {
    egress: Egress,
    processors: NonZeroU32,
}

impl AppContainer {
    /// The backend's name.
    pub const NAME: &'static str = "windows-appcontainer";

    /// The layers of [`Layer`](crate::Layer) this backend puts in force: none yet.
    pub const LAYERS: Layers = Layers::EMPTY;

    /// What [`Sandbox::spawn`] says.
    pub const NOT_IMPLEMENTED: &'static str = "launching a connector in an app container is not implemented; \
         the profile translation is (AppContainer::profile)";

    /// The backend: connectors may reach `egress` and nothing else; `processors` is the
    /// machine's count of logical processors (the job's CPU rate is a share of all of them).
    pub fn new(egress: Egress, processors: NonZeroU32) -> AppContainer {
        AppContainer { egress, processors }
    }

    /// The profile of `manifest`'s connector started as `spec` (built with
    /// [`SpawnSpec::from_manifest`]): the container name comes from the manifest's id,
    /// everything else from the spec, as for the Linux jail.
    pub fn profile(&self, manifest: &Manifest, spec: &SpawnSpec) -> Result<AppContainerProfile, SandboxError> {
        let inputs = AppContainerInputs {
            connector_id: manifest.connector.id.clone(),
            program: text(spec.program())?,
            libraries: Vec::new(),
            state_dir: text(spec.state_dir())?,
            processors: self.processors,
            egress: self.egress,
        };
        appcontainer::compile(&spec.sandbox_section(), &inputs)
            .map_err(|source| SandboxError::CompileAppContainer { source })
    }
}

impl Sandbox for AppContainer {
    fn spawn(&self, _spec: &SpawnSpec) -> Result<Jailed, SandboxError> {
        Err(SandboxError::Unsupported { backend: Self::NAME, reason: Self::NOT_IMPLEMENTED })
    }

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn layers(&self) -> Layers {
        Self::LAYERS
    }
}

/// A host path as the UTF-8 text the profile holds.
fn text(path: &Path) -> Result<String, SandboxError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| SandboxError::CompileAppContainer { source: PlatformError::NotUtf8 { path: path.to_owned() } })
}
