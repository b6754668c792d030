//! The chaos run and its history checker (scripts/chaos.sh runs it).
//!
//! Clients issue a random mix of writes over HTTP (registrations with contended
//! GTINs, receipts, reservations, confirms and releases) while the node is killed
//! with SIGKILL and restarted at random moments; on Kafka also the query node, and
//! the broker: the single local broker restarted (`--broker-restarts`), or, on a
//! three-broker cluster with replication factor 3 and `min.insync.replicas=2`
//! (`--cluster`), the leader of a partition of `events` killed with SIGKILL and
//! started again a few seconds later (`--broker-kills`). Every request has an
//! `Idempotency-Key`; a request whose answer is lost (connection refused or reset,
//! timeout, 5xx) is retried with the same key, as a careful client would, until it
//! gets an answer or the run ends. Every outcome is recorded.
//!
//! Then the checker stops the node, reads the log itself (the same decoding and fence
//! rules every reader uses) and counts:
//! - `lost`: acknowledged commands whose event is not in the log;
//! - `duplicated`: commands applied more than once;
//! - `sku_dupes`, `gtin_dupes`: uniqueness violations at any point of the log;
//! - `negative`: an event leaving reserved > on hand (or on hand < 0) at any point;
//! - `view_diffs`: products whose view (after a restart) differs from the log's fold;
//! - `sql_diffs` (with `--postgres PORT`): products whose row in the SQL read model
//!   (`--sql-model`, kept by the node that serves reads — so killed with it — in a
//!   database of its own on the PostgreSQL of scripts/postgres.sh on that port) differs
//!   from the catalog's view once the model has caught up, whose stock movements do
//!   not sum to its stock (one missing or applied twice), or that only one side has;
//!   every other rebuild request (the first one too) is then of the SQL model;
//! - `unknown`: requests that never got an answer, and `retried`: those that got one
//!   after at least one lost answer.
//!
//! For each broker kill it also measures the recovery: how long after the kill every
//! partition had acknowledged a command first sent after it; for each broker restart,
//! how long the restart took, and from then until every partition had.
//!
//! It prints one summary line and exits non-zero on any violation.
//!
//! ```text
//! cargo run -p stockroom-tests --example chaos -- [--seconds 30] [--clients 8] [--kills 5]
//!     [--kafka [--query-kills N] [--rebuilds N] [--broker-restarts N]] [--cluster [--broker-kills N]]
//!     [--postgres PORT]
//! ```
//!
//! `--kafka` uses `$STOCKROOM_KAFKA`, else the local broker of scripts/kafka.sh on
//! 127.0.0.1:`$STOCKROOM_KAFKA_PORT` (9092), which it may restart. `--cluster` starts
//! a fresh three-node cluster on `$STOCKROOM_CLUSTER_PORT` (19092) and stops it at
//! the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockroom_domain::product::ProductEventBody;
use stockroom_tests::history::{Brokers, admitted_product_events, kafka_backend};
use stockroom_tests::postgres::{Postgres, sql_model_caught_up, sql_model_rows};
use stockroom_tests::{Backend, Server, data_dir, gtin14};
use stockroom_topics::kafka::{KafkaConfig, KafkaLog};
use stockroom_topics::{EmbeddedLog, EventLog, TopicNames};
use tokio_postgres::Client;

struct Args {
    seconds: u64,
    clients: usize,
    kills: usize,
    /// Kafka: kills of the query node (on the embedded log one node does everything).
    query_kills: usize,
    /// Kafka: restarts of the local broker (with `--cluster`: of every node).
    broker_restarts: usize,
    /// `--cluster`: kill -9 of the broker leading a partition of `events`, started
    /// again a few seconds later.
    broker_kills: usize,
    /// Rebuild requests (`POST /admin/replay`), each followed by a kill of the query
    /// node a moment later, so that kills land during rebuilds.
    rebuilds: usize,
    kafka: bool,
    /// On a three-broker cluster (implies `kafka`).
    cluster: bool,
    /// Keep the SQL read model (`--sql-model`) on the PostgreSQL of scripts/postgres.sh
    /// on this port, and check it against the catalog at the end.
    postgres: Option<u16>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 30,
        clients: 8,
        kills: 5,
        query_kills: 0,
        broker_restarts: 0,
        broker_kills: 0,
        rebuilds: 0,
        kafka: false,
        cluster: false,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--kills" => a.kills = value().parse().expect("--kills N"),
            "--query-kills" => a.query_kills = value().parse().expect("--query-kills N"),
            "--broker-restarts" => a.broker_restarts = value().parse().expect("--broker-restarts N"),
            "--broker-kills" => a.broker_kills = value().parse().expect("--broker-kills N"),
            "--rebuilds" => a.rebuilds = value().parse().expect("--rebuilds N"),
            "--kafka" => a.kafka = true,
            "--cluster" => (a.kafka, a.cluster) = (true, true),
            "--postgres" => a.postgres = Some(value().parse().expect("--postgres PORT")),
            other => panic!("unknown flag {other}; see the header of tests/examples/chaos.rs"),
        }
    }
    a
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SKUS: u64 = 40;
const GTINS: u64 = 25;

#[derive(Clone, Debug)]
enum Outcome {
    /// 2xx: the command id and the version it made.
    Ok { command_id: String },
    /// 4xx: a definite answer that changed nothing.
    Rejected,
    /// No definite answer by the end of the run.
    Unknown,
}

#[derive(Clone, Debug)]
struct Op {
    outcome: Outcome,
    /// Answers lost before the definite one.
    retries: u32,
    /// For a success: when its first try was sent, when it was answered, and the
    /// partition of `events` its position names.
    acked: Option<Ack>,
}

#[derive(Clone, Copy, Debug)]
struct Ack {
    /// The first try: a retry of a command sent earlier may be answered from the
    /// idempotency store without a new append, so it says nothing of recovery.
    first_sent: Instant,
    answered: Instant,
    partition: Option<u32>,
}

/// Where the node currently listens (empty while it is down).
type Base = Arc<RwLock<String>>;

async fn client(id: usize, base: Base, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Op>>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1000_0000_01b3));
    let mut reservations: Vec<(u64, String)> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("c{id}-{n}");
        let sku = rng.below(SKUS);
        let (path, body) = match rng.below(10) {
            0..=2 => (
                "/products".to_owned(),
                json!({"sku": format!("CH-{sku}"), "name": format!("Chaos {sku}"), "price_cents": 100,
                       "gtin": gtin14(7_000_000_000_000 + rng.below(GTINS)), "initial_stock": rng.below(4)}),
            ),
            3..=4 => (format!("/products/CH-{sku}/stock/receipts"), json!({"quantity": 1 + rng.below(4)})),
            5..=7 => {
                let rid = format!("r{id}-{n}");
                reservations.push((sku, rid.clone()));
                (
                    format!("/products/CH-{sku}/reservations"),
                    json!({"reservation_id": rid, "quantity": 1 + rng.below(3)}),
                )
            }
            _ => match reservations.pop() {
                Some((sku, rid)) => {
                    let step = if rng.below(2) == 0 { "confirm" } else { "release" };
                    (format!("/products/CH-{sku}/reservations/{rid}/{step}"), json!({}))
                }
                None => continue,
            },
        };
        let mut retries = 0;
        let mut acked = None;
        let first_sent = Instant::now();
        let outcome = loop {
            if stop.load(Ordering::Relaxed) {
                break Outcome::Unknown;
            }
            let url = base.read().unwrap().clone();
            if url.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let sent = http.post(format!("{url}{path}")).header("idempotency-key", &key).json(&body).send().await;
            let answer = match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Some((status, body))
                }
                Err(_) => None,
            };
            match answer {
                Some((200 | 201, body)) => {
                    let partition =
                        body["position"].as_str().and_then(|p| p.split(',').next()?.split_once(':')?.0.parse().ok());
                    acked = Some(Ack { first_sent, answered: Instant::now(), partition });
                    break Outcome::Ok { command_id: body["command_id"].as_str().unwrap_or_default().to_owned() };
                }
                Some((400..=499, _)) => break Outcome::Rejected,
                // 202 (pending), 5xx, or no answer: ask again with the same key.
                _ => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        log.lock().unwrap().push(Op { outcome, retries, acked });
    }
}

/// What the log says, folded with the rules every reader uses.
#[derive(Default)]
struct Folded {
    /// Per SKU: (version, on hand, reserved, gtin).
    products: BTreeMap<String, (u64, u64, u64, Option<String>)>,
    /// Command id → how many admitted product events it caused.
    applied: HashMap<String, u32>,
    sku_dupes: u64,
    gtin_dupes: u64,
    negative: u64,
    events: u64,
}

async fn fold_log(log: &EventLog) -> Folded {
    let mut f = Folded::default();
    for event in admitted_product_events(log).await {
        let sku = event.sku.as_str().to_owned();
        let current = f.products.get(&sku).cloned();
        let version = current.as_ref().map_or(0, |c| c.0);
        if event.version <= version {
            continue; // a redelivered event: every reader skips it
        }
        f.events += 1;
        *f.applied.entry(event.command_id.as_str().to_owned()).or_default() += 1;
        let (_, mut on_hand, mut reserved, mut gtin) = current.clone().unwrap_or((0, 0, 0, None));
        let mut signed_on_hand = on_hand as i128;
        match &event.body {
            ProductEventBody::ProductRegistered { details, initial_stock, .. } => {
                if current.is_some() {
                    f.sku_dupes += 1;
                }
                signed_on_hand = *initial_stock as i128;
                reserved = 0;
                gtin = details.gtin.as_ref().map(|g| g.canonical());
            }
            ProductEventBody::DetailsUpdated { details, .. } => gtin = details.gtin.as_ref().map(|g| g.canonical()),
            ProductEventBody::StockReceived { quantity, .. } => signed_on_hand += *quantity as i128,
            ProductEventBody::StockAdjusted { delta, .. } => signed_on_hand += *delta as i128,
            ProductEventBody::StockReserved { quantity, .. } => reserved += quantity,
            ProductEventBody::ReservationConfirmed { quantity, .. } => {
                signed_on_hand -= *quantity as i128;
                reserved = reserved.saturating_sub(*quantity);
            }
            ProductEventBody::ReservationReleased { quantity, .. } => reserved = reserved.saturating_sub(*quantity),
            _ => {}
        }
        if signed_on_hand < 0 || (reserved as i128) > signed_on_hand {
            f.negative += 1;
        }
        on_hand = signed_on_hand.max(0) as u64;
        if let Some(g) = &gtin
            && f.products.iter().any(|(s, p)| *s != sku && p.3.as_ref() == Some(g))
        {
            f.gtin_dupes += 1;
        }
        f.products.insert(sku, (event.version, on_hand, reserved, gtin));
    }
    f
}

async fn open_log(backend: &Backend, dir: &std::path::Path) -> EventLog {
    match backend {
        Backend::Embedded => {
            EventLog::embedded(EmbeddedLog::open(&dir.join("log"), TopicNames::default(), None).unwrap())
        }
        Backend::Kafka { bootstrap, prefix } => {
            let config = KafkaConfig::new(bootstrap, TopicNames::new(prefix));
            EventLog::kafka(KafkaLog::connect(config).await.unwrap())
        }
    }
}

const KAFKA_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka.sh");

/// The single broker: `$STOCKROOM_KAFKA` (then this run will not restart it), else
/// the local one of scripts/kafka.sh on `$STOCKROOM_KAFKA_PORT` (9092), started if it
/// is not running; its port is returned with the topics.
fn single_broker(prefix: &str) -> (Backend, Option<u16>) {
    if let Ok(bootstrap) = std::env::var("STOCKROOM_KAFKA") {
        return (kafka_backend(&bootstrap, prefix, 4, &[]), None);
    }
    let port: u16 = std::env::var("STOCKROOM_KAFKA_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9092);
    let status = std::process::Command::new(KAFKA_SH).arg("start").status().expect("run kafka.sh");
    assert!(status.success(), "scripts/kafka.sh start failed");
    (kafka_backend(&format!("127.0.0.1:{port}"), prefix, 4, &[]), Some(port))
}

/// One broker kill of the cluster.
struct BrokerKill {
    node: u32,
    /// The partitions of `events` it led.
    led: Vec<u32>,
    at: Instant,
    /// How long it stayed dead.
    down: Duration,
    /// How long `scripts/kafka.sh start` took to bring it back.
    restart: Duration,
}

/// Kills the leader of a random partition of `events` with -9, lets the clients
/// write for 10-25 s without it (past the 9 s after which the controllers fence it
/// and move its leaderships), and starts it again on its data.
async fn kill_a_leader(cluster: &Brokers, prefix: &str, rng: &mut Rng) -> BrokerKill {
    let topics = tokio::task::block_in_place(|| cluster.describe(prefix));
    let events = &topics[&format!("{prefix}.events")].partitions;
    let chosen = &events[rng.below(events.len() as u64) as usize];
    let node = chosen.leader.unwrap_or(1 + rng.below(3) as u32);
    let led = events.iter().filter(|p| p.leader == Some(node)).map(|p| p.partition).collect();
    let at = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(node));
    tokio::time::sleep(Duration::from_millis(10_000 + rng.below(15_000))).await;
    let down = at.elapsed();
    tokio::task::block_in_place(|| cluster.start_again());
    BrokerKill { node, led, at, down, restart: at.elapsed() - down }
}

/// Per partition that took writes in the run: how long after `since` it
/// acknowledged a command first sent after `since` (`None`: not by the end of the run).
fn recovery(ops: &[Op], since: Instant) -> BTreeMap<u32, Option<Duration>> {
    let mut all = HashSet::new();
    let mut first: BTreeMap<u32, Duration> = BTreeMap::new();
    for ack in ops.iter().filter_map(|o| o.acked) {
        let Some(p) = ack.partition else { continue };
        all.insert(p);
        if ack.first_sent >= since {
            let took = ack.answered - since;
            first.entry(p).and_modify(|d| *d = (*d).min(took)).or_insert(took);
        }
    }
    all.into_iter().map(|p| (p, first.get(&p).copied())).collect()
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

/// What goes wrong, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// kill -9 of the node that takes writes (on the embedded log: the only node).
    KillWriter,
    /// kill -9 of the query node (Kafka).
    KillQuery,
    /// The broker stops and starts again (Kafka, local broker; every node of the cluster).
    RestartBroker,
    /// kill -9 of the broker leading a partition of `events`, started again a few
    /// seconds later (the cluster).
    KillBroker,
    /// A rebuild request, then a kill -9 of the query node while it rebuilds.
    RebuildThenKill,
}

/// The nodes of the run: one that does everything (embedded), or a command node and
/// a query node (Kafka).
struct Nodes {
    backend: Backend,
    /// Extra flags of the node that runs the read side (`--sql-model DSN`).
    read_args: Vec<String>,
    writer: Option<Server>,
    query: Option<Server>,
    writer_dir: tempfile::TempDir,
    query_dir: tempfile::TempDir,
}

impl Nodes {
    async fn start(backend: Backend, read_args: Vec<String>) -> Nodes {
        let (writer_dir, query_dir) = (data_dir(), data_dir());
        let read: Vec<&str> = read_args.iter().map(String::as_str).collect();
        match &backend {
            Backend::Embedded => {
                let writer = Server::start_on(&backend, writer_dir.path(), &read).await;
                Nodes { backend, read_args, writer: Some(writer), query: None, writer_dir, query_dir }
            }
            Backend::Kafka { .. } => {
                // Supervised: on a cluster, topics created a moment ago may not be in
                // every broker's metadata yet, and a node refuses to start without them.
                let writer = Server::node_supervised(&backend, "command", writer_dir.path(), &[], 5).await;
                let query = Some(Server::node_supervised(&backend, "query", query_dir.path(), &read, 5).await);
                Nodes { backend, read_args, writer: Some(writer), query, writer_dir, query_dir }
            }
        }
    }

    async fn restart_writer(&mut self) {
        // On the embedded log the writer is the only node: it runs the read side too.
        let (sub, extra) =
            if self.query.is_some() { ("command", Vec::new()) } else { ("serve", self.read_args.clone()) };
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        if let Some(old) = self.writer.take() {
            old.kill();
        }
        self.writer = Some(Server::node_supervised(&self.backend, sub, self.writer_dir.path(), &extra, 5).await);
    }

    async fn restart_query(&mut self) {
        match self.query.take() {
            Some(q) => {
                q.kill();
                let extra: Vec<&str> = self.read_args.iter().map(String::as_str).collect();
                self.query =
                    Some(Server::node_supervised(&self.backend, "query", self.query_dir.path(), &extra, 5).await);
            }
            None => self.restart_writer().await,
        }
    }

    fn writer(&self) -> &Server {
        self.writer.as_ref().expect("the writer runs")
    }

    fn query(&self) -> &Server {
        self.query.as_ref().unwrap_or_else(|| self.writer())
    }
}

/// Where the run's log lives: the embedded log, the local broker (which the run may
/// restart) or a three-broker cluster it starts (dropping it stops it, also when the
/// run panics). Drops the faults the backend cannot take.
struct Setup {
    backend: Backend,
    prefix: String,
    brokers: Option<Brokers>,
}

fn setup(args: &mut Args) -> Setup {
    let prefix = format!("chaos-{}", std::process::id());
    let mut brokers = None;
    let mut local_port = None;
    let backend = if args.cluster {
        let cluster = tokio::task::block_in_place(|| Brokers::start_fresh(Brokers::port()));
        let backend = cluster.backend(4, &prefix);
        brokers = Some(cluster);
        backend
    } else if args.kafka {
        let (backend, port) = single_broker(&prefix);
        local_port = port;
        backend
    } else {
        Backend::Embedded
    };
    if !args.kafka {
        // One node does everything: its kills are the writer kills.
        args.kills += args.query_kills;
        args.query_kills = 0;
        args.broker_restarts = 0;
    } else if brokers.is_none() && local_port.is_none() && args.broker_restarts > 0 {
        eprintln!("not restarting the broker: STOCKROOM_KAFKA names one this run did not start");
        args.broker_restarts = 0;
    }
    if brokers.is_none() && args.broker_kills > 0 {
        eprintln!("no broker kills: they need the three-broker cluster (--cluster)");
        args.broker_kills = 0;
    }
    Setup { backend, prefix, brokers }
}

/// The faults, in a random order.
fn shuffled_faults(args: &Args, rng: &mut Rng) -> Vec<Fault> {
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::KillWriter, args.kills)
        .chain(std::iter::repeat_n(Fault::KillQuery, args.query_kills))
        .chain(std::iter::repeat_n(Fault::RestartBroker, args.broker_restarts))
        .chain(std::iter::repeat_n(Fault::KillBroker, args.broker_kills))
        .chain(std::iter::repeat_n(Fault::RebuildThenKill, args.rebuilds))
        .collect();
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i as u64 + 1) as usize);
    }
    faults
}

/// What the faults did.
#[derive(Default)]
struct Injected {
    writer_kills: usize,
    query_kills: usize,
    broker_restarts: usize,
    rebuilds: usize,
    /// Of `rebuilds`, those of the SQL model.
    sql_rebuilds: usize,
    broker_kills: Vec<BrokerKill>,
    /// When each broker restart began, and when the broker served again.
    restarts: Vec<(Instant, Instant)>,
}

/// The nodes under fault, the clients' address, and what has been done to them.
struct Chaos<'a> {
    setup: &'a Setup,
    nodes: Nodes,
    base: Base,
    rng: Rng,
    done: Injected,
}

impl Chaos<'_> {
    /// Kills or restarts the query node; the clients wait while the only node is down.
    async fn restart_query(&mut self) {
        if self.nodes.query.is_none() {
            self.base.write().unwrap().clear();
        }
        self.nodes.restart_query().await;
        *self.base.write().unwrap() = self.nodes.writer().url("");
        self.done.query_kills += 1;
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::KillWriter => {
                self.base.write().unwrap().clear();
                self.nodes.restart_writer().await;
                *self.base.write().unwrap() = self.nodes.writer().url("");
                self.done.writer_kills += 1;
            }
            Fault::KillQuery => self.restart_query().await,
            Fault::RestartBroker => {
                let began = Instant::now();
                tokio::task::block_in_place(|| match &self.setup.brokers {
                    Some(cluster) => cluster.restart(),
                    None => {
                        let status =
                            std::process::Command::new(KAFKA_SH).arg("restart").status().expect("run kafka.sh");
                        assert!(status.success(), "scripts/kafka.sh restart failed");
                    }
                });
                self.done.restarts.push((began, Instant::now()));
                self.done.broker_restarts += 1;
            }
            Fault::KillBroker => {
                let cluster = self.setup.brokers.as_ref().expect("broker kills run on the cluster");
                let kill = kill_a_leader(cluster, &self.setup.prefix, &mut self.rng).await;
                eprintln!(
                    "broker kill {}: node {} (leader of events partitions {:?}) down {:.1} s, serving again {:.1} s after its start",
                    self.done.broker_kills.len() + 1,
                    kill.node,
                    kill.led,
                    kill.down.as_secs_f64(),
                    kill.restart.as_secs_f64()
                );
                self.done.broker_kills.push(kill);
            }
            Fault::RebuildThenKill => {
                // With the SQL model kept, every other rebuild is of it, the first one
                // too (so that even a quick run with one rebuild rebuilds it).
                let sql = !self.nodes.read_args.is_empty() && self.done.rebuilds.is_multiple_of(2);
                let view = if sql { "sql" } else { "catalog" };
                let asked = self.nodes.query().post("/admin/replay", json!({"view": view})).await;
                if asked.status.as_u16() == 202 {
                    self.done.rebuilds += 1;
                    self.done.sql_rebuilds += usize::from(sql);
                    eprintln!("chaos: a rebuild of {view} asked for; the query node is killed next");
                }
                tokio::time::sleep(Duration::from_millis(self.rng.below(150))).await;
                self.restart_query().await;
            }
        }
    }

    /// The faults, spread over `run`: the time left is shared among the faults left,
    /// so a slow fault (a broker restart) shortens the gaps after it rather than
    /// crowding faults out.
    async fn run(&mut self, faults: Vec<Fault>, run: Duration) {
        let started = Instant::now();
        let planned = faults.len();
        for (i, fault) in faults.into_iter().enumerate() {
            let gap = run.saturating_sub(started.elapsed()).as_millis() as u64 / (planned - i + 1) as u64;
            tokio::time::sleep(Duration::from_millis(gap / 2 + self.rng.below(gap.max(1)))).await;
            if started.elapsed() >= run {
                break;
            }
            eprintln!("chaos: {fault:?} at {:.1} s", started.elapsed().as_secs_f64());
            self.inject(fault).await;
        }
        while started.elapsed() < run {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every SKU's view after a clean restart of the node serving reads, and — when the
/// node keeps the SQL read model — its rows once it has caught up with the log
/// (`None`: it never did within a minute).
async fn final_views(nodes: Nodes, backend: &Backend, sql: Option<&Client>) -> FinalViews {
    let read_args: Vec<String> = nodes.read_args.clone();
    let read: Vec<&str> = read_args.iter().map(String::as_str).collect();
    let Nodes { writer, query, writer_dir, query_dir, .. } = nodes;
    let _ = writer.expect("the writer runs").stop().await;
    let (sub, dir) = match query {
        Some(q) => {
            let _ = q.stop().await;
            ("query", query_dir.path())
        }
        None => ("serve", writer_dir.path()),
    };
    // Ready means the catalog has caught up with the log's head, which holds every write.
    let server = Server::node_supervised(backend, sub, dir, &read, 5).await;
    let mut views = BTreeMap::new();
    for s in 0..SKUS {
        let a = server.get(&format!("/products/CH-{s}")).await;
        if a.status.as_u16() == 200 {
            views.insert(format!("CH-{s}"), a.body);
        }
    }
    let sql_rows = match sql {
        Some(client) => Some(match sql_model_caught_up(&server, Duration::from_secs(60)).await {
            Ok(()) => sql_model_rows(client).await.map_err(|e| eprintln!("cannot read the sql model: {e}")).ok(),
            Err(views) => {
                eprintln!("the sql model never caught up with the log: {views}");
                None
            }
        }),
        None => None,
    };
    let _ = server.stop().await;
    FinalViews { views, sql_rows, writer_dir }
}

struct FinalViews {
    views: BTreeMap<String, Value>,
    /// `Some(None)`: the SQL model was kept but never caught up.
    sql_rows: Option<Option<BTreeMap<String, Value>>>,
    writer_dir: tempfile::TempDir,
}

/// SQL rows that differ from the catalog's view of their product (the comparison of
/// tests/tests/sql_model.rs), whose movements do not sum to their stock (a movement
/// missing or applied twice), or that exist on one side only. Every product is
/// counted as a difference when the model never caught up.
fn sql_diffs(views: &BTreeMap<String, Value>, rows: &Option<BTreeMap<String, Value>>) -> usize {
    let Some(rows) = rows else { return views.len().max(1) };
    let mut diffs = 0;
    for (sku, view) in views {
        let expected = json!({
            "name": view["name"], "price_cents": view["price_cents"], "version": view["version"],
            "status": view["status"],
            "stock": {"on_hand": view["stock"]["on_hand"], "reserved": view["stock"]["reserved"],
                      "available": view["stock"]["available"]},
            "movements": {"on_hand": view["stock"]["on_hand"], "reserved": view["stock"]["reserved"]},
        });
        if rows.get(sku) != Some(&expected) {
            diffs += 1;
            eprintln!("sql model of {sku} differs from the catalog: {:?} vs {expected}", rows.get(sku));
        }
    }
    for sku in rows.keys().filter(|s| !views.contains_key(*s)) {
        diffs += 1;
        eprintln!("sql model has {sku}, the catalog does not");
    }
    diffs
}

/// Views that differ from the log's fold (or exist without a product in the log).
fn view_diffs(views: &BTreeMap<String, Value>, folded: &Folded) -> usize {
    let mut diffs = 0;
    let skus: HashSet<&String> = folded.products.keys().collect();
    for sku in &skus {
        let (version, on_hand, reserved, _) = &folded.products[sku.as_str()];
        let ok = views.get(sku.as_str()).is_some_and(|v| {
            v["version"] == json!(version)
                && v["stock"]["on_hand"] == json!(on_hand)
                && v["stock"]["reserved"] == json!(reserved)
        });
        if !ok {
            diffs += 1;
            eprintln!(
                "view of {sku} differs from the log: {:?} vs {:?}",
                views.get(sku.as_str()),
                folded.products[sku.as_str()]
            );
        }
    }
    diffs + views.keys().filter(|s| !skus.contains(s)).count()
}

/// Per broker kill: how long until every partition had acknowledged a write first
/// sent after it ("never": not before the run ended). Per restart (graceful: the
/// broker answers until it stops): how long the restart took, and from then until
/// every partition had acknowledged a write first sent after it.
fn recoveries(ops: &[Op], done: &Injected) -> (Vec<String>, Vec<String>) {
    let slowest = |since: Instant| {
        let per_partition = recovery(ops, since);
        let all = per_partition.values().try_fold(Duration::ZERO, |m, d| d.map(|d| m.max(d)));
        (per_partition, all)
    };
    let restarts = done
        .restarts
        .iter()
        .map(|(began, back)| format!("{:.1}s+{}", (*back - *began).as_secs_f64(), seconds(slowest(*back).1)))
        .collect();
    let mut kills = Vec::new();
    for (i, kill) in done.broker_kills.iter().enumerate() {
        let (per_partition, all) = slowest(kill.at);
        let detail: Vec<String> = per_partition.iter().map(|(p, d)| format!("p{p} {}", seconds(*d))).collect();
        eprintln!(
            "broker kill {}: node {} (led {:?}), down {:.1} s, restart {:.1} s; writes again after: {}",
            i + 1,
            kill.node,
            kill.led,
            kill.down.as_secs_f64(),
            kill.restart.as_secs_f64(),
            detail.join(", ")
        );
        kills.push(seconds(all));
    }
    (restarts, kills)
}

/// Prints the run's line; the number of violations.
fn report(
    args: &Args,
    ops: &[Op],
    done: &Injected,
    folded: &Folded,
    view_diffs: usize,
    sql_diffs: Option<usize>,
) -> usize {
    let acked = ops.iter().filter(|o| matches!(o.outcome, Outcome::Ok { .. })).count();
    let lost = ops
        .iter()
        .filter(
            |o| matches!(&o.outcome, Outcome::Ok { command_id } if !folded.applied.contains_key(command_id.as_str())),
        )
        .count();
    let duplicated = folded.applied.values().filter(|n| **n > 1).count();
    let unknown = ops.iter().filter(|o| matches!(o.outcome, Outcome::Unknown)).count();
    let retried = ops.iter().filter(|o| o.retries > 0 && !matches!(o.outcome, Outcome::Unknown)).count();
    let rejected = ops.iter().filter(|o| matches!(o.outcome, Outcome::Rejected)).count();
    let (restart_recoveries, kill_recoveries) = recoveries(ops, done);
    let violations = lost
        + duplicated
        + folded.sku_dupes as usize
        + folded.gtin_dupes as usize
        + folded.negative as usize
        + view_diffs
        + sql_diffs.unwrap_or(0);
    let backend = if args.cluster {
        "kafka-cluster"
    } else if args.kafka {
        "kafka"
    } else {
        "embedded"
    };
    println!(
        "chaos backend={backend} seconds={} clients={} kills={} query_kills={} rebuilds={} sql_rebuilds={} \
         broker_restarts={} restart_recovery=[{}] broker_kills={} kill_recovery=[{}] requests={} \
         acknowledged={acked} \
         rejected={rejected} events={} lost={lost} duplicated={duplicated} sku_dupes={} gtin_dupes={} negative={} \
         view_diffs={view_diffs} sql_diffs={} unknown={unknown} retried_then_answered={retried} -> {}",
        args.seconds,
        args.clients,
        done.writer_kills,
        done.query_kills,
        done.rebuilds,
        done.sql_rebuilds,
        done.broker_restarts,
        restart_recoveries.join(","),
        done.broker_kills.len(),
        kill_recoveries.join(","),
        ops.len(),
        folded.events,
        folded.sku_dupes,
        folded.gtin_dupes,
        folded.negative,
        sql_diffs.map_or("-".into(), |n| n.to_string()),
        if violations == 0 { "OK" } else { "VIOLATIONS" },
    );
    violations
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = args();
    let mut setup = setup(&mut args);
    // The SQL read model, in a database of its own on the PostgreSQL that
    // scripts/postgres.sh runs on `--postgres PORT`, kept by the node that serves reads.
    let pg = args.postgres.map(|port| tokio::task::block_in_place(|| Postgres::start(port)));
    let sql_db = match &pg {
        Some(pg) => Some(pg.database("chaos").await),
        None => None,
    };
    let read_args = match (&pg, &sql_db) {
        (Some(pg), Some(db)) => vec!["--sql-model".to_owned(), pg.dsn(db)],
        _ => Vec::new(),
    };
    let nodes = Nodes::start(setup.backend.clone(), read_args).await;
    let base: Base = Arc::new(RwLock::new(nodes.writer().url("")));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> =
        (0..args.clients).map(|i| tokio::spawn(client(i, base.clone(), stop.clone(), ops.clone()))).collect();

    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let faults = shuffled_faults(&args, &mut rng);
    let mut chaos = Chaos { setup: &setup, nodes, base, rng, done: Injected::default() };
    chaos.run(faults, Duration::from_secs(args.seconds)).await;
    let Chaos { nodes, done, .. } = chaos;
    // Give the clients a moment to get answers for what is in flight, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let sql_client = match (&pg, &sql_db) {
        (Some(pg), Some(db)) => Some(pg.connect(db).await),
        _ => None,
    };
    let FinalViews { views, sql_rows, writer_dir } = final_views(nodes, &setup.backend, sql_client.as_ref()).await;
    let log = open_log(&setup.backend, writer_dir.path()).await;
    let folded = fold_log(&log).await;
    let _ = log.close().await;
    if let Some(cluster) = setup.brokers.take() {
        tokio::task::block_in_place(|| cluster.stop());
    }
    let ops = ops.lock().unwrap().clone();
    let diffs = view_diffs(&views, &folded);
    let sql_diffs = sql_rows.map(|rows| sql_diffs(&views, &rows));
    let violations = report(&args, &ops, &done, &folded, diffs, sql_diffs);
    if let (Some(pg), Some(db)) = (&pg, &sql_db) {
        drop(sql_client);
        if violations == 0 {
            pg.drop_database(db).await;
        } else {
            eprintln!("the sql model is kept for a look: {}", pg.dsn(db));
        }
    }
    if violations > 0 {
        std::process::exit(1);
    }
}
