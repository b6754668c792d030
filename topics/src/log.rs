//! The `EventLog` facade: what `command` and `query` see. Only this crate knows
//! whether the log is embedded (sled) or Kafka.

use std::sync::Arc;
use std::time::Duration;

use crate::embedded::{self, EmbeddedLog};
use crate::error::LogResult;
use crate::ids::{Offset, Partition};
use crate::kafka::{self, GroupConfig, KafkaLog, Membership, MembershipEvent};
use crate::partitioner::partition_for_key;
use crate::record::{Record, StoredRecord};
use crate::topic::{Topic, TopicLayout};

#[derive(Clone)]
pub enum EventLog {
    Embedded(Arc<EmbeddedLog>),
    Kafka(Arc<KafkaLog>),
}

impl EventLog {
    pub fn embedded(log: EmbeddedLog) -> EventLog {
        EventLog::Embedded(Arc::new(log))
    }

    pub fn kafka(log: KafkaLog) -> EventLog {
        EventLog::Kafka(Arc::new(log))
    }

    /// `embedded` or `kafka`, for logs and health.
    pub fn backend(&self) -> &'static str {
        match self {
            EventLog::Embedded(_) => "embedded",
            EventLog::Kafka(_) => "kafka",
        }
    }

    pub fn layout(&self) -> &TopicLayout {
        match self {
            EventLog::Embedded(l) => l.layout(),
            EventLog::Kafka(l) => l.layout(),
        }
    }

    pub fn partitions(&self, topic: Topic) -> u32 {
        self.layout().partitions(topic)
    }

    /// The partition of `key` in `topic`: Kafka's default partitioner.
    pub fn partition_for_key(&self, topic: Topic, key: &[u8]) -> Partition {
        partition_for_key(key, self.partitions(topic))
    }

    /// Whether records of `topic` survive a restart of this node.
    pub fn is_durable(&self, topic: Topic) -> bool {
        match self {
            EventLog::Embedded(_) => topic.is_durable_embedded(),
            EventLog::Kafka(_) => true,
        }
    }

    /// Appends `records` to one partition, in order, and returns their offsets — only
    /// once they are durable. Concurrent appends share flushes (group commit).
    pub async fn append(&self, topic: Topic, partition: Partition, records: Vec<Record>) -> LogResult<Vec<Offset>> {
        match self {
            EventLog::Embedded(l) => l.append(topic, partition, records).await,
            EventLog::Kafka(l) => l.append(topic, partition, records).await,
        }
    }

    /// The next offset to be written that readers can see (the durable high-watermark).
    pub async fn end_offset(&self, topic: Topic, partition: Partition) -> LogResult<Offset> {
        match self {
            EventLog::Embedded(l) => l.end_offset(topic, partition),
            EventLog::Kafka(l) => l.end_offset(topic, partition).await,
        }
    }

    /// The earliest offset still held.
    pub async fn start_offset(&self, topic: Topic, partition: Partition) -> LogResult<Offset> {
        match self {
            EventLog::Embedded(l) => l.start_offset(topic, partition),
            EventLog::Kafka(l) => l.start_offset(topic, partition).await,
        }
    }

    /// A reader of the given partitions from the given next offsets.
    pub fn reader(&self, topic: Topic, from: &[(Partition, Offset)]) -> LogResult<LogReader> {
        match self {
            EventLog::Embedded(l) => Ok(LogReader::Embedded(l.reader(topic, from)?)),
            EventLog::Kafka(l) => Ok(LogReader::Kafka(l.reader(topic, from)?)),
        }
    }

    /// This node's share of the `commands` partitions, as it changes. Embedded: all
    /// of them, for good (one process). Kafka: as the consumer group `group` assigns
    /// them among the live command nodes.
    pub fn membership(&self, group: &GroupConfig) -> LogResult<PartitionMembership> {
        match self {
            EventLog::Embedded(l) => {
                Ok(PartitionMembership::Fixed(Some((0..l.layout().partitions).map(Partition).collect())))
            }
            EventLog::Kafka(l) => Ok(PartitionMembership::Group(l.membership(group)?)),
        }
    }

    /// Graceful shutdown: finish pending appends and flush.
    pub async fn close(&self) -> LogResult<()> {
        match self {
            EventLog::Embedded(l) => l.close().await,
            EventLog::Kafka(l) => l.close().await,
        }
    }
}

pub enum LogReader {
    Embedded(embedded::Reader),
    Kafka(kafka::Reader),
}

impl LogReader {
    /// Up to `max` records if any are available (each partition in offset order,
    /// fair across partitions); otherwise waits up to `wait` for some. May return
    /// empty. Never returns records that are not durable.
    pub async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<StoredRecord>> {
        match self {
            LogReader::Embedded(r) => r.poll(max, wait).await,
            LogReader::Kafka(r) => r.poll(max, wait).await,
        }
    }

    pub fn seek(&mut self, partition: Partition, offset: Offset) -> LogResult<()> {
        match self {
            LogReader::Embedded(r) => {
                r.seek(partition, offset);
                Ok(())
            }
            LogReader::Kafka(r) => r.seek(partition, offset),
        }
    }

    /// Stops fetching ahead while the reader is idle (Kafka); `resume` before polling.
    pub fn pause(&mut self) -> LogResult<()> {
        match self {
            LogReader::Embedded(_) => Ok(()),
            LogReader::Kafka(r) => r.pause(),
        }
    }

    pub fn resume(&mut self) -> LogResult<()> {
        match self {
            LogReader::Embedded(_) => Ok(()),
            LogReader::Kafka(r) => r.resume(),
        }
    }

    /// The next offset of each assigned partition.
    pub fn assignment(&self) -> Vec<(Partition, Offset)> {
        match self {
            LogReader::Embedded(r) => r.assignment(),
            LogReader::Kafka(r) => r.assignment(),
        }
    }
}

/// See [`EventLog::membership`].
pub enum PartitionMembership {
    Fixed(Option<Vec<Partition>>),
    Group(Membership),
}

impl PartitionMembership {
    /// The next change; `None` when there will be no more.
    pub async fn next(&mut self) -> Option<MembershipEvent> {
        match self {
            PartitionMembership::Fixed(all) => all.take().map(MembershipEvent::Assigned),
            PartitionMembership::Group(m) => m.next().await,
        }
    }

    /// Whether a partition taken over by another writer may be claimed back at once
    /// (one process owns everything) or must wait for the group to assign it again.
    pub fn reclaims_when_fenced(&self) -> bool {
        matches!(self, PartitionMembership::Fixed(_))
    }
}
