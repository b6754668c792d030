//! Step 3 to 6 for one batch of commands: decide all, append once, fold, answer.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use stockroom_domain::gtin::{self, GtinClaim, GtinCommand};
use stockroom_domain::order::{self, LineStep, Order, OrderCommand};
use stockroom_domain::product::{self, Product, ProductCommand};
use stockroom_domain::{CommandId, Context, OrderId, Rejection, Sku, Timestamp};
use stockroom_topics::events::{Provenance, encode_gtin_event, encode_order_event, encode_product_event};
use stockroom_topics::{Offset, Partition, Position, Record, Topic, time};
use tracing::warn;

use super::ProcessorError;
use super::worker::{Worker, log_of};
use crate::protocol::{CommandRecord, Notify, Outcome, OutcomeRecord, Target};
use crate::store::{AppliedCommand, StoredOutcome};

/// How long an owed GTIN release is kept, to be sent again if the worker restarts.
const RELEASE_RESEND_WINDOW_MS: i64 = 60_000;

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
                notify: None,
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
    /// Answered later, elsewhere: a claim forwarded to its product, an order phase
    /// waiting for its lines.
    Later,
}

/// The state the batch has decided on so far, on top of the store.
#[derive(Default)]
struct Overlay {
    products: HashMap<Sku, Option<Product>>,
    claims: HashMap<String, Option<GtinClaim>>,
    orders: HashMap<OrderId, Option<Order>>,
}

/// A decision: the records to append and the aggregate's version after them.
type Decided = Result<(Vec<Record>, u64), Rejection>;

impl Worker {
    pub(super) async fn handle(&mut self, incoming: Vec<Incoming>) -> Result<(), ProcessorError> {
        let mut overlay = Overlay::default();
        let mut first_of: HashMap<CommandId, usize> = HashMap::new();
        let mut pending: Vec<(CommandRecord, Pending)> = Vec::with_capacity(incoming.len());
        let mut appends = Vec::new();
        let mut extras: Vec<(CommandId, AppliedCommand)> = Vec::new();
        let mut commands_next: Option<Offset> = None;
        let mut sends: Vec<CommandRecord> = Vec::new();

        for Incoming { offset, cmd, correlation_id } in incoming {
            if let Some(o) = offset {
                commands_next = Some(Offset(o.0 + 1).max(commands_next.unwrap_or_default()));
            }
            if let Some(&i) = first_of.get(&cmd.id) {
                pending.push((cmd, Pending::SameAs(i)));
                continue;
            }
            // A claim's product step carries the claim's id; when the GTIN and the
            // product share a partition, that id is "in progress" here: decide it.
            let claim_step = matches!(cmd.notify, Some(Notify::GtinClaim { .. }));
            if let Some(applied) = self.store.applied(&cmd.id)?
                && !(claim_step && applied.outcome == StoredOutcome::InProgress)
            {
                if applied.outcome == StoredOutcome::InProgress {
                    // Asked again while its answer is still being worked out.
                    self.still_in_progress(&cmd, &mut sends)?;
                    pending.push((cmd, Pending::Later));
                } else {
                    let outcome = replay(&applied, &cmd.fingerprint);
                    pending.push((cmd, Pending::Known(outcome)));
                }
                continue;
            }
            if let Target::Product { command, .. } = &cmd.target
                && command.gtin_to_claim().is_some()
                && !claim_step
            {
                // A GTIN is given only through its claim: send the command there first.
                let mut routed = cmd.clone();
                routed.target = routed.target.routed(cmd.expected_version);
                sends.push(routed);
                pending.push((cmd, Pending::Later));
                continue;
            }
            first_of.insert(cmd.id.clone(), pending.len());
            let ctx = Context { command_id: cmd.id.clone(), now: cmd.at, expected_version: cmd.expected_version };
            let provenance =
                Provenance { fingerprint: Some(cmd.fingerprint.clone()), command_offset: offset, correlation_id };
            let decided = self.decide(&mut overlay, &cmd.target, &ctx, &provenance)?;
            match decided {
                Ok((records, _)) if !records.is_empty() => {
                    appends.extend(records);
                    pending.push((cmd, Pending::InLog));
                }
                other => {
                    let outcome = match other {
                        // Accepted, nothing changed: the answer is the current version.
                        Ok((_, version)) => StoredOutcome::Accepted { version, position: Position::new() },
                        Err(rejection) => StoredOutcome::Rejected { rejection },
                    };
                    let applied = AppliedCommand { fingerprint: Some(cmd.fingerprint.clone()), at: cmd.at, outcome };
                    extras.push((cmd.id.clone(), applied.clone()));
                    pending.push((cmd, Pending::Known(replay(&applied, ""))));
                }
            }
        }

        let mut failure = None;
        let mut own = None;
        let end = if appends.is_empty() {
            self.meta.events_next
        } else {
            let appended = appends.clone();
            match log_of(self).append(Topic::Events, self.partition, appends).await {
                Ok(offsets) => {
                    own = self.contiguous(&offsets).then(|| self.stored(appended, &offsets));
                    offsets.last().map_or(self.meta.events_next, |o| Offset(o.0 + 1))
                }
                Err(e) => {
                    // The outcome is unknown: fold what the log has and answer from it.
                    warn!(partition = self.partition.0, error = %e, "append failed; answering from the log");
                    let end = log_of(self).end_offset(Topic::Events, self.partition).await?;
                    failure = Some(e);
                    end
                }
            }
        };
        match own {
            Some(records) => self.fold_appended(records, extras, commands_next).await?,
            None => self.catch_up_to(end, extras, commands_next).await?,
        }

        let owner = self.is_owner();
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(pending.len());
        for (cmd, p) in &pending {
            let outcome = match p {
                Pending::Known(o) => Some(o.clone()),
                Pending::SameAs(i) => answers.get(*i).cloned().flatten(),
                Pending::Later => None,
                Pending::InLog => match self.store.applied(&cmd.id)? {
                    Some(applied) if applied.outcome == StoredOutcome::InProgress => {
                        self.still_in_progress(cmd, &mut sends)?;
                        None
                    }
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
        for ((cmd, _), outcome) in pending.iter().zip(&answers) {
            if let (Some(notify), Some(outcome)) = (&cmd.notify, outcome)
                && let Some(next) = self.notification(cmd, notify, outcome)?
            {
                sends.push(next);
            }
        }
        let outcomes: Vec<OutcomeRecord> = pending
            .into_iter()
            .zip(answers)
            .filter_map(|((cmd, _), o)| {
                let outcome = o?;
                match cmd.notify {
                    // A failed claim step: the settle that abandoned the claim answers for it.
                    Some(Notify::GtinClaim { .. }) if matches!(outcome, Outcome::Rejected { .. }) => None,
                    Some(Notify::Answer { command_id, rejection }) => Some(OutcomeRecord {
                        command_id,
                        reply_to: cmd.reply_to,
                        outcome: match outcome {
                            Outcome::Accepted { .. } | Outcome::Rejected { .. } => Outcome::Rejected { rejection },
                            other => other,
                        },
                    }),
                    _ => Some(OutcomeRecord { command_id: cmd.id, reply_to: cmd.reply_to, outcome }),
                }
            })
            .collect();
        // What the batch caused goes out before the clients hear of it: a client's
        // next command then finds the release or settle of a GTIN ahead of it in the
        // GTIN's partition (a partition is first in, first out).
        self.send_commands(sends).await?;
        self.apply_effects().await?;
        self.answer(outcomes).await?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        self.check_owner()
    }

    /// Decides one command against the store plus the batch's earlier decisions.
    fn decide(
        &self,
        overlay: &mut Overlay,
        target: &Target,
        ctx: &Context,
        provenance: &Provenance,
    ) -> Result<Decided, ProcessorError> {
        let (writer, source) = (&self.writer, &self.shared.source);
        Ok(match target {
            Target::Product { sku, command } => {
                let state = match overlay.products.entry(sku.clone()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(self.store.product(sku)?),
                };
                match product::decide(state.as_ref(), sku, command, ctx) {
                    Ok(events) => {
                        let mut records = Vec::with_capacity(events.len());
                        for (i, event) in events.iter().enumerate() {
                            records.push(encode_product_event(event, i, writer, source, provenance)?);
                            *state = product::evolve(state.take(), event);
                        }
                        Ok((records, state.as_ref().map_or(0, |p| p.version)))
                    }
                    Err(r) => Err(r),
                }
            }
            Target::Gtin { gtin, command } => {
                let state = match overlay.claims.entry(gtin.canonical()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let loaded = self.store.gtin_claim(e.key())?;
                        e.insert(loaded)
                    }
                };
                match gtin::decide(state.as_ref(), gtin, command, ctx) {
                    Ok(events) => {
                        let mut records = Vec::with_capacity(events.len());
                        for (i, event) in events.iter().enumerate() {
                            records.push(encode_gtin_event(event, i, writer, source, provenance)?);
                            *state = Some(gtin::evolve(state.take(), event));
                        }
                        Ok((records, state.as_ref().map_or(0, |c| c.version)))
                    }
                    Err(r) => Err(r),
                }
            }
            Target::Order { order_id, command } => {
                let state = match overlay.orders.entry(order_id.clone()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(self.store.order(order_id)?),
                };
                match order::decide(state.as_ref(), order_id, command, ctx) {
                    Ok(events) => {
                        let mut records = Vec::with_capacity(events.len());
                        for (i, event) in events.iter().enumerate() {
                            records.push(encode_order_event(event, i, writer, source, provenance)?);
                            *state = Some(order::evolve(state.take(), event));
                        }
                        Ok((records, state.as_ref().map_or(0, |o| o.version)))
                    }
                    Err(r) => Err(r),
                }
            }
        })
    }

    /// A command taken whose answer is not known yet: a GTIN claim goes (again) to
    /// its product; an order phase's client is remembered to be answered at its end.
    fn still_in_progress(&mut self, cmd: &CommandRecord, sends: &mut Vec<CommandRecord>) -> Result<(), ProcessorError> {
        match &cmd.target {
            Target::Gtin { gtin, command: GtinCommand::Claim { sku, command, expected_version } } => {
                sends.push(CommandRecord {
                    id: cmd.id.clone(),
                    at: cmd.at,
                    expected_version: *expected_version,
                    fingerprint: cmd.fingerprint.clone(),
                    reply_to: cmd.reply_to.clone(),
                    target: Target::Product { sku: sku.clone(), command: command.clone() },
                    notify: Some(Notify::GtinClaim { gtin: gtin.clone() }),
                });
            }
            Target::Order { .. } => {
                if let Some(r) = &cmd.reply_to {
                    self.waiting.insert(cmd.id.clone(), r.clone());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The message that tells a saga how its step ended.
    fn notification(
        &self,
        cmd: &CommandRecord,
        notify: &Notify,
        outcome: &Outcome,
    ) -> Result<Option<CommandRecord>, ProcessorError> {
        let rejection = match outcome {
            Outcome::Accepted { .. } => None,
            Outcome::Rejected { rejection } => Some(rejection.clone()),
            // Not decided: the saga asks again.
            _ => return Ok(None),
        };
        let target = match (notify, &cmd.target) {
            (Notify::GtinClaim { gtin }, Target::Product { sku, .. }) => {
                // Confirmed only if the product now holds this GTIN through this claim.
                let holds = rejection.is_none()
                    && self.store.product_claim(sku)?.as_ref() == Some(&cmd.id)
                    && self
                        .store
                        .product(sku)?
                        .and_then(|p| p.details.gtin)
                        .is_some_and(|g| g.canonical() == gtin.canonical());
                Target::Gtin { gtin: gtin.clone(), command: GtinCommand::Settle { claim: cmd.id.clone(), holds } }
            }
            (Notify::OrderLine { order_id, line, step }, _) => Target::Order {
                order_id: order_id.clone(),
                command: OrderCommand::LineResult { line: *line, step: *step, rejection: rejection.clone() },
            },
            _ => return Ok(None),
        };
        let mut next = internal(derived_id(&cmd.id, "result")?, target, None);
        if let (Notify::GtinClaim { .. }, Some(rejection)) = (notify, rejection) {
            // The client hears of the rejection once the claim is abandoned.
            next.reply_to = cmd.reply_to.clone();
            next.notify = Some(Notify::Answer { command_id: cmd.id.clone(), rejection });
        }
        Ok(Some(next))
    }

    /// Acts on what folding found: answers the clients of order phases that ended,
    /// asks products for the steps orders wait for, gives up GTINs products dropped.
    pub(super) async fn apply_effects(&mut self) -> Result<(), ProcessorError> {
        if self.effects.is_empty() {
            return Ok(());
        }
        let effects = std::mem::take(&mut self.effects);
        let mut outcomes = Vec::new();
        for (id, outcome) in effects.completed {
            if let Some(reply_to) = self.waiting.remove(&id) {
                let applied = AppliedCommand { fingerprint: None, at: Timestamp(0), outcome };
                outcomes.push(OutcomeRecord {
                    command_id: id,
                    reply_to: Some(reply_to),
                    outcome: replay(&applied, ""),
                });
            }
        }
        let mut sends = Vec::new();
        for id in effects.orders {
            if let Some(order) = self.store.order(&id)? {
                sends.extend(order_steps(&order));
            }
        }
        for (gtin, sku, claim) in effects.releases {
            let target = Target::Gtin { gtin, command: GtinCommand::Release { sku, claim: claim.clone() } };
            sends.push(internal(derived_id(&claim, "release")?, target, None));
        }
        self.send_commands(sends).await?;
        self.answer(outcomes).await
    }

    /// Forwards pending GTIN claims and asks again for the steps of unfinished orders:
    /// after a crash anywhere, this is what finishes every saga. `at_start`: the worker
    /// has just started (see the owed releases below).
    pub(super) async fn resume_sagas(&mut self, older_than: Timestamp, at_start: bool) -> Result<(), ProcessorError> {
        let mut sends = Vec::new();
        for (canonical, fingerprint) in self.store.pending_claims(10_000)? {
            let Some(claim) = self.store.gtin_claim(&canonical)? else { continue };
            let Some(p) = claim.pending else { continue };
            if p.since > older_than {
                continue;
            }
            sends.push(CommandRecord {
                id: p.claim,
                at: p.since,
                expected_version: p.expected_version,
                fingerprint,
                reply_to: None,
                target: Target::Product { sku: p.sku, command: p.command },
                notify: Some(Notify::GtinClaim { gtin: claim.gtin }),
            });
        }
        for id in self.store.active_orders(10_000)? {
            if let Some(order) = self.store.order(&id)? {
                sends.extend(order_steps(&order));
            }
        }
        // A release is sent when its product gives the GTIN up (`apply_effects`), and
        // sits in `commands` until the GTIN's partition reads it. Only a crash can lose
        // it (the embedded `commands` is in memory), so a starting worker sends every
        // owed release again (idempotent: its id is `{claim}.release`); while the worker
        // lives, a release is only forgotten once it is a minute old.
        let settled_before = Timestamp(time::now_ms() - RELEASE_RESEND_WINDOW_MS);
        let mut forget = Vec::new();
        for r in self.store.owed_releases(10_000)? {
            if at_start {
                let target =
                    Target::Gtin { gtin: r.gtin, command: GtinCommand::Release { sku: r.sku, claim: r.claim.clone() } };
                sends.push(internal(derived_id(&r.claim, "release")?, target, None));
            } else if r.since <= settled_before {
                forget.push(r.claim);
            }
        }
        self.send_commands(sends).await?;
        if !forget.is_empty() {
            self.store.forget_releases(&forget)?;
        }
        Ok(())
    }

    /// Appends commands to the partitions of `commands` that own them.
    async fn send_commands(&self, sends: Vec<CommandRecord>) -> Result<(), ProcessorError> {
        if sends.is_empty() {
            return Ok(());
        }
        let log = log_of(self);
        let mut by_partition: BTreeMap<Partition, Vec<Record>> = BTreeMap::new();
        for cmd in sends {
            let p = log.partition_for_key(Topic::Commands, cmd.target.key().as_bytes());
            by_partition.entry(p).or_default().push(cmd.to_record(&self.shared.source, None)?);
        }
        let appends = by_partition.into_iter().map(|(p, records)| log.append(Topic::Commands, p, records));
        for result in futures::future::join_all(appends).await {
            result?;
        }
        Ok(())
    }
}

/// The product commands an order's current phase waits for.
fn order_steps(order: &Order) -> Vec<CommandRecord> {
    order
        .outstanding()
        .into_iter()
        .map(|req| {
            let command = match req.step {
                LineStep::Reserve => ProductCommand::Reserve {
                    reservation_id: req.reservation_id,
                    quantity: req.quantity,
                    expires_at: req.expires_at,
                    order_id: Some(order.order_id.clone()),
                },
                LineStep::Release => ProductCommand::ReleaseReservation { reservation_id: req.reservation_id },
                LineStep::Confirm => ProductCommand::ConfirmReservation { reservation_id: req.reservation_id },
            };
            let notify = Notify::OrderLine { order_id: order.order_id.clone(), line: req.line, step: req.step };
            internal(req.command_id, Target::Product { sku: req.sku, command }, Some(notify))
        })
        .collect()
}

/// A command the platform sends itself (no client waits for it).
fn internal(id: CommandId, target: Target, notify: Option<Notify>) -> CommandRecord {
    CommandRecord {
        id,
        at: Timestamp(time::now_ms()),
        expected_version: None,
        fingerprint: "internal".to_owned(),
        reply_to: None,
        target,
        notify,
    }
}

/// The id of a command that follows from `id` (deterministic: sent twice, applied once).
fn derived_id(id: &CommandId, suffix: &str) -> Result<CommandId, ProcessorError> {
    CommandId::parse(format!("{id}.{suffix}")).map_err(|e| ProcessorError::Internal(format!("derived command id: {e}")))
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
        StoredOutcome::InProgress => Outcome::Unavailable { reason: "still in progress; ask again".into() },
    }
}
