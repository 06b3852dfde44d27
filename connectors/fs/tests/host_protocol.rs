//! Spawns the real `fcp-fs` binary with a `$CONNECTOR_STATE` of its own and drives it
//! through fcp-proto's host codec, as a supervisor would (host-protocol §3, §4): configure,
//! handshake, the three operations, the refusals, self_check, shutdown, then EOF.

use std::path::Path;
use std::process::Command;

use fcp_policy::manifest::Manifest;
use fcp_proto::host::{
    ErrorCode, FcpError, HandshakeRequest, HealthState, InvokeRequest, ReplyBody, Request, SelfCheckStatus, Shaped,
    ShutdownRequest, TokenBytes,
};
use fcp_proto::id::{CanonicalId, ZoneId};
use fcp_sdk::testing::Host;
use serde_json::{json, Map, Value};

const MANIFEST: &str = include_str!("../manifest.toml");

fn spawn(state: &Path) -> Host {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fcp-fs"));
    cmd.env_clear().env("CONNECTOR_STATE", state).env("RUST_LOG", "warn").current_dir(state);
    Host::spawn(cmd)
}

/// What these tests ask of the connector beyond the shared harness.
trait FsHost {
    /// Invokes `operation` and returns its output.
    fn invoke(&mut self, operation: &str, input: Value) -> Value;
    /// Invokes `operation`, which must fail, and returns the typed error.
    fn refused(&mut self, operation: &str, input: Value) -> FcpError;
}

impl FsHost for Host {
    fn invoke(&mut self, operation: &str, input: Value) -> Value {
        let ReplyBody::Invoke(r) = self.ok(invoke(operation, input)) else { panic!("invoke") };
        r.response.result.expect("a result")
    }

    fn refused(&mut self, operation: &str, input: Value) -> FcpError {
        let failure = self.call(invoke(operation, input)).outcome.expect_err("a failure");
        failure.typed().cloned().expect("a typed error in the envelope")
    }
}

fn id(s: &str) -> CanonicalId {
    CanonicalId::new(s).expect("canonical")
}

fn handshake() -> Request {
    Request::Handshake(HandshakeRequest::new(ZoneId::new("z:work").expect("zone"), [234; 32], [9; 32]))
}

fn invoke(operation: &str, input: Value) -> Request {
    let zone = ZoneId::new("z:work").expect("zone");
    let r = InvokeRequest::new("req_fs", id("fcp.fs"), id(operation), zone, input, TokenBytes(vec![132, 77]));
    Request::Invoke(Box::new(r))
}

fn started(state: &Path, config: Value) -> Host {
    let mut host = spawn(state);
    let Value::Object(config) = config else { panic!("config is an object") };
    assert_eq!(host.ok(Request::Configure(config)), ReplyBody::Configure(json!({"status": "configured"})));
    let ReplyBody::Handshake(Shaped::Typed(_)) = host.ok(handshake()) else { panic!("typed handshake") };
    host
}

#[test]
fn files_round_trip_under_the_default_root() {
    let state = tempfile::tempdir().expect("state dir");
    let mut host = spawn(state.path());
    let ReplyBody::Health(h) = host.ok(Request::Health) else { panic!("health") };
    assert_eq!(h.state, HealthState::Degraded { reason: "not configured".into() });
    let bad = Map::from_iter([("root".to_owned(), json!("relative/dir"))]);
    assert_eq!(
        host.call(Request::Configure(bad)).outcome.map(drop).expect_err("refused").code(),
        ErrorCode::INVALID_JSON
    );
    assert_eq!(host.ok(Request::Configure(Map::new())), ReplyBody::Configure(json!({"status": "configured"})));
    let ReplyBody::Handshake(Shaped::Typed(_)) = host.ok(handshake()) else { panic!("typed handshake") };

    let written =
        host.invoke("fs.write", json!({"path": "notes/todo.md", "content": "- milk\n", "create_parents": true}));
    assert_eq!(written, json!({"path": "notes/todo.md", "mode": "create", "written": 7, "size": 7}));
    assert_eq!(std::fs::read_to_string(state.path().join("files/notes/todo.md")).expect("on disk"), "- milk\n");
    host.invoke("fs.write", json!({"path": "notes/todo.md", "content": "- eggs\n", "mode": "append"}));
    let read = host.invoke("fs.read", json!({"path": "notes/todo.md"}));
    assert_eq!((read["content"].as_str(), read["eof"].as_bool()), (Some("- milk\n- eggs\n"), Some(true)));
    let listed = host.invoke("fs.list", json!({"path": "notes"}));
    assert_eq!(listed["entries"], json!([{"name": "todo.md", "type": "file", "size": 14}]));

    let ReplyBody::SelfCheck(Shaped::Typed(sc)) = host.ok(Request::SelfCheck) else { panic!("self_check") };
    assert_eq!(sc.status, SelfCheckStatus::Ok);
    let shutdown = ShutdownRequest { deadline_ms: Some(1000), drain: Some(false), reason: None };
    assert_eq!(host.ok(Request::Shutdown(shutdown)), ReplyBody::Shutdown(json!({"status": "shutdown_accepted"})));
    host.finish();
}

/// Every way out of the root is refused with a typed error, and nothing outside changes.
#[test]
fn escapes_are_refused() {
    let state = tempfile::tempdir().expect("state dir");
    let root = tempfile::tempdir().expect("root");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret"), "s3cret").expect("write secret");
    std::os::unix::fs::symlink(outside.path(), root.path().join("out")).expect("dir link");
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("secret")).expect("file link");
    let mut host = started(state.path(), json!({"root": root.path(), "max_file_bytes": 16}));

    let invalid = |e: FcpError| matches!(e, FcpError::InvalidRequest { code, .. } if code == ErrorCode::INVALID_PARAMS);
    let secret = outside.path().join("secret").display().to_string();
    assert!(invalid(host.refused("fs.read", json!({"path": secret}))));
    assert!(invalid(host.refused("fs.read", json!({"path": "../../etc/passwd"}))));
    assert!(invalid(host.refused("fs.list", json!({"path": "a/../.."}))));
    let not_allowed = |e: FcpError| matches!(e, FcpError::ResourceNotAllowed { .. });
    assert!(not_allowed(host.refused("fs.read", json!({"path": "secret"}))));
    assert!(not_allowed(host.refused("fs.read", json!({"path": "out/secret"}))));
    assert!(not_allowed(host.refused("fs.list", json!({"path": "out"}))));
    assert!(not_allowed(host.refused("fs.write", json!({"path": "out/planted", "content": "x"}))));
    assert!(not_allowed(host.refused("fs.write", json!({"path": "secret", "content": "x", "mode": "overwrite"}))));
    assert!(not_allowed(host.refused("fs.write", json!({"path": "secret", "content": "x", "mode": "append"}))));
    assert_eq!(
        host.refused("fs.read", json!({"path": "nothing"})),
        FcpError::ResourceNotFound { resource: "nothing".into() }
    );
    let too_big = host.refused("fs.write", json!({"path": "big", "content": "0123456789abcdefg"}));
    assert_eq!(
        too_big.to_string(),
        "Invalid request: big would be 17 bytes, over max_file_bytes (16)",
        "the size limit is the configured one"
    );

    assert_eq!(std::fs::read_to_string(outside.path().join("secret")).expect("intact"), "s3cret");
    assert_eq!(std::fs::read_dir(outside.path()).expect("outside").count(), 1, "nothing planted outside");
    let listed = host.invoke("fs.list", json!({}));
    let kinds: Vec<(&str, &str)> = listed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or_default(), e["type"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(kinds, [("out", "symlink"), ("secret", "symlink")]);
    host.finish();
}

/// The wire name of a host-protocol enum value, to compare with the manifest's names.
macro_rules! wire {
    ($v:expr) => {
        serde_json::to_value($v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
}

/// The binary's catalogue is the manifest's, field for field.
#[test]
fn introspection_matches_the_manifest() {
    let manifest = Manifest::parse(MANIFEST).expect("valid manifest");
    let state = tempfile::tempdir().expect("state dir");
    let mut host = spawn(state.path());
    let ReplyBody::Introspect(Shaped::Typed(catalogue)) = host.ok(Request::Introspect) else { panic!("typed") };
    let ids: Vec<&str> = catalogue.operations.iter().map(|op| op.id.as_str()).collect();
    let declared: Vec<&str> = manifest.operations.keys().map(CanonicalId::as_str).collect();
    assert_eq!(ids, declared);
    for op in &catalogue.operations {
        let m = &manifest.operations[&id(&op.id)];
        assert_eq!(op.capability, m.capability.as_str());
        assert_eq!(op.description.as_deref(), Some(m.description.as_str()));
        assert_eq!(wire!(op.risk_level), m.risk_level.as_str());
        assert_eq!(wire!(op.safety_tier), m.safety_tier.as_str());
        assert_eq!(wire!(op.idempotency), m.idempotency.as_str());
        assert_eq!(op.requires_approval.map(|a| wire!(a)), Some(m.requires_approval.as_str().to_owned()));
        assert_eq!((&op.input_schema, &op.output_schema), (&m.input_schema, &m.output_schema), "{}", op.id);
        let hints = m.ai_hints.as_ref().expect("manifest has ai_hints");
        assert_eq!(op.ai_hints.when_to_use, hints.when_to_use);
        assert_eq!(op.ai_hints.examples, hints.examples);
        assert_eq!(op.ai_hints.common_mistakes, hints.common_mistakes);
    }
    host.finish();
}
