//! The command processor on a real embedded log (sled files in a temp dir): the
//! protocol's promises, one test each.

use std::path::Path;
use std::time::Duration;

use stockroom_command::client::{CommandClient, Submitted};
use stockroom_command::processor::{Processor, ProcessorConfig};
use stockroom_command::protocol::{CommandRecord, Outcome, Target};
use stockroom_command::store::StateStore;
use stockroom_domain::product::ProductCommand;
use stockroom_domain::testsuite::{receive, register, reserve};
use stockroom_domain::{CommandId, Rejection, Sku, Timestamp};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, Topic, TopicNames, time};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const PARTITIONS: u32 = 2;

struct Node {
    client: CommandClient,
    log: EventLog,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

async fn start_with(log: EventLog, state_dir: &Path, node_id: &str) -> Node {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let store = StateStore::open(state_dir).unwrap();
    let config = ProcessorConfig { node_id: node_id.into(), ..Default::default() };
    let processor = Processor::new(log.clone(), store, config);
    let client = CommandClient::start(log.clone(), node_id, &tracker, cancel.clone()).await.unwrap();
    processor.spawn((0..PARTITIONS).map(Partition), &tracker, cancel.clone());
    let health = processor.health();
    for _ in 0..500 {
        if health.ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(health.ready(), "processor never became ready: {:?}", health.snapshot());
    Node { client, log, tracker, cancel }
}

async fn start(dir: &Path) -> Node {
    let _ = tracing_subscriber::fmt().with_env_filter("debug,sled=warn").with_test_writer().try_init();
    let log = EventLog::embedded(EmbeddedLog::open(&dir.join("log"), TopicNames::default(), Some(PARTITIONS)).unwrap());
    start_with(log, &dir.join("state"), "test").await
}

impl Node {
    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.log.close().await.unwrap();
    }

    async fn send_as(&self, id: &str, fingerprint: &str, sku: &str, command: ProductCommand) -> Outcome {
        let cmd = CommandRecord {
            id: CommandId::parse(id).unwrap(),
            at: Timestamp(time::now_ms()),
            expected_version: None,
            fingerprint: fingerprint.into(),
            reply_to: Some(self.client.reply_to().to_owned()),
            target: Target::Product { sku: Sku::parse(sku).unwrap(), command },
        };
        match self.client.submit(cmd, None, Duration::from_secs(10)).await.unwrap() {
            Submitted::Done(o) => o,
            Submitted::Pending => panic!("no outcome within 10 s"),
        }
    }

    async fn send(&self, id: &str, sku: &str, command: ProductCommand) -> Outcome {
        self.send_as(id, "fp", sku, command).await
    }
}

fn version(o: &Outcome) -> u64 {
    match o {
        Outcome::Accepted { version, .. } => *version,
        other => panic!("expected accepted, got {other:?}"),
    }
}

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
