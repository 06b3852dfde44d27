//! The daemon: every control request goes through here, and every invocation through
//! one pipeline (spec/protocol.md §3, spec/agent-api.md): zone binding → token →
//! revocation → input schema → intent → connector → output schema → signed receipt →
//! audit event, all committed in one store transaction before the answer is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use fcp_policy::manifest::Manifest;
use fcp_proto::audit::{verify_chain, AuditChain, AuditEvent, AuditHead, EventDraft, TraceContext};
use fcp_proto::capability::{
    mint_token, sign_grant, CapabilityGrant, Grantee, MintRequest, TrustStore, DEFAULT_TOKEN_TTL_SECS,
    MAX_TOKEN_TTL_SECS,
};
use fcp_proto::cbor;
use fcp_proto::control::{ControlRequest, InvokeCall, RevokeTarget};
use fcp_proto::decision::{
    decide, Decision, DecisionContext, DecisionRequest, InstanceBinding, OperationSpec, SafetyTier,
};
use fcp_proto::id::{Kid, ObjectId, ZoneId};
use fcp_proto::keys::{NodeSignature, SignatureSet};
use fcp_proto::object::ObjectHeader;
use fcp_proto::operation::{self, DecisionReceipt, OperationReceipt};
use fcp_proto::package::{host_target, Package};
use fcp_proto::provenance::{Confidentiality, Integrity, NoEvidence, Provenance};
use fcp_proto::revocation::{RevocationObject, RevocationTarget, RevocationView};
use fcp_proto::schema::SchemaId;
use fcp_proto::zone::OwnerSigned;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::connectors::{Instance, InstanceSpec};
use crate::home::{write_atomic, Home};
use crate::store::{Batch, DecisionRecord, InstalledInstance, Store, TokenRecord};

/// A failed control request: a stable code and a message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RequestFailure {
    /// Stable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> RequestFailure {
    RequestFailure { code, message: message.into() }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct Installed {
    record: InstalledInstance,
    manifest: Manifest,
    binary_hash: [u8; 32],
}

struct State {
    /// When this node's current attestation expires.
    attested_until: u64,
    /// Zones whose stored chain ends before their signed head: nothing is appended to
    /// them (appending would hide the loss) until the owner repairs the store.
    broken: HashMap<ZoneId, String>,
    trust: TrustStore,
    views: HashMap<ZoneId, RevocationView>,
    chains: HashMap<ZoneId, AuditChain>,
    installed: HashMap<String, Installed>,
}

/// The daemon.
pub struct Daemon {
    home: Home,
    sandbox: Arc<dyn fcp_sandbox::Sandbox + Send + Sync>,
    degradation: fcp_sandbox::Degradation,
    store: Store,
    state: Mutex<State>,
    instances: Mutex<HashMap<String, Arc<Mutex<Instance>>>>,
    /// The egress networks and proxy, once started ([`Daemon::set_egress`]).
    egress: std::sync::OnceLock<Arc<crate::egress::Egress>>,
    /// Credentials the proxy injects.
    credentials: Arc<crate::credentials::CredentialStore>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("home", &self.home).finish()
    }
}

fn instance_key(connector: &str, zone: &ZoneId) -> String {
    format!("{connector}@{zone}")
}

fn proto_tier(t: fcp_policy::manifest::SafetyTier) -> SafetyTier {
    match t.to_string().as_str() {
        "safe" => SafetyTier::Safe,
        "risky" => SafetyTier::Risky,
        "dangerous" => SafetyTier::Dangerous,
        "critical" => SafetyTier::Critical,
        _ => SafetyTier::Forbidden,
    }
}

fn zone_integrity(z: &ZoneId) -> Integrity {
    match z.as_str() {
        "z:owner" => Integrity::Owner,
        "z:private" => Integrity::Private,
        "z:work" => Integrity::Work,
        "z:community" => Integrity::Community,
        _ => Integrity::Untrusted,
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn parse_zone(z: &str) -> Result<ZoneId, RequestFailure> {
    ZoneId::new(z).map_err(|e| fail("zone.invalid", e.to_string()))
}

fn schema(ns: &str, name: &str) -> Result<SchemaId, RequestFailure> {
    SchemaId::new(ns, name, "1.0.0").map_err(|e| fail("internal", e.to_string()))
}

fn store_err(e: crate::store::StoreError) -> RequestFailure {
    fail("store.error", e.to_string())
}

impl Daemon {
    /// Loads the home and the store, replays revocations and resumes audit chains.
    /// Connectors start through `sandbox`; layers it cannot apply are refused unless
    /// `degradation` (owner policy) allows them, and every start with a layer missing is
    /// audited as `sandbox.degraded`.
    pub fn open(
        home: Home,
        sandbox: Arc<dyn fcp_sandbox::Sandbox + Send + Sync>,
        degradation: fcp_sandbox::Degradation,
        durability: crate::store::Durability,
    ) -> Result<Daemon, RequestFailure> {
        let store = Store::open_with(&home.store_path(), durability).map_err(store_err)?;
        let credentials = Arc::new(
            crate::credentials::CredentialStore::open(&home.dir.join("credentials"))
                .map_err(|e| fail("home.error", format!("credential store: {e}")))?,
        );
        let now = now();
        let mut trust = TrustStore::new(home.owner.public());
        let att = home.attest(now).map_err(|e| fail("home.error", e.to_string()))?;
        let attested_until = att.expires_at;
        trust.add_attestation(att, now).map_err(|e| fail("home.error", e.to_string()))?;
        let mut views = HashMap::new();
        let mut chains = HashMap::new();
        for (def, _) in &home.zones {
            let zone = def.body.zone_id.clone();
            let key = home.object_id_key(&zone).map_err(|e| fail("home.error", e.to_string()))?;
            let mut view = RevocationView::new(zone.clone(), home.owner.public());
            for (_, bytes) in store.revocations(zone.as_str()).map_err(store_err)? {
                let r: RevocationObject = cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 20))
                    .map_err(|e| fail("store.corrupt", format!("revocation: {e}")))?;
                view.apply(&r).map_err(|e| fail("store.corrupt", format!("revocation: {e}")))?;
            }
            views.insert(zone.clone(), view);
            let chain = match store.audit_last(zone.as_str()).map_err(store_err)? {
                Some(b) => {
                    let last = AuditEvent::from_cbor(&b).map_err(|e| fail("store.corrupt", format!("audit: {e}")))?;
                    AuditChain::resume(zone.clone(), key, &last).map_err(|e| fail("store.corrupt", e.to_string()))?
                }
                None => AuditChain::new(zone.clone(), key),
            };
            chains.insert(zone, chain);
        }
        for bytes in store.grants().map_err(store_err)? {
            let g: OwnerSigned<CapabilityGrant> = cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 20))
                .map_err(|e| fail("store.corrupt", format!("grant: {e}")))?;
            let key = home.object_id_key(&g.body.zone_id).map_err(|e| fail("home.error", e.to_string()))?;
            trust.add_grant(&key, g).map_err(|e| fail("store.corrupt", format!("grant: {e}")))?;
        }
        let mut broken = HashMap::new();
        for (zone, chain) in &chains {
            if let Some(bytes) = store.audit_head(zone.as_str()).map_err(store_err)? {
                let head: AuditHead = cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 16))
                    .map_err(|e| fail("store.corrupt", format!("audit head of {zone}: {e}")))?;
                let next = chain.next_seq();
                if head.head_seq >= next || chain.head() != Some(head.head_event) && head.head_seq + 1 == next {
                    let why = format!(
                        "the stored chain of {zone} ends at seq {} but its signed head is seq {}: events were removed; run `fcp audit verify --zone {zone}`",
                        next.saturating_sub(1),
                        head.head_seq
                    );
                    tracing::error!("{why}");
                    broken.insert(zone.clone(), why);
                }
            }
        }
        let mut installed = HashMap::new();
        for record in store.instances().map_err(store_err)? {
            let manifest = Manifest::parse(&record.manifest)
                .map_err(|e| fail("store.corrupt", format!("manifest of {}: {e}", record.connector_id)))?;
            let mut binary_hash = [0u8; 32];
            hex::decode_to_slice(&record.binary_hash, &mut binary_hash)
                .map_err(|_| fail("store.corrupt", "binary hash"))?;
            let zone = parse_zone(&record.zone)?;
            installed.insert(instance_key(&record.connector_id, &zone), Installed { record, manifest, binary_hash });
        }
        Ok(Daemon {
            home,
            sandbox,
            degradation,
            store,
            state: Mutex::new(State { attested_until, broken, trust, views, chains, installed }),
            instances: Mutex::new(HashMap::new()),
            egress: std::sync::OnceLock::new(),
            credentials,
        })
    }

    /// The loaded home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// A zone that requires hardware-backed keys gives its keys, tokens and connectors
    /// only to a node with a valid TPM posture (spec/protocol.md §5, spec/attest.md §5).
    /// Zones that do not require it never ask, so no TPM problem reaches them.
    fn require_posture(&self, zone: &ZoneId) -> Result<(), RequestFailure> {
        if !self.home.zone_policy(zone).is_some_and(|p| p.require_hardware_keys) {
            return Ok(());
        }
        self.home.hardware_posture(now()).map(|_| ()).map_err(|why| {
            fail(
                "zone.hardware_required",
                format!(
                    "{zone} requires hardware-backed node keys and this node has no valid TPM posture ({why}); enroll it: `fcp enroll nonce`, `fcp-attest request`, `fcp enroll verify`, `fcp-attest activate`, `fcp enroll finish`, `fcp-attest install`"
                ),
            )
        })
    }

    /// Stores a credential and audits it (in z:owner, without its secret).
    async fn credential_add(
        &self,
        id: &str,
        hosts: Vec<String>,
        auth: fcp_proto::control::CredentialAuth,
        secret: fcp_proto::control::SecretText,
        placeholder: Option<String>,
    ) -> Result<Value, RequestFailure> {
        let kind = match &auth {
            fcp_proto::control::CredentialAuth::Bearer => "bearer",
            fcp_proto::control::CredentialAuth::Basic { .. } => "basic",
            fcp_proto::control::CredentialAuth::Header { .. } => "header",
        };
        let host_list = hosts.join(",");
        self.credentials.add(id, hosts, auth, secret, placeholder).map_err(|e| fail("credential.invalid", e))?;
        let seq = self.audit_owner("credential.add", [("id", id), ("hosts", &host_list), ("kind", kind)]).await?;
        Ok(json!({ "id": id, "stored": true, "audit_seq": seq }))
    }

    async fn credential_remove(&self, id: &str) -> Result<Value, RequestFailure> {
        let removed = self.credentials.remove(id).map_err(|e| fail("credential.invalid", e))?;
        if !removed {
            return Err(fail("credential.not_found", format!("no credential {id} is stored")));
        }
        let seq = self.audit_owner("credential.remove", [("id", id)]).await?;
        Ok(json!({ "id": id, "removed": true, "audit_seq": seq }))
    }

    /// Appends an owner action to z:owner's chain.
    async fn audit_owner<const N: usize>(
        &self,
        event_type: &str,
        details: [(&str, &str); N],
    ) -> Result<u64, RequestFailure> {
        let zone = ZoneId::new("z:owner").map_err(|e| fail("internal", e.to_string()))?;
        let draft = EventDraft {
            event_type: event_type.into(),
            actor: "owner".into(),
            occurred_at: now(),
            details: details.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..EventDraft::default()
        };
        let mut st = self.state.lock().await;
        self.commit_with_event(&mut st, &zone, draft, Batch::default())
    }

    /// Gives connectors started from now on a network through `egress`.
    pub fn set_egress(&self, egress: Arc<crate::egress::Egress>) {
        let _ = self.egress.set(egress);
    }

    /// The egress status for `fcp egress status`.
    pub fn egress_status(&self) -> Value {
        match self.egress.get() {
            Some(e) => e.status(),
            None => json!({ "enabled": false, "jails": [] }),
        }
    }

    /// Writes one egress decision of the proxy to the audit chain of its zone, as
    /// `egress.connect` or `egress.dns`.
    pub async fn audit_egress(&self, event: fcp_egress::proxy::EgressEvent) {
        let Ok(zone) = ZoneId::new(&event.zone) else { return };
        let mut details: std::collections::BTreeMap<String, String> = [
            ("decision".to_owned(), if event.allowed { "allow" } else { "deny" }.to_owned()),
            ("reason".to_owned(), event.reason.clone()),
            ("host".to_owned(), event.host.clone()),
            ("port".to_owned(), event.port.to_string()),
            ("ips".to_owned(), event.ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
        ]
        .into();
        if let Some(op) = &event.operation {
            details.insert("operation".to_owned(), op.clone());
        }
        if !event.detail.is_empty() {
            details.insert("detail".to_owned(), event.detail.clone());
        }
        if event.allowed && event.kind == "connect" {
            details.insert("bytes_up".to_owned(), event.bytes_up.to_string());
            details.insert("bytes_down".to_owned(), event.bytes_down.to_string());
        }
        let draft = EventDraft {
            event_type: format!("egress.{}", event.kind),
            actor: "fcpd".into(),
            occurred_at: now(),
            connector_id: Some(event.connector.clone()),
            details: details.into_iter().collect(),
            ..EventDraft::default()
        };
        let mut st = self.state.lock().await;
        if let Err(e) = self.commit_with_event(&mut st, &zone, draft, Batch::default()) {
            tracing::error!("audit of an egress decision failed: {}", e.message);
        }
    }

    /// Answers one control request from a caller whose uid the socket reported.
    pub async fn handle(&self, req: ControlRequest, caller_uid: Option<u32>) -> Result<Value, RequestFailure> {
        match req {
            ControlRequest::Status => self.status().await,
            ControlRequest::Install { package_path, zone } => {
                let bytes = read_package(&package_path, caller_uid)?;
                self.install(&bytes, &zone).await
            }
            ControlRequest::List => self.list().await,
            ControlRequest::Restart { connector, zone } => self.restart(&connector, &zone).await,
            ControlRequest::Configure { connector, zone, config, allow_inline_secrets } => {
                self.configure(&connector, &zone, config, allow_inline_secrets).await
            }
            ControlRequest::Grant { zone, connector, operation, principal, ttl_secs } => {
                self.grant(&zone, &connector, &operation, &principal, ttl_secs).await
            }
            ControlRequest::Invoke(call) => self.invoke(call).await,
            ControlRequest::Explain { request_id } => self.explain(&request_id),
            ControlRequest::Revoke { zone, target, reason } => self.revoke(&zone, target, &reason).await,
            ControlRequest::AuditTail { zone, after_seq, limit } => self.audit_tail(&zone, after_seq, limit),
            ControlRequest::AuditVerify { zone } => self.audit_verify(&zone),
            ControlRequest::EgressStatus => Ok(self.egress_status()),
            ControlRequest::CredentialAdd { id, hosts, auth, secret, placeholder } => {
                self.credential_add(&id, hosts, auth, secret, placeholder).await
            }
            ControlRequest::CredentialList => Ok(json!({ "credentials": self.credentials.list() })),
            ControlRequest::CredentialRemove { id } => self.credential_remove(&id).await,
        }
    }

    /// Appends `draft` to `zone`'s chain and commits it with `batch`; on failure the
    /// in-memory chain is rebuilt from the store, so memory never runs ahead of disk.
    fn commit_with_event<'a>(
        &self,
        st: &mut State,
        zone: &'a ZoneId,
        draft: EventDraft,
        mut batch: Batch<'a>,
    ) -> Result<u64, RequestFailure> {
        if let Some(why) = st.broken.get(zone) {
            return Err(fail("audit.truncated", why.clone()));
        }
        let chain = st.chains.get_mut(zone).ok_or_else(|| fail("zone.unknown", format!("no zone {zone}")))?;
        let ev = chain
            .append(draft, &self.home.node.node_id, &self.home.node.signing)
            .map_err(|e| fail("audit.error", e.to_string()))?;
        let bytes = ev.to_cbor().map_err(|e| fail("audit.error", e.to_string()))?;
        let z = zone.as_str();
        batch.audit.push((z, ev.seq, bytes));
        // The signed head lands with the event, so deleting the newest events shows.
        let head_event = chain.head().ok_or_else(|| fail("audit.error", "chain has no head after an append"))?;
        batch.head = Some((z, self.sign_head(zone, head_event, ev.seq, ev.occurred_at)?));
        if let Err(e) = self.store.commit(batch) {
            let key = self.home.object_id_key(zone).map_err(|e| fail("home.error", e.to_string()))?;
            let rebuilt = match self.store.audit_last(z).ok().flatten().and_then(|b| AuditEvent::from_cbor(&b).ok()) {
                Some(last) => {
                    AuditChain::resume(zone.clone(), key, &last).map_err(|e| fail("audit.error", e.to_string()))?
                }
                None => AuditChain::new(zone.clone(), key),
            };
            st.chains.insert(zone.clone(), rebuilt);
            return Err(store_err(e));
        }
        Ok(ev.seq)
    }

    async fn status(&self) -> Result<Value, RequestFailure> {
        let st = self.state.lock().await;
        let running = self.instances.lock().await.len();
        Ok(json!({
            "node_id": self.home.node.node_id,
            "owner_kid": self.home.owner.kid().to_string(),
            "home": self.home.dir,
            "zones": self.home.zones.iter().map(|(d, p)| json!({
                "zone": d.body.zone_id.to_string(),
                "ceiling": format!("{:?}", p.body.max_safety_tier).to_lowercase(),
                "require_hardware_keys": p.body.require_hardware_keys,
                "revocation_seq": st.views.get(&d.body.zone_id).map(RevocationView::head_seq),
                "audit_next_seq": st.chains.get(&d.body.zone_id).map(AuditChain::next_seq),
            })).collect::<Vec<_>>(),
            "installed": st.installed.len(),
            "instances_started": running,
            "sandbox": {
                "backend": self.sandbox.name(),
                "layers": self.sandbox.layers().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                "allowed_missing": self.degradation.allowed_missing().iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            },
            "store_durability": self.store.durability(),
            "hardware_posture": match self.home.hardware_posture(now()) {
                Ok(p) => json!({ "valid": true, "posture": p }),
                Err(why) => json!({ "valid": false, "why": why }),
            },
        }))
    }

    async fn restart(&self, connector: &str, zone: &str) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        self.require_posture(&zone)?;
        let key = instance_key(connector, &zone);
        let spec = {
            let st = self.state.lock().await;
            let inst = st
                .installed
                .get(&key)
                .ok_or_else(|| fail("connector.not_installed", format!("{connector} is not installed in {zone}")))?;
            self.spec_for(inst, &zone)?
        };
        let instance = {
            let mut map = self.instances.lock().await;
            map.entry(key).or_insert_with(|| Arc::new(Mutex::new(Instance::new(spec)))).clone()
        };
        let mut i = instance.lock().await;
        i.stop().await;
        let t0 = std::time::Instant::now();
        let health = i.health().await;
        let cold = t0.elapsed();
        self.audit_degradation(&mut i, &zone, connector).await?;
        let health = health.map_err(|e| fail(e.code(), e.to_string()))?;
        Ok(json!({ "cold_start_us": cold.as_micros() as u64, "pid": i.pid(), "health": health, "starts": i.starts }))
    }

    async fn configure(
        &self,
        connector: &str,
        zone: &str,
        config: Value,
        allow_inline: bool,
    ) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        let Value::Object(map) = &config else {
            return Err(fail("configure.not_an_object", "config must be a JSON object"));
        };
        let secrets = secret_keys(map, "");
        if !secrets.is_empty() && !allow_inline {
            return Err(fail(
                "configure.inline_secret",
                format!(
                    "{} look like inline secrets; pass credentials as credential_id references (the egress proxy injects them), or allow inline secrets for this connector explicitly",
                    secrets.join(", ")
                ),
            ));
        }
        let key = instance_key(connector, &zone);
        let now = now();
        let mut st = self.state.lock().await;
        let inst = st
            .installed
            .get(&key)
            .ok_or_else(|| fail("connector.not_installed", format!("{connector} is not installed in {zone}")))?;
        let mut record = inst.record.clone();
        record.config = config.clone();
        let bytes = serde_json::to_vec(&record).map_err(|e| fail("internal", e.to_string()))?;
        let mut keys: Vec<String> = map.keys().cloned().collect();
        keys.sort();
        let draft = EventDraft {
            event_type: "connector.configure".into(),
            actor: "owner".into(),
            occurred_at: now,
            connector_id: Some(connector.to_owned()),
            details: [("keys".to_owned(), keys.join(",")), ("inline_secrets".to_owned(), secrets.join(","))].into(),
            ..EventDraft::default()
        };
        let seq = self.commit_with_event(
            &mut st,
            &zone,
            draft,
            Batch { instance: Some((key.clone(), bytes)), ..Batch::default() },
        )?;
        if let Some(i) = st.installed.get_mut(&key) {
            i.record = record;
        }
        drop(st);
        if let Some(old) = self.instances.lock().await.remove(&key) {
            old.lock().await.stop().await;
        }
        Ok(
            json!({ "connector": connector, "zone": zone.to_string(), "keys": keys, "inline_secrets": secrets, "audit_seq": seq }),
        )
    }

    fn spec_for(&self, inst: &Installed, zone: &ZoneId) -> Result<InstanceSpec, RequestFailure> {
        let binary = self.home.connector_dir(&inst.binary_hash).join("binary");
        let state_dir = self.home.instance_dir(&inst.record.connector_id, zone);
        let spawn = fcp_sandbox::SpawnSpec::from_manifest(&inst.manifest, &binary, &state_dir)
            .and_then(|s| s.env("FCP_ZONE", zone.as_str()))
            .map_err(|e| fail("sandbox.spec", e.to_string()))?
            .with_degradation(self.degradation);
        Ok(InstanceSpec {
            connector_id: inst.record.connector_id.clone(),
            zone: zone.clone(),
            binary,
            spawn,
            sandbox: self.sandbox.clone(),
            config: inst.record.config.as_object().cloned().unwrap_or_default(),
            host_public_key: self.home.node.issuance.public().to_bytes(),
            egress: self.egress.get().cloned(),
            egress_policies: crate::egress::policies(&inst.manifest),
            credentials: Some((
                Arc::clone(&self.credentials),
                crate::credentials::ids_in(inst.record.config.as_object().unwrap_or(&serde_json::Map::new())),
            )),
        })
    }

    /// This node's signature over the head of `zone`'s chain (a 1-of-1 quorum until
    /// the mesh adds co-signers).
    fn sign_head(
        &self,
        zone: &ZoneId,
        head_event: ObjectId,
        head_seq: u64,
        at: u64,
    ) -> Result<Vec<u8>, RequestFailure> {
        let mut head = AuditHead {
            zone_id: zone.clone(),
            head_event,
            head_seq,
            coverage_bps: 10_000,
            epoch_id: fcp_proto::id::EpochId::at(at, fcp_proto::id::EPOCH_SECS).0,
            quorum_signatures: SignatureSet::new(),
        };
        let bytes = head.signing_bytes().map_err(|e| fail("audit.error", e.to_string()))?;
        head.quorum_signatures.insert(NodeSignature {
            node_id: self.home.node.node_id.clone(),
            signature: self.home.node.signing.sign_raw(&bytes),
            signed_at: at,
        });
        cbor::to_vec(&head).map_err(|e| fail("internal", e.to_string()))
    }

    /// The stored head of `zone`, verified under this node's key.
    fn verified_head(&self, zone: &ZoneId) -> Result<Option<AuditHead>, String> {
        let Some(bytes) = self.store.audit_head(zone.as_str()).map_err(|e| e.to_string())? else { return Ok(None) };
        let head: AuditHead = cbor::from_slice(&bytes, cbor::Limits::with_max_len(1 << 16))
            .map_err(|e| format!("head does not decode: {e}"))?;
        let signer = self.home.node.signing.public();
        let node_id = self.home.node.node_id.clone();
        head.verify(1, |n| (n == node_id).then_some(signer)).map_err(|e| format!("head signature: {e}"))?;
        Ok(Some(head))
    }

    /// A signed OperationIntent for this request: its keyed ObjectId and its CBOR.
    fn sign_intent(
        &self,
        zone: &ZoneId,
        request_id: &str,
        call: &InvokeCall,
        jti: Option<&[u8]>,
        now: u64,
    ) -> Result<(ObjectId, Vec<u8>), RequestFailure> {
        let jti = jti
            .and_then(|j| uuid::Uuid::from_slice(j).ok())
            .ok_or_else(|| fail("intent.no_token_id", "an intent needs a token with a 16-byte id"))?;
        let schema = schema("fcp.operation", "intent")?;
        let mut intent = operation::OperationIntent {
            header: ObjectHeader::new(schema.clone(), zone.clone(), now),
            request_object_id: ObjectId::unscoped(format!("request:{request_id}").as_bytes()),
            capability_token_jti: jti,
            idempotency_key: call.idempotency_key.clone(),
            planned_at: now,
            planned_by: self.home.node.node_id.clone(),
            lease_seq: None,
            upstream_idempotency: None,
            signature: operation::UNSIGNED,
        };
        intent.sign(self.home.node.signing.as_dalek()).map_err(|e| fail("intent.error", e.to_string()))?;
        let bytes = cbor::to_vec(&intent).map_err(|e| fail("internal", e.to_string()))?;
        let key = self.home.object_id_key(zone).map_err(|e| fail("home.error", e.to_string()))?;
        Ok((ObjectId::keyed(&key, zone, &schema, &bytes), bytes))
    }

    /// Writes `sandbox.degraded` for an instance that started with layers missing, and
    /// `sandbox.breach` for each of its processes a limit or the seccomp filter ended.
    async fn audit_degradation(
        &self,
        instance: &mut Instance,
        zone: &ZoneId,
        connector: &str,
    ) -> Result<(), RequestFailure> {
        let mut drafts = Vec::new();
        if let Some((backend, missing)) = instance.take_degradation() {
            drafts.push(EventDraft {
                event_type: "sandbox.degraded".into(),
                actor: "fcpd".into(),
                occurred_at: now(),
                connector_id: Some(connector.to_owned()),
                details: [("backend".to_owned(), backend), ("missing_layers".to_owned(), missing.join(","))].into(),
                ..EventDraft::default()
            });
        }
        for end in instance.take_breaches() {
            let mut details: std::collections::BTreeMap<String, String> = [
                ("limit".to_owned(), end.breach.limit().to_owned()),
                ("pid".to_owned(), end.pid.to_string()),
                ("status".to_owned(), end.status),
                ("reason".to_owned(), end.breach.to_string()),
            ]
            .into();
            if let Some(syscall) = end.breach.syscall() {
                details.insert("syscall".to_owned(), syscall.name.unwrap_or("unknown").to_owned());
                details.insert("syscall_number".to_owned(), syscall.number.to_string());
            }
            drafts.push(EventDraft {
                event_type: "sandbox.breach".into(),
                actor: "fcpd".into(),
                occurred_at: now(),
                connector_id: Some(connector.to_owned()),
                details: details.into_iter().collect(),
                ..EventDraft::default()
            });
        }
        for draft in drafts {
            let mut st = self.state.lock().await;
            self.commit_with_event(&mut st, zone, draft, Batch::default())?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Value, RequestFailure> {
        let st = self.state.lock().await;
        let instances = self.instances.lock().await;
        let mut out = Vec::new();
        for (key, i) in &st.installed {
            let (running, pid) = match instances.get(key) {
                Some(inst) => {
                    let i = inst.lock().await;
                    (i.is_running(), i.pid())
                }
                None => (false, None),
            };
            out.push(json!({
                "connector": i.record.connector_id,
                "version": i.record.version,
                "zone": i.record.zone,
                "binary_hash": i.record.binary_hash,
                "operations": i.manifest.operations.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
                "running": running,
                "pid": pid,
            }));
        }
        out.sort_by_key(|a| a.to_string());
        Ok(json!({ "connectors": out }))
    }

    async fn install(&self, bytes: &[u8], zone: &str) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        self.require_posture(&zone)?;
        let policy =
            self.home.zone_policy(&zone).ok_or_else(|| fail("zone.unknown", format!("no zone {zone}")))?.clone();
        let pkg = Package::from_bytes(bytes).map_err(|e| fail(e.code(), e.to_string()))?;
        let trusted: Vec<_> = self
            .home
            .trusted_publishers
            .iter()
            .filter_map(|k| fcp_proto::keys::PublisherPublicKey::from_bytes(k).ok())
            .collect();
        let verified = pkg.verify(&trusted).map_err(|e| fail(e.code(), e.to_string()))?;
        let (platform, arch) =
            host_target(std::env::consts::OS, std::env::consts::ARCH).map_err(|e| fail(e.code(), e.to_string()))?;
        verified.check_platform(platform, arch).map_err(|e| fail(e.code(), e.to_string()))?;
        let manifest = Manifest::parse(verified.manifest()).map_err(|e| {
            let lines: Vec<String> =
                e.violations().iter().map(|v| format!("{} {}: {}", v.code(), v.path(), v.message())).collect();
            fail("package.invalid_manifest", format!("{e}: {}", lines.join("; ")))
        })?;
        let z = &manifest.zones;
        let allowed = z.home == zone
            || z.allowed_targets.iter().chain(&z.allowed_sources).any(|p| match p {
                fcp_policy::manifest::ZonePattern::Zone(id) => id == &zone,
                fcp_policy::manifest::ZonePattern::AnyProject => zone.as_str().starts_with("z:project:"),
            });
        if !allowed || z.forbidden.contains(&zone) {
            return Err(fail(
                "package.zone_not_allowed",
                format!("the manifest does not allow zone {zone} (home {})", z.home),
            ));
        }
        for (op_id, op) in &manifest.operations {
            let tier = proto_tier(op.safety_tier);
            if tier == SafetyTier::Forbidden {
                continue;
            }
            if let Some(g) = policy.capabilities.deny.iter().find(|g| g.matches(op.capability.as_str())) {
                return Err(fail(
                    "package.capability_denied",
                    format!("operation {op_id} needs capability {}, which {zone} denies ({g:?})", op.capability),
                ));
            }
            if tier > policy.max_safety_tier {
                return Err(fail(
                    "package.above_ceiling",
                    format!("operation {op_id} is {tier:?}, above {zone}'s ceiling {:?}", policy.max_safety_tier),
                ));
            }
        }
        let hash = pkg.binary_hash();
        let dir = self.home.connector_dir(&hash);
        std::fs::create_dir_all(&dir).map_err(|e| fail("install.io", format!("{}: {e}", dir.display())))?;
        write_atomic(&dir.join("binary"), pkg.binary(), 0o755).map_err(|e| fail("install.io", e.to_string()))?;
        write_atomic(&dir.join("manifest.toml"), verified.manifest().as_bytes(), 0o644)
            .map_err(|e| fail("install.io", e.to_string()))?;
        let now = now();
        let record = InstalledInstance {
            connector_id: manifest.connector.id.to_string(),
            version: manifest.connector.version.to_string(),
            zone: zone.to_string(),
            binary_hash: hex::encode(hash),
            manifest: verified.manifest().to_owned(),
            publisher_kid: pkg.publisher_kid().to_string(),
            config: json!({}),
            installed_at: now,
        };
        let key = instance_key(&record.connector_id, &zone);
        let json_bytes = serde_json::to_vec(&record).map_err(|e| fail("internal", e.to_string()))?;
        let mut st = self.state.lock().await;
        let draft = EventDraft {
            event_type: "connector.install".into(),
            actor: "owner".into(),
            occurred_at: now,
            connector_id: Some(record.connector_id.clone()),
            details: [
                ("version".to_owned(), record.version.clone()),
                ("binary_hash".to_owned(), record.binary_hash.clone()),
                ("publisher_kid".to_owned(), record.publisher_kid.clone()),
            ]
            .into(),
            ..EventDraft::default()
        };
        let seq = self.commit_with_event(
            &mut st,
            &zone,
            draft,
            Batch { instance: Some((key.clone(), json_bytes)), ..Batch::default() },
        )?;
        let out = json!({
            "connector": record.connector_id, "version": record.version, "zone": record.zone,
            "binary_hash": record.binary_hash, "publisher_kid": record.publisher_kid, "audit_seq": seq,
        });
        st.installed.insert(key.clone(), Installed { record, manifest, binary_hash: hash });
        drop(st);
        if let Some(old) = self.instances.lock().await.remove(&key) {
            old.lock().await.stop().await;
        }
        Ok(out)
    }

    async fn grant(
        &self,
        zone: &str,
        connector: &str,
        operation: &str,
        principal: &str,
        ttl: Option<u64>,
    ) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        self.require_posture(&zone)?;
        let now = now();
        let ttl = ttl.unwrap_or(DEFAULT_TOKEN_TTL_SECS).clamp(1, MAX_TOKEN_TTL_SECS);
        let mut st = self.state.lock().await;
        let key = instance_key(connector, &zone);
        let inst = st
            .installed
            .get(&key)
            .ok_or_else(|| fail("connector.not_installed", format!("{connector} is not installed in {zone}")))?;
        let op = inst
            .manifest
            .operations
            .iter()
            .find(|(k, _)| k.as_str() == operation)
            .map(|(_, v)| v)
            .ok_or_else(|| fail("operation.unknown", format!("{connector} has no operation {operation}")))?;
        let capability = op.capability.to_string();
        let grant = sign_grant(
            &self.home.owner,
            CapabilityGrant {
                capability_id: capability.clone(),
                zone_id: zone.clone(),
                grantee: Grantee::Principal(principal.to_owned()),
                operations: vec![operation.to_owned()],
                valid_from: now,
                valid_until: now + ttl,
                constraints: Default::default(),
            },
        )
        .map_err(|e| fail("grant.error", e.to_string()))?;
        let oid_key = self.home.object_id_key(&zone).map_err(|e| fail("home.error", e.to_string()))?;
        let grant_bytes = cbor::to_vec(&grant).map_err(|e| fail("internal", e.to_string()))?;
        let grant_id = st.trust.add_grant(&oid_key, grant).map_err(|e| fail("grant.error", e.to_string()))?;
        let ops = vec![operation.to_owned()];
        let ids = [grant_id];
        let chk_seq = st.views.get(&zone).map(RevocationView::head_seq);
        let token = mint_token(
            &mut OsRng,
            &self.home.node.issuance,
            &MintRequest {
                zone: &zone,
                capability: &capability,
                operations: &ops,
                grant_ids: &ids,
                principal: Some(principal),
                issuer_node: &self.home.node.node_id,
                now,
                ttl_secs: ttl,
                chk_seq,
                constraints: None,
            },
        )
        .map_err(|e| fail("grant.error", e.to_string()))?;
        let jti = fcp_proto::token::verify_cose(&token, self.home.node.issuance.public().as_dalek())
            .and_then(|v| v.claims())
            .ok()
            .and_then(|c| c.cti)
            .ok_or_else(|| fail("internal", "minted token has no cti"))?;
        let rec = TokenRecord {
            zone: zone.to_string(),
            principal: principal.to_owned(),
            connector: connector.to_owned(),
            operation: operation.to_owned(),
            grant_id: grant_id.to_hex(),
            exp: now + ttl,
        };
        let draft = EventDraft {
            event_type: "capability.grant".into(),
            actor: "owner".into(),
            occurred_at: now,
            connector_id: Some(connector.to_owned()),
            operation: Some(operation.to_owned()),
            capability_token_jti: Some(jti.clone()),
            details: [("principal".to_owned(), principal.to_owned()), ("grant_id".to_owned(), grant_id.to_hex())]
                .into(),
            ..EventDraft::default()
        };
        let batch = Batch {
            grant: Some((grant_id.0.to_vec(), grant_bytes)),
            token: Some((jti.clone(), serde_json::to_vec(&rec).map_err(|e| fail("internal", e.to_string()))?)),
            ..Batch::default()
        };
        self.commit_with_event(&mut st, &zone, draft, batch)?;
        Ok(json!({
            "token_b64": b64().encode(&token),
            "jti": hex::encode(&jti),
            "grant_id": grant_id.to_hex(),
            "zone": zone.to_string(),
            "connector": connector,
            "operation": operation,
            "principal": principal,
            "expires_at": now + ttl,
        }))
    }

    async fn revoke(&self, zone: &str, target: RevokeTarget, reason: &str) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        let bad = |what: &str| fail("revoke.bad_target", format!("{what} must be hex of the right length"));
        let t = match &target {
            RevokeTarget::Token(h) => RevocationTarget::Token(hex::decode(h).map_err(|_| bad("token id"))?),
            RevokeTarget::Grant(h) => RevocationTarget::Capability(h.parse::<ObjectId>().map_err(|_| bad("grant id"))?),
            RevokeTarget::IssuerKey(h) => {
                let mut k = [0u8; 8];
                hex::decode_to_slice(h, &mut k).map_err(|_| bad("kid"))?;
                RevocationTarget::IssuerKey(Kid(k))
            }
            RevokeTarget::ConnectorBinary(h) => {
                let mut k = [0u8; 32];
                hex::decode_to_slice(h, &mut k).map_err(|_| bad("binary hash"))?;
                RevocationTarget::ConnectorBinary(k)
            }
        };
        let now = now();
        let mut st = self.state.lock().await;
        let seq = st
            .views
            .get(&zone)
            .map(|v| v.head_seq() + 1)
            .ok_or_else(|| fail("zone.unknown", format!("no zone {zone}")))?;
        let r = RevocationObject::issue(&self.home.owner, zone.clone(), seq, vec![t.clone()], reason, now, None)
            .map_err(|e| fail(e.code(), e.to_string()))?;
        let bytes = cbor::to_vec(&r).map_err(|e| fail("internal", e.to_string()))?;
        let draft = EventDraft {
            event_type: "revocation.issue".into(),
            actor: "owner".into(),
            occurred_at: now,
            details: [
                ("scope".to_owned(), t.scope().to_owned()),
                ("reason".to_owned(), reason.to_owned()),
                ("seq".to_owned(), seq.to_string()),
            ]
            .into(),
            ..EventDraft::default()
        };
        let z = zone.as_str().to_owned();
        self.commit_with_event(
            &mut st,
            &zone,
            draft,
            Batch { revocation: Some((&z, seq, bytes)), ..Batch::default() },
        )?;
        st.views.get_mut(&zone).map(|v| v.apply(&r)).transpose().map_err(|e| fail(e.code(), e.to_string()))?;
        Ok(json!({ "zone": zone.to_string(), "seq": seq, "scope": t.scope() }))
    }

    fn explain(&self, request_id: &str) -> Result<Value, RequestFailure> {
        let rec = self
            .store
            .decision(request_id)
            .map_err(store_err)?
            .ok_or_else(|| fail("explain.unknown_request", format!("no request {request_id}")))?;
        serde_json::to_value(rec).map_err(|e| fail("internal", e.to_string()))
    }

    fn audit_tail(&self, zone: &str, after: Option<u64>, limit: Option<u32>) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        let rows =
            self.store.audit(zone.as_str(), after, limit.unwrap_or(50).min(10_000) as usize).map_err(store_err)?;
        let events: Vec<Value> = rows
            .into_iter()
            .map(|(seq, b)| match AuditEvent::from_cbor(&b) {
                Ok(e) => json!({
                    "seq": e.seq, "occurred_at": e.occurred_at, "event_type": e.event_type, "actor": e.actor,
                    "connector_id": e.connector_id, "operation": e.operation,
                    "request_id": e.details.get("request_id"), "details": e.details,
                    "trace_id": e.trace_context.map(|t| hex::encode(t.trace_id)),
                    "prev": e.prev.map(|p| p.to_hex()),
                }),
                Err(err) => json!({ "seq": seq, "error": err.to_string() }),
            })
            .collect();
        Ok(json!({ "zone": zone.to_string(), "events": events }))
    }

    fn audit_verify(&self, zone: &str) -> Result<Value, RequestFailure> {
        let zone = parse_zone(zone)?;
        let key = self.home.object_id_key(&zone).map_err(|e| fail("home.error", e.to_string()))?;
        let rows = self.store.audit(zone.as_str(), None, usize::MAX).map_err(store_err)?;
        let mut events = Vec::with_capacity(rows.len());
        for (seq, b) in rows {
            match AuditEvent::from_cbor(&b) {
                Ok(e) => events.push(e),
                Err(err) => {
                    return Ok(
                        json!({ "zone": zone.to_string(), "ok": false, "code": "audit.edited", "seq": seq, "message": format!("event {seq} does not decode: {err}") }),
                    )
                }
            }
        }
        let head = match self.verified_head(&zone) {
            Ok(h) => h,
            Err(why) => {
                return Ok(json!({ "zone": zone.to_string(), "ok": false, "code": "audit.bad_head", "message": why }))
            }
        };
        if head.is_none() && !events.is_empty() {
            return Ok(
                json!({ "zone": zone.to_string(), "ok": false, "code": "audit.bad_head", "message": "events but no signed head" }),
            );
        }
        let signer = self.home.node.signing.public();
        let node_id = self.home.node.node_id.clone();
        match verify_chain(&zone, &key, &events, |n| (n == node_id).then_some(signer), head.as_ref()) {
            Ok(s) => Ok(
                json!({ "zone": zone.to_string(), "ok": true, "events": s.events, "head_seq": s.head.map(|h| h.0), "head": s.head.map(|h| h.1.to_hex()) }),
            ),
            Err(b) => Ok(
                json!({ "zone": zone.to_string(), "ok": false, "code": b.code(), "message": b.to_string(), "events": events.len() }),
            ),
        }
    }

    async fn invoke(&self, call: InvokeCall) -> Result<Value, RequestFailure> {
        let zone = parse_zone(&call.zone)?;
        let now = now();
        if let Some(k) = &call.idempotency_key {
            if k.len() > operation::MAX_IDEMPOTENCY_KEY_LEN {
                return Err(fail("request.idempotency_key_too_long", "idempotency keys are at most 128 bytes"));
            }
        }
        let request_id = random_hex(16);
        let token = match &call.token_b64 {
            Some(t) => {
                Some(b64().decode(t.trim()).map_err(|e| fail("request.malformed", format!("token base64: {e}")))?)
            }
            None => None,
        };
        let trace = call.traceparent.as_deref().and_then(TraceContext::parse_traceparent);
        let key = instance_key(&call.connector, &zone);

        // Decide, under the state lock; release it before the connector runs.
        let (decision, spec, op_schemas, tier) = {
            let mut st = self.state.lock().await;
            if let Err(f) = self.require_posture(&zone) {
                return self.deny_early(&mut st, &zone, &request_id, &call, f.code, f.message, trace, now);
            }
            let Some(inst) = st.installed.get(&key) else {
                return self.deny_early(
                    &mut st,
                    &zone,
                    &request_id,
                    &call,
                    "connector.not_installed",
                    format!("{} is not installed in {zone}", call.connector),
                    trace,
                    now,
                );
            };
            let Some((op_id, op)) = inst.manifest.operations.iter().find(|(k, _)| k.as_str() == call.operation) else {
                return self.deny_early(
                    &mut st,
                    &zone,
                    &request_id,
                    &call,
                    "operation.unknown",
                    format!("{} has no operation {}", call.connector, call.operation),
                    trace,
                    now,
                );
            };
            let tier = proto_tier(op.safety_tier);
            let binding = InstanceBinding {
                connector_id: call.connector.clone(),
                instance_id: key.clone(),
                zone: zone.clone(),
                binary_hash: inst.binary_hash,
            };
            let opspec = OperationSpec { id: op_id.to_string(), capability: op.capability.to_string(), tier };
            let schemas = (op.input_schema.clone(), op.output_schema.clone());
            let spec = self.spec_for(inst, &zone)?;
            // This node holds the owner key and the whole revocation log: its view is
            // complete by construction, so it is fresh as of now.
            if let Some(v) = st.views.get_mut(&zone) {
                v.mark_synced(now);
            }
            let provenance = Provenance::new(zone.clone(), zone_integrity(&zone), Confidentiality::Work);
            let intent = call.intent.then(|| ObjectId::unscoped(format!("intent:{request_id}").as_bytes()));
            let req = DecisionRequest {
                caller_zone: Some(&zone),
                principal: Some(&call.principal),
                instance: Some(&binding),
                operation: Some(&opspec),
                token: token.as_deref(),
                intent,
                provenance: Some(&provenance),
                now,
            };
            let ctx = DecisionContext {
                trust: &st.trust,
                zone_policy: self.home.zone_policy(&zone),
                zone_integrity: zone_integrity(&zone),
                revocation: st.views.get(&zone),
                evidence: &NoEvidence,
            };
            let d = decide(&req, &ctx);
            let inputs = json!({
                "zone": zone.to_string(), "principal": call.principal, "connector": call.connector,
                "operation": call.operation, "safety_tier": format!("{tier:?}").to_lowercase(),
                "token_present": token.is_some(), "intent_declared": call.intent,
                "revocation_seq": st.views.get(&zone).map(RevocationView::head_seq),
                "binary_hash": hex::encode(binding.binary_hash),
            });
            match d {
                Decision::Deny(reason) => {
                    let code = reason.code();
                    let message = reason.to_string();
                    return self.record_denial(&mut st, &zone, &request_id, &call, code, &message, inputs, trace, now);
                }
                Decision::Allow(a) => {
                    // A replay answers only a caller the pipeline has just allowed to
                    // make this very call: the key is no way around the token.
                    if let Some(k) = &call.idempotency_key {
                        if let Some(prev) = self.store.idempotent(zone.as_str(), k).map_err(store_err)? {
                            return self.replay(&prev, &call);
                        }
                    }
                    let mut intent_ref = None;
                    if intent.is_some() {
                        // The signed OperationIntent is stored (in the audit chain) before
                        // the connector runs; the receipt's header refs name it (digest §8.1).
                        let (intent_id, intent_cbor) =
                            self.sign_intent(&zone, &request_id, &call, a.token.jti(), now)?;
                        let draft = EventDraft {
                            event_type: "operation.intent".into(),
                            actor: call.principal.clone(),
                            occurred_at: now,
                            trace_context: trace,
                            connector_id: Some(call.connector.clone()),
                            operation: Some(call.operation.clone()),
                            capability_token_jti: a.token.jti().map(<[u8]>::to_vec),
                            request_object_id: Some(intent_id),
                            details: [
                                ("request_id".to_owned(), request_id.clone()),
                                ("intent_cbor".to_owned(), hex::encode(intent_cbor)),
                            ]
                            .into(),
                            ..EventDraft::default()
                        };
                        self.commit_with_event(&mut st, &zone, draft, Batch::default())?;
                        intent_ref = Some(intent_id);
                    }
                    if let Some(age) = a.degraded_age_secs {
                        let draft = EventDraft {
                            event_type: "revocation.degraded_mode".into(),
                            actor: "fcpd".into(),
                            occurred_at: now,
                            details: [
                                ("age_secs".to_owned(), age.to_string()),
                                ("request_id".to_owned(), request_id.clone()),
                            ]
                            .into(),
                            ..EventDraft::default()
                        };
                        self.commit_with_event(&mut st, &zone, draft, Batch::default())?;
                    }
                    ((a, inputs, intent_ref), spec, schemas, tier)
                }
            }
        };
        let ((allowed, inputs, intent_ref), spec, (input_schema, output_schema), _tier) =
            (decision, spec, op_schemas, tier);

        if let Err(msg) = validate(&input_schema, &call.input) {
            let mut st = self.state.lock().await;
            return self.record_denial(
                &mut st,
                &zone,
                &request_id,
                &call,
                "input.schema",
                &format!("input does not match the operation's input_schema: {msg}"),
                inputs,
                trace,
                now,
            );
        }

        // The connector leg carries a token this node mints for exactly this call.
        let leg_token = {
            let claims = fcp_proto::token::CapabilityClaims {
                iss: Some(self.home.node.node_id.clone()),
                aud: Some(call.connector.clone()),
                iat: Some(now as i64),
                nbf: Some(now as i64),
                exp: Some(now as i64 + 60),
                cti: allowed.token.jti().map(<[u8]>::to_vec),
                capability_id: allowed.token.claims().capability_id.clone(),
                zone_id: Some(zone.to_string()),
                operations: Some(vec![call.operation.clone()]),
                principal_id: Some(call.principal.clone()),
                iss_node: Some(self.home.node.node_id.clone()),
                ..Default::default()
            };
            fcp_proto::token::sign(self.home.node.issuance.as_dalek(), &claims)
                .map(fcp_proto::token::SignedToken::into_bytes)
                .map_err(|e| fail("internal", e.to_string()))?
        };
        let instance = {
            let mut map = self.instances.lock().await;
            map.entry(key.clone()).or_insert_with(|| Arc::new(Mutex::new(Instance::new(spec)))).clone()
        };
        let result = {
            let mut i = instance.lock().await;
            let r = i.invoke(&request_id, &call.operation, call.input.clone(), leg_token).await;
            self.audit_degradation(&mut i, &zone, &call.connector).await?;
            r
        };
        let executed_at = now_after(now);
        let mut st = self.state.lock().await;
        let output = match result {
            Ok(out) => out,
            Err(e) => {
                let code = e.code();
                let mut msg = e.to_string();
                if code == "sandbox.layers_missing" {
                    msg.push_str(
                        "; this machine cannot put those layers in force (see `fcp doctor`): the owner may let \
                         connectors start without them with fcpd's --allow-degraded-sandbox or [sandbox] \
                         degradation, audited per start",
                    );
                }
                return self.record_failure(&mut st, &zone, &request_id, &call, code, &msg, inputs, trace, executed_at);
            }
        };
        if let Err(msg) = validate(&output_schema, &output) {
            return self.record_failure(
                &mut st,
                &zone,
                &request_id,
                &call,
                "output.schema",
                &format!("connector output does not match the operation's output_schema: {msg}"),
                inputs,
                trace,
                executed_at,
            );
        }
        let request_object_id = ObjectId::unscoped(format!("request:{request_id}").as_bytes());
        let outcome_bytes = serde_json::to_vec(&output).map_err(|e| fail("internal", e.to_string()))?;
        let mut header = ObjectHeader::new(schema("fcp.operation", "receipt")?, zone.clone(), executed_at);
        header.refs.push(request_object_id);
        header.refs.extend(intent_ref);
        let mut receipt = OperationReceipt {
            header,
            request_object_id,
            idempotency_key: call.idempotency_key.clone(),
            outcome_object_ids: vec![ObjectId::unscoped(&outcome_bytes)],
            resource_object_ids: Vec::new(),
            usage_metrics: None,
            executed_at,
            executed_by: self.home.node.node_id.clone(),
            signature: operation::UNSIGNED,
        };
        receipt.sign(self.home.node.signing.as_dalek()).map_err(|e| fail("internal", e.to_string()))?;
        let receipt_json = json!({
            "kind": "OperationReceipt",
            "request_object_id": request_object_id.to_hex(),
            "idempotency_key": receipt.idempotency_key,
            "outcome_object_ids": receipt.outcome_object_ids.iter().map(ObjectId::to_hex).collect::<Vec<_>>(),
            "executed_at": executed_at,
            "executed_by": receipt.executed_by,
            "signer_kid": self.home.node.signing.kid().to_string(),
            "signature": hex::encode(receipt.signature),
            "cbor": hex::encode(cbor::to_vec(&receipt).map_err(|e| fail("internal", e.to_string()))?),
        });
        let draft = EventDraft {
            capability_token_jti: allowed.token.jti().map(<[u8]>::to_vec),
            request_object_id: Some(request_object_id),
            result_object_id: receipt.outcome_object_ids.first().copied(),
            ..call_event("capability.invoke", &call, &request_id, executed_at, trace, ("decision", "allow"))
        };
        let seq = st.chains.get(&zone).map(AuditChain::next_seq).unwrap_or(0);
        let record = DecisionRecord {
            request_id: request_id.clone(),
            zone: zone.to_string(),
            decision: "allow".into(),
            reason_code: "allow".into(),
            message: "every check passed".into(),
            inputs,
            outcome: Some(json!({ "status": "ok", "output": output })),
            receipt: Some(receipt_json),
            audit_seq: seq,
            decided_at: now,
        };
        self.commit_record(&mut st, &zone, draft, &record, call.idempotency_key.as_deref())
    }

    /// The earlier decision record under an idempotency key, marked `replayed`; a key
    /// first used by another principal, connector or operation is refused.
    fn replay(&self, request_id: &str, call: &InvokeCall) -> Result<Value, RequestFailure> {
        let mut rec = self.explain(request_id)?;
        let inputs = &rec["inputs"];
        if inputs["principal"] != call.principal.as_str()
            || inputs["connector"] != call.connector.as_str()
            || inputs["operation"] != call.operation.as_str()
        {
            return Err(fail(
                "request.idempotency_conflict",
                "this idempotency key was used for another principal, connector or operation in this zone",
            ));
        }
        rec["replayed"] = json!(true);
        Ok(rec)
    }

    /// Commits a decision record with its audit event (and idempotency key) and returns
    /// the answer: the record, `replayed: false`.
    fn commit_record(
        &self,
        st: &mut State,
        zone: &ZoneId,
        draft: EventDraft,
        record: &DecisionRecord,
        idem: Option<&str>,
    ) -> Result<Value, RequestFailure> {
        let bytes = serde_json::to_vec(record).map_err(|e| fail("internal", e.to_string()))?;
        let z = zone.as_str().to_owned();
        let batch = Batch {
            decision: Some((record.request_id.clone(), bytes)),
            idempotency: idem.map(|k| (z.as_str(), k.to_owned(), record.request_id.clone())),
            ..Batch::default()
        };
        self.commit_with_event(st, zone, draft, batch)?;
        let mut out = serde_json::to_value(record).map_err(|e| fail("internal", e.to_string()))?;
        out["replayed"] = json!(false);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn deny_early(
        &self,
        st: &mut State,
        zone: &ZoneId,
        request_id: &str,
        call: &InvokeCall,
        code: &'static str,
        message: String,
        trace: Option<TraceContext>,
        now: u64,
    ) -> Result<Value, RequestFailure> {
        let inputs = json!({ "zone": zone.to_string(), "principal": call.principal, "connector": call.connector, "operation": call.operation, "token_present": call.token_b64.is_some() });
        self.record_denial(st, zone, request_id, call, code, &message, inputs, trace, now)
    }
}

/// The audit event of one invocation's outcome.
fn call_event(
    event_type: &str,
    call: &InvokeCall,
    request_id: &str,
    at: u64,
    trace: Option<TraceContext>,
    detail: (&str, &str),
) -> EventDraft {
    EventDraft {
        event_type: event_type.into(),
        actor: call.principal.clone(),
        occurred_at: at,
        trace_context: trace,
        connector_id: Some(call.connector.clone()),
        operation: Some(call.operation.clone()),
        details: [("request_id".to_owned(), request_id.to_owned()), (detail.0.to_owned(), detail.1.to_owned())].into(),
        ..EventDraft::default()
    }
}

impl Daemon {
    #[allow(clippy::too_many_arguments)]
    fn record_denial(
        &self,
        st: &mut State,
        zone: &ZoneId,
        request_id: &str,
        call: &InvokeCall,
        code: &str,
        message: &str,
        inputs: Value,
        trace: Option<TraceContext>,
        now: u64,
    ) -> Result<Value, RequestFailure> {
        let request_object_id = ObjectId::unscoped(format!("request:{request_id}").as_bytes());
        let header = ObjectHeader::new(schema("fcp.operation", "decision")?, zone.clone(), now);
        let mut receipt = DecisionReceipt {
            header,
            request_object_id,
            decision: operation::Decision::Deny,
            reason_code: code.to_owned(),
            message: Some(message.to_owned()),
            evidence: Vec::new(),
            decided_at: now,
            decided_by: self.home.node.node_id.clone(),
            signature: operation::UNSIGNED,
        };
        receipt.sign(self.home.node.signing.as_dalek()).map_err(|e| fail("internal", e.to_string()))?;
        let receipt_json = json!({
            "kind": "DecisionReceipt",
            "request_object_id": request_object_id.to_hex(),
            "decision": "deny",
            "reason_code": code,
            "decided_by": receipt.decided_by,
            "signer_kid": self.home.node.signing.kid().to_string(),
            "signature": hex::encode(receipt.signature),
        });
        let draft = EventDraft {
            request_object_id: Some(request_object_id),
            ..call_event("capability.denied", call, request_id, now, trace, ("reason", code))
        };
        let seq = st.chains.get(zone).map(AuditChain::next_seq).unwrap_or(0);
        let record = DecisionRecord {
            request_id: request_id.to_owned(),
            zone: zone.to_string(),
            decision: "deny".into(),
            reason_code: code.to_owned(),
            message: message.to_owned(),
            inputs,
            outcome: None,
            receipt: Some(receipt_json),
            audit_seq: seq,
            decided_at: now,
        };
        // A denial is not cached under the idempotency key either: it ran nothing, and
        // caching it would let any caller, tokenless, take over another's key.
        self.commit_record(st, zone, draft, &record, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_failure(
        &self,
        st: &mut State,
        zone: &ZoneId,
        request_id: &str,
        call: &InvokeCall,
        code: &str,
        message: &str,
        inputs: Value,
        trace: Option<TraceContext>,
        now: u64,
    ) -> Result<Value, RequestFailure> {
        let draft = call_event("capability.invoke_failed", call, request_id, now, trace, ("error", code));
        let seq = st.chains.get(zone).map(AuditChain::next_seq).unwrap_or(0);
        let record = DecisionRecord {
            request_id: request_id.to_owned(),
            zone: zone.to_string(),
            decision: "allow".into(),
            reason_code: "allow".into(),
            message: "allowed, but the call failed".into(),
            inputs,
            outcome: Some(json!({ "status": "error", "code": code, "message": message })),
            receipt: None,
            audit_seq: seq,
            decided_at: now,
        };
        // A failed call is not cached under its idempotency key: a retry runs again.
        self.commit_record(st, zone, draft, &record, None)
    }

    /// Makes every acknowledged transaction durable on disk (journal mode; a no-op in
    /// fsync mode). Called every `store::FLUSH_INTERVAL` and at shutdown.
    pub fn flush_store(&self) -> Result<(), RequestFailure> {
        self.store.flush().map_err(store_err)
    }

    /// Stops every running connector.
    pub async fn shutdown(&self) {
        let map = std::mem::take(&mut *self.instances.lock().await);
        for (_, inst) in map {
            inst.lock().await.stop().await;
        }
    }

    /// Re-issues this node's attestation when less than an hour of its 24 h is left, so
    /// tokens keep verifying.
    pub async fn refresh_attestation(&self) -> Result<(), RequestFailure> {
        let now = now();
        let mut st = self.state.lock().await;
        if st.attested_until > now + 3600 {
            return Ok(());
        }
        let att = self.home.attest(now).map_err(|e| fail("home.error", e.to_string()))?;
        let until = att.expires_at;
        st.trust.add_attestation(att, now).map_err(|e| fail("home.error", e.to_string()))?;
        st.attested_until = until;
        Ok(())
    }

    /// Asks every running connector for `health`; one that does not answer, or answers
    /// that it failed, is killed and restarts with backoff on its next use.
    pub async fn health_check(&self) {
        let instances: Vec<Arc<Mutex<Instance>>> = self.instances.lock().await.values().cloned().collect();
        for inst in instances {
            let mut i = inst.lock().await;
            if i.is_running() {
                if let Err(e) = i.health().await {
                    tracing::warn!("health check failed: {e}");
                }
            }
            self.audit_instance(&mut i).await;
        }
    }

    /// Enforces every running connector's limits (wall clock, pids; see
    /// [`Instance::supervise`]) and audits what ended. Called often (every second). A
    /// process that outlives `wall_clock_timeout_ms` is recycled between calls: killed,
    /// audited as a `wall_clock` breach, and the next call starts a fresh one.
    pub async fn supervise(&self) {
        let instances: Vec<Arc<Mutex<Instance>>> = self.instances.lock().await.values().cloned().collect();
        for inst in instances {
            // A busy instance is in a call, which has its own timeout; it is looked at on
            // the next tick, so one slow connector does not hold the others' limits up.
            let Ok(mut i) = inst.try_lock() else { continue };
            if i.supervise().await {
                self.audit_instance(&mut i).await;
            }
        }
    }

    async fn audit_instance(&self, i: &mut Instance) {
        let (zone, connector) = (i.zone().clone(), i.connector_id().to_owned());
        if let Err(e) = self.audit_degradation(i, &zone, &connector).await {
            tracing::error!("audit of {connector}@{zone} failed: {}", e.message);
        }
    }

    /// Stops connectors idle longer than `idle`.
    pub async fn reap_idle(&self, idle: std::time::Duration) {
        let map = self.instances.lock().await;
        for inst in map.values() {
            let mut i = inst.lock().await;
            if i.is_running() && i.idle_for() > idle {
                i.stop().await;
            }
        }
    }
}

/// Reads a package file named by a caller: no symlinks, a regular file the caller owns
/// (root may name any), at most the package size limit.
fn read_package(path: &str, caller_uid: Option<u32>) -> Result<Vec<u8>, RequestFailure> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(fail("install.bad_path", format!("{path} is not an absolute path")));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o400000 /* O_NOFOLLOW */)
        .open(p)
        .map_err(|e| fail("install.io", format!("{path}: {e}")))?;
    let meta = f.metadata().map_err(|e| fail("install.io", format!("{path}: {e}")))?;
    if !meta.is_file() {
        return Err(fail("install.bad_path", format!("{path} is not a regular file")));
    }
    match caller_uid {
        Some(0) => {}
        Some(uid) if uid == meta.uid() => {}
        _ => return Err(fail("install.not_owner", format!("{path} is not owned by the caller"))),
    }
    let max = fcp_proto::package::MAX_PACKAGE_BYTES as u64;
    if meta.len() > max {
        return Err(fail("package.too_large", format!("{path} is {} bytes; packages are at most {max}", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| fail("install.io", format!("{path}: {e}")))?;
    Ok(bytes)
}

/// Keys whose names say they hold a secret (`credential_id` references are fine).
fn secret_keys(map: &serde_json::Map<String, Value>, prefix: &str) -> Vec<String> {
    const WORDS: [&str; 7] = ["secret", "password", "passwd", "token", "api_key", "apikey", "private_key"];
    let mut out = Vec::new();
    for (k, v) in map {
        let lower = k.to_ascii_lowercase();
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if lower != "credential_id"
            && !lower.ends_with("_credential_id")
            && WORDS.iter().any(|w| lower.contains(w))
            && !v.is_null()
        {
            out.push(path.clone());
        }
        if let Value::Object(inner) = v {
            out.extend(secret_keys(inner, &path));
        }
    }
    out
}

fn now_after(t: u64) -> u64 {
    now().max(t)
}

/// Validates `value` against a JSON schema from a manifest. A schema that does not
/// compile is a failure (fail closed).
fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    let v = jsonschema::validator_for(schema).map_err(|e| format!("the manifest's schema does not compile: {e}"))?;
    let errors: Vec<String> = v.iter_errors(value).take(5).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_found_at_any_depth() {
        let v = json!({
            "root": "/srv", "credential_id": "cred:github", "github_credential_id": "x",
            "auth": { "api_key": "sk-123", "Password": "hunter2", "token_url": null },
            "retries": 3,
        });
        let Value::Object(m) = v else { unreachable!("literal object") };
        let mut found = secret_keys(&m, "");
        found.sort();
        assert_eq!(found, vec!["auth.Password".to_owned(), "auth.api_key".to_owned()]);
    }

    #[test]
    fn schemas_fail_closed() {
        assert_eq!(validate(&json!({"type": "object"}), &json!({"a": 1})), Ok(()));
        assert!(validate(&json!({"type": "object"}), &json!("text")).is_err());
        assert!(
            validate(&json!({"type": "no-such-type"}), &json!(1)).is_err(),
            "a schema that does not compile refuses"
        );
        assert_eq!(validate(&json!({}), &json!([1, 2])), Ok(()));
    }
}
