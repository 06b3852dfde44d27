//! The operations every test connector has, whatever its dialect, and the invocation
//! log the tests read to see what a connector really ran.
//!
//! The log is `$CONNECTOR_STATE/invocations.log` (fcpd sets `CONNECTOR_STATE` to the
//! instance's state folder), one line per call that reached an operation, written
//! before the operation runs: `<process> <operation> <caller request id>`, where
//! `<process>` is a random token the process draws once (in a jail every connector is
//! pid 1 of its own namespace, so a pid does not tell processes apart).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use fcp_proto::host::FcpError;
use serde_json::Value;

/// The operations, in manifest order.
pub const OPERATIONS: [&str; 3] = ["echo", "crash", "slow"];

/// The capability each operation needs.
pub const CAPABILITY: &str = "test.call";

/// How long `slow` sleeps: longer than the 10 s host-protocol call timeout (§1).
pub const SLOW: Duration = Duration::from_secs(15);

/// Exit status of `crash`.
pub const CRASH_STATUS: i32 = 70;

/// File name of the invocation log inside `$CONNECTOR_STATE`.
pub const INVOCATIONS_LOG: &str = "invocations.log";

/// Runs `operation` for the caller's request `caller_id`:
/// - `echo` returns `input`;
/// - `crash` exits the process at once with [`CRASH_STATUS`], leaving the call unanswered;
/// - `slow` sleeps [`SLOW`], then returns `input`.
///
/// The call is logged before it runs; an operation not in [`OPERATIONS`] is refused
/// with `FCP-1002` and not logged.
pub fn run(operation: &str, caller_id: &str, input: Value) -> Result<Value, FcpError> {
    if !OPERATIONS.contains(&operation) {
        return Err(FcpError::unknown_operation(operation));
    }
    record(operation, caller_id)?;
    match operation {
        "crash" => std::process::exit(CRASH_STATUS),
        "slow" => {
            std::thread::sleep(SLOW);
            Ok(input)
        }
        _ => Ok(input),
    }
}

/// This process's token in the invocation log: 16 random hex digits, drawn once.
pub fn process_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        use rand_core::{OsRng, RngCore};
        format!("{:016x}", OsRng.next_u64())
    })
}

/// Appends one line to the invocation log. Without `CONNECTOR_STATE` there is no log;
/// a log that cannot be written fails the call, so a test never reads a short log.
fn record(operation: &str, caller_id: &str) -> Result<(), FcpError> {
    let Some(dir) = std::env::var_os("CONNECTOR_STATE") else { return Ok(()) };
    let path = PathBuf::from(dir).join(INVOCATIONS_LOG);
    let line = format!("{} {operation} {caller_id}\n", process_token());
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| FcpError::internal(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_manifest_is_valid_and_declares_exactly_these_operations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors");
        let mut want: Vec<String> = OPERATIONS.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        for name in ["fcp-test-typed.toml", "fcp-test-typed-risky.toml", "fcp-test-mixed.toml", "fcp-test-loose.toml"] {
            let text = std::fs::read_to_string(dir.join(name)).expect("read the manifest");
            // parse() runs every rule, the interface_hash included.
            let m = fcp_policy::manifest::Manifest::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut ops: Vec<String> = m.operations.keys().map(|k| k.to_string()).collect();
            ops.sort();
            assert_eq!(ops, want, "{name}");
            assert!(m.operations.values().all(|op| op.capability.to_string() == CAPABILITY), "{name}");
        }
    }

    #[test]
    fn echo_returns_its_input_and_unknown_operations_are_refused() {
        let input = json!({"nested": [1, "two", {"three": null}]});
        assert_eq!(run("echo", "req-1", input.clone()), Ok(input));
        assert_eq!(
            run("frobnicate", "req-2", json!({})).map_err(|e| e.code()),
            Err(fcp_proto::host::ErrorCode::UNKNOWN_METHOD)
        );
    }
}
