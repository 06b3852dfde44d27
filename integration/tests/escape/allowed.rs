//! The positive side: what the manifest grants works. The program reads its read-only
//! folder, writes its state dir, and runs with the jail's ids and no capability.

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde_json::{json, Value};

use crate::harness::{privileged, Findings, Jail, Outcome, CONFIG};

#[test]
fn the_program_reads_its_paths_and_writes_its_state_dir() {
    if !privileged("the_program_reads_its_paths_and_writes_its_state_dir") {
        return;
    }
    let jail = Jail::strict();
    let mut findings = Findings::default();
    let allowed = |args: &[&str], findings: &mut Findings| -> Value {
        let run = jail.run(args);
        match run.outcome() {
            Outcome::Allowed(report) => return report,
            other => findings.check(false, || format!("`{}` was refused: {other}\n{run}", args.join(" "))),
        }
        Value::Null
    };

    let config = jail.readonly.join("config").display().to_string();
    let report = allowed(&["read", &config], &mut findings);
    findings.check(report.is_null() || report["content"] == CONFIG, || format!("read {config}: {report}"));
    let report = allowed(&["list", &jail.readonly.display().to_string()], &mut findings);
    findings.check(report.is_null() || report["entries"] == json!(["config"]), || format!("list: {report}"));

    let written = jail.state.join("written");
    allowed(&["write", &written.display().to_string()], &mut findings);
    let on_host = fs::read_to_string(&written).unwrap_or_default();
    findings.check(on_host == "fcp-hostile\n", || format!("the state dir file holds {on_host:?} on the host"));
    if let Ok(meta) = fs::metadata(&written) {
        findings.check((meta.uid(), meta.gid()) == (65534, 65534), || {
            format!("the state dir file belongs to {}:{}", meta.uid(), meta.gid())
        });
    }

    let run = jail.run(&["whoami"]);
    match run.outcome() {
        Outcome::Allowed(report) => {
            let ids = json!([65534, 65534, 65534]);
            findings.check(report["uids"] == ids && report["gids"] == ids, || format!("ids: {report}"));
            for set in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
                findings.check(report["status"][set] == "0000000000000000", || format!("{set}: {report}"));
            }
            findings.check(report["status"]["NoNewPrivs"] == "1", || format!("no_new_privs: {report}"));
            findings.check(report["status"]["Seccomp"] == "2", || format!("seccomp filter mode: {report}"));
        }
        other => findings.check(false, || format!("whoami: {other}\n{run}")),
    }
    let summary = run.summary();
    findings.check(summary["backend"] == "linux-jail", || format!("backend: {summary}"));
    findings.check(summary["missing"] == json!([]), || format!("layers missing in a strict jail: {summary}"));
    findings.check(summary["exit_code"] == 0 && summary["signal"].is_null() && summary["breach"].is_null(), || {
        format!("a clean exit: {summary}")
    });
    findings.assert_none();
}
