//! `fcp manifest check` and `fcp manifest fix`, driven through the real binary against the
//! shared manifest vectors.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fcp_policy::manifest::{fill_defaults, fix_interface_hash};

fn shared_dir() -> PathBuf {
    match std::env::var_os("FCP_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn vectors() -> PathBuf {
    shared_dir().join("vectors")
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

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

/// Each file's expected violation codes, from `manifest_validation.json`.
fn expected() -> Vec<(PathBuf, bool, BTreeSet<String>)> {
    let text = fs::read_to_string(vectors().join("manifest_validation.json")).expect("manifest_validation.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let path = vectors().join(case["manifest"].as_str().expect("manifest path"));
            let valid = case["expected"]["valid"].as_bool().expect("valid");
            let codes = case["expected"]["violations"]
                .as_array()
                .expect("violations")
                .iter()
                .map(|c| c.as_str().expect("code").to_owned())
                .collect();
            (path, valid, codes)
        })
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn every_valid_and_connector_manifest_checks_valid() {
    for dir in ["valid", "connectors"] {
        for file in toml_files(&vectors().join("manifest").join(dir)) {
            let out = fcp(&["manifest", "check", path_str(&file)]);
            assert_eq!(code(&out), 0, "{}: {}", file.display(), stdout(&out));
            assert!(stdout(&out).contains(": valid ("), "{}", stdout(&out));

            let out = fcp(&["manifest", "check", "--json", path_str(&file)]);
            assert_eq!(code(&out), 0);
            let j = json(&out);
            assert_eq!(j["valid"], true);
            assert_eq!(j["violations"], serde_json::json!([]));
            assert!(j["connector_id"].as_str().is_some_and(|s| !s.is_empty()), "{j}");
            assert!(j["interface_hash"].as_str().is_some_and(|s| s.starts_with("blake3-256:fcp.interface.v2:")));
        }
    }
}

#[test]
fn every_invalid_manifest_exits_1_with_its_codes() {
    let expected = expected();
    let invalid = toml_files(&vectors().join("manifest/invalid"));
    for file in &invalid {
        let want = expected
            .iter()
            .find(|(p, _, _)| p.file_name() == file.file_name())
            .unwrap_or_else(|| panic!("{} is not listed in manifest_validation.json", file.display()));
        assert!(!want.1, "{} is listed as valid", file.display());

        let out = fcp(&["manifest", "check", path_str(file)]);
        assert_eq!(code(&out), 1, "{}", file.display());
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty());
        // One violation a line: `code path: message`.
        let mut printed = BTreeSet::new();
        for line in &lines {
            let (head, message) = line.split_once(": ").unwrap_or_else(|| panic!("not `code path: message`: {line}"));
            let (code, path) = head.split_once(' ').unwrap_or_else(|| panic!("no path: {line}"));
            assert!(!path.is_empty() && !message.is_empty(), "{line}");
            printed.insert(code.to_owned());
        }
        assert!(
            printed.is_superset(&want.2),
            "{}: printed {printed:?}, expected at least {:?}",
            file.display(),
            want.2
        );

        let out = fcp(&["manifest", "check", "--json", path_str(file)]);
        assert_eq!(code(&out), 1);
        let j = json(&out);
        assert_eq!(j["valid"], false);
        let violations = j["violations"].as_array().expect("violations");
        assert_eq!(violations.len(), lines.len(), "JSON and text list the same violations");
        let codes: BTreeSet<String> = violations.iter().map(|v| v["code"].as_str().expect("code").to_owned()).collect();
        assert_eq!(codes, printed);
        assert!(violations.iter().all(|v| v["path"].is_string() && v["message"].is_string()));
    }
    // The JSON index and the folder agree, so no file escapes the test.
    let listed = expected.iter().filter(|(p, valid, _)| !valid && p.starts_with(vectors().join("manifest/invalid")));
    assert_eq!(listed.count(), invalid.len());
}

#[test]
fn a_missing_file_or_bad_usage_exits_2() {
    let out = fcp(&["manifest", "check", "/nonexistent/manifest.toml"]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/manifest.toml"));
    assert_eq!(code(&fcp(&["manifest", "check", "--json", "/nonexistent/manifest.toml"])), 2);
    assert_eq!(code(&fcp(&["manifest", "fix", "/nonexistent/manifest.toml"])), 2);
    assert_eq!(code(&fcp(&["manifest", "check"])), 2);
    assert_eq!(code(&fcp(&["manifest", "check", "--frobnicate", "x.toml"])), 2);
    // A folder is not a manifest.
    assert_eq!(code(&fcp(&["manifest", "check", path_str(&vectors())])), 2);
}

#[test]
fn non_utf8_is_an_invalid_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    fs::write(&file, b"[manifest]\nformat = \"\xff\"\n").expect("write");
    let out = fcp(&["manifest", "check", path_str(&file)]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).starts_with("toml_syntax (document): not utf-8"), "{}", stdout(&out));
}

#[test]
fn fix_repairs_a_wrong_hash_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    let original = fs::read_to_string(vectors().join("manifest/invalid/derived_github_wrong_interface_hash.toml"))
        .expect("vector");
    fs::write(&file, &original).expect("copy");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = path_str(&file);

    let out = fcp(&["manifest", "check", f]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).starts_with("interface_hash_mismatch manifest.interface_hash: "), "{}", stdout(&out));

    let out = fcp(&["manifest", "fix", "--check", f]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("stale"));
    assert_eq!(fs::read_to_string(&file).expect("read"), original, "--check writes nothing");

    let out = fcp(&["manifest", "fix", "--json", f]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let j = json(&out);
    assert_eq!((j["written"].as_bool(), j["up_to_date"].as_bool()), (Some(true), Some(false)));
    assert_eq!(j["interface_hash_stale"], true);
    assert_eq!(j["violations"], serde_json::json!([]));
    let fixed = fs::read_to_string(&file).expect("read");
    let hash = j["interface_hash"].as_str().expect("hash");
    assert!(fixed.contains(hash));
    // The file is the library's fill, then its hash fix; the filled paths are reported.
    let filled = fill_defaults(&original).expect("fills");
    assert_eq!(fixed, fix_interface_hash(&filled.text).expect("fixes"));
    assert_eq!(j["filled"], serde_json::json!(filled.filled));
    // Of the lines already there, only the hash line changed; the rest are added lines.
    let mut rest = fixed.lines();
    for line in original.lines() {
        let want = if line.starts_with("interface_hash = ") {
            format!("interface_hash = \"{hash}\"")
        } else {
            line.to_owned()
        };
        assert!(rest.any(|l| l == want), "{line:?} is gone");
    }
    let mode = fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "fix keeps the file's mode");
    let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, ["m.toml"], "no temporary file is left behind");

    assert_eq!(code(&fcp(&["manifest", "fix", "--check", f])), 0);
    assert_eq!(code(&fcp(&["manifest", "check", f])), 0);
    let out = fcp(&["manifest", "fix", f]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("already up to date"));
    let out = fcp(&["manifest", "fix", "--check", "--json", f]);
    assert_eq!(json(&out)["up_to_date"], true);
}

#[test]
fn fix_check_judges_the_hash_and_defaults_not_other_violations() {
    // Invalid for other reasons, but its hash is right (vectors README §5.17).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    fs::copy(vectors().join("manifest/invalid/manifest_anthropic_bad.toml"), &file).expect("copy");
    let f = path_str(&file);
    let before = json(&fcp(&["manifest", "check", "--json", f]));

    let out = fcp(&["manifest", "fix", "--check", "--json", f]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let j = json(&out);
    assert_eq!((j["up_to_date"].as_bool(), j["interface_hash_stale"].as_bool()), (Some(false), Some(false)));
    assert!(!j["filled"].as_array().expect("filled").is_empty(), "{j}");
    assert!(!j["violations"].as_array().expect("violations").is_empty());

    // Other violations do not stop the fix, and the fix does not change them.
    let out = fcp(&["manifest", "fix", f]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other violation(s) remain"));
    assert_eq!(json(&fcp(&["manifest", "check", "--json", f])), before);
    let out = fcp(&["manifest", "fix", "--check", "--json", f]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let j = json(&out);
    assert_eq!((j["up_to_date"].as_bool(), j["filled"].clone()), (Some(true), serde_json::json!([])));
    assert_eq!(j["violations"], before["violations"]);
}

#[test]
fn fix_writes_out_defaults_and_check_reports_them() {
    // Valid with an up-to-date hash, but silent on status, revocation_freshness and [timeouts].
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    let original = fs::read_to_string(vectors().join("manifest/valid/manifest_minimal.toml")).expect("vector");
    fs::write(&file, &original).expect("copy");
    let f = path_str(&file);
    let checked = json(&fcp(&["manifest", "check", "--json", f]));
    assert_eq!(checked["valid"], true);
    let want = [
        "connector.status",
        "provides.operations.minimal_op.revocation_freshness",
        "timeouts.request_timeout_ms",
        "timeouts.connect_timeout_ms",
        "timeouts.wall_clock_timeout_ms",
    ];

    let out = fcp(&["manifest", "fix", "--check", f]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(format!("{f}: 5 default(s) to write out").as_str()), "{text}");
    assert_eq!(lines.collect::<Vec<_>>(), want.map(|p| format!("would fill {p}")));
    assert_eq!(fs::read_to_string(&file).expect("read"), original, "--check writes nothing");
    let j = json(&fcp(&["manifest", "fix", "--check", "--json", f]));
    assert_eq!((j["up_to_date"].as_bool(), j["written"].as_bool()), (Some(false), Some(false)));
    assert_eq!((j["interface_hash_stale"].clone(), j["filled"].clone()), (false.into(), serde_json::json!(want)));

    let out = fcp(&["manifest", "fix", f]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{f}: 5 default(s) written out\n")), "{text}");
    assert!(text.contains("filled timeouts.wall_clock_timeout_ms\n"), "{text}");
    let fixed = fs::read_to_string(&file).expect("read");
    for line in
        ["status = \"ready\"\n", "revocation_freshness = \"safe\"\n", "\n[timeouts]\nrequest_timeout_ms = 30000\n"]
    {
        assert!(fixed.contains(line), "{line:?} not in:\n{fixed}");
    }
    // The comments stay, and the manifest means what it meant: same hash, still valid.
    assert!(fixed.starts_with(original.lines().next().expect("comment")));
    assert_eq!(json(&fcp(&["manifest", "check", "--json", f])), checked);

    assert_eq!(code(&fcp(&["manifest", "fix", "--check", f])), 0);
    let out = fcp(&["manifest", "fix", "--json", f]);
    assert_eq!(code(&out), 0);
    let j = json(&out);
    assert_eq!((j["up_to_date"].as_bool(), j["written"].as_bool()), (Some(true), Some(false)));
    assert_eq!(fs::read_to_string(&file).expect("read"), fixed, "a second fix changes nothing");
}

#[test]
fn fix_refuses_what_it_cannot_recompute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    fs::write(&file, "this is = not [toml").expect("write");
    let out = fcp(&["manifest", "fix", path_str(&file)]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("toml_syntax"), "{}", stdout(&out));
    assert_eq!(fs::read_to_string(&file).expect("read"), "this is = not [toml");
}

#[test]
fn help_describes_each_command() {
    for args in [&["manifest", "check", "--help"][..], &["manifest", "fix", "--help"]] {
        let out = fcp(args);
        assert_eq!(code(&out), 0);
        let text = stdout(&out);
        assert!(text.contains("--json") && text.contains("Exits"), "{text}");
    }
}
