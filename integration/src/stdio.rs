//! The blocking line loop of the hand-written dialects (mixed and loose): read stdin,
//! split it into lines with the 64 KiB cap of host-protocol §1, answer each line with
//! one reply line, flush, until stdin closes. fcp-sdk has its own loop for the typed
//! dialect.

use std::io::{self, Read, Write};

use fcp_proto::host::{encode_error, ErrorCode, FcpError, Line, LineBuffer, MAX_FRAME_BYTES};

/// Serves `answer` on stdin and stdout. `answer` gets one line without its `\n` and
/// returns the reply line (with its `\n`), or `None` for a blank line. A line over the
/// cap is answered with `FCP-1001` and no `id`, as the reference connectors answer a
/// line they cannot read. Returns when stdin closes; an I/O error ends it early.
pub fn serve(mut answer: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> io::Result<()> {
    let mut lines = LineBuffer::new(MAX_FRAME_BYTES);
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for line in lines.push(&buf[..n]) {
            let reply = match line {
                Line::Complete(line) => answer(&line),
                Line::TooLong { .. } => Some(too_long()),
            };
            if let Some(reply) = reply {
                output.write_all(&reply)?;
                output.flush()?;
            }
        }
    }
    if let Some(reply) = lines.finish().and_then(|line| answer(&line)) {
        output.write_all(&reply)?;
        output.flush()?;
    }
    Ok(())
}

fn too_long() -> Vec<u8> {
    let e = FcpError::InvalidRequest {
        code: ErrorCode::INVALID_JSON,
        message: format!("request line exceeds {MAX_FRAME_BYTES} bytes"),
    };
    encode_error(None, &e.to_response())
}
