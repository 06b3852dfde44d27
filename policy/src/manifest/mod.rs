//! Connector manifests (digest §11): parsed, validated and hashed.
//!
//! [`Manifest::parse`] reads a TOML 1.1 manifest with the parser the reference
//! implementation ([I]) uses, applies every rule of digest §11.1 and §11.3, and
//! recomputes the interface hash of §11.2. It reports every violation it finds, each
//! with a stable code from `vectors/README.md` §5.17 and the TOML key path, and it is
//! never stricter than [I] (the "Accepted by [I]" list of §11.1 validates).
//!
//! [`compute_interface`] and [`fix_interface_hash`] work on texts that break other
//! rules, so `fcp manifest fix` can repair a stale hash before `fcp manifest check`
//! reports the rest.
//!
//! Pure: no I/O. The caller reads the file.

mod error;
mod hash;
mod lint;
mod model;
mod net;
mod read;
mod tree;
mod validate;

pub use error::{ManifestError, Rule, Violation};
pub use hash::{Interface, InterfaceHash, InterfaceHashSyntaxError};
pub use model::*;

use fcp_proto::cbor;

impl Manifest {
    /// Parses and validates a manifest text. The error lists every violation found.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let checked = validate::check(text);
        match checked.manifest {
            Some(manifest) if checked.violations.is_empty() => Ok(manifest),
            _ => Err(ManifestError::Invalid { violations: checked.violations }),
        }
    }

    /// The interface descriptor of digest §11.2, as a CBOR value.
    pub fn interface_descriptor(&self) -> cbor::Value {
        hash::descriptor(&self.connector, &self.capabilities, &self.operations)
    }

    /// The deterministic CBOR encoding of [`Manifest::interface_descriptor`].
    pub fn descriptor_cbor(&self) -> Vec<u8> {
        hash::encode(&self.interface_descriptor())
    }

    /// The recomputed interface hash; for a parsed manifest it equals
    /// `self.header.interface_hash`.
    pub fn interface_hash(&self) -> InterfaceHash {
        InterfaceHash::of_descriptor(&self.descriptor_cbor())
    }
}

/// Recomputes the interface of a manifest text. Violations of rules the descriptor does
/// not depend on (sandbox, zones, a stale declared hash …) do not stop it; the error lists
/// every violation when the descriptor cannot be built.
pub fn compute_interface(text: &str) -> Result<Interface, ManifestError> {
    let checked = validate::check(text);
    checked.interface.ok_or(ManifestError::Invalid { violations: checked.violations })
}

/// Rewrites the value of `manifest.interface_hash` with the recomputed hash and leaves
/// every other byte of `text` as it is. The text may break rules that the descriptor
/// does not depend on.
pub fn fix_interface_hash(text: &str) -> Result<String, ManifestError> {
    let interface = compute_interface(text)?;
    let span = tree::string_span(text, &["manifest", "interface_hash"]).ok_or(ManifestError::NoInterfaceHash)?;
    let (Some(before), Some(after)) = (text.get(..span.start), text.get(span.end..)) else {
        return Err(ManifestError::NoInterfaceHash);
    };
    Ok(format!("{before}\"{}\"{after}", interface.hash))
}

/// Vector cases of the manifest kinds.
pub mod vectors {
    use serde_json::Value as Json;

    use super::{compute_interface, Manifest};
    use crate::conformance::Loader;

    fn load_manifest(case: &Json, load: Loader<'_>) -> Result<String, String> {
        let path = case["manifest"].as_str().ok_or("case has no manifest path")?;
        load(path)
    }

    fn expected(case: &Json) -> Result<&serde_json::Map<String, Json>, String> {
        case["expected"].as_object().ok_or_else(|| "case has no expected object".to_owned())
    }

    /// Runs one `interface_hash` case.
    pub fn interface_hash(case: &Json, load: Loader<'_>) -> Result<(), String> {
        let text = load_manifest(case, load)?;
        let interface = compute_interface(&text).map_err(|e| e.to_string())?;
        for (field, want) in expected(case)? {
            let got = match field.as_str() {
                "interface_hash" => interface.hash.to_string(),
                "descriptor_cbor" => hex::encode(&interface.descriptor_cbor),
                other => return Err(format!("unknown expected field {other:?}")),
            };
            if want.as_str() != Some(got.as_str()) {
                return Err(format!("{field}: expected {want}, got {got:?}"));
            }
        }
        Ok(())
    }

    /// Runs one `manifest_validation` case.
    pub fn manifest_validation(case: &Json, load: Loader<'_>) -> Result<(), String> {
        let text = load_manifest(case, load)?;
        let (valid, codes, detail) = match Manifest::parse(&text) {
            Ok(_) => (true, Vec::new(), String::new()),
            Err(e) => (false, e.codes(), e.to_string()),
        };
        for (field, want) in expected(case)? {
            match field.as_str() {
                "valid" => {
                    if want.as_bool() != Some(valid) {
                        return Err(format!("valid: expected {want}, got {valid} ({detail})"));
                    }
                }
                "violations" => {
                    let mut want_codes: Vec<&str> = want
                        .as_array()
                        .ok_or("violations is not an array")?
                        .iter()
                        .map(|c| c.as_str().ok_or("violation code is not a string"))
                        .collect::<Result<_, _>>()?;
                    want_codes.sort_unstable();
                    want_codes.dedup();
                    if want_codes != codes {
                        return Err(format!("violations: expected {want_codes:?}, got {codes:?} ({detail})"));
                    }
                }
                other => return Err(format!("unknown expected field {other:?}")),
            }
        }
        Ok(())
    }
}
