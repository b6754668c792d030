//! Dead letters: records that cannot be decoded or processed for a reason other than
//! a business rule. They are copied to the `dlq` topic, unchanged (key, headers,
//! payload), with the reason and their origin added as headers, and the partition
//! they came from keeps flowing. Nothing is lost: the original stays where it was.

use crate::ids::{Offset, Partition};
use crate::record::{Record, StoredRecord};
use crate::topic::Topic;

pub const REASON_HEADER: &str = "dlq-reason";
pub const ORIGIN_TOPIC_HEADER: &str = "dlq-origin-topic";
pub const ORIGIN_PARTITION_HEADER: &str = "dlq-origin-partition";
pub const ORIGIN_OFFSET_HEADER: &str = "dlq-origin-offset";
pub const REPORTER_HEADER: &str = "dlq-reporter";

/// The dead letter for `original`, read from `topic`. `reporter` names who gave up
/// on it (several readers may report the same record; origin topic, partition and
/// offset identify it).
pub fn dead_letter(topic: Topic, original: &StoredRecord, reason: &str, reporter: &str, time_ms: i64) -> Record {
    let mut record = original.record.clone();
    record.headers.push(REASON_HEADER, reason.as_bytes().to_vec());
    record.headers.push(ORIGIN_TOPIC_HEADER, topic.suffix().as_bytes().to_vec());
    record.headers.push(ORIGIN_PARTITION_HEADER, original.partition.0.to_string().into_bytes());
    record.headers.push(ORIGIN_OFFSET_HEADER, original.offset.0.to_string().into_bytes());
    record.headers.push(REPORTER_HEADER, reporter.as_bytes().to_vec());
    record.timestamp_ms = time_ms;
    record
}

/// Where a dead letter came from, read back from its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterOrigin {
    pub topic: String,
    pub partition: Partition,
    pub offset: Offset,
    pub reason: String,
}

pub fn origin_of(record: &Record) -> Option<DeadLetterOrigin> {
    let h = &record.headers;
    Some(DeadLetterOrigin {
        topic: h.get_str(ORIGIN_TOPIC_HEADER)?.to_owned(),
        partition: Partition(h.get_str(ORIGIN_PARTITION_HEADER)?.parse().ok()?),
        offset: Offset(h.get_str(ORIGIN_OFFSET_HEADER)?.parse().ok()?),
        reason: h.get_str(REASON_HEADER)?.to_owned(),
    })
}
