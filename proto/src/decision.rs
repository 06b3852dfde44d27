//! The decision function (issue: default deny): every invocation is allowed only
//! when every input is present, fresh and verified.

use serde::{Deserialize, Serialize};

/// Operation safety tier ([C]/[I] five values, digest §5.1), lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyTier {
    /// Reads or harmless actions.
    Safe,
    /// Changes state; needs an intent and fresh revocation state.
    Risky,
    /// Irreversible or costly; strict idempotency.
    Dangerous,
    /// Critical.
    Critical,
    /// Never allowed.
    Forbidden,
}
