//! Step 3 to 6 for one batch of commands: decide all, append once, fold, answer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use stockroom_domain::product::{Product, ProductCommand, decide, evolve};
use stockroom_domain::{CommandId, Context, Sku, Timestamp};
use stockroom_topics::events::{Provenance, encode_product_event};
use stockroom_topics::{Offset, Position, Topic};
use tracing::warn;

use super::ProcessorError;
use super::worker::{Worker, log_of};
use crate::protocol::{CommandRecord, Outcome, OutcomeRecord, Target};
use crate::store::{AppliedCommand, StoredOutcome};

/// A decoded command and where it came from.
pub(crate) struct Incoming {
    /// Its offset in `commands`; `None` for commands the processor issues itself.
    pub offset: Option<Offset>,
    pub cmd: CommandRecord,
    pub correlation_id: Option<String>,
}

impl Incoming {
    /// The command that releases a product's lapsed reservations as of `now`. Its id
    /// is deterministic, so issuing it twice for the same instant applies it once.
    pub fn expiry(sku: Sku, now: Timestamp) -> Result<Incoming, ProcessorError> {
        // A SKU is at most 64 characters, so this id always fits the 128 allowed.
        let id = CommandId::parse(format!("expire-{sku}-{}", now.millis()))
            .map_err(|e| ProcessorError::Internal(format!("expiry command id: {e}")))?;
        Ok(Incoming {
            offset: None,
            cmd: CommandRecord {
                id,
                at: now,
                expected_version: None,
                fingerprint: "internal".to_owned(),
                reply_to: None,
                target: Target::Product { sku, command: ProductCommand::ExpireReservations },
            },
            correlation_id: None,
        })
    }
}

/// What a command of the batch waits for before its answer is known.
enum Pending {
    /// Known already: a rejection, a duplicate, a change that changed nothing.
    Known(Outcome),
    /// Its events were appended; the fold tells whether they count.
    InLog,
    /// The same command id earlier in this batch: same answer.
    SameAs(usize),
}

impl Worker {
    pub(super) async fn handle(&mut self, incoming: Vec<Incoming>) -> Result<(), ProcessorError> {
        let mut overlay: HashMap<Sku, Option<Product>> = HashMap::new();
        let mut first_of: HashMap<CommandId, usize> = HashMap::new();
        let mut pending: Vec<(CommandRecord, Pending)> = Vec::with_capacity(incoming.len());
        let mut appends = Vec::new();
        let mut extras: Vec<(CommandId, AppliedCommand)> = Vec::new();
        let mut commands_next: Option<Offset> = None;

        for Incoming { offset, cmd, correlation_id } in incoming {
            if let Some(o) = offset {
                commands_next = Some(Offset(o.0 + 1).max(commands_next.unwrap_or_default()));
            }
            if let Some(&i) = first_of.get(&cmd.id) {
                pending.push((cmd, Pending::SameAs(i)));
                continue;
            }
            if let Some(applied) = self.store.applied(&cmd.id)? {
                let outcome = replay(&applied, &cmd.fingerprint);
                pending.push((cmd, Pending::Known(outcome)));
                continue;
            }
            first_of.insert(cmd.id.clone(), pending.len());
            let Target::Product { sku, command } = &cmd.target;
            let state = match overlay.entry(sku.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.store.product(sku)?),
            };
            let ctx = Context { command_id: cmd.id.clone(), now: cmd.at, expected_version: cmd.expected_version };
            let decided = match decide(state.as_ref(), sku, command, &ctx) {
                Ok(events) if events.is_empty() => {
                    // Accepted, nothing changed: the answer is the current version.
                    let version = state.as_ref().map_or(0, |p| p.version);
                    Err(StoredOutcome::Accepted { version, position: Position::new() })
                }
                Ok(events) => Ok(events),
                Err(rejection) => Err(StoredOutcome::Rejected { rejection }),
            };
            match decided {
                Ok(events) => {
                    let provenance = Provenance {
                        fingerprint: Some(cmd.fingerprint.clone()),
                        command_offset: offset,
                        correlation_id,
                    };
                    for (i, event) in events.iter().enumerate() {
                        appends.push(encode_product_event(event, i, &self.writer, &self.shared.source, &provenance)?);
                        *state = evolve(state.take(), event);
                    }
                    pending.push((cmd, Pending::InLog));
                }
                Err(outcome) => {
                    let applied = AppliedCommand { fingerprint: Some(cmd.fingerprint.clone()), at: cmd.at, outcome };
                    extras.push((cmd.id.clone(), applied.clone()));
                    pending.push((cmd, Pending::Known(replay(&applied, ""))));
                }
            }
        }

        let mut failure = None;
        let end = if appends.is_empty() {
            self.meta.events_next
        } else {
            match log_of(self).append(Topic::Events, self.partition, appends).await {
                Ok(offsets) => offsets.last().map_or(self.meta.events_next, |o| Offset(o.0 + 1)),
                Err(e) => {
                    // The outcome is unknown: fold what the log has and answer from it.
                    warn!(partition = self.partition.0, error = %e, "append failed; answering from the log");
                    let end = log_of(self).end_offset(Topic::Events, self.partition).await?;
                    failure = Some(e);
                    end
                }
            }
        };
        self.catch_up_to(end, extras, commands_next).await?;

        let owner = self.is_owner();
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(pending.len());
        for (cmd, p) in &pending {
            let outcome = match p {
                Pending::Known(o) => Some(o.clone()),
                Pending::SameAs(i) => answers.get(*i).cloned().flatten(),
                Pending::InLog => match self.store.applied(&cmd.id)? {
                    Some(applied) => Some(replay(&applied, &cmd.fingerprint)),
                    // Fenced: the new owner decides it again and answers.
                    None if !owner => None,
                    None => Some(Outcome::Unavailable { reason: "the event log did not take the write; retry".into() }),
                },
            };
            answers.push(outcome);
        }
        let health = &self.shared.health;
        for outcome in answers.iter().flatten() {
            let counter = match outcome {
                Outcome::Accepted { .. } => &health.accepted,
                Outcome::Unavailable { .. } => &health.unavailable,
                _ => &health.rejected,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let outcomes = pending
            .into_iter()
            .zip(answers)
            .filter_map(|((cmd, _), o)| {
                o.map(|outcome| OutcomeRecord { command_id: cmd.id, reply_to: cmd.reply_to, outcome })
            })
            .collect();
        self.answer(outcomes).await?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        self.check_owner()
    }
}

/// The answer to a command that was already decided: its recorded outcome, unless
/// the same id now comes with another request (an idempotency key reused).
fn replay(applied: &AppliedCommand, fingerprint: &str) -> Outcome {
    if !fingerprint.is_empty() && applied.fingerprint.as_deref().is_some_and(|f| f != fingerprint) {
        return Outcome::IdempotencyConflict;
    }
    match &applied.outcome {
        StoredOutcome::Accepted { version, position } => {
            Outcome::Accepted { version: *version, position: position.to_string() }
        }
        StoredOutcome::Rejected { rejection } => Outcome::Rejected { rejection: rejection.clone() },
    }
}
