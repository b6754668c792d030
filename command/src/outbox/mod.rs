//! The transactional outbox, read by change data capture: a PostgreSQL application
//! writes its own rows and an `outbox` row in one transaction; this connector turns
//! each committed outbox row into a Stockroom command. No dual write: the order and
//! its event commit together or not at all, and the log learns of every one.
//!
//! # Reading: a logical replication slot and `pgoutput`
//!
//! The connector owns a publication of the outbox table and a logical replication
//! slot (`stockroom_<database>_<table>`, plugin `pgoutput`, as Debezium uses). The slot is
//! PostgreSQL's own durable cursor over the write-ahead log: decoding hands out only
//! **committed** transactions, whole and in commit order, so a rolled-back
//! transaction's outbox row never reaches Stockroom. The connector reads with
//! `pg_logical_slot_peek_binary_changes` (an ordinary SQL connection; peeking does
//! not move the slot) and decodes the binary messages itself (`pgoutput.rs`: Begin,
//! Relation, Insert, Commit; total on any bytes). Only inserts count: an
//! application that deletes its outbox rows in the same transaction (Debezium's
//! pattern, to keep the table small) still has its inserts decoded.
//!
//! # The protocol, and what a crash does at each step
//!
//! 1. **Peek** up to `batch` messages: whole committed transactions after the slot's
//!    confirmed position. *Crash*: nothing happened.
//! 2. **Send** every row as the write its type names (`row.rs`), through the command
//!    API's own router in process — the same validation, idempotency and saga as a
//!    client's request — with `Idempotency-Key: outbox-{id}`. Rows of one aggregate
//!    (order or SKU) go in commit order; aggregates in parallel. A row waits for its
//!    outcome: accepted, rejected by a business rule (an outcome: counted, logged),
//!    or — for a type the table does not know or a payload the API calls invalid —
//!    written to the DLQ with the reason. A `202`, a `5xx` or an unreachable log is
//!    sent again, same key. *Crash*: some commands are decided, the slot has not
//!    moved; the next start peeks the same rows and sends them again with the same
//!    keys, and the processor answers each repeat with its stored answer (never
//!    applied twice). A dead letter is not written twice: the connector looks for the
//!    row's key in the DLQ first (`dead_letters.rs`).
//! 3. **Confirm**: `pg_replication_slot_advance(slot, end_lsn)` of the last
//!    transaction sent, only after every row of every transaction before it has its
//!    final outcome. *Crash* before it: step 2's case. After it: the rows are done and
//!    never read again.
//!
//! So a row is applied exactly once, whether the connector, the node or PostgreSQL
//! dies, as long as its retry comes within the idempotency keys' lifetime (24 h of
//! log time; a connector down for longer should be restarted with care). A killed
//! PostgreSQL keeps the slot (it is crash-safe); the connector reconnects with a
//! growing delay.
//!
//! # What it does not do
//!
//! - Rows committed before the slot existed (the connector's first start) are not
//!   read: there is no initial snapshot.
//! - An unused slot holds WAL on the server: drop it (`pg_drop_replication_slot`)
//!   when the connector is retired.
//!
//! # Without logical replication: polling
//!
//! `--outbox-mode poll` (`poll.rs`) reads the table itself, for servers where a slot
//! is not to be had. It keeps steps 2 and 3 (send, then store the position), but its
//! position is a transaction id, not a row id, so that a row whose transaction
//! commits after a later id's is not skipped; the essay is in `poll.rs`.

mod connector;
mod dead_letters;
pub mod pgoutput;
mod poll;
pub mod row;

pub use connector::{Connector, OutboxConfig, OutboxError, OutboxMode, OutboxStats};
pub use poll::POSITION_TABLE;
