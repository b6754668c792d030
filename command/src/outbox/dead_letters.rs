//! Dead letters written once per outbox row, across crashes.
//!
//! A row that becomes a dead letter is written to the DLQ, then the position (slot or
//! stored transaction id) moves past it. A crash between the two sends the row again
//! after the restart, and a plain append would write its dead letter a second time.
//! So before appending, the connector looks in the DLQ itself: the partition that the
//! row's key (`outbox-{id}`) maps to is read once, from offset 0, at the first dead
//! letter that needs it after a start, and the keys this connector's table put there
//! (reporter `outbox`, origin `postgres:{table}`) are kept in memory with every key
//! written since. The log is the record, so nothing else has to be kept in step with
//! it: what an append made durable, the next start's read finds.
//!
//! The cost is one read of a DLQ partition per start, and only when a dead letter is
//! due; the DLQ keeps 30 days and is small by nature. A row that could not be decoded
//! at all has no id (key `outbox-unknown`) and is written each time it is read.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use stockroom_topics::dlq::{ORIGIN_TOPIC_HEADER, REPORTER_HEADER};
use stockroom_topics::{EventLog, LogResult, Offset, Partition, Topic};
use tokio::sync::Mutex;

/// The outbox keys already in the DLQ, per partition read so far.
#[derive(Default)]
pub(super) struct DeadLetters {
    known: Mutex<HashMap<Partition, HashSet<Vec<u8>>>>,
}

impl DeadLetters {
    /// Whether `key`, of the table whose origin header is `origin`, is in `partition`
    /// of the DLQ already (reading the partition the first time it is asked about).
    pub(super) async fn contains(
        &self,
        log: &EventLog,
        partition: Partition,
        origin: &str,
        key: &[u8],
    ) -> LogResult<bool> {
        let mut known = self.known.lock().await;
        let keys = match known.entry(partition) {
            Entry::Occupied(keys) => keys.into_mut(),
            Entry::Vacant(slot) => slot.insert(read(log, partition, origin).await?),
        };
        Ok(keys.contains(key))
    }

    /// Notes a key just written (its partition has been read: `contains` came first).
    pub(super) async fn written(&self, partition: Partition, key: Vec<u8>) {
        self.known.lock().await.entry(partition).or_default().insert(key);
    }
}

/// The keys of `origin`'s dead letters in `partition`, up to its end as it is now.
async fn read(log: &EventLog, partition: Partition, origin: &str) -> LogResult<HashSet<Vec<u8>>> {
    let end = log.end_offset(Topic::Dlq, partition).await?;
    let mut keys = HashSet::new();
    let mut next = Offset(0);
    let mut reader = log.reader(Topic::Dlq, &[(partition, Offset(0))])?;
    let mut idle = 0;
    while next < end {
        let records = reader.poll(10_000, Duration::from_millis(200)).await?;
        if records.is_empty() {
            // Offsets a broker skips (retention, markers) never arrive: after 5 s of
            // nothing, what was read is all there is.
            idle += 1;
            if idle >= 25 {
                break;
            }
            continue;
        }
        idle = 0;
        for stored in records {
            next = Offset(stored.offset.0 + 1);
            let r = &stored.record;
            if r.headers.get_str(REPORTER_HEADER) == Some("outbox")
                && r.headers.get_str(ORIGIN_TOPIC_HEADER) == Some(origin)
                && let Some(key) = &r.key
            {
                keys.insert(key.clone());
            }
        }
    }
    Ok(keys)
}
