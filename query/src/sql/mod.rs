//! The SQL read model (`--sql-model DSN`, API.md "Databases"): the products, their
//! stock and every stock movement, kept in PostgreSQL tables of schema `stockroom`
//! for analysts and the tools they already have.
//!
//! # Exactly once
//!
//! Each batch of events is written in **one SQL transaction** with the positions it
//! brings the model to (`stockroom.positions`: per partition of `events`, the next
//! offset, Kafka's `+1` convention, so an empty model reads from 0) and the writer
//! fences (`stockroom.checkpoint`). On start the projector reads its positions from
//! the same tables and goes on from there:
//!
//! - a crash before `COMMIT`: PostgreSQL rolls the whole batch back, rows and
//!   positions alike; the batch is read again;
//! - a crash after `COMMIT`: rows and positions are there together; nothing is read again.
//!
//! Rows are also idempotent on their own (a product's version only grows; movements
//! are keyed by `(sku, version)`), but correctness rests on the shared transaction,
//! never on consumer-group offsets.
//!
//! # Rebuilds
//!
//! `stockroom replay --view sql` (or `POST /admin/replay {"view":"sql"}`) asks for a
//! rebuild. The projector builds the model from offset 0 into schema
//! `stockroom_rebuild` (the live tables keep answering, without moving, meanwhile),
//! then swaps it in by renaming the schemas, in one transaction: a reader sees the
//! old tables or the new ones, never a mix. The request's offset in `replay` is
//! recorded in the new checkpoint, so a restart does not rebuild again; a crash
//! mid-rebuild leaves the live schema as it was, and the request is answered on restart.

mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stockroom_topics::replay::{RebuildState, ReplayMessage};
use stockroom_topics::{EventLog, FenceTracker, Offset, Partition, Position, StoredRecord, Topic};
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use schema::{LIVE, REBUILD};

use crate::projector::{ProjectorStats, events_end, supervise};
use crate::rebuild::{RebuildReport, RebuildStatus};
use crate::view::{ProductView, ViewUpdate};

#[derive(Debug, thiserror::Error)]
pub enum SqlModelError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Log(#[from] stockroom_topics::LogError),
    #[error("the checkpoint is unreadable: {0}")]
    Checkpoint(#[from] serde_json::Error),
}

/// The most records folded into one SQL transaction.
const MAX_BATCH: usize = 5_000;

pub struct SqlProjector {
    dsn: String,
    log: EventLog,
    applied: watch::Sender<Position>,
    stats: Arc<ProjectorStats>,
    rebuilds: Arc<RebuildStatus>,
}

/// What one folding pass keeps in memory.
struct Model {
    position: Position,
    fences: FenceTracker,
    replay_answered: u64,
    products: HashMap<String, ProductView>,
}

impl SqlProjector {
    pub fn new(log: EventLog, dsn: &str) -> (SqlProjector, watch::Receiver<Position>) {
        let (applied, rx) = watch::channel(Position::new());
        let projector =
            SqlProjector { dsn: dsn.to_owned(), log, applied, stats: Arc::default(), rebuilds: Arc::default() };
        (projector, rx)
    }

    pub fn stats(&self) -> Arc<ProjectorStats> {
        self.stats.clone()
    }

    pub fn rebuilds(&self) -> Arc<RebuildStatus> {
        self.rebuilds.clone()
    }

    /// Runs until cancelled; after an error (PostgreSQL gone, say) it starts over
    /// from the positions in the tables.
    pub async fn run(self, cancel: CancellationToken) {
        supervise("sql model", &cancel, || self.run_once(&cancel)).await
    }

    async fn run_once(&self, cancel: &CancellationToken) -> Result<(), SqlModelError> {
        let (client, connection) = tokio_postgres::connect(&self.dsn, NoTls).await?;
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "sql model connection closed");
            }
        });
        let result = self.follow(client, cancel).await;
        conn.abort();
        result
    }

    async fn follow(&self, mut client: Client, cancel: &CancellationToken) -> Result<(), SqlModelError> {
        client.batch_execute(&schema::ddl(LIVE)).await?;
        let mut model = open(&client, LIVE).await?;
        if model.position.iter().next().is_none() && model.replay_answered == 0 {
            // A brand-new model is built from offset 0 anyway: it answers every
            // rebuild request made before it.
            model.replay_answered = self.log.end_offset(Topic::Replay, Partition(0)).await?.0;
        }
        self.applied.send_replace(model.position.clone());
        info!(position = %model.position, products = model.products.len(), "sql model started");
        let start_end = events_end(&self.log).await?;
        let mut reader = self.reader(&model.position)?;
        let mut requests = self.log.reader(Topic::Replay, &[(Partition(0), Offset(model.replay_answered))])?;
        loop {
            // A rebuild asked for? (A short look: the replay topic is mostly quiet.)
            let asked = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = requests.poll(100, Duration::from_millis(1)) => r?,
            };
            if let Some(request) = asked.iter().filter(|r| is_sql_request(r)).map(|r| r.offset.0).max() {
                self.rebuild(&mut client, request, cancel).await?;
                model = open(&client, LIVE).await?;
                reader = self.reader(&model.position)?;
                self.applied.send_replace(model.position.clone());
            } else if let Some(last) = asked.last() {
                model.replay_answered = model.replay_answered.max(last.offset.0 + 1);
            }
            let records = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = reader.poll(MAX_BATCH, Duration::from_millis(200)) => r?,
            };
            if records.is_empty() {
                self.stats.idle("sql", &model.position);
                continue;
            }
            self.apply(&mut client, LIVE, &mut model, &records).await?;
            self.applied.send_replace(model.position.clone());
            self.stats.committed("sql", &model.position, &start_end);
        }
    }

    fn reader(&self, position: &Position) -> Result<stockroom_topics::LogReader, SqlModelError> {
        let from: Vec<(Partition, Offset)> =
            (0..self.log.partitions(Topic::Events)).map(|p| (Partition(p), position.get(Partition(p)))).collect();
        Ok(self.log.reader(Topic::Events, &from)?)
    }

    /// Folds `records` and writes the changed rows with the new checkpoint in one
    /// transaction.
    async fn apply(
        &self,
        client: &mut Client,
        schema: &str,
        model: &mut Model,
        records: &[StoredRecord],
    ) -> Result<(), SqlModelError> {
        let mut changed: HashSet<String> = HashSet::new();
        let mut movements = Vec::new();
        let mut position = model.position.clone();
        for record in records {
            if record.offset < position.get(record.partition) {
                continue;
            }
            position.set(record.partition, Offset(record.offset.0 + 1));
            let Some(event) = self.stats.admitted_product_event(record, &mut model.fences) else { continue };
            let sku = event.sku.as_str().to_owned();
            match ProductView::apply(model.products.get(&sku), &event) {
                ViewUpdate::Applied(view) => {
                    self.stats.events_applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some((kind, quantity)) = schema::movement(&event) {
                        movements.push((event, kind, quantity));
                    }
                    model.products.insert(sku.clone(), *view);
                    changed.insert(sku);
                }
                ViewUpdate::AlreadyApplied => {}
                ViewUpdate::Gap { have, got } => warn!(sku, have, got, "sql model: version gap, event skipped"),
                ViewUpdate::NotRegistered => warn!(sku, "sql model: event for an unregistered product skipped"),
            }
        }
        let tx = client.transaction().await?;
        for sku in &changed {
            if let Some(view) = model.products.get(sku) {
                schema::upsert(&tx, schema, view).await?;
            }
        }
        for (event, kind, quantity) in &movements {
            schema::insert_movement(&tx, schema, event, kind, *quantity).await?;
        }
        write_checkpoint(&tx, schema, &position, &model.fences, model.replay_answered).await?;
        tx.commit().await?;
        model.position = position;
        Ok(())
    }

    /// Builds the model anew from offset 0 into [`REBUILD`] up to the log's end as
    /// it is now, then swaps the schemas.
    async fn rebuild(
        &self,
        client: &mut Client,
        request: u64,
        cancel: &CancellationToken,
    ) -> Result<(), SqlModelError> {
        info!(request, "sql model: rebuilding");
        let started = Instant::now();
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {REBUILD} CASCADE; {}", schema::ddl(REBUILD))).await?;
        let end = events_end(&self.log).await?;
        let total: u64 = end.iter().map(|(_, o)| o.0).sum();
        let mut model = Model {
            position: Position::new(),
            fences: FenceTracker::default(),
            replay_answered: request + 1,
            products: HashMap::new(),
        };
        let mut reader = self.reader(&model.position)?;
        let report = |read: u64, state| RebuildReport {
            request,
            answers: request,
            state,
            read,
            total,
            rate: (read as f64 / started.elapsed().as_secs_f64().max(0.001)) as u64,
        };
        while !model.position.covers(&end) {
            let records = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = reader.poll(MAX_BATCH, Duration::from_millis(200)) => r?,
            };
            if records.is_empty() {
                continue;
            }
            self.apply(client, REBUILD, &mut model, &records).await?;
            let read: u64 = model.position.iter().map(|(_, o)| o.0).sum();
            self.rebuilds.set(report(read, RebuildState::Rebuilding));
        }
        client
            .batch_execute(&format!(
                "BEGIN; DROP SCHEMA IF EXISTS stockroom_old CASCADE; ALTER SCHEMA {LIVE} RENAME TO stockroom_old; \
                 ALTER SCHEMA {REBUILD} RENAME TO {LIVE}; DROP SCHEMA stockroom_old CASCADE; COMMIT;"
            ))
            .await?;
        let read: u64 = model.position.iter().map(|(_, o)| o.0).sum();
        self.rebuilds.set(report(read, RebuildState::Done));
        info!(request, events = read, seconds = started.elapsed().as_secs_f64(), "sql model: rebuilt and swapped in");
        Ok(())
    }
}

fn is_sql_request(record: &StoredRecord) -> bool {
    matches!(ReplayMessage::decode(record), Ok(ReplayMessage::Requested(r)) if r.view == "sql")
}

/// The checkpoint and every product of `schema`.
async fn open(client: &Client, schema: &str) -> Result<Model, SqlModelError> {
    let mut position = Position::new();
    for row in client.query(&format!("SELECT partition, next_offset FROM {schema}.positions"), &[]).await? {
        position.set(Partition(row.get::<_, i32>(0) as u32), Offset(row.get::<_, i64>(1) as u64));
    }
    let (fences, replay_answered) =
        match client.query_opt(&format!("SELECT fences, replay_answered FROM {schema}.checkpoint"), &[]).await? {
            Some(row) => (serde_json::from_value(row.get(0))?, row.get::<_, i64>(1) as u64),
            None => (FenceTracker::default(), 0),
        };
    let products = schema::load(client, schema).await?.into_iter().map(|v| (v.sku.clone(), v)).collect();
    Ok(Model { position, fences, replay_answered, products })
}

async fn write_checkpoint(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    position: &Position,
    fences: &FenceTracker,
    replay_answered: u64,
) -> Result<(), SqlModelError> {
    for (partition, offset) in position.iter() {
        tx.execute(
            &format!(
                "INSERT INTO {schema}.positions (partition, next_offset) VALUES ($1, $2)
                 ON CONFLICT (partition) DO UPDATE SET next_offset = $2"
            ),
            &[&(partition.0 as i32), &(offset.0 as i64)],
        )
        .await?;
    }
    let fences = serde_json::to_value(fences)?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.checkpoint (singleton, fences, replay_answered) VALUES (true, $1, $2)
             ON CONFLICT (singleton) DO UPDATE SET fences = $1, replay_answered = $2"
        ),
        &[&fences, &(replay_answered as i64)],
    )
    .await?;
    Ok(())
}
