//! Reading the outbox by polling (`--outbox-mode poll`), for servers without logical
//! replication (`wal_level` below `logical`, or a role without REPLICATION).
//!
//! # The gap problem, and why the position is a transaction id
//!
//! Reading `WHERE id > last_id` misses rows: ids are handed out when a row is
//! inserted, not when its transaction commits, so a transaction holding id 10 may
//! commit after one holding id 11 has been read and the position moved past 11 —
//! and row 10 is never read. (An application that chooses its ids, or calls `nextval`
//! early, makes the order looser still.) So the position is not an id.
//!
//! Every outbox row carries the id of the transaction that wrote it: a column
//! `stockroom_xid xid8 DEFAULT pg_current_xact_id()`, which the connector adds to the
//! table (with an index on `(stockroom_xid, id)`) if it is missing. A poll:
//!
//! 1. takes `X = pg_snapshot_xmin(pg_current_snapshot())`: every transaction with an
//!    id below X has ended (committed or rolled back), and every transaction that
//!    has not yet ended — or not yet begun, or not yet been given an id — has an id
//!    of X or more;
//! 2. reads the rows after its position with `stockroom_xid < X`, in
//!    `(stockroom_xid, id)` order, at most `batch` of them: the committed rows of
//!    ended transactions, all of them; rolled-back rows are simply not there;
//! 3. sends them as the replication mode does (`Connector::send_all`: per aggregate in
//!    order, each until its outcome is final);
//! 4. stores the new position in `stockroom_outbox_position` — `(X - 1, max)` when the
//!    read was not cut by `batch` ("every transaction below X is done"), else the
//!    `(stockroom_xid, id)` of the last row sent — and only then.
//!
//! A transaction that commits a low id late has an id of X or more at every poll
//! before its commit, so it is read by a later poll: nothing is skipped. The price:
//! a row waits for the oldest transaction open on the **server** (any database, any
//! client) to end. A session left idle in a transaction holds every outbox row back.
//!
//! # A crash at each step
//!
//! Before step 4: the position has not moved; the next start reads the same rows and
//! sends them again with the same `outbox-{id}` keys, which the processor answers
//! from their stored outcomes (never applied twice). After step 4: they are done.
//! The position lives in the application's database, written after the outcomes, so
//! it never runs ahead of them (no loss) and at most one batch is sent again (no
//! doubling, thanks to the keys).
//!
//! # First start
//!
//! The position starts at the snapshot's `xmin - 1`: transactions that ended before
//! the first start are not read (as with a replication slot, there is no initial
//! snapshot). If the connector had to add the `stockroom_xid` column, rows already in
//! the table carry the id of that `ALTER TABLE` and are read only if some older
//! transaction was still open at that moment.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stockroom_topics::time;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::connector::{Connector, OutboxError, Transaction};
use super::pgoutput::Lsn;
use super::row::OutboxRow;

/// Where the connector's position is stored, one row per outbox table.
pub const POSITION_TABLE: &str = "stockroom_outbox_position";

/// Everything up to and including `(xid, id)` has been sent and answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    xid: i64,
    id: i64,
}

impl Connector {
    /// Prepares the table and the position, then reads, sends and stores the
    /// position until cancelled.
    pub(super) async fn poll(&self, client: &Client, cancel: &CancellationToken) -> Result<(), OutboxError> {
        let table = &self.config.table;
        let mut position = prepare(client, table).await?;
        self.connected();
        info!(table = %table, xid = position.xid, id = position.id, "outbox connector polling");
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let horizon: i64 =
                client.query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint", &[]).await?.get(0);
            let rows = client
                .query(
                    &format!(
                        "SELECT id, type, payload::text, stockroom_xid::text::bigint, \
                         (extract(epoch FROM created_at) * 1000)::bigint \
                         FROM {table} \
                         WHERE (stockroom_xid, id) > ($1::text::xid8, $2) AND stockroom_xid < $3::text::xid8 \
                         ORDER BY stockroom_xid, id LIMIT $4"
                    ),
                    &[&position.xid.to_string(), &position.id, &horizon.to_string(), &(self.config.batch as i64)],
                )
                .await?;
            let full = rows.len() >= self.config.batch as usize;
            let mut last = None;
            let mut transactions: BTreeMap<i64, Transaction> = BTreeMap::new();
            for row in &rows {
                let (id, xid): (i64, i64) = (row.get(0), row.get(3));
                let created_ms: Option<i64> = row.get(4);
                let read = match (row.get::<_, Option<String>>(1), row.get::<_, Option<String>>(2)) {
                    (Some(kind), Some(payload)) => Ok(OutboxRow { id, kind, payload }),
                    _ => Err((format!("row {id} has no type or no payload"), id.to_string().into_bytes())),
                };
                let txn = transactions.entry(xid).or_insert_with(|| Transaction {
                    end_lsn: Lsn(0),
                    commit_ms: created_ms.unwrap_or_else(time::now_ms),
                    rows: Vec::new(),
                });
                txn.commit_ms = txn.commit_ms.max(created_ms.unwrap_or(txn.commit_ms));
                txn.rows.push(read);
                last = Some(Position { xid, id });
            }
            let next = match (full, last) {
                (true, Some(last)) => last,
                // Every transaction below the horizon is read: all of them are done.
                _ => Position { xid: horizon - 1, id: i64::MAX },
            };
            if transactions.is_empty() {
                // Nothing to send: the position moves in memory only (a restart from
                // the stored one finds nothing there either), sparing a write per poll.
                position = next.max_by_xid(position);
                self.stats.confirmed_xid.store(position.xid.max(0) as u64, Ordering::Relaxed);
                self.stats.caught_up.store(true, Ordering::Relaxed);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            let transactions: Vec<Transaction> = transactions.into_values().collect();
            if !self.send_all(&transactions, cancel).await {
                // Cancelled mid-way: the position has not moved; the next start sends
                // these rows again and their keys make the repeats harmless.
                return Ok(());
            }
            client
                .execute(
                    &format!("UPDATE {POSITION_TABLE} SET xid = $2, id = $3 WHERE outbox = $1"),
                    &[table, &next.xid, &next.id],
                )
                .await?;
            position = next;
            let newest = transactions.iter().map(|t| t.commit_ms).max().unwrap_or_else(time::now_ms);
            self.stats.transactions.fetch_add(transactions.len() as u64, Ordering::Relaxed);
            self.stats.confirmed_xid.store(position.xid.max(0) as u64, Ordering::Relaxed);
            self.stats.last_delay_ms.store(time::now_ms() - newest, Ordering::Relaxed);
            if !full {
                self.stats.caught_up.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Position {
    /// The later of two positions (the horizon never goes back, but a stored
    /// position read at start may be ahead of a first empty poll's).
    fn max_by_xid(self, other: Position) -> Position {
        if (self.xid, self.id) >= (other.xid, other.id) { self } else { other }
    }
}

/// The table (if missing, with the contract's columns and `stockroom_xid`), the
/// `stockroom_xid` column and its index (if missing), and the stored position (made
/// at the first start).
async fn prepare(client: &Client, table: &str) -> Result<Position, OutboxError> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, aggregate text, type text NOT NULL, \
             payload jsonb NOT NULL, created_at timestamptz DEFAULT now(), \
             stockroom_xid xid8 NOT NULL DEFAULT pg_current_xact_id());
             CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (outbox text PRIMARY KEY, xid bigint NOT NULL, id bigint NOT NULL);"
        ))
        .await?;
    // Checked first: ALTER TABLE and CREATE INDEX lock the application's table even
    // when there is nothing to do.
    let column = client
        .query_opt(
            "SELECT 1 FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = 'stockroom_xid' \
             AND NOT attisdropped",
            &[&table],
        )
        .await?;
    if column.is_none() {
        info!(table, "adding the column stockroom_xid (the writing transaction's id) to the outbox table");
        client
            .batch_execute(&format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS stockroom_xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
            ))
            .await?;
    }
    let index = format!("{table}_stockroom_xid");
    if client.query_opt("SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'i'", &[&index]).await?.is_none() {
        client.batch_execute(&format!("CREATE INDEX IF NOT EXISTS {index} ON {table} (stockroom_xid, id)")).await?;
    }
    client
        .execute(
            &format!(
                "INSERT INTO {POSITION_TABLE} (outbox, xid, id) \
                 SELECT $1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1, $2 \
                 ON CONFLICT (outbox) DO NOTHING"
            ),
            &[&table, &i64::MAX],
        )
        .await?;
    let row = client.query_one(&format!("SELECT xid, id FROM {POSITION_TABLE} WHERE outbox = $1"), &[&table]).await?;
    Ok(Position { xid: row.get(0), id: row.get(1) })
}
