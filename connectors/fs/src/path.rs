//! Paths an agent names, parsed before any file is touched: relative to the root, with
//! no `..`, and only normal components (house style §3.2 point 2: parse, don't validate).

use std::fmt;

/// The longest path an agent may name, in bytes (Linux's `PATH_MAX`).
pub(crate) const MAX_PATH_BYTES: usize = 4096;
/// The longest single component, in bytes (Linux's `NAME_MAX`).
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// Why a path was refused before it reached the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRejection {
    /// It starts with `/`.
    #[error("absolute paths are refused; name a path relative to the root")]
    Absolute,
    /// A component is `..`.
    #[error("`..` components are refused")]
    ParentComponent,
    /// It contains a NUL byte, which no file name can hold.
    #[error("NUL bytes are refused")]
    Nul,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A component is longer than [`MAX_NAME_BYTES`].
    #[error("a component is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    /// It names the root itself where a file is needed.
    #[error("names the root directory, not a file")]
    Root,
}

/// A path below the root: zero or more normal components. Empty and `.` components are
/// dropped (`a//./b` is `a/b`); zero components is the root itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelPath {
    components: Vec<String>,
}

impl RelPath {
    /// Parses what an agent sent.
    pub(crate) fn parse(raw: &str) -> Result<RelPath, PathRejection> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathRejection::TooLong);
        }
        if raw.contains('\0') {
            return Err(PathRejection::Nul);
        }
        if raw.starts_with('/') {
            return Err(PathRejection::Absolute);
        }
        let mut components = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(PathRejection::ParentComponent),
                c if c.len() > MAX_NAME_BYTES => return Err(PathRejection::NameTooLong),
                c => components.push(c.to_owned()),
            }
        }
        Ok(RelPath { components })
    }

    /// Parses a path that must name something below the root (a file to read or write).
    pub(crate) fn parse_file(raw: &str) -> Result<RelPath, PathRejection> {
        let path = RelPath::parse(raw)?;
        if path.components.is_empty() {
            return Err(PathRejection::Root);
        }
        Ok(path)
    }

    /// The components, root first.
    pub(crate) fn components(&self) -> &[String] {
        &self.components
    }

    /// The parent directory's components and the last name; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(&[String], &str)> {
        self.components.split_last().map(|(name, parent)| (parent, name.as_str()))
    }

    /// The first `n` components, for error messages about a prefix.
    pub(crate) fn prefix(&self, n: usize) -> RelPath {
        RelPath { components: self.components.iter().take(n).cloned().collect() }
    }
}

/// The normalised form: components joined by `/`, or `.` for the root.
impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.components.is_empty() {
            return f.write_str(".");
        }
        f.write_str(&self.components.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_normalised() {
        let p = RelPath::parse("a//./b/c.txt").expect("valid");
        assert_eq!(p.components(), ["a", "b", "c.txt"]);
        assert_eq!(p.to_string(), "a/b/c.txt");
        assert_eq!(p.split_last(), Some((&p.components()[..2], "c.txt")));
        assert_eq!(p.prefix(1).to_string(), "a");
        assert_eq!(RelPath::parse("dir/").expect("valid").to_string(), "dir");
        // Names that look odd are still names: dots inside, leading dots, backslashes.
        assert_eq!(RelPath::parse("...").expect("valid").components(), ["..."]);
        assert_eq!(RelPath::parse(".hidden/a..b").expect("valid").components(), [".hidden", "a..b"]);
        assert_eq!(RelPath::parse("a\\..\\b").expect("valid").components(), ["a\\..\\b"]);
    }

    #[test]
    fn the_root_is_a_directory_but_not_a_file() {
        for root in ["", ".", "./", ".//."] {
            let p = RelPath::parse(root).expect("the root");
            assert_eq!((p.components().len(), p.to_string()), (0, ".".to_owned()));
            assert_eq!(p.split_last(), None);
            assert_eq!(RelPath::parse_file(root), Err(PathRejection::Root));
        }
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(RelPath::parse("/etc/passwd"), Err(PathRejection::Absolute));
        assert_eq!(RelPath::parse("//etc"), Err(PathRejection::Absolute));
        assert_eq!(RelPath::parse(".."), Err(PathRejection::ParentComponent));
        assert_eq!(RelPath::parse("a/../../b"), Err(PathRejection::ParentComponent));
        // Even a `..` that would stay inside the root: the walk never goes up.
        assert_eq!(RelPath::parse("a/../a"), Err(PathRejection::ParentComponent));
        assert_eq!(RelPath::parse("a/.."), Err(PathRejection::ParentComponent));
        assert_eq!(RelPath::parse("a\0b"), Err(PathRejection::Nul));
    }

    #[test]
    fn lengths_are_bounded() {
        let name = "n".repeat(MAX_NAME_BYTES);
        assert_eq!(RelPath::parse(&name).map(|p| p.components().len()), Ok(1));
        assert_eq!(RelPath::parse(&format!("{name}x")), Err(PathRejection::NameTooLong));
        let long = "a/".repeat(MAX_PATH_BYTES / 2 + 1);
        assert_eq!(RelPath::parse(&long), Err(PathRejection::TooLong));
    }
}
