//! Bounded reads and all-or-nothing replacement of the files `fcp` reads and writes.
//!
//! Inputs (manifests, binaries, packages) are hostile, so every read names a size limit.
//! Outputs are written to a temporary file in the destination's folder, flushed to disk and
//! renamed over the destination, so a reader sees the old file or the new one, never a
//! half-written one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilesError {
    /// Opening or reading failed.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is larger than the reader accepts.
    #[error("{path} is larger than the limit of {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// Writing, syncing or renaming failed; the destination is unchanged.
    #[error("writing {path}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Reads a whole file of at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FilesError> {
    let read_err = |source| FilesError::Read { path: path.to_owned(), source };
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > max {
        return Err(FilesError::TooLarge { path: path.to_owned(), max });
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // Take one byte more than allowed, so a file that grows while we read is caught.
    file.take(max.saturating_add(1)).read_to_end(&mut out).map_err(read_err)?;
    if out.len() as u64 > max {
        return Err(FilesError::TooLarge { path: path.to_owned(), max });
    }
    Ok(out)
}

/// Replaces `path` with `bytes`, all or nothing, leaving the file with permission bits
/// `mode`. The temporary file is created with `mode` from the start, in the same folder, so
/// the rename cannot cross file systems.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FilesError> {
    let write_err = |source| FilesError::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| write_err(io::Error::other("destination has no file name")))?;
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy(), mode).map_err(write_err)?;
    let written = file
        .write_all(bytes)
        // The umask may have narrowed the mode; set exactly what was asked for.
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the temporary file is ours and holds nothing anyone else needs.
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    // Make the rename itself durable.
    File::open(dir).and_then(|d| d.sync_all()).map_err(write_err)
}

/// Creates a new, unique temporary file next to the destination.
fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let tmp = dir.join(format!(".{name}.{pid}.{attempt}.tmp"));
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name"))
}

/// The permission bits of an existing file.
pub(crate) fn mode_of(path: &Path) -> Result<u32, FilesError> {
    let meta = fs::metadata(path).map_err(|source| FilesError::Read { path: path.to_owned(), source })?;
    Ok(meta.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bounded_refuses_large_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        fs::write(&p, b"12345").expect("write");
        assert_eq!(read_bounded(&p, 5).expect("fits"), b"12345");
        let err = read_bounded(&p, 4).expect_err("too large");
        assert!(matches!(err, FilesError::TooLarge { max: 4, .. }), "{err:?}");
        let err = read_bounded(&dir.path().join("missing"), 4).expect_err("missing");
        assert!(matches!(err, FilesError::Read { .. }), "{err:?}");
    }

    #[test]
    fn write_atomically_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("out.pkg");
        fs::write(&p, b"old").expect("write");
        write_atomically(&p, b"new", 0o640).expect("written");
        assert_eq!(fs::read(&p).expect("read"), b"new");
        assert_eq!(mode_of(&p).expect("mode"), 0o640);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["out.pkg"]);
    }

    #[test]
    fn a_failed_write_leaves_the_destination_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The destination is a non-empty folder, so the final rename fails.
        let p = dir.path().join("busy");
        fs::create_dir(&p).expect("mkdir");
        fs::write(p.join("inside"), b"x").expect("write");
        let err = write_atomically(&p, b"new", 0o644).expect_err("rename over a folder fails");
        assert!(matches!(err, FilesError::Write { .. }), "{err:?}");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["busy"]);
    }
}
