//! The connector's loop: read committed transactions from the slot, send their rows,
//! advance the slot. The protocol and what a crash does at each step are in the
//! module doc of `outbox`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use stockroom_topics::dlq::{
    ORIGIN_OFFSET_HEADER, ORIGIN_PARTITION_HEADER, ORIGIN_TOPIC_HEADER, REASON_HEADER, REPORTER_HEADER,
};
use stockroom_topics::{EventLog, Headers, Record, Topic, time};
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{error, info, warn};

use super::dead_letters::DeadLetters;
use super::pgoutput::{self, Lsn, Message, Relation};
use super::row::OutboxRow;
use crate::http::CommandApi;

/// How the connector learns of committed rows (`--outbox-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboxMode {
    /// A logical replication slot and `pgoutput`: needs `wal_level=logical` and a
    /// role with REPLICATION.
    #[default]
    Replication,
    /// Queries of the table by transaction id (`poll.rs`): any server, any role that
    /// may read the table and create the connector's position table.
    Poll,
}

impl OutboxMode {
    pub fn name(self) -> &'static str {
        match self {
            OutboxMode::Replication => "replication",
            OutboxMode::Poll => "poll",
        }
    }
}

/// Where the connector reads and how.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// A libpq-style connection string (`host=127.0.0.1 port=5432 user=app dbname=shop`) or URL.
    pub dsn: String,
    /// The outbox table (in the connection's search path).
    pub table: String,
    /// Messages read from the slot (rows read from the table, when polling) per round trip.
    pub batch: i32,
    pub mode: OutboxMode,
}

impl OutboxConfig {
    pub fn new(dsn: impl Into<String>, table: impl Into<String>) -> Result<OutboxConfig, OutboxError> {
        let table = table.into();
        let plain = !table.is_empty()
            && table.len() <= 40
            && table.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !table.as_bytes()[0].is_ascii_digit();
        if !plain {
            return Err(OutboxError::Config(format!(
                "the outbox table name {table:?} must be 1-40 of [a-z0-9_], not starting with a digit"
            )));
        }
        Ok(OutboxConfig { dsn: dsn.into(), table, batch: 2000, mode: OutboxMode::Replication })
    }

    pub fn with_mode(self, mode: OutboxMode) -> OutboxConfig {
        OutboxConfig { mode, ..self }
    }

    /// The publication the connector owns: one per table.
    pub fn publication(&self) -> String {
        format!("stockroom_{}", self.table)
    }

    /// The replication slot the connector owns, one per database and table (slot
    /// names are the server's, publications the database's).
    pub fn slot(&self, database: &str) -> String {
        let db: String =
            database.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        format!("stockroom_{}_{}", db, self.table).chars().take(63).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{0}")]
    Config(String),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the replication stream is not readable: {0}")]
    Stream(String),
    /// The server cannot give this connection a logical replication slot.
    #[error("logical replication is not available: {0}; fix that, or read the table by polling: --outbox-mode poll")]
    NoReplication(String),
}

/// What the connector has done, for `/metrics` and `/admin/views`.
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Rows whose command was accepted.
    pub applied: AtomicU64,
    /// Rows whose command a business rule rejected (an outcome, like a 409 to a client).
    pub rejected: AtomicU64,
    /// Rows sent to the DLQ.
    pub dead_letters: AtomicU64,
    /// Transactions confirmed (the slot advanced past them).
    pub transactions: AtomicU64,
    /// The LSN the slot has confirmed.
    pub confirmed_lsn: AtomicU64,
    /// WAL bytes between the slot's confirmed position and the server's current one.
    pub lag_bytes: AtomicU64,
    /// Milliseconds from the commit of the last confirmed transaction to its confirmation.
    pub last_delay_ms: AtomicI64,
    /// True once a read of the slot came back empty (and until one fails).
    pub caught_up: AtomicBool,
    /// True while connected to PostgreSQL.
    pub connected: AtomicBool,
    /// How the connector reads.
    pub mode: OutboxMode,
    /// Polling: every transaction up to this id is read and sent.
    pub confirmed_xid: AtomicU64,
    /// Why the last session failed, until one succeeds.
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// The connector: PostgreSQL's slot in, the command API out.
pub struct Connector {
    pub(super) config: OutboxConfig,
    api: Router,
    log: EventLog,
    pub(super) stats: Arc<OutboxStats>,
    dead: DeadLetters,
}

/// A row as read: the outbox row, or why it could not be read (with its raw bytes).
pub(super) type ReadRow = Result<OutboxRow, (String, Vec<u8>)>;

/// A transaction read from the slot (or, polling, the rows of one transaction id).
pub(super) struct Transaction {
    pub(super) end_lsn: Lsn,
    pub(super) commit_ms: i64,
    pub(super) rows: Vec<ReadRow>,
}

/// What became of one row.
enum Done {
    Applied,
    Rejected,
    DeadLetter,
}

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

impl Connector {
    pub fn new(config: OutboxConfig, api: CommandApi, log: EventLog) -> Connector {
        let stats = Arc::new(OutboxStats { mode: config.mode, ..OutboxStats::default() });
        Connector { config, api: crate::http::router(api), log, stats, dead: DeadLetters::default() }
    }

    pub fn stats(&self) -> Arc<OutboxStats> {
        self.stats.clone()
    }

    /// Runs until `cancel`: a lost connection is retried with a growing delay.
    pub async fn run(self, cancel: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        while !cancel.is_cancelled() {
            match self.session(&cancel).await {
                Ok(()) => return,
                Err(e) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.stats.caught_up.store(false, Ordering::Relaxed);
                    if let Ok(mut last) = self.stats.last_error.lock() {
                        *last = Some(e.to_string());
                    }
                    if matches!(e, OutboxError::NoReplication(_)) {
                        // Not a passing fault: say so loudly (retried all the same, in
                        // case the server is being reconfigured).
                        error!(error = %e, table = %self.config.table, "outbox connector cannot use logical replication");
                    } else {
                        warn!(error = %e, table = %self.config.table, retry_in_ms = delay.as_millis() as u64, "outbox connector failed; retrying");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn session(&self, cancel: &CancellationToken) -> Result<(), OutboxError> {
        let (client, connection) = tokio_postgres::connect(&self.config.dsn, NoTls).await?;
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(error = %e, "outbox connection closed");
            }
        });
        let result = match self.config.mode {
            OutboxMode::Replication => self.follow(&client, cancel).await,
            OutboxMode::Poll => self.poll(&client, cancel).await,
        };
        conn.abort();
        result
    }

    /// The connection works: the last failure is over.
    pub(super) fn connected(&self) {
        self.stats.connected.store(true, Ordering::Relaxed);
        if let Ok(mut last) = self.stats.last_error.lock() {
            *last = None;
        }
    }

    /// Makes the publication and the slot if they are missing, then reads, sends and
    /// confirms until cancelled.
    async fn follow(&self, client: &Client, cancel: &CancellationToken) -> Result<(), OutboxError> {
        let database: String = client.query_one("SELECT current_database()::text", &[]).await?.get(0);
        let slot = self.config.slot(&database);
        let publication = self.config.publication();
        prepare(client, &self.config.table, &publication, &slot).await?;
        self.connected();
        info!(table = %self.config.table, slot = %slot, "outbox connector reading");
        let mut relations: HashMap<u32, Relation> = HashMap::new();
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let messages = client
                .query(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                     'proto_version', '1', 'publication_names', $3)",
                    &[&slot, &self.config.batch, &publication],
                )
                .await?;
            let transactions = self.transactions(messages.iter().map(|m| m.get::<_, Vec<u8>>(0)), &mut relations)?;
            if transactions.is_empty() {
                self.stats.caught_up.store(true, Ordering::Relaxed);
                self.measure_lag(client, &slot).await;
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            if !self.send_all(&transactions, cancel).await {
                // Cancelled mid-way: what was sent is not confirmed; the next start
                // reads it again and the command ids make the repeats harmless.
                return Ok(());
            }
            let last = transactions.last().map(|t| (t.end_lsn, t.commit_ms)).unwrap_or_default();
            client
                .execute(
                    "SELECT 1 FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[&slot, &last.0.to_string()],
                )
                .await?;
            self.stats.transactions.fetch_add(transactions.len() as u64, Ordering::Relaxed);
            self.stats.confirmed_lsn.store(last.0.0, Ordering::Relaxed);
            self.stats.last_delay_ms.store(time::now_ms() - last.1, Ordering::Relaxed);
            self.measure_lag(client, &slot).await;
        }
    }

    /// Assembles decoded messages into whole transactions.
    fn transactions(
        &self,
        messages: impl Iterator<Item = Vec<u8>>,
        relations: &mut HashMap<u32, Relation>,
    ) -> Result<Vec<Transaction>, OutboxError> {
        let mut done = Vec::new();
        let mut open: Option<Transaction> = None;
        for bytes in messages {
            let message = pgoutput::decode(&bytes);
            match (message, open.as_mut()) {
                (Ok(Message::Begin { commit_ts_us, .. }), None) => {
                    open = Some(Transaction {
                        end_lsn: Lsn(0),
                        commit_ms: (commit_ts_us + PG_EPOCH_US) / 1000,
                        rows: Vec::new(),
                    })
                }
                (Ok(Message::Relation(r)), _) => {
                    relations.insert(r.id, r);
                }
                (Ok(Message::Insert { relation, values }), Some(txn)) => {
                    let row = match relations.get(&relation) {
                        Some(r) if r.name == self.config.table => outbox_row(&pgoutput::row(r, values)),
                        Some(_) => continue,
                        None => Err((
                            format!("an insert into relation {relation}, which no Relation message described"),
                            bytes,
                        )),
                    };
                    txn.rows.push(row);
                }
                (Ok(Message::Commit { end_lsn, .. }), Some(_)) => {
                    if let Some(mut txn) = open.take() {
                        txn.end_lsn = end_lsn;
                        done.push(txn);
                    }
                }
                (Ok(Message::Other(_)), _) => {}
                (Err(e), Some(txn)) => txn.rows.push(Err((format!("an undecodable pgoutput message: {e}"), bytes))),
                (other, _) => {
                    return Err(OutboxError::Stream(format!("a message out of transaction order: {other:?}")));
                }
            }
        }
        // Reads end at transaction boundaries; an open transaction here would be one
        // the server cut short. It is read again next time, whole.
        Ok(done)
    }

    /// Sends every row of `transactions`: rows of one aggregate in commit order,
    /// different aggregates concurrently. False when cancelled before all were done.
    pub(super) async fn send_all(&self, transactions: &[Transaction], cancel: &CancellationToken) -> bool {
        let mut lanes: HashMap<String, Vec<&ReadRow>> = HashMap::new();
        for row in transactions.iter().flat_map(|t| &t.rows) {
            let lane = match row {
                Ok(r) => r.write().map(|w| w.aggregate).unwrap_or_default(),
                Err(_) => String::new(),
            };
            lanes.entry(lane).or_default().push(row);
        }
        let lanes = lanes.into_values().map(|rows| async move {
            for row in rows {
                if self.handle(row, cancel).await.is_none() {
                    return false;
                }
            }
            true
        });
        futures::future::join_all(lanes).await.into_iter().all(|ok| ok)
    }

    /// Sends one row until its outcome is final (None: cancelled first).
    async fn handle(&self, row: &ReadRow, cancel: &CancellationToken) -> Option<Done> {
        let row = match row {
            Ok(row) => row,
            Err((reason, bytes)) => return self.dead_letter(None, reason, bytes.clone(), cancel).await,
        };
        let write = match row.write() {
            Ok(w) => w,
            Err(reason) => return self.dead_letter(Some(row), &reason, row_json(row), cancel).await,
        };
        let mut delay = Duration::from_millis(50);
        loop {
            let request = Request::builder()
                .method(write.method)
                .uri(&write.path)
                .header("content-type", "application/json")
                .header("idempotency-key", row.idempotency_key())
                .body(Body::from(write.body.to_string()));
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    return self.dead_letter(Some(row), &format!("not a request: {e}"), row_json(row), cancel).await;
                }
            };
            let response = match self.api.clone().oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = response.status();
            match status {
                StatusCode::ACCEPTED => {}
                s if s.is_success() => {
                    self.stats.applied.fetch_add(1, Ordering::Relaxed);
                    return Some(Done::Applied);
                }
                StatusCode::BAD_REQUEST
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
                | StatusCode::UNPROCESSABLE_ENTITY => {
                    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
                    let reason = format!("{status}: {}", String::from_utf8_lossy(&body));
                    return self.dead_letter(Some(row), &reason, row_json(row), cancel).await;
                }
                s if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS => {
                    // 404, 409, 412: a business rule's answer, as a client would get it.
                    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
                    warn!(id = row.id, kind = %row.kind, status = s.as_u16(), problem = %String::from_utf8_lossy(&body), "outbox row rejected");
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    return Some(Done::Rejected);
                }
                _ => warn!(id = row.id, status = status.as_u16(), "outbox row not answered yet; sending again"),
            }
            // 202 (outcome not known yet), 5xx, 429: the same request again, with the
            // same idempotency key: the same command, never a second one.
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn dead_letter(
        &self,
        row: Option<&OutboxRow>,
        reason: &str,
        payload: Vec<u8>,
        cancel: &CancellationToken,
    ) -> Option<Done> {
        let id = row.map(|r| r.id.to_string()).unwrap_or_else(|| "unknown".into());
        let key = format!("outbox-{id}").into_bytes();
        let origin = format!("postgres:{}", self.config.table);
        let partition = self.log.partition_for_key(Topic::Dlq, &key);
        // A row read again after a crash (between its dead letter and the position's
        // move) is not written twice (`dead_letters.rs`).
        while row.is_some() {
            match self.dead.contains(&self.log, partition, &origin, &key).await {
                Ok(true) => {
                    info!(id = %id, "outbox row already in the DLQ; not written again");
                    return Some(Done::DeadLetter);
                }
                Ok(false) => break,
                Err(e) => warn!(error = %e, "cannot read the DLQ; retrying"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        warn!(id = %id, reason, "outbox row to the DLQ");
        let mut headers = Headers::new();
        headers.push(REASON_HEADER, reason.as_bytes().to_vec());
        headers.push(ORIGIN_TOPIC_HEADER, origin.into_bytes());
        headers.push(ORIGIN_PARTITION_HEADER, b"0".to_vec());
        headers.push(ORIGIN_OFFSET_HEADER, id.into_bytes());
        headers.push(REPORTER_HEADER, b"outbox".to_vec());
        let record = Record { key: Some(key.clone()), headers, payload, timestamp_ms: time::now_ms() };
        loop {
            match self.log.append(Topic::Dlq, partition, vec![record.clone()]).await {
                Ok(_) => {
                    self.dead.written(partition, key).await;
                    self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                    return Some(Done::DeadLetter);
                }
                Err(e) => warn!(error = %e, "cannot write to the DLQ; retrying"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn measure_lag(&self, client: &Client, slot: &str) {
        let lag = client
            .query_opt(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await;
        if let Ok(Some(row)) = lag
            && let Ok(Some(bytes)) = row.try_get::<_, Option<i64>>(0)
        {
            self.stats.lag_bytes.store(bytes.max(0) as u64, Ordering::Relaxed);
        }
    }
}

/// The table (if missing, with the contract's columns), a publication of it and the
/// logical slot, each made only if missing.
async fn prepare(client: &Client, table: &str, publication: &str, slot: &str) -> Result<(), OutboxError> {
    let wal_level: String = client.query_one("SELECT current_setting('wal_level')", &[]).await?.get(0);
    if wal_level != "logical" {
        return Err(OutboxError::NoReplication(format!(
            "the server runs with wal_level={wal_level} (logical decoding needs wal_level=logical and a restart)"
        )));
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, aggregate text, type text NOT NULL, \
             payload jsonb NOT NULL, created_at timestamptz DEFAULT now())"
        ))
        .await?;
    if client.query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&publication]).await?.is_none() {
        client.batch_execute(&format!("CREATE PUBLICATION {publication} FOR TABLE {table}")).await?;
    }
    if client.query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await?.is_none() {
        let created =
            client.execute("SELECT 1 FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot]).await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                return Err(OutboxError::NoReplication(format!(
                    "the role may not create replication slots (it needs REPLICATION): {e}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        info!(slot, "created the replication slot: rows committed from now on are read");
    }
    Ok(())
}

pub(super) fn outbox_row(row: &pgoutput::Row) -> ReadRow {
    let raw = || {
        serde_json::to_vec(&row.columns.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect::<HashMap<_, _>>())
            .unwrap_or_default()
    };
    let id =
        row.text("id").and_then(|t| t.parse::<i64>().ok()).ok_or_else(|| ("the row has no id".to_owned(), raw()))?;
    let kind = row.text("type").ok_or_else(|| (format!("row {id} has no type"), raw()))?;
    let payload = row.text("payload").ok_or_else(|| (format!("row {id} has no payload"), raw()))?;
    Ok(OutboxRow { id, kind: kind.to_owned(), payload: payload.to_owned() })
}

fn row_json(row: &OutboxRow) -> Vec<u8> {
    let payload =
        serde_json::from_str::<serde_json::Value>(&row.payload).unwrap_or_else(|_| row.payload.clone().into());
    serde_json::json!({"id": row.id, "type": row.kind, "payload": payload}).to_string().into_bytes()
}
