//! Embedded log append throughput: records/s for batch sizes and concurrent appenders.
//!
//! `cargo run --release -p stockroom-topics --example append_bench` prints a table;
//! `... -- --appenders 32 --batch 1 --seconds 5` measures one configuration and prints
//! it as one JSON line (scripts/bench.sh: the raw append rate next to Stockroom's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stockroom_topics::{EmbeddedLog, Partition, Record, Topic, TopicNames};

fn record(i: u64) -> Record {
    // About the size of a product event with its envelope.
    Record {
        key: Some(format!("SKU-{i}").into_bytes()),
        headers: Default::default(),
        payload: vec![b'x'; 300],
        timestamp_ms: 0,
    }
}

async fn run(appenders: u32, batch: u64, duration: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(EmbeddedLog::open(dir.path(), TopicNames::default(), Some(8)).expect("open log"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < duration {
                let records = (0..batch).map(|i| record(n + i)).collect();
                log.append(Topic::Events, Partition(a % 8), records).await.expect("append");
                n += batch;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let flushes = log.stats().flushes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "appenders {appenders:>3}  batch {batch:>5}  {rate:>12.0} records/s  ({flushes} flushes, {:.1} records/flush)",
        total as f64 / flushes.max(1) as f64
    );
    // Opening checks every frame of every file: what a restart costs for this log.
    log.close().await.expect("close");
    drop(log);
    let bytes: u64 =
        std::fs::read_dir(dir.path()).expect("log dir").filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    let opened = Instant::now();
    let reopened = EmbeddedLog::open(dir.path(), TopicNames::default(), None).expect("reopen log");
    println!("  reopened {total} records ({:.0} MB) in {:.2} s", bytes as f64 / 1e6, opened.elapsed().as_secs_f64());
    drop(reopened);
    rate
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse::<u64>().ok());
    if let (Some(appenders), Some(batch)) = (arg("--appenders"), arg("--batch")) {
        let seconds = arg("--seconds").unwrap_or(5);
        let rate = run(appenders as u32, batch, Duration::from_secs(seconds)).await;
        println!("{{\"appenders\": {appenders}, \"batch\": {batch}, \"records_per_s\": {rate:.0}}}");
        return;
    }
    let d = Duration::from_secs(2);
    for batch in [1, 16, 128, 1024] {
        run(1, batch, d).await;
    }
    for appenders in [8, 64] {
        run(appenders, 1, d).await;
    }
}
