//! The API node's side of the commands topic: send a command to the partition that
//! owns it and wait for its outcome on `results`.
//!
//! The waiter is registered before the command is appended, and the results reader
//! starts at the end of `results` before the first command is sent, so no outcome
//! can slip past. Outcomes for this node are also kept for a while, for
//! `GET /commands/{id}` after a request answered 202.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stockroom_domain::CommandId;
use stockroom_topics::{EventLog, LogError, LogResult, Partition, StoredRecord, Topic};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::protocol::{CommandRecord, Outcome, OutcomeRecord, ProtocolError};

/// How many recent outcomes a node remembers for `GET /commands/{id}`.
const RECENT_OUTCOMES: usize = 100_000;

#[derive(Clone)]
pub struct CommandClient {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    /// Name under which this node waits: outcomes addressed elsewhere are skipped.
    reply_to: String,
    source: String,
    waiters: Mutex<HashMap<CommandId, Vec<oneshot::Sender<Outcome>>>>,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<CommandId>,
    outcomes: HashMap<CommandId, Outcome>,
}

/// What became of a submitted command within the wait.
#[derive(Debug)]
pub enum Submitted {
    Done(Outcome),
    /// Not known yet; ask `outcome(id)` later.
    Pending,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl CommandClient {
    /// Starts the results reader (from the current end of `results`) on `tracker`.
    pub async fn start(
        log: EventLog,
        node_id: &str,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> LogResult<CommandClient> {
        let mut from = Vec::new();
        for p in 0..log.partitions(Topic::Results) {
            let p = Partition(p);
            from.push((p, log.end_offset(Topic::Results, p).await?));
        }
        let reader = log.reader(Topic::Results, &from)?;
        let inner = Arc::new(Inner {
            log,
            reply_to: format!("{node_id}-{}", uuid::Uuid::new_v4().simple()),
            source: format!("/stockroom/{node_id}/api"),
            waiters: Mutex::new(HashMap::new()),
            recent: Mutex::new(Recent::default()),
        });
        let reading = inner.clone();
        tracker.spawn(async move { reading.read_results(reader, cancel).await });
        Ok(CommandClient { inner })
    }

    /// The address to put in a command's `reply_to`.
    pub fn reply_to(&self) -> &str {
        &self.inner.reply_to
    }

    /// Sends `cmd` and waits up to `wait` for its outcome.
    pub async fn submit(
        &self,
        cmd: CommandRecord,
        correlation_id: Option<String>,
        wait: Duration,
    ) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        let (tx, rx) = oneshot::channel();
        lock(&inner.waiters).entry(cmd.id.clone()).or_default().push(tx);
        let partition = inner.log.partition_for_key(Topic::Commands, cmd.target.key().as_bytes());
        let record = match cmd.to_record(&inner.source, correlation_id) {
            Ok(r) => r,
            Err(e) => {
                inner.forget_waiters(&cmd.id);
                return Err(e.into());
            }
        };
        if let Err(e) = inner.log.append(Topic::Commands, partition, vec![record]).await {
            inner.forget_waiters(&cmd.id);
            return Err(e.into());
        }
        let waited = tokio::time::timeout(wait, rx).await;
        match waited {
            Ok(Ok(outcome)) => Ok(Submitted::Done(outcome)),
            // Timed out, or the reader stopped (shutdown): the outcome is still to come.
            _ => {
                inner.forget_waiters(&cmd.id);
                Ok(Submitted::Pending)
            }
        }
    }

    /// Hands `outcome` straight to this node's waiting request when the command came
    /// through this node (its `reply_to` is ours), instead of through `results`: the
    /// processor of the same process answers without a round trip through the log.
    /// Returns whether it was ours.
    pub(crate) fn answer_local(&self, outcome: &OutcomeRecord) -> bool {
        if outcome.reply_to.as_deref() != Some(self.inner.reply_to.as_str()) {
            return false;
        }
        self.inner.answer(outcome.clone());
        true
    }

    /// The outcome of a recent command of this node, if it is known.
    pub fn outcome(&self, id: &CommandId) -> Option<Outcome> {
        lock(&self.inner.recent).outcomes.get(id).cloned()
    }
}

impl Inner {
    async fn read_results(&self, mut reader: stockroom_topics::LogReader, cancel: CancellationToken) {
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return,
                r = reader.poll(1024, Duration::from_secs(1)) => r,
            };
            match batch {
                Ok(records) => records.iter().for_each(|r| self.deliver(r)),
                Err(e) => {
                    warn!(error = %e, "reading results failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn deliver(&self, record: &StoredRecord) {
        match OutcomeRecord::from_record(record) {
            Ok(outcome) if outcome.reply_to.as_deref() == Some(self.reply_to.as_str()) => self.answer(outcome),
            Ok(_) => {}
            Err(e) => {
                debug!(partition = record.partition.0, offset = record.offset.0, error = %e, "skipped unreadable result")
            }
        }
    }

    fn answer(&self, outcome: OutcomeRecord) {
        let waiters = lock(&self.waiters).remove(&outcome.command_id).unwrap_or_default();
        for w in waiters {
            // The receiver may have timed out already; nothing to do then.
            let _ = w.send(outcome.outcome.clone());
        }
        let mut recent = lock(&self.recent);
        if recent.outcomes.insert(outcome.command_id.clone(), outcome.outcome).is_none() {
            recent.order.push_back(outcome.command_id);
            while recent.order.len() > RECENT_OUTCOMES {
                if let Some(old) = recent.order.pop_front() {
                    recent.outcomes.remove(&old);
                }
            }
        }
    }

    fn forget_waiters(&self, id: &CommandId) {
        let mut waiters = lock(&self.waiters);
        if let Some(list) = waiters.get_mut(id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                waiters.remove(id);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent across a panic in another holder (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
