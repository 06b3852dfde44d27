//! The escape suite (house style §3.2 point 14): a hostile program, `fcp-hostile` built
//! static (`integration/hostile/`), tries to get out of a strict jail, run through the
//! real CLI as a user would (`fcp sandbox run --manifest … -- PROGRAM ARGS`). Every
//! attempt must fail, and each test asserts how: the errno, or a SIGSYS kill that the
//! summary (`--summary`) names; a limit's breach must end the program the way the
//! summary reports it. A test collects every way out it finds before it fails, so one
//! run shows them all.
//!
//! The jail is `strict.toml`'s `[sandbox]`: strict profile, deny_exec, deny_ptrace, 32 MiB,
//! cpu_percent 10, its state dir writable and one read-only folder of the test's own.
//!
//! - `files`: host secrets, `/proc` back to the host's root, writes outside the state
//!   dir, links planted in the state dir;
//! - `process`: exec, ptrace, signals to a host process, a setuid binary;
//! - `kernel`: mount, unshare, keyctl, bpf, perf_event_open, io_uring, userfaultfd,
//!   sethostname, packet and raw sockets;
//! - `network`: the host's listeners on loopback, on its own addresses and on Unix
//!   sockets, and the jail's own loopback;
//! - `limits`: fork bomb, memory, CPU quota, wall clock;
//! - `hygiene`: inherited descriptors and environment;
//! - `allowed`: what the manifest grants works.
//!
//! The tests need root: without it each prints `skipped: needs root`, and with
//! `FCP_REQUIRE_PRIVILEGED=1` (CI) that is a failure. The ones that load the machine
//! take turns; the rest run in parallel.

#[path = "../support/bins.rs"]
mod bins;
mod harness;

mod allowed;
mod files;
mod hygiene;
mod kernel;
mod limits;
mod network;
mod process;
