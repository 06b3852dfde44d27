//! `fcp vectors check` end to end: the real binary over the real vector folders,
//! plus its failure and usage exits.

use std::path::PathBuf;
use std::process::Command;

fn shared_vectors() -> PathBuf {
    match std::env::var_os("FCP_SHARED_DIR") {
        Some(d) => PathBuf::from(d).join("vectors"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

fn fcp(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fcp")).args(args).output().expect("fcp runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_shared_and_own_vector_passes() {
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors");
    let (code, out) = fcp(&["vectors".as_ref(), "check".as_ref(), shared_vectors().as_os_str(), ours.as_os_str()]);
    let last = out.lines().last().unwrap_or_default().to_owned();
    assert!(last.ends_with(" passed, 0 failed, 0 skipped"), "summary line: {last}\n{out}");
    let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).expect("count");
    assert!(passed >= 200, "only {passed} cases ran");
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.starts_with("PASS ")).count(), passed);
}

#[test]
fn a_wrong_expectation_fails_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = serde_json::json!({
        "kind": "schema_hash", "recipe": "test", "description": "test",
        "cases": [
            {"name": "right", "schema": {"namespace": "fcp.test", "name": "GoldenStruct", "version": "1.0.0"},
             "expected": {"schema_hash": "824698784c7724fe18470ecdd2c2199abb4632c25998c9d143adab875e8ca5d7",
                          "preimage": "464350322d534348454d412d563108000000000000006663702e746573740c00000000000000476f6c64656e5374727563740500000000000000312e302e30"}},
            {"name": "wrong", "schema": {"namespace": "fcp.test", "name": "GoldenStruct", "version": "1.0.0"},
             "expected": {"schema_hash": "00", "preimage": "00"}},
            {"name": "bad_semver", "schema": {"namespace": "a", "name": "b", "version": "1.0"},
             "expected": {"error": "invalid_semver"}}
        ]
    });
    std::fs::write(dir.path().join("t.json"), doc.to_string()).expect("write");
    let (code, out) = fcp(&["vectors".as_ref(), "check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PASS schema_hash/right"), "{out}");
    assert!(out.contains("FAIL schema_hash/wrong: "), "{out}");
    assert!(out.contains("PASS schema_hash/bad_semver"), "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 1 failed, 0 skipped"));

    let (code, out) = fcp(&["vectors".as_ref(), "check".as_ref(), "--json".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json output");
    assert_eq!((v["passed"].as_u64(), v["failed"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn unknown_kinds_fail_and_missing_folders_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = serde_json::json!({"kind": "no_such_kind", "cases": [{"name": "x", "expected": {}}]});
    std::fs::write(dir.path().join("u.json"), doc.to_string()).expect("write");
    let (code, out) = fcp(&["vectors".as_ref(), "check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL no_such_kind/x: no implementation"), "{out}");
    let (code, _) = fcp(&["vectors".as_ref(), "check".as_ref(), "/nonexistent/vectors".as_ref()]);
    assert_eq!(code, 2);
}
