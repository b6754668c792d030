use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use stockroom_topics::Partition;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionState {
    CatchingUp,
    Serving,
    Failed(String),
    /// Another node fenced this partition; waiting for the group to reassign it.
    Fenced,
}

/// Which partitions this node's processor owns and whether each serves.
#[derive(Debug, Default)]
pub struct ProcessorHealth {
    partitions: Mutex<BTreeMap<Partition, PartitionState>>,
    /// Set once this node knows its share of the partitions (which may be none).
    assigned: AtomicBool,
    /// Per partition, the next `commands` offset its worker will read (for lag).
    commands_next: Mutex<BTreeMap<Partition, u64>>,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Answered "retry": the log did not take the write.
    pub unavailable: AtomicU64,
}

impl ProcessorHealth {
    pub fn set(&self, partition: Partition, state: PartitionState) {
        self.lock().insert(partition, state);
    }

    pub fn remove(&self, partition: Partition) {
        self.lock().remove(&partition);
        self.commands_next.lock().unwrap_or_else(|e| e.into_inner()).remove(&partition);
    }

    pub fn set_commands_next(&self, partition: Partition, next: u64) {
        self.commands_next.lock().unwrap_or_else(|e| e.into_inner()).insert(partition, next);
    }

    /// The next `commands` offset of each partition this node serves.
    pub fn commands_next(&self) -> BTreeMap<Partition, u64> {
        self.commands_next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn snapshot(&self) -> BTreeMap<Partition, PartitionState> {
        self.lock().clone()
    }

    /// This node now owns `partitions` (as well as any it owned before): each counts
    /// as catching up until its worker serves, and is registered before the node says
    /// it knows its share, so readiness never sees "assigned" with one missing.
    pub fn assign(&self, partitions: &[Partition]) {
        let mut states = self.lock();
        for &p in partitions {
            states.insert(p, PartitionState::CatchingUp);
        }
        drop(states);
        self.assigned.store(true, Ordering::Relaxed);
    }

    /// True once this node knows its partitions and every one it owns serves. A
    /// node that owns none (more nodes than partitions) is ready: it routes writes.
    pub fn ready(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
            && self.lock().values().all(|s| matches!(s, PartitionState::Serving | PartitionState::Fenced))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Partition, PartitionState>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single inserts and removes), so a poisoned lock is still usable.
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
