//! The orders view: every order's state, folded from its events, in a sled tree.
//!
//! Orders are not searchable, so they do not belong in the tantivy catalog; they are
//! a small key-value view beside it, fed by the same projector loop.
//!
//! # Exactly once
//!
//! The projector writes a batch's orders here (one sled batch, flushed) *before* it
//! commits the catalog with the batch's checkpoint. A crash between the two reads
//! the batch again from the old checkpoint, and the events read again are skipped here
//! because each order remembers its version (an event at or below it is already in;
//! one beyond `version + 1` is a gap, reported and skipped). The view therefore never
//! holds an event twice, and never misses one the checkpoint says is in.
//!
//! If this store is lost while the catalog is kept, the checkpoint would skip the
//! orders' events: [`OrderBook::open`] reports that it was created afresh, and the
//! projector then rebuilds both views from offset 0.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use stockroom_domain::order::{self, LineStatus, Order, OrderEvent};

#[derive(Debug, thiserror::Error)]
pub enum OrderBookError {
    #[error("orders view: {0}")]
    Store(#[from] sled::Error),
    #[error("a stored order is unreadable: {0}")]
    Document(#[from] serde_json::Error),
}

/// What folding one event into the view did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderUpdate {
    Applied,
    AlreadyApplied,
    Gap { have: u64, got: u64 },
}

pub struct OrderBook {
    db: sled::Db,
    orders: sled::Tree,
}

impl std::fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderBook").finish_non_exhaustive()
    }
}

/// Marks a store that has been written by this code at least once.
const INITIALISED: &[u8] = b"initialised";

impl OrderBook {
    /// Opens the view in `dir`; the flag says whether it was created just now (so
    /// that whatever checkpoint the projector has does not cover it).
    pub fn open(dir: &Path) -> Result<(OrderBook, bool), OrderBookError> {
        let db = sled::Config::new().path(dir).open()?;
        let fresh = db.get(INITIALISED)?.is_none();
        if fresh {
            db.insert(INITIALISED, &[1u8][..])?;
            db.flush()?;
        }
        let orders = db.open_tree("orders")?;
        Ok((OrderBook { db, orders }, fresh))
    }

    pub fn get(&self, order_id: &str) -> Result<Option<Order>, OrderBookError> {
        match self.orders.get(order_id.as_bytes())? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Folds `event` into `pending` (the batch's orders so far), reading the stored
    /// order when the batch has not touched it yet.
    pub fn fold(
        &self,
        pending: &mut HashMap<String, Order>,
        event: &OrderEvent,
    ) -> Result<OrderUpdate, OrderBookError> {
        let key = event.order_id.as_str();
        let current = match pending.remove(key) {
            Some(o) => Some(o),
            None => self.get(key)?,
        };
        let have = current.as_ref().map_or(0, |o| o.version);
        let update = if event.version <= have {
            OrderUpdate::AlreadyApplied
        } else if event.version > have + 1 {
            OrderUpdate::Gap { have, got: event.version }
        } else {
            OrderUpdate::Applied
        };
        let next = match update {
            OrderUpdate::Applied => Some(order::evolve(current, event)),
            _ => current,
        };
        if let Some(o) = next {
            pending.insert(key.to_owned(), o);
        }
        Ok(update)
    }

    /// Writes a batch's orders durably.
    pub fn write_batch(&self, orders: Vec<Order>) -> Result<(), OrderBookError> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for o in &orders {
            batch.insert(o.order_id.as_str().as_bytes(), serde_json::to_vec(o)?);
        }
        self.orders.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Empties the view (for a rebuild from offset 0).
    pub fn clear(&self) -> Result<(), OrderBookError> {
        self.orders.clear()?;
        self.db.flush()?;
        Ok(())
    }
}

/// `GET /orders/{id}`.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: String,
    /// `reserving`, `reserved`, `rejecting`, `rejected`, `confirming`, `confirmed`,
    /// `cancelling` or `cancelled`
    pub state: &'static str,
    pub lines: Vec<OrderLineView>,
    /// Why the order was rejected: its first failing line.
    pub failure: Option<LineFailureView>,
    /// When its reservations lapse (ms since the epoch), if they do.
    pub expires_at_ms: Option<i64>,
    pub version: u64,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderLineView {
    pub sku: String,
    pub quantity: u64,
    /// `reserving`, `reserved`, `failed`, `releasing`, `released`, `confirming`,
    /// `confirmed` or `confirm_failed`
    pub status: &'static str,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineFailureView {
    pub line: usize,
    pub sku: String,
    /// The error kind, as in the problem `type` of a single-product write.
    pub kind: &'static str,
    pub reason: String,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> OrderView {
        OrderView {
            order_id: o.order_id.as_str().to_owned(),
            state: o.status.as_str(),
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineView {
                    sku: l.sku.as_str().to_owned(),
                    quantity: l.quantity.get(),
                    status: line_status(l.status),
                    reason: l.rejection.as_ref().map(ToString::to_string),
                })
                .collect(),
            failure: o.failure.as_ref().map(|f| LineFailureView {
                line: f.line,
                sku: f.sku.as_str().to_owned(),
                kind: f.rejection.kind(),
                reason: f.rejection.to_string(),
            }),
            expires_at_ms: o.expires_at.map(|t| t.0),
            version: o.version,
        }
    }
}

fn line_status(s: LineStatus) -> &'static str {
    match s {
        LineStatus::Reserving => "reserving",
        LineStatus::Reserved => "reserved",
        LineStatus::Failed => "failed",
        LineStatus::Releasing => "releasing",
        LineStatus::Released => "released",
        LineStatus::Confirming => "confirming",
        LineStatus::Confirmed => "confirmed",
        LineStatus::ConfirmFailed => "confirm_failed",
    }
}
