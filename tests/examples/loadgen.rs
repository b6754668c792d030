//! The load generator of scripts/bench.sh: K concurrent keep-alive clients drive a
//! realistic mix of commands and searches, closed-loop or at a fixed offered rate,
//! against Stockroom's HTTP API or against the PostgreSQL design users would
//! otherwise build (the same mix as SQL transactions, see [`pg`]).
//!
//! ```text
//! loadgen [--url http://127.0.0.1:8080 | --postgres "host=127.0.0.1 port=5544 user=postgres"]
//!         [--clients 32] [--seconds 20] [--rate 0] [--products 2000]
//!         [--freshness] [--cpu-pids 123,456 | --cpu-comm postgres] [--label NAME]
//!         [--search-only --queries FILE] [--schema-only]
//! ```
//!
//! `--search-only` sends only searches, drawn from the lines of `--queries` (a catalog
//! built beforehand, e.g. by `query/examples/search_bench.rs`; `--products 0`).
//!
//! The mix, per operation: stock receipt 30%, reservation 25%, confirm or release of
//! one of the client's open reservations 20%, price update 10%, search 15%. Commands
//! are every operation but searches. The catalog (`--products`, registered first and
//! timed on its own) has generated names, brands, categories and descriptions.
//!
//! Every latency goes into an HDR histogram. With `--rate R` the clients share a
//! fixed schedule of R operations per second and a latency is measured from the
//! operation's scheduled start (no coordinated omission); `--rate 0` is closed loop.
//! CPU-seconds per 1,000 commands are read from /proc for the server's processes (all
//! of them together, and each of `--cpu-pids` on its own, in the order given).
//! `--freshness` (Stockroom only) also measures, throughout the run, the time from a
//! write to its visibility in search, counted from sending the write's request (and,
//! beside it, from its acknowledgement).
//!
//! Prints a summary, and last one JSON line with every number (latencies in ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const WORDS: &[&str] = &[
    "steel", "kettle", "enamel", "mug", "lamp", "reading", "oak", "chair", "linen", "towel", "cast", "iron", "pan",
    "ceramic", "bowl", "wool", "blanket", "glass", "jar", "copper", "pot", "bamboo", "board", "cotton", "apron",
    "walnut", "shelf", "brass", "hook", "stone", "mortar", "silk", "pillow", "clay", "vase", "drill", "hammer",
];
const BRANDS: &[&str] = &["Hearth", "Nordic Home", "Acme", "Fjord", "Maison", "Atlas", "Kiln & Co", "Brightside"];
const CATEGORIES: &[&str] = &["kitchen", "lighting", "furniture", "bath", "textiles", "garden", "storage", "tools"];

#[derive(Clone)]
struct Args {
    url: Option<String>,
    postgres: Option<String>,
    clients: usize,
    seconds: u64,
    rate: u64,
    products: u64,
    freshness: bool,
    cpu_pids: Vec<u32>,
    cpu_comm: Option<String>,
    label: String,
    search_only: bool,
    queries: Arc<Vec<String>>,
    /// PostgreSQL: create the schema and stop (for loading products with COPY).
    schema_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        url: None,
        postgres: None,
        clients: 32,
        seconds: 20,
        rate: 0,
        products: 2_000,
        freshness: false,
        cpu_pids: Vec::new(),
        cpu_comm: None,
        label: "run".into(),
        search_only: false,
        queries: Arc::new(Vec::new()),
        schema_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = Some(value()),
            "--postgres" => a.postgres = Some(value()),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--products" => a.products = value().parse().expect("--products N"),
            "--freshness" => a.freshness = true,
            "--cpu-pids" => a.cpu_pids = value().split(',').map(|p| p.trim().parse().expect("a pid")).collect(),
            "--cpu-comm" => a.cpu_comm = Some(value()),
            "--label" => a.label = value(),
            "--search-only" => a.search_only = true,
            "--schema-only" => a.schema_only = true,
            "--queries" => {
                let text = std::fs::read_to_string(value()).expect("--queries FILE");
                a.queries = Arc::new(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect());
            }
            other => panic!("unknown flag {other}; see the header of tests/examples/loadgen.rs"),
        }
    }
    assert!(a.url.is_some() != a.postgres.is_some(), "give one of --url or --postgres");
    assert!(!a.search_only || !a.queries.is_empty(), "--search-only needs --queries FILE");
    a
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len() as u64) as usize]
    }
    fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| self.pick(WORDS)).collect::<Vec<_>>().join(" ")
    }
}

/// A product of the synthetic catalog.
struct Product {
    sku: String,
    name: String,
    brand: String,
    category: String,
    description: String,
    price_cents: i64,
}

fn product(run: u64, i: u64) -> Product {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i + 1).wrapping_mul(0x1000_0000_01b3));
    Product {
        sku: format!("B{run}-{i}"),
        name: format!("{} {} {}", rng.pick(BRANDS), rng.words(2), i),
        brand: rng.pick(BRANDS).to_owned(),
        category: rng.pick(CATEGORIES).to_owned(),
        description: format!("A {} for the {}, made of {}.", rng.words(2), rng.words(1), rng.words(3)),
        price_cents: 100 + rng.below(50_000) as i64,
    }
}

/// One operation of the mix.
enum Op {
    Receive { sku: String, quantity: i64 },
    Reserve { sku: String, id: String },
    Confirm { sku: String, id: String },
    Release { sku: String, id: String },
    Update { sku: String, price_cents: i64 },
    Search { word: String },
}

/// What an operation came to.
enum Answer {
    Done,
    /// A business rule said no (e.g. not enough stock): a complete command all the same.
    Rejected,
}

/// Where the load goes.
enum Target {
    Http { client: reqwest::Client, base: String },
    Postgres(pg::Client),
}

impl Target {
    async fn run(&self, op: &Op) -> Result<Answer, String> {
        match self {
            Target::Http { client, base } => http(client, base, op).await,
            Target::Postgres(c) => c.run(op).await,
        }
    }

    async fn register(&self, p: &Product) -> Result<(), String> {
        match self {
            Target::Http { client, base } => {
                let body = json!({"sku": p.sku, "name": p.name, "brand": p.brand, "category": p.category,
                    "description": p.description, "price_cents": p.price_cents, "initial_stock": 1_000_000});
                let r = client.post(format!("{base}/products")).json(&body).send().await.map_err(|e| e.to_string())?;
                match r.status().as_u16() {
                    201 => Ok(()),
                    s => Err(format!("register {}: {s} {}", p.sku, r.text().await.unwrap_or_default())),
                }
            }
            Target::Postgres(c) => c.register(p).await,
        }
    }
}

async fn http(client: &reqwest::Client, base: &str, op: &Op) -> Result<Answer, String> {
    let request = match op {
        Op::Receive { sku, quantity } => {
            client.post(format!("{base}/products/{sku}/stock/receipts")).json(&json!({"quantity": quantity}))
        }
        Op::Reserve { sku, id } => client
            .post(format!("{base}/products/{sku}/reservations"))
            .json(&json!({"reservation_id": id, "quantity": 1, "expires_in_secs": 3600})),
        Op::Confirm { sku, id } => {
            client.post(format!("{base}/products/{sku}/reservations/{id}/confirm")).json(&json!({}))
        }
        Op::Release { sku, id } => {
            client.post(format!("{base}/products/{sku}/reservations/{id}/release")).json(&json!({}))
        }
        Op::Update { sku, price_cents } => {
            client.patch(format!("{base}/products/{sku}")).json(&json!({"price_cents": price_cents}))
        }
        Op::Search { word } => client.get(format!("{base}/search?q={}&limit=20", word.replace(' ', "%20"))),
    };
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    match status {
        200 | 201 => Ok(Answer::Done),
        409 => Ok(Answer::Rejected),
        _ => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
    }
}

/// CPU-seconds (user + system) of the given processes so far.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|pid| process_cpu(*pid)).map(|(_, seconds)| seconds).sum()
}

/// A process's start time (clock ticks since boot: it tells a restarted process
/// from the one first seen under its pid) and its CPU-seconds (user + system) so far.
fn process_cpu(pid: u32) -> Option<(u64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let ticks = field(11)? + field(12)?;
    Some((field(19)?, ticks as f64 / 100.0)) // USER_HZ is 100 on Linux
}

/// The pids of every process whose command name is `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
                .collect()
        })
        .unwrap_or_default()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1_000.0 }
}

struct Totals {
    commands: Histogram<u64>,
    searches: Histogram<u64>,
    rejected: u64,
    errors: u64,
    /// Commands completed per second of the run.
    per_second: Vec<u64>,
}

async fn client_loop(
    id: usize,
    target: Arc<Target>,
    args: Args,
    run: u64,
    started: Instant,
    totals: Arc<Mutex<Totals>>,
) {
    let mut rng = Rng(0x5eed ^ ((id as u64 + 1) * 0x9e37_79b9));
    let mut open: Vec<(String, String)> = Vec::new();
    let (mut commands, mut searches) = (histogram(), histogram());
    let (mut rejected, mut errors, mut n) = (0u64, 0u64, 0u64);
    let mut per_second = vec![0u64; args.seconds as usize + 1];
    let end = Duration::from_secs(args.seconds);
    // With a fixed rate, this client's share of the schedule: every `clients / rate`
    // seconds, offset by its id.
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(args.clients as f64 / args.rate as f64));
    loop {
        let scheduled = match interval {
            Some(every) => {
                let at = every.mul_f64(n as f64 + id as f64 / args.clients as f64);
                if at >= end {
                    break;
                }
                let wait = at.saturating_sub(started.elapsed());
                tokio::time::sleep(wait).await;
                started + at
            }
            None => {
                if started.elapsed() >= end {
                    break;
                }
                Instant::now()
            }
        };
        n += 1;
        let sku = || format!("B{run}-{}", rng_sku(id, n, args.products));
        let roll = rng.below(100);
        let op = if args.search_only {
            Op::Search { word: args.queries[rng.below(args.queries.len() as u64) as usize].clone() }
        } else if roll < 30 {
            Op::Receive { sku: sku(), quantity: 1 + rng.below(20) as i64 }
        } else if roll < 55 || (roll < 75 && open.is_empty()) {
            let id = format!("c{id}-{n}");
            let sku = sku();
            open.push((sku.clone(), id.clone()));
            Op::Reserve { sku, id }
        } else if roll < 75 {
            let (sku, rid) = open.swap_remove(rng.below(open.len() as u64) as usize);
            if rng.below(2) == 0 { Op::Confirm { sku, id: rid } } else { Op::Release { sku, id: rid } }
        } else if roll < 85 {
            Op::Update { sku: sku(), price_cents: 100 + rng.below(50_000) as i64 }
        } else {
            Op::Search { word: rng.pick(WORDS).to_owned() }
        };
        let result = target.run(&op).await;
        let micros = scheduled.elapsed().as_micros().max(1) as u64;
        match (&op, result) {
            (Op::Search { .. }, Ok(_)) => searches.saturating_record(micros),
            (_, Ok(answer)) => {
                commands.saturating_record(micros);
                rejected += u64::from(matches!(answer, Answer::Rejected));
                let second = (started.elapsed().as_secs() as usize).min(per_second.len() - 1);
                per_second[second] += 1;
            }
            (_, Err(e)) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("client {id}: {e}");
                }
            }
        }
    }
    let mut t = totals.lock().await;
    t.commands.add(&commands).expect("same bounds");
    t.searches.add(&searches).expect("same bounds");
    t.rejected += rejected;
    t.errors += errors;
    if t.per_second.len() < per_second.len() {
        t.per_second.resize(per_second.len(), 0);
    }
    for (i, c) in per_second.into_iter().enumerate() {
        t.per_second[i] += c;
    }
}

/// A product for client `id`'s `n`-th operation: spread over the whole catalog.
fn rng_sku(id: usize, n: u64, products: u64) -> u64 {
    let mut r = Rng((id as u64 + 1).wrapping_mul(0x2545_f491) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    r.below(products)
}

/// Write -> searchable, measured two ways: from sending the write (what a user who
/// writes and then searches waits) and from its acknowledgement.
struct Freshness {
    from_request: Histogram<u64>,
    from_ack: Histogram<u64>,
}

/// Registers a product with a unique word, then polls search until it is found.
async fn freshness_loop(base: String, run: u64, started: Instant, seconds: u64) -> Freshness {
    let client = reqwest::Client::new();
    let (mut from_request, mut from_ack) = (histogram(), histogram());
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let word = format!("fz{run}x{i}");
        let body = json!({"sku": format!("F{run}-{i}"), "name": format!("Probe {word}"), "price_cents": 1});
        i += 1;
        let sent = Instant::now();
        let Ok(r) = client.post(format!("{base}/products")).json(&body).send().await else { continue };
        if r.status().as_u16() != 201 {
            continue;
        }
        let accepted = Instant::now();
        loop {
            let found: Value = match client.get(format!("{base}/search?q={word}")).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if found["total"] == 1 {
                from_request.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                from_ack.saturating_record(accepted.elapsed().as_micros().max(1) as u64);
                break;
            }
            if accepted.elapsed() > Duration::from_secs(30) {
                eprintln!("{word} never became searchable");
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Freshness { from_request, from_ack }
}

/// Registers the catalog from every client at once; the registrations per second.
async fn register_catalog(target: &Arc<Target>, args: &Args, run: u64) -> f64 {
    let registered = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (target, next, products) = (target.clone(), next.clone(), args.products);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= products {
                    return;
                }
                target.register(&product(run, i)).await.expect("register");
            }
        }));
    }
    for t in tasks {
        t.await.expect("register task");
    }
    let register_rate = args.products as f64 / registered.elapsed().as_secs_f64();
    eprintln!("[{}] registered {} products at {register_rate:.0}/s", args.label, args.products);
    register_rate
}

/// CPU seconds of the measured processes: all of them (`--cpu-comm` or
/// `--cpu-pids`), and each of `--cpu-pids`.
struct CpuMeter {
    pids: Vec<u32>,
    before: f64,
    each_before: Vec<Option<(u64, f64)>>,
}

impl CpuMeter {
    fn start(args: &Args) -> CpuMeter {
        let pids = match &args.cpu_comm {
            Some(comm) => pids_named(comm),
            None => args.cpu_pids.clone(),
        };
        let before = cpu_seconds(&pids);
        CpuMeter { pids, before, each_before: args.cpu_pids.iter().map(|p| process_cpu(*p)).collect() }
    }

    /// CPU seconds used since `start` by all (None when unknown) and by each.
    fn stop(&self, args: &Args) -> (Option<f64>, Vec<Option<f64>>) {
        // Postgres forks a backend per connection: count them all, including new ones.
        let after = match &args.cpu_comm {
            Some(comm) => cpu_seconds(&pids_named(comm)),
            None => cpu_seconds(&self.pids),
        };
        // A process that exited or restarted during the run (a broker restarted by
        // someone else) cannot be measured: its share, and the sum, are unknown.
        let each: Vec<Option<f64>> = args
            .cpu_pids
            .iter()
            .zip(&self.each_before)
            .map(|(p, before)| match (before, process_cpu(*p)) {
                (Some((start, before)), Some((same, after))) if *start == same => Some(after - before),
                _ => {
                    eprintln!("[{}] process {p} exited or restarted during the run: its CPU is unknown", args.label);
                    None
                }
            })
            .collect();
        let all = (!self.pids.is_empty() && each.iter().all(Option::is_some)).then_some(after - self.before);
        (all, each)
    }
}

/// The run's JSON line (and its summary on stderr).
fn summary(args: &Args, t: &Totals, elapsed: f64, register_rate: f64, cpu: (Option<f64>, Vec<Option<f64>>)) -> Value {
    let commands = t.commands.len();
    let rate = commands as f64 / elapsed;
    let per_1000 = |s: f64| if commands == 0 { Value::Null } else { json!(s * 1_000.0 / commands as f64) };
    let cpu_per_1000 = cpu.0.map_or(Value::Null, per_1000);
    eprintln!(
        "[{}] {commands} commands in {elapsed:.1} s = {rate:.0}/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms; \
         {} searches p50 {:.2} ms p99 {:.2} ms; {} rejected, {} errors; cpu-s/1000 commands {cpu_per_1000}",
        args.label,
        ms(&t.commands, 0.5),
        ms(&t.commands, 0.99),
        ms(&t.commands, 0.999),
        t.searches.len(),
        ms(&t.searches, 0.5),
        ms(&t.searches, 0.99),
        t.rejected,
        t.errors,
    );
    let distribution: Vec<Value> = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0]
        .iter()
        .map(|q: &f64| json!([q, ms(&t.commands, q / 100.0)]))
        .collect();
    json!({
        "label": args.label, "target": if args.url.is_some() { "stockroom" } else { "postgres" },
        "clients": args.clients, "offered_rate": args.rate, "seconds": elapsed,
        "products": args.products, "register_per_s": register_rate,
        "commands": commands, "commands_per_s": rate, "rejected": t.rejected, "errors": t.errors,
        "p50_ms": ms(&t.commands, 0.5), "p99_ms": ms(&t.commands, 0.99), "p999_ms": ms(&t.commands, 0.999),
        "max_ms": t.commands.max() as f64 / 1_000.0,
        "searches": t.searches.len(), "searches_per_s": t.searches.len() as f64 / elapsed,
        "search_p50_ms": ms(&t.searches, 0.5), "search_p99_ms": ms(&t.searches, 0.99),
        "cpu_s_per_1000_commands": cpu_per_1000,
        // Each of --cpu-pids on its own, in the order given.
        "cpu_s_per_1000_commands_each": cpu.1.iter().map(|s| s.map_or(Value::Null, per_1000)).collect::<Vec<_>>(),
        "per_second": t.per_second,
        // The latency distribution: (percentile, ms) pairs, for charts.
        "distribution": distribution,
    })
}

/// Freshness as the run's JSON reports it (and its summary on stderr).
fn freshness_summary(label: &str, f: &Freshness) -> Value {
    let (r, a) = (&f.from_request, &f.from_ack);
    eprintln!(
        "[{label}] write -> searchable, {} samples: from the request p50 {:.2} ms p99 {:.2} ms; \
         from the acknowledgement p50 {:.2} ms p99 {:.2} ms",
        r.len(),
        ms(r, 0.5),
        ms(r, 0.99),
        ms(a, 0.5),
        ms(a, 0.99)
    );
    // p50_ms/p99_ms/max_ms count from the request; after_ack_* from the acknowledgement.
    json!({"samples": r.len(), "p50_ms": ms(r, 0.5), "p99_ms": ms(r, 0.99),
        "max_ms": r.max() as f64 / 1_000.0, "after_ack_p50_ms": ms(a, 0.5), "after_ack_p99_ms": ms(a, 0.99),
        "after_ack_max_ms": a.max() as f64 / 1_000.0})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let run = std::process::id() as u64;
    let target = Arc::new(match (&args.url, &args.postgres) {
        (Some(url), _) => Target::Http {
            client: reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).build().expect("client"),
            base: url.trim_end_matches('/').to_owned(),
        },
        (_, Some(conn)) => Target::Postgres(pg::Client::connect(conn, args.clients).await),
        _ => unreachable!(),
    });
    if args.schema_only {
        return; // connecting created it
    }
    let register_rate = register_catalog(&target, &args, run).await;

    let cpu = CpuMeter::start(&args);
    let started = Instant::now();
    let totals = Arc::new(Mutex::new(Totals {
        commands: histogram(),
        searches: histogram(),
        rejected: 0,
        errors: 0,
        per_second: Vec::new(),
    }));
    let clients: Vec<_> = (0..args.clients)
        .map(|id| tokio::spawn(client_loop(id, target.clone(), args.clone(), run, started, totals.clone())))
        .collect();
    let freshness = match (&args.url, args.freshness) {
        (Some(base), true) => Some(tokio::spawn(freshness_loop(base.clone(), run, started, args.seconds))),
        _ => None,
    };
    for c in clients {
        c.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = cpu.stop(&args);
    let t = totals.lock().await;
    let mut out = summary(&args, &t, elapsed, register_rate, used);
    if let Some(f) = freshness {
        out["freshness"] = freshness_summary(&args.label, &f.await.expect("freshness"));
    }
    println!("{out}");
    assert_eq!(t.errors, 0, "some operations failed");
}

/// The design users would otherwise build: one PostgreSQL table of products, each
/// command a transaction that locks the product's row, checks the stock, updates it
/// and writes an audit row; durable commits (fsync on, synchronous_commit on);
/// search with `tsvector` + GIN and `ts_rank`.
mod pg {
    use tokio_postgres::{NoTls, Statement};

    use super::{Answer, Op, Product};

    pub struct Client {
        pool: Vec<tokio::sync::Mutex<Conn>>,
        next: std::sync::atomic::AtomicUsize,
    }

    struct Conn {
        client: tokio_postgres::Client,
        lock: Statement,
        receive: Statement,
        reserve_check: Statement,
        reserve_insert: Statement,
        reserve_update: Statement,
        take: Statement,
        confirm: Statement,
        release: Statement,
        update: Statement,
        audit: Statement,
        search: Statement,
        register: Statement,
    }

    pub const SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS products (
            sku text PRIMARY KEY, name text NOT NULL, description text, brand text, category text,
            price_cents bigint NOT NULL, on_hand bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 1,
            search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', coalesce(brand, '')), 'B')
                || setweight(to_tsvector('english', coalesce(description, '')), 'C')) STORED);
        CREATE INDEX IF NOT EXISTS products_search ON products USING gin (search);
        CREATE TABLE IF NOT EXISTS reservations (
            sku text NOT NULL REFERENCES products, id text NOT NULL, quantity bigint NOT NULL, PRIMARY KEY (sku, id));
        CREATE TABLE IF NOT EXISTS audit (
            id bigserial PRIMARY KEY, sku text NOT NULL, kind text NOT NULL, detail jsonb, at timestamptz DEFAULT now());";

    impl Client {
        pub async fn connect(conn: &str, size: usize) -> Client {
            let mut pool = Vec::with_capacity(size);
            for _ in 0..size {
                let (client, connection) = tokio_postgres::connect(conn, NoTls).await.expect("connect to PostgreSQL");
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        eprintln!("postgres connection: {e}");
                    }
                });
                pool.push(client);
            }
            // The schema must exist before statements are prepared.
            pool[0].batch_execute(SCHEMA).await.expect("create the schema");
            let mut conns = Vec::with_capacity(size);
            for client in pool {
                let p = |sql: &'static str| {
                    let c = &client;
                    async move { c.prepare(sql).await.expect(sql) }
                };
                conns.push(tokio::sync::Mutex::new(Conn {
                    lock: p("SELECT on_hand, reserved FROM products WHERE sku = $1 FOR UPDATE").await,
                    receive: p("UPDATE products SET on_hand = on_hand + $2, version = version + 1 WHERE sku = $1")
                        .await,
                    reserve_check: p("SELECT 1 FROM reservations WHERE sku = $1 AND id = $2").await,
                    reserve_insert: p("INSERT INTO reservations (sku, id, quantity) VALUES ($1, $2, $3)").await,
                    reserve_update: p(
                        "UPDATE products SET reserved = reserved + $2, version = version + 1 WHERE sku = $1",
                    )
                    .await,
                    take: p("DELETE FROM reservations WHERE sku = $1 AND id = $2 RETURNING quantity").await,
                    confirm: p(
                        "UPDATE products SET on_hand = on_hand - $2, reserved = reserved - $2, version = version + 1 \
                         WHERE sku = $1",
                    )
                    .await,
                    release: p("UPDATE products SET reserved = reserved - $2, version = version + 1 WHERE sku = $1")
                        .await,
                    update: p("UPDATE products SET price_cents = $2, version = version + 1 WHERE sku = $1").await,
                    audit: p("INSERT INTO audit (sku, kind, detail) VALUES ($1, $2, $3)").await,
                    search: p("SELECT sku, name, brand, category, price_cents, on_hand - reserved AS available \
                         FROM products, websearch_to_tsquery('english', $1) q \
                         WHERE search @@ q ORDER BY ts_rank(search, q) DESC, sku LIMIT 20")
                    .await,
                    register: p(
                        "INSERT INTO products (sku, name, description, brand, category, price_cents, on_hand) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .await,
                    client,
                }));
            }
            Client { pool: conns, next: Default::default() }
        }

        async fn conn(&self) -> tokio::sync::MutexGuard<'_, Conn> {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.pool.len();
            self.pool[i].lock().await
        }

        pub async fn register(&self, p: &Product) -> Result<(), String> {
            let c = self.conn().await;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                [&p.sku, &p.name, &p.description, &p.brand, &p.category, &p.price_cents, &1_000_000i64];
            c.client.execute(&c.register, &params).await.map(|_| ()).map_err(|e| e.to_string())
        }

        pub async fn run(&self, op: &Op) -> Result<Answer, String> {
            let mut c = self.conn().await;
            c.run(op).await.map_err(|e| e.to_string())
        }
    }

    impl Conn {
        async fn run(&mut self, op: &Op) -> Result<Answer, tokio_postgres::Error> {
            if let Op::Search { word } = op {
                self.client.query(&self.search, &[word]).await?;
                return Ok(Answer::Done);
            }
            let tx = self.client.transaction().await?;
            let sku = match op {
                Op::Receive { sku, .. }
                | Op::Reserve { sku, .. }
                | Op::Confirm { sku, .. }
                | Op::Release { sku, .. }
                | Op::Update { sku, .. } => sku,
                Op::Search { .. } => unreachable!(),
            };
            let row = tx.query_opt(&self.lock, &[sku]).await?;
            let Some(row) = row else { return Ok(Answer::Rejected) };
            let (on_hand, reserved): (i64, i64) = (row.get(0), row.get(1));
            let (kind, detail) = match op {
                Op::Receive { quantity, .. } => {
                    tx.execute(&self.receive, &[sku, quantity]).await?;
                    ("received", serde_json::json!({"quantity": quantity}))
                }
                Op::Reserve { id, .. } => {
                    if on_hand - reserved < 1 || tx.query_opt(&self.reserve_check, &[sku, id]).await?.is_some() {
                        return Ok(Answer::Rejected);
                    }
                    tx.execute(&self.reserve_insert, &[sku, id, &1i64]).await?;
                    tx.execute(&self.reserve_update, &[sku, &1i64]).await?;
                    ("reserved", serde_json::json!({"id": id, "quantity": 1}))
                }
                Op::Confirm { id, .. } | Op::Release { id, .. } => {
                    let Some(row) = tx.query_opt(&self.take, &[sku, id]).await? else { return Ok(Answer::Rejected) };
                    let quantity: i64 = row.get(0);
                    let confirm = matches!(op, Op::Confirm { .. });
                    tx.execute(if confirm { &self.confirm } else { &self.release }, &[sku, &quantity]).await?;
                    (if confirm { "confirmed" } else { "released" }, serde_json::json!({"id": id}))
                }
                Op::Update { price_cents, .. } => {
                    tx.execute(&self.update, &[sku, price_cents]).await?;
                    ("updated", serde_json::json!({"price_cents": price_cents}))
                }
                Op::Search { .. } => unreachable!(),
            };
            tx.execute(&self.audit, &[sku, &kind, &detail]).await?;
            tx.commit().await?;
            Ok(Answer::Done)
        }
    }
}
