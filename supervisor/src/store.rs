//! fcpd's persistent state in redb, an embedded, crash-safe (copy-on-write) store.
//! Everything an answer depends on is committed in one transaction before the answer
//! is sent: a `kill -9` at any moment loses no acknowledged receipt or audit event and
//! never leaves a half-written chain.
//!
//! Two [`Durability`] modes. `fsync`: every transaction is fsynced before the answer
//! (survives power loss; one fsync per request). `journal` (default): every
//! transaction is also appended to `journal.log` with one `write` before the answer,
//! and the store is fsynced every [`FLUSH_INTERVAL`], after which the journal is
//! emptied; at start, journal records the store lacks are applied again. A crash of
//! fcpd loses nothing acknowledged (the journal is in the kernel's page cache); a power
//! loss may lose the acknowledgements of the last interval.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Installed instances: `connector@zone` → JSON [`InstalledInstance`].
const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
/// Owner-signed grants: ObjectId → CBOR.
const GRANTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("grants");
/// Issued tokens: jti → JSON [`TokenRecord`].
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
/// Revocations: (zone, seq) → CBOR RevocationObject.
const REVOCATIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("revocations");
/// Audit chains: (zone, seq) → CBOR AuditEvent.
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// Decisions and receipts: request id → JSON [`DecisionRecord`].
const DECISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("decisions");
/// Signed audit heads: zone → CBOR AuditHead, written with every event.
const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_heads");
/// Idempotency: (zone, key) → request id.
const IDEMPOTENCY: TableDefinition<(&str, &str), &str> = TableDefinition::new("idempotency");

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused.
    #[error("store: {op}: {why}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The database's message.
        why: String,
    },
    /// A record does not decode.
    #[error("store record {what} is corrupt: {why}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        why: String,
    },
    /// The audit chain would not advance by one.
    #[error("audit seq {got} for {zone} does not follow {last:?}")]
    AuditOrder {
        /// Zone.
        zone: String,
        /// Last stored seq.
        last: Option<u64>,
        /// Offered seq.
        got: u64,
    },
}

fn dberr<E: std::fmt::Display>(op: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Db { op, why: e.to_string() }
}

/// One installed connector bound to one zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledInstance {
    /// Connector id.
    pub connector_id: String,
    /// Version.
    pub version: String,
    /// Zone it is bound to for life.
    pub zone: String,
    /// BLAKE3 of the binary (hex).
    pub binary_hash: String,
    /// The manifest text.
    pub manifest: String,
    /// Publisher kid (hex).
    pub publisher_kid: String,
    /// Configuration sent with `configure`.
    pub config: serde_json::Value,
    /// Install time.
    pub installed_at: u64,
}

/// A token this node minted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Zone.
    pub zone: String,
    /// Principal.
    pub principal: String,
    /// Connector.
    pub connector: String,
    /// Operation.
    pub operation: String,
    /// Grant it derives from (hex).
    pub grant_id: String,
    /// Expiry.
    pub exp: u64,
}

/// What `fcp explain` reads: the decision, its inputs, and the receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    /// Request id.
    pub request_id: String,
    /// Zone.
    pub zone: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Stable reason code.
    pub reason_code: String,
    /// For people.
    pub message: String,
    /// The inputs that decided it.
    pub inputs: serde_json::Value,
    /// Outcome of the connector call when allowed.
    #[serde(default)]
    pub outcome: Option<serde_json::Value>,
    /// The signed receipt (OperationReceipt or DecisionReceipt), as JSON.
    #[serde(default)]
    pub receipt: Option<serde_json::Value>,
    /// Seq of the audit event written with it.
    pub audit_seq: u64,
    /// When.
    pub decided_at: u64,
}

/// How commits reach the disk (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// fsync every transaction before answering.
    Fsync,
    /// Journal every transaction before answering; fsync the store periodically.
    #[default]
    Journal,
}

/// How often the journal mode fsyncs the store.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
/// Largest journal record accepted at replay.
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// A [`Batch`] that owns its data: what the journal stores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    audit: Vec<(String, u64, ByteBuf)>,
    head: Option<(String, ByteBuf)>,
    instance: Option<(String, ByteBuf)>,
    grant: Option<(ByteBuf, ByteBuf)>,
    token: Option<(ByteBuf, ByteBuf)>,
    revocation: Option<(String, u64, ByteBuf)>,
    decision: Option<(String, ByteBuf)>,
    idempotency: Option<(String, String, String)>,
}

impl From<Batch<'_>> for Record {
    fn from(w: Batch<'_>) -> Record {
        Record {
            audit: w.audit.into_iter().map(|(z, s, b)| (z.to_owned(), s, ByteBuf::from(b))).collect(),
            head: w.head.map(|(z, b)| (z.to_owned(), ByteBuf::from(b))),
            instance: w.instance.map(|(k, b)| (k, ByteBuf::from(b))),
            grant: w.grant.map(|(k, b)| (ByteBuf::from(k), ByteBuf::from(b))),
            token: w.token.map(|(k, b)| (ByteBuf::from(k), ByteBuf::from(b))),
            revocation: w.revocation.map(|(z, s, b)| (z.to_owned(), s, ByteBuf::from(b))),
            decision: w.decision.map(|(k, b)| (k, ByteBuf::from(b))),
            idempotency: w.idempotency.map(|(z, k, id)| (z.to_owned(), k, id)),
        }
    }
}

/// `journal.log`: frames of `u32le(len) || BLAKE3(payload)[0..8] || payload`, payload the
/// deterministic CBOR of a [`Record`]. A torn last frame (a crash mid-write) is ignored:
/// its transaction was never acknowledged.
struct Journal {
    file: File,
    path: PathBuf,
    dirty: bool,
}

impl Journal {
    fn append(&mut self, rec: &Record) -> Result<(), StoreError> {
        let payload = fcp_proto::cbor::to_vec(rec).map_err(dberr("journal encode"))?;
        let len = u32::try_from(payload.len()).map_err(dberr("journal record size"))?;
        let mut frame = Vec::with_capacity(12 + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
        frame.extend_from_slice(&payload);
        // One write of the whole frame: after it returns, a crash of fcpd cannot lose it.
        self.file.write_all(&frame).map_err(dberr("journal write"))?;
        self.dirty = true;
        Ok(())
    }

    fn read_all(path: &Path) -> Result<Vec<Record>, StoreError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(dberr("journal read"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(dberr("journal open")(e)),
        }
        let mut out = Vec::new();
        let mut rest = bytes.as_slice();
        while rest.len() >= 12 {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > MAX_RECORD || rest.len() < 12 + len {
                break;
            }
            let payload = &rest[12..12 + len];
            if blake3::hash(payload).as_bytes()[..8] != rest[4..12] {
                break;
            }
            let limits = fcp_proto::cbor::Limits::with_max_len(MAX_RECORD);
            let rec: Record = fcp_proto::cbor::from_slice(payload, limits)
                .map_err(|e| StoreError::Corrupt { what: "journal record".into(), why: e.to_string() })?;
            out.push(rec);
            rest = &rest[12 + len..];
        }
        Ok(out)
    }
}

/// The store.
pub struct Store {
    db: Database,
    durability: Durability,
    journal: Mutex<Option<Journal>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the store in the default [`Durability::Journal`] mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, Durability::default())
    }

    /// Opens (or creates) the store, makes sure every table exists, and applies the
    /// journal records a crash left unflushed.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(dberr("open"))?;
        let tx = db.begin_write().map_err(dberr("begin"))?;
        {
            tx.open_table(INSTANCES).map_err(dberr("create table"))?;
            tx.open_table(GRANTS).map_err(dberr("create table"))?;
            tx.open_table(TOKENS).map_err(dberr("create table"))?;
            tx.open_table(REVOCATIONS).map_err(dberr("create table"))?;
            tx.open_table(AUDIT).map_err(dberr("create table"))?;
            tx.open_table(DECISIONS).map_err(dberr("create table"))?;
            tx.open_table(IDEMPOTENCY).map_err(dberr("create table"))?;
            tx.open_table(HEADS).map_err(dberr("create table"))?;
        }
        tx.commit().map_err(dberr("commit"))?;
        let jpath = path.with_file_name("journal.log");
        for rec in Journal::read_all(&jpath)? {
            let tx = db.begin_write().map_err(dberr("begin"))?;
            if apply(&tx, &rec, true)? {
                tx.commit().map_err(dberr("replay commit"))?;
            } else {
                tx.abort().map_err(dberr("replay abort"))?;
            }
        }
        // Everything replayed is durable now (Immediate is redb's default); start empty.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&jpath)
            .map_err(dberr("journal create"))?;
        file.sync_all().map_err(dberr("journal sync"))?;
        let journal = match durability {
            Durability::Journal => {
                let file = std::fs::OpenOptions::new().append(true).open(&jpath).map_err(dberr("journal open"))?;
                Some(Journal { file, path: jpath, dirty: false })
            }
            Durability::Fsync => None,
        };
        Ok(Store { db, durability, journal: Mutex::new(journal) })
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Journal mode: fsyncs the store and empties the journal, if anything was written
    /// since the last flush. fcpd calls it every [`FLUSH_INTERVAL`] and at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut guard =
            self.journal.lock().map_err(|_| StoreError::Db { op: "journal lock", why: "poisoned".into() })?;
        let Some(j) = guard.as_mut() else { return Ok(()) };
        if !j.dirty {
            return Ok(());
        }
        // An empty Immediate commit makes every earlier non-durable commit durable.
        let tx = self.db.begin_write().map_err(dberr("begin"))?;
        tx.commit().map_err(dberr("flush commit"))?;
        j.file.set_len(0).map_err(dberr("journal truncate"))?;
        j.dirty = false;
        let _ = &j.path;
        Ok(())
    }

    /// Commits a batch atomically: everything in `w` or nothing, durable (per the mode)
    /// when this returns.
    pub fn commit(&self, w: Batch<'_>) -> Result<(), StoreError> {
        let rec = Record::from(w);
        let mut guard =
            self.journal.lock().map_err(|_| StoreError::Db { op: "journal lock", why: "poisoned".into() })?;
        let mut tx = self.db.begin_write().map_err(dberr("begin"))?;
        if guard.is_some() {
            tx.set_durability(redb::Durability::None).map_err(dberr("set durability"))?;
        }
        apply(&tx, &rec, false)?;
        tx.commit().map_err(dberr("commit"))?;
        if let Some(j) = guard.as_mut() {
            j.append(&rec)?;
        }
        Ok(())
    }

    fn read_all<K: redb::Key + 'static>(&self, def: TableDefinition<K, &[u8]>) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(def).map_err(dberr("open"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(dberr("iter"))? {
            let (_, v) = row.map_err(dberr("row"))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Every installed instance.
    pub fn instances(&self) -> Result<Vec<InstalledInstance>, StoreError> {
        self.read_all(INSTANCES)?
            .into_iter()
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| StoreError::Corrupt { what: "instance".into(), why: e.to_string() })
            })
            .collect()
    }

    /// Every grant (CBOR).
    pub fn grants(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read_all(GRANTS)
    }

    /// A minted token's record.
    pub fn token(&self, jti: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(TOKENS).map_err(dberr("open"))?;
        match t.get(jti).map_err(dberr("get"))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: "token".into(), why: e.to_string() }),
        }
    }

    fn zone_rows(
        &self,
        def: TableDefinition<(&str, u64), &[u8]>,
        zone: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(def).map_err(dberr("open"))?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for row in t.range((zone, start)..=(zone, u64::MAX)).map_err(dberr("range"))? {
            let (k, v) = row.map_err(dberr("row"))?;
            out.push((k.value().1, v.value().to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Revocations of a zone in seq order.
    pub fn revocations(&self, zone: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.zone_rows(REVOCATIONS, zone, None, usize::MAX)
    }

    /// Audit events of a zone after `after`, at most `limit`.
    pub fn audit(&self, zone: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.zone_rows(AUDIT, zone, after, limit)
    }

    /// The newest audit event of a zone.
    pub fn audit_last(&self, zone: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(AUDIT).map_err(dberr("open"))?;
        let last = t
            .range((zone, 0)..=(zone, u64::MAX))
            .map_err(dberr("range"))?
            .next_back()
            .transpose()
            .map_err(dberr("row"))?;
        Ok(last.map(|(_, v)| v.value().to_vec()))
    }

    /// The signed head of a zone's chain, written with its newest event.
    pub fn audit_head(&self, zone: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(HEADS).map_err(dberr("open"))?;
        Ok(t.get(zone).map_err(dberr("get"))?.map(|v| v.value().to_vec()))
    }

    /// A decision by request id.
    pub fn decision(&self, request_id: &str) -> Result<Option<DecisionRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(DECISIONS).map_err(dberr("open"))?;
        match t.get(request_id).map_err(dberr("get"))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: format!("decision {request_id}"), why: e.to_string() }),
        }
    }

    /// The request id an idempotency key was first used for.
    pub fn idempotent(&self, zone: &str, key: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr("begin read"))?;
        let t = tx.open_table(IDEMPOTENCY).map_err(dberr("open"))?;
        Ok(t.get((zone, key)).map_err(dberr("get"))?.map(|v| v.value().to_owned()))
    }

    /// Overwrites one audit event (test and tamper-simulation use only: `fcp audit
    /// verify` must catch it).
    pub fn tamper_audit(&self, zone: &str, seq: u64, bytes: Option<&[u8]>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(dberr("begin"))?;
        {
            let mut t = tx.open_table(AUDIT).map_err(dberr("open"))?;
            match bytes {
                Some(b) => {
                    t.insert((zone, seq), b).map_err(dberr("insert"))?;
                }
                None => {
                    t.remove((zone, seq)).map_err(dberr("remove"))?;
                }
            }
        }
        tx.commit().map_err(dberr("commit"))
    }
}

/// Applies a record in `tx`. With `replay`, a record whose audit events are already
/// stored is skipped (false); without, an audit seq that does not follow is an error.
fn apply(tx: &WriteTransaction, w: &Record, replay: bool) -> Result<bool, StoreError> {
    if !w.audit.is_empty() {
        let mut t = tx.open_table(AUDIT).map_err(dberr("open audit"))?;
        for (zone, seq, bytes) in &w.audit {
            let zone = zone.as_str();
            let last = t
                .range((zone, 0)..=(zone, u64::MAX))
                .map_err(dberr("audit range"))?
                .next_back()
                .transpose()
                .map_err(dberr("audit last"))?
                .map(|(k, _)| k.value().1);
            let ok = match last {
                None => *seq == 0,
                Some(l) => l.checked_add(1) == Some(*seq),
            };
            if !ok {
                if replay {
                    return Ok(false);
                }
                return Err(StoreError::AuditOrder { zone: zone.to_owned(), last, got: *seq });
            }
            t.insert((zone, *seq), bytes.as_slice()).map_err(dberr("audit insert"))?;
        }
    }
    if let Some((zone, bytes)) = &w.head {
        tx.open_table(HEADS)
            .map_err(dberr("open heads"))?
            .insert(zone.as_str(), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((key, bytes)) = &w.instance {
        tx.open_table(INSTANCES)
            .map_err(dberr("open instances"))?
            .insert(key.as_str(), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((id, bytes)) = &w.grant {
        tx.open_table(GRANTS)
            .map_err(dberr("open grants"))?
            .insert(id.as_slice(), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((jti, bytes)) = &w.token {
        tx.open_table(TOKENS)
            .map_err(dberr("open tokens"))?
            .insert(jti.as_slice(), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((zone, seq, bytes)) = &w.revocation {
        tx.open_table(REVOCATIONS)
            .map_err(dberr("open revocations"))?
            .insert((zone.as_str(), *seq), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((id, bytes)) = &w.decision {
        tx.open_table(DECISIONS)
            .map_err(dberr("open decisions"))?
            .insert(id.as_str(), bytes.as_slice())
            .map_err(dberr("insert"))?;
    }
    if let Some((zone, key, id)) = &w.idempotency {
        tx.open_table(IDEMPOTENCY)
            .map_err(dberr("open idempotency"))?
            .insert((zone.as_str(), key.as_str()), id.as_str())
            .map_err(dberr("insert"))?;
    }
    Ok(true)
}

/// Writes that must land together.
#[derive(Default)]
pub struct Batch<'a> {
    /// (zone, seq, CBOR event), each seq = last + 1.
    pub audit: Vec<(&'a str, u64, Vec<u8>)>,
    /// (zone, CBOR AuditHead) naming the newest event of `audit`.
    pub head: Option<(&'a str, Vec<u8>)>,
    /// (`connector@zone`, JSON).
    pub instance: Option<(String, Vec<u8>)>,
    /// (grant id, CBOR).
    pub grant: Option<(Vec<u8>, Vec<u8>)>,
    /// (jti, JSON).
    pub token: Option<(Vec<u8>, Vec<u8>)>,
    /// (zone, seq, CBOR).
    pub revocation: Option<(&'a str, u64, Vec<u8>)>,
    /// (request id, JSON).
    pub decision: Option<(String, Vec<u8>)>,
    /// (zone, key, request id).
    pub idempotency: Option<(&'a str, String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_must_advance_by_one_and_batches_are_atomic() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = Store::open(&tmp.path().join("s.redb")).expect("open");
        s.commit(Batch { audit: vec![("z:work", 0, vec![1])], ..Batch::default() }).expect("genesis");
        let bad = Batch {
            audit: vec![("z:work", 2, vec![3])],
            decision: Some(("r1".into(), b"{}".to_vec())),
            ..Batch::default()
        };
        assert!(matches!(s.commit(bad), Err(StoreError::AuditOrder { last: Some(0), got: 2, .. })));
        assert_eq!(s.decision("r1").map(|d| d.is_none()).ok(), Some(true), "nothing of a failed batch lands");
        s.commit(Batch { audit: vec![("z:work", 1, vec![2])], ..Batch::default() }).expect("next");
        assert_eq!(s.audit("z:work", None, 10).expect("read").len(), 2);
        assert_eq!(s.audit("z:work", Some(0), 10).expect("read"), vec![(1, vec![2])]);
        assert_eq!(s.audit_last("z:work").expect("last"), Some(vec![2]));
        assert_eq!(s.audit("z:other", None, 10).expect("read").len(), 0);
        drop(s);
        let s = Store::open(&tmp.path().join("s.redb")).expect("reopen");
        assert_eq!(s.audit_last("z:work").expect("last"), Some(vec![2]));
    }

    /// A crash image (the files as a killed fcpd leaves them: non-durable commits not
    /// flushed, the journal written) opens with every acknowledged batch.
    #[test]
    fn journal_replays_what_a_crash_left_unflushed() {
        let live = tempfile::tempdir().expect("tmp");
        let s = Store::open_with(&live.path().join("s.redb"), Durability::Journal).expect("open");
        s.commit(Batch { audit: vec![("z:work", 0, vec![1])], ..Batch::default() }).expect("0");
        s.flush().expect("flush");
        for seq in 1..4u64 {
            let idempotency = Some(("z:work", format!("k{seq}"), format!("r{seq}")));
            s.commit(Batch { audit: vec![("z:work", seq, vec![seq as u8 + 1])], idempotency, ..Batch::default() })
                .expect("commit");
        }
        let journal = std::fs::read(live.path().join("journal.log")).expect("journal");
        assert!(!journal.is_empty(), "three unflushed batches are journaled");
        // The worst case a crash can leave: a store holding only the flushed genesis (none
        // of the non-durable commits reached it) and the journal, with a torn frame at the
        // end (a crash in the middle of a write).
        let image = tempfile::tempdir().expect("tmp");
        {
            let base = Store::open_with(&image.path().join("s.redb"), Durability::Fsync).expect("base");
            base.commit(Batch { audit: vec![("z:work", 0, vec![1])], ..Batch::default() }).expect("genesis");
        }
        let mut torn = journal.clone();
        torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        std::fs::write(image.path().join("journal.log"), &torn).expect("copy journal");
        let r = Store::open_with(&image.path().join("s.redb"), Durability::Journal).expect("reopen the image");
        let seqs: Vec<u64> = r.audit("z:work", None, 10).expect("read").into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!(r.idempotent("z:work", "k3").expect("read"), Some("r3".to_owned()));
        assert_eq!(r.idempotent("z:work", "k").expect("read"), None);
        assert_eq!(
            std::fs::metadata(image.path().join("journal.log")).expect("meta").len(),
            0,
            "replayed, then emptied"
        );
        // Replaying twice changes nothing.
        drop(r);
        std::fs::write(image.path().join("journal.log"), &journal).expect("journal again");
        let r = Store::open_with(&image.path().join("s.redb"), Durability::Journal).expect("reopen again");
        assert_eq!(r.audit("z:work", None, 10).expect("read").len(), 4);
        drop(s);
    }
}
