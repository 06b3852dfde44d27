//! The same `[sandbox]` policy for the operating systems that have no Linux jail: pure
//! translations into the confinement macOS and Windows offer (spec/sandbox-platforms.md).
//!
//! - [`seatbelt`]: macOS. The section and the [`JailInputs`](crate::jail::JailInputs)
//!   the Linux jail gets, compiled by [`crate::jail::compile_section`] (so the same
//!   paths are refused and `$CONNECTOR_STATE` resolves the same way), written out as a
//!   seatbelt profile (SBPL) for `sandbox_init`.
//! - [`appcontainer`]: Windows. The section with Windows host paths, as an AppContainer
//!   profile: container name, capabilities (none), file ACL grants, the loopback rule for
//!   the egress proxy and job-object limits, as serializable data.
//!
//! Both take the connector's network as an [`Egress`]: nothing, or only the egress proxy
//! on loopback. Pure: they read no file and resolve no name; a backend canonicalises
//! host paths before it calls them.

pub mod appcontainer;
pub mod seatbelt;

use std::num::NonZeroU16;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::jail::JailPlanError;

/// Where a connector may open network connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Egress {
    /// Nowhere.
    None,
    /// Only TCP to the egress proxy, which listens on the loopback interface.
    LoopbackProxy {
        /// The proxy's port.
        port: NonZeroU16,
    },
}

/// Why a `[sandbox]` section cannot be translated for a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The section cannot be compiled into the jail plan the translation starts from.
    #[error("compile the jail plan")]
    CompileJail {
        /// The cause.
        #[source]
        source: JailPlanError,
    },
    /// A path is not absolute.
    #[error("path {path:?} is not absolute")]
    RelativePath {
        /// The path as given.
        path: String,
    },
    /// A path holds a NUL byte.
    #[error("path {path:?} holds a nul byte")]
    NulInPath {
        /// The path as given.
        path: String,
    },
    /// A path holds a control character other than NUL (a newline, a tab, DEL …).
    #[error("path {path:?} holds a control character")]
    ControlCharacter {
        /// The path as given.
        path: String,
    },
    /// A path is not UTF-8, so no profile can name it.
    #[error("path {path:?} is not utf-8")]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// A path is absolute but not normal: a `.` or `..` component, an empty one, a
    /// trailing separator, or (on Windows) a reserved character, a name ending in a dot
    /// or a space, or a `\\?\` or `\\.\` prefix.
    #[error("path {path:?} is not a normal path")]
    UnnormalPath {
        /// The path as given.
        path: String,
    },
    /// A path names the root of a drive or share, which is never granted.
    #[error("path {path:?} is the root of a drive or share")]
    ForbiddenPath {
        /// The path as given.
        path: String,
    },
}

/// Refuses a path holding NUL (reported as such) or any other control character (C0 or
/// DEL): no profile may hold one.
fn refuse_control(path: &str) -> Result<(), PlatformError> {
    if path.contains('\0') {
        return Err(PlatformError::NulInPath { path: path.to_owned() });
    }
    if path.chars().any(|c| c.is_ascii_control()) {
        return Err(PlatformError::ControlCharacter { path: path.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_serializes_with_its_kind() {
        let proxy = Egress::LoopbackProxy { port: NonZeroU16::new(3128).expect("non-zero") };
        assert_eq!(
            serde_json::to_value(proxy).expect("json"),
            serde_json::json!({"kind": "loopback_proxy", "port": 3128})
        );
        assert_eq!(serde_json::to_value(Egress::None).expect("json"), serde_json::json!({"kind": "none"}));
        let back: Egress =
            serde_json::from_value(serde_json::json!({"kind": "loopback_proxy", "port": 3128})).expect("parses");
        assert_eq!(back, proxy);
        assert!(serde_json::from_value::<Egress>(serde_json::json!({"kind": "loopback_proxy", "port": 0})).is_err());
    }

    #[test]
    fn control_characters_are_refused_nul_first() {
        assert_eq!(refuse_control("/a/b c\"d\\e"), Ok(()));
        assert_eq!(refuse_control("/a\0\n"), Err(PlatformError::NulInPath { path: "/a\0\n".into() }));
        for bad in ["/a\nb", "/a\rb", "/a\tb", "/a\u{7f}b", "/a\u{1b}b"] {
            assert_eq!(refuse_control(bad), Err(PlatformError::ControlCharacter { path: bad.into() }), "{bad:?}");
        }
        assert_eq!(
            PlatformError::NulInPath { path: "/a\0".into() }.to_string(),
            "path \"/a\\0\" holds a nul byte",
            "the message shows the path escaped"
        );
    }
}
