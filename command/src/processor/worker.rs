//! One partition's worker: catch up, fence, then decide → append → fold → answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stockroom_domain::{CommandId, Timestamp};
use stockroom_topics::{
    EventLog, LogReader, Offset, Partition, Record, StoredRecord, Topic, Writer, dlq, fence_record, time,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::batch::Incoming;
use super::fold::{Unreadable, fold};
use super::health::PartitionState;
use super::{ProcessorError, Shared};
use crate::protocol::{CommandRecord, OutcomeRecord};
use crate::store::{AppliedCommand, Changes, Effects, Meta, PartitionStore};

/// How many log records one fold step takes.
const FOLD_BATCH: usize = 4096;

/// How often unfinished sagas (pending GTIN claims, orders between steps) are asked
/// for their next step again; a step lost in a crash is repeated within this.
const SAGA_RESUME_INTERVAL: Duration = Duration::from_secs(3);

pub(crate) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) partition: Partition,
    pub(super) store: PartitionStore,
    events: LogReader,
    pub(super) meta: Meta,
    pub(super) writer: Writer,
    /// What folding asked for and the worker has not done yet (see `apply_effects`).
    pub(super) effects: Effects,
    /// Clients waiting for an order phase to end: command id → reply address.
    pub(super) waiting: HashMap<CommandId, String>,
}

impl Worker {
    /// Steps 1 and 2 of the protocol: catch up, fence, catch up through the fence.
    pub async fn start(shared: Arc<Shared>, partition: Partition) -> Result<Worker, ProcessorError> {
        let store = shared.store.partition(partition)?;
        let meta = store.meta()?;
        let events = shared.log.reader(Topic::Events, &[(partition, meta.events_next)])?;
        let mut worker = Worker {
            writer: Writer { epoch: 0, owner: shared.owner.clone() },
            shared,
            partition,
            store,
            events,
            meta,
            effects: Effects::default(),
            waiting: HashMap::new(),
        };
        let end = worker.shared.log.end_offset(Topic::Events, partition).await?;
        worker.catch_up_to(end, Vec::new(), None).await?;

        worker.writer.epoch = worker.meta.fences.next_epoch(partition);
        let fence = fence_record(partition, &worker.writer, time::now_ms());
        let offsets = worker.shared.log.append(Topic::Events, partition, vec![fence]).await?;
        let end = offsets.last().map_or(end, |o| Offset(o.0 + 1));
        worker.catch_up_to(end, Vec::new(), None).await?;
        worker.check_owner()?;
        Ok(worker)
    }

    /// Steps 3 to 6, until cancelled or fenced.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), ProcessorError> {
        let from = self.commands_start().await?;
        let mut commands = self.shared.feed.subscribe(self.partition, from);
        self.shared.health.set_commands_next(self.partition, from.0);
        self.shared.health.set(self.partition, PartitionState::Serving);
        let mut next_sweep = Instant::now();
        let mut next_purge = Instant::now() + Duration::from_secs(60);
        // What the catch-up found: unfinished sagas are driven on at once.
        self.apply_effects().await?;
        self.resume_sagas(Timestamp(i64::MAX), true).await?;
        let mut next_resume = Instant::now() + SAGA_RESUME_INTERVAL;
        loop {
            let records = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                r = commands.poll(self.shared.config.max_batch, self.shared.config.expiry_interval) => r?,
            };
            if let Some(last) = records.last() {
                self.shared.health.set_commands_next(self.partition, last.offset.0 + 1);
            }
            if !records.is_empty() {
                let incoming = self.decode_commands(records).await?;
                self.handle(incoming).await?;
            }
            if Instant::now() >= next_sweep {
                self.expire_due().await?;
                next_sweep = Instant::now() + self.shared.config.expiry_interval;
            }
            if Instant::now() >= next_resume {
                let older_than = Timestamp(time::now_ms() - SAGA_RESUME_INTERVAL.as_millis() as i64);
                self.resume_sagas(older_than, false).await?;
                next_resume = Instant::now() + SAGA_RESUME_INTERVAL;
            }
            if Instant::now() >= next_purge {
                self.purge_applied()?;
                next_purge = Instant::now() + Duration::from_secs(60);
            }
        }
    }

    /// Where to resume `commands`. On a durable topic (Kafka) that is after the last
    /// command this store processed or, from the log, after the last command that
    /// produced an event — commands after it were all rejected or no-ops, so doing
    /// them again decides them the same way. The embedded shape keeps commands in
    /// memory: its offsets restart with the process and the stored ones mean nothing.
    async fn commands_start(&self) -> Result<Offset, ProcessorError> {
        let log = &self.shared.log;
        let start = log.start_offset(Topic::Commands, self.partition).await?;
        if !log.is_durable(Topic::Commands) {
            return Ok(start);
        }
        let from_log = self.meta.last_command_offset.map_or(Offset(0), |o| Offset(o.0 + 1));
        Ok(start.max(from_log).max(self.meta.commands_next))
    }

    /// Folds `events[p]` into the store until `end`, committing `extras` (outcomes
    /// of commands that appended nothing) and the new commands offset with the last
    /// step. Every step is one atomic batch.
    pub(super) async fn catch_up_to(
        &mut self,
        end: Offset,
        extras: Vec<(CommandId, AppliedCommand)>,
        commands_next: Option<Offset>,
    ) -> Result<(), ProcessorError> {
        let deadline = Instant::now() + self.shared.config.catch_up_timeout;
        let mut extras = Some(extras);
        self.events.resume()?;
        loop {
            let behind = self.meta.events_next < end;
            if !behind && extras.is_none() {
                // Only read between appends: no background fetching while idle.
                self.events.pause()?;
                return Ok(());
            }
            let records =
                if behind { self.events.poll(FOLD_BATCH, Duration::from_millis(500)).await? } else { Vec::new() };
            if behind && records.is_empty() {
                if Instant::now() > deadline {
                    return Err(ProcessorError::CatchUpTimeout { partition: self.partition.0, end: end.0 });
                }
                continue;
            }
            let mut changes = self.store.changes()?;
            let mut unreadable = Vec::new();
            fold(&mut changes, &records, &mut unreadable)?;
            let effects = std::mem::take(&mut changes.effects);
            if changes.meta.events_next >= end
                && let Some(extras) = extras.take()
            {
                record_batch(&mut changes, &extras, commands_next)?;
            }
            self.meta = changes.commit()?;
            self.effects.append(effects);
            self.dead_letter(Topic::Events, unreadable).await?;
        }
    }

    /// Whether the offsets the log gave an append start right where this worker's
    /// fold stands and leave no gap: then nothing else was written in between (no
    /// newer fence, no zombie's events), and the log at those offsets holds exactly
    /// the records appended.
    pub(super) fn contiguous(&self, offsets: &[Offset]) -> bool {
        offsets.first() == Some(&self.meta.events_next) && offsets.windows(2).all(|w| w[1].0 == w[0].0 + 1)
    }

    pub(super) fn stored(&self, records: Vec<Record>, offsets: &[Offset]) -> Vec<StoredRecord> {
        records
            .into_iter()
            .zip(offsets)
            .map(|(record, &offset)| StoredRecord { partition: self.partition, offset, record })
            .collect()
    }

    /// Step 5 without reading back: folds records this worker has just appended, at
    /// offsets that [`Worker::contiguous`] proved are the log's next ones — what a
    /// read-back would return, one round trip sooner. Commits as `catch_up_to` does.
    pub(super) async fn fold_appended(
        &mut self,
        records: Vec<StoredRecord>,
        extras: Vec<(CommandId, AppliedCommand)>,
        commands_next: Option<Offset>,
    ) -> Result<(), ProcessorError> {
        let mut changes = self.store.changes()?;
        let mut unreadable = Vec::new();
        fold(&mut changes, &records, &mut unreadable)?;
        let effects = std::mem::take(&mut changes.effects);
        record_batch(&mut changes, &extras, commands_next)?;
        self.meta = changes.commit()?;
        self.effects.append(effects);
        // The reader skips what was folded here.
        self.events.seek(self.partition, self.meta.events_next)?;
        self.events.pause()?;
        self.dead_letter(Topic::Events, unreadable).await
    }

    /// Errors with `Fenced` unless this worker's fence is the partition's latest.
    pub(super) fn check_owner(&self) -> Result<(), ProcessorError> {
        match self.meta.fences.latest(self.partition) {
            Some(w) if *w == self.writer => Ok(()),
            other => Err(ProcessorError::Fenced { partition: self.partition.0, by: other.cloned() }),
        }
    }

    pub(super) fn is_owner(&self) -> bool {
        self.check_owner().is_ok()
    }

    async fn decode_commands(&self, records: Vec<StoredRecord>) -> Result<Vec<Incoming>, ProcessorError> {
        let mut incoming = Vec::with_capacity(records.len());
        let mut unreadable = Vec::new();
        for record in records {
            match CommandRecord::from_record(&record) {
                Ok((env, cmd)) => {
                    incoming.push(Incoming { offset: Some(record.offset), cmd, correlation_id: env.correlation_id })
                }
                Err(e) => unreadable.push(Unreadable { reason: e.to_string(), record }),
            }
        }
        self.dead_letter(Topic::Commands, unreadable).await?;
        Ok(incoming)
    }

    /// Issues `ExpireReservations` for products with a reservation past its deadline.
    /// Time flows in with the command, like every other command's.
    async fn expire_due(&mut self) -> Result<(), ProcessorError> {
        let now = Timestamp(time::now_ms());
        let due = self.store.due_expiries(now, self.shared.config.max_batch)?;
        if due.is_empty() {
            return Ok(());
        }
        debug!(partition = self.partition.0, products = due.len(), "expiring reservations");
        let incoming = due.into_iter().map(|sku| Incoming::expiry(sku, now)).collect::<Result<Vec<_>, _>>()?;
        self.handle(incoming).await
    }

    fn purge_applied(&self) -> Result<(), ProcessorError> {
        let window = i64::try_from(self.shared.config.idempotency_window.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(time::now_ms().saturating_sub(window));
        let removed = self.store.expire_applied(before, 100_000)?;
        if removed > 0 {
            debug!(partition = self.partition.0, removed, "forgot command ids past the idempotency window");
        }
        Ok(())
    }

    pub(super) async fn dead_letter(&self, topic: Topic, unreadable: Vec<Unreadable>) -> Result<(), ProcessorError> {
        if unreadable.is_empty() {
            return Ok(());
        }
        let now = time::now_ms();
        let records: Vec<Record> = unreadable
            .iter()
            .map(|u| {
                warn!(topic = topic.suffix(), partition = u.record.partition.0, offset = u.record.offset.0, reason = %u.reason, "dead-lettered record");
                dlq::dead_letter(topic, &u.record, &u.reason, &self.shared.owner, now)
            })
            .collect();
        self.shared.log.append(Topic::Dlq, self.partition, records).await?;
        Ok(())
    }

    /// Publishes outcomes on `results`, keyed (and partitioned) by command id.
    pub(super) async fn answer(&self, outcomes: Vec<OutcomeRecord>) -> Result<(), ProcessorError> {
        let now = time::now_ms();
        let mut records = Vec::new();
        let local = self.shared.local_api.get();
        for o in outcomes.iter().filter(|o| o.reply_to.is_some()) {
            if local.is_some_and(|api| api.answer_local(o)) {
                continue;
            }
            records.push((o.command_id.as_str().as_bytes().to_vec(), o.to_record(&self.shared.source, now)?));
        }
        append_by_key(&self.shared.log, Topic::Results, records).await
    }
}

/// Commits, with a fold's last step, the outcomes of the batch's commands that
/// appended nothing (`extras`) and where `commands` resumes after the batch.
fn record_batch(
    changes: &mut Changes<'_>,
    extras: &[(CommandId, AppliedCommand)],
    commands_next: Option<Offset>,
) -> Result<(), ProcessorError> {
    for (id, applied) in extras {
        changes.record_command(id, applied)?;
    }
    if let Some(next) = commands_next {
        changes.meta.commands_next = changes.meta.commands_next.max(next);
    }
    Ok(())
}

/// Appends `(key, record)`s to the partitions of `topic` their keys belong to: one
/// append per partition, all at once.
pub(super) async fn append_by_key(
    log: &EventLog,
    topic: Topic,
    records: Vec<(Vec<u8>, Record)>,
) -> Result<(), ProcessorError> {
    let mut by_partition: BTreeMap<Partition, Vec<Record>> = BTreeMap::new();
    for (key, record) in records {
        by_partition.entry(log.partition_for_key(topic, &key)).or_default().push(record);
    }
    let appends = by_partition.into_iter().map(|(p, records)| log.append(topic, p, records));
    for result in futures::future::join_all(appends).await {
        result?;
    }
    Ok(())
}

pub(super) fn log_of(w: &Worker) -> &EventLog {
    &w.shared.log
}
