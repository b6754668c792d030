//! Prints the low and high watermark of each partition of a deployment's topics.
//!
//! `cargo run -p stockroom-topics --example kafka_offsets -- 127.0.0.1:9092 stockroom`

use stockroom_topics::kafka::{KafkaConfig, KafkaLog};
use stockroom_topics::{EventLog, Partition, Topic, TopicNames};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let prefix = args.next().unwrap_or_else(|| "stockroom".into());
    let log = EventLog::kafka(KafkaLog::connect(KafkaConfig::new(bootstrap, TopicNames::new(&prefix))).await?);
    for topic in Topic::ALL {
        let mut parts = Vec::new();
        for p in 0..log.partitions(topic) {
            let p = Partition(p);
            parts.push(format!(
                "{}:{}..{}",
                p.0,
                log.start_offset(topic, p).await?.0,
                log.end_offset(topic, p).await?.0
            ));
        }
        println!("{prefix}.{} {}", topic.suffix(), parts.join(" "));
    }
    Ok(())
}
