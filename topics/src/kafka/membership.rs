//! Sharing the partitions of `commands` among command nodes: Kafka's consumer group.
//!
//! The group decides who owns what; it carries no data and no offsets. The group
//! consumer pauses whatever it is assigned (the partition workers read with their
//! own readers, from their own stored offsets) and reports each change.
//!
//! - **Cooperative rebalancing** (`cooperative-sticky`): a member joining or leaving
//!   moves only the partitions that must move; the others keep serving throughout.
//! - **Static membership** (`group.instance.id`, KIP-345) when the node has a stable
//!   name: a node that restarts within the session timeout gets its own partitions
//!   back without a rebalance of everyone else. The price is the same timeout when it
//!   stops for good: a static member does not leave the group on close, so its
//!   partitions move once its session has expired.
//!
//! Ownership by the group is not what keeps a partition single-writer: a node that
//! was paused past its session timeout still believes it owns its partitions until
//! it polls again. The fences in the log are what make that safe (`crate::fence`);
//! the group only decides who should fence next.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{KafkaConfig, kafka};
use crate::error::LogResult;
use crate::ids::Partition;

/// A change of this node's share of the partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// These partitions are now this node's: fence them and serve.
    Assigned(Vec<Partition>),
    /// These partitions are no longer this node's: stop serving them now.
    Revoked(Vec<Partition>),
}

/// How a command node takes part in the group.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.id`: every command node of a deployment uses the same.
    pub group: String,
    /// `group.instance.id`: this node's stable name, unique in the group, for static
    /// membership; `None` for a dynamic member (leaves on close, rejoins as new).
    pub instance: Option<String>,
    /// A member not heard from for this long loses its partitions.
    pub session: Duration,
}

impl GroupConfig {
    pub fn new(group: impl Into<String>) -> GroupConfig {
        GroupConfig { group: group.into(), instance: None, session: Duration::from_secs(10) }
    }
}

struct GroupContext {
    events: mpsc::UnboundedSender<MembershipEvent>,
}

impl ClientContext for GroupContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements().iter().map(|e| Partition(e.partition() as u32)).collect()
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Cooperative: the list holds only what moves away (or everything, when the
        // member lost its session).
        if let Rebalance::Revoke(tpl) = rebalance {
            let _ = self.events.send(MembershipEvent::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // The workers read these partitions; this consumer must not fetch them.
                if let Err(e) = consumer.pause(tpl) {
                    warn!(error = %e, "could not pause the group consumer's partitions");
                }
                if tpl.count() > 0 {
                    let _ = self.events.send(MembershipEvent::Assigned(partitions(tpl)));
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "consumer group rebalance failed"),
        }
    }
}

/// This node's membership in the command group.
pub struct Membership {
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    stop: CancellationToken,
}

impl Membership {
    pub(super) fn join(config: &KafkaConfig, group: &GroupConfig, topic: &str) -> LogResult<Membership> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut c = config.client("group");
        c.set("group.id", &group.group);
        if let Some(instance) = &group.instance {
            c.set("group.instance.id", instance);
        }
        c.set("partition.assignment.strategy", "cooperative-sticky");
        // Membership only: nothing is ever committed or read for real.
        c.set("enable.auto.commit", "false");
        c.set("enable.auto.offset.store", "false");
        c.set("session.timeout.ms", group.session.as_millis().to_string());
        c.set("heartbeat.interval.ms", (group.session.as_millis() / 10).max(100).to_string());
        for (k, v) in &config.extra {
            c.set(k, v);
        }
        let consumer: StreamConsumer<GroupContext> =
            c.create_with_context(GroupContext { events: tx }).map_err(kafka)?;
        consumer.subscribe(&[topic]).map_err(kafka)?;
        let consumer = Arc::new(consumer);
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        info!(group = %group.group, instance = ?group.instance, topic, "joining the command group");
        // Polling drives the group protocol and the rebalance callbacks.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = consumer.recv() => if let Err(e) = r {
                        warn!(error = %e, "command group consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    },
                }
            }
            // A dynamic member leaves the group now rather than after the session
            // timeout; a static one keeps its place for its next start.
            consumer.unsubscribe();
        });
        Ok(Membership { events, stop })
    }

    /// The next change of assignment; `None` once the membership has ended.
    pub async fn next(&mut self) -> Option<MembershipEvent> {
        self.events.recv().await
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
