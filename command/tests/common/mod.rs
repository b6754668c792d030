//! What the processor's integration tests share: a node (processor + client) on a
//! real embedded log in a temp dir.
#![allow(dead_code)] // each test crate uses a part of it

use std::path::Path;
use std::time::Duration;

use stockroom_command::client::{CommandClient, Submitted};
use stockroom_command::processor::{Processor, ProcessorConfig};
use stockroom_command::protocol::{CommandRecord, Outcome, Target};
use stockroom_command::store::StateStore;
use stockroom_domain::product::ProductCommand;
use stockroom_domain::{CommandId, Sku, Timestamp};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, TopicNames, time};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const PARTITIONS: u32 = 2;

pub struct Node {
    pub client: CommandClient,
    pub log: EventLog,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

pub async fn start_with(log: EventLog, state_dir: &Path, node_id: &str) -> Node {
    start_serving(log, state_dir, node_id, (0..PARTITIONS).collect()).await
}

/// A node whose processor serves only `partitions` (the others' commands wait in the log).
pub async fn start_serving(log: EventLog, state_dir: &Path, node_id: &str, partitions: Vec<u32>) -> Node {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let store = StateStore::open(state_dir).unwrap();
    let config = ProcessorConfig { node_id: node_id.into(), ..Default::default() };
    let processor = Processor::new(log.clone(), store, config);
    let client = CommandClient::start(log.clone(), node_id, &tracker, cancel.clone()).await.unwrap();
    processor.spawn(partitions.into_iter().map(Partition), &tracker, cancel.clone());
    let health = processor.health();
    let began = std::time::Instant::now();
    while !health.ready() && began.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(health.ready(), "processor {node_id} not ready after {:?}: {:?}", began.elapsed(), health.snapshot());
    Node { client, log, tracker, cancel }
}

pub fn open_log(dir: &Path) -> EventLog {
    let _ = tracing_subscriber::fmt().with_env_filter("debug,sled=warn").with_test_writer().try_init();
    EventLog::embedded(EmbeddedLog::open(&dir.join("log"), TopicNames::default(), Some(PARTITIONS)).unwrap())
}

pub async fn start(dir: &Path) -> Node {
    start_with(open_log(dir), &dir.join("state"), "test").await
}

impl Node {
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.log.close().await.unwrap();
    }

    pub async fn send_as(&self, id: &str, fingerprint: &str, sku: &str, command: ProductCommand) -> Outcome {
        let target = Target::Product { sku: Sku::parse(sku).unwrap(), command };
        self.send_target(id, fingerprint, target).await
    }

    /// Sends as the HTTP API does: routed (a command setting a GTIN goes to its claim first).
    pub async fn send_target(&self, id: &str, fingerprint: &str, target: Target) -> Outcome {
        let cmd = CommandRecord {
            id: CommandId::parse(id).unwrap(),
            at: Timestamp(time::now_ms()),
            expected_version: None,
            fingerprint: fingerprint.into(),
            reply_to: Some(self.client.reply_to().to_owned()),
            target: target.routed(None),
            notify: None,
        };
        match self.client.submit(cmd, None, Duration::from_secs(10)).await.unwrap() {
            Submitted::Done(o) => o,
            Submitted::Pending => panic!("no outcome within 10 s"),
        }
    }

    pub async fn send(&self, id: &str, sku: &str, command: ProductCommand) -> Outcome {
        self.send_as(id, "fp", sku, command).await
    }
}

pub fn version(o: &Outcome) -> u64 {
    match o {
        Outcome::Accepted { version, .. } => *version,
        other => panic!("expected accepted, got {other:?}"),
    }
}
