use std::collections::BTreeMap;
use std::sync::Mutex;

use stockroom_topics::Partition;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionState {
    CatchingUp,
    Serving,
    Failed(String),
}

/// Which partitions this node's processor owns and whether each serves.
#[derive(Debug, Default)]
pub struct ProcessorHealth {
    partitions: Mutex<BTreeMap<Partition, PartitionState>>,
}

impl ProcessorHealth {
    pub fn set(&self, partition: Partition, state: PartitionState) {
        self.lock().insert(partition, state);
    }

    pub fn remove(&self, partition: Partition) {
        self.lock().remove(&partition);
    }

    pub fn snapshot(&self) -> BTreeMap<Partition, PartitionState> {
        self.lock().clone()
    }

    /// True when at least one partition is owned and every owned one serves.
    pub fn ready(&self) -> bool {
        let map = self.lock();
        !map.is_empty() && map.values().all(|s| *s == PartitionState::Serving)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Partition, PartitionState>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single inserts and removes), so a poisoned lock is still usable.
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
