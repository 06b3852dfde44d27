//! Key files: one Ed25519 seed as `fcp-ed25519-seed-v1\n<64 lowercase hex>\n`.
//!
//! A key file is created with mode 0600 (never widened and then narrowed), refuses to
//! overwrite an existing file, and is refused on read when its mode lets anyone but its
//! owner in. The seed never appears in an error or a log line, and every buffer that held
//! it is zeroized.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fcp_proto::keys::PublisherKey;
use zeroize::Zeroizing;

/// The first line of every key file.
pub(crate) const HEADER: &str = "fcp-ed25519-seed-v1";
/// Largest key file read (the real one is 85 bytes).
const MAX_KEY_FILE_BYTES: u64 = 256;
/// Permission bits a key file is created with.
const KEY_FILE_MODE: u32 = 0o600;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    /// The file already exists; keys are never overwritten.
    #[error("key file {path} already exists; refusing to overwrite a key")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Creating or writing failed (nothing is left behind).
    #[error("writing key file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Opening or reading failed.
    #[error("reading key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file's mode lets group or others in.
    #[error("key file {path} has mode {mode:04o}, more open than 0600; refusing to use it (chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("key file {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Not `fcp-ed25519-seed-v1` followed by 64 lowercase hex digits.
    #[error("key file {path} is not an {HEADER} file")]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// Writes a new key file holding `seed`, created with mode 0600. Refuses an existing path.
pub(crate) fn write_seed(path: &Path, seed: &[u8; 32]) -> Result<(), KeyFileError> {
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(KEY_FILE_MODE).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(KeyFileError::Exists { path: path.to_owned() })
        }
        Err(source) => return Err(KeyFileError::Write { path: path.to_owned(), source }),
    };
    let text = Zeroizing::new(format!("{HEADER}\n{}\n", Zeroizing::new(hex::encode(seed)).as_str()));
    if let Err(source) = file.write_all(text.as_bytes()).and_then(|()| file.sync_all()) {
        drop(file);
        // Best effort: we created this file a moment ago, and a partial key is useless.
        let _ = fs::remove_file(path);
        return Err(KeyFileError::Write { path: path.to_owned(), source });
    }
    Ok(())
}

/// Reads the seed of a key file, refusing one whose mode is more open than 0600.
pub(crate) fn read_seed(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let read_err = |source| KeyFileError::Read { path: path.to_owned(), source };
    let file = File::open(path).map_err(read_err)?;
    // Judge the file actually opened, not whatever the path names a moment later.
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: path.to_owned() });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen { path: path.to_owned(), mode });
    }
    let mut raw = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut raw).map_err(read_err)?;
    parse(&raw).ok_or_else(|| KeyFileError::Format { path: path.to_owned() })
}

/// Reads a publisher key from a key file.
pub(crate) fn read_publisher_key(path: &Path) -> Result<PublisherKey, KeyFileError> {
    Ok(PublisherKey::from_seed(&*read_seed(path)?))
}

/// `HEADER\n<64 lowercase hex>\n`, the final newline optional.
fn parse(raw: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let rest = raw.strip_prefix(HEADER.as_bytes())?.strip_prefix(b"\n")?;
    let hex_digits = rest.strip_suffix(b"\n").unwrap_or(rest);
    if hex_digits.len() != 64 || !hex_digits.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_digits, seed.as_mut_slice()).ok()?;
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("key");
        write_seed(&p, &SEED).expect("written");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(*read_seed(&p).expect("read"), SEED);
        let text = fs::read_to_string(&p).expect("text");
        assert_eq!(text, format!("{HEADER}\n{}\n", "07".repeat(32)));
        assert_eq!(read_publisher_key(&p).expect("key").kid(), PublisherKey::from_seed(&SEED).kid());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("key");
        fs::write(&p, b"precious").expect("write");
        assert!(matches!(write_seed(&p, &SEED), Err(KeyFileError::Exists { .. })));
        assert_eq!(fs::read(&p).expect("read"), b"precious");
    }

    #[test]
    fn refuses_open_modes_and_names_path_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("key");
        write_seed(&p, &SEED).expect("written");
        for mode in [0o644, 0o640, 0o604, 0o660, 0o700 | 0o001] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
            let err = read_seed(&p).expect_err("too open");
            assert!(matches!(err, KeyFileError::TooOpen { mode: m, .. } if m == mode), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&p.display().to_string()) && msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(!msg.contains("0707070707"), "the seed leaked: {msg}");
        }
        for mode in [0o400, 0o600] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(*read_seed(&p).expect("owner-only"), SEED);
        }
    }

    #[test]
    fn refuses_bad_formats() {
        let hex64 = "0a".repeat(32);
        for (i, text) in [
            String::new(),
            hex64.clone(),
            format!("{HEADER}\n{}\n", &hex64[..62]),
            format!("{HEADER}\n{}\n", hex64.to_uppercase()),
            format!("{HEADER}\n{hex64}\n\n"),
            format!("{HEADER} \n{hex64}\n"),
            format!("fcp-ed25519-seed-v2\n{hex64}\n"),
        ]
        .iter()
        .enumerate()
        {
            assert!(parse(text.as_bytes()).is_none(), "case {i}");
        }
        assert!(parse(format!("{HEADER}\n{hex64}").as_bytes()).is_some());
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read_seed(dir.path()), Err(KeyFileError::NotAFile { .. })));
    }
}
