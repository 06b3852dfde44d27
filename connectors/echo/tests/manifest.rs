//! `manifest.toml` is a valid schema 2.1 manifest, checked by fcp-policy with the
//! reference rules, and its `interface_hash` is the recomputed one (digest §11.2).

use fcp_policy::manifest::{compute_interface, Manifest};

const MANIFEST: &str = include_str!("../manifest.toml");

#[test]
fn manifest_is_valid_and_hashed() {
    let expected = compute_interface(MANIFEST).map(|i| i.hash.to_string());
    let manifest = Manifest::parse(MANIFEST)
        .unwrap_or_else(|e| panic!("manifest.toml is invalid ({e:?}); interface_hash should be {expected:?}"));
    assert_eq!(manifest.connector.id.as_str(), "fcp.echo");
    assert_eq!(manifest.connector.version.to_string(), env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest.interface_hash(), manifest.header.interface_hash);
}

/// The same hash computed by hand from digest §11.2, independently of fcp-policy:
/// `BLAKE3("FCP2-INTERFACE-V1" || det-CBOR(descriptor))`.
#[test]
fn interface_hash_follows_digest_11_2() {
    let operation = |id: &str, description: &str, input_schema: serde_json::Value| {
        serde_json::json!({
            "id": id, "capability": "echo.call", "description": description, "risk_level": "low",
            "safety_tier": "safe", "requires_approval": "none", "idempotency": "strict",
            "input_schema": input_schema, "output_schema": {},
        })
    };
    let descriptor = serde_json::json!({
        "connector_id": "fcp.echo",
        "archetypes": ["operational"],
        "state": {"model": "stateless"},
        "capabilities": {"required": ["echo.call"], "optional": [], "forbidden": ["system.exec"]},
        "operations": [
            operation("echo", "Returns its input unchanged.", serde_json::json!({})),
            operation(
                "fail",
                "Fails with the FCP error its input describes (category-tagged), or with Internal.",
                serde_json::json!({"type": "object"}),
            ),
        ],
    });
    let cbor = fcp_proto::cbor::to_vec(&descriptor).expect("the descriptor has a canonical encoding");
    let mut h = blake3::Hasher::new();
    h.update(b"FCP2-INTERFACE-V1");
    h.update(&cbor);
    let expected = format!("blake3-256:fcp.interface.v2:{}", h.finalize().to_hex());
    let declared = MANIFEST
        .lines()
        .find_map(|l| l.strip_prefix("interface_hash = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("manifest declares interface_hash");
    assert_eq!(declared, expected);
}
