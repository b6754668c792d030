use std::path::PathBuf;

use crate::ids::{Offset, Partition};
use crate::topic::Topic;

/// What every operation on the log returns.
pub type LogResult<T> = Result<T, LogError>;

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
    /// rdkafka's own error, kept whole: its code says whether trying again may help.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Other(String),
}

impl LogError {
    /// Whether trying again later may succeed: timeouts, I/O, and Kafka errors that
    /// are not fatal (a broker down, a leader moving), but not a refused
    /// authorisation, a record too large, or a fenced or fatal producer.
    pub fn is_retryable(&self) -> bool {
        match self {
            LogError::Timeout | LogError::Io(_) => true,
            LogError::Kafka(e) => kafka_retryable(e),
            _ => false,
        }
    }
}

fn kafka_retryable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError as K;
    use rdkafka::types::RDKafkaErrorCode as C;
    match e {
        K::Canceled | K::ClientConfig(..) | K::ClientCreation(_) | K::NoMessageReceived => false,
        K::Transaction(t) => t.is_retriable(),
        _ => !matches!(
            e.rdkafka_error_code(),
            Some(
                C::Fatal
                    | C::MessageSizeTooLarge
                    | C::InvalidMessageSize
                    | C::TopicAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::TransactionalIdAuthorizationFailed
                    | C::SaslAuthenticationFailed
                    | C::Authentication
                    | C::UnknownTopic
                    | C::UnknownTopicOrPartition
                    | C::InvalidConfig
                    | C::ProducerFenced
                    | C::InvalidProducerEpoch
                    | C::FencedInstanceId
                    | C::UnsupportedVersion
            )
        ),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as C;

    use super::LogError;

    #[test]
    fn kafka_errors_keep_their_code_and_say_whether_to_retry() {
        let down = LogError::from(KafkaError::MessageProduction(C::AllBrokersDown));
        assert!(down.is_retryable(), "{down}");
        let timeout = LogError::from(KafkaError::MessageProduction(C::MessageTimedOut));
        assert!(timeout.is_retryable());
        let large = LogError::from(KafkaError::MessageProduction(C::MessageSizeTooLarge));
        assert!(!large.is_retryable(), "{large}");
        let denied = LogError::from(KafkaError::MetadataFetch(C::TopicAuthorizationFailed));
        assert!(!denied.is_retryable());
        let LogError::Kafka(e) = large else { panic!("kept as rdkafka's error") };
        assert_eq!(e.rdkafka_error_code(), Some(C::MessageSizeTooLarge));
        assert!(!LogError::Other("x".into()).is_retryable());
    }
}
