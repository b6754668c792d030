//! Search benchmark, in process: builds a catalog of N products the way a node does
//! (an embedded log of registrations, folded by the node's own projector into its
//! catalog directory), then runs a fixed set of queries on the tantivy index in
//! this process — the search without HTTP, for scripts/bench.sh to put next to the
//! same queries over HTTP and on PostgreSQL.
//!
//! ```text
//! cargo run --release -p stockroom-query --example search_bench -- --products 100000 --dir DIR [--queries 2000]
//! ```
//!
//! Leaves in DIR: `log/` and the catalog (a `stockroom serve --data-dir DIR` serves
//! them at once), `products.tsv` (the same products, for PostgreSQL's COPY) and
//! `queries.txt` (the queries, one per line). Prints one JSON line.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stockroom_domain::product::ProductEventBody;
use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, SearchRequest};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, Position, Topic, TopicNames};
use tokio_util::sync::CancellationToken;

#[path = "common/synthetic.rs"]
mod synthetic;

use synthetic::{Rng, product_events, write_log};

const PARTITIONS: u32 = 8;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The queries, as shoppers type them: a product noun, a word of the catalog, or a word
/// and a noun (words are ANDed, as on PostgreSQL with `websearch_to_tsquery`). Words
/// are drawn with the catalog's own skew, so common words are asked for most.
fn queries(n: usize) -> Vec<String> {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    (0..n)
        .map(|i| match i % 3 {
            0 => rng.noun().to_owned(),
            1 => rng.word(),
            _ => format!("{} {}", rng.word(), rng.noun()),
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let products: u64 = arg("--products").and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let count: usize = arg("--queries").and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let dir = std::path::PathBuf::from(arg("--dir").expect("--dir DIR"));
    std::fs::create_dir_all(&dir).expect("dir");

    // The log: one registration per product.
    let t = Instant::now();
    let log = EventLog::embedded(
        EmbeddedLog::open(&dir.join("log"), TopicNames::new("stockroom"), Some(PARTITIONS)).expect("open log"),
    );
    write_log(&log, PARTITIONS, products, 1).await;
    eprintln!("wrote {products} registrations in {:.1} s", t.elapsed().as_secs_f64());

    // The same products for PostgreSQL (tab-separated, COPY's text format).
    let mut tsv = std::io::BufWriter::new(std::fs::File::create(dir.join("products.tsv")).expect("tsv"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..products {
        let e = product_events(&mut rng, i, 1).remove(0);
        let ProductEventBody::ProductRegistered { details: d, initial_stock, .. } = &e.body else { unreachable!() };
        let clean = |s: &str| s.replace(['\t', '\n', '\\'], " ");
        writeln!(
            tsv,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.sku.as_str(),
            clean(&d.name),
            clean(d.description.as_deref().unwrap_or("")),
            clean(d.brand.as_deref().unwrap_or("")),
            clean(d.category.as_deref().unwrap_or("")),
            d.price.cents,
            initial_stock
        )
        .expect("write tsv");
    }
    tsv.flush().expect("flush tsv");
    let queries = queries(count);
    std::fs::write(dir.join("queries.txt"), queries.join("\n") + "\n").expect("queries");

    // The catalog, built by the node's projector.
    let t = Instant::now();
    let slot = Arc::new(CatalogSlot::open(&dir).expect("catalog"));
    let (orders, fresh) = OrderBook::open(&dir.join("orders")).expect("orders");
    let (projector, mut applied) =
        CatalogProjector::new(log.clone(), slot.clone(), Arc::new(orders), fresh).expect("projector");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(projector.run(cancel.clone()));
    let mut head = Position::default();
    for p in 0..PARTITIONS {
        head.set(Partition(p), log.end_offset(Topic::Events, Partition(p)).await.expect("end"));
    }
    applied.wait_for(|p| p.covers(&head)).await.expect("projector");
    cancel.cancel();
    running.await.expect("projector task");
    let catalog = slot.current();
    assert_eq!(catalog.num_docs(), products, "every product is indexed");
    eprintln!("indexed {products} products in {:.1} s", t.elapsed().as_secs_f64());

    // The queries, in process, one at a time, twice (the first pass warms the cache).
    let mut latencies = Vec::with_capacity(queries.len());
    for pass in 0..2 {
        latencies.clear();
        for q in &queries {
            let request = SearchRequest { q: Some(q.clone()), limit: 20, ..SearchRequest::default() };
            let t = Instant::now();
            let answer = catalog.search_uncached(&request).expect("search");
            latencies.push(t.elapsed());
            std::hint::black_box(answer);
        }
        if pass == 0 {
            continue;
        }
    }
    let total: Duration = latencies.iter().sum();
    latencies.sort();
    drop(catalog);
    log.close().await.expect("close log");
    println!(
        "{{\"products\": {products}, \"queries\": {}, \"inprocess_qps\": {:.0}, \"inprocess_p50_ms\": {:.3}, \
         \"inprocess_p99_ms\": {:.3}}}",
        latencies.len(),
        latencies.len() as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}
