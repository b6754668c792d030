//! The outbox connector's rates (issue 20): against a running `stockroom serve
//! --outbox DSN` (its URL) and that DSN,
//!
//! 1. **drain**: commits `--backlog` outbox rows (stock receipts over 64 products,
//!    one row per transaction) as fast as one connection can, and times until the
//!    connector has acknowledged them all: acknowledged commands per second;
//! 2. **steady**: commits `--rate` rows per second for `--seconds`, sampling the
//!    connector's delay (commit of the last confirmed transaction → its
//!    confirmation, `/admin/views`) every 20 ms: its p50 and p99;
//! 3. with `--sql-dsn` (the node also runs `--sql-model` there): **SQL freshness**,
//!    `--writes` receipts one at a time, each timed from its acknowledgement until its
//!    version is in `stockroom.stock`: p50 and p99.
//!
//! It prints what it measured as one JSON object on stdout (`backlog_rows`,
//! `backlog_commands_per_s`, `steady_rows`, `steady_rate`, `lag_p50_ms`, `lag_p99_ms`,
//! `lag_samples`, and with `--sql-dsn` `sql_writes`, `sql_freshness_p50_ms`,
//! `sql_freshness_p99_ms`), and the same in words on stderr.
//!
//! `cargo run --release -p stockroom-tests --example outbox_bench -- --url http://127.0.0.1:8080 --dsn '...'`

use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

async fn outbox(http: &reqwest::Client, url: &str) -> Value {
    let v: Value = http.get(format!("{url}/admin/views")).send().await.unwrap().json().await.unwrap();
    v["outbox"].clone()
}

#[tokio::main]
async fn main() {
    let url = arg("--url", "http://127.0.0.1:8080");
    let dsn = arg("--dsn", "host=127.0.0.1 port=5544 user=postgres dbname=postgres");
    let backlog: u64 = arg("--backlog", "2000").parse().unwrap();
    let rate: u64 = arg("--rate", "100").parse().unwrap();
    let seconds: u64 = arg("--seconds", "10").parse().unwrap();
    let table = arg("--table", "outbox");
    let http = reqwest::Client::new();
    for i in 0..64 {
        let _ = http
            .post(format!("{url}/products"))
            .json(&json!({"sku": format!("OB-{i}"), "name": format!("Outbox item {i}"), "price_cents": 100}))
            .send()
            .await;
    }
    let (pg, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await.expect("postgres");
    tokio::spawn(connection);
    let insert = async |n: u64| {
        let sql = format!(
            "INSERT INTO {table} (type, payload) VALUES ('stock.received', '{{\"sku\": \"OB-{}\", \"quantity\": 1}}')",
            n % 64
        );
        pg.batch_execute(&sql).await.expect("insert");
    };
    // Wait for the slot.
    while outbox(&http, &url).await["state"] != "following" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = outbox(&http, &url).await["rows_applied"].as_u64().unwrap_or(0);
    let start = Instant::now();
    for n in 0..backlog {
        insert(n).await;
    }
    let committed = start.elapsed();
    loop {
        if outbox(&http, &url).await["rows_applied"].as_u64().unwrap_or(0) >= base + backlog {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = start.elapsed();
    let mut results = json!({
        "backlog_rows": backlog,
        "backlog_commit_s": committed.as_secs_f64(),
        "backlog_commands_per_s": backlog as f64 / drained.as_secs_f64(),
    });
    eprintln!(
        "drain: {backlog} rows committed in {:.2}s, all acknowledged after {:.2}s: {:.0} acknowledged commands/s",
        committed.as_secs_f64(),
        drained.as_secs_f64(),
        backlog as f64 / drained.as_secs_f64()
    );

    let mut delays = Vec::new();
    let start = Instant::now();
    let mut next_sample = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            insert(n).await;
            n += 1;
        }
        if Instant::now() >= next_sample {
            delays.push(outbox(&http, &url).await["last_delay_ms"].as_i64().unwrap_or(0));
            next_sample += Duration::from_millis(20);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    delays.sort_unstable();
    let at = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    results["steady_rows"] = json!(n);
    results["steady_rate"] = json!(rate);
    results["steady_seconds"] = json!(seconds);
    results["steady_rows_per_s"] = json!(n as f64 / seconds.max(1) as f64);
    results["lag_p50_ms"] = json!(at(0.5));
    results["lag_p99_ms"] = json!(at(0.99));
    results["lag_samples"] = json!(delays.len());
    eprintln!(
        "steady: {n} rows at {rate}/s over {seconds}s: delay commit → confirmed p50 {} ms, p99 {} ms ({} samples)",
        at(0.5),
        at(0.99),
        delays.len()
    );

    let sql_dsn = arg("--sql-dsn", "");
    if !sql_dsn.is_empty() {
        let writes: usize = arg("--writes", "200").parse().unwrap();
        let (sql, connection) = tokio_postgres::connect(&sql_dsn, tokio_postgres::NoTls).await.expect("sql model db");
        tokio::spawn(connection);
        let mut fresh = Vec::new();
        for i in 0..writes {
            let sku = format!("OB-{}", i % 64);
            let answer: Value = http
                .post(format!("{url}/products/{sku}/stock/receipts"))
                .json(&json!({"quantity": 1}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let version = answer["version"].as_i64().expect("a version");
            let acked = Instant::now();
            loop {
                let row = sql.query_opt("SELECT version FROM stockroom.stock WHERE sku = $1", &[&sku]).await.unwrap();
                if row.is_some_and(|r| r.get::<_, i64>(0) >= version) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            fresh.push(acked.elapsed().as_secs_f64() * 1000.0);
        }
        fresh.sort_by(f64::total_cmp);
        let at = |q: f64| fresh.get(((fresh.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
        results["sql_writes"] = json!(writes);
        results["sql_freshness_p50_ms"] = json!(at(0.5));
        results["sql_freshness_p99_ms"] = json!(at(0.99));
        eprintln!(
            "sql model: {writes} writes, acknowledged → in stockroom.stock p50 {:.1} ms, p99 {:.1} ms",
            at(0.5),
            at(0.99)
        );
    }
    println!("{results}");
}
