//! Commands that talk to fcpd over its control socket (`fcp_proto::control`):
//! init, status, install, list, grant, invoke, explain, revoke, audit tail/verify.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use clap::{Args, Subcommand};
use fcp_proto::control::{ControlEnvelope, ControlRequest, ControlResponse, InvokeCall, RevokeTarget, CONTROL_VERSION};
use serde_json::{json, Value};

/// Where fcpd listens unless told otherwise.
pub(crate) const DEFAULT_SOCKET: &str = "/run/fcp/fcpd.sock";

/// Socket option shared by every daemon command.
#[derive(Args, Clone, Debug)]
pub(crate) struct SocketArg {
    /// fcpd's control socket [env: FCP_SOCKET] [default: /run/fcp/fcpd.sock].
    #[arg(long, global = true)]
    pub(crate) socket: Option<PathBuf>,
}

impl SocketArg {
    pub(crate) fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .or_else(|| std::env::var_os("FCP_SOCKET").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }
}

/// A connection to fcpd.
pub(crate) struct Client {
    stream: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    pub(crate) fn connect(path: &Path) -> anyhow::Result<Client> {
        let s = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot reach fcpd at {} (is it running? start it with `fcpd run`, or pass --socket)",
                path.display()
            )
        })?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client { stream: BufReader::new(s), next_id: 1 })
    }

    /// Sends one request; `Ok(Ok(value))` on success, `Ok(Err((code, message)))` when
    /// fcpd refused it.
    pub(crate) fn call(&mut self, request: ControlRequest) -> anyhow::Result<Result<Value, (String, String)>> {
        let id = self.next_id;
        self.next_id += 1;
        let env = ControlEnvelope { v: CONTROL_VERSION, id, request };
        self.stream.get_mut().write_all(&env.encode()?)?;
        let mut line = Vec::new();
        self.stream.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            bail!("fcpd closed the connection");
        }
        let resp = ControlResponse::decode(line.strip_suffix(b"\n").unwrap_or(&line))?;
        match (resp.ok, resp.error) {
            (Some(v), None) => Ok(Ok(v)),
            (_, Some(e)) => Ok(Err((e.code, e.message))),
            _ => bail!("fcpd sent an empty answer"),
        }
    }

    /// Like [`Client::call`], but a refusal is an error.
    pub(crate) fn must(&mut self, request: ControlRequest) -> anyhow::Result<Value> {
        self.call(request)?.map_err(|(code, msg)| anyhow!("{code}: {msg}"))
    }
}

fn print(json: bool, v: &Value, human: impl FnOnce(&Value)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v);
    }
}

/// Finds a sibling binary (fcpd, connectors): `$FCP_BIN_DIR`, next to this executable, then PATH.
pub(crate) fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FCP_BIN_DIR") {
        dirs.push(d.into());
    }
    if let Some(d) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("cannot find {name}: build it (`cargo build --workspace`) or set FCP_BIN_DIR"))
}

// ---------------------------------------------------------------------------

/// `fcp init`.
#[derive(Args)]
pub(crate) struct InitArgs {
    /// State directory.
    #[arg(long, default_value = "/var/lib/fcp")]
    home: PathBuf,
    /// Node id (canonical id); default node-HOSTNAME.
    #[arg(long)]
    node_id: Option<String>,
    /// Trust this publisher key (64 hex digits); repeatable.
    #[arg(long = "trust-publisher")]
    trust_publisher: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Process::new(find_binary("fcpd")?);
    cmd.arg("init").arg("--home").arg(&a.home);
    if let Some(n) = &a.node_id {
        cmd.arg("--node-id").arg(n);
    }
    for p in &a.trust_publisher {
        cmd.arg("--trust-publisher").arg(p);
    }
    if a.json {
        cmd.arg("--json");
    }
    let st = cmd.status().context("running fcpd init")?;
    Ok(if st.success() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `fcp status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn status(sock: &SocketArg, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let v = Client::connect(&sock.path())?.must(ControlRequest::Status)?;
    print(a.json, &v, |v| {
        println!("node {}  owner kid {}", v["node_id"].as_str().unwrap_or("?"), v["owner_kid"].as_str().unwrap_or("?"));
        println!("home {}", v["home"].as_str().unwrap_or("?"));
        for z in v["zones"].as_array().into_iter().flatten() {
            println!(
                "  {:<12} ceiling {:<9} hardware keys {:<5} revocation seq {} audit next seq {}",
                z["zone"].as_str().unwrap_or("?"),
                z["ceiling"].as_str().unwrap_or("?"),
                z["require_hardware_keys"],
                z["revocation_seq"],
                z["audit_next_seq"]
            );
        }
        println!("installed connectors: {}", v["installed"]);
        println!(
            "sandbox: {} (in force: {}; allowed missing by owner policy: {})",
            v["sandbox"]["backend"].as_str().unwrap_or("?"),
            v["sandbox"]["layers"],
            v["sandbox"]["allowed_missing"]
        );
    });
    Ok(ExitCode::SUCCESS)
}

/// `fcp install`.
#[derive(Args)]
pub(crate) struct InstallArgs {
    /// Package file (from `fcp package`).
    package: PathBuf,
    /// Zone the instance is bound to for life.
    #[arg(long)]
    zone: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn install(sock: &SocketArg, a: InstallArgs) -> anyhow::Result<ExitCode> {
    let path = std::fs::canonicalize(&a.package).with_context(|| format!("{}", a.package.display()))?;
    let package_path = path.to_str().ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))?.to_owned();
    match Client::connect(&sock.path())?.call(ControlRequest::Install { package_path, zone: a.zone })? {
        Ok(v) => {
            print(a.json, &v, |v| {
                println!(
                    "installed {} {} in {} (binary {}, publisher {})",
                    v["connector"].as_str().unwrap_or("?"),
                    v["version"].as_str().unwrap_or("?"),
                    v["zone"].as_str().unwrap_or("?"),
                    v["binary_hash"].as_str().unwrap_or("?"),
                    v["publisher_kid"].as_str().unwrap_or("?")
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            Ok(ExitCode::from(1))
        }
    }
}

fn refusal(json: bool, code: &str, msg: &str) {
    if json {
        println!("{}", json!({ "error": { "code": code, "message": msg } }));
    } else {
        eprintln!("refused: {code}: {msg}");
    }
}

/// `fcp list`.
#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn list(sock: &SocketArg, a: ListArgs) -> anyhow::Result<ExitCode> {
    let v = Client::connect(&sock.path())?.must(ControlRequest::List)?;
    print(a.json, &v, |v| {
        for c in v["connectors"].as_array().into_iter().flatten() {
            println!(
                "{:<20} {:<8} {:<12} {} ops: {}",
                c["connector"].as_str().unwrap_or("?"),
                c["version"].as_str().unwrap_or("?"),
                c["zone"].as_str().unwrap_or("?"),
                if c["running"].as_bool() == Some(true) { "running" } else { "stopped" },
                c["operations"]
                    .as_array()
                    .map(|o| o.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            );
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// `fcp configure`.
#[derive(Args)]
pub(crate) struct ConfigureArgs {
    /// Connector id.
    #[arg(long)]
    connector: String,
    /// Zone.
    #[arg(long)]
    zone: String,
    /// The config, a JSON object. Name credentials by `credential_id`.
    #[arg(long)]
    config: String,
    /// Allow values under secret-looking keys (audited).
    #[arg(long)]
    allow_inline_secrets: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn configure(sock: &SocketArg, a: ConfigureArgs) -> anyhow::Result<ExitCode> {
    let config: Value = serde_json::from_str(&a.config).context("--config is not JSON")?;
    let req = ControlRequest::Configure {
        connector: a.connector,
        zone: a.zone,
        config,
        allow_inline_secrets: a.allow_inline_secrets,
    };
    match Client::connect(&sock.path())?.call(req)? {
        Ok(v) => {
            print(a.json, &v, |v| {
                println!(
                    "configured {} in {} (keys {}); it restarts on next use",
                    v["connector"].as_str().unwrap_or("?"),
                    v["zone"].as_str().unwrap_or("?"),
                    v["keys"]
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            Ok(ExitCode::from(1))
        }
    }
}

/// Parses a duration like `300`, `90s`, `5m`, `2h`, `1d`.
pub(crate) fn parse_ttl(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("{s:?} is not a duration like 300, 90s, 5m or 2h"))
}

/// `fcp grant`.
#[derive(Args)]
pub(crate) struct GrantArgs {
    /// Zone.
    #[arg(long)]
    zone: String,
    /// Operation id.
    #[arg(long)]
    operation: String,
    /// Connector (optional when one installed connector in the zone has the operation).
    #[arg(long)]
    connector: Option<String>,
    /// Principal (agent) the token is for.
    #[arg(long, default_value = "agent:local")]
    principal: String,
    /// Lifetime, e.g. 300, 5m, 2h (at most 24h).
    #[arg(long, value_parser = parse_ttl, default_value = "5m")]
    ttl: u64,
    /// Write the token here (mode 0600) instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn resolve_connector(c: &mut Client, zone: &str, op: &str, given: Option<String>) -> anyhow::Result<String> {
    if let Some(c) = given {
        return Ok(c);
    }
    let v = c.must(ControlRequest::List)?;
    let found: Vec<String> = v["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["zone"] == zone && c["operations"].as_array().is_some_and(|o| o.iter().any(|x| x == op)))
        .filter_map(|c| c["connector"].as_str().map(str::to_owned))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no installed connector in {zone} has operation {op}; pass --connector"),
        many => bail!("several connectors in {zone} have operation {op} ({}); pass --connector", many.join(", ")),
    }
}

pub(crate) fn grant(sock: &SocketArg, a: GrantArgs) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(&sock.path())?;
    let connector = resolve_connector(&mut c, &a.zone, &a.operation, a.connector)?;
    let v = match c.call(ControlRequest::Grant {
        zone: a.zone,
        connector,
        operation: a.operation,
        principal: a.principal,
        ttl_secs: Some(a.ttl),
    })? {
        Ok(v) => v,
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            return Ok(ExitCode::from(1));
        }
    };
    let token = v["token_b64"].as_str().unwrap_or_default().to_owned();
    if let Some(out) = &a.out {
        crate::files::write_atomically(out, format!("{token}\n").as_bytes(), 0o600)?;
    }
    print(a.json, &v, |v| {
        if a.out.is_none() {
            println!("{token}");
        }
        eprintln!(
            "token {} for {} to call {}/{} in {}, expires at {}",
            v["jti"].as_str().unwrap_or("?"),
            v["principal"].as_str().unwrap_or("?"),
            v["connector"].as_str().unwrap_or("?"),
            v["operation"].as_str().unwrap_or("?"),
            v["zone"].as_str().unwrap_or("?"),
            v["expires_at"]
        );
    });
    Ok(ExitCode::SUCCESS)
}

/// `fcp invoke`.
#[derive(Args)]
pub(crate) struct InvokeArgs {
    /// Operation id.
    operation: String,
    /// JSON input.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Token file (from `fcp grant --out`).
    #[arg(long)]
    token: Option<PathBuf>,
    /// Zone (default: the token's).
    #[arg(long)]
    zone: Option<String>,
    /// Connector (optional when one installed connector in the zone has the operation).
    #[arg(long)]
    connector: Option<String>,
    /// Principal (default: the token's, else agent:local).
    #[arg(long)]
    principal: Option<String>,
    /// Same key, same receipt.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// W3C traceparent.
    #[arg(long)]
    traceparent: Option<String>,
    /// Declare the intent (required for risky and dangerous operations).
    #[arg(long)]
    intent: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The zone and principal a token names, read without verifying (fcpd verifies).
fn token_hints(token: &[u8]) -> (Option<String>, Option<String>) {
    let claims = fcp_proto::token::ClaimMap::from_cbor(&peek_payload(token).unwrap_or_default())
        .ok()
        .and_then(|m| fcp_proto::token::CapabilityClaims::from_claim_map(&m).ok());
    (claims.as_ref().and_then(|c| c.zone_id.clone()), claims.and_then(|c| c.principal_id))
}

fn peek_payload(token: &[u8]) -> Option<Vec<u8>> {
    match fcp_proto::cbor::decode(token, fcp_proto::cbor::Limits::with_max_len(65_536)).ok()? {
        fcp_proto::cbor::Value::Array(items) => match items.get(2) {
            Some(fcp_proto::cbor::Value::Bytes(b)) => Some(b.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn invoke(sock: &SocketArg, a: InvokeArgs) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&a.input).with_context(|| "--input is not JSON")?;
    let token_b64 = match &a.token {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?.trim().to_owned())
        }
        None => None,
    };
    let raw = token_b64.as_deref().and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
    let (tzone, tprincipal) = raw.as_deref().map(token_hints).unwrap_or_default();
    let zone = a.zone.or(tzone).ok_or_else(|| anyhow!("pass --zone (no token to read it from)"))?;
    let principal = a.principal.or(tprincipal).unwrap_or_else(|| "agent:local".into());
    let mut c = Client::connect(&sock.path())?;
    let connector = resolve_connector(&mut c, &zone, &a.operation, a.connector)?;
    let call = InvokeCall {
        zone,
        connector,
        operation: a.operation,
        input,
        token_b64,
        principal,
        idempotency_key: a.idempotency_key,
        traceparent: a.traceparent,
        intent: a.intent,
    };
    let v = match c.call(ControlRequest::Invoke(call))? {
        Ok(v) => v,
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            return Ok(ExitCode::from(2));
        }
    };
    let allowed = v["decision"] == "allow";
    let ok = allowed && v["outcome"]["status"] == "ok";
    print(a.json, &v, |v| {
        let id = v["request_id"].as_str().unwrap_or("?");
        if !allowed {
            println!("DENIED {}: {}", v["reason_code"].as_str().unwrap_or("?"), v["message"].as_str().unwrap_or(""));
            println!("request {id}; `fcp explain {id}` for the inputs");
        } else if ok {
            println!("{}", serde_json::to_string_pretty(&v["outcome"]["output"]).unwrap_or_default());
            eprintln!(
                "request {id} allowed{}; receipt signed by {} ({}), audit seq {}",
                if v["replayed"].as_bool() == Some(true) { " (replayed from the idempotency cache)" } else { "" },
                v["receipt"]["executed_by"].as_str().unwrap_or("?"),
                v["receipt"]["signer_kid"].as_str().unwrap_or("?"),
                v["audit_seq"]
            );
        } else {
            println!(
                "FAILED {}: {}",
                v["outcome"]["code"].as_str().unwrap_or("?"),
                v["outcome"]["message"].as_str().unwrap_or("")
            );
        }
    });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `fcp explain`.
#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// Request id, as `fcp invoke` printed it.
    request_id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn explain(sock: &SocketArg, a: ExplainArgs) -> anyhow::Result<ExitCode> {
    match Client::connect(&sock.path())?.call(ControlRequest::Explain { request_id: a.request_id })? {
        Ok(v) => {
            print(a.json, &v, |v| {
                println!("request   {}", v["request_id"].as_str().unwrap_or("?"));
                println!(
                    "decision  {} ({})",
                    v["decision"].as_str().unwrap_or("?"),
                    v["reason_code"].as_str().unwrap_or("?")
                );
                println!("why       {}", v["message"].as_str().unwrap_or(""));
                println!("inputs    {}", v["inputs"]);
                if let Some(o) = v.get("outcome").filter(|o| !o.is_null()) {
                    println!("outcome   {o}");
                }
                println!("audit seq {}", v["audit_seq"]);
            });
            Ok(ExitCode::SUCCESS)
        }
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            Ok(ExitCode::from(1))
        }
    }
}

/// `fcp revoke`.
#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// Zone.
    #[arg(long)]
    zone: String,
    /// A token id (jti, hex).
    #[arg(long, group = "target")]
    token_id: Option<String>,
    /// A grant (ObjectId, hex).
    #[arg(long, group = "target")]
    grant: Option<String>,
    /// A node issuance key (kid, hex).
    #[arg(long, group = "target")]
    issuer_kid: Option<String>,
    /// A connector binary (BLAKE3, hex).
    #[arg(long, group = "target")]
    binary: Option<String>,
    /// Why, for the audit chain.
    #[arg(long, default_value = "revoked by the owner")]
    reason: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn revoke(sock: &SocketArg, a: RevokeArgs) -> anyhow::Result<ExitCode> {
    let target = match (a.token_id, a.grant, a.issuer_kid, a.binary) {
        (Some(t), None, None, None) => RevokeTarget::Token(t),
        (None, Some(g), None, None) => RevokeTarget::Grant(g),
        (None, None, Some(k), None) => RevokeTarget::IssuerKey(k),
        (None, None, None, Some(b)) => RevokeTarget::ConnectorBinary(b),
        _ => bail!("name exactly one of --token-id, --grant, --issuer-kid, --binary"),
    };
    match Client::connect(&sock.path())?.call(ControlRequest::Revoke { zone: a.zone, target, reason: a.reason })? {
        Ok(v) => {
            print(a.json, &v, |v| {
                println!(
                    "revoked ({}) in {}, revocation seq {}",
                    v["scope"].as_str().unwrap_or("?"),
                    v["zone"].as_str().unwrap_or("?"),
                    v["seq"]
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Err((code, msg)) => {
            refusal(a.json, &code, &msg);
            Ok(ExitCode::from(1))
        }
    }
}

/// `fcp audit`.
#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Print a zone's audit events.
    Tail {
        /// Zone.
        #[arg(long)]
        zone: String,
        /// Only events after this seq.
        #[arg(long)]
        after: Option<u64>,
        /// Most events per read.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Recompute a zone's chain from the store; exit 1 on any break.
    Verify {
        /// Zone.
        #[arg(long)]
        zone: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn audit(sock: &SocketArg, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(&sock.path())?;
    match cmd {
        AuditCommand::Tail { zone, mut after, limit, follow, json } => loop {
            let v = c.must(ControlRequest::AuditTail { zone: zone.clone(), after_seq: after, limit: Some(limit) })?;
            for e in v["events"].as_array().into_iter().flatten() {
                if json {
                    println!("{e}");
                } else {
                    println!(
                        "{:>6} {} {:<26} {:<14} {} {}",
                        e["seq"],
                        e["occurred_at"],
                        e["event_type"].as_str().unwrap_or("?"),
                        e["actor"].as_str().unwrap_or("?"),
                        e["connector_id"].as_str().unwrap_or("-"),
                        e["details"]
                    );
                }
                after = e["seq"].as_u64().or(after);
            }
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(500));
        },
        AuditCommand::Verify { zone, json } => {
            let v = c.must(ControlRequest::AuditVerify { zone })?;
            let ok = v["ok"].as_bool() == Some(true);
            print(json, &v, |v| {
                if ok {
                    println!(
                        "audit chain of {} is intact: {} events, head seq {}",
                        v["zone"].as_str().unwrap_or("?"),
                        v["events"],
                        v["head_seq"]
                    );
                } else {
                    println!(
                        "BROKEN {} in {}: {}",
                        v["code"].as_str().unwrap_or("?"),
                        v["zone"].as_str().unwrap_or("?"),
                        v["message"].as_str().unwrap_or("")
                    );
                }
            });
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
