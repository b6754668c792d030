//! A reader of explicitly assigned partitions, from offsets the caller keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers as _;
use tokio::time::Instant;
use tracing::debug;

use super::{KafkaConfig, kafka};
use crate::error::LogResult;
use crate::ids::{Offset, Partition};
use crate::record::{Headers, Record, StoredRecord};

pub struct Reader {
    consumer: StreamConsumer,
    topic: String,
    /// The next offset to hand out, per partition. Records below it (redelivered
    /// after a seek or a reconnect) are dropped, so each offset is returned once.
    next: BTreeMap<Partition, Offset>,
    paused: bool,
    /// A seek made while paused: assign from `next` when reading resumes.
    reassign: bool,
}

impl Reader {
    pub(super) fn new(config: &KafkaConfig, topic: &str, from: &[(Partition, Offset)]) -> LogResult<Reader> {
        let consumer: StreamConsumer = config.assigned_consumer("reader").create().map_err(kafka)?;
        let mut reader = Reader {
            consumer,
            topic: topic.to_owned(),
            next: from.iter().copied().collect(),
            paused: false,
            reassign: false,
        };
        reader.assign()?;
        Ok(reader)
    }

    fn assign(&mut self) -> LogResult<()> {
        self.paused = false;
        self.reassign = false;
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.next {
            tpl.add_partition_offset(&self.topic, p.0 as i32, rdkafka::Offset::Offset(o.0 as i64)).map_err(kafka)?;
        }
        self.consumer.assign(&tpl).map_err(kafka)
    }

    pub async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<StoredRecord>> {
        if self.reassign {
            self.assign()?;
        }
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            // The first record may be waited for; the rest only if already here.
            let received = if out.is_empty() {
                tokio::time::timeout_at(deadline, self.consumer.recv()).await
            } else {
                tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await
            };
            let message = match received {
                Err(_) => break,
                Ok(Ok(m)) => m,
                Ok(Err(e)) if is_transient(&e) => {
                    // librdkafka reconnects and retries by itself.
                    debug!(topic = %self.topic, error = %e, "transient consumer error");
                    if !out.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
                Ok(Err(e)) => return Err(kafka(e)),
            };
            let partition = Partition(message.partition() as u32);
            let offset = Offset(message.offset() as u64);
            let Some(next) = self.next.get_mut(&partition) else { continue };
            if offset < *next {
                continue;
            }
            *next = Offset(offset.0 + 1);
            let headers = message
                .headers()
                .map(|h| {
                    h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect::<Headers>()
                })
                .unwrap_or_default();
            let record = Record {
                key: message.key().map(<[u8]>::to_vec),
                headers,
                payload: message.payload().unwrap_or_default().to_vec(),
                timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
            };
            out.push(StoredRecord { partition, offset, record });
        }
        Ok(out)
    }

    /// Reads `partition` from `offset` next. While paused, the new assignment waits
    /// for [`Reader::resume`] (a paused reader that is moved on costs nothing).
    pub fn seek(&mut self, partition: Partition, offset: Offset) -> LogResult<()> {
        self.next.insert(partition, offset);
        if self.paused {
            self.reassign = true;
            Ok(())
        } else {
            self.assign()
        }
    }

    /// Stops fetching until [`Reader::resume`]: an idle reader then costs the broker
    /// nothing (on brokers that answer fetches only at their max wait, idle readers
    /// are most of the load).
    pub fn pause(&mut self) -> LogResult<()> {
        if !self.paused {
            self.consumer.pause(&self.partitions()?).map_err(kafka)?;
            self.paused = true;
        }
        Ok(())
    }

    pub fn resume(&mut self) -> LogResult<()> {
        if self.reassign {
            return self.assign();
        }
        if self.paused {
            self.consumer.resume(&self.partitions()?).map_err(kafka)?;
            self.paused = false;
        }
        Ok(())
    }

    fn partitions(&self) -> LogResult<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for p in self.next.keys() {
            tpl.add_partition(&self.topic, p.0 as i32);
        }
        Ok(tpl)
    }

    pub fn assignment(&self) -> Vec<(Partition, Offset)> {
        self.next.iter().map(|(p, o)| (*p, *o)).collect()
    }
}

/// Errors after which the consumer goes on by itself (broker down, leader moving).
fn is_transient(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::UnknownTopicOrPartition
                | C::RequestTimedOut
                | C::NetworkException
                | C::OperationTimedOut
                | C::PartitionEOF
        ),
        None => false,
    }
}
