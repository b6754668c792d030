//! The catalog projector: folds `events` into the tantivy catalog.
//!
//! # Exactly once, without trusting anyone's offsets but our own
//!
//! The projector's checkpoint — for every partition the *next* offset to read
//! (Kafka's convention: "everything below this is in"), plus the latest writer fence
//! of each partition — is written into the payload of the very tantivy commit that
//! makes the documents durable. Documents and offsets therefore cannot disagree:
//!
//! - crash before a commit: neither the documents nor the offsets of the batch are
//!   there; the restart reads the batch again from the old offsets;
//! - crash after a commit: both are there; the restart reads on from the new offsets.
//!
//! Consumer-group offsets are never used for this. On top of it, upserts are
//! idempotent by product version (an event at or below the stored version is
//! skipped, one beyond `version + 1` is a gap: reported and skipped, as every reader
//! of the log does), so redelivery cannot double anything either.
//!
//! The fence rules are those of the command processor (`topics::fence`): records of a
//! writer that is not the partition's latest fence are ignored, so a zombie's
//! writes never reach the catalog.
//!
//! # Freshness
//!
//! The loop drains whatever the log has (without waiting), folds it per product in
//! memory (each product's final document is written once per batch), commits, and
//! reloads the searcher itself — so a write is searchable one commit after it is
//! durable, not after tantivy's 500 ms reload poll. Under load the batches grow with
//! the time a commit takes; idle, a single event is committed on its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stockroom_domain::order::Order;
use stockroom_topics::events::{LogEntry, decode_entry, envelope_of};
use stockroom_topics::{
    Admission, EventLog, FenceTracker, LogReader, Offset, Partition, Position, StoredRecord, Topic,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::catalog::{Catalog, CatalogError};
use crate::orders::{OrderBook, OrderBookError, OrderUpdate};
use crate::rebuild::CatalogSlot;
use crate::view::{ProductView, ViewUpdate};

/// What the catalog's commit payload holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCheckpoint {
    pub position: Position,
    pub fences: FenceTracker,
    /// The next offset of the `replay` topic whose requests this catalog has not
    /// answered yet: a rebuilt catalog carries the requests it answers.
    #[serde(default)]
    pub replay: u64,
}

/// The most records folded into one commit.
const MAX_BATCH: usize = 20_000;
/// The most committed views the live projector keeps in memory (then it forgets them
/// all and starts again: a bound, not a cache policy).
const KNOWN_VIEWS: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Log(#[from] stockroom_topics::LogError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Orders(#[from] OrderBookError),
    #[error(transparent)]
    Slot(#[from] crate::rebuild::SlotError),
    #[error("the index writer task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What every projector (every view) reports: counters for /metrics and
/// /admin/views, and its readiness.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    pub events_applied: AtomicU64,
    pub events_skipped: AtomicU64,
    pub gaps: AtomicU64,
    pub unreadable: AtomicU64,
    pub commits: AtomicU64,
    /// Set once the projector has reached the head of the log after starting.
    pub caught_up: AtomicBool,
    /// When (ms since the epoch) the projector last found nothing more to read.
    pub last_idle_ms: std::sync::atomic::AtomicI64,
}

impl ProjectorStats {
    /// The product event in `record`, if it is one and its writer is current; a record
    /// that cannot be read is counted in `unreadable` and skipped.
    pub(crate) fn admitted_product_event(
        &self,
        record: &StoredRecord,
        fences: &mut FenceTracker,
    ) -> Option<stockroom_domain::product::ProductEvent> {
        let unreadable = || self.unreadable.fetch_add(1, Ordering::Relaxed);
        let Ok(env) = envelope_of(record) else {
            unreadable();
            return None;
        };
        if fences.admit(record.partition, &env) != Admission::Current {
            return None;
        }
        match decode_entry(&env, record) {
            Ok(LogEntry::Product(event)) => Some(*event),
            Ok(_) => None,
            Err(_) => {
                unreadable();
                None
            }
        }
    }

    /// A poll found nothing more to read: the view is at the log's head.
    pub(crate) fn idle(&self, view: &str, position: &Position) {
        self.last_idle_ms.store(stockroom_topics::time::now_ms(), Ordering::Relaxed);
        if !self.caught_up.swap(true, Ordering::Relaxed) {
            info!(view, %position, "view caught up with the log");
        }
    }

    /// A batch is committed at `position`. Caught up once everything in the log at
    /// start is folded — or at the first idle poll, whichever comes first: under a
    /// steady write load a poll is never idle, and readiness must not wait for the
    /// load to stop.
    pub(crate) fn committed(&self, view: &str, position: &Position, start_end: &Position) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if position.covers(start_end) && !self.caught_up.swap(true, Ordering::Relaxed) {
            self.last_idle_ms.store(stockroom_topics::time::now_ms(), Ordering::Relaxed);
            info!(view, %position, "view caught up with the log as it was at start");
        }
    }
}

pub struct CatalogProjector {
    log: EventLog,
    slot: Arc<CatalogSlot>,
    orders: Arc<OrderBook>,
    applied: watch::Sender<Position>,
    stats: Arc<ProjectorStats>,
    swaps: tokio::sync::Mutex<mpsc::Receiver<Swap>>,
    swap_tx: mpsc::Sender<Swap>,
}

/// What one batch changes, per view.
#[derive(Default)]
pub(crate) struct Pending {
    pub products: HashMap<String, ProductView>,
    pub orders: HashMap<String, Order>,
}

impl CatalogProjector {
    /// A projector for `catalog` and `orders`, and the receiver of its applied
    /// position. `orders_fresh` says the orders view was just created: the catalog's
    /// checkpoint does not cover it, so both are rebuilt from offset 0.
    pub fn new(
        log: EventLog,
        slot: Arc<CatalogSlot>,
        orders: Arc<OrderBook>,
        orders_fresh: bool,
    ) -> Result<(CatalogProjector, watch::Receiver<Position>), ProjectorError> {
        let catalog = slot.current();
        let mut checkpoint: CatalogCheckpoint = catalog.checkpoint()?.unwrap_or_default();
        if orders_fresh && checkpoint.position != Position::default() {
            info!("the orders view is new; rebuilding the catalog with it from the start of the log");
            checkpoint = CatalogCheckpoint { replay: checkpoint.replay, ..CatalogCheckpoint::default() };
            catalog.clear(&checkpoint)?;
        }
        let (applied, rx) = watch::channel(checkpoint.position);
        let (swap_tx, swaps) = mpsc::channel(1);
        let projector = CatalogProjector {
            log,
            slot,
            orders,
            applied,
            stats: Arc::default(),
            swaps: tokio::sync::Mutex::new(swaps),
            swap_tx,
        };
        Ok((projector, rx))
    }

    pub fn stats(&self) -> Arc<ProjectorStats> {
        self.stats.clone()
    }

    /// Where a rebuilder hands over a rebuilt catalog (see [`Swap`]).
    pub fn swapper(&self) -> mpsc::Sender<Swap> {
        self.swap_tx.clone()
    }

    /// Runs until cancelled; on an error the loop starts over from the last commit.
    pub async fn run(self, cancel: CancellationToken) {
        supervise("catalog projector", &cancel, || self.run_once(&cancel)).await
    }

    async fn run_once(&self, cancel: &CancellationToken) -> Result<(), ProjectorError> {
        let mut swaps = self.swaps.lock().await;
        let mut catalog = self.slot.current();
        let mut checkpoint: CatalogCheckpoint = match catalog.checkpoint()? {
            Some(c) => c,
            // Built from offset 0 now: that answers every rebuild request so far.
            None => CatalogCheckpoint { replay: replay_end(&self.log).await?, ..CatalogCheckpoint::default() },
        };
        let mut reader = reader_at(&self.log, &checkpoint.position)?;
        // See `ProjectorStats::committed` for when the view counts as caught up.
        let start_end = events_end(&self.log).await?;
        // The views this loop has committed, so that folding the next event of a
        // product needs no lookup in the index (a term query and a document read).
        let mut known: HashMap<String, ProductView> = HashMap::new();
        info!(position = %checkpoint.position, "catalog projector started");
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(swap) = swaps.recv() => {
                    let outcome = self.swap_in(&swap, &checkpoint).await;
                    match outcome {
                        Ok((new_checkpoint, new_reader)) => {
                            checkpoint = new_checkpoint;
                            reader = new_reader;
                            known.clear();
                            catalog = swap.catalog.clone();
                            let _ = swap.done.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = swap.done.send(Err(e.to_string()));
                        }
                    }
                    continue;
                }
                r = reader.poll(MAX_BATCH, Duration::from_millis(200)) => r?,
            };
            if first.is_empty() {
                self.stats.idle("catalog", &checkpoint.position);
                continue;
            }
            let mut pending = Pending::default();
            let mut folded = first.len();
            let target =
                Target { catalog: &catalog, orders: Some(&self.orders), stats: &self.stats, known: Some(&known) };
            fold(&target, first, &mut pending, &mut checkpoint)?;
            // Drain what else is there right now, into the same commit.
            while folded < MAX_BATCH {
                let more = drain(&mut reader, MAX_BATCH - folded).await?;
                if more.is_empty() {
                    break;
                }
                folded += more.len();
                fold(&target, more, &mut pending, &mut checkpoint)?;
            }
            let catalog = catalog.clone();
            let orders = self.orders.clone();
            let views: Vec<ProductView> = pending.products.values().cloned().collect();
            let changed_orders: Vec<Order> = pending.orders.into_values().collect();
            let cp = checkpoint.clone();
            // Orders first: folding them again after a crash before the catalog commit is harmless.
            tokio::task::spawn_blocking(move || {
                orders.write_batch(changed_orders)?;
                catalog.write_batch(views, &cp)?;
                Ok::<_, ProjectorError>(())
            })
            .await??;
            self.stats.committed("catalog", &checkpoint.position, &start_end);
            // Committed: these are the views the catalog now holds.
            if known.len() + pending.products.len() > KNOWN_VIEWS {
                known.clear();
            }
            known.extend(pending.products);
            debug!(records = folded, position = %checkpoint.position, "catalog committed");
            self.applied.send_replace(checkpoint.position.clone());
        }
    }

    /// Takes over a rebuilt catalog: brings it at least as far as the serving one
    /// (so no read ever goes back in time and no write that arrived during the
    /// rebuild is lost), makes it the one the node serves (on disk first, then in
    /// memory), and returns its checkpoint and a reader from there.
    async fn swap_in(
        &self,
        swap: &Swap,
        serving: &CatalogCheckpoint,
    ) -> Result<(CatalogCheckpoint, LogReader), ProjectorError> {
        let mut checkpoint: CatalogCheckpoint = swap.catalog.checkpoint()?.unwrap_or_default();
        let mut reader = reader_at(&self.log, &checkpoint.position)?;
        // The orders view is not rebuilt: it already holds everything up to `serving`.
        let target = Target { catalog: &swap.catalog, orders: None, stats: &self.stats, known: None };
        while !checkpoint.position.covers(&serving.position) {
            let batch = reader.poll(MAX_BATCH, Duration::from_millis(200)).await?;
            let mut pending = Pending::default();
            fold(&target, batch, &mut pending, &mut checkpoint)?;
            let catalog = swap.catalog.clone();
            let views: Vec<ProductView> = pending.products.into_values().collect();
            let cp = checkpoint.clone();
            tokio::task::spawn_blocking(move || catalog.write_batch(views, &cp)).await??;
        }
        let slot = self.slot.clone();
        let (catalog, name) = (swap.catalog.clone(), swap.name.clone());
        tokio::task::spawn_blocking(move || slot.install(catalog, &name)).await??;
        info!(position = %checkpoint.position, name = %swap.name, "the rebuilt catalog serves");
        self.applied.send_replace(checkpoint.position.clone());
        Ok((checkpoint, reader))
    }
}

/// A rebuilt catalog handed to the live projector, which swaps it in between two of
/// its batches and answers on `done`.
pub struct Swap {
    pub catalog: Arc<Catalog>,
    /// Its directory's name (see [`CatalogSlot`]).
    pub name: String,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// What a fold writes to: a catalog, maybe the orders view, and whose counters.
pub(crate) struct Target<'a> {
    pub catalog: &'a Catalog,
    pub orders: Option<&'a OrderBook>,
    pub stats: &'a ProjectorStats,
    /// Views known to be the catalog's current ones (looked up before the index).
    pub known: Option<&'a HashMap<String, ProductView>>,
}

/// The next offset of the `replay` topic.
pub(crate) async fn replay_end(log: &EventLog) -> Result<u64, ProjectorError> {
    Ok(log.end_offset(Topic::Replay, Partition(0)).await?.0)
}

/// The end of every `events` partition now.
pub(crate) async fn events_end(log: &EventLog) -> Result<Position, stockroom_topics::LogError> {
    let mut end = Position::new();
    for p in 0..log.partitions(Topic::Events) {
        end.set(Partition(p), log.end_offset(Topic::Events, Partition(p)).await?);
    }
    Ok(end)
}

/// A reader of every `events` partition from `position`.
pub(crate) fn reader_at(log: &EventLog, position: &Position) -> Result<LogReader, ProjectorError> {
    let partitions = log.partitions(Topic::Events);
    let from: Vec<(Partition, Offset)> = (0..partitions).map(|p| (Partition(p), position.get(Partition(p)))).collect();
    Ok(log.reader(Topic::Events, &from)?)
}

/// Folds `records` into `pending`, moving `checkpoint` past them.
pub(crate) fn fold(
    target: &Target<'_>,
    records: Vec<StoredRecord>,
    pending: &mut Pending,
    checkpoint: &mut CatalogCheckpoint,
) -> Result<(), ProjectorError> {
    for record in records {
        if record.offset < checkpoint.position.get(record.partition) {
            continue;
        }
        checkpoint.position.set(record.partition, Offset(record.offset.0 + 1));
        fold_one(target, &record, pending, &mut checkpoint.fences)?;
    }
    Ok(())
}

fn fold_one(
    target: &Target<'_>,
    record: &StoredRecord,
    pending: &mut Pending,
    fences: &mut FenceTracker,
) -> Result<(), ProjectorError> {
    let stats = target.stats;
    let env = match envelope_of(record) {
        Ok(env) => env,
        Err(e) => {
            stats.unreadable.fetch_add(1, Ordering::Relaxed);
            warn!(partition = record.partition.0, offset = record.offset.0, error = %e, "skipped unreadable record");
            return Ok(());
        }
    };
    if fences.admit(record.partition, &env) != Admission::Current {
        return Ok(());
    }
    let event = match decode_entry(&env, record) {
        Ok(LogEntry::Product(event)) => event,
        Ok(LogEntry::Fence(_)) => return Ok(()),
        // GTIN claims are the command side's business.
        Ok(LogEntry::Gtin(_)) => return Ok(()),
        Ok(LogEntry::Order(event)) => {
            let Some(orders) = target.orders else { return Ok(()) };
            match orders.fold(&mut pending.orders, &event)? {
                OrderUpdate::Applied => stats.events_applied.fetch_add(1, Ordering::Relaxed),
                OrderUpdate::AlreadyApplied => stats.events_skipped.fetch_add(1, Ordering::Relaxed),
                OrderUpdate::Gap { have, got } => {
                    warn!(order_id = %event.order_id, have, got, "order version gap: event skipped");
                    stats.gaps.fetch_add(1, Ordering::Relaxed)
                }
            };
            return Ok(());
        }
        Err(e) => {
            stats.unreadable.fetch_add(1, Ordering::Relaxed);
            warn!(partition = record.partition.0, offset = record.offset.0, error = %e, "skipped unreadable event");
            return Ok(());
        }
    };
    let sku = event.sku.as_str();
    let current = match pending.products.get(sku) {
        Some(v) => Some(v.clone()),
        None => match target.known.and_then(|k| k.get(sku)) {
            Some(v) => Some(v.clone()),
            None => target.catalog.get(sku)?,
        },
    };
    match ProductView::apply(current.as_ref(), &event) {
        ViewUpdate::Applied(view) => {
            stats.events_applied.fetch_add(1, Ordering::Relaxed);
            pending.products.insert(view.sku.clone(), *view);
        }
        ViewUpdate::AlreadyApplied => {
            stats.events_skipped.fetch_add(1, Ordering::Relaxed);
        }
        ViewUpdate::Gap { have, got } => {
            stats.gaps.fetch_add(1, Ordering::Relaxed);
            warn!(
                partition = record.partition.0,
                offset = record.offset.0,
                sku,
                have,
                got,
                "version gap: event skipped"
            );
        }
        ViewUpdate::NotRegistered => {
            stats.gaps.fetch_add(1, Ordering::Relaxed);
            warn!(
                partition = record.partition.0,
                offset = record.offset.0,
                sku,
                "event for an unregistered product skipped"
            );
        }
    }
    Ok(())
}

/// Runs a projector's loop until it ends or is cancelled; after an error, waits a
/// moment and runs it again (it starts over from its own checkpoint).
pub(crate) async fn supervise<F, Fut, E>(what: &str, cancel: &CancellationToken, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        match attempt().await {
            Ok(()) => return,
            Err(e) => {
                warn!(error = %e, "{what} failed; starting over from its checkpoint");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

async fn drain(reader: &mut LogReader, max: usize) -> Result<Vec<StoredRecord>, ProjectorError> {
    Ok(reader.poll(max, Duration::ZERO).await?)
}
