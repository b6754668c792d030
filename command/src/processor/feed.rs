//! One reader of `commands` for every partition this node serves.
//!
//! A reader per partition worker meant a Kafka consumer per owned partition, each
//! with its own fetch session, threads and long poll: on one broker most of the
//! write path's broker CPU went to answering those fetches. The feed reads all owned
//! partitions with one reader and hands each worker its partition's records, in
//! offset order, through a bounded channel.
//!
//! A worker subscribes with the offset it resumes from and unsubscribes by dropping
//! its [`Subscription`]. The feed's reader is rebuilt when the set of partitions
//! changes (rare: a start, a rebalance), from the positions it had reached, so no
//! record is skipped or handed out twice. If reading fails, the feed stops; every
//! worker then sees its subscription end, fails, and subscribes again after its
//! backoff, which starts a new feed.
//!
//! A worker that falls behind by [`QUEUED_BATCHES`] batches holds the feed up (and
//! with it the other partitions) until it takes one: a node whose workers cannot
//! keep up is overloaded as a whole, and the bound keeps memory flat.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use stockroom_topics::{EventLog, LogReader, Offset, Partition, StoredRecord, Topic};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::ProcessorError;

/// How many polled batches may wait for one worker.
const QUEUED_BATCHES: usize = 16;

/// The longest one poll of the shared reader waits; subscriptions made meanwhile
/// take effect after it.
const POLL_WAIT: Duration = Duration::from_millis(100);

struct Subscribe {
    partition: Partition,
    from: Offset,
    tx: mpsc::Sender<Vec<StoredRecord>>,
}

/// The node's command feed; the reading task starts with the first subscription.
pub(crate) struct CommandFeed {
    log: EventLog,
    /// The most records one poll returns.
    max: usize,
    control: Mutex<Option<mpsc::UnboundedSender<Subscribe>>>,
    /// The node's tasks: shutting down waits for the feed too.
    pub tracker: OnceLock<TaskTracker>,
}

impl CommandFeed {
    pub fn new(log: EventLog, max: usize) -> CommandFeed {
        CommandFeed { log, max, control: Mutex::new(None), tracker: OnceLock::new() }
    }

    /// Records of `partition` from `from` on, until the subscription is dropped.
    pub fn subscribe(&self, partition: Partition, from: Offset) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        let mut request = Subscribe { partition, from, tx };
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = control.as_ref() {
            match sender.send(request) {
                Ok(()) => return Subscription { rx, held: None },
                // The feed stopped: start a new one.
                Err(mpsc::error::SendError(r)) => request = r,
            }
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(request);
        *control = Some(sender);
        let task = run(self.log.clone(), receiver, self.max);
        match self.tracker.get() {
            Some(tracker) => drop(tracker.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
        Subscription { rx, held: None }
    }
}

/// One worker's share of the feed.
pub(crate) struct Subscription {
    rx: mpsc::Receiver<Vec<StoredRecord>>,
    /// A batch that did not fit into the last poll's `max`.
    held: Option<Vec<StoredRecord>>,
}

impl Subscription {
    /// Up to about `max` records (whole polled batches, at least one), waiting at most
    /// `wait` for the first; empty if none came. Cancel-safe.
    pub async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredRecord>, ProcessorError> {
        let mut out = match self.held.take() {
            Some(batch) => batch,
            None => match tokio::time::timeout(wait, self.rx.recv()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(Some(batch)) => batch,
                Ok(None) => return Err(ProcessorError::Internal("the command feed stopped".to_owned())),
            },
        };
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(batch) if out.len() + batch.len() <= max => out.extend(batch),
                Ok(batch) => {
                    self.held = Some(batch);
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }
}

/// The reading task: applies subscriptions, polls, routes records by partition. It
/// ends when no worker is subscribed any more (its reader, and with it the log's
/// files or the Kafka consumer, is released then); the next subscription starts a
/// new one.
async fn run(log: EventLog, mut control: mpsc::UnboundedReceiver<Subscribe>, max: usize) {
    let mut routes: BTreeMap<Partition, mpsc::Sender<Vec<StoredRecord>>> = BTreeMap::new();
    let mut reader: Option<LogReader> = None;
    loop {
        let mut added = Vec::new();
        while let Ok(s) = control.try_recv() {
            added.push(s);
        }
        let closed: Vec<Partition> = routes.iter().filter(|(_, tx)| tx.is_closed()).map(|(p, _)| *p).collect();
        if !added.is_empty() || !closed.is_empty() {
            let mut positions: BTreeMap<Partition, Offset> =
                reader.as_ref().map(LogReader::assignment).unwrap_or_default().into_iter().collect();
            for p in closed {
                routes.remove(&p);
                positions.remove(&p);
            }
            for s in added {
                positions.insert(s.partition, s.from);
                routes.insert(s.partition, s.tx);
            }
            positions.retain(|p, _| routes.contains_key(p));
            // The old reader goes before the new one is made.
            drop(reader.take());
            if routes.is_empty() {
                // New subscriptions start a new feed from now on; any sent before
                // the close are still this one's to serve.
                control.close();
                while let Ok(s) = control.try_recv() {
                    positions.insert(s.partition, s.from);
                    routes.insert(s.partition, s.tx);
                }
                if routes.is_empty() {
                    return;
                }
            }
            debug!(partitions = ?positions, "command feed reads");
            let from: Vec<(Partition, Offset)> = positions.into_iter().collect();
            match log.reader(Topic::Commands, &from) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    warn!(error = %e, "the command feed cannot read; its workers restart");
                    return;
                }
            }
        }
        let Some(r) = reader.as_mut() else { continue };
        let records = match r.poll(max, POLL_WAIT).await {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "the command feed failed reading; its workers restart");
                return;
            }
        };
        route(&mut routes, records).await;
    }
}

/// Hands each partition's records to its worker; a worker gone is dropped from the
/// routes (its partition leaves the reader at the next turn).
async fn route(routes: &mut BTreeMap<Partition, mpsc::Sender<Vec<StoredRecord>>>, records: Vec<StoredRecord>) {
    let mut by_partition: BTreeMap<Partition, Vec<StoredRecord>> = BTreeMap::new();
    for record in records {
        by_partition.entry(record.partition).or_default().push(record);
    }
    for (partition, batch) in by_partition {
        if let Some(tx) = routes.get(&partition) {
            // A closed channel is noticed (and the partition dropped) at the next turn.
            let _ = tx.send(batch).await;
        }
    }
}
