//! The group-commit appender thread of the embedded log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tracing::{error, trace};

use super::{DurablePartition, Stats, TopicSignal, codec, offset_key};
use crate::error::{LogError, LogResult};
use crate::ids::{Offset, Partition};
use crate::record::Record;
use crate::topic::Topic;

pub(crate) struct AppendRequest {
    pub topic: Topic,
    pub partition: Partition,
    pub records: Vec<Record>,
    pub reply: oneshot::Sender<LogResult<Vec<Offset>>>,
}

pub(crate) struct Appender {
    tx: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Appender {
    pub fn start(
        db: sled::Db,
        partitions: HashMap<(Topic, Partition), Arc<DurablePartition>>,
        signals: HashMap<Topic, Arc<TopicSignal>>,
        stats: Arc<Stats>,
    ) -> LogResult<Appender> {
        let (tx, rx) = mpsc::channel();
        let mut worker = Worker { db, partitions, signals, stats, next: HashMap::new() };
        let thread = std::thread::Builder::new().name("log-appender".into()).spawn(move || worker.run(rx))?;
        Ok(Appender { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    pub fn send(&self, request: AppendRequest) -> LogResult<()> {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard.as_ref().ok_or(LogError::Closed)?;
        tx.send(request).map_err(|_| LogError::Closed)
    }

    /// Closes the queue; the thread finishes what was sent, then ends.
    pub async fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            // Joining blocks: do it off the async workers.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

struct Worker {
    db: sled::Db,
    partitions: HashMap<(Topic, Partition), Arc<DurablePartition>>,
    signals: HashMap<Topic, Arc<TopicSignal>>,
    stats: Arc<Stats>,
    /// Next offset to assign per partition: the durable end plus what was written
    /// but is not yet known durable.
    next: HashMap<(Topic, Partition), u64>,
}

type Reply = (oneshot::Sender<LogResult<Vec<Offset>>>, LogResult<Vec<Offset>>);

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<AppendRequest>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            self.commit_group(group);
        }
    }

    fn commit_group(&mut self, group: Vec<AppendRequest>) {
        let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
        let mut records = 0u64;
        for req in group {
            let result = self.write(req.topic, req.partition, &req.records);
            if result.is_ok() {
                records += req.records.len() as u64;
            }
            replies.push((req.reply, result));
        }
        let flushed = self.db.flush();
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        match flushed {
            Ok(_) => {
                self.stats.appended.fetch_add(records, Ordering::Relaxed);
                // Everything written so far is durable now: publish the new ends.
                let mut touched: Vec<Topic> = Vec::new();
                for (key, next) in &self.next {
                    if let Some(p) = self.partitions.get(key)
                        && p.end.swap(*next, Ordering::AcqRel) != *next
                        && !touched.contains(&key.0)
                    {
                        touched.push(key.0);
                    }
                }
                for topic in touched {
                    self.signals[&topic].bump();
                }
                trace!(records, "group committed");
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                error!(error = %e, "log flush failed; appends of this group have an unknown outcome");
                for (reply, _) in replies {
                    let _ = reply.send(Err(LogError::Other(format!("log flush failed: {e}"))));
                }
            }
        }
    }

    /// Writes one request's records with one atomic batch; returns their offsets.
    fn write(&mut self, topic: Topic, partition: Partition, records: &[Record]) -> LogResult<Vec<Offset>> {
        let p = self.partitions.get(&(topic, partition)).ok_or(LogError::UnknownPartition { topic, partition })?;
        let next = *self.next.entry((topic, partition)).or_insert_with(|| p.end.load(Ordering::Acquire));
        let mut batch = sled::Batch::default();
        for (i, r) in records.iter().enumerate() {
            batch.insert(&offset_key(next + i as u64), codec::encode(r));
        }
        p.tree.apply_batch(batch)?;
        let end = next + records.len() as u64;
        self.next.insert((topic, partition), end);
        Ok((next..end).map(Offset).collect())
    }
}
