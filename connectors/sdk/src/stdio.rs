//! The blocking loop over stdin and stdout (host-protocol §1): read a line, answer it,
//! flush, until stdin closes.

use std::io::{self, Read, Write};

use fcp_proto::host::RequestReader;

use crate::log::{self, Level};
use crate::server::Server;
use crate::FcpConnector;

/// Why the loop stopped early. Stdin closing is the normal end and no error.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// Reading stdin failed.
    #[error("read stdin")]
    ReadStdin(#[source] io::Error),
    /// Writing or flushing stdout failed (the host is gone).
    #[error("write stdout")]
    WriteStdout(#[source] io::Error),
}

/// Serves `connector` on this process's stdin and stdout until stdin closes.
pub fn run<C: FcpConnector>(connector: C) -> Result<(), StdioError> {
    let id = connector.info().id;
    log::log(Level::Debug, id, "serving the host protocol on stdin/stdout");
    let result = serve(connector, io::stdin().lock(), io::stdout().lock());
    match &result {
        Ok(()) => log::log(Level::Debug, id, "stdin closed"),
        Err(e) => log::log(
            Level::Error,
            id,
            &format!("{e}: {}", std::error::Error::source(e).map_or(String::new(), |s| s.to_string())),
        ),
    }
    result
}

/// Serves `connector` on any byte streams: one reply line per request line, flushed
/// before the next read. An unterminated last line is still answered.
pub fn serve<C: FcpConnector, R: Read, W: Write>(connector: C, mut input: R, mut output: W) -> Result<(), StdioError> {
    let mut server = Server::new(connector);
    let mut reader = RequestReader::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StdioError::ReadStdin(e)),
        };
        for incoming in reader.push(&buf[..n]) {
            answer(&mut output, &server.handle(incoming))?;
        }
    }
    if let Some(incoming) = reader.finish() {
        answer(&mut output, &server.handle(incoming))?;
    }
    Ok(())
}

fn answer<W: Write>(output: &mut W, line: &[u8]) -> Result<(), StdioError> {
    output.write_all(line).and_then(|()| output.flush()).map_err(StdioError::WriteStdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectorError, ConnectorInfo, Introspection};
    use serde_json::{Map, Value};

    struct Nothing;

    impl FcpConnector for Nothing {
        fn info(&self) -> ConnectorInfo {
            ConnectorInfo { id: "fcp.nothing", version: "0.0.0", manifest_toml: "" }
        }
        fn introspect(&self) -> Introspection {
            Introspection::default()
        }
        fn configure(&mut self, _: &Map<String, Value>) -> Result<(), ConnectorError> {
            Ok(())
        }
        fn invoke(&mut self, operation: &str, _: Value) -> Result<Value, ConnectorError> {
            Err(ConnectorError::unknown_operation(operation))
        }
    }

    /// Reads one byte at a time, to show that lines split across reads are whole again.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            let Some(slot) = buf.first_mut() else { return Ok(0) };
            *slot = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn one_reply_per_request_and_a_last_line_without_newline() {
        let input = b"{\"jsonrpc\":\"2.0\",\"id\":\"0:0\",\"method\":\"configure\",\"params\":{}}\n\n{\"id\":\"0:1\",\"method\":\"shutdown\",\"params\":{\"type\":\"shutdown\"}}";
        let mut out = Vec::new();
        serve(Nothing, Trickle(input), &mut out).expect("clean end");
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            text,
            "{\"id\":\"0:0\",\"jsonrpc\":\"2.0\",\"result\":{\"status\":\"configured\"}}\n{\"id\":\"0:1\",\"jsonrpc\":\"2.0\",\"result\":{\"status\":\"shutdown_accepted\"}}\n"
        );
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_stops_the_loop() {
        let err = serve(Nothing, &b"{\"id\":\"0:0\",\"method\":\"health\"}\n"[..], Broken).expect_err("stdout gone");
        assert!(matches!(err, StdioError::WriteStdout(e) if e.kind() == io::ErrorKind::BrokenPipe));
    }
}
