//! End-to-end tests of the FCP supervisor: each test starts a real `fcpd` on a fresh
//! home (`fcpd init` in a temporary folder, `fcpd run` on a socket of its own) and drives
//! it only through the real `fcp` binary, as an operator and an agent would. The
//! connectors are this package's test connectors, one per host-protocol reply dialect.
//!
//! - `pipeline`: an allowed call and its receipt, every denial with its reason code (and
//!   `fcp explain` agreeing), idempotent retries;
//! - `connectors`: each dialect through the whole pipeline, a connector crashing
//!   mid-call, a connector outliving the call timeout;
//! - `audit`: `fcp audit verify` catching events edited, removed or reordered in the store;
//! - `kill9`: fcpd killed with SIGKILL during invokes, again and again, loses nothing it
//!   acknowledged.

mod audit;
#[path = "../support/bins.rs"]
mod bins;
mod connectors;
mod egress;
mod harness;
#[path = "../support/internet.rs"]
mod internet;
mod jail;
mod kill9;
mod pipeline;
mod posture;
