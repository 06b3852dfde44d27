//! Connector manifests (digest §11).

/// Vector cases of the manifest kinds.
pub mod vectors {
    use crate::conformance::Loader;

    /// Runs one `interface_hash` case.
    pub fn interface_hash(_case: &serde_json::Value, _load: Loader<'_>) -> Result<(), String> {
        Err("this kind has no implementation in this build".into())
    }

    /// Runs one `manifest_validation` case.
    pub fn manifest_validation(_case: &serde_json::Value, _load: Loader<'_>) -> Result<(), String> {
        Err("this kind has no implementation in this build".into())
    }
}
