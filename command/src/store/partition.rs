use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use stockroom_domain::product::Product;
use stockroom_domain::{CommandId, Rejection, Sku, Timestamp};
use stockroom_topics::{FenceTracker, Offset, Partition, Position};

use super::StoreError;
use super::keys;

/// Offsets and the fence of a partition, written with every batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The next offset of `events` to fold.
    pub events_next: Offset,
    /// The next offset of `commands` to process (meaningful only where `commands`
    /// is durable, i.e. on Kafka).
    pub commands_next: Offset,
    /// The highest `commands` offset that produced an event, from the events'
    /// provenance: derived from the log, so a new owner with an empty store still
    /// knows where its predecessor stopped.
    pub last_command_offset: Option<Offset>,
    /// The latest valid fence of this partition.
    pub fences: FenceTracker,
}

/// How a command ended, kept so that a retry gets the same answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StoredOutcome {
    Accepted { version: u64, position: Position },
    Rejected { rejection: Rejection },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCommand {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub at: Timestamp,
    pub outcome: StoredOutcome,
}

/// One partition's tree.
#[derive(Clone)]
pub struct PartitionStore {
    tree: sled::Tree,
    partition: Partition,
}

impl PartitionStore {
    pub(super) fn new(tree: sled::Tree, partition: Partition) -> Self {
        Self { tree, partition }
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn meta(&self) -> Result<Meta, StoreError> {
        Ok(self.get_json(keys::META)?.unwrap_or_default())
    }

    pub fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        self.get_json(&keys::product(sku))
    }

    pub fn applied(&self, id: &CommandId) -> Result<Option<AppliedCommand>, StoreError> {
        self.get_json(&keys::command(id))
    }

    /// SKUs with a reservation due at or before `now` (at most `limit`).
    pub fn due_expiries(&self, now: Timestamp, limit: usize) -> Result<Vec<Sku>, StoreError> {
        let mut out: Vec<Sku> = Vec::new();
        for item in self.tree.range(vec![keys::EXPIRY]..keys::expiry_upto(now)) {
            let (key, _) = item?;
            let sku = keys::expiry_sku(&key)
                .and_then(|s| Sku::parse(s).ok())
                .ok_or_else(|| StoreError::Corrupt { key: format!("{key:?}"), reason: "bad expiry key".into() })?;
            if !out.contains(&sku) {
                out.push(sku);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Removes applied-command records older than `before` (the idempotency window),
    /// at most `limit` per call. Returns how many went.
    pub fn expire_applied(&self, before: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let end = keys::command_by_time(before, &CommandId::parse("0").expect("valid literal"));
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in self.tree.range(vec![keys::COMMAND_BY_TIME]..end).take(limit) {
            let (key, id) = item?;
            batch.remove(key);
            let mut ckey = vec![keys::COMMAND];
            ckey.extend_from_slice(&id);
            batch.remove(ckey);
            n += 1;
        }
        if n > 0 {
            self.tree.apply_batch(batch)?;
        }
        Ok(n)
    }

    /// Starts a set of changes on top of the current state.
    pub fn changes(&self) -> Result<Changes<'_>, StoreError> {
        Ok(Changes {
            store: self,
            meta: self.meta()?,
            products: HashMap::new(),
            dirty: HashSet::new(),
            batch: sled::Batch::default(),
        })
    }

    fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Changes to one partition's state, committed atomically by [`Changes::commit`].
pub struct Changes<'a> {
    store: &'a PartitionStore,
    pub meta: Meta,
    /// Products read or written so far; `dirty` are the written ones.
    products: HashMap<Sku, Option<Product>>,
    dirty: HashSet<Sku>,
    batch: sled::Batch,
}

impl Changes<'_> {
    /// The product as of these changes.
    pub fn product(&mut self, sku: &Sku) -> Result<Option<&Product>, StoreError> {
        if !self.products.contains_key(sku) {
            let loaded = self.store.product(sku)?;
            self.products.insert(sku.clone(), loaded);
        }
        Ok(self.products.get(sku).and_then(Option::as_ref))
    }

    pub fn put_product(&mut self, product: Product) {
        self.dirty.insert(product.sku.clone());
        self.products.insert(product.sku.clone(), Some(product));
    }

    pub fn record_command(&mut self, id: &CommandId, applied: &AppliedCommand) -> Result<(), StoreError> {
        self.batch.insert(keys::command(id), to_json(applied)?);
        self.batch.insert(keys::command_by_time(applied.at, id), id.as_str().as_bytes());
        Ok(())
    }

    pub fn add_expiry(&mut self, at: Timestamp, sku: &Sku) {
        self.batch.insert(keys::expiry(at, sku), &[]);
    }

    pub fn remove_expiry(&mut self, at: Timestamp, sku: &Sku) {
        self.batch.remove(keys::expiry(at, sku));
    }

    /// Writes the products, the recorded commands and the meta in one atomic batch.
    pub fn commit(mut self) -> Result<Meta, StoreError> {
        for sku in self.dirty.drain() {
            if let Some(Some(p)) = self.products.get(&sku) {
                self.batch.insert(keys::product(&sku), to_json(p)?);
            }
        }
        self.batch.insert(keys::META, to_json(&self.meta)?);
        self.store.tree.apply_batch(self.batch)?;
        Ok(self.meta)
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt { key: "<encode>".into(), reason: e.to_string() })
}
