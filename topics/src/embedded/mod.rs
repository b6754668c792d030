//! The embedded log: a durable, partitioned, append-only log in plain files, for the
//! single-process shape (`stockroom serve`, no external service).
//!
//! # Layout
//!
//! One append-only file per durable topic-partition (`events`, `replay`, `dlq`,
//! `sources`), named `"<topic name>-<partition>.log"`, a frame with a CRC per record
//! (see `file.rs`), and `stockroom-log.meta` with the format and the partition count.
//! `commands` and `results` are in memory (DESIGN.md: a command counts only once its
//! events are durable, so losing a queued command in a crash loses nothing a client
//! was told succeeded).
//!
//! Until this format the log was a sled database (one tree per partition). Opening
//! such a directory copies its records into the files once, then removes sled's
//! files; a crash during the copy redoes it (the meta file is written last).
//!
//! # Group commit
//!
//! Appends to durable topics go to one appender thread. It drains every request
//! waiting, writes each partition's new frames with one `pwrite`, then calls
//! `fdatasync` once per partition file it wrote, then answers them all. Under load
//! many commands — of many partitions — share those syncs.
//!
//! # Readers see only durable records
//!
//! Each partition has a *durable end*: the next offset after the last synced record.
//! Readers never read past it. A record written but not yet synced could vanish in a
//! crash; had a projector indexed it, the view would hold an event the log lost.
//!
//! # Crashes
//!
//! Frames reach a file in order and an append is acknowledged only after the sync
//! that covers it. After a crash, opening the log checks every frame and cuts the
//! file at the first torn or damaged one; what is cut was never acknowledged. So each
//! partition holds a prefix of what was appended, with no holes, and every
//! acknowledged record. Records appended but not acknowledged may or may not be
//! there — the command processor handles that by reading the log back.
//!
//! If a write or a sync fails, the file's tail is in an unknown state: the log stops
//! taking appends (every later one fails) until the process restarts and recovery
//! cuts the tail — the way PostgreSQL treats a failed `fsync`.

mod appender;
mod codec;
mod file;
mod memory;
mod migrate;
mod reader;

pub use reader::Reader;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::{oneshot, watch};

use crate::error::{LogError, LogResult};
use crate::ids::{Offset, Partition};
use crate::record::Record;
use crate::topic::{Topic, TopicLayout, TopicNames};

use appender::{AppendRequest, Appender};
use file::{FilePartition, FileWriter};
use memory::MemoryPartition;

/// The default partition count of a new log.
pub const DEFAULT_PARTITIONS: u32 = 8;
/// Records each in-memory partition keeps.
pub const MEMORY_RETENTION: usize = 100_000;

/// The log's own description: its format and partition count.
const META_FILE: &str = "stockroom-log.meta";
const FORMAT: &str = "stockroom-log 1";
/// Locked (`flock`) by the process that has the log open.
const LOCK_FILE: &str = "stockroom-log.lock";

/// What readers of a topic wait on: bumped after every append to the topic.
pub(crate) struct TopicSignal {
    pub tx: watch::Sender<u64>,
}

impl TopicSignal {
    fn new() -> TopicSignal {
        TopicSignal { tx: watch::channel(0).0 }
    }

    pub fn bump(&self) {
        self.tx.send_modify(|g| *g = g.wrapping_add(1));
    }
}

pub(crate) enum PartitionStore {
    Durable(Arc<FilePartition>),
    Memory(Arc<MemoryPartition>),
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub flushes: AtomicU64,
    pub appended: AtomicU64,
}

pub struct EmbeddedLog {
    layout: TopicLayout,
    path: PathBuf,
    partitions: HashMap<(Topic, Partition), PartitionStore>,
    signals: HashMap<Topic, Arc<TopicSignal>>,
    appender: Appender,
    stats: Arc<Stats>,
    /// Held while the log is open: one process appends to a log.
    _lock: std::fs::File,
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`. `partitions: None` uses the stored count
    /// (or [`DEFAULT_PARTITIONS`] for a new log); another count than the stored one is
    /// refused, since a log cannot be repartitioned.
    pub fn open(dir: &Path, names: TopicNames, partitions: Option<u32>) -> LogResult<EmbeddedLog> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let mut stored = read_meta(dir)?;
        if migrate::has_sled_log(dir) {
            // With a meta file, the copy is done and only the removal was cut short.
            if stored.is_none() {
                let count = migrate::from_sled(dir, &names)?;
                write_meta(dir, count)?;
                stored = Some(count);
            }
            migrate::remove_sled_files(dir)?;
        }
        let count = match (stored, partitions) {
            (Some(s), Some(r)) if s != r => {
                return Err(LogError::PartitionCountMismatch { stored: s, requested: r, path: dir.to_owned() });
            }
            (Some(s), _) => s,
            (None, requested) => {
                let n = requested.unwrap_or(DEFAULT_PARTITIONS);
                if n == 0 {
                    return Err(LogError::Other("a log needs at least one partition".into()));
                }
                n
            }
        };
        let layout = TopicLayout { names, partitions: count };
        let stats = Arc::new(Stats::default());
        let mut partitions = HashMap::new();
        let mut signals = HashMap::new();
        let mut writers = HashMap::new();
        for topic in Topic::ALL {
            let signal = Arc::new(TopicSignal::new());
            signals.insert(topic, signal.clone());
            for p in 0..layout.partitions(topic) {
                let p = Partition(p);
                let store = if topic.is_durable_embedded() {
                    let path = dir.join(partition_file(&layout, topic, p));
                    let recovered = FilePartition::open(&path)?;
                    let partition = Arc::new(recovered.partition);
                    writers.insert((topic, p), (partition.clone(), FileWriter::new(recovered.file, recovered.len)));
                    PartitionStore::Durable(partition)
                } else {
                    PartitionStore::Memory(Arc::new(MemoryPartition::new(MEMORY_RETENTION)))
                };
                partitions.insert((topic, p), store);
            }
        }
        // Files created just now (a new log, or a topic new to this version) are in the
        // directory for good before anything is appended to them — and, for a new log,
        // before the meta file that says the log exists.
        file::sync_dir(dir)?;
        if stored.is_none() {
            write_meta(dir, count)?;
        }
        let appender = Appender::start(writers, signals.clone(), stats.clone())?;
        Ok(EmbeddedLog { layout, path: dir.to_owned(), partitions, signals, appender, stats, _lock: lock })
    }

    pub fn layout(&self) -> &TopicLayout {
        &self.layout
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn partition(&self, topic: Topic, partition: Partition) -> LogResult<&PartitionStore> {
        self.partitions.get(&(topic, partition)).ok_or(LogError::UnknownPartition { topic, partition })
    }

    pub async fn append(&self, topic: Topic, partition: Partition, records: Vec<Record>) -> LogResult<Vec<Offset>> {
        if records.is_empty() {
            self.partition(topic, partition)?;
            return Ok(Vec::new());
        }
        match self.partition(topic, partition)? {
            PartitionStore::Memory(m) => {
                let offsets = m.append(records);
                self.signals[&topic].bump();
                Ok(offsets)
            }
            PartitionStore::Durable(_) => {
                let (reply, rx) = oneshot::channel();
                self.appender.send(AppendRequest { topic, partition, records, reply })?;
                rx.await.map_err(|_| LogError::Closed)?
            }
        }
    }

    pub fn end_offset(&self, topic: Topic, partition: Partition) -> LogResult<Offset> {
        Ok(match self.partition(topic, partition)? {
            PartitionStore::Durable(d) => Offset(d.durable_end()),
            PartitionStore::Memory(m) => m.end(),
        })
    }

    pub fn start_offset(&self, topic: Topic, partition: Partition) -> LogResult<Offset> {
        Ok(match self.partition(topic, partition)? {
            PartitionStore::Durable(_) => Offset(0),
            PartitionStore::Memory(m) => m.start(),
        })
    }

    pub fn reader(&self, topic: Topic, from: &[(Partition, Offset)]) -> LogResult<Reader> {
        let mut assigned = Vec::with_capacity(from.len());
        for (p, o) in from {
            let store = match self.partition(topic, *p)? {
                PartitionStore::Durable(d) => PartitionStore::Durable(d.clone()),
                PartitionStore::Memory(m) => PartitionStore::Memory(m.clone()),
            };
            assigned.push((*p, *o, store));
        }
        Ok(Reader::new(topic, assigned, self.signals[&topic].tx.subscribe()))
    }

    /// Stops the appender after the requests already sent, and flushes.
    pub async fn close(&self) -> LogResult<()> {
        self.appender.stop().await;
        Ok(())
    }
}

/// The file of a durable partition, in the log's directory.
pub(crate) fn partition_file(layout: &TopicLayout, topic: Topic, partition: Partition) -> String {
    format!("{}-{}.log", layout.names.name(topic), partition.0)
}

/// Takes the log's lock file, or says which process has it.
fn lock_dir(dir: &Path) -> LogResult<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(LogError::Other(format!("the log in {} is in use by another process (a running node?)", dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The stored partition count, or `None` for a directory without a log of this format.
fn read_meta(dir: &Path) -> LogResult<Option<u32>> {
    let Some(text) = file::read_small(&dir.join(META_FILE))? else { return Ok(None) };
    let corrupt = || LogError::Other(format!("{} is not a log description: {text:?}", dir.join(META_FILE).display()));
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT) {
        return Err(corrupt());
    }
    let count = lines.next().and_then(|l| l.strip_prefix("partitions ")).and_then(|n| n.parse().ok());
    count.map(Some).ok_or_else(corrupt)
}

fn write_meta(dir: &Path, partitions: u32) -> LogResult<()> {
    file::write_atomically(dir, META_FILE, format!("{FORMAT}\npartitions {partitions}\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests;
