//! The command processor: one task per owned partition of `commands`, each the only
//! writer of the same partition of `events`. The workers of a node share one reader
//! of `commands` (`feed`): one consumer and fetch session for all owned partitions.
//!
//! # The protocol, and what a crash at each step does
//!
//! For its partition `p` a worker:
//!
//! 1. **Catches up.** Its sled store remembers the next `events` offset it has to
//!    fold. It folds `events[p]` from there to the end: events appended just before
//!    a crash (acknowledged or not) reach the store now. *Crash here:* nothing was
//!    decided; the next start folds again from the stored offset.
//! 2. **Fences.** It appends `PartitionClaimed{owner, epoch = latest + 1}` to
//!    `events[p]` and folds through it. If a newer fence stands after its own, another
//!    node owns the partition and the worker stops. From now on every reader ignores
//!    records of older writers — a zombie (a paused node that wakes up after its
//!    partition moved) can append, but nobody folds what it wrote. This holds on any
//!    Kafka-API broker, without broker transactions.
//! 3. **Decides** a batch of commands. A command whose id the store already knows is
//!    answered with its recorded outcome and never applied twice. Others go through
//!    the domain's pure `decide`, against the state plus the batch's earlier
//!    decisions.
//! 4. **Appends** all events of the batch in one append (one flush for many
//!    commands: group commit), each stamped with the worker's fence, its command id
//!    and the request fingerprint. *Crash here:* the events may or may not be in the
//!    log; the client saw no success. Step 1 of the next owner folds whatever landed,
//!    and a retry with the same command id is answered from it.
//! 5. **Reads back and applies.** It folds its partition of `events` up to its last
//!    offset — the log, not its own memory, is what it applies — together with the
//!    new offsets and the outcomes of rejected commands, in one atomic sled batch.
//!    A command counts as accepted only if its events were folded: behind no newer
//!    fence, at the product's version + 1. When the append's offsets start exactly
//!    where the fold stands and have no gap, nothing else can be in between, so the
//!    worker folds the records it appended without fetching them (the same bytes,
//!    one round trip sooner); any other offsets mean someone else wrote, and it reads
//!    back. *Crash here:* the store loses at most its unflushed batches and folds
//!    them again.
//! 6. **Answers** on `results`; the API node holding the HTTP request replies (a
//!    request that came through this process's own API is answered directly).
//!    *Crash here:* the client times out and retries with its idempotency key; the
//!    retry finds the command applied and gets the original answer.
//!
//! An append whose outcome is unknown (an error or timeout) is not reported as a
//! failure of the command: the worker folds the partition's tail and answers every
//! command of the batch from what is there; commands not found get a retryable
//! "unavailable" answer.

mod batch;
mod feed;
mod fold;
mod health;
mod worker;

pub use health::{PartitionState, ProcessorHealth};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockroom_topics::{Backoff, EventLog, LogError, MembershipEvent, Partition, PartitionMembership, Writer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::protocol::ProtocolError;
use crate::store::{StateStore, StoreError};

#[derive(Clone, Debug)]
pub struct ProcessorConfig {
    /// This node's name; the writer identity adds a per-start random suffix.
    pub node_id: String,
    /// The most commands decided (and appended) together.
    pub max_batch: usize,
    /// How often due reservations are looked for.
    pub expiry_interval: Duration,
    /// How long a command id (and idempotency key) is remembered.
    pub idempotency_window: Duration,
    /// How long catching up may wait for the log before the worker gives up and restarts.
    pub catch_up_timeout: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            node_id: "stockroom".to_owned(),
            max_batch: 1024,
            expiry_interval: Duration::from_secs(1),
            idempotency_window: Duration::from_secs(24 * 3600),
            catch_up_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Codec(#[from] stockroom_topics::events::CodecError),
    #[error("partition {partition} is now owned by {by:?}")]
    Fenced { partition: u32, by: Option<Writer> },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("partition {partition}: the log did not deliver offsets up to {end} within the catch-up timeout")]
    CatchUpTimeout { partition: u32, end: u64 },
}

/// What every partition worker of this node shares.
pub(crate) struct Shared {
    pub log: EventLog,
    pub store: StateStore,
    pub config: ProcessorConfig,
    /// This start's writer name: node id plus a random suffix, so that a restarted
    /// node is a different writer from its previous life.
    pub owner: String,
    /// CloudEvents `source` of what this node writes.
    pub source: String,
    pub health: Arc<ProcessorHealth>,
    /// The write API of this process, if it has one: outcomes of commands sent
    /// through it are handed over directly rather than through `results`.
    pub local_api: std::sync::OnceLock<crate::client::CommandClient>,
    /// One per partition, held by the partition's worker while it runs: a worker
    /// for a reassigned partition waits until the previous one has stopped, so two
    /// workers of this node never write the same partition store.
    pub running: Mutex<HashMap<Partition, Arc<tokio::sync::Mutex<()>>>>,
    /// One reader of `commands` for all the partitions this node serves.
    pub feed: feed::CommandFeed,
}

impl Shared {
    fn partition_lock(&self, partition: Partition) -> Arc<tokio::sync::Mutex<()>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).entry(partition).or_default().clone()
    }
}

/// The command processor of one node.
#[derive(Clone)]
pub struct Processor {
    shared: Arc<Shared>,
}

impl Processor {
    pub fn new(log: EventLog, store: StateStore, config: ProcessorConfig) -> Processor {
        let owner = format!("{}-{}", config.node_id, uuid::Uuid::new_v4().simple());
        let source = format!("/stockroom/{}/processor", config.node_id);
        let feed = feed::CommandFeed::new(log.clone(), config.max_batch);
        let shared = Shared {
            log,
            store,
            config,
            owner,
            source,
            health: Arc::new(ProcessorHealth::default()),
            local_api: std::sync::OnceLock::new(),
            running: Mutex::new(HashMap::new()),
            feed,
        };
        Processor { shared: Arc::new(shared) }
    }

    /// This start's writer name (node id plus a random suffix).
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Answers commands that came through `client` (this process's write API)
    /// directly, without a round trip through `results`.
    pub fn answer_locally(&self, client: crate::client::CommandClient) {
        let _ = self.shared.local_api.set(client);
    }

    pub fn health(&self) -> Arc<ProcessorHealth> {
        self.shared.health.clone()
    }

    /// Starts a worker for each partition on `tracker`. A worker that fails (the log
    /// is unreachable, it was fenced) restarts after a backoff until `cancel` fires.
    pub fn spawn(
        &self,
        partitions: impl IntoIterator<Item = Partition>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) {
        let partitions: Vec<Partition> = partitions.into_iter().collect();
        let _ = self.shared.feed.tracker.set(tracker.clone());
        self.shared.health.assign(&partitions);
        for partition in partitions {
            let shared = self.shared.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move { supervise(shared, partition, cancel, true).await });
        }
    }

    /// Serves the partitions `membership` assigns, as it changes, until `cancel`.
    /// With a consumer group, a worker fenced by another node stops and waits for
    /// the group instead of claiming the partition back.
    pub fn follow(&self, mut membership: PartitionMembership, tracker: &TaskTracker, cancel: CancellationToken) {
        let shared = self.shared.clone();
        let _ = shared.feed.tracker.set(tracker.clone());
        let workers = tracker.clone();
        tracker.spawn(async move {
            let reclaim = membership.reclaims_when_fenced();
            let mut owned: HashMap<Partition, CancellationToken> = HashMap::new();
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    e = membership.next() => e,
                };
                match event {
                    Some(MembershipEvent::Assigned(partitions)) => {
                        info!(partitions = ?partitions.iter().map(|p| p.0).collect::<Vec<_>>(), "partitions assigned");
                        shared.health.assign(&partitions);
                        for p in partitions {
                            let token = cancel.child_token();
                            if let Some(old) = owned.insert(p, token.clone()) {
                                old.cancel();
                            }
                            let shared = shared.clone();
                            workers.spawn(async move { supervise(shared, p, token, reclaim).await });
                        }
                    }
                    Some(MembershipEvent::Revoked(partitions)) => {
                        info!(partitions = ?partitions.iter().map(|p| p.0).collect::<Vec<_>>(), "partitions revoked");
                        for p in partitions {
                            if let Some(token) = owned.remove(&p) {
                                token.cancel();
                            }
                            // Not ours any more, whether or not its worker started.
                            shared.health.remove(p);
                        }
                    }
                    // The embedded shape assigns everything once; keep serving it.
                    None if reclaim => cancel.cancelled().await,
                    None => {
                        warn!("the command group membership ended");
                        break;
                    }
                }
            }
            for token in owned.values() {
                token.cancel();
            }
        });
    }
}

/// How long a fenced worker waits for its partition to be revoked before it takes it
/// back (two sessions of the command group at its default timeout).
const FENCED_RECLAIM_AFTER: Duration = Duration::from_secs(20);

/// A failed worker restarts after 100 ms, then twice as long each time, at most 5 s;
/// a worker that served resets the delay.
const RESTART_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(5);

async fn supervise(shared: Arc<Shared>, partition: Partition, cancel: CancellationToken, reclaim: bool) {
    let lock = shared.partition_lock(partition);
    let _running = tokio::select! {
        _ = cancel.cancelled() => return,
        guard = lock.lock_owned() => guard,
    };
    let mut backoff = Backoff::new(RESTART_BACKOFF_INITIAL, 2, RESTART_BACKOFF_CAP);
    loop {
        shared.health.set(partition, PartitionState::CatchingUp);
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = worker::Worker::start(shared.clone(), partition) => r,
        };
        let result = match result {
            Ok(w) => {
                info!(partition = partition.0, owner = %shared.owner, "partition claimed; serving");
                backoff.reset();
                w.run(cancel.clone()).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break,
            Err(ProcessorError::Fenced { by, .. }) if !reclaim => {
                info!(partition = partition.0, by = ?by, "partition fenced by another node; waiting for the membership to move it");
                shared.health.set(partition, PartitionState::Fenced);
                // Normally the group revokes the partition (cancel) at its next
                // rebalance. If it still says it is ours long after, the other node
                // has let go of it: claim it again.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(FENCED_RECLAIM_AFTER) => continue,
                }
            }
            Err(e) => {
                warn!(partition = partition.0, error = %e, backoff_ms = backoff.peek().as_millis() as u64, "partition worker stopped; restarting");
                shared.health.set(partition, PartitionState::Failed(e.to_string()));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = backoff.wait() => {}
        }
    }
    // The partition's health entry is the membership's to remove (on revocation): a
    // worker cancelled because its partition was assigned again must not remove the
    // entry its successor is reported under.
}
