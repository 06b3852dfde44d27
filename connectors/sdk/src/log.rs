//! Logging to stderr, the only place logs may go (host-protocol §1). The level comes
//! from `RUST_LOG` when it is a bare level (`error`, `warn`, `info`, `debug`, `trace`,
//! `off`), else `info`, as the reference connectors default to.

use std::io::Write;
use std::sync::OnceLock;

/// A log level, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Information.
    Info,
    /// Debugging.
    Debug,
    /// Tracing.
    Trace,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// The most verbose level that `RUST_LOG` lets through; `None` for `off`.
fn parse_filter(filter: Option<&str>) -> Option<Level> {
    match filter.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("off") => None,
        Some("error") => Some(Level::Error),
        Some("warn") => Some(Level::Warn),
        Some("debug") => Some(Level::Debug),
        Some("trace") => Some(Level::Trace),
        _ => Some(Level::Info),
    }
}

fn max_level() -> Option<Level> {
    static MAX: OnceLock<Option<Level>> = OnceLock::new();
    *MAX.get_or_init(|| parse_filter(std::env::var("RUST_LOG").ok().as_deref()))
}

/// Whether `level` is logged.
pub fn enabled(level: Level) -> bool {
    max_level().is_some_and(|max| level <= max)
}

/// Writes one line to stderr: `LEVEL target: message`, with newlines in the message
/// escaped so a log record stays one line. Write errors are ignored: losing a log line
/// must not stop the connector.
pub fn log(level: Level, target: &str, message: &str) {
    if !enabled(level) {
        return;
    }
    let line = format!("{} {target}: {}\n", level.as_str(), message.replace('\n', "\\n"));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_bare_levels_and_default_to_info() {
        assert_eq!(parse_filter(None), Some(Level::Info));
        assert_eq!(parse_filter(Some("warn")), Some(Level::Warn));
        assert_eq!(parse_filter(Some(" TRACE ")), Some(Level::Trace));
        assert_eq!(parse_filter(Some("off")), None);
        assert_eq!(parse_filter(Some("fcp_echo=debug")), Some(Level::Info));
        assert!(Level::Error < Level::Trace);
    }
}
