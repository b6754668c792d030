//! Stockroom's event log: topics, the record envelope, Kafka's partitioner, the
//! writer-fencing rules, and the `EventLog` with its backends.
//!
//! Architecture invariant: only this crate knows whether the log is embedded (sled)
//! or Kafka. `command` and `query` see one [`EventLog`].

pub mod backoff;
pub mod dlq;
pub mod embedded;
pub mod envelope;
pub mod error;
pub mod events;
pub mod fence;
pub mod ids;
pub mod kafka;
mod log;
pub mod partitioner;
pub mod record;
pub mod replay;
pub mod time;
pub mod topic;
pub mod upcast;

pub use backoff::Backoff;
pub use embedded::EmbeddedLog;
pub use envelope::Envelope;
pub use error::{LogError, LogResult};
pub use fence::{Admission, FENCE_EVENT_TYPE, FenceTracker, Writer, fence_record};
pub use ids::{MIN_POSITION_HEADER, Offset, POSITION_HEADER, Partition, Position, PositionParseError};
pub use kafka::{GroupConfig, KafkaConfig, KafkaLog, MembershipEvent, TopicSettings};
pub use log::{EventLog, LogReader, PartitionMembership};
pub use record::{DumpedRecord, Headers, Record, StoredRecord};
pub use topic::{Topic, TopicLayout, TopicNames};
