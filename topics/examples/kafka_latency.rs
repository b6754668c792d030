//! Append-to-read latency through a Kafka-API broker: append one record, time until
//! a reader of the partition has it. `-- [BOOTSTRAP] [PROPERTIES_FILE]`.

use std::time::{Duration, Instant};

use stockroom_topics::kafka::{KafkaConfig, KafkaLog, TopicSettings, create_topics};
use stockroom_topics::{EventLog, Headers, Partition, Record, Topic, TopicNames};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = KafkaConfig::new(
        args.first().cloned().unwrap_or_else(|| "127.0.0.1:9092".into()),
        TopicNames::new(format!("latency-{}", std::process::id())),
    );
    if let Some(path) = args.get(1) {
        config = config.with_properties_file(std::path::Path::new(path))?;
    }
    create_topics(&config, &TopicSettings { partitions: 1, replication: None, extra: vec![] }).await?;
    let log = EventLog::kafka(KafkaLog::connect(config).await?);
    let p = Partition(0);
    let mut reader = log.reader(Topic::Events, &[(p, log.end_offset(Topic::Events, p).await?)])?;
    let mut samples = Vec::new();
    for _ in 0..30 {
        let record = Record { key: None, headers: Headers::new(), payload: b"x".to_vec(), timestamp_ms: 0 };
        let start = Instant::now();
        log.append(Topic::Events, p, vec![record]).await?;
        let appended = start.elapsed();
        while reader.poll(10, Duration::from_secs(5)).await?.is_empty() {}
        samples.push((appended, start.elapsed()));
    }
    samples.sort_by_key(|s| s.1);
    let (a, r) = samples[samples.len() / 2];
    println!(
        "kafka.append_ms_p50={:.2} kafka.append_to_read_ms_p50={:.2}",
        a.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3
    );
    Ok(())
}
