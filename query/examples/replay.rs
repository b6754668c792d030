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

use stockroom_domain::product::{Money, ProductDetails, ProductEvent, ProductEventBody, ReleaseReason};
use stockroom_domain::{CommandId, Currency, ReservationId, Sku, Timestamp};
use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, Rebuilder};
use stockroom_topics::events::{Provenance, decode_entry, encode_product_event, envelope_of};
use stockroom_topics::replay::{RebuildRequested, RebuildState, ReplayMessage};
use stockroom_topics::{
    EmbeddedLog, EventLog, Offset, Partition, Position, Record, Topic, TopicNames, Writer, fence_record,
};
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 8;
const WORDS: &[&str] = &[
    "steel", "kettle", "enamel", "mug", "lamp", "reading", "oak", "chair", "linen", "towel", "cast", "iron", "pan",
    "ceramic", "bowl", "wool", "blanket", "glass", "jar", "copper", "pot", "bamboo", "board", "cotton", "apron",
    "walnut", "shelf", "brass", "hook", "stone", "mortar", "pestle", "silk", "pillow", "clay", "vase",
];
const BRANDS: &[&str] = &["Hearth", "Nordic Home", "Acme", "Fjord", "Maison", "Atlas", "Kiln & Co", "Brightside"];
const CATEGORIES: &[&str] = &["kitchen", "lighting", "furniture", "bath", "textiles", "garden", "storage", "decor"];

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| WORDS[self.below(WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The events of one product: registration, then a life of stock movements.
fn product_events(rng: &mut Rng, i: u64, count: u64) -> Vec<ProductEvent> {
    let sku = Sku::parse(format!("SKU-{i:07}")).expect("sku");
    let details = ProductDetails {
        name: format!("{} {}", rng.words(2), i),
        description: Some(rng.words(12)),
        brand: Some(BRANDS[rng.below(BRANDS.len() as u64) as usize].to_owned()),
        category: Some(CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize].to_owned()),
        gtin: None,
        price: Money { cents: 100 + rng.below(20_000) as i64, currency: Currency::parse("EUR").expect("currency") },
        attributes: Default::default(),
    };
    let mut events = Vec::with_capacity(count as usize);
    let mut body = ProductEventBody::ProductRegistered { details: details.clone(), initial_stock: 50 };
    let mut open: Option<ReservationId> = None;
    for v in 1..=count {
        let at = Timestamp(1_790_000_000_000 + (i * 10 + v) as i64);
        events.push(ProductEvent {
            sku: sku.clone(),
            version: v,
            command_id: CommandId::parse(format!("bench-{i}-{v}")).expect("command id"),
            at,
            body: body.clone(),
        });
        body = match (v % 5, open.take()) {
            (0, _) => {
                let mut d = details.clone();
                d.price.cents += 1;
                ProductEventBody::DetailsUpdated {
                    details: d,
                    changed: vec![stockroom_domain::product::DetailField::Price],
                }
            }
            (1 | 3, None) => {
                let id = ReservationId::parse(format!("r-{v}")).expect("reservation id");
                open = Some(id.clone());
                ProductEventBody::StockReserved { reservation_id: id, quantity: 1, expires_at: None, order_id: None }
            }
            (_, Some(id)) if v % 2 == 0 => ProductEventBody::ReservationConfirmed { reservation_id: id, quantity: 1 },
            (_, Some(id)) => ProductEventBody::ReservationReleased {
                reservation_id: id,
                quantity: 1,
                reason: ReleaseReason::Released,
            },
            _ => ProductEventBody::StockReceived { quantity: 5, reference: Some(format!("PO-{v}")) },
        };
    }
    events
}

async fn write_log(log: &EventLog, events: u64) -> u64 {
    let per_product = 10;
    let products = events.div_ceil(per_product);
    let writer = Writer { epoch: 1, owner: "bench".into() };
    let mut batches: Vec<Vec<Record>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    for p in 0..PARTITIONS {
        log.append(Topic::Events, Partition(p), vec![fence_record(Partition(p), &writer, 0)]).await.expect("fence");
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut written = 0;
    for i in 0..products {
        let count = per_product.min(events - written);
        let evs = product_events(&mut rng, i, count);
        let p = log.partition_for_key(Topic::Events, evs[0].sku.as_str().as_bytes());
        for (k, e) in evs.iter().enumerate() {
            let record = encode_product_event(e, k, &writer, "/bench", &Provenance::default()).expect("encode");
            batches[p.0 as usize].push(record);
        }
        written += count;
        if batches[p.0 as usize].len() >= 5_000 {
            log.append(Topic::Events, p, std::mem::take(&mut batches[p.0 as usize])).await.expect("append");
        }
    }
    for (p, batch) in batches.into_iter().enumerate() {
        log.append(Topic::Events, Partition(p as u32), batch).await.expect("append");
    }
    products
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
    let products = write_log(&log, events).await;
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
