//! `fcpd`, `fcp` and the `fcp-http` connector, for the tests that drive them (`e2e`,
//! `escape`).
//!
//! They belong to other packages, so cargo gives these tests no `CARGO_BIN_EXE_*` for
//! them: [`bins`] builds them once per test process with the cargo that runs the tests (a
//! no-op when they are fresh, so they are never stale) into the target folder this test
//! runs from. `FCP_BIN_DIR` names a folder that already holds both instead.
//!
//! A test target includes this file with `#[path = "../support/bins.rs"] mod bins;`
//! (`tests/support/` has no `main.rs`, so it is no test target of its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The workspace binaries the tests drive.
pub(crate) struct Bins {
    pub(crate) fcp: PathBuf,
    pub(crate) fcpd: PathBuf,
    /// The bundled `fcp.http` connector.
    pub(crate) http: PathBuf,
}

/// `fcp` and `fcpd`, built if needed (see the module docs).
pub(crate) fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let dir = match std::env::var_os("FCP_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => build_workspace_bins(),
        };
        let bins = Bins { fcp: dir.join("fcp"), fcpd: dir.join("fcpd"), http: dir.join("fcp-http") };
        for b in [&bins.fcp, &bins.fcpd, &bins.http] {
            assert!(b.is_file(), "{} is missing", b.display());
        }
        bins
    })
}

/// Builds `fcpd` and `fcp` into the target folder of this test executable and returns
/// `<target>/<profile>`.
fn build_workspace_bins() -> PathBuf {
    let dirs = build_dirs();
    let out = cargo()
        // No -p: features unify across the whole workspace, as in `cargo test --workspace`,
        // so what that already built is reused.
        .args(["build", "--locked", "--bin", "fcpd", "--bin", "fcp", "--bin", "fcp-http"])
        .arg("--profile")
        .arg(&dirs.profile)
        .arg("--target-dir")
        .arg(&dirs.target)
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build of fcpd, fcp and fcp-http failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dirs.profile_dir
}

/// Where this test executable was built: `<target>/<profile_dir>/deps/<test>-…`.
pub(crate) struct BuildDirs {
    /// The target folder.
    pub(crate) target: PathBuf,
    /// `<target>/<profile_dir>`, where cargo puts the binaries of that profile.
    pub(crate) profile_dir: PathBuf,
    /// The cargo profile (`dev` for `debug`).
    pub(crate) profile: String,
}

/// The folders of this test executable's build (see [`BuildDirs`]).
pub(crate) fn build_dirs() -> BuildDirs {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let target = profile_dir.parent().expect("<target>/<profile> has a parent").to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    BuildDirs { target, profile_dir, profile }
}

/// The cargo that runs the tests, in the workspace folder, with no stdin.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ sits in the workspace");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).stdin(Stdio::null());
    cmd
}
