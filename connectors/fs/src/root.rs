//! The root directory and every file operation below it.
//!
//! **How a path is resolved.** The root is opened once, at `configure`, and held as a
//! directory fd. Every operation walks the agent's [`RelPath`] from that fd one component
//! at a time with `openat(dir, name, O_DIRECTORY | O_NOFOLLOW)`, and opens the last
//! component with `O_NOFOLLOW` too. `..` never reaches the kernel ([`RelPath`] refuses
//! it), and a symbolic link anywhere in the path fails the open itself, so a link, even
//! one swapped in between two calls, cannot lead outside the root. fcp.fs follows no
//! symbolic link at all, including links that would stay inside the root. New files are
//! written with `O_CREAT | O_EXCL` or through a temporary file renamed over the target,
//! so a write never follows a link either.
//!
//! **What this does not cover (TOCTOU limits).** The walk is race-free against symlink
//! swaps, but not against everything a process with write access to the tree can do:
//! - a directory renamed from inside the root to somewhere outside it *while* a call
//!   holds an fd to it takes that call with it (the fd follows the inode);
//! - a hard link inside the root to a file outside it is an ordinary file here;
//! - a file system mounted over a directory inside the root is entered.
//!
//! The real boundary is the jail of a later issue (Landlock and a private mount
//! namespace limit the process to `$CONNECTOR_STATE`, per `manifest.toml`'s
//! `fs_writable_paths`); this module keeps an honest agent's mistakes and a hostile
//! agent's path tricks inside the root.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use serde::Serialize;

use crate::error::FsError;
use crate::path::RelPath;

/// How directories on the walk are opened: never through a link.
const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
/// How a file is opened for reading: never through a link, and without blocking on a
/// FIFO (which is then refused as not a regular file) or taking a terminal.
const READ_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK).union(OFlags::NOCTTY).union(OFlags::CLOEXEC);
/// Files fcp.fs creates are private to the connector's user.
const FILE_MODE: u32 = 0o600;
/// Directories `create_parents` makes, likewise.
const DIR_MODE: u32 = 0o700;
/// A directory scan stops after this many names, to bound memory.
pub(crate) const MAX_SCAN_NAMES: usize = 100_000;
/// Temporary files of `overwrite` start with this; a crash can leave one behind.
pub(crate) const TEMP_PREFIX: &str = ".fcp-fs-";

/// How `fs.write` treats an existing file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WriteMode {
    /// Fail with `Conflict` if the file exists.
    #[default]
    Create,
    /// Replace the file atomically (temporary file, then rename).
    Overwrite,
    /// Add to the end, creating the file if needed.
    Append,
}

/// The kind of a directory entry, as `fs.list` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (listed, never followed).
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// One `fs.list` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Entry {
    /// The name (UTF-8 names only).
    pub(crate) name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub(crate) kind: EntryKind,
    /// Its size in bytes, for regular files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
}

/// A directory's names, sorted, before they are paged.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The directory, to stat entries against.
    dir: OwnedFd,
    /// UTF-8 names, sorted by bytes.
    pub(crate) names: Vec<String>,
    /// Names skipped because they are not UTF-8 (an agent could not name them).
    pub(crate) skipped: u64,
    /// Whether the scan stopped at [`MAX_SCAN_NAMES`].
    pub(crate) incomplete: bool,
}

impl Listing {
    /// Stats `name` without following it; `None` if it vanished since the scan.
    pub(crate) fn entry(&self, name: &str) -> Option<Entry> {
        let st = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        Some(Entry { name: name.to_owned(), kind, size: (kind == EntryKind::File).then(|| size_of(&st)) })
    }
}

/// Bytes read from a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The bytes, at most the length asked for.
    pub(crate) bytes: Vec<u8>,
    /// The file's size when it was opened.
    pub(crate) size: u64,
}

/// A completed write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Written {
    /// Bytes written.
    pub(crate) written: u64,
    /// The file's size afterwards.
    pub(crate) size: u64,
}

/// The directory every path is relative to.
#[derive(Debug)]
pub(crate) struct Root {
    dir: OwnedFd,
    max_file_bytes: u64,
}

impl Root {
    /// Opens `path` (absolute, trusted: it comes from the operator's config; links in it
    /// are followed once, here) as the root.
    pub(crate) fn open(path: &Path, max_file_bytes: u64) -> io::Result<Root> {
        let dir = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Root { dir, max_file_bytes })
    }

    /// Whether the root is still a directory we can stat (for `self_check`).
    pub(crate) fn check(&self) -> io::Result<()> {
        let st = rustix::fs::fstat(&self.dir)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            Ok(())
        } else {
            Err(io::Error::other("the root is no longer a directory"))
        }
    }

    /// The largest file a write may leave.
    #[cfg(test)]
    pub(crate) fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// Opens the directory `path` by walking from the root; with `create`, missing
    /// directories are made (mode 0700) on the way.
    fn walk(&self, path: &RelPath, depth: usize, create: bool) -> Result<OwnedFd, FsError> {
        let mut dir = rustix::fs::openat(&self.dir, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| FsError::errno("open", ".".into(), e))?;
        for (i, name) in path.components().iter().take(depth).enumerate() {
            let shown = || path.prefix(i + 1).to_string();
            dir = match rustix::fs::openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(FsError::errno("mkdir", shown(), e)),
                    }
                    rustix::fs::openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty())
                        .map_err(|e| classify(&dir, name, "open", shown(), e))?
                }
                Err(e) => return Err(classify(&dir, name, "open", shown(), e)),
            };
        }
        Ok(dir)
    }

    /// The parent directory of a file path, and the file's name.
    fn parent<'p>(&self, path: &'p RelPath, create: bool) -> Result<(OwnedFd, &'p str), FsError> {
        let (parent, name) = path.split_last().ok_or_else(|| FsError::IsADirectory { path: path.to_string() })?;
        Ok((self.walk(path, parent.len(), create)?, name))
    }

    /// Reads the names in directory `path`, sorted.
    pub(crate) fn list(&self, path: &RelPath) -> Result<Listing, FsError> {
        let dir = self.walk(path, path.components().len(), false)?;
        let shown = path.to_string();
        let scan = rustix::fs::Dir::read_from(&dir).map_err(|e| FsError::errno("read directory", shown.clone(), e))?;
        let (mut names, mut skipped, mut incomplete) = (Vec::new(), 0u64, false);
        for entry in scan {
            let entry = entry.map_err(|e| FsError::errno("read directory", shown.clone(), e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if names.len() == MAX_SCAN_NAMES {
                incomplete = true;
                break;
            }
            match std::str::from_utf8(name) {
                Ok(name) => names.push(name.to_owned()),
                Err(_) => skipped += 1,
            }
        }
        names.sort_unstable();
        Ok(Listing { dir, names, skipped, incomplete })
    }

    /// Reads at most `length` bytes of regular file `path` from `offset`.
    pub(crate) fn read(&self, path: &RelPath, offset: u64, length: usize) -> Result<Chunk, FsError> {
        let (dir, name) = self.parent(path, false)?;
        let shown = path.to_string();
        let fd = rustix::fs::openat(&dir, name, READ_FLAGS, Mode::empty())
            .map_err(|e| classify(&dir, name, "open", shown.clone(), e))?;
        let size = regular_size(&fd, &shown)?;
        let file = File::from(fd);
        let mut bytes = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            let at = offset.saturating_add(filled as u64);
            match file.read_at(&mut bytes[filled..], at) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FsError::io("read", shown, e)),
            }
        }
        bytes.truncate(filled);
        Ok(Chunk { bytes, size })
    }

    /// Writes `content` to `path` as `mode` says.
    pub(crate) fn write(
        &self,
        path: &RelPath,
        content: &[u8],
        mode: WriteMode,
        create_parents: bool,
    ) -> Result<Written, FsError> {
        let shown = path.to_string();
        let len = content.len() as u64;
        if len > self.max_file_bytes {
            return Err(FsError::TooLarge { path: shown, size: len, limit: self.max_file_bytes });
        }
        let (dir, name) = self.parent(path, create_parents)?;
        match mode {
            WriteMode::Create => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(FILE_MODE))
                    .map_err(|e| classify(&dir, name, "create", shown.clone(), e))?;
                if let Err(e) = write_synced(fd, content) {
                    // Leave no half-written file that a retry would then conflict with.
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
                    return Err(FsError::io("write", shown, e));
                }
                Ok(Written { written: len, size: len })
            }
            WriteMode::Overwrite => {
                // Refuse what create and append refuse: a link, a directory, a FIFO.
                match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => refuse_non_regular(&st, &shown)?,
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(FsError::errno("stat", shown, e)),
                }
                let temp = temp_name().map_err(|e| FsError::io("name a temporary file for", shown.clone(), e))?;
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&dir, temp.as_str(), flags, Mode::from_raw_mode(FILE_MODE))
                    .map_err(|e| FsError::errno("create a temporary file for", shown.clone(), e))?;
                let replaced =
                    write_synced(fd, content).map_err(|e| FsError::io("write", shown.clone(), e)).and_then(|()| {
                        rustix::fs::renameat(&dir, temp.as_str(), &dir, name)
                            .map_err(|e| FsError::errno("rename over", shown.clone(), e))
                    });
                if let Err(e) = replaced {
                    let _ = rustix::fs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
                    return Err(e);
                }
                // Make the rename itself durable; the data already is.
                let _ = rustix::fs::fsync(&dir);
                Ok(Written { written: len, size: len })
            }
            WriteMode::Append => {
                let flags = OFlags::WRONLY
                    | OFlags::APPEND
                    | OFlags::CREATE
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(FILE_MODE))
                    .map_err(|e| classify(&dir, name, "open", shown.clone(), e))?;
                let before = regular_size(&fd, &shown)?;
                let size = before.saturating_add(len);
                if size > self.max_file_bytes {
                    return Err(FsError::TooLarge { path: shown, size, limit: self.max_file_bytes });
                }
                write_synced(fd, content).map_err(|e| FsError::io("append to", shown, e))?;
                Ok(Written { written: len, size })
            }
        }
    }
}

/// Turns an open failure into the error an agent can act on: `ENOTDIR` or `ELOOP` on a
/// component that is a link becomes [`FsError::Symlink`] (the kernel reports either,
/// depending on the flags). The refusal itself already happened in the kernel; this
/// `statat` only picks the message.
fn classify(dir: &OwnedFd, name: &str, step: &'static str, shown: String, e: Errno) -> FsError {
    if matches!(e, Errno::NOTDIR | Errno::LOOP) {
        if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                return FsError::Symlink { path: shown };
            }
        }
    }
    FsError::errno(step, shown, e)
}

/// The size of an open regular file; anything else is refused.
fn regular_size(fd: &OwnedFd, shown: &str) -> Result<u64, FsError> {
    let st = rustix::fs::fstat(fd).map_err(|e| FsError::errno("stat", shown.to_owned(), e))?;
    refuse_non_regular(&st, shown)?;
    Ok(size_of(&st))
}

fn refuse_non_regular(st: &Stat, shown: &str) -> Result<(), FsError> {
    let path = shown.to_owned();
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Directory => Err(FsError::IsADirectory { path }),
        FileType::Symlink => Err(FsError::Symlink { path }),
        _ => Err(FsError::NotAFile { path }),
    }
}

fn size_of(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

/// Writes everything and flushes it to disk before the call reports success.
fn write_synced(fd: OwnedFd, content: &[u8]) -> io::Result<()> {
    let mut file = File::from(fd);
    file.write_all(content)?;
    file.sync_data()
}

/// `.fcp-fs-<16 hex>.tmp`, from the OS RNG, so two writers never share one.
fn temp_name() -> io::Result<String> {
    let mut random = [0u8; 8];
    OsRng.try_fill_bytes(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(format!("{TEMP_PREFIX}{:016x}.tmp", u64::from_be_bytes(random)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn root(max: u64) -> (tempfile::TempDir, Root) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = Root::open(tmp.path(), max).expect("open root");
        (tmp, root)
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).expect("valid path")
    }

    #[test]
    fn write_read_list_round_trip() {
        let (tmp, root) = root(1024);
        let w = root.write(&p("a/b/c.txt"), b"hello", WriteMode::Create, true).expect("create");
        assert_eq!(w, Written { written: 5, size: 5 });
        let mode = std::fs::metadata(tmp.path().join("a/b/c.txt")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
        assert_eq!(root.read(&p("a/b/c.txt"), 1, 3).expect("read"), Chunk { bytes: b"ell".to_vec(), size: 5 });
        assert_eq!(root.read(&p("a/b/c.txt"), 9, 3).expect("past the end").bytes, b"");

        let w = root.write(&p("a/b/c.txt"), b" world", WriteMode::Append, false).expect("append");
        assert_eq!(w, Written { written: 6, size: 11 });
        let w = root.write(&p("a/b/c.txt"), b"new", WriteMode::Overwrite, false).expect("overwrite");
        assert_eq!(w, Written { written: 3, size: 3 });
        assert_eq!(std::fs::read(tmp.path().join("a/b/c.txt")).expect("read back"), b"new");

        let listing = root.list(&p("a/b")).expect("list");
        assert_eq!(listing.names, ["c.txt"], "no temporary file is left behind");
        assert_eq!(listing.entry("c.txt"), Some(Entry { name: "c.txt".into(), kind: EntryKind::File, size: Some(3) }));
        let top = root.list(&p(".")).expect("list root");
        assert_eq!(
            (top.names.as_slice(), top.entry("a").map(|e| e.kind)),
            (&["a".to_owned()][..], Some(EntryKind::Dir))
        );
    }

    #[test]
    fn create_refuses_to_clobber_and_parents_must_exist() {
        let (_tmp, root) = root(1024);
        root.write(&p("f"), b"1", WriteMode::Create, false).expect("create");
        assert!(matches!(root.write(&p("f"), b"2", WriteMode::Create, false), Err(FsError::Exists { .. })));
        assert!(matches!(
            root.write(&p("missing/f"), b"2", WriteMode::Create, false),
            Err(FsError::NotFound { path }) if path == "missing"
        ));
        assert!(matches!(
            root.write(&p("f/g"), b"2", WriteMode::Create, true),
            Err(FsError::NotADirectory { path }) if path == "f"
        ));
    }

    #[test]
    fn size_limits_hold_for_every_mode() {
        let (_tmp, root) = root(4);
        assert!(matches!(
            root.write(&p("f"), b"12345", WriteMode::Create, false),
            Err(FsError::TooLarge { size: 5, limit: 4, .. })
        ));
        root.write(&p("f"), b"123", WriteMode::Create, false).expect("fits");
        assert!(matches!(
            root.write(&p("f"), b"45", WriteMode::Append, false),
            Err(FsError::TooLarge { size: 5, limit: 4, .. })
        ));
        assert_eq!(root.read(&p("f"), 0, 100).expect("unchanged").bytes, b"123");
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (tmp, root) = root(1024);
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), "s3cret").expect("write secret");
        symlink(outside.path(), tmp.path().join("out")).expect("dir link");
        symlink(outside.path().join("secret"), tmp.path().join("secret")).expect("file link");
        std::fs::write(tmp.path().join("inside"), "ok").expect("write inside");
        symlink("inside", tmp.path().join("inner")).expect("link within the root");

        let symlink_err = |r: Result<(), FsError>| matches!(r, Err(FsError::Symlink { .. }));
        assert!(symlink_err(root.read(&p("out/secret"), 0, 10).map(drop)));
        assert!(symlink_err(root.read(&p("secret"), 0, 10).map(drop)));
        assert!(symlink_err(root.read(&p("inner"), 0, 10).map(drop)), "even a link that stays inside");
        assert!(symlink_err(root.list(&p("out")).map(drop)));
        assert!(symlink_err(root.write(&p("out/new"), b"x", WriteMode::Create, false).map(drop)));
        assert!(symlink_err(root.write(&p("out/new"), b"x", WriteMode::Create, true).map(drop)));
        assert!(matches!(root.write(&p("secret"), b"x", WriteMode::Create, false), Err(FsError::Exists { .. })));
        assert!(symlink_err(root.write(&p("secret"), b"x", WriteMode::Overwrite, false).map(drop)));
        assert!(symlink_err(root.write(&p("secret"), b"x", WriteMode::Append, false).map(drop)));
        assert_eq!(std::fs::read_to_string(outside.path().join("secret")).expect("intact"), "s3cret");
        assert!(!outside.path().join("new").exists());
        let listing = root.list(&p(".")).expect("list");
        assert_eq!(listing.entry("out").map(|e| e.kind), Some(EntryKind::Symlink), "listed, not followed");
    }

    #[test]
    fn only_regular_files_are_read_or_written() {
        let (tmp, root) = root(1024);
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        assert!(matches!(root.read(&p("d"), 0, 10), Err(FsError::IsADirectory { .. })));
        assert!(matches!(root.write(&p("d"), b"x", WriteMode::Overwrite, false), Err(FsError::IsADirectory { .. })));
        assert!(matches!(root.read(&p("nothing"), 0, 10), Err(FsError::NotFound { path }) if path == "nothing"));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo").as_path(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // O_NONBLOCK: opening the FIFO does not hang waiting for a writer.
        assert!(matches!(root.read(&p("fifo"), 0, 10), Err(FsError::NotAFile { .. })));
        assert!(matches!(root.write(&p("fifo"), b"x", WriteMode::Append, false), Err(FsError::NotAFile { .. })));
    }

    #[test]
    fn non_utf8_names_are_skipped_and_counted() {
        use std::os::unix::ffi::OsStrExt;
        let (tmp, root) = root(1024);
        std::fs::write(tmp.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), "x").expect("write");
        std::fs::write(tmp.path().join("b"), "x").expect("write");
        std::fs::write(tmp.path().join("a"), "x").expect("write");
        let listing = root.list(&p(".")).expect("list");
        assert_eq!((listing.names, listing.skipped, listing.incomplete), (vec!["a".into(), "b".into()], 1, false));
    }
}
