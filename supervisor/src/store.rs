//! fcpd's persistent state in redb, an embedded, crash-safe (copy-on-write, fsync on
//! commit) store. Everything an answer depends on is committed in one transaction
//! before the answer is sent: a `kill -9` at any moment loses no acknowledged receipt
//! or audit event and never leaves a half-written chain.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

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

/// The store.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the store and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        Ok(Store { db })
    }

    /// Commits a batch atomically: everything in `w` or nothing.
    pub fn commit(&self, w: Batch<'_>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(dberr("begin"))?;
        {
            if !w.audit.is_empty() {
                let mut t = tx.open_table(AUDIT).map_err(dberr("open audit"))?;
                for (zone, seq, bytes) in &w.audit {
                    let last = t
                        .range((*zone, 0)..=(*zone, u64::MAX))
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
                        return Err(StoreError::AuditOrder { zone: (*zone).to_owned(), last, got: *seq });
                    }
                    t.insert((*zone, *seq), bytes.as_slice()).map_err(dberr("audit insert"))?;
                }
            }
            if let Some((zone, bytes)) = &w.head {
                tx.open_table(HEADS)
                    .map_err(dberr("open heads"))?
                    .insert(*zone, bytes.as_slice())
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
                    .insert((*zone, *seq), bytes.as_slice())
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
                    .insert((*zone, key.as_str()), id.as_str())
                    .map_err(dberr("insert"))?;
            }
        }
        tx.commit().map_err(dberr("commit"))
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
}
