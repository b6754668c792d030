//! A simple HTTP load loop: commands per second through the write API, and the time
//! from an accepted write to it being searchable.
//!
//! ```text
//! cargo build --release --bin stockroom
//! STOCKROOM_BIN=target/release/stockroom cargo run --release -p stockroom-tests --example load -- \
//!     [--url http://127.0.0.1:8080] [--products 5000] [--concurrency 32] [--samples 200] [--serve-args "..."]
//! ```
//!
//! Without `--url` it starts the binary on a fresh data directory (embedded log).
//! Prints one `metric=value` line per number, for scripts/bench.sh to collect.

use std::time::{Duration, Instant};

use serde_json::json;
use stockroom_tests::{Server, data_dir, gtin14};

struct Args {
    url: Option<String>,
    products: usize,
    concurrency: usize,
    samples: usize,
    serve_args: Vec<String>,
    label: String,
}

fn args() -> Args {
    let mut a = Args {
        url: None,
        products: 5_000,
        concurrency: 32,
        samples: 200,
        serve_args: Vec::new(),
        label: "embedded".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = Some(value()),
            "--products" => a.products = value().parse().expect("--products N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--samples" => a.samples = value().parse().expect("--samples N"),
            "--serve-args" => a.serve_args = value().split_whitespace().map(String::from).collect(),
            "--label" => a.label = value(),
            other => panic!("unknown flag {other}; see the header of tests/examples/load.rs"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints a phase's rate and latency: `LABEL.PHASE.commands_per_s=...` (orders:
/// `orders_per_s`), `...latency_p50_ms=...`, `...latency_p99_ms=...`.
fn report(label: &str, phase: &str, n: usize, elapsed: Duration, lat: &[Duration]) {
    let rate = n as f64 / elapsed.as_secs_f64();
    let unit = if phase == "order" { "orders" } else { "commands" };
    println!("{label}.{phase}.{unit}_per_s={rate:.0}");
    println!("{label}.{phase}.latency_p50_ms={}", ms(percentile(lat, 0.50)));
    println!("{label}.{phase}.latency_p99_ms={}", ms(percentile(lat, 0.99)));
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1_000.0)
}

/// Sends `count` commands from `concurrency` tasks; returns (elapsed, sorted latencies).
async fn phase(
    client: &reqwest::Client,
    base: &str,
    count: usize,
    concurrency: usize,
    request: impl Fn(usize) -> (String, serde_json::Value) + Send + Sync + Clone + 'static,
) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, base, request) = (client.clone(), base.to_owned(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while i < count {
                let (path, body) = request(i);
                let t = Instant::now();
                let r = client.post(format!("{base}{path}")).json(&body).send().await.expect("request");
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                assert!(matches!(status, 200 | 201), "{path}: {status} {text}");
                latencies.push(t.elapsed());
                i += concurrency;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (elapsed, all)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let dir = data_dir();
    let serve_args: Vec<&str> = args.serve_args.iter().map(String::as_str).collect();
    let server = match &args.url {
        Some(_) => None,
        None => Some(Server::start(dir.path(), &serve_args).await),
    };
    let base = args.url.clone().unwrap_or_else(|| server.as_ref().unwrap().url(""));
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().unwrap();
    let run = std::process::id();
    let label = &args.label;

    let (elapsed, lat) = phase(&client, &base, args.products, args.concurrency, move |i| {
        let body = json!({
            "sku": format!("L{run}-{i}"), "name": format!("Load item {i}"), "brand": format!("Brand {}", i % 17),
            "category": format!("cat-{}", i % 11), "price_cents": (i % 10_000) as i64,
            "description": "a product registered by the load loop", "initial_stock": 10,
        });
        ("/products".to_owned(), body)
    })
    .await;
    report(label, "register", args.products, elapsed, &lat);

    let (elapsed, lat) = phase(&client, &base, args.products, args.concurrency, move |i| {
        (format!("/products/L{run}-{i}/stock/receipts"), json!({"quantity": 5}))
    })
    .await;
    report(label, "receive", args.products, elapsed, &lat);

    // Registrations with a GTIN: each goes to the GTIN's partition first (a claim),
    // then to the product's, then settles the claim.
    let (elapsed, lat) = phase(&client, &base, args.products, args.concurrency, move |i| {
        let body = json!({
            "sku": format!("G{run}-{i}"), "name": format!("Barcoded item {i}"), "price_cents": 100,
            "gtin": gtin14(u64::from(run) * 1_000_000 + i as u64),
        });
        ("/products".to_owned(), body)
    })
    .await;
    report(label, "register_gtin", args.products, elapsed, &lat);

    // Orders of two lines on different products: a saga of five commands or more.
    let products = args.products;
    let (elapsed, lat) = phase(&client, &base, args.products, args.concurrency, move |i| {
        let body = json!({"order_id": format!("O{run}-{i}"), "lines": [
            {"sku": format!("L{run}-{i}"), "quantity": 1},
            {"sku": format!("L{run}-{}", (i + 1) % products), "quantity": 1},
        ]});
        ("/orders".to_owned(), body)
    })
    .await;
    report(label, "order", args.products, elapsed, &lat);

    // Write → searchable: one write at a time, then poll search for its unique word.
    let mut visible = Vec::new();
    for i in 0..args.samples {
        let word = format!("zq{run}x{i}");
        let body = json!({"sku": format!("V{run}-{i}"), "name": format!("Probe {word}"), "price_cents": 100});
        let r = client.post(format!("{base}/products")).json(&body).send().await.expect("request");
        assert_eq!(r.status().as_u16(), 201);
        let accepted = Instant::now();
        loop {
            let r = client.get(format!("{base}/search?q={word}")).send().await.expect("search");
            let found: serde_json::Value = r.json().await.expect("search body");
            if found["total"] == 1 {
                break;
            }
            assert!(accepted.elapsed() < Duration::from_secs(30), "{word} never became searchable");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        visible.push(accepted.elapsed());
    }
    visible.sort();
    println!("{label}.searchable.p50_ms={}", ms(percentile(&visible, 0.50)));
    println!("{label}.searchable.p99_ms={}", ms(percentile(&visible, 0.99)));
    println!("{label}.searchable.max_ms={}", ms(visible.last().copied().unwrap_or_default()));

    if let Some(server) = server {
        server.stop().await;
    }
}
