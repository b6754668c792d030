//! Raw produce rate to a Kafka-API broker through rdkafka, to compare with Stockroom's
//! commands per second on the same broker, and the raw cost of Kafka transactions.
//!
//! ```text
//! cargo run --release -p stockroom-topics --example kafka_produce_bench -- \
//!     [BOOTSTRAP] [RECORDS] [CONCURRENCY] [BATCH] [PROPERTIES_FILE] \
//!     [--mode shared|per-task|transactional] [--seconds S] [--partitions N] [--consume]
//! ```
//! Creates its own topics (prefix `bench-<pid>`, deleted at the end) and appends
//! ~300-byte records to `events` from CONCURRENCY tasks, BATCH records at a time, each
//! task waiting for its batch before the next: RECORDS records in all, or for S
//! seconds with `--seconds`. Task i writes to partition i mod N (`--partitions`, 1).
//!
//! Modes (every producer `acks=all`, idempotent, `linger.ms=2`, as the product's):
//! - `shared` (default): one producer for all tasks, through our `KafkaLog::append` (a
//!   thin layer over `FutureProducer::send_result`), as a Stockroom node produces.
//! - `per-task`: one idempotent producer per task (the control for `transactional`).
//! - `transactional`: one transactional producer per task (`transactional.id`
//!   `bench-<pid>-<task>`, `init_transactions` once), each batch one transaction:
//!   `begin_transaction`, BATCH sends, `commit_transaction`.
//!
//! `--consume` also runs two consumers of the topic during the load, one
//! `isolation.level=read_committed` and one `read_uncommitted` (assigned partitions,
//! `fetch.wait.max.ms=20` as the product's readers), and measures each record's time
//! from its send to its consumption.
//!
//! Prints `metric=value` lines, and last one JSON line with every number (ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use stockroom_topics::kafka::{KafkaConfig, KafkaLog, TopicSettings, create_topics, enqueue};
use stockroom_topics::{Backoff, EventLog, Headers, Partition, Record, Topic, TopicNames};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Shared,
    PerTask,
    Transactional,
}

struct Args {
    bootstrap: String,
    records: usize,
    concurrency: usize,
    batch: usize,
    properties: Option<String>,
    mode: Mode,
    seconds: Option<f64>,
    partitions: u32,
    consume: bool,
}

fn args() -> Result<Args, Error> {
    let mut positional = Vec::new();
    let mut a = Args {
        bootstrap: "127.0.0.1:9092".into(),
        records: 20_000,
        concurrency: 64,
        batch: 1,
        properties: None,
        mode: Mode::Shared,
        seconds: None,
        partitions: 1,
        consume: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--mode" => {
                a.mode = match value()?.as_str() {
                    "shared" | "idempotent" => Mode::Shared,
                    "per-task" => Mode::PerTask,
                    "transactional" | "txn" => Mode::Transactional,
                    other => return Err(format!("--mode {other}: shared, per-task or transactional").into()),
                }
            }
            "--seconds" => a.seconds = Some(value()?.parse()?),
            "--partitions" => a.partitions = value()?.parse()?,
            "--consume" => a.consume = true,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}").into()),
            _ => positional.push(arg),
        }
    }
    let mut p = positional.into_iter();
    if let Some(b) = p.next() {
        a.bootstrap = b;
    }
    if let Some(n) = p.next() {
        a.records = n.parse()?;
    }
    if let Some(n) = p.next() {
        a.concurrency = n.parse()?;
    }
    if let Some(n) = p.next() {
        a.batch = n.parse()?;
    }
    a.properties = p.next();
    if a.concurrency == 0 || a.batch == 0 || a.partitions == 0 {
        return Err("CONCURRENCY, BATCH and --partitions must be at least 1".into());
    }
    Ok(a)
}

/// What every task does, whatever the mode: send a batch, wait for it.
#[derive(Clone)]
enum Sender {
    Shared(EventLog),
    Producer(FutureProducer),
    Transactional(FutureProducer),
}

impl Sender {
    async fn send(&self, topic: &str, partition: i32, records: Vec<Record>) -> Result<(), Error> {
        let producer = match self {
            Sender::Shared(log) => {
                log.append(Topic::Events, Partition(partition as u32), records).await?;
                return Ok(());
            }
            Sender::Producer(p) | Sender::Transactional(p) => p,
        };
        if let Sender::Transactional(p) = self {
            p.begin_transaction()?;
        }
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).partition(partition).payload(&r.payload);
            if let Some(key) = &r.key {
                record = record.key(key.as_slice());
            }
            pending.push(enqueue(producer, record, Backoff::constant(Duration::from_millis(1))).await?);
        }
        if let Sender::Transactional(p) = self {
            // Flushes the transaction's records, then ends it (EndTxn): blocking.
            let p = p.clone();
            tokio::task::spawn_blocking(move || p.commit_transaction(Duration::from_secs(30))).await??;
        }
        for delivery in pending {
            delivery.await.map_err(|_| "the producer was dropped")?.map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}

fn producer_config(config: &KafkaConfig, transactional_id: Option<String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap);
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c.set("linger.ms", "2");
    c.set("message.timeout.ms", "30000");
    c.set("log_level", "3");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id);
    }
    for (k, v) in &config.extra {
        c.set(k, v);
    }
    c
}

/// The send time of a record, carried in its first 8 bytes: µs since `origin`.
fn stamp(payload: &mut [u8], origin: Instant) {
    payload[..8].copy_from_slice(&(origin.elapsed().as_micros() as u64).to_le_bytes());
}

/// Reads every partition of `topic` from the beginning, recording each record's
/// latency from its stamp, until `expected()` records were read (or 30 s pass with
/// nothing new after `done`).
fn consume(
    config: &KafkaConfig,
    topic: &str,
    partitions: u32,
    isolation: &'static str,
    origin: Instant,
    done: Arc<AtomicBool>,
    expected: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<Vec<u64>>, Error> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap);
    c.set("group.id", format!("bench-e2e-{}-{isolation}", std::process::id()));
    c.set("enable.auto.commit", "false");
    c.set("isolation.level", isolation);
    c.set("fetch.wait.max.ms", "20");
    c.set("log_level", "3");
    for (k, v) in &config.extra {
        c.set(k, v);
    }
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut last = Instant::now();
        loop {
            if done.load(Ordering::Acquire) {
                let expected = expected.load(Ordering::Acquire) as usize;
                if latencies.len() >= expected || last.elapsed() > Duration::from_secs(30) {
                    if latencies.len() < expected {
                        eprintln!("{isolation}: read {} of {expected} records", latencies.len());
                    }
                    break;
                }
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let now = origin.elapsed().as_micros() as u64;
                    let sent = m
                        .payload()
                        .and_then(|p| p.get(..8))
                        .map_or(now, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                    latencies.push(now.saturating_sub(sent).max(1));
                    last = Instant::now();
                }
                Some(Err(e)) => eprintln!("{isolation}: {e}"),
                None => {}
            }
        }
        latencies
    }))
}

/// (p50, p99, max) in ms of µs samples.
fn percentiles(samples: &mut [u64]) -> Value {
    if samples.is_empty() {
        return json!({"samples": 0});
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1_000.0;
    json!({"samples": samples.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let prefix = format!("bench-{}", std::process::id());
    let mut config = KafkaConfig::new(a.bootstrap.clone(), TopicNames::new(prefix.clone()));
    let label = match (&a.properties, a.mode) {
        (Some(path), _) => {
            config = config.with_properties_file(std::path::Path::new(path))?;
            "props"
        }
        (None, Mode::Shared) => "idempotent",
        (None, Mode::PerTask) => "per_task",
        (None, Mode::Transactional) => "transactional",
    };
    create_topics(&config, &TopicSettings { partitions: a.partitions, replication: None, extra: vec![] }).await?;
    let topic = config.names.name(Topic::Events);
    let result = run(&a, &config, &topic, label).await;
    // Best effort: leave the shared broker as it was.
    let admin: Result<AdminClient<DefaultClientContext>, _> =
        ClientConfig::new().set("bootstrap.servers", &a.bootstrap).create();
    if let Ok(admin) = admin {
        let names: Vec<String> = Topic::ALL.iter().map(|t| config.names.name(*t)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ =
            admin.delete_topics(&names, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await;
    }
    result
}

async fn run(a: &Args, config: &KafkaConfig, topic: &str, label: &str) -> Result<(), Error> {
    let senders: Vec<Sender> = match a.mode {
        Mode::Shared => {
            let log = EventLog::kafka(KafkaLog::connect(config.clone()).await?);
            vec![Sender::Shared(log); a.concurrency]
        }
        Mode::PerTask => (0..a.concurrency)
            .map(|_| Ok(Sender::Producer(producer_config(config, None).create()?)))
            .collect::<Result<_, Error>>()?,
        Mode::Transactional => {
            let mut senders = Vec::new();
            for i in 0..a.concurrency {
                let id = format!("bench-{}-{i}", std::process::id());
                let p: FutureProducer = producer_config(config, Some(id)).create()?;
                let q = p.clone();
                tokio::task::spawn_blocking(move || q.init_transactions(Duration::from_secs(30))).await??;
                senders.push(Sender::Transactional(p));
            }
            senders
        }
    };
    let origin = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let consumers = if a.consume {
        let mut c = Vec::new();
        for isolation in ["read_committed", "read_uncommitted"] {
            c.push((isolation, consume(config, topic, a.partitions, isolation, origin, done.clone(), sent.clone())?));
        }
        // Let them connect and issue their first fetch before the load starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        c
    } else {
        Vec::new()
    };

    let per_task = a.records / a.concurrency / a.batch;
    let deadline = a.seconds.map(Duration::from_secs_f64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, sender) in senders.into_iter().enumerate() {
        let (topic, sent) = (topic.to_owned(), sent.clone());
        let (batch, partition) = (a.batch, (i as u32 % a.partitions) as i32);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            loop {
                match deadline {
                    Some(d) if start.elapsed() >= d => break,
                    None if n >= per_task => break,
                    _ => {}
                }
                n += 1;
                let mut headers = Headers::new();
                headers.push("ce_type", "bench");
                let records = (0..batch)
                    .map(|_| {
                        let mut payload = vec![b'x'; 300];
                        stamp(&mut payload, origin);
                        Record { key: Some(b"k".to_vec()), headers: headers.clone(), payload, timestamp_ms: 0 }
                    })
                    .collect();
                let began = Instant::now();
                sender.send(&topic, partition, records).await?;
                latencies.push(began.elapsed().as_micros().max(1) as u64);
                sent.fetch_add(batch as u64, Ordering::AcqRel);
            }
            Ok::<_, Error>(latencies)
        }));
    }
    let mut batch_latencies = Vec::new();
    for t in tasks {
        batch_latencies.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let records = sent.load(Ordering::Acquire);
    let rate = records as f64 / elapsed;
    let (c, b) = (a.concurrency, a.batch);
    println!("kafka.produce.{label}.c{c}.b{b}.records_per_s={rate:.0}");
    let batches = percentiles(&mut batch_latencies);
    println!("kafka.produce.{label}.c{c}.b{b}.batch_p50_ms={}", batches["p50_ms"]);
    println!("kafka.produce.{label}.c{c}.b{b}.batch_p99_ms={}", batches["p99_ms"]);
    let mut out = json!({
        "mode": label, "concurrency": c, "batch": b, "partitions": a.partitions, "records": records,
        "seconds": elapsed, "records_per_s": rate,
        // One batch: sent -> acknowledged (transactional: begin -> commit returned).
        "batch_latency": batches,
    });
    for (isolation, handle) in consumers {
        let mut latencies = handle.join().map_err(|_| "a consumer panicked")?;
        let e2e = percentiles(&mut latencies);
        println!("kafka.e2e.{label}.c{c}.b{b}.{isolation}.p50_ms={}", e2e["p50_ms"]);
        println!("kafka.e2e.{label}.c{c}.b{b}.{isolation}.p99_ms={}", e2e["p99_ms"]);
        // Sent -> consumed, per record.
        out[format!("e2e_{isolation}")] = e2e;
    }
    println!("{out}");
    Ok(())
}
