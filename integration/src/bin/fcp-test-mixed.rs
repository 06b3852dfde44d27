//! `fcp-test-mixed`: the mixed-dialect test connector (`fcp_integration::mixed`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use fcp_integration::{mixed::Mixed, stdio};

fn main() -> ExitCode {
    let mut connector = Mixed::default();
    match stdio::serve(|line| connector.answer(line)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcp-test-mixed: {e}");
            ExitCode::FAILURE
        }
    }
}
