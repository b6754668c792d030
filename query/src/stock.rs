//! The stock view: a second projector, independent of the catalog, as a new team
//! would add one ("opportunistic consumption" of the log). It reads `events` on its
//! own, keeps its own checkpoint, and serves:
//!
//! - `GET /alerts/low-stock?threshold=N&limit=M`: active products whose available
//!   stock is at or below `N` (default 5), fewest first;
//! - `GET /products/{sku}/history`: the product's events, in order.
//!
//! It backfills from offset 0 on its first start (an empty checkpoint), and could be
//! deleted and rebuilt the same way at any time.
//!
//! # Exactly once
//!
//! The view is one sled tree. Each batch — the new product states, their history
//! entries, and the checkpoint (the next offset of every partition plus the writer
//! fences) — is one `apply_batch`, which sled makes atomic. After a crash the tree
//! holds the data and the offsets of the same moment; the restart reads on from
//! there. The batch is not flushed: sled recovers a prefix of its batches, so a crash
//! can only take the view back to an earlier checkpoint, which it reads on from (as the
//! command side's store does; sled flushes on its own every 500 ms). A flush per batch
//! cost a sync of the disk per write under load, for nothing a view needs. Product states are idempotent by version on top (an event at or
//! below the stored version is skipped; beyond `version + 1`, a gap, reported), and
//! history entries are keyed by (SKU, version), so an event read again overwrites itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use stockroom_domain::product::ProductEvent;
use stockroom_topics::{EventLog, FenceTracker, Offset, Partition, Position, Topic};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use stockroom_http::Problem;
use utoipa::IntoParams;

use crate::http::{EveryRead, QueryParams, ReadAt, ReadView, blocking, one};
use crate::projector::{ProjectorStats, events_end, supervise};
use crate::view::{ProductView, ViewStatus, ViewUpdate};

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("stock view: {0}")]
    Store(#[from] sled::Error),
    #[error("a stored stock entry is unreadable: {0}")]
    Document(#[from] serde_json::Error),
    #[error(transparent)]
    Log(#[from] stockroom_topics::LogError),
    #[error("the stock view's writer task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The checkpoint, written with every batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCheckpoint {
    pub position: Position,
    pub fences: FenceTracker,
}

const CHECKPOINT: &[u8] = b"m";
const PRODUCT: u8 = b'p';
const HISTORY: u8 = b'h';

fn product_key(sku: &str) -> Vec<u8> {
    let mut k = vec![PRODUCT];
    k.extend_from_slice(sku.as_bytes());
    k
}

/// `h` + SKU + 0 + version (8 bytes, big-endian): a product's events sort by version.
fn history_key(sku: &str, version: u64) -> Vec<u8> {
    let mut k = history_prefix(sku);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn history_prefix(sku: &str) -> Vec<u8> {
    let mut k = vec![HISTORY];
    k.extend_from_slice(sku.as_bytes());
    k.push(0);
    k
}

/// The view's store.
pub struct StockBook {
    db: sled::Db,
}

impl std::fmt::Debug for StockBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockBook").finish_non_exhaustive()
    }
}

impl StockBook {
    pub fn open(dir: &Path) -> Result<StockBook, StockError> {
        Ok(StockBook { db: sled::Config::new().path(dir).open()? })
    }

    pub fn checkpoint(&self) -> Result<StockCheckpoint, StockError> {
        Ok(match self.db.get(CHECKPOINT)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => StockCheckpoint::default(),
        })
    }

    pub fn product(&self, sku: &str) -> Result<Option<ProductView>, StockError> {
        Ok(match self.db.get(product_key(sku))? {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => None,
        })
    }

    /// The product's events in order (`None`: no such product).
    pub fn history(&self, sku: &str) -> Result<Option<Vec<serde_json::Value>>, StockError> {
        let mut events = Vec::new();
        for item in self.db.scan_prefix(history_prefix(sku)) {
            let (_, v) = item?;
            events.push(serde_json::from_slice(&v)?);
        }
        Ok(if events.is_empty() { None } else { Some(events) })
    }

    /// Active products with at most `threshold` available, fewest first, then by SKU.
    /// A scan of every product: fine for catalogs of some 100,000 products; an index
    /// by available stock would be the next step.
    pub fn low_stock(&self, threshold: u64, limit: usize) -> Result<Vec<ProductView>, StockError> {
        let mut low = Vec::new();
        for item in self.db.scan_prefix([PRODUCT]) {
            let (_, v) = item?;
            let view: ProductView = serde_json::from_slice(&v)?;
            if view.status == ViewStatus::Active && view.stock.available <= threshold {
                low.push(view);
            }
        }
        low.sort_by(|a, b| a.stock.available.cmp(&b.stock.available).then_with(|| a.sku.cmp(&b.sku)));
        low.truncate(limit);
        Ok(low)
    }

    /// Writes one batch atomically, with its checkpoint, and makes it durable.
    fn write(
        &self,
        products: Vec<ProductView>,
        history: Vec<(String, u64, Vec<u8>)>,
        checkpoint: &StockCheckpoint,
    ) -> Result<(), StockError> {
        let mut batch = sled::Batch::default();
        for view in &products {
            batch.insert(product_key(&view.sku), serde_json::to_vec(view)?);
        }
        for (sku, version, event) in history {
            batch.insert(history_key(&sku, version), event);
        }
        batch.insert(CHECKPOINT, serde_json::to_vec(checkpoint)?);
        self.db.apply_batch(batch)?;
        Ok(())
    }
}

/// The most records folded into one batch.
const MAX_BATCH: usize = 20_000;

pub struct StockProjector {
    log: EventLog,
    book: Arc<StockBook>,
    applied: watch::Sender<Position>,
    stats: Arc<ProjectorStats>,
}

impl StockProjector {
    pub fn new(log: EventLog, book: Arc<StockBook>) -> Result<(StockProjector, watch::Receiver<Position>), StockError> {
        let (applied, rx) = watch::channel(book.checkpoint()?.position);
        Ok((StockProjector { log, book, applied, stats: Arc::default() }, rx))
    }

    pub fn stats(&self) -> Arc<ProjectorStats> {
        self.stats.clone()
    }

    /// Runs until cancelled; after an error it starts over from its checkpoint.
    pub async fn run(self, cancel: CancellationToken) {
        supervise("stock projector", &cancel, || self.run_once(&cancel)).await
    }

    async fn run_once(&self, cancel: &CancellationToken) -> Result<(), StockError> {
        let mut checkpoint = self.book.checkpoint()?;
        let from: Vec<(Partition, Offset)> = (0..self.log.partitions(Topic::Events))
            .map(|p| (Partition(p), checkpoint.position.get(Partition(p))))
            .collect();
        let mut reader = self.log.reader(Topic::Events, &from)?;
        let start_end = events_end(&self.log).await?;
        info!(position = %checkpoint.position, "stock projector started");
        loop {
            let records = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = reader.poll(MAX_BATCH, Duration::from_millis(200)) => r?,
            };
            if records.is_empty() {
                self.stats.idle("stock", &checkpoint.position);
                continue;
            }
            let mut products: HashMap<String, ProductView> = HashMap::new();
            let mut history = Vec::new();
            for record in records {
                if record.offset < checkpoint.position.get(record.partition) {
                    continue;
                }
                checkpoint.position.set(record.partition, Offset(record.offset.0 + 1));
                if let Some(event) = self.stats.admitted_product_event(&record, &mut checkpoint.fences) {
                    self.fold(&event, &mut products, &mut history)?;
                }
            }
            let book = self.book.clone();
            let cp = checkpoint.clone();
            let changed: Vec<ProductView> = products.into_values().collect();
            tokio::task::spawn_blocking(move || book.write(changed, history, &cp)).await??;
            self.applied.send_replace(checkpoint.position.clone());
            self.stats.committed("stock", &checkpoint.position, &start_end);
        }
    }

    fn fold(
        &self,
        event: &ProductEvent,
        products: &mut HashMap<String, ProductView>,
        history: &mut Vec<(String, u64, Vec<u8>)>,
    ) -> Result<(), StockError> {
        let sku = event.sku.as_str();
        let current = match products.get(sku) {
            Some(v) => Some(v.clone()),
            None => self.book.product(sku)?,
        };
        match ProductView::apply(current.as_ref(), event) {
            ViewUpdate::Applied(view) => {
                self.stats.events_applied.fetch_add(1, Ordering::Relaxed);
                history.push((sku.to_owned(), event.version, serde_json::to_vec(event)?));
                products.insert(sku.to_owned(), *view);
            }
            ViewUpdate::AlreadyApplied => {}
            ViewUpdate::Gap { have, got } => {
                self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                warn!(sku, have, got, "stock view: version gap, event skipped");
            }
            ViewUpdate::NotRegistered => {
                self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                warn!(sku, "stock view: event for an unregistered product skipped");
            }
        }
        Ok(())
    }
}

/// What the stock view's routes share.
#[derive(Clone)]
pub struct StockApi {
    pub book: Arc<StockBook>,
    pub applied: watch::Receiver<Position>,
    pub read_timeout: Duration,
}

impl ReadView for StockApi {
    fn applied(&self) -> &watch::Receiver<Position> {
        &self.applied
    }
    fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

pub fn router(api: StockApi) -> Router {
    Router::new()
        .route("/alerts/low-stock", get(low_stock))
        .route("/products/{sku}/history", get(history))
        .with_state(api)
}

/// `GET /alerts/low-stock`
#[derive(Serialize, utoipa::ToSchema)]
pub struct LowStock {
    pub threshold: u64,
    /// Active products with `stock.available` at or below the threshold, fewest first.
    pub products: Vec<ProductView>,
}

/// `GET /alerts/low-stock`'s query string. The descriptions finish "`name` must be ...".
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LowStockParams {
    /// a whole number from 0 to 2^63-1 (default 5)
    #[param(minimum = 0)]
    threshold: Option<i64>,
    /// a number from 1 to 1000 (default 100)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/alerts/low-stock", tag = "stock view",
    params(LowStockParams), responses((status = 200, body = LowStock)))]
async fn low_stock(
    State(api): State<StockApi>,
    QueryParams(params): QueryParams<LowStockParams>,
    at: ReadAt,
) -> Result<Response, Problem> {
    let threshold = match params.threshold {
        None => 5,
        Some(t) => u64::try_from(t)
            .map_err(|_| Problem::bad_parameter("threshold", "threshold must be a whole number from 0 to 2^63-1"))?,
    };
    let limit = match params.limit {
        None => 100,
        Some(l) if (1..=1000).contains(&l) => l,
        Some(_) => return Err(Problem::bad_parameter("limit", "limit must be a number from 1 to 1000")),
    };
    let book = api.book.clone();
    let products = blocking(move || book.low_stock(threshold, limit)).await?.map_err(Problem::internal)?;
    Ok(at.answer(axum::Json(LowStock { threshold, products })))
}

/// `GET /products/{sku}/history`
#[derive(Serialize, utoipa::ToSchema)]
pub struct History {
    pub sku: String,
    /// The product's events in version order, as the log has them.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

#[utoipa::path(get, path = "/products/{sku}/history", tag = "stock view",
    params(("sku" = String, Path)), responses((status = 200, body = History)))]
async fn history(State(api): State<StockApi>, UrlPath(sku): UrlPath<String>, at: ReadAt) -> Result<Response, Problem> {
    let book = api.book.clone();
    let found = blocking(move || book.history(&sku).map(|e| e.map(|events| History { sku, events }))).await?;
    Ok(at.answer(one(found, |_| None, "product")?))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(low_stock, history), components(schemas(LowStock, History)), modifiers(&EveryRead),
    tags((name = "stock view", description = "a second projector: low-stock alerts and each product's history")))]
pub struct StockApiDoc;
