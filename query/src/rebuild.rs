//! Rebuilding the catalog on request, without downtime.
//!
//! A rebuild request on the `replay` topic (from `stockroom replay` or
//! `POST /admin/replay`) makes every query node that serves the catalog rebuild it:
//!
//! 1. **In the background, into a fresh index.** The rebuilder reads `events` from
//!    offset 0 into a new directory, `catalog.r<R>` (R: the request's offset in
//!    `replay`), while the live projector keeps the old catalog up to date and
//!    every read is served from it. Each commit of the new index carries its own
//!    checkpoint (positions, fences, and the replay offset it answers), exactly as
//!    the live catalog does.
//! 2. **Fast.** The rebuild is the throughput path: large batches, each record
//!    decoded once, events folded per product in memory so that a product's final
//!    document is written once per commit, and commits only every
//!    [`REBUILD_COMMIT_RECORDS`] records; the index writer gets two threads and a
//!    larger heap, so indexing runs beside the decoding.
//! 3. **Caught up, then swapped atomically.** When the rebuilder reaches the head of
//!    the log it hands the new catalog to the live projector ([`Swap`]), which — between
//!    two of its own batches — brings it at least as far as the old one, records the
//!    new directory's name in `catalog.current` (written to a temporary file, synced
//!    and renamed: the switch on disk is one rename), and replaces the catalog every
//!    read uses. No read goes back in time, and no write that arrived during the
//!    rebuild is lost: the projector only swaps once the new index covers the old.
//!    The old directory is then deleted.
//!
//! # Idempotent requests, and crashes
//!
//! A request is answered by the first rebuild that starts after it or is running
//! while it arrives: requests read during a rebuild are folded into it, and the
//! rebuilt catalog's checkpoint records the replay offset after the last of them.
//! The serving catalog's checkpoint says which requests are answered, so a node that
//! restarts mid-rebuild reads the same request again, finds `catalog.r<R>` with its
//! last commit, and resumes from there (documents are upserts by product version,
//! so nothing is indexed twice). Directories left over from a crash after the
//! switch — the old catalog, or rebuilds of requests already answered — are deleted
//! at start.
//!
//! Progress is reported on the `replay` topic (about once a second, and when done),
//! so `stockroom replay` can follow every node, and in [`RebuildStatus`] for
//! `GET /admin/views` and `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use stockroom_topics::dlq;
use stockroom_topics::replay::{RebuildProgress, RebuildState, ReplayMessage};
use stockroom_topics::{EventLog, LogReader, Offset, Partition, Position, StoredRecord, Topic};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogError};
use crate::projector::{
    CatalogCheckpoint, Pending, ProjectorError, ProjectorStats, Swap, Target, fold, reader_at, replay_end, supervise,
};
use crate::view::ProductView;

/// The file naming the catalog directory in use.
const CURRENT_FILE: &str = "catalog.current";
/// The catalog directory of a data directory that never rebuilt.
const FIRST_DIR: &str = "catalog";
/// Records folded between two commits of a rebuild.
pub const REBUILD_COMMIT_RECORDS: usize = 500_000;
/// Records read per poll during a rebuild.
const REBUILD_BATCH: usize = 50_000;
/// A rebuild this close to the log's head is handed over: the projector folds the
/// rest as it swaps the new catalog in.
const CATCH_UP_LAG: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("catalog directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SlotError + '_ {
    move |source| SlotError::Io { path: path.to_owned(), source }
}

/// Which catalog a node serves: the directory named in `catalog.current` (or
/// `catalog`, before any rebuild), open, and replaceable at once by a swap.
pub struct CatalogSlot {
    data_dir: PathBuf,
    current: RwLock<(String, Arc<Catalog>)>,
}

impl std::fmt::Debug for CatalogSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSlot").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl CatalogSlot {
    /// Opens the catalog the node serves in `data_dir`, deleting what a crash left
    /// behind: catalog directories that are neither in use nor a rebuild still owed.
    pub fn open(data_dir: &Path) -> Result<CatalogSlot, SlotError> {
        let pointer = data_dir.join(CURRENT_FILE);
        let name = match std::fs::read_to_string(&pointer) {
            Ok(name) => name.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FIRST_DIR.to_owned(),
            Err(e) => return Err(io(&pointer)(e)),
        };
        let catalog = Arc::new(Catalog::open(&data_dir.join(&name))?);
        let answered = catalog.checkpoint::<CatalogCheckpoint>()?.map_or(0, |c| c.replay);
        let slot = CatalogSlot { data_dir: data_dir.to_owned(), current: RwLock::new((name.clone(), catalog)) };
        for entry in std::fs::read_dir(data_dir).map_err(io(data_dir))? {
            let entry = entry.map_err(io(data_dir))?;
            let other = entry.file_name().to_string_lossy().into_owned();
            let stale = match rebuild_request_of(&other) {
                Some(request) => request < answered,
                None => other == FIRST_DIR,
            };
            if other != name && stale && entry.path().is_dir() {
                info!(dir = %entry.path().display(), "deleting a catalog left over from an earlier rebuild");
                std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(slot)
    }

    /// The catalog reads use now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    fn current_name(&self) -> String {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// Makes `catalog` (in directory `name`) the one served: on disk by one rename,
    /// then in memory. Returns the name of the directory it replaced.
    pub fn install(&self, catalog: Arc<Catalog>, name: &str) -> Result<String, SlotError> {
        let tmp = self.data_dir.join(format!("{CURRENT_FILE}.tmp"));
        let pointer = self.data_dir.join(CURRENT_FILE);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(name.as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &pointer).map_err(io(&pointer))?;
        std::fs::File::open(&self.data_dir).and_then(|d| d.sync_all()).map_err(io(&self.data_dir))?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut *current, (name.to_owned(), catalog));
        Ok(old.0)
    }
}

fn rebuild_dir_name(request: u64) -> String {
    format!("catalog.r{request}")
}

fn rebuild_request_of(name: &str) -> Option<u64> {
    name.strip_prefix("catalog.r")?.parse().ok()
}

/// A rebuild as `GET /admin/views` and `/metrics` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildReport {
    /// The request's offset in `replay`, and the latest request the rebuild answers.
    pub request: u64,
    pub answers: u64,
    pub state: RebuildState,
    pub read: u64,
    pub total: u64,
    /// Events per second since the rebuild (or its resumption) started.
    pub rate: u64,
}

/// The node's latest rebuild, if any.
#[derive(Debug, Default)]
pub struct RebuildStatus {
    latest: Mutex<Option<RebuildReport>>,
    /// Rebuilds swapped in since the node started.
    pub completed: AtomicU64,
    /// Events the latest rebuild found already in its index when it started (more
    /// than 0: it resumed a rebuild cut short by a crash).
    pub resumed_from: AtomicU64,
    /// Requests on the `replay` topic below this offset are answered (the serving
    /// catalog's checkpoint says so); known once the rebuilder has started.
    pub answered: AtomicU64,
}

impl RebuildStatus {
    pub fn latest(&self) -> Option<RebuildReport> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, report: RebuildReport) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }
}

/// Watches `replay` and rebuilds the catalog when asked.
pub struct Rebuilder {
    log: EventLog,
    slot: Arc<CatalogSlot>,
    swaps: mpsc::Sender<Swap>,
    node: String,
    status: Arc<RebuildStatus>,
    commit_every: usize,
}

impl Rebuilder {
    pub fn new(log: EventLog, slot: Arc<CatalogSlot>, swaps: mpsc::Sender<Swap>, node: &str) -> Rebuilder {
        Rebuilder {
            log,
            slot,
            swaps,
            node: node.to_owned(),
            status: Arc::default(),
            commit_every: REBUILD_COMMIT_RECORDS,
        }
    }

    /// Commits the rebuilt index every `records` records (default
    /// [`REBUILD_COMMIT_RECORDS`]): how much a crash mid-rebuild costs.
    pub fn commit_every(mut self, records: usize) -> Rebuilder {
        self.commit_every = records.max(1);
        self
    }

    pub fn status(&self) -> Arc<RebuildStatus> {
        self.status.clone()
    }

    /// Runs until cancelled; after an error it starts over (and resumes the rebuild).
    pub async fn run(self, cancel: CancellationToken) {
        supervise("catalog rebuilder", &cancel, || self.run_once(&cancel)).await
    }

    async fn run_once(&self, cancel: &CancellationToken) -> Result<(), ProjectorError> {
        let answered = match self.slot.current().checkpoint::<CatalogCheckpoint>()? {
            Some(c) => c.replay,
            // The catalog is being built from offset 0: that answers every request so far.
            None => replay_end(&self.log).await?,
        };
        self.status.answered.fetch_max(answered, Ordering::Relaxed);
        let mut requests = self.log.reader(Topic::Replay, &[(Partition(0), Offset(answered))])?;
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = requests.poll(100, Duration::from_millis(500)) => r?,
            };
            let asked = self.catalog_requests(&batch).await?;
            if let (Some(&first), Some(&last)) = (asked.iter().min(), asked.iter().max()) {
                self.rebuild(first, last, &mut requests, cancel).await?;
            }
        }
    }

    /// Rebuilds the catalog for request `first` (answering every request up to
    /// `last`, and those that arrive meanwhile), then hands it to the projector.
    async fn rebuild(
        &self,
        first: u64,
        mut last: u64,
        requests: &mut LogReader,
        cancel: &CancellationToken,
    ) -> Result<(), ProjectorError> {
        let name = rebuild_dir_name(first);
        let path = self.slot.path_of(&name);
        let dir = path.clone();
        let catalog = Arc::new(tokio::task::spawn_blocking(move || Catalog::open_for_rebuild(&dir)).await??);
        let mut checkpoint: CatalogCheckpoint = catalog.checkpoint()?.unwrap_or_default();
        let resumed = checkpoint.position != Position::default();
        info!(request = first, dir = %path.display(), resumed, "rebuilding the catalog");
        let stats = ProjectorStats::default();
        let mut reader = reader_at(&self.log, &checkpoint.position)?;
        let started = Instant::now();
        let read_at_start = checkpoint.position.iter().map(|(_, o)| o.0).sum::<u64>();
        self.status.resumed_from.store(read_at_start, Ordering::Relaxed);
        let mut last_report = Instant::now() - Duration::from_secs(10);
        let mut pending = Pending::default();
        let mut since_commit = 0usize;
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let batch = reader.poll(REBUILD_BATCH.min(self.commit_every), Duration::from_millis(100)).await?;
            // Caught up: close enough to the head that the projector can fold the
            // rest while it swaps (under a steady write load the head is never
            // reached exactly). A short batch alone is not enough: a Kafka fetch
            // may simply be slow.
            let at_head = batch.len() < REBUILD_BATCH.min(self.commit_every) / 10 + 1
                && self.lag(&checkpoint.position).await? <= CATCH_UP_LAG;
            since_commit += batch.len();
            let target = Target { catalog: &catalog, orders: None, stats: &stats, known: None };
            fold(&target, batch, &mut pending, &mut checkpoint)?;
            let more = requests.poll(100, Duration::ZERO).await?;
            for asked in self.catalog_requests(&more).await? {
                last = last.max(asked);
            }
            checkpoint.replay = last + 1;
            if at_head || since_commit >= self.commit_every {
                let views: Vec<ProductView> = std::mem::take(&mut pending).products.into_values().collect();
                let (c, cp) = (catalog.clone(), checkpoint.clone());
                tokio::task::spawn_blocking(move || c.write_batch(views, &cp)).await??;
                since_commit = 0;
            }
            if at_head || last_report.elapsed() >= Duration::from_secs(1) {
                let read = checkpoint.position.iter().map(|(_, o)| o.0).sum::<u64>();
                let total = self.log_size().await?.max(read);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let rate = ((read - read_at_start) as f64 / secs) as u64;
                self.report(first, last, RebuildState::Rebuilding, read, total, rate).await;
                last_report = Instant::now();
            }
            if at_head {
                break;
            }
        }
        let read = checkpoint.position.iter().map(|(_, o)| o.0).sum::<u64>();
        let secs = started.elapsed().as_secs_f64();
        info!(request = first, events = read, seconds = secs, "rebuilt catalog caught up; swapping it in");
        let (done, answer) = oneshot::channel();
        let old = self.slot.current_name();
        let swap = Swap { catalog: catalog.clone(), name: name.clone(), done };
        if self.swaps.send(swap).await.is_err() {
            return Ok(()); // the projector is gone: the node is stopping
        }
        match answer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.report(first, last, RebuildState::Failed, read, read, 0).await;
                warn!(request = first, error = %e, "the rebuilt catalog could not be swapped in; the old one serves");
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
        drop(catalog);
        let old_path = self.slot.path_of(&old);
        if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&old_path)).await? {
            warn!(dir = %old, error = %e, "could not delete the replaced catalog; it is deleted at the next start");
        }
        let total = self.log_size().await?;
        let rate = ((read - read_at_start) as f64 / secs.max(0.001)) as u64;
        self.report(first, last, RebuildState::Done, total.max(read), total.max(read), rate).await;
        self.status.answered.fetch_max(last + 1, Ordering::Relaxed);
        self.status.completed.fetch_add(1, Ordering::Relaxed);
        info!(request = first, replaced = %old, "catalog rebuilt and swapped in");
        Ok(())
    }

    /// Events in the log after `position` (before the ones in hand).
    async fn lag(&self, position: &Position) -> Result<u64, ProjectorError> {
        let mut lag = 0;
        for p in 0..self.log.partitions(Topic::Events) {
            lag +=
                self.log.end_offset(Topic::Events, Partition(p)).await?.0.saturating_sub(position.get(Partition(p)).0);
        }
        Ok(lag)
    }

    /// Events in the log now.
    async fn log_size(&self) -> Result<u64, ProjectorError> {
        let mut total = 0;
        for p in 0..self.log.partitions(Topic::Events) {
            total += self.log.end_offset(Topic::Events, Partition(p)).await?.0;
        }
        Ok(total)
    }

    async fn report(&self, request: u64, answers: u64, state: RebuildState, read: u64, total: u64, rate: u64) {
        self.status.set(RebuildReport { request, answers, state, read, total, rate });
        let progress = ReplayMessage::Progress(RebuildProgress {
            request,
            answers,
            view: "catalog".into(),
            node: self.node.clone(),
            state,
            read,
            total,
            at_ms: stockroom_topics::time::now_ms(),
        });
        let record = progress.encode(&format!("/stockroom/{}", self.node));
        if let Err(e) = self.log.append(Topic::Replay, Partition(0), vec![record]).await {
            warn!(error = %e, "could not report rebuild progress");
        }
    }
}

impl Rebuilder {
    /// The offsets of the requests to rebuild the catalog among `records`. A record
    /// that cannot be read goes to the dead-letter topic with the reason (every node
    /// that reads it reports it, as its reporter) and is otherwise skipped.
    async fn catalog_requests(&self, records: &[StoredRecord]) -> Result<Vec<u64>, ProjectorError> {
        let mut asked = Vec::new();
        let mut dead = Vec::new();
        for record in records {
            match ReplayMessage::decode(record) {
                Ok(ReplayMessage::Requested(r)) if r.view == "catalog" => asked.push(record.offset.0),
                Ok(_) => {}
                Err(e) => {
                    warn!(offset = record.offset.0, error = %e, "an unreadable record of the replay topic goes to the DLQ");
                    let now = stockroom_topics::time::now_ms();
                    dead.push(dlq::dead_letter(Topic::Replay, record, &e.to_string(), &self.node, now));
                }
            }
        }
        if !dead.is_empty() {
            self.log.append(Topic::Dlq, Partition(0), dead).await?;
        }
        Ok(asked)
    }
}
