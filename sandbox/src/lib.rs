//! FCP sandbox: starts a connector behind the [`Sandbox`] trait and applies its
//! hardening between fork and exec. Synchronous (no tokio); it parses no manifest (the
//! caller passes a parsed [`fcp_policy::manifest::Manifest`] to
//! [`SpawnSpec::from_manifest`]).
//!
//! - [`SpawnSpec`]: program, arguments, exact environment, state dir, [`Limits`],
//!   [`Isolation`] and the owner's [`Degradation`] policy.
//! - [`Sandbox`]: the backend interface; [`Jailed`] is a running connector.
//! - [`PlainProcess`]: a plain child process with the hygiene that needs no privilege
//!   (environment, fds, death signal, process group, rlimits, no_new_privs). It reports
//!   the layers it does not apply and refuses to spawn unless the spec's degradation
//!   policy allows them missing (house style §3.2 point 9).
//! - [`RecordingSandbox`]: a fake for the supervisor's unit tests, passed in explicitly.
//!
//! - [`LinuxJail`] (Linux): the full jail, installing a compiled
//!   [`fcp_policy::jail::JailPlan`] (namespaces, pivot_root, Landlock, seccomp,
//!   capability drop, cgroups), and [`escape`], the attempts of the escape probe.
//! - `Seatbelt` (macOS): the plain process confined by a seatbelt profile compiled from
//!   the same section ([`fcp_policy::platform::seatbelt`]); not yet run on a Mac.
//! - `AppContainer` (Windows): computes the AppContainer profile
//!   ([`fcp_policy::platform::appcontainer`]); launching is not implemented, its spawn
//!   fails with [`SandboxError::Unsupported`].
//!
//! All unsafe code lives in `src/sys/` and `src/linux/sys.rs`.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod breach;
mod error;
mod jailed;
mod layers;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
mod pipe;
mod plain;
mod prexec;
mod recording;
mod spec;
mod state_dir;
#[allow(unsafe_code)]
mod sys;
#[cfg(windows)]
mod windows;

pub use breach::{Breach, LimitCounters, Syscall};
pub use error::SandboxError;
pub use jailed::{Jailed, Outcome};
pub use layers::{Degradation, Layer, Layers};
#[cfg(target_os = "linux")]
pub use linux::{escape, LinuxJail};
#[cfg(target_os = "macos")]
pub use macos::Seatbelt;
pub use plain::PlainProcess;
pub use recording::{RecordedChild, RecordingSandbox};
pub use spec::{Environment, Isolation, JailNetwork, Limits, Resource, SpawnSpec, CONNECTOR_STATE_VAR};
#[cfg(windows)]
pub use windows::AppContainer;

/// A backend that starts connectors. Implementations: [`PlainProcess`] and
/// [`RecordingSandbox`]; the full jail comes later. Callers hold it as `&dyn Sandbox` or
/// a generic and never pick one by `cfg!(test)`.
pub trait Sandbox {
    /// Starts the connector of `spec`. Fails closed: if the backend cannot put a layer in
    /// force and `spec`'s [`Degradation`] does not allow it missing, or any hardening
    /// step fails, nothing runs.
    fn spawn(&self, spec: &SpawnSpec) -> Result<Jailed, SandboxError>;

    /// The backend's name, for audit records.
    fn name(&self) -> &'static str;

    /// The layers this backend puts in force around every connector it spawns.
    fn layers(&self) -> Layers;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn backends_are_objects_that_cross_threads() {
        send_sync::<PlainProcess>();
        send_sync::<RecordingSandbox>();
        send::<Jailed>();
        send_sync::<SpawnSpec>();
        let backends: [&dyn Sandbox; 2] = [&PlainProcess::new(), &RecordingSandbox::new(Layers::ALL)];
        let names: Vec<_> = backends.iter().map(|b| (b.name(), b.layers())).collect();
        assert_eq!(names, [("plain", PlainProcess::LAYERS), ("recording", Layers::ALL)]);
    }
}
