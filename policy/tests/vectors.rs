//! Runs every golden-vector case of this crate's kinds: `../shared/vectors/` (the
//! FCP reference implementation's bytes) and `spec/vectors/` (our own).
//! `FCP_VECTORS_DIR` (colon-separated) overrides the folders.

use std::path::PathBuf;

use fcp_policy::conformance::{run_case, Outcome, KINDS};

fn vector_dirs() -> Vec<PathBuf> {
    if let Ok(dirs) = std::env::var("FCP_VECTORS_DIR") {
        return dirs.split(':').map(PathBuf::from).collect();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![root.join("../shared/vectors"), root.join("spec/vectors")]
}

#[test]
fn every_case_of_every_kind_passes() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for dir in vector_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let text = std::fs::read_to_string(&path).expect("vector file is readable");
            let doc: serde_json::Value = serde_json::from_str(&text).expect("vector file is JSON");
            let kind = doc["kind"].as_str().expect("vector file names its kind");
            let base = dir.clone();
            let load = move |rel: &str| std::fs::read_to_string(base.join(rel)).map_err(|e| format!("{rel}: {e}"));
            for case in doc["cases"].as_array().expect("vector file has cases") {
                let name = case["name"].as_str().unwrap_or("?");
                let Some(outcome) = run_case(kind, case, &load) else { continue };
                *seen.entry(kind.to_owned()).or_default() += 1;
                if let Outcome::Fail(why) = outcome {
                    failures.push(format!("{}: {kind}/{name}: {why}", path.display()));
                }
            }
        }
    }
    let missing: Vec<_> = KINDS.iter().filter(|k| !seen.contains_key(**k)).collect();
    assert!(missing.is_empty(), "no cases found for kinds {missing:?} (looked in {:?})", vector_dirs());
    assert!(failures.is_empty(), "{} vector case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
