//! Connector instances: one process per (connector, zone), started on first use,
//! spoken to over the host protocol (`fcp_proto::host`), restarted with backoff after
//! a crash, stopped when idle and at shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcp_sandbox::{Jailed, Sandbox, SpawnSpec};

use fcp_proto::host::{
    Event, Framer, HandshakeRequest, InvokeRequest, Method, Reply, ReplyBody, Request, ShutdownRequest, TokenBytes,
};
use fcp_proto::id::{CanonicalId, ZoneId};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

/// Per-request transport timeout (host-protocol §1: 10 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a connector call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The sandbox refused or failed to start the process.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program.
        program: PathBuf,
        /// Cause.
        #[source]
        source: fcp_sandbox::SandboxError,
    },
    /// The pipes could not be handed to the runtime.
    #[error("connector pipes: {0}")]
    Pipes(#[source] std::io::Error),
    /// It refused or botched the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// It exited or broke the protocol; it has been killed and will be restarted.
    #[error("connector crashed or desynchronised: {0}")]
    Crashed(String),
    /// No reply within the timeout; it has been killed.
    #[error("connector did not answer within {0:?}")]
    Timeout(Duration),
    /// It answered with an error.
    #[error("connector error {code}: {message}")]
    Failed {
        /// FCP error code.
        code: String,
        /// Message.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// Restarting too soon after a crash.
    #[error("connector is restarting after a crash; retry in {0:?}")]
    Backoff(Duration),
    /// Its network could not be made.
    #[error("{0}")]
    Egress(String),
}

impl ConnectorError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::Spawn { source: fcp_sandbox::SandboxError::LayersMissing { .. }, .. } => {
                "sandbox.layers_missing"
            }
            ConnectorError::Spawn { .. } => "connector.spawn_failed",
            ConnectorError::Pipes(_) => "connector.spawn_failed",
            ConnectorError::Handshake(_) => "connector.handshake_failed",
            ConnectorError::Crashed(_) => "connector.crashed",
            ConnectorError::Timeout(_) => "connector.timeout",
            ConnectorError::Failed { .. } => "connector.error",
            ConnectorError::Backoff(_) => "connector.backoff",
            ConnectorError::Egress(_) => "egress.unavailable",
        }
    }
}

/// How to run one instance.
#[derive(Clone)]
pub struct InstanceSpec {
    /// Connector id.
    pub connector_id: String,
    /// Zone.
    pub zone: ZoneId,
    /// Binary.
    pub binary: PathBuf,
    /// What the sandbox starts: program, exact environment, limits, isolation and the
    /// owner's degradation policy.
    pub spawn: SpawnSpec,
    /// The backend.
    pub sandbox: Arc<dyn Sandbox + Send + Sync>,
    /// Sent with `configure`.
    pub config: serde_json::Map<String, Value>,
    /// This node's issuance public key (handshake `host_public_key`).
    pub host_public_key: [u8; 32],
    /// The egress networks and proxy; `None`: the jail has loopback only.
    pub egress: Option<Arc<crate::egress::Egress>>,
    /// Each operation's egress policy; an operation not listed gets no network.
    pub egress_policies: std::collections::HashMap<String, fcp_egress::proxy::OperationPolicy>,
    /// The secret store, and the credential ids the instance's config names.
    pub credentials: Option<(Arc<crate::credentials::CredentialStore>, Vec<String>)>,
}

struct Running {
    jailed: Jailed,
    /// The process's network; dropped after the process (field order).
    egress: Option<crate::egress::Attachment>,
    stdin: ChildStdin,
    stdout: ChildStdout,
    framer: Framer,
    pid: Option<u32>,
}

/// One connector instance.
pub struct Instance {
    spec: InstanceSpec,
    running: Option<Running>,
    /// Consecutive crashes.
    crashes: u32,
    last_crash: Option<Instant>,
    last_used: Instant,
    /// Processes started so far.
    pub starts: u64,
    /// Layers missing around the last start, not yet audited.
    degraded: Option<(String, Vec<String>)>,
    /// How processes of this instance ended by a breach, not yet audited.
    breaches: Vec<Ending>,
}

/// A connector process that a limit or the seccomp filter ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// The process.
    pub pid: u32,
    /// What ended it.
    pub breach: fcp_sandbox::Breach,
    /// The exit status, as text.
    pub status: String,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("connector", &self.spec.connector_id)
            .field("zone", &self.spec.zone)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl Instance {
    /// A stopped instance.
    pub fn new(spec: InstanceSpec) -> Self {
        Instance {
            spec,
            running: None,
            crashes: 0,
            last_crash: None,
            last_used: Instant::now(),
            starts: 0,
            degraded: None,
            breaches: Vec::new(),
        }
    }

    /// The connector id.
    pub fn connector_id(&self) -> &str {
        &self.spec.connector_id
    }

    /// The zone.
    pub fn zone(&self) -> &ZoneId {
        &self.spec.zone
    }

    /// Whether a process is up.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(|r| r.pid)
    }

    /// The backend and the layers that were missing at the last start, once, for the
    /// audit chain.
    pub fn take_degradation(&mut self) -> Option<(String, Vec<String>)> {
        self.degraded.take()
    }

    /// The breaches that ended processes of this instance since the last call, for the
    /// audit chain.
    pub fn take_breaches(&mut self) -> Vec<Ending> {
        std::mem::take(&mut self.breaches)
    }

    /// Enforces the limits a running process can break without dying by itself: kills it
    /// past its wall-clock deadline, or once its pids limit refused a fork, and reaps it
    /// (the breach is kept for [`Instance::take_breaches`]). Also notices a process that
    /// died on its own (OOM kill, seccomp) while idle. Returns whether it ended one.
    pub async fn supervise(&mut self) -> bool {
        let Some(r) = self.running.as_mut() else { return false };
        let ended = match r.jailed.try_wait() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) if Instant::now() >= r.jailed.deadline() => r.jailed.kill_at_deadline().is_ok(),
            Ok(None) => r.jailed.enforce_limits().unwrap_or(false),
        };
        if ended {
            self.kill().await;
            self.crashes = self.crashes.saturating_add(1);
            self.last_crash = Some(Instant::now());
        }
        ended
    }

    /// Keeps the breach of a reaped process.
    fn note_end(&mut self, jailed: &Jailed) {
        let (Some(breach), Some(status)) = (jailed.breach(), jailed.status()) else { return };
        tracing::warn!(connector = %self.spec.connector_id, zone = %self.spec.zone, pid = jailed.pid(), "{breach}");
        self.breaches.push(Ending { pid: jailed.pid(), breach, status: status.to_string() });
    }

    /// Time since the last call.
    pub fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    fn backoff(&self) -> Duration {
        if self.crashes == 0 {
            return Duration::ZERO;
        }
        let d = Duration::from_millis(100u64.saturating_mul(1 << self.crashes.min(6)));
        d.min(MAX_BACKOFF)
    }

    async fn start(&mut self) -> Result<(), ConnectorError> {
        if let Some(at) = self.last_crash {
            let wait = self.backoff().saturating_sub(at.elapsed());
            if !wait.is_zero() {
                return Err(ConnectorError::Backoff(wait));
            }
        }
        // The sandbox creates the state dir (0700), clears the environment, closes
        // inherited fds, sets rlimits and the parent-death signal, and refuses to start
        // with layers missing unless the owner's degradation policy allows them.
        // The process's own network namespace, link and proxy registration, when egress
        // is on; the spec then places the jail in it and routes HTTPS_PROXY through it.
        let attachment = match &self.spec.egress {
            Some(egress) => {
                let ports: Vec<u16> =
                    self.spec.egress_policies.values().flat_map(|p| p.constraints.port_allow.iter().copied()).collect();
                let credentials = match &self.spec.credentials {
                    Some((store, ids)) if !ids.is_empty() => Some(store.set_for(ids).map_err(ConnectorError::Egress)?),
                    _ => None,
                };
                Some(
                    egress
                        .attach(&self.spec.connector_id, self.spec.zone.as_str(), credentials, &ports)
                        .map_err(ConnectorError::Egress)?,
                )
            }
            None => None,
        };
        let spawn = match &attachment {
            Some(a) => {
                let mut spec = self.spec.spawn.clone().with_network(a.network.clone());
                for (name, value) in &a.env {
                    spec = spec
                        .env(name, value)
                        .map_err(|source| ConnectorError::Spawn { program: self.spec.binary.clone(), source })?;
                }
                spec
            }
            None => self.spec.spawn.clone(),
        };
        let mut jailed = self
            .spec
            .sandbox
            .spawn(&spawn)
            .map_err(|source| ConnectorError::Spawn { program: self.spec.binary.clone(), source })?;
        self.starts += 1;
        let missing: Vec<String> = jailed.missing_layers().iter().map(|l| l.as_str().to_owned()).collect();
        if !missing.is_empty() {
            self.degraded = Some((jailed.backend().to_owned(), missing));
        }
        let pid = Some(jailed.pid());
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (jailed.take_stdin(), jailed.take_stdout(), jailed.take_stderr())
        else {
            let _ = jailed.kill();
            return Err(ConnectorError::Crashed("stdio pipes missing".into()));
        };
        let stdin = ChildStdin::from_std(stdin).map_err(ConnectorError::Pipes)?;
        let stdout = ChildStdout::from_std(stdout).map_err(ConnectorError::Pipes)?;
        let stderr = ChildStderr::from_std(stderr).map_err(ConnectorError::Pipes)?;
        let who = format!("{}@{}", self.spec.connector_id, self.spec.zone);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(connector = %who, "{}", line.chars().take(4096).collect::<String>());
            }
        });
        self.running = Some(Running { jailed, egress: attachment, stdin, stdout, framer: Framer::new(), pid });
        // configure first: it is the call made at spawn, and an error fails the spawn
        // (host-protocol §3, §10 rule 4). Loose connectors refuse a handshake before it.
        match self.exchange(Request::Configure(self.spec.config.clone())).await {
            Ok(Reply { outcome: Ok(ReplyBody::Configure(_)), .. }) => {}
            Ok(other) => {
                self.kill().await;
                return Err(ConnectorError::Handshake(format!("configure: {}", refused(&other))));
            }
            Err(e) => {
                self.kill().await;
                return Err(ConnectorError::Handshake(format!("configure: {e}")));
            }
        }
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        let hs = HandshakeRequest::new(self.spec.zone.clone(), self.spec.host_public_key, nonce);
        match self.exchange(Request::Handshake(hs)).await {
            Ok(Reply { outcome: Ok(ReplyBody::Handshake(_)), .. }) => {}
            Ok(other) => {
                self.kill().await;
                return Err(ConnectorError::Handshake(refused(&other)));
            }
            Err(e) => {
                self.kill().await;
                return Err(ConnectorError::Handshake(e.to_string()));
            }
        }
        Ok(())
    }

    async fn kill(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.jailed.kill();
            reap(&mut r.jailed, Duration::from_secs(2)).await;
            self.note_end(&r.jailed);
        }
    }

    async fn crashed(&mut self, why: String) -> ConnectorError {
        // A process that died by itself (the OOM killer, seccomp) before the kill: the
        // breach says why, and goes into the error.
        self.kill().await;
        self.crashes = self.crashes.saturating_add(1);
        self.last_crash = Some(Instant::now());
        match self.breaches.last() {
            Some(end) => ConnectorError::Crashed(format!("{why} ({})", end.breach)),
            None => ConnectorError::Crashed(why),
        }
    }

    /// One request/reply on the running process.
    async fn exchange(&mut self, req: Request) -> Result<Reply, ConnectorError> {
        let Some(r) = self.running.as_mut() else { return Err(ConnectorError::Crashed("not running".into())) };
        let out = r.framer.send(&req).map_err(|e| ConnectorError::Crashed(e.to_string()))?;
        if let Err(e) = r.stdin.write_all(&out.bytes).await {
            let _ = r.framer.write_failed();
            return Err(self.crashed(format!("write to connector: {e}")).await);
        }
        let _ = r.stdin.flush().await;
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let Some(r) = self.running.as_mut() else { return Err(ConnectorError::Crashed("not running".into())) };
            let read = tokio::time::timeout_at(deadline, r.stdout.read(&mut buf)).await;
            let events = match read {
                Err(_) => {
                    let _ = r.framer.timed_out();
                    self.kill().await;
                    self.crashes = self.crashes.saturating_add(1);
                    self.last_crash = Some(Instant::now());
                    return Err(ConnectorError::Timeout(CALL_TIMEOUT));
                }
                Ok(Ok(0)) => r.framer.eof(),
                Ok(Ok(n)) => r.framer.push(&buf[..n]),
                Ok(Err(e)) => return Err(self.crashed(format!("read from connector: {e}")).await),
            };
            for ev in events {
                match ev {
                    Event::Reply(reply) if reply.id == out.id => return Ok(*reply),
                    Event::Reply(_) | Event::Stale { .. } => {}
                    Event::Rejected { error, .. } => {
                        return Err(ConnectorError::Failed {
                            code: "FCP-1002".into(),
                            message: error.to_string(),
                            retryable: false,
                        })
                    }
                    Event::Poisoned { error, .. } => return Err(self.crashed(error.to_string()).await),
                }
            }
        }
    }

    /// Invokes `operation` with `input`, starting the process first if needed. The
    /// connector leg carries `token`, minted by this node for exactly this call.
    pub async fn invoke(
        &mut self,
        request_id: &str,
        operation: &str,
        input: Value,
        token: Vec<u8>,
    ) -> Result<Value, ConnectorError> {
        self.last_used = Instant::now();
        if self.running.is_none() {
            self.start().await?;
        }
        let bad = |what: &str| ConnectorError::Failed {
            code: "FCP-1002".into(),
            message: format!("invalid {what}"),
            retryable: false,
        };
        let connector = CanonicalId::new(&self.spec.connector_id).map_err(|_| bad("connector id"))?;
        let op = CanonicalId::new(operation).map_err(|_| bad("operation id"))?;
        let req = InvokeRequest::new(request_id, connector, op, self.spec.zone.clone(), input, TokenBytes(token));
        // The proxy lets the jail reach what this operation's network_constraints allow,
        // for as long as the call runs, and nothing otherwise.
        let policy = self.spec.egress_policies.get(operation).cloned();
        self.set_egress(policy);
        let reply = self.exchange(Request::Invoke(Box::new(req))).await;
        self.set_egress(None);
        let reply = reply?;
        self.last_used = Instant::now();
        match reply.outcome {
            Ok(ReplyBody::Invoke(ok)) => {
                self.crashes = 0;
                Ok(ok.response.result.unwrap_or(Value::Null))
            }
            Ok(_) => Err(ConnectorError::Crashed(format!("reply to {:?} of the wrong kind", Method::Invoke))),
            Err(f) => Err(ConnectorError::Failed {
                code: f.code().to_string(),
                message: f.error.message.clone(),
                retryable: f.retryable(),
            }),
        }
    }

    fn set_egress(&self, policy: Option<fcp_egress::proxy::OperationPolicy>) {
        if let Some(Running { egress: Some(a), .. }) = &self.running {
            a.handle.set_operation(policy);
        }
    }

    /// Asks for health, starting the process if needed.
    pub async fn health(&mut self) -> Result<Value, ConnectorError> {
        if self.running.is_none() {
            self.start().await?;
        }
        match self.exchange(Request::Health).await?.outcome {
            Ok(ReplyBody::Health(h)) => {
                Ok(serde_json::json!({ "state": format!("{:?}", h.state), "details": h.details }))
            }
            Ok(_) => Err(ConnectorError::Crashed("reply to health of the wrong kind".into())),
            Err(f) => Err(ConnectorError::Failed {
                code: f.code().to_string(),
                message: f.error.message.clone(),
                retryable: f.retryable(),
            }),
        }
    }

    /// Stops the process: `shutdown`, close stdin, then kill after a grace period.
    pub async fn stop(&mut self) {
        if self.running.is_some() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.exchange(Request::Shutdown(ShutdownRequest::default())),
            )
            .await;
        }
        if let Some(mut r) = self.running.take() {
            drop(r.stdin);
            if !reap(&mut r.jailed, Duration::from_secs(2)).await {
                let _ = r.jailed.kill();
                reap(&mut r.jailed, Duration::from_secs(2)).await;
            }
            self.note_end(&r.jailed);
        }
    }
}

/// Why a start-up reply is not the success it should be.
fn refused(reply: &Reply) -> String {
    match &reply.outcome {
        Err(f) => format!("{} {}", f.code(), f.error.message),
        Ok(_) => format!("unexpected reply to {:?}", reply.method),
    }
}

/// Polls for the process to exit, without blocking a runtime thread; true if it did.
async fn reap(j: &mut Jailed, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if matches!(j.try_wait(), Ok(Some(_)) | Err(_)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
