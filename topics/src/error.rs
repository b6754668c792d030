use std::path::PathBuf;

use crate::ids::{Offset, Partition};
use crate::topic::Topic;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log is closed")]
    Closed,
    #[error("{topic:?} has no partition {partition}")]
    UnknownPartition { topic: Topic, partition: Partition },
    #[error(
        "the log at {path} has {stored} partitions but {requested} were asked for; a log cannot be repartitioned \
         (omit --partitions to use the existing count)"
    )]
    PartitionCountMismatch { stored: u32, requested: u32, path: PathBuf },
    #[error("record {topic:?}/{partition}@{offset} is corrupt: {reason}")]
    Corrupt { topic: Topic, partition: Partition, offset: Offset, reason: String },
    #[error("timed out waiting for the log")]
    Timeout,
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("{0}")]
    Other(String),
}

impl LogError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::Timeout | LogError::Kafka(_) | LogError::Io(_))
    }
}
