//! `manifest.toml` is a valid schema 2.1 manifest, checked by fcp-policy with the
//! reference rules, with the recomputed `interface_hash` (digest §11.2), and its
//! network constraints say what the connector does: TLS with SNI on 443 to a declared
//! host, no redirects.

use fcp_policy::manifest::{compute_interface, Manifest};

const MANIFEST: &str = include_str!("../manifest.toml");

fn manifest() -> Manifest {
    let expected = compute_interface(MANIFEST).map(|i| i.hash.to_string());
    Manifest::parse(MANIFEST)
        .unwrap_or_else(|e| panic!("manifest.toml is invalid ({e:?}); interface_hash should be {expected:?}"))
}

#[test]
fn manifest_is_valid_and_hashed() {
    let manifest = manifest();
    assert_eq!(manifest.connector.id.as_str(), "fcp.http");
    assert_eq!(manifest.connector.version.to_string(), env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest.interface_hash(), manifest.header.interface_hash);
    let ops: Vec<(&str, &str, &str)> = manifest
        .operations
        .iter()
        .map(|(id, op)| (id.as_str(), op.capability.as_str(), op.safety_tier.as_str()))
        .collect();
    assert_eq!(ops, [("http.get", "http.read", "safe"), ("http.post", "http.write", "risky")]);
}

#[test]
fn network_constraints_match_the_client() {
    for (id, op) in &manifest().operations {
        let net = op.network_constraints.as_ref().unwrap_or_else(|| panic!("{id} declares network_constraints"));
        let hosts: Vec<&str> = net.host_allow.iter().map(|h| h.as_str()).collect();
        assert_eq!((hosts.as_slice(), net.port_allow.as_slice()), (&["api.github.com"][..], &[443][..]), "{id}");
        assert!(net.require_sni && net.deny_localhost && net.deny_private_ranges && net.deny_ip_literals, "{id}");
        assert_eq!(net.max_redirects, 0, "{id}: the client follows none");
        assert!(u64::from(net.total_timeout_ms) >= 60_000, "{id}: the client's longest timeout_ms fits");
    }
    let sandbox = manifest().sandbox;
    assert!(sandbox.fs_writable_paths.is_empty() && sandbox.deny_exec && sandbox.deny_ptrace);
}
