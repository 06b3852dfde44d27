//! `fcp-test-loose`: the loose-dialect test connector (`fcp_integration::loose`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use fcp_integration::{loose::Loose, stdio};

fn main() -> ExitCode {
    let mut connector = Loose::default();
    match stdio::serve(|line| connector.answer(line)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcp-test-loose: {e}");
            ExitCode::FAILURE
        }
    }
}
