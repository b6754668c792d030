//! Replication on a real three-broker Apache Kafka cluster with the production
//! settings (replication factor 3, `min.insync.replicas=2`, unclean leader election
//! off; Stockroom produces idempotently with `acks=all`): the broker that leads
//! partitions of `events` is killed with `kill -9` under a write load and comes back
//! later, and still no acknowledged write is lost, none is applied twice, and the
//! query node's views are the log's fold.
//!
//! The test starts the cluster itself (`scripts/kafka.sh start --nodes 3` on
//! 127.0.0.1:19092-19094, or `$STOCKROOM_CLUSTER_PORT`; never the single test broker
//! on 9092), from nothing, and stops it at the end, also when it fails. It prints the
//! figures: writes sent, acknowledged, lost, doubled, and how long until every
//! partition took writes again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use stockroom_domain::product::ProductEventBody;
use stockroom_tests::history::{
    Brokers, Change, PartitionState, Write, admitted_product_events, check_exactly_once, record_ack, register, send,
    settle,
};
use stockroom_tests::{Backend, Server, data_dir};
use stockroom_topics::kafka::{KafkaConfig, KafkaLog};
use stockroom_topics::partitioner::partition_for_key;
use stockroom_topics::{EventLog, TopicNames};

const PARTITIONS: u32 = 4;
/// SKUs per partition, so that every partition carries writes.
const SKUS_PER_PARTITION: usize = 2;

/// One try of one write.
struct Attempt {
    /// When the write's first try was sent: a retry of a write sent earlier may be
    /// answered from the idempotency store without a new append, so only writes
    /// first sent after a moment say whether the log takes writes since then.
    first_sent: Instant,
    answered: Instant,
    /// The partition of `events` it went to, if this try was acknowledged.
    acked_on: Option<u32>,
}

type Attempts = Arc<Mutex<Vec<Attempt>>>;

/// One client per SKU: receipts and reservations one after another, each retried
/// with its key until acknowledged or until the load stops (then `settle` finishes it).
async fn client(server: Arc<Server>, sku: String, stop: Arc<AtomicBool>, attempts: Attempts) -> Vec<Write> {
    let mut done = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("load-{sku}-{n}");
        let mut w =
            if n.is_multiple_of(3) { Write::reservation(&sku, key, 1) } else { Write::receipt(&sku, key, 1 + n % 3) };
        let first_sent = Instant::now();
        loop {
            let answer = send(&server, &w).await;
            let acked = answer.as_ref().is_some_and(|a| record_ack(&mut w, a));
            let acked_on = if acked { w.acked.as_ref().map(|a| a.partition()) } else { None };
            attempts.lock().unwrap().push(Attempt { first_sent, answered: Instant::now(), acked_on });
            if acked || stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        done.push(w);
    }
    done
}

/// Per partition: how long after `since` a write first sent after `since` was first acknowledged.
fn first_acks_after(attempts: &Attempts, since: Instant) -> BTreeMap<u32, Duration> {
    let mut first = BTreeMap::new();
    for a in attempts.lock().unwrap().iter().filter(|a| a.first_sent >= since) {
        if let Some(p) = a.acked_on {
            let took = a.answered - since;
            first.entry(p).and_modify(|d: &mut Duration| *d = (*d).min(took)).or_insert(took);
        }
    }
    first
}

/// The longest time between two acknowledgements on one partition in `[from, to]`.
fn longest_gap(attempts: &Attempts, from: Instant, to: Instant) -> Duration {
    let mut by_partition: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
    for a in attempts.lock().unwrap().iter() {
        if let Some(p) = a.acked_on {
            by_partition.entry(p).or_default().push(a.answered);
        }
    }
    let mut gap = Duration::ZERO;
    for mut times in by_partition.into_values() {
        times.push(from);
        times.push(to);
        times.retain(|t| *t >= from && *t <= to);
        times.sort();
        for w in times.windows(2) {
            gap = gap.max(w[1] - w[0]);
        }
    }
    gap
}

fn leaders(parts: &[PartitionState]) -> String {
    parts
        .iter()
        .map(|p| format!("p{}→{}", p.partition, p.leader.map_or("none".into(), |l| l.to_string())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Per product, as every reader folds the log: version, on hand, reserved; and how
/// many admitted events each command id caused.
#[derive(Default)]
struct Folded {
    products: BTreeMap<String, (u64, u64, u64)>,
    applied: HashMap<String, u32>,
}

async fn fold_log(backend: &Backend) -> Folded {
    let Backend::Kafka { bootstrap, prefix } = backend else { unreachable!("a Kafka test") };
    let log = EventLog::kafka(KafkaLog::connect(KafkaConfig::new(bootstrap, TopicNames::new(prefix))).await.unwrap());
    let mut f = Folded::default();
    for event in admitted_product_events(&log).await {
        let sku = event.sku.as_str().to_owned();
        let (version, mut on_hand, mut reserved) = f.products.get(&sku).copied().unwrap_or_default();
        if event.version != version + 1 {
            continue; // every reader skips an event that is not the next version
        }
        *f.applied.entry(event.command_id.as_str().to_owned()).or_default() += 1;
        match event.body {
            ProductEventBody::ProductRegistered { initial_stock, .. } => on_hand = initial_stock,
            ProductEventBody::StockReceived { quantity, .. } => on_hand += quantity,
            ProductEventBody::StockReserved { quantity, .. } => reserved += quantity,
            _ => {}
        }
        f.products.insert(sku, (event.version, on_hand, reserved));
    }
    let _ = log.close().await;
    f
}

/// Runs a blocking step (a script) without stalling the clients.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_under_load_loses_no_acknowledged_write() {
    let test_started = Instant::now();
    // Declared first, so dropped last: the nodes stop before the brokers do.
    let brokers = blocking(|| Brokers::start_fresh(Brokers::port()));
    let brokers_started = test_started.elapsed();
    let prefix = format!("repl-{}", std::process::id());
    let backend = brokers.backend(PARTITIONS, &prefix);
    let (events, commands) = (format!("{prefix}.events"), format!("{prefix}.commands"));
    let topics = blocking(|| brokers.describe(&prefix));
    for name in [&events, &commands] {
        let topic = &topics[name];
        assert!(topic.line.contains("ReplicationFactor: 3"), "{}", topic.line);
        assert!(topic.line.contains("min.insync.replicas=2"), "{}", topic.line);
        assert!(topic.partitions.iter().all(|p| p.isr.len() == 3), "{topic:?}");
    }

    let (d1, d2) = (data_dir(), data_dir());
    // Supervised: topics created a moment ago may not be in every broker's metadata
    // yet, and a node refuses to start without them.
    let command = Arc::new(Server::node_supervised(&backend, "command", d1.path(), &["--node-id", "c1"], 5).await);
    let query = Server::node_supervised(&backend, "query", d2.path(), &["--node-id", "q1"], 5).await;

    let mut per_partition: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for i in 0.. {
        let sku = format!("R-{i}");
        let skus = per_partition.entry(partition_for_key(sku.as_bytes(), PARTITIONS).0).or_default();
        if skus.len() < SKUS_PER_PARTITION {
            skus.push(sku);
        }
        if per_partition.len() == PARTITIONS as usize && per_partition.values().all(|s| s.len() == SKUS_PER_PARTITION) {
            break;
        }
    }
    let skus: Vec<String> = per_partition.into_values().flatten().collect();
    register(&command, &skus).await;
    // Stock for every reservation to come.
    let mut all: Vec<Write> = skus.iter().map(|s| Write::receipt(s, format!("open-{s}"), 1000)).collect();
    settle(&[&command], &mut all).await;

    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Attempts = Arc::default();
    let load_started = Instant::now();
    let clients: Vec<_> =
        skus.iter().map(|s| tokio::spawn(client(command.clone(), s.clone(), stop.clone(), attempts.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The broker that leads the most partitions of `events` dies.
    let mut topics = blocking(|| brokers.describe(&prefix));
    let now = topics.remove(&events).expect("events").partitions;
    let command_leaders = topics.remove(&commands).expect("commands").partitions;
    let mut led: BTreeMap<u32, usize> = BTreeMap::new();
    for p in &now {
        *led.entry(p.leader.expect("every partition has a leader")).or_default() += 1;
    }
    let victim = *led.iter().max_by_key(|(node, n)| (**n, std::cmp::Reverse(**node))).expect("leaders").0;
    let acked_before = attempts.lock().unwrap().iter().filter(|a| a.acked_on.is_some()).count();
    let killed_at = Instant::now();
    blocking(|| brokers.kill(victim));
    eprintln!(
        "killed broker {victim} (kill -9) after {acked_before} acknowledged writes; it led events {} and commands {}",
        leaders(&now),
        leaders(&command_leaders)
    );

    // Writes go on; wait until every partition has taken a write sent after the kill.
    let recovered = loop {
        let first = first_acks_after(&attempts, killed_at);
        if first.len() == PARTITIONS as usize {
            break first;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(90),
            "90 s after the kill, only partitions {:?} take writes",
            first.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let recovery = recovered.values().copied().max().expect("partitions");
    let moved = blocking(|| brokers.describe(&prefix)).remove(&events).expect("events").partitions;
    eprintln!("every partition takes writes again {:.1} s after the kill: {recovered:?}", recovery.as_secs_f64());
    eprintln!("leaders without broker {victim}: events {}", leaders(&moved));
    assert!(moved.iter().all(|p| p.leader.is_some() && p.leader != Some(victim)), "{moved:?}");
    assert!(moved.iter().all(|p| p.isr.len() == 2 && !p.isr.contains(&victim)), "{moved:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The broker comes back on its data and catches up, under the load.
    let restarted_at = Instant::now();
    blocking(|| brokers.start_again());
    let restart = restarted_at.elapsed();
    let in_sync = loop {
        let topics = blocking(|| brokers.describe(&prefix));
        if topics.values().flat_map(|t| &t.partitions).all(|p| p.isr.contains(&victim)) {
            break restarted_at.elapsed();
        }
        assert!(restarted_at.elapsed() < Duration::from_secs(90), "broker {victim} never rejoined the ISR: {topics:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "broker {victim} serves {:.1} s after its restart and is in every ISR after {:.1} s",
        restart.as_secs_f64(),
        in_sync.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let load_ended = Instant::now();
    for c in clients {
        all.extend(c.await.expect("a client failed"));
    }
    let command = Arc::try_unwrap(command).unwrap_or_else(|_| panic!("the clients hold the node"));

    // Whatever is still open is retried with its key until answered.
    let sent = all.len();
    let open = all.iter().filter(|w| w.acked.is_none()).count();
    settle(&[&command], &mut all).await;
    let tries = attempts.lock().unwrap().len();
    let outage_gap = longest_gap(&attempts, killed_at, load_ended);
    let acked_during_outage = attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.acked_on.is_some() && a.answered >= killed_at && a.answered < killed_at + recovery)
        .count();

    // The views hold every acknowledged write exactly once.
    let views = check_exactly_once(&query, &all).await;
    // And the log itself: every acknowledged command once, and the views are its fold.
    let folded = fold_log(&backend).await;
    let acked: BTreeSet<&str> = all.iter().filter_map(|w| w.acked.as_ref()).map(|a| a.command_id.as_str()).collect();
    let lost = acked.iter().filter(|id| !folded.applied.contains_key(**id)).count();
    let doubled = folded.applied.values().filter(|n| **n > 1).count();
    let mut view_diffs = 0;
    for sku in &skus {
        let (version, on_hand, reserved) = folded.products.get(sku).copied().unwrap_or_default();
        let view = &views[sku];
        if view["version"] != json!(version)
            || view["stock"]["on_hand"] != json!(on_hand)
            || view["stock"]["reserved"] != json!(reserved)
        {
            view_diffs += 1;
            eprintln!("{sku}: the view {view} differs from the log's fold {:?}", (version, on_hand, reserved));
        }
    }
    let reservations = all.iter().filter(|w| matches!(w.change, Change::Reservation { .. })).count();
    eprintln!(
        "replication: writes={sent} (reservations {reservations}) tries={tries} acknowledged={} \
         open_at_end_of_load={open} lost={lost} doubled={doubled} view_diffs={view_diffs} killed_broker={victim} \
         recovery={:.1}s longest_partition_gap={:.1}s acked_in_outage={acked_during_outage} \
         broker_restart={:.1}s back_in_isr={:.1}s brokers_start={:.0}s load={:.0}s checks={:.0}s",
        acked.len(),
        recovery.as_secs_f64(),
        outage_gap.as_secs_f64(),
        restart.as_secs_f64(),
        in_sync.as_secs_f64(),
        brokers_started.as_secs_f64(),
        (load_ended - load_started).as_secs_f64(),
        load_ended.elapsed().as_secs_f64(),
    );
    assert_eq!(acked.len(), sent, "every write is acknowledged once settled");
    assert_eq!(lost, 0, "acknowledged writes missing from the log");
    assert_eq!(doubled, 0, "commands applied twice");
    assert_eq!(view_diffs, 0, "views that are not the log's fold");
    assert_eq!(folded.applied.len(), sent + skus.len(), "the log holds exactly the registrations and the writes");

    assert!(command.stop().await.success());
    assert!(query.stop().await.success());
    blocking(|| brokers.stop());
}
