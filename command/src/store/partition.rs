use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use stockroom_domain::gtin::GtinClaim;
use stockroom_domain::order::Order;
use stockroom_domain::product::Product;
use stockroom_domain::{CommandId, Gtin, OrderId, Rejection, Sku, Timestamp};
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
    Accepted {
        version: u64,
        position: Position,
    },
    Rejected {
        rejection: Rejection,
    },
    /// Taken, but its answer comes later: a GTIN claim waiting for its product
    /// command, or an order phase waiting for its lines.
    InProgress,
}

/// What folding some events asks the worker to do once they are committed.
#[derive(Debug, Default)]
pub struct Effects {
    /// Commands whose answer became known by folding (an order phase ended).
    pub completed: Vec<(CommandId, StoredOutcome)>,
    /// Orders whose state moved: their outstanding steps are sent (again).
    pub orders: BTreeSet<OrderId>,
    /// Claims given up by products that changed or cleared their GTIN.
    pub releases: Vec<(Gtin, Sku, CommandId)>,
}

/// A GTIN a product of this partition gave up (changed or cleared): its release is
/// sent after the fold, and sent again by the resume sweep until it is old enough
/// to have surely arrived (`resume_sagas`), so a crash between the fold and the
/// send does not leave the GTIN held for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedRelease {
    pub gtin: Gtin,
    pub sku: Sku,
    pub claim: CommandId,
    /// When the product gave it up (its event's time).
    pub since: Timestamp,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.completed.is_empty() && self.orders.is_empty() && self.releases.is_empty()
    }

    pub fn append(&mut self, other: Effects) {
        self.completed.extend(other.completed);
        self.orders.extend(other.orders);
        self.releases.extend(other.releases);
    }
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCommand {
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

    /// The claim state of a GTIN, by its canonical form.
    pub fn gtin_claim(&self, canonical: &str) -> Result<Option<GtinClaim>, StoreError> {
        self.get_json(&keys::gtin(canonical))
    }

    /// The claim through which a product holds its GTIN.
    pub fn product_claim(&self, sku: &Sku) -> Result<Option<CommandId>, StoreError> {
        self.get_json(&keys::product_claim(sku))
    }

    pub fn order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.get_json(&keys::order(id))
    }

    /// Pending GTIN claims (canonical GTIN, request fingerprint), at most `limit`.
    pub fn pending_claims(&self, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        self.tree
            .scan_prefix([keys::PENDING_CLAIM])
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[1..]).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }

    /// Releases owed, at most `limit`.
    pub fn owed_releases(&self, limit: usize) -> Result<Vec<OwedRelease>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([keys::OWED_RELEASE]).take(limit) {
            let (k, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// Forgets releases that have been sent for long enough.
    pub fn forget_releases(&self, claims: &[CommandId]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for c in claims {
            batch.remove(keys::owed_release(c));
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Orders whose saga is between steps (not settled), at most `limit`.
    pub fn active_orders(&self, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([keys::ACTIVE_ORDER]).take(limit) {
            let (k, _) = item?;
            let id = std::str::from_utf8(&k[1..])
                .ok()
                .and_then(|s| OrderId::parse(s).ok())
                .ok_or_else(|| StoreError::Corrupt { key: format!("{k:?}"), reason: "bad order key".into() })?;
            out.push(id);
        }
        Ok(out)
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
            claims: HashMap::new(),
            orders: HashMap::new(),
            product_claims: HashMap::new(),
            recorded: HashMap::new(),
            batch: sled::Batch::default(),
            effects: Effects::default(),
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
    /// GTIN claims and orders read or written so far (all written on commit).
    claims: HashMap<String, Option<GtinClaim>>,
    orders: HashMap<OrderId, Option<Order>>,
    /// Product claims and command outcomes written so far, so later records of the
    /// same batch see them.
    product_claims: HashMap<Sku, Option<CommandId>>,
    recorded: HashMap<CommandId, AppliedCommand>,
    batch: sled::Batch,
    pub effects: Effects,
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

    pub fn gtin_claim(&mut self, canonical: &str) -> Result<Option<&GtinClaim>, StoreError> {
        if !self.claims.contains_key(canonical) {
            let loaded = self.store.gtin_claim(canonical)?;
            self.claims.insert(canonical.to_owned(), loaded);
        }
        Ok(self.claims.get(canonical).and_then(Option::as_ref))
    }

    /// Stores a claim and keeps the index of pending claims (with the fingerprint of
    /// the request that made it, for forwarding it again).
    pub fn put_gtin_claim(&mut self, claim: GtinClaim, fingerprint: Option<&str>) {
        let canonical = claim.gtin.canonical();
        match (&claim.pending, fingerprint) {
            (Some(_), Some(f)) => self.batch.insert(keys::pending_claim(&canonical), f.as_bytes()),
            (Some(_), None) => {}
            (None, _) => self.batch.remove(keys::pending_claim(&canonical)),
        }
        self.claims.insert(canonical, Some(claim));
    }

    pub fn product_claim(&self, sku: &Sku) -> Result<Option<CommandId>, StoreError> {
        match self.product_claims.get(sku) {
            Some(c) => Ok(c.clone()),
            None => self.store.product_claim(sku),
        }
    }

    /// Records a release to send (and the effect that sends it now).
    pub fn owe_release(&mut self, release: OwedRelease) -> Result<(), StoreError> {
        self.batch.insert(keys::owed_release(&release.claim), to_json(&release)?);
        self.effects.releases.push((release.gtin, release.sku, release.claim));
        Ok(())
    }

    pub fn set_product_claim(&mut self, sku: &Sku, claim: Option<&CommandId>) -> Result<(), StoreError> {
        match claim {
            Some(c) => self.batch.insert(keys::product_claim(sku), to_json(c)?),
            None => self.batch.remove(keys::product_claim(sku)),
        }
        self.product_claims.insert(sku.clone(), claim.cloned());
        Ok(())
    }

    /// A command's recorded outcome as of these changes.
    pub fn applied(&self, id: &CommandId) -> Result<Option<AppliedCommand>, StoreError> {
        match self.recorded.get(id) {
            Some(a) => Ok(Some(a.clone())),
            None => self.store.applied(id),
        }
    }

    pub fn order(&mut self, id: &OrderId) -> Result<Option<&Order>, StoreError> {
        if !self.orders.contains_key(id) {
            let loaded = self.store.order(id)?;
            self.orders.insert(id.clone(), loaded);
        }
        Ok(self.orders.get(id).and_then(Option::as_ref))
    }

    pub fn put_order(&mut self, order: Order) {
        if order.status.is_settled() {
            self.batch.remove(keys::active_order(&order.order_id));
        } else {
            self.batch.insert(keys::active_order(&order.order_id), &[]);
        }
        self.orders.insert(order.order_id.clone(), Some(order));
    }

    pub fn record_command(&mut self, id: &CommandId, applied: &AppliedCommand) -> Result<(), StoreError> {
        self.batch.insert(keys::command(id), to_json(applied)?);
        self.batch.insert(keys::command_by_time(applied.at, id), id.as_str().as_bytes());
        self.recorded.insert(id.clone(), applied.clone());
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
        for (canonical, claim) in &self.claims {
            if let Some(c) = claim {
                self.batch.insert(keys::gtin(canonical), to_json(c)?);
            }
        }
        for (id, order) in &self.orders {
            if let Some(o) = order {
                self.batch.insert(keys::order(id), to_json(o)?);
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
