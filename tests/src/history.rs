//! The write history of the Kafka tests, and the three-broker cluster some of them
//! run it on.
//!
//! - [`Write`]: one stock receipt or reservation with its `Idempotency-Key`, which
//!   a client sends again (as a careful client does after a 202, a 503 or a refused
//!   connection) until it is acknowledged; [`send`], [`record_ack`] and [`settle`]
//!   do that, and [`check_exactly_once`] checks that the views hold every
//!   acknowledged write exactly once (tests/tests/cluster.rs, replication.rs).
//! - [`Brokers`]: a three-node Apache Kafka cluster with the production settings
//!   (replication factor 3, `min.insync.replicas=2`, unclean leader election off),
//!   run by `scripts/kafka.sh` on its own port (19092 unless
//!   `$STOCKROOM_CLUSTER_PORT`), never on the single test broker's (replication.rs,
//!   examples/chaos.rs `--cluster`).
//! - [`admitted_product_events`]: the log's product events as every reader admits
//!   them, for the checkers that fold the log themselves.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockroom_domain::product::ProductEvent;
use stockroom_topics::events::{LogEntry, decode_entry, envelope_of};
use stockroom_topics::{Admission, EventLog, FenceTracker, Offset, Partition, Topic};

use crate::{Answer, Backend, Server, binary};

/// A registration body for `sku` (no GTIN, no initial stock).
pub fn product(sku: &str) -> Value {
    json!({"sku": sku, "name": format!("Item {sku}"), "brand": "Acme", "category": "parts", "price_cents": 100})
}

/// Registers every SKU (201 each).
pub async fn register(server: &Server, skus: &[String]) {
    for sku in skus {
        server.post("/products", product(sku)).await.expect(201);
    }
}

/// What a write does to its product's stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `POST /products/{sku}/stock/receipts`: on hand grows by `quantity` (200).
    Receipt { quantity: u64 },
    /// `POST /products/{sku}/reservations`: reserved grows by `quantity` (201).
    Reservation { id: String, quantity: u64 },
}

/// The first success of a write.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The product's version after the write.
    pub version: u64,
    /// The position token that came with it (`partition:offset`).
    pub position: String,
    pub command_id: String,
}

impl Ack {
    /// The partition of `events` the write went to.
    pub fn partition(&self) -> u32 {
        let first = self.position.split(',').next().unwrap_or_default();
        first.split_once(':').and_then(|(p, _)| p.parse().ok()).expect("a position token partition:offset")
    }
}

/// A write a client keeps retrying, with its idempotency key, until it is answered
/// with success, as a real client would after a 503, a 202 or a refused connection.
#[derive(Clone, Debug)]
pub struct Write {
    pub sku: String,
    pub key: String,
    pub change: Change,
    pub acked: Option<Ack>,
}

impl Write {
    pub fn receipt(sku: &str, key: String, quantity: u64) -> Write {
        Write { sku: sku.to_owned(), key, change: Change::Receipt { quantity }, acked: None }
    }

    pub fn reservation(sku: &str, key: String, quantity: u64) -> Write {
        let id = format!("res-{key}");
        Write { sku: sku.to_owned(), key, change: Change::Reservation { id, quantity }, acked: None }
    }

    fn request(&self) -> (String, Value, u16) {
        match &self.change {
            Change::Receipt { quantity } => {
                (format!("/products/{}/stock/receipts", self.sku), json!({"quantity": quantity}), 200)
            }
            Change::Reservation { id, quantity } => (
                format!("/products/{}/reservations", self.sku),
                json!({"reservation_id": id, "quantity": quantity}),
                201,
            ),
        }
    }
}

/// `per_sku` receipts of one unit for each SKU, interleaved across SKUs.
pub fn writes(skus: &[String], per_sku: usize, tag: &str) -> Vec<Write> {
    (0..per_sku).flat_map(|i| skus.iter().map(move |s| Write::receipt(s, format!("{tag}-{s}-{i}"), 1))).collect()
}

/// Sends `w` once (15 s bound); `None` if no answer came (refused, reset, timed out).
pub async fn send(server: &Server, w: &Write) -> Option<Answer> {
    let (path, body, _) = w.request();
    let req = server
        .http
        .post(server.url(&path))
        .header("idempotency-key", &w.key)
        .json(&body)
        .timeout(Duration::from_secs(15));
    let response = req.send().await.ok()?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Some(Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text })
}

/// Records a success of `w` (true), or checks that the answer invites a retry
/// (202 pending, 503 unavailable: false); anything else fails the test. A retry of
/// an acknowledged write must answer the original version.
pub fn record_ack(w: &mut Write, a: &Answer) -> bool {
    let (_, _, success) = w.request();
    if a.status.as_u16() != success {
        assert!(
            matches!(a.status.as_u16(), 202 | 503),
            "a retryable write got {} {} (sku {}, key {})",
            a.status,
            a.text,
            w.sku,
            w.key
        );
        return false;
    }
    let version = a.body["version"].as_u64().expect("version");
    let position = a.body["position"].as_str().expect("position").to_owned();
    let command_id = a.body["command_id"].as_str().expect("command_id").to_owned();
    match &w.acked {
        // A retry of an acknowledged write answers the original outcome.
        Some(ack) => assert_eq!(ack.version, version, "key {} was acknowledged at two versions", w.key),
        None => w.acked = Some(Ack { version, position, command_id }),
    }
    true
}

/// Retries every write that has no success yet, on any of `servers`, until all have one.
pub async fn settle(servers: &[&Server], writes: &mut [Write]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0usize;
    loop {
        let mut open = 0;
        for (i, w) in writes.iter_mut().enumerate() {
            if w.acked.is_some() {
                continue;
            }
            let server = servers[(i + round) % servers.len()];
            match send(server, w).await {
                Some(a) if record_ack(w, &a) => {}
                _ => open += 1,
            }
        }
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} writes never succeeded");
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every success of every write is in the views exactly once: per product (registered
/// with no stock, so at version 1), the acknowledged versions are distinct and
/// contiguous from 2, and the view's version, on hand and reserved count exactly the
/// acknowledged writes. Returns the views.
pub async fn check_exactly_once(query: &Server, writes: &[Write]) -> BTreeMap<String, Value> {
    let mut by_sku: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
    for w in writes {
        by_sku.entry(&w.sku).or_default().push(w);
    }
    let position = latest_position(writes);
    let mut views = BTreeMap::new();
    for (sku, ws) in by_sku {
        let mut versions: Vec<u64> = ws.iter().map(|w| w.acked.as_ref().expect("settled").version).collect();
        versions.sort();
        let expected: Vec<u64> = (2..2 + versions.len() as u64).collect();
        assert_eq!(versions, expected, "{sku}: two writes acknowledged at one version, or a version skipped");
        let (mut on_hand, mut reserved) = (0, 0);
        for w in &ws {
            match &w.change {
                Change::Receipt { quantity } => on_hand += quantity,
                Change::Reservation { quantity, .. } => reserved += quantity,
            }
        }
        let view = query.get_at(&format!("/products/{sku}"), &position).await.expect(200).body;
        assert_eq!(view["version"], 1 + versions.len() as u64, "{sku}: {view}");
        assert_eq!(view["stock"]["on_hand"], on_hand, "{sku}: {view}");
        assert_eq!(view["stock"]["reserved"], reserved, "{sku}: {view}");
        views.insert(sku.to_owned(), view);
    }
    views
}

/// The union of the positions of all successes: a read at it sees all of them.
pub fn latest_position(writes: &[Write]) -> String {
    let mut max: BTreeMap<u32, u64> = BTreeMap::new();
    for ack in writes.iter().filter_map(|w| w.acked.as_ref()) {
        for part in ack.position.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once(':').expect("p:o");
            let e = max.entry(p.parse().unwrap()).or_default();
            *e = (*e).max(o.parse().unwrap());
        }
    }
    max.iter().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(",")
}

/// One partition as `TopicCommand --describe` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: u32,
    /// The leader's node id; `None` while the partition has none.
    pub leader: Option<u32>,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
}

/// One topic as `TopicCommand --describe` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicState {
    /// Its line: `Topic: t  TopicId: ..  PartitionCount: 4  ReplicationFactor: 3  Configs: ..`.
    pub line: String,
    pub partitions: Vec<PartitionState>,
}

/// A three-node Apache Kafka cluster (KRaft, combined broker and controller nodes)
/// run by `scripts/kafka.sh start --nodes 3` on 127.0.0.1:`port`..`port + 2`. Node i
/// (1..=3) is broker id i. One test process at a time has it (a lock file next to
/// the cluster's data). Dropping it stops the cluster (the data stays until the next
/// [`Brokers::start_fresh`]), so a failing test leaves nothing running.
pub struct Brokers {
    pub port: u16,
    /// `127.0.0.1:port,127.0.0.1:port+1,127.0.0.1:port+2`.
    pub bootstrap: String,
    stopped: bool,
    _lock: std::fs::File,
}

impl Brokers {
    /// `$STOCKROOM_CLUSTER_PORT`, else 19092: away from the single test broker (9092).
    pub fn port() -> u16 {
        std::env::var("STOCKROOM_CLUSTER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(19092)
    }

    /// Wipes whatever an earlier run left on `port` (a cluster still running, a node
    /// killed, another size) and starts three fresh nodes; returns once each serves.
    pub fn start_fresh(port: u16) -> Brokers {
        let cache = std::env::var("STOCKROOM_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| Path::new(&std::env::var("HOME").expect("HOME")).join(".cache/stockroom"));
        std::fs::create_dir_all(&cache).expect("create the cache directory");
        let lock = std::fs::File::create(cache.join(format!("kafka-{port}.cluster-test.lock"))).expect("lock file");
        if lock.try_lock().is_err() {
            eprintln!("waiting for another run to finish with the cluster on port {port}");
            lock.lock().expect("lock the cluster");
        }
        let started = Instant::now();
        kafka_sh(port, &["wipe"]);
        kafka_sh(port, &["start", "--nodes", "3"]);
        let bootstrap = (0..3).map(|i| format!("127.0.0.1:{}", port + i)).collect::<Vec<_>>().join(",");
        eprintln!("three brokers on {bootstrap}, started in {:.1} s", started.elapsed().as_secs_f64());
        Brokers { port, bootstrap, stopped: false, _lock: lock }
    }

    /// Fresh topics (`partitions` each) with replication factor 3 and
    /// `min.insync.replicas=2`, by `stockroom topics create`.
    pub fn backend(&self, partitions: u32, prefix: &str) -> Backend {
        let flags = ["--replication", "3", "--topic-config", "min.insync.replicas=2"];
        kafka_backend(&self.bootstrap, prefix, partitions, &flags)
    }

    /// `kill -9` of node `node` (1..=3).
    pub fn kill(&self, node: u32) {
        kafka_sh(self.port, &["kill", &node.to_string()]);
    }

    /// Starts the nodes that are not running (a killed one comes back on its data);
    /// returns once every node serves.
    pub fn start_again(&self) {
        kafka_sh(self.port, &["start", "--nodes", "3"]);
    }

    /// Stops every node and starts them again (the data survives).
    pub fn restart(&self) {
        kafka_sh(self.port, &["restart", "--nodes", "3"]);
    }

    /// The topics whose names start with `prefix.`, with their partitions' leaders
    /// and in-sync replicas, from Kafka's own `TopicCommand --describe` (one JVM
    /// start, a few seconds), by topic name.
    pub fn describe(&self, prefix: &str) -> BTreeMap<String, TopicState> {
        let pattern = format!("{}\\..*", prefix.replace('.', "\\."));
        let out = Command::new(script())
            .env("STOCKROOM_KAFKA_PORT", self.port.to_string())
            .env_remove("STOCKROOM_KAFKA_HOME")
            .args(["tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", &self.bootstrap])
            .args(["--describe", "--topic", &pattern])
            .output()
            .expect("run TopicCommand");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "TopicCommand --describe failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        parse_describe(&text)
    }

    /// Stops the cluster now (dropping it does the same).
    pub fn stop(mut self) {
        self.stopped = true;
        kafka_sh(self.port, &["stop"]);
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        if !self.stopped {
            // Not `kafka_sh`: a panic while unwinding would abort the test process.
            let _ = Command::new(script())
                .env("STOCKROOM_KAFKA_PORT", self.port.to_string())
                .env_remove("STOCKROOM_KAFKA_HOME")
                .arg("stop")
                .status();
        }
    }
}

/// Topics named `prefix.*` on `bootstrap`, made by `stockroom topics create` with
/// `partitions` and any further `flags` (a busy broker sometimes times the request
/// out: a few tries).
pub fn kafka_backend(bootstrap: &str, prefix: &str, partitions: u32, flags: &[&str]) -> Backend {
    let mut attempts = 0;
    loop {
        let out = Command::new(binary())
            .args(["topics", "create", "--kafka", bootstrap, "--topic-prefix", prefix])
            .args(["--partitions", &partitions.to_string()])
            .args(flags)
            .output()
            .expect("run stockroom topics create");
        if out.status.success() {
            break;
        }
        attempts += 1;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(attempts < 3, "topics create failed {attempts} times: {err}");
        eprintln!("topics create failed ({err}); trying again");
        std::thread::sleep(Duration::from_secs(2));
    }
    Backend::Kafka { bootstrap: bootstrap.to_owned(), prefix: prefix.to_owned() }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh")
}

/// Runs scripts/kafka.sh on `port` (its own data directory under the cache, whatever
/// `$STOCKROOM_KAFKA_HOME` says: that one belongs to the single test broker).
fn kafka_sh(port: u16, args: &[&str]) {
    let status = Command::new(script())
        .env("STOCKROOM_KAFKA_PORT", port.to_string())
        .env_remove("STOCKROOM_KAFKA_HOME")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run scripts/kafka.sh");
    assert!(status.success(), "scripts/kafka.sh {} on port {port} failed", args.join(" "));
}

/// `Topic: t\tTopicId: ..\tPartitionCount: 4\tReplicationFactor: 3\tConfigs: ..` and
/// `\tTopic: t\tPartition: 0\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3,1\t...` lines.
fn parse_describe(text: &str) -> BTreeMap<String, TopicState> {
    let mut topics: BTreeMap<String, TopicState> = BTreeMap::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> =
            line.split('\t').filter_map(|f| f.trim().split_once(':')).map(|(k, v)| (k.trim(), v.trim())).collect();
        let Some(name) = fields.get("Topic") else { continue };
        let topic = topics
            .entry((*name).to_owned())
            .or_insert_with(|| TopicState { line: String::new(), partitions: Vec::new() });
        let Some(p) = fields.get("Partition") else {
            topic.line = line.trim().to_owned();
            continue;
        };
        let ids = |k: &str| -> Vec<u32> {
            fields.get(k).map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect()).unwrap_or_default()
        };
        topic.partitions.push(PartitionState {
            partition: p.parse().expect("partition number"),
            // "none" (or -1) while no replica leads.
            leader: fields.get("Leader").and_then(|l| l.parse().ok()),
            replicas: ids("Replicas"),
            isr: ids("Isr"),
        });
    }
    for t in topics.values_mut() {
        t.partitions.sort_by_key(|p| p.partition);
    }
    topics
}

/// Every product event of the log that readers admit (records of fenced-off writers
/// and unreadable records are skipped), partition by partition from offset 0.
pub async fn admitted_product_events(log: &EventLog) -> Vec<ProductEvent> {
    let mut events = Vec::new();
    let mut fences = FenceTracker::default();
    for p in 0..log.partitions(Topic::Events) {
        let end = log.end_offset(Topic::Events, Partition(p)).await.expect("the end of events");
        if end.0 == 0 {
            continue;
        }
        let mut reader = log.reader(Topic::Events, &[(Partition(p), Offset(0))]).expect("a reader of events");
        let mut next = 0;
        while next < end.0 {
            for record in reader.poll(10_000, Duration::from_secs(5)).await.expect("read events") {
                next = record.offset.0 + 1;
                let Ok(env) = envelope_of(&record) else { continue };
                if fences.admit(record.partition, &env) != Admission::Current {
                    continue;
                }
                if let Ok(LogEntry::Product(event)) = decode_entry(&env, &record) {
                    events.push(*event);
                }
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::{Ack, PartitionState, parse_describe};

    #[test]
    fn reads_topic_command_describe() {
        let text = "Topic: s.events\tTopicId: abc\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: \
                    min.insync.replicas=2,retention.ms=-1\n\
                    \tTopic: s.events\tPartition: 1\tLeader: none\tReplicas: 3,1,2\tIsr: 1\tElr: \tLastKnownElr: \n\
                    \tTopic: s.events\tPartition: 0\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3\tElr: \tLastKnownElr: \n";
        let topics = parse_describe(text);
        assert_eq!(topics.keys().collect::<Vec<_>>(), ["s.events"]);
        let topic = &topics["s.events"];
        assert!(topic.line.contains("ReplicationFactor: 3"), "{}", topic.line);
        assert!(topic.line.contains("min.insync.replicas=2"), "{}", topic.line);
        assert_eq!(
            topic.partitions,
            vec![
                PartitionState { partition: 0, leader: Some(2), replicas: vec![2, 3, 1], isr: vec![2, 3] },
                PartitionState { partition: 1, leader: None, replicas: vec![3, 1, 2], isr: vec![1] },
            ]
        );
    }

    #[test]
    fn an_ack_knows_its_partition() {
        let ack = Ack { version: 2, position: "3:17".into(), command_id: "c".into() };
        assert_eq!(ack.partition(), 3);
    }
}
