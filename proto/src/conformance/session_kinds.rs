//! Vector kinds, filled in by the module owner.

use serde_json::Value as Json;

pub(super) fn key_schedule(_case: &Json) -> Result<(), String> {
    Err("this kind has no implementation in this build".into())
}

pub(super) fn hello(_case: &Json) -> Result<(), String> {
    Err("this kind has no implementation in this build".into())
}

pub(super) fn negotiation(_case: &Json) -> Result<(), String> {
    Err("this kind has no implementation in this build".into())
}

pub(super) fn mac(_case: &Json) -> Result<(), String> {
    Err("this kind has no implementation in this build".into())
}
