//! Replay benchmark: how fast the catalog is built from a log, next to how fast the
//! same log can merely be read.
//!
//! Writes an embedded log of `--events` product events (a realistic catalog: each
//! product registered with text, then received, reserved, confirmed or released and
//! updated) into a temporary directory, then measures, on that log:
//!
//! 1. raw read: every record of `events` read back, nothing decoded;
//! 2. read + decode: every record's envelope and event decoded (the upcaster included);
//! 3. initial build: the live projector building an empty catalog from offset 0;
//! 4. rebuild on request: a request on `replay`, the rebuilder reading everything
//!    into a fresh index and swapping it in (the node's real code path).
//!
//! Prints one line per measure and, last, a JSON object with the numbers.
//!
//! `cargo run --release -p stockroom-query --example replay -- --events 1000000`

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, Rebuilder};
use stockroom_topics::events::{decode_entry, envelope_of};
use stockroom_topics::replay::{RebuildRequested, RebuildState, ReplayMessage};
use stockroom_topics::{EmbeddedLog, EventLog, Offset, Partition, Position, Topic, TopicNames};
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 8;
#[path = "common/synthetic.rs"]
mod synthetic;

use synthetic::write_log;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn all_from_zero() -> Vec<(Partition, Offset)> {
    (0..PARTITIONS).map(|p| (Partition(p), Offset(0))).collect()
}

async fn total_records(log: &EventLog) -> u64 {
    let mut n = 0;
    for p in 0..PARTITIONS {
        n += log.end_offset(Topic::Events, Partition(p)).await.expect("end").0;
    }
    n
}

/// Reads the whole log; with `decode`, decodes every record too. Returns records read.
async fn read_all(log: &EventLog, total: u64, decode: bool) -> u64 {
    let mut reader = log.reader(Topic::Events, &all_from_zero()).expect("reader");
    let mut n = 0;
    while n < total {
        let batch = reader.poll(50_000, Duration::from_millis(100)).await.expect("poll");
        if decode {
            for r in &batch {
                let env = envelope_of(r).expect("envelope");
                std::hint::black_box(decode_entry(&env, r).expect("event"));
            }
        }
        n += batch.len() as u64;
    }
    n
}

fn line(what: &str, events: u64, secs: f64) -> f64 {
    let rate = events as f64 / secs;
    println!("{what:<34} {events:>9} events in {secs:>7.2} s = {rate:>10.0} events/s");
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = arg("--events", 1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EventLog::embedded(
        EmbeddedLog::open(&dir.path().join("log"), TopicNames::new("bench"), Some(PARTITIONS)).expect("open log"),
    );
    let t = Instant::now();
    let products = write_log(&log, PARTITIONS, events, 10).await;
    let total = total_records(&log).await;
    println!("wrote {total} records ({products} products) in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let n = read_all(&log, total, false).await;
    let raw = line("raw read (no decoding)", n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let n = read_all(&log, total, true).await;
    let decoded = line("read + decode", n, t.elapsed().as_secs_f64());

    // The node's own parts: a slot, the live projector, the rebuilder.
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).expect("node dir");
    let slot = Arc::new(CatalogSlot::open(&data).expect("catalog"));
    let (orders, fresh) = OrderBook::open(&data.join("orders")).expect("orders");
    let (projector, mut applied) =
        CatalogProjector::new(log.clone(), slot.clone(), Arc::new(orders), fresh).expect("projector");
    let rebuilder = Rebuilder::new(log.clone(), slot.clone(), projector.swapper(), "bench");
    let status = rebuilder.status();
    let cancel = CancellationToken::new();
    let t = Instant::now();
    let head: Position = {
        let mut p = Position::default();
        for i in 0..PARTITIONS {
            p.set(Partition(i), log.end_offset(Topic::Events, Partition(i)).await.expect("end"));
        }
        p
    };
    let projecting = tokio::spawn(projector.run(cancel.clone()));
    applied.wait_for(|p| p.covers(&head)).await.expect("projector");
    let initial = line("initial build (live projector)", total, t.elapsed().as_secs_f64());
    assert_eq!(slot.current().num_docs(), products, "every product is in the catalog");

    let rebuilding = tokio::spawn(rebuilder.run(cancel.clone()));
    let t = Instant::now();
    let request = ReplayMessage::Requested(RebuildRequested { view: "catalog".into(), by: "bench".into(), at_ms: 0 });
    log.append(Topic::Replay, Partition(0), vec![request.encode("/bench")]).await.expect("request");
    while status.completed.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebuild = line("rebuild on request (and swap)", total, t.elapsed().as_secs_f64());
    let report = status.latest().expect("a rebuild report");
    assert_eq!(report.state, RebuildState::Done);
    assert_eq!(slot.current().num_docs(), products, "the rebuilt catalog has every product");
    cancel.cancel();
    let _ = tokio::join!(projecting, rebuilding);
    log.close().await.expect("close");
    println!(
        "{{\"events\": {total}, \"products\": {products}, \"raw_read_per_s\": {raw:.0}, \"decode_per_s\": {decoded:.0}, \
         \"initial_build_per_s\": {initial:.0}, \"rebuild_per_s\": {rebuild:.0}}}"
    );
}
