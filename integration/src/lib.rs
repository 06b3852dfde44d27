//! fcp-integration: end-to-end tests of fcpd and the `fcp` CLI (in `tests/`), and the
//! test connectors they install (the `fcp-test-*` binaries).
//!
//! There is one test connector per reply dialect of host-protocol §9, so every dialect
//! runs through fcpd's whole pipeline:
//!
//! | binary | manifest | dialect |
//! |---|---|---|
//! | `fcp-test-typed` | `connectors/fcp-test-typed.toml` | typed: fcp-sdk's loop (handshake with nonce echo, `HealthSnapshot`, `InvokeResponse` envelopes) |
//! | `fcp-test-mixed` | `connectors/fcp-test-mixed.toml` | mixed: typed handshake, loose health, bare invoke results |
//! | `fcp-test-loose` | `connectors/fcp-test-loose.toml` | loose: ad-hoc handshake without nonce (refused before `configure`), reads only `operation_id`, bare results |
//!
//! Each has the operations of [`ops`]: `echo`, `crash` and `slow`. A connector speaks
//! only the host protocol; it knows nothing of fcpd.
//!
//! Must not: ship (`publish = false`), or be a dependency of anything.

#![forbid(unsafe_code)]

pub mod loose;
pub mod mixed;
pub mod ops;
pub mod stdio;
pub mod typed;
