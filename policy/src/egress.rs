//! Egress decision (`vectors/README.md` §5.18).

/// Vector cases of kind `egress_decision`.
pub mod vectors {
    /// Runs one `egress_decision` case.
    pub fn egress_decision(_case: &serde_json::Value) -> Result<(), String> {
        Err("this kind has no implementation in this build".into())
    }
}
