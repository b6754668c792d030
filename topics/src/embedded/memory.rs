//! In-memory partitions for the embedded shape's `commands` and `results`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::ids::Offset;
use crate::record::Record;

pub(crate) struct MemoryPartition {
    inner: Mutex<Inner>,
    retention: usize,
}

struct Inner {
    /// Offset of `records[0]`.
    base: u64,
    records: VecDeque<Record>,
}

impl MemoryPartition {
    pub fn new(retention: usize) -> MemoryPartition {
        MemoryPartition { inner: Mutex::new(Inner { base: 0, records: VecDeque::new() }), retention: retention.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Appends and trims leave `Inner` consistent at every step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn append(&self, records: Vec<Record>) -> Vec<Offset> {
        let mut inner = self.lock();
        let first = inner.base + inner.records.len() as u64;
        let offsets = (first..first + records.len() as u64).map(Offset).collect();
        inner.records.extend(records);
        while inner.records.len() > self.retention {
            inner.records.pop_front();
            inner.base += 1;
        }
        offsets
    }

    pub fn start(&self) -> Offset {
        Offset(self.lock().base)
    }

    pub fn end(&self) -> Offset {
        let inner = self.lock();
        Offset(inner.base + inner.records.len() as u64)
    }

    /// Up to `max` records from `from` (moved up to the start if it fell behind).
    pub fn read(&self, from: u64, max: usize) -> (u64, Vec<(u64, Record)>) {
        let inner = self.lock();
        let from = from.max(inner.base);
        let skip = (from - inner.base) as usize;
        let records = inner.records.iter().skip(skip).take(max).cloned().zip(from..).map(|(r, o)| (o, r)).collect();
        (from, records)
    }
}
