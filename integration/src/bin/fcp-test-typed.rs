//! `fcp-test-typed`: the typed-dialect test connector (`fcp_integration::typed`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // fcp-sdk logs its own failure to stderr.
    match fcp_sdk::run(fcp_integration::typed::Typed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
