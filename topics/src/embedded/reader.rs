//! Reading the embedded log: durable partitions up to their durable end, memory
//! partitions up to their end, fairly across partitions.

use std::fs::File;
use std::time::Duration;

use tokio::sync::watch;

use super::PartitionStore;
use super::file::Cursor;
use crate::error::{LogError, LogResult};
use crate::ids::{Offset, Partition};
use crate::record::StoredRecord;
use crate::topic::Topic;

pub struct Reader {
    topic: Topic,
    assigned: Vec<(Partition, Offset, PartitionStore)>,
    /// Per assigned durable partition, once read: its file and this reader's place in
    /// it (a sequential reader never looks at the index again).
    files: Vec<Option<(File, Cursor)>>,
    signal: watch::Receiver<u64>,
    /// Where the next fair round starts.
    turn: usize,
}

impl Reader {
    pub(crate) fn new(
        topic: Topic,
        assigned: Vec<(Partition, Offset, PartitionStore)>,
        signal: watch::Receiver<u64>,
    ) -> Reader {
        let files = assigned.iter().map(|_| None).collect();
        Reader { topic, assigned, files, signal, turn: 0 }
    }

    pub async fn poll(&mut self, max: usize, wait: Duration) -> LogResult<Vec<StoredRecord>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Mark the current generation seen before reading, so an append that
            // lands after the read wakes the wait below.
            self.signal.borrow_and_update();
            let records = self.read_available(max.max(1))?;
            if !records.is_empty() {
                return Ok(records);
            }
            match tokio::time::timeout_at(deadline, self.signal.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the log is gone: nothing more now.
                _ => return Ok(Vec::new()),
            }
        }
    }

    fn read_available(&mut self, max: usize) -> LogResult<Vec<StoredRecord>> {
        let n = self.assigned.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let share = max.div_ceil(n);
        let mut out = Vec::new();
        // Two rounds: a fair share each, then fill what is left.
        for round in 0..2 {
            for i in 0..n {
                let left = max - out.len();
                if left == 0 {
                    break;
                }
                let idx = (self.turn + i) % n;
                let cap = if round == 0 { share.min(left) } else { left };
                self.read_partition(idx, cap, &mut out)?;
            }
        }
        self.turn = (self.turn + 1) % n;
        Ok(out)
    }

    fn read_partition(&mut self, idx: usize, cap: usize, out: &mut Vec<StoredRecord>) -> LogResult<()> {
        let topic = self.topic;
        let (partition, next, store) = &mut self.assigned[idx];
        let partition = *partition;
        match store {
            PartitionStore::Durable(d) => {
                let end = d.durable_end();
                if next.0 >= end {
                    return Ok(());
                }
                let corrupt = |offset: u64, reason: String| LogError::Corrupt {
                    topic,
                    partition,
                    offset: Offset(offset),
                    reason,
                };
                let slot = &mut self.files[idx];
                if slot.is_none() {
                    let file = File::open(&d.path)?;
                    *slot = Some((file, d.cursor_near(next.0)));
                }
                let Some((file, cursor)) = slot else { return Ok(()) };
                if cursor.offset > next.0 || next.0 - cursor.offset > super::file::STRIDE {
                    // Sought elsewhere: start again from the index.
                    *cursor = d.cursor_near(next.0);
                }
                while cursor.offset < next.0 {
                    let at = cursor.offset;
                    match cursor.frame(file, at, false) {
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(corrupt(at, "a durable record is missing from the file".into())),
                        Err(e) => return Err(corrupt(at, e.0)),
                    }
                }
                let mut taken = 0;
                while taken < cap && next.0 < end {
                    let at = next.0;
                    match cursor.frame(file, at, true) {
                        Ok(Some(Some(record))) => {
                            out.push(StoredRecord { partition, offset: Offset(at), record });
                            *next = Offset(at + 1);
                            taken += 1;
                        }
                        Ok(_) => return Err(corrupt(at, "a durable record is missing from the file".into())),
                        Err(e) => return Err(corrupt(at, e.0)),
                    }
                }
            }
            PartitionStore::Memory(m) => {
                let (_, records) = m.read(next.0, cap);
                for (offset, record) in records {
                    out.push(StoredRecord { partition, offset: Offset(offset), record });
                    *next = Offset(offset + 1);
                }
            }
        }
        Ok(())
    }

    pub fn seek(&mut self, partition: Partition, offset: Offset) {
        if let Some(a) = self.assigned.iter_mut().find(|(p, _, _)| *p == partition) {
            a.1 = offset;
        }
    }

    pub fn assignment(&self) -> Vec<(Partition, Offset)> {
        self.assigned.iter().map(|(p, o, _)| (*p, *o)).collect()
    }
}
