//! Vector cases of kind `egress_decision`.

/// Runs one `egress_decision` case.
pub fn egress_decision(_case: &serde_json::Value) -> Result<(), String> {
    Err("this kind has no implementation in this build".into())
}
