//! The operator's config (`configure` params): `{"root": "/abs/dir", "max_file_bytes": N}`,
//! both optional. Unknown keys are refused, so a typo cannot widen or silently drop a
//! limit (house style §3.3 point 2).

use std::path::{Path, PathBuf};

use fcp_sdk::{ErrorCode, FcpError};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::root::Root;

/// The largest file a write may leave, unless the config says otherwise: 64 MiB.
pub(crate) const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Where files live when the config names no root, below `$CONNECTOR_STATE`.
pub(crate) const DEFAULT_ROOT_DIR: &str = "files";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    root: Option<PathBuf>,
    max_file_bytes: Option<u64>,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Not the shape above.
    #[error("fcp.fs config takes {{\"root\"?: absolute path, \"max_file_bytes\"?: integer}}")]
    Parse(#[source] serde_json::Error),
    /// `root` is relative.
    #[error("fcp.fs config: root {0:?} is not an absolute path")]
    RelativeRoot(PathBuf),
    /// No `root`, and no `$CONNECTOR_STATE` to default to.
    #[error("fcp.fs config: no root given and $CONNECTOR_STATE is not set")]
    NoRoot,
    /// `max_file_bytes = 0` would refuse every write.
    #[error("fcp.fs config: max_file_bytes must be at least 1")]
    ZeroLimit,
    /// The default root could not be created.
    #[error("fcp.fs config: create {path:?}")]
    CreateDefault {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The root could not be opened as a directory.
    #[error("fcp.fs config: open root {path:?}")]
    OpenRoot {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A config error is the operator's: `InvalidRequest` with code 1001 ("bad config", as
/// fcp.echo answers), its cause in the message.
impl From<ConfigError> for FcpError {
    fn from(e: ConfigError) -> FcpError {
        let message = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        FcpError::InvalidRequest { code: ErrorCode::INVALID_JSON, message }
    }
}

/// Opens the root `config` names, or `<state_dir>/files` (created if missing) when it
/// names none.
pub(crate) fn configure(config: &Map<String, Value>, state_dir: Option<&Path>) -> Result<Root, ConfigError> {
    let config: Config = serde_json::from_value(Value::Object(config.clone())).map_err(ConfigError::Parse)?;
    let max_file_bytes = config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES);
    if max_file_bytes == 0 {
        return Err(ConfigError::ZeroLimit);
    }
    let path = match config.root {
        Some(root) if root.is_absolute() => root,
        Some(root) => return Err(ConfigError::RelativeRoot(root)),
        None => {
            let path = state_dir.ok_or(ConfigError::NoRoot)?.join(DEFAULT_ROOT_DIR);
            std::fs::create_dir_all(&path)
                .map_err(|source| ConfigError::CreateDefault { path: path.clone(), source })?;
            path
        }
    };
    Root::open(&path, max_file_bytes).map_err(|source| ConfigError::OpenRoot { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn the_default_root_is_made_under_the_state_dir() {
        let state = tempfile::tempdir().expect("tempdir");
        let root = configure(&Map::new(), Some(state.path())).expect("default root");
        assert_eq!(root.max_file_bytes(), DEFAULT_MAX_FILE_BYTES);
        assert!(state.path().join(DEFAULT_ROOT_DIR).is_dir());
        assert!(matches!(configure(&Map::new(), None), Err(ConfigError::NoRoot)));
    }

    #[test]
    fn an_explicit_root_must_be_an_absolute_existing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = config(json!({"root": dir.path(), "max_file_bytes": 10}));
        assert_eq!(configure(&ok, None).expect("root").max_file_bytes(), 10);
        let relative = config(json!({"root": "files"}));
        assert!(matches!(configure(&relative, None), Err(ConfigError::RelativeRoot(_))));
        let missing = config(json!({"root": dir.path().join("nope")}));
        assert!(matches!(configure(&missing, None), Err(ConfigError::OpenRoot { .. })));
        std::fs::write(dir.path().join("file"), "x").expect("write");
        let file = config(json!({"root": dir.path().join("file")}));
        assert!(matches!(configure(&file, None), Err(ConfigError::OpenRoot { .. })));
    }

    #[test]
    fn bad_keys_and_limits_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in [json!({"rooot": "/tmp"}), json!({"root": 7}), json!({"max_file_bytes": -1})] {
            assert!(matches!(configure(&config(bad), Some(dir.path())), Err(ConfigError::Parse(_))));
        }
        let zero = config(json!({"max_file_bytes": 0}));
        assert!(matches!(configure(&zero, Some(dir.path())), Err(ConfigError::ZeroLimit)));
        let e = FcpError::from(ConfigError::NoRoot);
        assert_eq!(e.code(), ErrorCode::INVALID_JSON);
        assert_eq!(e.to_string(), "Invalid request: fcp.fs config: no root given and $CONNECTOR_STATE is not set");
    }
}
