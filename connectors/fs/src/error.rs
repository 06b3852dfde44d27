//! What a file operation fails with, one variant per failed step, and how each travels
//! to the caller in the FCP taxonomy (host-protocol §6.2).

use std::io;

use fcp_sdk::{ErrorCode, FcpError};

use crate::path::PathRejection;

/// A failed `fs.*` operation. Paths are the normalised relative form (`a/b`), never the
/// root's absolute path, so replies do not reveal where the root lives.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The input is not what the operation takes.
    #[error("{0}")]
    BadInput(String),
    /// The path was refused before any file was touched.
    #[error("path {path:?}: {reason}")]
    BadPath {
        /// As sent.
        path: String,
        /// Why.
        reason: PathRejection,
    },
    /// A component is a symbolic link; fcp.fs never follows one.
    #[error("{path} is a symbolic link, which fcp.fs never follows")]
    Symlink {
        /// The path up to and including the link.
        path: String,
    },
    /// Nothing at that path.
    #[error("{path} does not exist")]
    NotFound {
        /// The path up to the missing component.
        path: String,
    },
    /// A directory was needed.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The offending prefix.
        path: String,
    },
    /// A regular file was needed and this is a directory.
    #[error("{path} is a directory")]
    IsADirectory {
        /// The path.
        path: String,
    },
    /// A regular file was needed and this is a FIFO, socket or device.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: String,
    },
    /// `mode = "create"` and the file exists.
    #[error("{path} already exists; write with mode \"overwrite\" or \"append\" to change it")]
    Exists {
        /// The path.
        path: String,
    },
    /// The kernel refused access.
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The path.
        path: String,
    },
    /// The write would make the file larger than the configured `max_file_bytes`.
    #[error("{path} would be {size} bytes, over max_file_bytes ({limit})")]
    TooLarge {
        /// The path.
        path: String,
        /// The size it would have.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `encoding = "utf8"` and the bytes are not UTF-8.
    #[error("{path} is not UTF-8 at byte {at}; read it with encoding \"base64\"")]
    NotUtf8 {
        /// The path.
        path: String,
        /// The file offset of the first bad byte.
        at: u64,
    },
    /// The file system is full or over quota.
    #[error("no space left writing {path}")]
    NoSpace {
        /// The path.
        path: String,
    },
    /// Any other I/O failure.
    #[error("{step} {path}")]
    Io {
        /// What was being done (`open`, `read`, `rename`, …).
        step: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// Classifies an I/O error from `step` on `path`.
    pub(crate) fn io(step: &'static str, path: String, source: io::Error) -> FsError {
        match source.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
            Some(rustix::io::Errno::NOENT) => FsError::NotFound { path },
            Some(rustix::io::Errno::NOTDIR) => FsError::NotADirectory { path },
            Some(rustix::io::Errno::ISDIR) => FsError::IsADirectory { path },
            Some(rustix::io::Errno::EXIST) => FsError::Exists { path },
            Some(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => FsError::PermissionDenied { path },
            Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT) => FsError::NoSpace { path },
            Some(rustix::io::Errno::LOOP) => FsError::Symlink { path },
            // A FIFO without a reader, or a device without a driver, opened O_NONBLOCK.
            Some(rustix::io::Errno::NXIO) => FsError::NotAFile { path },
            _ => FsError::Io { step, path, source },
        }
    }

    /// [`FsError::io`] for a rustix errno.
    pub(crate) fn errno(step: &'static str, path: String, errno: rustix::io::Errno) -> FsError {
        FsError::io(step, path, errno.into())
    }
}

/// The blame split: a bad request is `InvalidRequest` (1003); a path the connector will
/// not touch is `ResourceNotAllowed` (3004); a missing one `ResourceNotFound` (6001); a
/// full disk `ResourceExhausted` (6002, retryable); anything else `Internal` (9001).
impl From<FsError> for FcpError {
    fn from(e: FsError) -> FcpError {
        let message = e.to_string();
        match e {
            FsError::BadInput(_)
            | FsError::BadPath { .. }
            | FsError::NotADirectory { .. }
            | FsError::IsADirectory { .. }
            | FsError::TooLarge { .. }
            | FsError::NotUtf8 { .. } => FcpError::InvalidRequest { code: ErrorCode::INVALID_PARAMS, message },
            FsError::Symlink { .. } | FsError::NotAFile { .. } | FsError::PermissionDenied { .. } => {
                FcpError::ResourceNotAllowed { resource: message }
            }
            FsError::NotFound { path } => FcpError::ResourceNotFound { resource: path },
            FsError::Exists { .. } => FcpError::Conflict { message },
            FsError::NoSpace { .. } => FcpError::ResourceExhausted { resource: message },
            FsError::Io { source, .. } => FcpError::internal(format!("{message}: {source}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        let io = |errno: rustix::io::Errno| FsError::io("open", "a/b".into(), errno.into());
        assert!(matches!(io(rustix::io::Errno::NOENT), FsError::NotFound { path } if path == "a/b"));
        assert!(matches!(io(rustix::io::Errno::LOOP), FsError::Symlink { .. }));
        assert!(matches!(io(rustix::io::Errno::NOSPC), FsError::NoSpace { .. }));
        assert!(matches!(io(rustix::io::Errno::IO), FsError::Io { step: "open", .. }));
    }

    #[test]
    fn blame_maps_to_the_taxonomy() {
        let code = |e: FsError| FcpError::from(e).code();
        let bad = FsError::BadPath { path: "/x".into(), reason: PathRejection::Absolute };
        assert_eq!(code(bad), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(FsError::Symlink { path: "l".into() }), ErrorCode::RESOURCE_NOT_ALLOWED);
        assert_eq!(code(FsError::NotFound { path: "n".into() }), ErrorCode::RESOURCE_NOT_FOUND);
        assert_eq!(code(FsError::Exists { path: "e".into() }), ErrorCode::CONFLICT);
        assert_eq!(code(FsError::NoSpace { path: "f".into() }), ErrorCode::RESOURCE_EXHAUSTED);
        let io = FsError::Io { step: "read", path: "f".into(), source: io::Error::other("boom") };
        assert_eq!(FcpError::from(io), FcpError::internal("read f: boom"));
        let e = FcpError::from(FsError::Symlink { path: "l".into() });
        assert_eq!(e.to_string(), "Resource not allowed: l is a symbolic link, which fcp.fs never follows");
    }
}
