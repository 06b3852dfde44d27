//! `manifest.toml` is a valid schema 2.1 manifest, checked by fcp-policy with the
//! reference rules, with the recomputed `interface_hash` (digest §11.2), and it declares
//! what `src/` does: no network at all, and writes only below `$CONNECTOR_STATE`.

use fcp_policy::manifest::{compute_interface, Manifest, SandboxPath};

const MANIFEST: &str = include_str!("../manifest.toml");

fn manifest() -> Manifest {
    let expected = compute_interface(MANIFEST).map(|i| i.hash.to_string());
    Manifest::parse(MANIFEST)
        .unwrap_or_else(|e| panic!("manifest.toml is invalid ({e:?}); interface_hash should be {expected:?}"))
}

#[test]
fn manifest_is_valid_and_hashed() {
    let manifest = manifest();
    assert_eq!(manifest.connector.id.as_str(), "fcp.fs");
    assert_eq!(manifest.connector.version.to_string(), env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest.interface_hash(), manifest.header.interface_hash);
    let ops: Vec<(&str, &str, &str)> = manifest
        .operations
        .iter()
        .map(|(id, op)| (id.as_str(), op.capability.as_str(), op.safety_tier.as_str()))
        .collect();
    assert_eq!(
        ops,
        [("fs.list", "fs.read", "safe"), ("fs.read", "fs.read", "safe"), ("fs.write", "fs.write", "risky")]
    );
}

/// Every operation carries the no-network sentinel of digest §11.3, so no egress
/// decision can ever allow a connection.
#[test]
fn every_operation_declares_no_network() {
    for (id, op) in &manifest().operations {
        let net = op.network_constraints.as_ref().unwrap_or_else(|| panic!("{id} declares network_constraints"));
        let hosts: Vec<&str> = net.host_allow.iter().map(|h| h.as_str()).collect();
        assert_eq!(
            (hosts.as_slice(), net.port_allow.as_slice(), net.dns_max_ips),
            (&["none.invalid"][..], &[0][..], 0)
        );
        assert!(net.require_sni, "{id}");
    }
}

#[test]
fn sandbox_writes_only_the_state_dir() {
    let sandbox = manifest().sandbox;
    assert_eq!(sandbox.fs_writable_paths, [SandboxPath::ConnectorState(String::new())]);
    assert!(sandbox.fs_readonly_paths.is_empty());
    assert!(sandbox.deny_exec && sandbox.deny_ptrace);
}
