//! `Manifest::parse` (digest §11) on arbitrary UTF-8: it must never panic, a refusal
//! always names at least one violation, and an accepted manifest declares exactly the
//! interface hash it recomputes, so fixing its hash changes nothing.

#![no_main]

use fcp_policy::manifest::{fix_interface_hash, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Manifest::parse(text) {
        Ok(manifest) => {
            assert_eq!(manifest.interface_hash(), manifest.header.interface_hash, "accepted a stale hash");
            assert_eq!(fix_interface_hash(text).as_deref(), Ok(text), "fixing a valid manifest changed it");
        }
        Err(e) => {
            assert!(!e.violations().is_empty(), "refused without a violation: {e}");
            // Repairing the hash must not panic either, whatever else is wrong.
            let _ = fix_interface_hash(text);
        }
    }
});
