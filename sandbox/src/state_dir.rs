//! The connector's state dir (`$CONNECTOR_STATE`).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::error::SandboxError;

/// Creates `path` (and any missing parent) with mode 0700 if it is missing. An existing
/// state dir is left as it is, but it must be a directory and not a symlink.
pub(crate) fn prepare(path: &Path) -> Result<(), SandboxError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SandboxError::StateDirNotDirectory { path: path.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| SandboxError::CreateStateDir { path: path.to_owned(), source }),
        Err(source) => Err(SandboxError::InspectStateDir { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_a_missing_dir_0700() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a/b");
        prepare(&path).expect("created");
        let meta = fs::metadata(&path).expect("exists");
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        // Idempotent, and an existing dir keeps its mode.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).expect("chmod");
        prepare(&path).expect("exists");
        assert_eq!(fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o750);
    }

    #[test]
    fn refuses_files_and_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        fs::write(&file, b"").expect("write");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).expect("symlink");
        for path in [file, link] {
            match prepare(&path) {
                Err(SandboxError::StateDirNotDirectory { path: got }) => assert_eq!(got, path),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reports_a_failed_create() {
        // procfs refuses new directories, even to root.
        let path = Path::new("/proc/self/fcp-sandbox-state");
        match prepare(path) {
            Err(SandboxError::CreateStateDir { path: got, source }) => {
                assert_eq!(got, path);
                assert!(source.raw_os_error().is_some(), "{source}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reports_a_failed_inspection() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        fs::write(&file, b"").expect("write");
        let below = file.join("state");
        match prepare(&below) {
            Err(SandboxError::InspectStateDir { path, source }) => {
                assert_eq!(path, below);
                assert_eq!(source.raw_os_error(), Some(libc::ENOTDIR));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
