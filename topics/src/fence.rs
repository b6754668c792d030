//! The log fences its writers itself (DESIGN.md, "Single writer per partition,
//! without broker transactions").
//!
//! A processor that acquires partition `p` appends a fence record
//! `PartitionClaimed{owner, epoch}` to `events[p]`, with an epoch above every fence
//! it has seen, and stamps every event it writes with the same identity. Every reader
//! folds the partition with the same rules, so all agree on what counts, whatever a
//! zombie (a paused node that wakes after its partition moved) appends:
//!
//! - a fence is valid only if its epoch is greater than the latest valid fence's; on
//!   a tie the first in log order wins and the later one is ignored;
//! - any other record counts only if its writer is exactly the latest valid fence's
//!   writer (epoch *and* owner); records of other writers are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, into_record};
use crate::ids::Partition;
use crate::record::Record;

/// A writer's identity: the epoch of its fence and a name unique to one process life.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Writer {
    pub epoch: u64,
    pub owner: String,
}

pub const FENCE_EVENT_TYPE: &str = "stockroom.partition.claimed";

/// The fence record `writer` appends to claim `partition`.
pub fn fence_record(partition: Partition, writer: &Writer, time_ms: i64) -> Record {
    let env = Envelope {
        id: format!("fence-{}-{}-{}", partition.0, writer.epoch, writer.owner),
        source: format!("/stockroom/{}", writer.owner),
        event_type: FENCE_EVENT_TYPE.to_owned(),
        time_ms,
        subject: Some(format!("partitions/{}", partition.0)),
        schema_version: 1,
        correlation_id: None,
        causation_id: None,
        writer: Some(writer.clone()),
    };
    let payload = serde_json::json!({"partition": partition.0, "epoch": writer.epoch, "owner": writer.owner});
    into_record(&env, Some(format!("partition-{}", partition.0).into_bytes()), payload.to_string().into_bytes())
}

/// How a record stands under the fence rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A valid new fence: its writer is the partition's writer from here on.
    Fence(Writer),
    /// A fence whose epoch is not above the latest: ignored by everyone.
    IgnoredFence,
    /// Written by the latest fence's writer: counts.
    Current,
    /// Written by anyone else (a zombie): ignored by everyone.
    Stale,
}

/// The latest valid fence of each partition, as folded so far. Readers keep it with
/// their checkpoint, so the rules hold across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceTracker {
    latest: BTreeMap<Partition, Writer>,
}

impl FenceTracker {
    /// Classifies the next record of `partition` and, for a valid fence, records it.
    pub fn admit(&mut self, partition: Partition, env: &Envelope) -> Admission {
        let latest = self.latest.get(&partition);
        if env.event_type == FENCE_EVENT_TYPE {
            return match &env.writer {
                Some(w) if latest.is_none_or(|l| w.epoch > l.epoch) => {
                    self.latest.insert(partition, w.clone());
                    Admission::Fence(w.clone())
                }
                _ => Admission::IgnoredFence,
            };
        }
        match latest {
            None => Admission::Current,
            Some(l) if env.writer.as_ref() == Some(l) => Admission::Current,
            Some(_) => Admission::Stale,
        }
    }

    pub fn latest(&self, partition: Partition) -> Option<&Writer> {
        self.latest.get(&partition)
    }

    /// The epoch a new claim of `partition` must use.
    pub fn next_epoch(&self, partition: Partition) -> u64 {
        self.latest.get(&partition).map_or(1, |w| w.epoch + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(epoch: u64, owner: &str) -> Writer {
        Writer { epoch, owner: owner.into() }
    }

    fn env(event_type: &str, writer: Option<Writer>) -> Envelope {
        Envelope {
            id: "x".into(),
            source: "s".into(),
            event_type: event_type.into(),
            time_ms: 0,
            subject: None,
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            writer,
        }
    }

    fn fence(writer: Writer) -> Envelope {
        env(FENCE_EVENT_TYPE, Some(writer))
    }

    fn event(writer: Option<Writer>) -> Envelope {
        env("stockroom.product.stock-received", writer)
    }

    const P: Partition = Partition(0);

    #[test]
    fn records_of_the_latest_fence_count() {
        let mut t = FenceTracker::default();
        assert_eq!(t.next_epoch(P), 1);
        assert_eq!(t.admit(P, &fence(w(1, "a"))), Admission::Fence(w(1, "a")));
        assert_eq!(t.admit(P, &event(Some(w(1, "a")))), Admission::Current);
        assert_eq!(t.next_epoch(P), 2);
        // Another partition is not affected.
        assert_eq!(t.admit(Partition(1), &event(Some(w(9, "z")))), Admission::Current);
    }

    #[test]
    fn a_zombie_writing_after_a_newer_fence_is_ignored() {
        let mut t = FenceTracker::default();
        t.admit(P, &fence(w(1, "a")));
        t.admit(P, &fence(w(2, "b")));
        assert_eq!(t.admit(P, &event(Some(w(1, "a")))), Admission::Stale);
        assert_eq!(t.admit(P, &event(Some(w(2, "b")))), Admission::Current);
    }

    #[test]
    fn racing_claimers_with_the_same_epoch_first_wins() {
        let mut t = FenceTracker::default();
        t.admit(P, &fence(w(1, "a")));
        assert_eq!(t.admit(P, &fence(w(2, "b"))), Admission::Fence(w(2, "b")));
        assert_eq!(t.admit(P, &fence(w(2, "c"))), Admission::IgnoredFence);
        assert_eq!(t.admit(P, &event(Some(w(2, "c")))), Admission::Stale);
        assert_eq!(t.latest(P), Some(&w(2, "b")));
    }

    #[test]
    fn stale_fences_and_writerless_records_after_a_fence_are_ignored() {
        let mut t = FenceTracker::default();
        t.admit(P, &fence(w(5, "a")));
        assert_eq!(t.admit(P, &fence(w(3, "z"))), Admission::IgnoredFence);
        assert_eq!(t.admit(P, &env(FENCE_EVENT_TYPE, None)), Admission::IgnoredFence);
        assert_eq!(t.admit(P, &event(None)), Admission::Stale);
    }

    #[test]
    fn fence_record_carries_the_writer() {
        let r = fence_record(P, &w(4, "node-1"), 10);
        let e = Envelope::from_headers(&r.headers).unwrap();
        assert_eq!(e.event_type, FENCE_EVENT_TYPE);
        assert_eq!(e.writer, Some(w(4, "node-1")));
        assert_eq!(e.subject.as_deref(), Some("partitions/0"));
    }
}
