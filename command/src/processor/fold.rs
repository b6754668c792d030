//! Folding the `events` log into a partition's state store.
//!
//! The same function serves catch-up after a start and the read-back of our own
//! appends: the store only ever learns what the log says, in log order, under the
//! fold rules every reader of Stockroom shares:
//!
//! 1. a fence record with a higher epoch makes its writer the partition's only
//!    legitimate writer from that point of the log on;
//! 2. any other record whose writer is not the latest fence's writer is ignored
//!    (a zombie wrote it);
//! 3. a product event applies only at the product's version + 1.

use stockroom_domain::product::{VersionCheck, check_version, evolve};
use stockroom_topics::events::{LogEntry, decode_entry, envelope_of, provenance_of};
use stockroom_topics::{Admission, Position, StoredRecord};
use tracing::{debug, warn};

use crate::store::{AppliedCommand, Changes, StoreError, StoredOutcome};

/// A record that could not be folded, for the dead-letter topic.
#[derive(Debug)]
pub struct Unreadable {
    pub record: StoredRecord,
    pub reason: String,
}

/// Folds `records` into `changes`. Records below `changes.meta.events_next` (already
/// folded) are skipped, so redelivery is harmless.
pub fn fold(
    changes: &mut Changes<'_>,
    records: &[StoredRecord],
    unreadable: &mut Vec<Unreadable>,
) -> Result<(), StoreError> {
    for record in records {
        if record.offset < changes.meta.events_next {
            continue;
        }
        fold_one(changes, record, unreadable)?;
        changes.meta.events_next = stockroom_topics::Offset(record.offset.0 + 1);
    }
    Ok(())
}

fn fold_one(
    changes: &mut Changes<'_>,
    record: &StoredRecord,
    unreadable: &mut Vec<Unreadable>,
) -> Result<(), StoreError> {
    let partition = record.partition;
    let env = match envelope_of(record) {
        Ok(env) => env,
        Err(e) => {
            unreadable.push(Unreadable { record: record.clone(), reason: e.to_string() });
            return Ok(());
        }
    };
    match changes.meta.fences.admit(partition, &env) {
        Admission::Fence(writer) => {
            debug!(partition = partition.0, offset = record.offset.0, epoch = writer.epoch, owner = %writer.owner, "partition fenced");
            return Ok(());
        }
        Admission::IgnoredFence => {
            debug!(partition = partition.0, offset = record.offset.0, "ignored stale fence");
            return Ok(());
        }
        Admission::Stale => {
            warn!(partition = partition.0, offset = record.offset.0, "ignored record of a fenced-out writer");
            return Ok(());
        }
        Admission::Current => {}
    }
    let event = match decode_entry(&env, record) {
        Ok(LogEntry::Product(event)) => event,
        Ok(LogEntry::Fence(_)) => return Ok(()),
        Err(e) => {
            unreadable.push(Unreadable { record: record.clone(), reason: e.to_string() });
            return Ok(());
        }
    };
    let before = changes.product(&event.sku)?.cloned();
    match check_version(before.as_ref(), &event) {
        VersionCheck::Next => {}
        VersionCheck::AlreadyApplied => {
            debug!(partition = partition.0, offset = record.offset.0, sku = %event.sku, version = event.version, "skipped applied event");
            return Ok(());
        }
        VersionCheck::Gap => {
            warn!(partition = partition.0, offset = record.offset.0, sku = %event.sku, version = event.version, "skipped event after a version gap");
            return Ok(());
        }
    }
    let old_expiry = before.as_ref().and_then(|p| p.next_expiry());
    let Some(after) = evolve(before, &event) else {
        return Ok(());
    };
    let new_expiry = after.next_expiry();
    if old_expiry != new_expiry {
        if let Some(at) = old_expiry {
            changes.remove_expiry(at, &event.sku);
        }
        if let Some(at) = new_expiry {
            changes.add_expiry(at, &event.sku);
        }
    }
    let provenance = provenance_of(&env, record);
    if let Some(o) = provenance.command_offset {
        changes.meta.last_command_offset = Some(changes.meta.last_command_offset.map_or(o, |l| l.max(o)));
    }
    let mut position = Position::new();
    position.set(partition, stockroom_topics::Offset(record.offset.0 + 1));
    changes.record_command(
        &event.command_id,
        &AppliedCommand {
            fingerprint: provenance.fingerprint,
            at: event.at,
            outcome: StoredOutcome::Accepted { version: event.version, position },
        },
    )?;
    changes.put_product(after);
    Ok(())
}
