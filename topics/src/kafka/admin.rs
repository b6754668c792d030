//! `stockroom topics create`: the topics of DESIGN.md, with their settings.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, kafka, layout_of, partition_counts};
use crate::error::{LogError, LogResult};
use crate::topic::{Topic, TopicLayout};

#[derive(Clone, Debug)]
pub struct TopicSettings {
    /// Partitions of `commands`, `events`, `results` and `dlq`; `replay` has one.
    pub partitions: u32,
    /// 1 for a local broker; 3 in production (with `min.insync.replicas=2`).
    pub replication: Option<i32>,
    /// Extra topic configs applied to every topic (e.g. `min.insync.replicas=2`).
    pub extra: Vec<(String, String)>,
}

/// `retention.ms` that never expires anything (Kafka's documented value).
const FOREVER: &str = "-1";

/// The configs of each topic. Anything not listed is the broker's default.
fn configs(topic: Topic) -> &'static [(&'static str, &'static str)] {
    match topic {
        // The source of truth: kept forever, never compacted (compaction would drop
        // history that rebuilds need).
        Topic::Events => &[("cleanup.policy", "delete"), ("retention.ms", FOREVER), ("retention.bytes", "-1")],
        // Kept forever too: a rebuild request must not vanish before every node saw it.
        Topic::Replay => &[("cleanup.policy", "delete"), ("retention.ms", FOREVER), ("retention.bytes", "-1")],
        // Raw feed rows: kept forever, so ingestion can be re-run over all of them.
        Topic::Sources => &[("cleanup.policy", "delete"), ("retention.ms", FOREVER), ("retention.bytes", "-1")],
        // Dead letters wait for a person: 30 days.
        Topic::Dlq => &[("cleanup.policy", "delete"), ("retention.ms", "2592000000")],
        // Commands are only needed until processed; 7 days covers a long outage.
        Topic::Commands => &[("cleanup.policy", "delete"), ("retention.ms", "604800000")],
        // Outcomes matter while a request waits: 1 hour.
        Topic::Results => &[("cleanup.policy", "delete"), ("retention.ms", "3600000")],
    }
}

/// Whether every partition of every Stockroom topic has a leader.
fn all_led(consumer: &BaseConsumer, names: &crate::topic::TopicNames) -> LogResult<bool> {
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).map_err(kafka)?;
    let ours: Vec<String> = Topic::ALL.iter().map(|&t| names.name(t)).collect();
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| ours.iter().any(|n| n == t.name()))
        .all(|t| t.error().is_none() && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())))
}

/// Creates every missing topic; checks the existing ones are co-partitioned.
/// Returns the layout, and the names of the topics it created.
pub async fn create_topics(config: &KafkaConfig, settings: &TopicSettings) -> LogResult<(TopicLayout, Vec<String>)> {
    if settings.partitions == 0 {
        return Err(LogError::Other("--partitions must be at least 1".into()));
    }
    let admin: AdminClient<DefaultClientContext> = config.client("admin").create().map_err(kafka)?;
    let names = config.names.clone();
    let meta: BaseConsumer = config.assigned_consumer("admin-meta").create().map_err(kafka)?;
    let counts = {
        let names = names.clone();
        tokio::task::spawn_blocking(move || partition_counts(&meta, &names))
            .await
            .map_err(|e| LogError::Other(e.to_string()))??
    };
    let missing: Vec<Topic> = counts.iter().filter(|(_, c)| c.is_none()).map(|(t, _)| *t).collect();
    let existing_events = counts.iter().find(|(t, _)| *t == Topic::Events).and_then(|(_, c)| *c);
    let partitions = existing_events.unwrap_or(settings.partitions);
    let topic_names: Vec<String> = missing.iter().map(|t| names.name(*t)).collect();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .zip(&topic_names)
        .map(|(&t, name)| {
            let count = if t == Topic::Replay { 1 } else { partitions as i32 };
            let mut nt = NewTopic::new(name, count, TopicReplication::Fixed(settings.replication.unwrap_or(-1)));
            for (k, v) in configs(t) {
                nt = nt.set(k, v);
            }
            for (k, v) in &settings.extra {
                nt = nt.set(k, v);
            }
            nt
        })
        .collect();
    if !new_topics.is_empty() {
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin.create_topics(&new_topics, &options).await.map_err(kafka)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(LogError::Other(format!("creating {name}: {code}"))),
            }
        }
    }
    // Read back what is there now, and check it the way every node does.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let meta: BaseConsumer = config.assigned_consumer("admin-meta").create().map_err(kafka)?;
        let names2 = names.clone();
        let (counts, led) = tokio::task::spawn_blocking(move || {
            Ok::<_, LogError>((partition_counts(&meta, &names2)?, all_led(&meta, &names2)?))
        })
        .await
        .map_err(|e| LogError::Other(e.to_string()))??;
        match layout_of(&names, &counts) {
            // Done once every partition has a leader: a node started right after
            // must not find a partition it cannot read or write yet.
            Ok(layout) if led => return Ok((layout, topic_names)),
            Ok(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => return Err(LogError::Other("the new topics' partitions got no leader within 30 s".into())),
            // New topics take a moment to appear in the metadata.
            Err(_) if counts.iter().any(|(_, c)| c.is_none()) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
