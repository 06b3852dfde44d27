//! The macOS and Windows translations of three manifests, compared byte for byte with
//! the golden files in `tests/golden/` (`seatbelt_<case>.sb`, `appcontainer_<case>.json`).
//! `FCP_UPDATE_GOLDEN=1` rewrites the files instead; review the diff before committing.

use std::collections::BTreeSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::{Path, PathBuf};

use fcp_policy::jail::{Arch, Binary, JailInputs};
use fcp_policy::manifest::{fix_interface_hash, Manifest};
use fcp_policy::platform::appcontainer::{self, AppContainerInputs};
use fcp_policy::platform::{seatbelt, Egress};

/// Everything of a manifest but its id and `[sandbox]` section.
const MANIFEST: &str = r#"
[manifest]
format = "fcp-connector-manifest"
schema_version = "2.1"
min_mesh_version = "2.0.0"
min_protocol = "fcp2-sym/2.0"
protocol_features = []
max_datagram_bytes = 1200
interface_hash = "blake3-256:fcp.interface.v2:0000000000000000000000000000000000000000000000000000000000000000"

[connector]
id = "CONNECTOR_ID"
name = "Golden Connector"
version = "0.1.0"
description = "A connector for the platform golden files"
archetypes = ["operational"]
format = "native"

[zones]
home = "z:work"
allowed_sources = ["z:work"]
allowed_targets = ["z:work"]
forbidden = []

[capabilities]
required = ["golden.op"]
optional = []
forbidden = ["system.exec"]

[provides.operations.golden_op]
description = "Golden operation"
capability = "golden.op"
risk_level = "low"
safety_tier = "safe"
requires_approval = "none"
idempotency = "none"
input_schema = { type = "object" }
output_schema = { type = "object" }
"#;

/// One manifest and the facts the caller knows on each platform.
struct Case {
    name: &'static str,
    connector_id: &'static str,
    /// The `[sandbox]` section with POSIX paths (macOS).
    posix_sandbox: &'static str,
    /// The same section with Windows paths.
    windows_sandbox: &'static str,
    egress: Egress,
    windows_libraries: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let proxy = Egress::LoopbackProxy { port: NonZeroU16::new(3128).expect("non-zero") };
    let strict = r#"
[sandbox]
profile = "strict"
memory_mb = 32
cpu_percent = 10
wall_clock_timeout_ms = 10000
fs_readonly_paths = []
fs_writable_paths = []
deny_exec = true
deny_ptrace = true
"#;
    let network = r#"
[sandbox]
profile = "strict"
memory_mb = 64
cpu_percent = 20
wall_clock_timeout_ms = 90000
fs_readonly_paths = []
fs_writable_paths = ["$CONNECTOR_STATE/cache"]
deny_exec = true
deny_ptrace = true
"#;
    vec![
        Case {
            name: "strict_deny_exec",
            connector_id: "fcp.echo",
            posix_sandbox: strict,
            windows_sandbox: strict,
            egress: Egress::None,
            windows_libraries: &[],
        },
        Case {
            name: "moderate_writable_state",
            connector_id: "fcp.files",
            posix_sandbox: r#"
[sandbox]
profile = "moderate"
memory_mb = 0
cpu_percent = 150
wall_clock_timeout_ms = 30000
fs_readonly_paths = ["/usr/share/zoneinfo", "/Library/Application Support/FCP \"beta\"/odd\\name", "$CONNECTOR_STATE/config"]
fs_writable_paths = ["$CONNECTOR_STATE", "/tmp/fcp-scratch"]
deny_exec = false
deny_ptrace = true
"#,
            windows_sandbox: r#"
[sandbox]
profile = "moderate"
memory_mb = 0
cpu_percent = 150
wall_clock_timeout_ms = 30000
fs_readonly_paths = ["C:/ProgramData/FCP/shared", "$CONNECTOR_STATE/config"]
fs_writable_paths = ["$CONNECTOR_STATE", "D:\\scratch\\fcp"]
deny_exec = false
deny_ptrace = true
"#,
            egress: Egress::None,
            windows_libraries: &[],
        },
        Case {
            name: "proxy_network",
            connector_id: "fcp.fetch",
            posix_sandbox: network,
            windows_sandbox: network,
            egress: proxy,
            windows_libraries: &["C:\\Program Files\\FCP\\connectors\\fcp.fetch\\zstd.dll"],
        },
    ]
}

fn manifest(id: &str, sandbox: &str) -> Manifest {
    let text = format!("{}{sandbox}", MANIFEST.replace("CONNECTOR_ID", id));
    let text = fix_interface_hash(&text).expect("the golden manifest has an interface");
    Manifest::parse(&text).unwrap_or_else(|e| panic!("golden manifest {id} is invalid: {e:?}"))
}

fn seatbelt_profile(case: &Case) -> String {
    let manifest = manifest(case.connector_id, case.posix_sandbox);
    let inputs = JailInputs {
        tcp_connect: None,
        network_files: Vec::new(),
        binary: Binary {
            path: PathBuf::from(format!("/opt/fcp/connectors/{}/bin/connector", case.connector_id)),
            interpreter: None,
            libraries: Vec::new(),
        },
        state_dir: PathBuf::from(format!("/var/db/fcp/state/{}-1", case.connector_id)),
        arch: Arch::Aarch64,
    };
    seatbelt::compile(&manifest.sandbox, &inputs, case.egress).expect("seatbelt profile").as_str().to_owned()
}

fn appcontainer_profile(case: &Case) -> String {
    let manifest = manifest(case.connector_id, case.windows_sandbox);
    let inputs = AppContainerInputs {
        connector_id: manifest.connector.id.clone(),
        program: format!("C:\\Program Files\\FCP\\connectors\\{}\\connector.exe", case.connector_id),
        libraries: case.windows_libraries.iter().map(|l| (*l).to_owned()).collect(),
        state_dir: format!("C:\\ProgramData\\FCP\\state\\{}-1", case.connector_id),
        processors: NonZeroU32::new(8).expect("non-zero"),
        egress: case.egress,
    };
    let profile = appcontainer::compile(&manifest.sandbox, &inputs).expect("appcontainer profile");
    format!("{}\n", serde_json::to_string_pretty(&profile).expect("serializes"))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var_os("FCP_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Every golden file, rendered now.
fn rendered() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for case in cases() {
        files.push((format!("seatbelt_{}.sb", case.name), seatbelt_profile(&case)));
        files.push((format!("appcontainer_{}.json", case.name), appcontainer_profile(&case)));
    }
    files
}

#[test]
fn translations_match_the_golden_files() {
    let dir = golden_dir();
    if updating() {
        std::fs::create_dir_all(&dir).expect("create the golden dir");
        for (name, text) in rendered() {
            std::fs::write(dir.join(&name), text).expect("write a golden file");
        }
        return;
    }
    let mut failures = Vec::new();
    for (name, text) in rendered() {
        match std::fs::read_to_string(dir.join(&name)) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(golden) if golden == text => {}
            Ok(golden) => {
                let line = golden.lines().zip(text.lines()).position(|(g, t)| g != t).map_or_else(
                    || format!("lengths differ ({} vs {} lines)", golden.lines().count(), text.lines().count()),
                    |i| format!("line {}: golden {:?}, now {:?}", i + 1, golden.lines().nth(i), text.lines().nth(i)),
                );
                failures.push(format!("{name}: {line}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the translations differ from tests/golden (rerun with FCP_UPDATE_GOLDEN=1 and review the diff):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_golden_dir_holds_no_stale_file() {
    if updating() {
        return;
    }
    let expected: BTreeSet<String> = rendered().into_iter().map(|(name, _)| name).collect();
    let present: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("a dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(present, expected);
}
