//! Golden-vector runner for the policy kinds (`vectors/README.md` §5.16–§5.18).
//!
//! No I/O: the manifest kinds name files, which the caller's loader reads.

pub use fcp_proto::conformance::Outcome;

/// The vector kinds this crate decides.
pub const KINDS: &[&str] = &["interface_hash", "manifest_validation", "egress_decision"];

/// Reads a file named by a case, relative to the vectors folder.
pub type Loader<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Runs one case of `kind`; `None` when the kind is not one of [`KINDS`].
pub fn run_case(kind: &str, case: &serde_json::Value, load: Loader<'_>) -> Option<Outcome> {
    let r = match kind {
        "interface_hash" => crate::manifest::vectors::interface_hash(case, load),
        "manifest_validation" => crate::manifest::vectors::manifest_validation(case, load),
        "egress_decision" => crate::egress::vectors::egress_decision(case),
        _ => return None,
    };
    Some(r.into())
}
