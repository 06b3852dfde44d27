//! `fcp keygen`, `fcp package` and `fcp package inspect`, driven through the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared_dir() -> PathBuf {
    match std::env::var_os("FCP_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn manifest(name: &str) -> PathBuf {
    shared_dir().join("vectors/manifest").join(name)
}

fn fcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fcp")).args(args).output().expect("fcp runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("fcp exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

const BINARY: &[u8] = b"\x7fELF-pretend-connector-binary-0123456789";

/// A folder with a fresh key and a connector binary.
struct Workdir {
    dir: tempfile::TempDir,
    kid: String,
    public_key: String,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("publisher.key");
        let out = fcp(&["keygen", "--out", s(&key), "--json"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let j = json(&out);
        fs::write(dir.path().join("connector.bin"), BINARY).expect("binary");
        Workdir {
            kid: j["kid"].as_str().expect("kid").to_owned(),
            public_key: j["public_key"].as_str().expect("public_key").to_owned(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn package(&self, manifest: &Path, out: &str, extra: &[&str]) -> Output {
        let (key, bin, out) = (self.path("publisher.key"), self.path("connector.bin"), self.path(out));
        let mut args =
            vec!["package", "--manifest", s(manifest), "--binary", s(&bin), "--key", s(&key), "--out", s(&out)];
        args.extend_from_slice(extra);
        fcp(&args)
    }
}

#[test]
fn keygen_writes_an_owner_only_key_and_never_overwrites() {
    let w = Workdir::new();
    let key = w.path("publisher.key");
    assert_eq!(fs::metadata(&key).expect("meta").permissions().mode() & 0o777, 0o600);
    assert_eq!(w.kid.len(), 16);
    assert_eq!(w.public_key.len(), 64);
    let text = fs::read_to_string(&key).expect("key file");
    assert!(text.starts_with("fcp-ed25519-seed-v1\n"));
    assert_eq!(text.len(), "fcp-ed25519-seed-v1\n".len() + 65);

    let before = fs::read(&key).expect("read");
    let out = fcp(&["keygen", "--out", s(&key)]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&key).expect("read"), before);

    let other = w.path("second.key");
    let out = fcp(&["keygen", "--out", s(&other)]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("kid") && !stdout(&out).contains(&w.kid), "a new key each time");
}

#[test]
fn package_then_inspect_round_trips() {
    let w = Workdir::new();
    let out = w.package(&manifest("valid/manifest_minimal.toml"), "minimal.pkg", &["--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let built = json(&out);
    assert_eq!(built["publisher_kid"], w.kid.as_str());
    assert_eq!(built["connector_id"], "fcp.minimal");
    assert_eq!(built["connector_version"], "0.1.0");
    assert_eq!(built["binary_size"], BINARY.len());
    let pkg = w.path("minimal.pkg");
    assert_eq!(built["size"], fs::metadata(&pkg).expect("pkg").len());
    assert_eq!(fs::metadata(&pkg).expect("pkg").permissions().mode() & 0o777, 0o644);

    let out = fcp(&["package", "inspect", s(&pkg), "--json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let j = json(&out);
    assert_eq!(j["ok"], true);
    assert_eq!(j["format"], "fcp-package-v1");
    assert_eq!(j["connector_id"], "fcp.minimal");
    assert_eq!(j["connector_version"], "0.1.0");
    assert_eq!(j["publisher_kid"], w.kid.as_str());
    assert_eq!(j["publisher_key"], w.public_key.as_str());
    assert_eq!(j["binary_size"], BINARY.len());
    assert_eq!(j["binary_blake3"], built["binary_blake3"]);
    assert_eq!(j["package_blake3"], built["package_blake3"]);
    assert_eq!(j["platform"], std::env::consts::OS);
    assert_eq!(j["arch"], std::env::consts::ARCH);
    assert_eq!(j["signature"]["valid"], true);
    assert_eq!(j["manifest"]["valid"], true);

    let out = fcp(&["package", "inspect", s(&pkg)]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for want in ["fcp-package-v1", "fcp.minimal 0.1.0", &w.kid, "signature       valid"] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[test]
fn package_text_output_names_hash_and_kid() {
    let w = Workdir::new();
    let out = w.package(&manifest("connectors/exa.toml"), "exa.pkg", &["--platform", "macos", "--arch", "aarch64"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("package blake3") && text.contains(&w.kid) && text.contains("macos/aarch64"), "{text}");
    let j = json(&fcp(&["package", "inspect", "--json", s(&w.path("exa.pkg"))]));
    assert_eq!((j["platform"].as_str(), j["arch"].as_str()), (Some("macos"), Some("aarch64")));
}

#[test]
fn an_invalid_manifest_is_never_packaged() {
    let w = Workdir::new();
    let out = w.package(&manifest("invalid/derived_linear_system_exec_not_forbidden.toml"), "bad.pkg", &[]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("system_exec_not_forbidden"), "{}", stdout(&out));
    assert!(!w.path("bad.pkg").exists());
    let out = w.package(&manifest("invalid/derived_slack_unknown_key.toml"), "bad.pkg", &["--json"]);
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["violations"][0]["code"], "unknown_key");
    assert!(!w.path("bad.pkg").exists());
}

#[test]
fn a_key_file_open_to_others_is_refused() {
    let w = Workdir::new();
    let key = w.path("publisher.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = w.package(&manifest("valid/manifest_minimal.toml"), "m.pkg", &[]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains(s(&key)) && err.contains("0644"), "{err}");
    assert!(!w.path("m.pkg").exists());
    let names: Vec<_> = fs::read_dir(w.dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names.len(), 2, "nothing half-written: {names:?}");
}

#[test]
fn tampered_packages_are_refused_by_inspect() {
    let w = Workdir::new();
    assert_eq!(code(&w.package(&manifest("valid/manifest_minimal.toml"), "m.pkg", &[])), 0);
    let good = fs::read(w.path("m.pkg")).expect("pkg");
    let inspect = |bytes: &[u8]| {
        let p = w.path("tampered.pkg");
        fs::write(&p, bytes).expect("write");
        fcp(&["package", "inspect", "--json", s(&p)])
    };

    // One byte of the binary: the signature still holds, the hash does not.
    let at = good.windows(BINARY.len()).position(|win| win == BINARY).expect("binary inside");
    let mut bytes = good.clone();
    bytes[at + 5] ^= 0x01;
    let out = inspect(&bytes);
    assert_eq!(code(&out), 1);
    let j = json(&out);
    assert_eq!(
        (j["ok"].as_bool(), j["signature"]["code"].as_str()),
        (Some(false), Some("package.binary_hash_mismatch"))
    );

    // One byte of the manifest text, which the signature covers.
    let at = good.windows(11).position(|win| win == b"fcp.minimal").expect("manifest inside");
    let mut bytes = good.clone();
    bytes[at] = b'g';
    let j = json(&inspect(&bytes));
    assert_eq!(j["signature"]["code"], "package.bad_signature");

    // One byte of the signature (key `signature`, then a 64-byte bstr head 0x58 0x40).
    let marker = [b"\x69signature".as_slice(), &[0x58, 0x40]].concat();
    let at = good.windows(marker.len()).position(|win| win == marker.as_slice()).expect("signature inside");
    let mut bytes = good.clone();
    bytes[at + marker.len() + 10] ^= 0x80;
    let out = inspect(&bytes);
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["signature"]["code"], "package.bad_signature");

    // Truncated, or trailing garbage: not a package at all.
    for bytes in [&good[..good.len() - 1], &[good.as_slice(), b"x"].concat()] {
        let out = inspect(bytes);
        assert_eq!(code(&out), 1);
        let j = json(&out);
        assert_eq!((j["ok"].as_bool(), j["error"]["code"].as_str()), (Some(false), Some("package.malformed")));
    }
    let out = fcp(&["package", "inspect", s(&w.path("tampered.pkg"))]);
    assert!(stdout(&out).contains("refused: package.malformed"), "{}", stdout(&out));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let w = Workdir::new();
    assert_eq!(code(&fcp(&["package"])), 2);
    assert_eq!(code(&fcp(&["package", "--manifest", "m.toml"])), 2);
    assert_eq!(code(&fcp(&["package", "inspect"])), 2);
    assert_eq!(code(&fcp(&["package", "inspect", s(&w.path("missing.pkg"))])), 2);
    let out = w.package(&manifest("valid/manifest_minimal.toml"), "m.pkg", &["--platform", "plan9"]);
    assert_eq!(code(&out), 2);
    let missing_bin = fcp(&[
        "package",
        "--manifest",
        s(&manifest("valid/manifest_minimal.toml")),
        "--binary",
        s(&w.path("nope.bin")),
        "--key",
        s(&w.path("publisher.key")),
        "--out",
        s(&w.path("m.pkg")),
    ]);
    assert_eq!(code(&missing_bin), 2);
    assert!(stderr(&missing_bin).contains("nope.bin"));
    assert!(!w.path("m.pkg").exists());
}

#[test]
fn help_describes_each_command() {
    for args in [&["keygen", "--help"][..], &["package", "--help"], &["package", "inspect", "--help"]] {
        let out = fcp(args);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(stdout(&out).contains("--json"), "{args:?}: {}", stdout(&out));
    }
    let text = stdout(&fcp(&["package", "--help"]));
    for flag in ["--manifest", "--binary", "--key", "--out", "--platform", "--arch", "inspect"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}
