//! Raw produce rate to a Kafka-API broker through rdkafka (our `KafkaLog::append`, a
//! thin layer over `FutureProducer::send_result`), to compare with Stockroom's
//! commands per second on the same broker.
//!
//! ```text
//! cargo run --release -p stockroom-topics --example kafka_produce_bench -- \
//!     [BOOTSTRAP] [RECORDS] [CONCURRENCY] [BATCH] [PROPERTIES_FILE]
//! ```
//! Creates its own topics (prefix `bench-<pid>`), appends RECORDS records of ~300
//! bytes to one partition of `events` from CONCURRENCY tasks, BATCH records per
//! append, and prints `metric=value` lines.

use std::time::Instant;

use stockroom_topics::kafka::{KafkaConfig, KafkaLog, TopicSettings, create_topics};
use stockroom_topics::{EventLog, Headers, Partition, Record, Topic, TopicNames};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args.first().cloned().unwrap_or_else(|| "127.0.0.1:9092".into());
    let records: usize = args.get(1).map_or(Ok(20_000), |s| s.parse())?;
    let concurrency: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let mut config = KafkaConfig::new(bootstrap, TopicNames::new(format!("bench-{}", std::process::id())));
    let label = match args.get(4) {
        Some(path) => {
            config = config.with_properties_file(std::path::Path::new(path))?;
            "props"
        }
        None => "idempotent",
    };
    create_topics(&config, &TopicSettings { partitions: 1, replication: 1, extra: vec![] }).await?;
    let log = EventLog::kafka(KafkaLog::connect(config).await?);
    let payload = vec![b'x'; 300];
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per_task = records / concurrency / batch;
    for _ in 0..concurrency {
        let (log, payload) = (log.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let mut headers = Headers::new();
                headers.push("ce_type", "bench");
                let batch_records = (0..batch)
                    .map(|_| Record {
                        key: Some(b"k".to_vec()),
                        headers: headers.clone(),
                        payload: payload.clone(),
                        timestamp_ms: 0,
                    })
                    .collect();
                log.append(Topic::Events, Partition(0), batch_records).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sent = per_task * concurrency * batch;
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    println!("kafka.produce.{label}.c{concurrency}.b{batch}.records_per_s={rate:.0}");
    Ok(())
}
