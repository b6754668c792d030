//! Sharing the `commands` partitions among command nodes through heartbeats in the
//! log itself (`<prefix>.members`, one partition), on any Kafka-API broker.
//!
//! Every node appends a heartbeat each [`MembershipConfig::heartbeat`], reads all
//! heartbeats, and takes as live every node heard from within
//! [`MembershipConfig::session`] (by the heartbeat's timestamp). Every node computes
//! the same assignment from the same live set: live nodes sorted by id, partition
//! `p` to node `p mod n`. A node leaving cleanly says so, and its partitions move at
//! once; a node killed or paused loses them after the session timeout.
//!
//! Why not a Kafka consumer group: Tansu 0.6.0, the broker we test on, does not
//! reassign the partitions of a member whose session expired (measured: after a
//! `kill -9` the survivor keeps being assigned only its own half, for good), and the
//! rule here is that correctness and failover must not depend on the broker's
//! coordination features. The consumer-group membership stays available
//! (`--membership kafka-group`) for real Kafka.
//!
//! As with the group, ownership here is advisory: two nodes may briefly both believe
//! they own a partition while their views of the heartbeats differ. The fences in the
//! events log are what keep a partition single-writer (`crate::fence`); a node
//! fenced by another waits until its own view revokes the partition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::LogError;
use crate::ids::{Offset, Partition};
use crate::kafka::MembershipEvent;
use crate::log::EventLog;
use crate::record::{Headers, Record};
use crate::time::now_ms;
use crate::topic::Topic;

#[derive(Clone, Debug)]
pub struct MembershipConfig {
    pub heartbeat: Duration,
    /// A node not heard from for this long is gone; its partitions move.
    pub session: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig { heartbeat: Duration::from_secs(1), session: Duration::from_secs(10) }
    }
}

/// How far back a joining node reads heartbeats: far more than a session's worth.
const BACKLOG: u64 = 20_000;
const HEARTBEAT_TYPE: &str = "stockroom.member.heartbeat";

#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    member: String,
    /// The node id (`--node-id`): a restarted node's new member replaces its old one
    /// at once, instead of the old one holding partitions until its session ends.
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    leaving: bool,
}

/// The live members' assignment: partition `p` to the `p mod n`-th member by id.
pub fn assign(members: &BTreeSet<String>, partitions: u32, me: &str) -> BTreeSet<Partition> {
    let Some(index) = members.iter().position(|m| m == me) else { return BTreeSet::new() };
    let n = members.len() as u32;
    (0..partitions).filter(|p| p % n == index as u32).map(Partition).collect()
}

pub struct LogMembership {
    events: mpsc::UnboundedReceiver<MembershipEvent>,
    stop: CancellationToken,
}

impl LogMembership {
    /// Starts heartbeating as `member` (unique per process start).
    pub fn join(log: EventLog, node: String, member: String, config: MembershipConfig) -> LogMembership {
        let (tx, events) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move {
            let mut state = State { log, node, member, config, tx, seen: BTreeMap::new(), owned: BTreeSet::new() };
            if let Err(e) = state.run(cancel).await {
                warn!(error = %e, "membership stopped");
            }
        });
        LogMembership { events, stop }
    }

    pub async fn next(&mut self) -> Option<MembershipEvent> {
        self.events.recv().await
    }
}

impl Drop for LogMembership {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct State {
    log: EventLog,
    node: String,
    member: String,
    config: MembershipConfig,
    tx: mpsc::UnboundedSender<MembershipEvent>,
    /// Per member: its node, and its latest heartbeat time (`None` once it left).
    seen: BTreeMap<String, (Option<String>, Option<i64>)>,
    owned: BTreeSet<Partition>,
}

impl State {
    async fn run(&mut self, cancel: CancellationToken) -> Result<(), LogError> {
        let p0 = Partition(0);
        let end = self.log.end_offset(Topic::Members, p0).await?;
        let start = self.log.start_offset(Topic::Members, p0).await?;
        let from = Offset(end.0.saturating_sub(BACKLOG).max(start.0));
        let mut reader = self.log.reader(Topic::Members, &[(p0, from)])?;
        info!(member = %self.member, "joining the command nodes");
        let mut last_own_beat = now_ms();
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.beat(false).await {
                Ok(()) => last_own_beat = now_ms(),
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            // Read every heartbeat up to the end before deciding anything, so a node
            // waking from a pause does not decide from what it knew before it.
            if let Err(e) = self.read_to_end(&mut reader).await {
                warn!(error = %e, "reading heartbeats failed");
                continue;
            }
            let session = self.config.session.as_millis() as i64;
            let now = now_ms();
            // Live: heard from within the session, and the newest member of its node.
            let mut newest: BTreeMap<String, (i64, String)> = BTreeMap::new();
            for (member, (node, at)) in &self.seen {
                let Some(at) = at.filter(|at| now - at < session) else { continue };
                let node = node.clone().unwrap_or_else(|| member.clone());
                let entry = newest.entry(node).or_insert((at, member.clone()));
                if at > entry.0 {
                    *entry = (at, member.clone());
                }
            }
            let mut live: BTreeSet<String> = newest.into_values().map(|(_, m)| m).collect();
            // We are live if our own heartbeats get through; if they have not for a
            // session, the others have taken our partitions: give them up.
            if now - last_own_beat < session {
                live.retain(|m| self.seen.get(m).and_then(|(n, _)| n.as_deref()) != Some(self.node.as_str()));
                live.insert(self.member.clone());
            } else {
                live.remove(&self.member);
            }
            let wanted = assign(&live, self.log.partitions(Topic::Commands), &self.member);
            self.update(wanted, &live);
        }
        // Leaving cleanly: the others take our partitions now, not after the session.
        let _ = self.beat(true).await;
        Ok(())
    }

    async fn beat(&self, leaving: bool) -> Result<(), LogError> {
        let payload =
            serde_json::to_vec(&Heartbeat { member: self.member.clone(), node: Some(self.node.clone()), leaving })
                .map_err(|e| LogError::Other(e.to_string()))?;
        let mut headers = Headers::new();
        headers.push("ce_type", HEARTBEAT_TYPE);
        let record = Record { key: Some(self.member.as_bytes().to_vec()), headers, payload, timestamp_ms: now_ms() };
        let beat = self.log.append(Topic::Members, Partition(0), vec![record]);
        tokio::time::timeout(self.config.session / 2, beat).await.map_err(|_| LogError::Timeout)??;
        Ok(())
    }

    async fn read_to_end(&mut self, reader: &mut crate::LogReader) -> Result<(), LogError> {
        let end = self.log.end_offset(Topic::Members, Partition(0)).await?;
        let deadline = tokio::time::Instant::now() + self.config.session / 2;
        while reader.assignment().first().is_some_and(|(_, next)| *next < end) {
            if tokio::time::Instant::now() > deadline {
                return Err(LogError::Timeout);
            }
            for r in reader.poll(10_000, Duration::from_millis(100)).await? {
                match serde_json::from_slice::<Heartbeat>(&r.record.payload) {
                    Ok(h) if h.leaving => {
                        self.seen.insert(h.member, (h.node, None));
                    }
                    Ok(h) => {
                        let entry = self.seen.entry(h.member).or_insert((h.node, None));
                        entry.1 = Some(entry.1.unwrap_or(i64::MIN).max(r.record.timestamp_ms));
                    }
                    Err(e) => debug!(offset = r.offset.0, error = %e, "skipped unreadable heartbeat"),
                }
            }
        }
        Ok(())
    }

    fn update(&mut self, wanted: BTreeSet<Partition>, live: &BTreeSet<String>) {
        let revoked: Vec<Partition> = self.owned.difference(&wanted).copied().collect();
        let assigned: Vec<Partition> = wanted.difference(&self.owned).copied().collect();
        if revoked.is_empty() && assigned.is_empty() {
            return;
        }
        info!(members = live.len(), owned = ?wanted.iter().map(|p| p.0).collect::<Vec<_>>(), "command partitions rebalanced");
        if !revoked.is_empty() {
            let _ = self.tx.send(MembershipEvent::Revoked(revoked));
        }
        if !assigned.is_empty() {
            let _ = self.tx.send(MembershipEvent::Assigned(assigned));
        }
        self.owned = wanted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_live_owner() {
        for n in 1..6 {
            let members: BTreeSet<String> = (0..n).map(|i| format!("m{i}")).collect();
            let mut all = Vec::new();
            for m in &members {
                all.extend(assign(&members, 8, m));
            }
            all.sort();
            assert_eq!(all, (0..8).map(Partition).collect::<Vec<_>>(), "{n} members");
        }
        let members = BTreeSet::from(["a".to_owned()]);
        assert!(assign(&members, 8, "not-a-member").is_empty());
    }
}
