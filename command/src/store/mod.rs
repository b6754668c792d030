//! The command side's local state: one sled tree per partition, derived from the log.
//!
//! Everything here can be deleted: a processor that finds no tree folds its partition
//! of `events` from offset 0 and ends in the same state. What the tree holds:
//!
//! | key                                  | value                                         |
//! |--------------------------------------|-----------------------------------------------|
//! | `m`                                  | [`Meta`]: next events offset, next commands offset, latest fence |
//! | `p` + SKU                            | the product's state                           |
//! | `c` + command id                     | [`AppliedCommand`]: its outcome, for retries and idempotency keys |
//! | `t` + time (8 bytes BE) + command id | index of `c` entries by time, to expire them  |
//! | `x` + deadline (8 bytes BE) + SKU    | products with a reservation due at that time  |
//! | `g` + canonical GTIN                 | the GTIN's claim state                        |
//! | `q` + canonical GTIN                 | index of pending claims (value: request fingerprint) |
//! | `G` + SKU                            | the claim (command id) through which the product holds its GTIN |
//! | `o` + order id                       | the order saga's state                        |
//! | `a` + order id                       | index of orders whose saga is between steps   |
//! | `r` + claim (command id)             | [`OwedRelease`]: a GTIN this partition's product gave up, to release (again) |
//!
//! A batch of changes (the fold of some events, plus the outcomes of rejected
//! commands and the new offsets) is written with one `apply_batch`, which sled
//! makes atomic: after a crash the tree holds the state *and* the offsets of the same
//! moment, so catching up from those offsets neither skips nor doubles an event.
//! The tree is not flushed per batch: losing its last writes in a crash only means
//! folding those events again from the log.

mod keys;
mod partition;

pub use partition::{AppliedCommand, Changes, Effects, Meta, OwedRelease, PartitionStore, StoredOutcome};

use std::path::Path;

use stockroom_topics::Partition;

/// All partitions' state trees, in one sled database.
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state store entry {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        Ok(StateStore { db })
    }

    pub fn partition(&self, partition: Partition) -> Result<PartitionStore, StoreError> {
        let tree = self.db.open_tree(format!("partition-{}", partition.0))?;
        Ok(PartitionStore::new(tree, partition))
    }

    /// Writes everything to disk; used at graceful shutdown so the next start has
    /// little to fold.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
