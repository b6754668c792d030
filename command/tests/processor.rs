//! The command processor on a real embedded log (sled files in a temp dir): the
//! protocol's promises, one test each.

use std::time::Duration;

use stockroom_command::client::Submitted;
use stockroom_command::protocol::{CommandRecord, Outcome, Target};
use stockroom_domain::order::{OrderCommand, OrderLine};
use stockroom_domain::product::{DetailsPatch, NewProduct, Patch, ProductCommand};
use stockroom_domain::testsuite::{receive, register, reserve};
use stockroom_domain::{CommandId, Gtin, OrderId, Quantity, Rejection, Sku, Timestamp};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, Topic, TopicNames, time};

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_rejects_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    assert_eq!(version(&node.send("c1", "A", register("Hammer", 5)).await), 1);
    assert_eq!(version(&node.send("c2", "A", receive(3)).await), 2);
    match node.send("c3", "A", register("Again", 0)).await {
        Outcome::Rejected { rejection: Rejection::SkuTaken { .. } } => {}
        other => panic!("{other:?}"),
    }
    match node.send("c4", "A", reserve("r1", 9)).await {
        Outcome::Rejected { rejection: Rejection::InsufficientStock { requested: 9, available: 8 } } => {}
        other => panic!("{other:?}"),
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_id_is_applied_once_and_answered_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    node.send("reg", "A", register("Hammer", 0)).await;
    let first = node.send("same", "A", receive(3)).await;
    let again = node.send("same", "A", receive(3)).await;
    assert_eq!(first, again);
    // Same id, another request: a conflict, nothing applied.
    assert_eq!(node.send_as("same", "other", "A", receive(4)).await, Outcome::IdempotencyConflict);
    assert_eq!(version(&node.send("next", "A", receive(1)).await), 3, "the retry did not apply twice");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restart_and_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    node.send("reg", "A", register("Hammer", 2)).await;
    node.send("rcv", "A", receive(5)).await;
    node.stop().await;

    // Restart: the same answers, and a retry of an old command is not applied again.
    let node = start(dir.path()).await;
    assert_eq!(version(&node.send("rcv", "A", receive(5)).await), 2);
    node.stop().await;

    // Delete the state store, keep the log: everything comes back from the log.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let node = start(dir.path()).await;
    assert_eq!(version(&node.send("rcv", "A", receive(5)).await), 2, "applied command ids come back from the log");
    match node.send("r", "A", reserve("r1", 8)).await {
        Outcome::Rejected { rejection: Rejection::InsufficientStock { available: 7, .. } } => {}
        other => panic!("stock must be rebuilt as 7: {other:?}"),
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_out_writer_is_ignored_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::embedded(
        EmbeddedLog::open(&dir.path().join("log"), TopicNames::default(), Some(PARTITIONS)).unwrap(),
    );
    // Two processors on one log, each with its own store: the second fences the first.
    let old = start_with(log.clone(), &dir.path().join("state-old"), "old").await;
    old.send("reg", "A", register("Hammer", 10)).await;
    let new = start_with(log.clone(), &dir.path().join("state-new"), "new").await;
    // Both read `commands` (one in-memory queue); only the latest fence's writer counts.
    let outcome = new.send("r1", "A", reserve("r1", 4)).await;
    assert_eq!(version(&outcome), 2);
    let outcome = new.send("r2", "A", reserve("r2", 6)).await;
    assert_eq!(version(&outcome), 3);
    // Had the zombie's events counted, some reservation would be doubled. Rebuild a
    // third store from the log and check it agrees with the owner.
    let check = start_with(log.clone(), &dir.path().join("state-check"), "check").await;
    match check.send("r3", "A", reserve("r3", 1)).await {
        Outcome::Rejected { rejection: Rejection::InsufficientStock { available: 0, .. } } => {}
        other => panic!("exactly 10 reserved, 0 available: {other:?}"),
    }
    for node in [old, new, check] {
        node.cancel.cancel();
        node.tracker.close();
        node.tracker.wait().await;
    }
    log.close().await.unwrap();
    let _ = Topic::Events;
}

// --- GTIN claims (repartitioning by GTIN) -------------------------------------

fn with_gtin(name: &str, stock: u64, gtin: &str) -> ProductCommand {
    let mut details = stockroom_domain::testsuite::details(name);
    details.gtin = Some(Gtin::parse(gtin).unwrap());
    ProductCommand::Register(NewProduct { details, initial_stock: stock, origin: None })
}

fn set_gtin(gtin: Option<&str>) -> ProductCommand {
    let gtin = match gtin {
        Some(g) => Patch::Set(Gtin::parse(g).unwrap()),
        None => Patch::Clear,
    };
    ProductCommand::UpdateDetails(DetailsPatch { gtin, ..Default::default() })
}

fn rejected(o: &Outcome) -> &'static str {
    match o {
        Outcome::Rejected { rejection } => rejection.kind(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

const G1: &str = "4006381333931";
const G2: &str = "5901234123457";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gtin_belongs_to_one_product() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    assert_eq!(version(&node.send("a", "A", with_gtin("A", 0, G1)).await), 1);
    assert_eq!(rejected(&node.send("b", "B", with_gtin("B", 0, G1)).await), "gtin-taken");
    // The same GTIN written another way (GTIN-14 with a leading zero) is the same GTIN.
    assert_eq!(rejected(&node.send("c", "C", with_gtin("C", 0, &format!("0{G1}"))).await), "gtin-taken");
    // Re-registering the holder is sku-taken, and does not free the GTIN.
    assert_eq!(rejected(&node.send("a2", "A", with_gtin("A", 0, G1)).await), "sku-taken");
    assert_eq!(rejected(&node.send("d", "D", with_gtin("D", 0, G1)).await), "gtin-taken");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_rejected_after_its_claim_frees_the_gtin() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    node.send("a", "A", register("A", 0)).await;
    // Claim succeeds, product step fails (SKU taken): the claim is abandoned.
    assert_eq!(rejected(&node.send("a2", "A", with_gtin("A again", 0, G1)).await), "sku-taken");
    assert_eq!(version(&node.send("b", "B", with_gtin("B", 0, G1)).await), 1, "the GTIN is free again");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_or_clearing_a_gtin_releases_it_and_discontinuing_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    node.send("a", "A", with_gtin("A", 0, G1)).await;
    assert_eq!(version(&node.send("a-g2", "A", set_gtin(Some(G2))).await), 2);
    // The old GTIN is released by a compensating step; give it a moment to land.
    let mut freed = None;
    for i in 0..100 {
        let o = node.send(&format!("b{i}"), "B", with_gtin("B", 0, G1)).await;
        if matches!(o, Outcome::Accepted { .. }) {
            freed = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed.is_some(), "G1 was never released");
    assert_eq!(rejected(&node.send("c", "C", with_gtin("C", 0, G2)).await), "gtin-taken");
    // Discontinued products keep their GTIN.
    node.send("a-off", "A", ProductCommand::Discontinue).await;
    assert_eq!(rejected(&node.send("c2", "C", with_gtin("C", 0, G2)).await), "gtin-taken");
    // Clearing releases it.
    node.send("b-clear", "B", set_gtin(None)).await;
    let mut freed = false;
    for i in 0..100 {
        if matches!(node.send(&format!("d{i}"), "D", with_gtin("D", 0, G1)).await, Outcome::Accepted { .. }) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "clearing B's GTIN never released it");
    node.stop().await;
}

// --- Orders (a saga across partitions) ---------------------------------------

fn place(lines: &[(&str, u64)]) -> OrderCommand {
    OrderCommand::Place {
        lines: lines
            .iter()
            .map(|(sku, q)| OrderLine { sku: Sku::parse(*sku).unwrap(), quantity: Quantity::new(*q).unwrap() })
            .collect(),
        expires_at: None,
    }
}

fn order(id: &str, command: OrderCommand) -> Target {
    Target::Order { order_id: OrderId::parse(id).unwrap(), command }
}

async fn available(node: &Node, sku: &str, probe: &str) -> u64 {
    // A reservation far beyond any stock is rejected with what is available.
    match node.send(probe, sku, reserve(probe, 1_000_000)).await {
        Outcome::Rejected { rejection: Rejection::InsufficientStock { available, .. } } => available,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reserves_every_line_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    for (sku, stock) in [("A", 5), ("B", 1), ("C", 3)] {
        node.send(&format!("reg-{sku}"), sku, register(sku, stock)).await;
    }
    let placed = node.send_target("o1", "fp", order("o1", place(&[("A", 2), ("B", 1)]))).await;
    assert!(matches!(placed, Outcome::Accepted { .. }), "{placed:?}");
    assert_eq!(available(&node, "A", "p1").await, 3);
    // B has nothing left: the order is rejected naming line 1, and A and C are released.
    match node.send_target("o2", "fp", order("o2", place(&[("A", 3), ("C", 3), ("B", 1)]))).await {
        Outcome::Rejected { rejection: Rejection::OrderRejected { line, reason, .. } } => {
            assert_eq!(line, 2);
            assert_eq!(reason.kind(), "insufficient-stock");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(available(&node, "A", "p2").await, 3, "the rejected order's line on A was released");
    assert_eq!(available(&node, "C", "p3").await, 3, "the rejected order's line on C was released");
    // An unknown product rejects the order too.
    let unknown = node.send_target("o3", "fp", order("o3", place(&[("A", 1), ("NOPE", 1)]))).await;
    assert_eq!(rejected(&unknown), "order-rejected");
    assert_eq!(available(&node, "A", "p4").await, 3);
    // Confirm ships every line of o1: on hand drops, nothing stays reserved.
    let confirmed = node.send_target("o1-confirm", "fp", order("o1", OrderCommand::Confirm)).await;
    assert!(matches!(confirmed, Outcome::Accepted { .. }), "{confirmed:?}");
    assert_eq!(available(&node, "A", "p5").await, 3);
    assert_eq!(available(&node, "B", "p6").await, 0);
    // A confirmed order cannot be cancelled.
    assert_eq!(rejected(&node.send_target("o1-cancel", "fp", order("o1", OrderCommand::Cancel)).await), "order-state");
    // Cancel releases every line.
    node.send_target("o4", "fp", order("o4", place(&[("A", 3)]))).await;
    assert_eq!(available(&node, "A", "p7").await, 0);
    let cancelled = node.send_target("o4-cancel", "fp", order("o4", OrderCommand::Cancel)).await;
    assert!(matches!(cancelled, Outcome::Accepted { .. }), "{cancelled:?}");
    assert_eq!(available(&node, "A", "p8").await, 3);
    // A retried placement gets the original answer; nothing is reserved twice.
    let again = node.send_target("o1", "fp", order("o1", place(&[("A", 2), ("B", 1)]))).await;
    assert_eq!(again, placed);
    assert_eq!(available(&node, "A", "p9").await, 3);
    node.stop().await;
}

/// A key of `commands` that lands on partition `p`, with this prefix.
fn key_on(log: &EventLog, prefix: &str, p: u32) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|k| log.partition_for_key(Topic::Commands, k.as_bytes()).0 == p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_survives_crashes_between_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let (order_p, product_p) = (0, 1);
    let (a, b, o) = (key_on(&log, "A", product_p), key_on(&log, "B", product_p), key_on(&log, "o", order_p));
    let node = start_serving(log.clone(), &dir.path().join("state"), "n", vec![0, 1]).await;
    node.send("reg-a", &a, register("A", 5)).await;
    node.send("reg-b", &b, register("B", 5)).await;
    node.cancel.cancel();
    node.tracker.close();
    node.tracker.wait().await;

    // Step 1 only: the order is placed and its reservations are asked for, but the
    // node serving the products is down.
    let node = start_serving(log.clone(), &dir.path().join("state"), "n", vec![order_p]).await;
    let cmd = |id: &str, command| CommandRecord {
        id: CommandId::parse(id).unwrap(),
        at: Timestamp(time::now_ms()),
        expected_version: None,
        fingerprint: "fp".into(),
        reply_to: Some(node.client.reply_to().to_owned()),
        target: order(&o, command),
        notify: None,
    };
    let placed = node.client.submit(cmd("place", place(&[(&a, 2), (&b, 3)])), None, Duration::from_millis(300)).await;
    assert!(matches!(placed.unwrap(), Submitted::Pending), "cannot finish without the products");
    node.cancel.cancel();
    node.tracker.close();
    node.tracker.wait().await;

    // Step 2 only: the products take the reservations; their results wait for the
    // order's partition, which is down.
    let node = start_serving(log.clone(), &dir.path().join("state"), "n", vec![product_p]).await;
    for i in 0..100 {
        if available(&node, &a, &format!("probe-a-{i}")).await == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(available(&node, &a, "probe-a2").await, 3, "line A reserved");
    node.cancel.cancel();
    node.tracker.close();
    node.tracker.wait().await;

    // Everything up, with the order's state deleted too: the saga finishes, once.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let node = start_serving(log.clone(), &dir.path().join("state"), "n", vec![0, 1]).await;
    let again = node.send_target("place", "fp", order(&o, place(&[(&a, 2), (&b, 3)]))).await;
    assert!(matches!(again, Outcome::Accepted { .. }), "{again:?}");
    assert_eq!(available(&node, &a, "probe-a3").await, 3, "reserved once, not twice");
    assert_eq!(available(&node, &b, "probe-b").await, 2);
    let cancelled = node.send_target("cancel", "fp", order(&o, OrderCommand::Cancel)).await;
    assert!(matches!(cancelled, Outcome::Accepted { .. }), "{cancelled:?}");
    assert_eq!(available(&node, &a, "probe-a4").await, 5, "no stock left reserved by the order");
    assert_eq!(available(&node, &b, "probe-b2").await, 5);
    node.stop().await;
}

/// Reads every record of `topic`'s partition `p`.
async fn read_all(log: &EventLog, topic: Topic, p: Partition) -> Vec<stockroom_topics::StoredRecord> {
    let end = log.end_offset(topic, p).await.unwrap();
    let mut reader = log.reader(topic, &[(p, stockroom_topics::Offset(0))]).unwrap();
    let mut records = Vec::new();
    if end.0 == 0 {
        return records;
    }
    while records.last().is_none_or(|r: &stockroom_topics::StoredRecord| r.offset.0 + 1 < end.0) {
        let batch = reader.poll(1000, Duration::from_secs(2)).await.unwrap();
        assert!(!batch.is_empty(), "{topic:?} {p:?}: read {} records of {}", records.len(), end.0);
        records.extend(batch);
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_the_partition_keeps_flowing() {
    use stockroom_topics::dlq::origin_of;
    use stockroom_topics::envelope::{H_SCHEMA_VERSION, H_TYPE};
    use stockroom_topics::{Headers, Record};

    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    assert_eq!(version(&node.send("c1", "A", register("Hammer", 5)).await), 1);
    let p = node.log.partition_for_key(Topic::Events, b"A");

    // Events written by the partition's current writer (so they pass the fence), but
    // that no reader can use: unknown type, unknown schema version, broken payload;
    // and a record that is not an event at all.
    let events = read_all(&node.log, Topic::Events, p).await;
    let good = events
        .iter()
        .rev()
        .find(|r| r.record.headers.get_str(H_TYPE).is_some_and(|t| t.starts_with("stockroom.product.")))
        .expect("the registration event")
        .record
        .clone();
    let mut unknown_type = good.clone();
    unknown_type.headers.push(H_TYPE, b"stockroom.product.Teleported".to_vec());
    let mut unknown_version = good.clone();
    unknown_version.headers.push(H_SCHEMA_VERSION, b"99".to_vec());
    let mut broken = good.clone();
    broken.payload = b"{\"sku\": [".to_vec();
    let garbage =
        Record { key: Some(b"A".to_vec()), headers: Headers::new(), payload: vec![0xff, 0x00, 0x13], timestamp_ms: 1 };
    let poison_events = vec![unknown_type, unknown_version, broken, garbage.clone()];
    let first_poison = node.log.append(Topic::Events, p, poison_events).await.unwrap()[0];
    // Commands that cannot be read: garbage bytes, and JSON that is no command.
    let json = Record {
        key: Some(b"A".to_vec()),
        headers: Headers::new(),
        payload: b"{\"hello\": 1}".to_vec(),
        timestamp_ms: 1,
    };
    let cp = node.log.partition_for_key(Topic::Commands, b"A");
    let first_bad_command = node.log.append(Topic::Commands, cp, vec![garbage, json]).await.unwrap()[0];

    // The partition keeps flowing: the next commands are decided as if nothing happened.
    assert_eq!(version(&node.send("c2", "A", receive(3)).await), 2);
    assert_eq!(version(&node.send("c3", "A", reserve("r", 8)).await), 3);

    // Every poison record is in the DLQ with its origin and a reason.
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = read_all(&node.log, Topic::Dlq, p)
            .await
            .into_iter()
            .chain(if cp == p { Vec::new() } else { read_all(&node.log, Topic::Dlq, cp).await })
            .filter_map(|r| origin_of(&r.record))
            .collect::<Vec<_>>();
        if letters.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let from = |topic: &str, first: stockroom_topics::Offset, n: u64| {
        (0..n).all(|i| letters.iter().any(|l| l.topic == topic && l.offset.0 == first.0 + i && !l.reason.is_empty()))
    };
    assert!(from("events", first_poison, 4), "{letters:#?}");
    assert!(from("commands", first_bad_command, 2), "{letters:#?}");
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("Teleported")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("99")), "{reasons:?}");

    // And a restart (state rebuilt from the log, poison included) changes nothing.
    node.stop().await;
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let node = start(dir.path()).await;
    match node.send("c4", "A", reserve("r2", 1)).await {
        Outcome::Rejected { rejection: Rejection::InsufficientStock { requested: 1, available: 0 } } => {}
        other => panic!("{other:?}"),
    }
    node.stop().await;
}

/// Readiness is "every partition this node owns serves", never "none registered
/// yet": a node that has just been told its partitions is not ready until they serve.
#[tokio::test]
async fn a_node_is_not_ready_before_its_partitions_serve() {
    use stockroom_command::processor::{PartitionState, Processor, ProcessorConfig};
    use stockroom_command::store::StateStore;
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    let processor =
        Processor::new(log.clone(), store, ProcessorConfig { node_id: "ready".into(), ..Default::default() });
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let health = processor.health();
    assert!(!health.ready(), "ready before it knows its partitions");
    // On this single-threaded runtime the workers have not run yet.
    processor.spawn((0..PARTITIONS).map(Partition), &tracker, cancel.clone());
    assert!(!health.ready(), "ready before any partition serves: {:?}", health.snapshot());
    let began = std::time::Instant::now();
    while !health.ready() && began.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let states = health.snapshot();
    assert_eq!(states.len(), PARTITIONS as usize);
    assert!(states.values().all(|s| *s == PartitionState::Serving), "{states:?}");
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    log.close().await.unwrap();
}
