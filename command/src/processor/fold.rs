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

use stockroom_domain::gtin::{self, GtinEvent};
use stockroom_domain::order::{self, OrderEvent, OrderStatus};
use stockroom_domain::product::{DetailField, ProductEvent, ProductEventBody, evolve};
use stockroom_domain::{CommandId, Rejection, VersionCheck, check_version};
use stockroom_topics::events::{LogEntry, decode_entry, envelope_of, provenance_of};
use stockroom_topics::{Admission, Envelope, Position, StoredRecord};
use tracing::{debug, warn};

use crate::store::{AppliedCommand, Changes, OwedRelease, StoreError, StoredOutcome};

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
    let Some(env) = admitted(changes, record, unreadable) else {
        return Ok(());
    };
    match decode_entry(&env, record) {
        Ok(LogEntry::Product(event)) => fold_product(changes, record, &env, &event),
        Ok(LogEntry::Fence(_)) => Ok(()),
        Ok(LogEntry::Gtin(event)) => {
            let fingerprint = provenance_of(&env, record).fingerprint;
            fold_gtin(changes, record, &event, fingerprint.as_deref())
        }
        Ok(LogEntry::Order(event)) => {
            let fingerprint = provenance_of(&env, record).fingerprint;
            fold_order(changes, record, &event, fingerprint)
        }
        Err(e) => {
            unreadable.push(Unreadable { record: record.clone(), reason: e.to_string() });
            Ok(())
        }
    }
}

/// Rules 1 and 2: the envelope of a record to fold, or `None` for a fence (now
/// tracked), a record of a fenced-out writer, or one without a readable envelope
/// (dead-lettered).
fn admitted(changes: &mut Changes<'_>, record: &StoredRecord, unreadable: &mut Vec<Unreadable>) -> Option<Envelope> {
    let partition = record.partition;
    let env = match envelope_of(record) {
        Ok(env) => env,
        Err(e) => {
            unreadable.push(Unreadable { record: record.clone(), reason: e.to_string() });
            return None;
        }
    };
    match changes.meta.fences.admit(partition, &env) {
        Admission::Fence(writer) => {
            debug!(partition = partition.0, offset = record.offset.0, epoch = writer.epoch, owner = %writer.owner, "partition fenced");
            None
        }
        Admission::IgnoredFence => {
            debug!(partition = partition.0, offset = record.offset.0, "ignored stale fence");
            None
        }
        Admission::Stale => {
            warn!(partition = partition.0, offset = record.offset.0, "ignored record of a fenced-out writer");
            None
        }
        Admission::Current => Some(env),
    }
}

/// Rule 3 for a product event, then the product, its reservation deadlines, its
/// GTIN claim and its command's outcome.
fn fold_product(
    changes: &mut Changes<'_>,
    record: &StoredRecord,
    env: &Envelope,
    event: &ProductEvent,
) -> Result<(), StoreError> {
    let (partition, offset) = (record.partition.0, record.offset.0);
    let before = changes.product(&event.sku)?.cloned();
    match check_version(before.as_ref(), event) {
        VersionCheck::Next => {}
        VersionCheck::AlreadyApplied => {
            debug!(partition, offset, sku = %event.sku, version = event.version, "skipped applied event");
            return Ok(());
        }
        VersionCheck::Gap => {
            warn!(partition, offset, sku = %event.sku, version = event.version, "skipped event after a version gap");
            return Ok(());
        }
    }
    let before_gtin = before.as_ref().and_then(|p| p.details.gtin.clone());
    let old_expiry = before.as_ref().and_then(|p| p.next_expiry());
    let Some(after) = evolve(before, event) else {
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
    track_gtin(changes, before_gtin, &after, event)?;
    let provenance = provenance_of(env, record);
    if let Some(o) = provenance.command_offset {
        changes.meta.last_command_offset = Some(changes.meta.last_command_offset.map_or(o, |l| l.max(o)));
    }
    let outcome = StoredOutcome::Accepted { version: event.version, position: position_after(record) };
    changes.record_command(
        &event.command_id,
        &AppliedCommand { fingerprint: provenance.fingerprint, at: event.at, outcome },
    )?;
    changes.put_product(after);
    Ok(())
}

/// Keeps the claim through which a product holds its GTIN: the command of the event
/// that gave it the GTIN (that command was the claim). A product that changed or
/// cleared its GTIN gives the old claim up.
fn track_gtin(
    changes: &mut Changes<'_>,
    before: Option<stockroom_domain::Gtin>,
    after: &stockroom_domain::product::Product,
    event: &ProductEvent,
) -> Result<(), StoreError> {
    let sets_gtin = match &event.body {
        ProductEventBody::ProductRegistered { details, .. } => details.gtin.is_some(),
        ProductEventBody::DetailsUpdated { changed, .. } => changed.contains(&DetailField::Gtin),
        _ => false,
    };
    if !sets_gtin {
        return Ok(());
    }
    if let Some(old) = before
        && let Some(claim) = changes.product_claim(&event.sku)?
    {
        changes.owe_release(OwedRelease { gtin: old, sku: event.sku.clone(), claim, since: event.at })?;
    }
    let claim = after.details.gtin.as_ref().map(|_| &event.command_id);
    changes.set_product_claim(&event.sku, claim)
}

/// The position just after `record`: the read-your-writes token of what it caused.
fn position_after(record: &StoredRecord) -> Position {
    let mut position = Position::new();
    position.set(record.partition, stockroom_topics::Offset(record.offset.0 + 1));
    position
}

fn fold_gtin(
    changes: &mut Changes<'_>,
    record: &StoredRecord,
    event: &GtinEvent,
    fingerprint: Option<&str>,
) -> Result<(), StoreError> {
    let canonical = event.gtin.canonical();
    let before = changes.gtin_claim(&canonical)?.cloned();
    if check_version(before.as_ref(), event) != VersionCheck::Next {
        let current = before.as_ref().map_or(0, |c| c.version);
        debug!(partition = record.partition.0, offset = record.offset.0, gtin = %canonical, version = event.version, current, "skipped GTIN event out of sequence");
        return Ok(());
    }
    let after = gtin::evolve(before, event);
    // A claim is answered by the product it is for; until then the claim command is
    // "in progress" (a retry of it is forwarded again).
    let outcome = match &event.body {
        gtin::GtinEventBody::GtinClaimed { .. } => StoredOutcome::InProgress,
        _ => StoredOutcome::Accepted { version: event.version, position: position_after(record) },
    };
    changes.record_command(
        &event.command_id,
        &AppliedCommand { fingerprint: fingerprint.map(str::to_owned), at: event.at, outcome },
    )?;
    changes.put_gtin_claim(after, fingerprint.or(Some("")));
    Ok(())
}

fn fold_order(
    changes: &mut Changes<'_>,
    record: &StoredRecord,
    event: &OrderEvent,
    fingerprint: Option<String>,
) -> Result<(), StoreError> {
    let before = changes.order(&event.order_id)?.cloned();
    if check_version(before.as_ref(), event) != VersionCheck::Next {
        let current = before.as_ref().map_or(0, |o| o.version);
        debug!(partition = record.partition.0, offset = record.offset.0, order = %event.order_id, version = event.version, current, "skipped order event out of sequence");
        return Ok(());
    }
    let after = order::evolve(before, event);
    let position = position_after(record);
    let accepted = StoredOutcome::Accepted { version: event.version, position };
    // The command of this event: a phase start waits for the lines; anything else
    // (a line's result) is done. A later event of the same command overwrites this.
    let own = if after.status.is_settled() || event.ends_phase() {
        accepted.clone()
    } else if matches!(
        event.body,
        order::OrderEventBody::OrderPlaced { .. }
            | order::OrderEventBody::OrderConfirming
            | order::OrderEventBody::OrderCancelling
    ) {
        StoredOutcome::InProgress
    } else {
        accepted.clone()
    };
    changes.record_command(&event.command_id, &AppliedCommand { fingerprint, at: event.at, outcome: own })?;
    if event.ends_phase() {
        let outcome = match (&after.status, &after.failure) {
            (OrderStatus::Rejected, Some(f)) => StoredOutcome::Rejected {
                rejection: Rejection::OrderRejected {
                    order_id: after.order_id.clone(),
                    line: f.line,
                    sku: f.sku.clone(),
                    reason: Box::new(f.rejection.clone()),
                },
            },
            _ => accepted,
        };
        let phase: CommandId = after.phase_command.clone();
        // Keep what the phase's request was, so a reused idempotency key is still caught.
        let (fingerprint, at) = match changes.applied(&phase)? {
            Some(a) => (a.fingerprint, a.at),
            None => (None, event.at),
        };
        changes.record_command(&phase, &AppliedCommand { fingerprint, at, outcome: outcome.clone() })?;
        changes.effects.completed.push((phase, outcome));
    }
    changes.effects.orders.insert(after.order_id.clone());
    changes.put_order(after);
    Ok(())
}
