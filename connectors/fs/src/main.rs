//! `fcp-fs`, the `fcp.fs` connector (`manifest.toml`): lists, reads and writes files
//! under one directory, the root.
//!
//! - **Config** (`configure`): `{"root": "/abs/dir", "max_file_bytes": N}`, both optional.
//!   Without `root` the root is `$CONNECTOR_STATE/files`, created on first configure.
//!   A root outside `$CONNECTOR_STATE` also needs the manifest's `fs_writable_paths`
//!   widened, or the jail will hide it.
//! - **Paths** are relative to the root. Absolute paths, `..` components and symbolic
//!   links (anywhere in the path, even ones pointing inside the root) are refused; see
//!   `root.rs` for how, and for the races that only the jail closes.
//! - **Limits.** A read returns at most 32 KiB per call (page with `offset`), a listing
//!   at most 1,000 entries (page with `offset`), and both are cut further so the reply
//!   fits the 64 KiB frame. A write leaves no file over `max_file_bytes` (64 MiB by
//!   default); one write carries what fits in a 64 KiB request.
//! - **Errors** are typed (host-protocol §6.2): a bad input or path is `InvalidRequest`
//!   (1003), a link or special file `ResourceNotAllowed` (3004), a missing file
//!   `ResourceNotFound` (6001), an existing one under `mode: create` `Conflict` (6003),
//!   a full disk `ResourceExhausted` (6002), and anything else `Internal` (9001).
//!
//! It opens no socket. The protocol itself is fcp-sdk's.

#![forbid(unsafe_code)]

mod config;
mod content;
mod error;
mod path;
mod root;

use std::path::PathBuf;
use std::process::ExitCode;

use fcp_sdk::{
    AiHints, ApprovalMode, ConnectorError, ConnectorInfo, FcpConnector, FcpError, Idempotency, Introspection,
    OperationInfo, RiskLevel, SafetyTier, SelfCheckReport, SelfCheckStatus, ShutdownRequest,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::content::{EncodeError, Encoding};
use crate::error::FsError;
use crate::path::{PathRejection, RelPath};
use crate::root::{Root, WriteMode};

/// The capability of `fs.list` and `fs.read`.
const READ_CAPABILITY: &str = "fs.read";
/// The capability of `fs.write`.
const WRITE_CAPABILITY: &str = "fs.write";
/// The most bytes one `fs.read` returns.
const MAX_READ_BYTES: u64 = 32 * 1024;
/// The most entries one `fs.list` returns.
const MAX_LIST_ENTRIES: u64 = 1000;
/// JSON bytes of content or entries per reply: the 64 KiB frame less room for the
/// envelope and the other fields.
const REPLY_BUDGET: usize = 48 * 1024;

/// The connector: where `$CONNECTOR_STATE` is, and the root once configured.
#[derive(Debug, Default)]
struct Fs {
    state_dir: Option<PathBuf>,
    root: Option<Root>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListInput {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadInput {
    path: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    length: Option<u64>,
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteInput {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    mode: WriteMode,
    #[serde(default)]
    create_parents: bool,
}

impl FcpConnector for Fs {
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            id: "fcp.fs",
            version: env!("CARGO_PKG_VERSION"),
            manifest_toml: include_str!("../manifest.toml"),
        }
    }

    fn introspect(&self) -> Introspection {
        Introspection { operations: catalogue(), ..Introspection::default() }
    }

    /// Opens the root; on failure the previous root (if any) stays in use.
    fn configure(&mut self, config: &Map<String, Value>) -> Result<(), ConnectorError> {
        self.root = Some(config::configure(config, self.state_dir.as_deref())?);
        Ok(())
    }

    fn invoke(&mut self, operation: &str, input: Value) -> Result<Value, ConnectorError> {
        let root = self.root.as_ref().ok_or(FcpError::NotConfigured)?;
        let result = match operation {
            "fs.list" => list(root, input),
            "fs.read" => read(root, input),
            "fs.write" => write(root, input),
            other => return Err(FcpError::unknown_operation(other)),
        };
        Ok(result?)
    }

    fn self_check(&mut self) -> SelfCheckReport {
        let (status, message) = match self.root.as_ref().map(Root::check) {
            Some(Ok(())) => (SelfCheckStatus::Ok, None),
            Some(Err(e)) => (SelfCheckStatus::Failed, Some(format!("root: {e}"))),
            None => (SelfCheckStatus::Degraded, Some("not configured".to_owned())),
        };
        SelfCheckReport { status, reason_code: None, message, details: None }
    }

    fn shutdown(&mut self, _: &ShutdownRequest) {
        self.root = None;
    }
}

fn parse<T: DeserializeOwned>(operation: &str, input: Value) -> Result<T, FsError> {
    serde_json::from_value(input).map_err(|e| FsError::BadInput(format!("{operation} input: {e}")))
}

fn bad_path(raw: &str) -> impl FnOnce(PathRejection) -> FsError + '_ {
    move |reason| FsError::BadPath { path: raw.to_owned(), reason }
}

fn list(root: &Root, input: Value) -> Result<Value, FsError> {
    let input: ListInput = parse("fs.list", input)?;
    let limit = input.limit.unwrap_or(MAX_LIST_ENTRIES);
    if !(1..=MAX_LIST_ENTRIES).contains(&limit) {
        return Err(FsError::BadInput(format!("fs.list limit must be 1 to {MAX_LIST_ENTRIES}")));
    }
    let raw = input.path.as_deref().unwrap_or(".");
    let path = RelPath::parse(raw).map_err(bad_path(raw))?;
    let listing = root.list(&path)?;
    let start = usize::try_from(input.offset).unwrap_or(usize::MAX);
    let (mut entries, mut used, mut next) = (Vec::new(), 0, start);
    for name in listing.names.iter().skip(start).take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        // An entry removed since the scan is skipped, not reported.
        if let Some(entry) = listing.entry(name) {
            let cost = serde_json::to_string(&entry).map_or(usize::MAX, |s| s.len() + 1);
            if used + cost > REPLY_BUDGET {
                break;
            }
            used += cost;
            entries.push(entry);
        }
        next += 1;
    }
    let next_offset = (next < listing.names.len()).then_some(next);
    Ok(json!({
        "path": path.to_string(),
        "entries": entries,
        "total": listing.names.len(),
        "next_offset": next_offset,
        "skipped_names": listing.skipped,
        "incomplete": listing.incomplete,
    }))
}

fn read(root: &Root, input: Value) -> Result<Value, FsError> {
    let input: ReadInput = parse("fs.read", input)?;
    let length = input.length.unwrap_or(MAX_READ_BYTES);
    if !(1..=MAX_READ_BYTES).contains(&length) {
        return Err(FsError::BadInput(format!("fs.read length must be 1 to {MAX_READ_BYTES}")));
    }
    let path = RelPath::parse_file(&input.path).map_err(bad_path(&input.path))?;
    let want = usize::try_from(length).unwrap_or(usize::MAX);
    let chunk = root.read(&path, input.offset, want)?;
    let read = chunk.bytes.len() as u64;
    let at_eof = read < length || input.offset.saturating_add(read) >= chunk.size;
    let encoded = content::encode(&chunk.bytes, input.encoding, at_eof, REPLY_BUDGET).map_err(|e| match e {
        EncodeError::NotUtf8 { at } => FsError::NotUtf8 { path: path.to_string(), at: input.offset + at as u64 },
        EncodeError::CharacterSplit => FsError::BadInput(format!(
            "fs.read length {length} is too short for the character at offset {} of {path}",
            input.offset
        )),
    })?;
    let end = input.offset.saturating_add(encoded.consumed as u64);
    Ok(json!({
        "path": path.to_string(),
        "encoding": input.encoding,
        "content": encoded.content,
        "offset": input.offset,
        "length": encoded.consumed,
        "size": chunk.size,
        "eof": end >= chunk.size,
    }))
}

fn write(root: &Root, input: Value) -> Result<Value, FsError> {
    let input: WriteInput = parse("fs.write", input)?;
    let path = RelPath::parse_file(&input.path).map_err(bad_path(&input.path))?;
    let bytes = content::decode(&input.content, input.encoding)
        .map_err(|e| FsError::BadInput(format!("fs.write content is not standard base64: {e}")))?;
    let written = root.write(&path, &bytes, input.mode, input.create_parents)?;
    Ok(json!({"path": path.to_string(), "mode": input.mode, "written": written.written, "size": written.size}))
}

/// The catalogue; `manifest.toml`'s `[provides.operations]` says the same
/// (tests/host_protocol.rs checks field by field).
fn catalogue() -> Vec<OperationInfo> {
    vec![
        operation(
            "fs.list",
            "Lists a directory below the root, sorted by name, 1000 entries per page.",
            READ_CAPABILITY,
            (RiskLevel::Low, SafetyTier::Safe, Idempotency::Strict, ApprovalMode::None),
            schemas::list_input(),
            schemas::list_output(),
            hints(
                "Finding which files exist before reading or writing one.",
                r#"{"path": "notes", "offset": 0}"#,
                "fs.read",
            ),
        ),
        operation(
            "fs.read",
            "Reads up to 32 KiB of a file below the root, as UTF-8 text or base64.",
            READ_CAPABILITY,
            (RiskLevel::Low, SafetyTier::Safe, Idempotency::Strict, ApprovalMode::None),
            schemas::read_input(),
            schemas::read_output(),
            hints(
                "Reading a file; page through a large one with offset until eof is true.",
                r#"{"path": "notes/todo.md"}"#,
                "fs.list",
            ),
        ),
        operation(
            "fs.write",
            "Creates, overwrites or appends to a file below the root.",
            WRITE_CAPABILITY,
            (RiskLevel::Medium, SafetyTier::Risky, Idempotency::None, ApprovalMode::Policy),
            schemas::write_input(),
            schemas::write_output(),
            hints(
                "Saving text or bytes; mode create refuses to replace an existing file.",
                r#"{"path": "notes/todo.md", "content": "- buy milk\n", "mode": "append"}"#,
                "fs.read",
            ),
        ),
    ]
}

fn operation(
    id: &str,
    description: &str,
    capability: &str,
    (risk_level, safety_tier, idempotency, approval): (RiskLevel, SafetyTier, Idempotency, ApprovalMode),
    input_schema: Value,
    output_schema: Value,
    ai_hints: AiHints,
) -> OperationInfo {
    OperationInfo {
        id: id.into(),
        summary: description.into(),
        description: Some(description.into()),
        input_schema,
        output_schema,
        capability: capability.into(),
        risk_level,
        safety_tier,
        idempotency,
        ai_hints,
        rate_limit: None,
        requires_approval: Some(approval),
    }
}

fn hints(when_to_use: &str, example: &str, related: &str) -> AiHints {
    AiHints {
        when_to_use: when_to_use.into(),
        common_mistakes: vec![
            "Absolute paths and .. are refused: paths are relative to the root.".into(),
            "Symbolic links are never followed.".into(),
        ],
        examples: vec![example.into()],
        related: vec![related.into()],
    }
}

/// JSON schemas of the operations, as in `manifest.toml`.
mod schemas {
    use serde_json::{json, Value};

    pub(crate) fn list_input() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "description": "Directory relative to the root; default the root itself."},
                "offset": {"type": "integer", "minimum": 0, "description": "Entries to skip, in name order."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Most entries to return."},
            },
        })
    }

    pub(crate) fn list_output() -> Value {
        json!({
            "type": "object",
            "required": ["path", "entries", "total", "next_offset", "skipped_names", "incomplete"],
            "properties": {
                "path": {"type": "string"},
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {
                            "name": {"type": "string"},
                            "type": {"enum": ["file", "dir", "symlink", "other"]},
                            "size": {"type": "integer"},
                        },
                    },
                },
                "total": {"type": "integer"},
                "next_offset": {"type": ["integer", "null"]},
                "skipped_names": {"type": "integer"},
                "incomplete": {"type": "boolean"},
            },
        })
    }

    pub(crate) fn read_input() -> Value {
        json!({
            "type": "object",
            "required": ["path"],
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "description": "File relative to the root."},
                "offset": {"type": "integer", "minimum": 0, "description": "Byte offset to start at."},
                "length": {"type": "integer", "minimum": 1, "maximum": 32768, "description": "Most bytes to return."},
                "encoding": {"enum": ["utf8", "base64"], "description": "How content is returned; default utf8."},
            },
        })
    }

    pub(crate) fn read_output() -> Value {
        json!({
            "type": "object",
            "required": ["path", "encoding", "content", "offset", "length", "size", "eof"],
            "properties": {
                "path": {"type": "string"},
                "encoding": {"enum": ["utf8", "base64"]},
                "content": {"type": "string"},
                "offset": {"type": "integer"},
                "length": {"type": "integer"},
                "size": {"type": "integer"},
                "eof": {"type": "boolean"},
            },
        })
    }

    pub(crate) fn write_input() -> Value {
        json!({
            "type": "object",
            "required": ["path", "content"],
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "description": "File relative to the root."},
                "content": {"type": "string", "description": "Text, or base64 when encoding is base64."},
                "encoding": {"enum": ["utf8", "base64"], "description": "How content is written; default utf8."},
                "mode": {
                    "enum": ["create", "overwrite", "append"],
                    "description": "create (default) fails if the file exists; overwrite replaces it atomically; append adds to its end.",
                },
                "create_parents": {"type": "boolean", "description": "Create missing parent directories."},
            },
        })
    }

    pub(crate) fn write_output() -> Value {
        json!({
            "type": "object",
            "required": ["path", "mode", "written", "size"],
            "properties": {
                "path": {"type": "string"},
                "mode": {"enum": ["create", "overwrite", "append"]},
                "written": {"type": "integer"},
                "size": {"type": "integer"},
            },
        })
    }
}

fn main() -> ExitCode {
    // `$CONNECTOR_STATE` is where fcpd gives the instance its own directory; it is a
    // location, not a secret (secrets arrive only through configure).
    let connector = Fs { state_dir: std::env::var_os("CONNECTOR_STATE").map(PathBuf::from), root: None };
    // The loop logs its own failure to stderr.
    match fcp_sdk::run(connector) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcp_sdk::ErrorCode;

    fn configured() -> (tempfile::TempDir, Fs) {
        let state = tempfile::tempdir().expect("tempdir");
        let mut fs = Fs { state_dir: Some(state.path().to_owned()), root: None };
        fs.configure(&Map::new()).expect("default root");
        (state, fs)
    }

    fn code(r: Result<Value, FcpError>) -> ErrorCode {
        r.map(drop).expect_err("a failure").code()
    }

    #[test]
    fn write_then_read_then_list() {
        let (state, mut fs) = configured();
        let w = fs.invoke("fs.write", json!({"path": "a/b.txt", "content": "hi\n", "create_parents": true}));
        assert_eq!(w, Ok(json!({"path": "a/b.txt", "mode": "create", "written": 3, "size": 3})));
        assert_eq!(std::fs::read(state.path().join("files/a/b.txt")).expect("on disk"), b"hi\n");
        let r = fs.invoke("fs.read", json!({"path": "./a//b.txt"}));
        assert_eq!(
            r,
            Ok(
                json!({"path": "a/b.txt", "encoding": "utf8", "content": "hi\n", "offset": 0, "length": 3, "size": 3, "eof": true})
            )
        );
        let l = fs.invoke("fs.list", json!({}));
        assert_eq!(
            l,
            Ok(
                json!({"path": ".", "entries": [{"name": "a", "type": "dir"}], "total": 1, "next_offset": null, "skipped_names": 0, "incomplete": false})
            )
        );
    }

    #[test]
    fn binary_content_round_trips_as_base64() {
        let (_state, mut fs) = configured();
        let w = fs.invoke("fs.write", json!({"path": "bin", "content": "AP8A/w==", "encoding": "base64"}));
        assert_eq!(w.map(|v| v["written"].clone()), Ok(json!(4)));
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "bin"}))), ErrorCode::INVALID_PARAMS);
        let r = fs.invoke("fs.read", json!({"path": "bin", "encoding": "base64", "offset": 1}));
        assert_eq!(r.map(|v| (v["content"].clone(), v["length"].clone())), Ok((json!("/wD/"), json!(3))));
    }

    #[test]
    fn reads_page_and_stay_in_the_frame() {
        let (_state, mut fs) = configured();
        // 40,000 control characters escape to 240,000 bytes: the reply is cut to fit.
        let text = "\u{1}".repeat(40_000);
        fs.invoke("fs.write", json!({"path": "big", "content": text})).expect("write");
        let first = fs.invoke("fs.read", json!({"path": "big"})).expect("read");
        let length = first["length"].as_u64().expect("length");
        assert_eq!(length, (REPLY_BUDGET / 6) as u64);
        assert_eq!((first["eof"].clone(), first["size"].clone()), (json!(false), json!(40_000)));
        assert!(serde_json::to_string(&first).expect("json").len() < 64 * 1024);
        let last = fs.invoke("fs.read", json!({"path": "big", "offset": 39_990})).expect("read");
        assert_eq!((last["length"].clone(), last["eof"].clone()), (json!(10), json!(true)));
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "big", "length": 32_769}))), ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn listings_page() {
        let (_state, mut fs) = configured();
        for name in ["c", "a", "b"] {
            fs.invoke("fs.write", json!({"path": name, "content": name})).expect("write");
        }
        let page = fs.invoke("fs.list", json!({"limit": 2})).expect("list");
        assert_eq!((page["entries"][1]["name"].clone(), page["next_offset"].clone()), (json!("b"), json!(2)));
        assert_eq!(page["entries"][0], json!({"name": "a", "type": "file", "size": 1}));
        let rest = fs.invoke("fs.list", json!({"offset": 2})).expect("list");
        assert_eq!((rest["entries"].as_array().map(Vec::len), rest["next_offset"].clone()), (Some(1), json!(null)));
        assert_eq!(code(fs.invoke("fs.list", json!({"limit": 0}))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(fs.invoke("fs.list", json!({"path": "a"}))), ErrorCode::INVALID_PARAMS, "a is a file");
    }

    #[test]
    fn refusals_are_typed() {
        let (_state, mut fs) = configured();
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "/etc/passwd"}))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "../x"}))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "."}))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "x", "extra": 1}))), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(fs.invoke("fs.read", json!({"path": "missing"}))), ErrorCode::RESOURCE_NOT_FOUND);
        fs.invoke("fs.write", json!({"path": "f", "content": ""})).expect("create");
        assert_eq!(code(fs.invoke("fs.write", json!({"path": "f", "content": ""}))), ErrorCode::CONFLICT);
        assert_eq!(
            code(fs.invoke("fs.write", json!({"path": "g", "content": "%", "encoding": "base64"}))),
            ErrorCode::INVALID_PARAMS
        );
        assert_eq!(code(fs.invoke("fs.delete", json!({}))), ErrorCode::UNKNOWN_METHOD);
    }

    #[test]
    fn unconfigured_and_shut_down_connectors_refuse() {
        let mut fs = Fs::default();
        assert_eq!(fs.invoke("fs.list", json!({})), Err(FcpError::NotConfigured));
        assert_eq!(fs.self_check().status, SelfCheckStatus::Degraded);
        assert_eq!(
            fs.configure(&Map::new()).map_err(|e| e.code()),
            Err(ErrorCode::INVALID_JSON),
            "no root, no state dir"
        );
        let (_state, mut fs) = configured();
        assert_eq!(fs.self_check().status, SelfCheckStatus::Ok);
        // A failed reconfigure keeps the working root.
        let bad = Map::from_iter([("root".to_owned(), json!("relative"))]);
        assert_eq!(fs.configure(&bad).map_err(|e| e.code()), Err(ErrorCode::INVALID_JSON));
        assert_eq!(fs.invoke("fs.list", json!({})).map(|v| v["total"].clone()), Ok(json!(0)));
        fs.shutdown(&ShutdownRequest::default());
        assert_eq!(fs.invoke("fs.list", json!({})), Err(FcpError::NotConfigured));
    }
}
