//! Steps 3 to 6 for one batch of commands: decide all, append once, fold, answer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use stockroom_domain::gtin::{GtinClaim, GtinCommand};
use stockroom_domain::order::{LineStep, Order, OrderCommand};
use stockroom_domain::product::{Product, ProductCommand};
use stockroom_domain::{Aggregate, CommandId, Context, Rejection, Sku, Timestamp};
use stockroom_topics::events::{Provenance, encode_event};
use stockroom_topics::{LogError, Offset, Position, Record, StoredRecord, Topic, time};
use tracing::warn;

use super::ProcessorError;
use super::worker::{Worker, append_by_key, log_of};
use crate::protocol::{CommandRecord, Notify, Outcome, OutcomeRecord, Target};
use crate::store::{AppliedCommand, StoreError, StoredOutcome};

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

/// The state the batch has decided on so far, on top of the store, by aggregate key.
#[derive(Default)]
struct Overlay {
    products: HashMap<String, Option<Product>>,
    claims: HashMap<String, Option<GtinClaim>>,
    orders: HashMap<String, Option<Order>>,
}

/// A decision: the records to append and the aggregate's version after them.
type Decided = Result<(Vec<Record>, u64), Rejection>;

/// What deciding a batch (step 3) leaves for the steps after it.
#[derive(Default)]
struct Decisions {
    /// Every command of the batch, in order, with what its answer waits for.
    pending: Vec<(CommandRecord, Pending)>,
    /// The events of the batch, to append in one go.
    appends: Vec<Record>,
    /// Outcomes of commands that append nothing, committed with the fold.
    extras: Vec<(CommandId, AppliedCommand)>,
    /// Where `commands` resumes after this batch.
    commands_next: Option<Offset>,
    /// Commands the batch causes: claims routed first, saga steps, settles.
    sends: Vec<CommandRecord>,
    overlay: Overlay,
    /// Where each command id first stands in `pending`.
    first_of: HashMap<CommandId, usize>,
}

/// What the append (step 4) tells the fold.
struct Appended {
    /// The `events` offset to fold up to.
    end: Offset,
    /// The appended records at their offsets, when nothing else can be between them.
    own: Option<Vec<StoredRecord>>,
    /// The append failed: its outcome is unknown and the batch is answered from the log.
    failure: Option<LogError>,
}

impl Worker {
    /// Steps 3 to 6 for one batch: decide all, append once, fold, answer.
    pub(super) async fn handle(&mut self, incoming: Vec<Incoming>) -> Result<(), ProcessorError> {
        let mut batch = Decisions::default();
        for command in incoming {
            self.take(&mut batch, command)?;
        }
        let appended = self.append(std::mem::take(&mut batch.appends)).await?;
        let extras = std::mem::take(&mut batch.extras);
        match appended.own {
            Some(records) => self.fold_appended(records, extras, batch.commands_next).await?,
            None => self.catch_up_to(appended.end, extras, batch.commands_next).await?,
        }
        self.answer_batch(batch.pending, batch.sends).await?;
        if let Some(e) = appended.failure {
            return Err(e.into());
        }
        self.check_owner()
    }

    /// Step 3 for one command: answers it from the store if it was decided before,
    /// routes it to its GTIN claim first if it gives a product a GTIN, else decides it.
    fn take(&mut self, batch: &mut Decisions, incoming: Incoming) -> Result<(), ProcessorError> {
        let Incoming { offset, cmd, correlation_id } = incoming;
        if let Some(o) = offset {
            batch.commands_next = Some(Offset(o.0 + 1).max(batch.commands_next.unwrap_or_default()));
        }
        if let Some(&i) = batch.first_of.get(&cmd.id) {
            batch.pending.push((cmd, Pending::SameAs(i)));
            return Ok(());
        }
        if let Some(known) = self.decided_before(&cmd, &mut batch.sends)? {
            batch.pending.push((cmd, known));
            return Ok(());
        }
        if let Target::Product { command, .. } = &cmd.target
            && command.gtin_to_claim().is_some()
            && !is_claim_step(&cmd)
        {
            // A GTIN is given only through its claim: send the command there first.
            let mut routed = cmd.clone();
            routed.target = routed.target.routed(cmd.expected_version);
            batch.sends.push(routed);
            batch.pending.push((cmd, Pending::Later));
            return Ok(());
        }
        batch.first_of.insert(cmd.id.clone(), batch.pending.len());
        let ctx = Context { command_id: cmd.id.clone(), now: cmd.at, expected_version: cmd.expected_version };
        let provenance =
            Provenance { fingerprint: Some(cmd.fingerprint.clone()), command_offset: offset, correlation_id };
        match self.decide(&mut batch.overlay, &cmd.target, &ctx, &provenance)? {
            Ok((records, _)) if !records.is_empty() => {
                batch.appends.extend(records);
                batch.pending.push((cmd, Pending::InLog));
            }
            other => {
                let outcome = match other {
                    // Accepted, nothing changed: the answer is the current version.
                    Ok((_, version)) => StoredOutcome::Accepted { version, position: Position::new() },
                    Err(rejection) => StoredOutcome::Rejected { rejection },
                };
                let applied = AppliedCommand { fingerprint: Some(cmd.fingerprint.clone()), at: cmd.at, outcome };
                batch.extras.push((cmd.id.clone(), applied.clone()));
                batch.pending.push((cmd, Pending::Known(stored_answer(&applied, ""))));
            }
        }
        Ok(())
    }

    /// Step 3's first rule: a command id the store knows is never applied twice. Its
    /// recorded outcome answers it, or, still in progress, it is driven on again.
    fn decided_before(
        &mut self,
        cmd: &CommandRecord,
        sends: &mut Vec<CommandRecord>,
    ) -> Result<Option<Pending>, ProcessorError> {
        let Some(applied) = self.store.applied(&cmd.id)? else { return Ok(None) };
        let in_progress = applied.outcome == StoredOutcome::InProgress;
        // A claim's product step carries the claim's id; when the GTIN and the
        // product share a partition, that id is "in progress" here: decide it.
        if in_progress && is_claim_step(cmd) {
            return Ok(None);
        }
        if in_progress {
            // Asked again while its answer is still being worked out.
            self.still_in_progress(cmd, sends)?;
            return Ok(Some(Pending::Later));
        }
        Ok(Some(Pending::Known(stored_answer(&applied, &cmd.fingerprint))))
    }

    /// Decides one command against the store plus the batch's earlier decisions.
    fn decide(
        &self,
        overlay: &mut Overlay,
        target: &Target,
        ctx: &Context,
        provenance: &Provenance,
    ) -> Result<Decided, ProcessorError> {
        let store = &self.store;
        match target {
            Target::Product { sku, command } => {
                self.decide_on(&mut overlay.products, sku, command, ctx, provenance, || store.product(sku))
            }
            Target::Gtin { gtin, command } => {
                let load = || store.gtin_claim(&gtin.canonical());
                self.decide_on(&mut overlay.claims, gtin, command, ctx, provenance, load)
            }
            Target::Order { order_id, command } => {
                self.decide_on(&mut overlay.orders, order_id, command, ctx, provenance, || store.order(order_id))
            }
        }
    }

    /// Step 3 on aggregate `A`: decides against the instance's state in the batch
    /// (`load`ed from the store on first use), folds the events into that state for
    /// the batch's later commands, and encodes them for the append.
    fn decide_on<A: Aggregate>(
        &self,
        states: &mut HashMap<String, Option<A>>,
        id: &A::Id,
        command: &A::Command,
        ctx: &Context,
        provenance: &Provenance,
        load: impl FnOnce() -> Result<Option<A>, StoreError>,
    ) -> Result<Decided, ProcessorError> {
        let state = match states.entry(A::key(id).into_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(load()?),
        };
        let events = match A::decide(state.as_ref(), id, command, ctx) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let mut records = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            records.push(encode_event::<A>(event, i, &self.writer, &self.shared.source, provenance)?);
            *state = A::evolve(state.take(), event);
        }
        Ok(Ok((records, state.as_ref().map_or(0, A::version))))
    }

    /// Step 4: appends the batch's events in one append (group commit). An append
    /// whose outcome is unknown is not a failure of its commands: the fold reads the
    /// partition's tail and the batch is answered from what is there.
    async fn append(&mut self, appends: Vec<Record>) -> Result<Appended, ProcessorError> {
        if appends.is_empty() {
            return Ok(Appended { end: self.meta.events_next, own: None, failure: None });
        }
        let appended = appends.clone();
        match log_of(self).append(Topic::Events, self.partition, appends).await {
            Ok(offsets) => Ok(Appended {
                end: offsets.last().map_or(self.meta.events_next, |o| Offset(o.0 + 1)),
                own: self.contiguous(&offsets).then(|| self.stored(appended, &offsets)),
                failure: None,
            }),
            Err(e) => {
                // The outcome is unknown: fold what the log has and answer from it.
                warn!(partition = self.partition.0, error = %e, "append failed; answering from the log");
                let end = log_of(self).end_offset(Topic::Events, self.partition).await?;
                Ok(Appended { end, own: None, failure: Some(e) })
            }
        }
    }

    /// Step 6, after the fold: each command's answer from what the store now holds;
    /// the sagas hear how their steps ended, then the clients are answered.
    async fn answer_batch(
        &mut self,
        pending: Vec<(CommandRecord, Pending)>,
        mut sends: Vec<CommandRecord>,
    ) -> Result<(), ProcessorError> {
        let answers = self.answers(&pending, &mut sends)?;
        for ((cmd, _), outcome) in pending.iter().zip(&answers) {
            if let (Some(notify), Some(outcome)) = (&cmd.notify, outcome)
                && let Some(next) = self.notification(cmd, notify, outcome)?
            {
                sends.push(next);
            }
        }
        let outcomes = pending.into_iter().zip(answers).filter_map(|((cmd, _), o)| outcome_record(cmd, o?)).collect();
        // What the batch caused goes out before the clients hear of it: a client's
        // next command then finds the release or settle of a GTIN ahead of it in the
        // GTIN's partition (a partition is first in, first out).
        self.send_commands(sends).await?;
        self.apply_effects().await?;
        self.answer(outcomes).await
    }

    /// The answer of each command of the batch once folded (`None`: not known yet),
    /// counted in the partition's health.
    fn answers(
        &mut self,
        pending: &[(CommandRecord, Pending)],
        sends: &mut Vec<CommandRecord>,
    ) -> Result<Vec<Option<Outcome>>, ProcessorError> {
        let owner = self.is_owner();
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(pending.len());
        for (cmd, p) in pending {
            let outcome = match p {
                Pending::Known(o) => Some(o.clone()),
                Pending::SameAs(i) => answers.get(*i).cloned().flatten(),
                Pending::Later => None,
                Pending::InLog => match self.store.applied(&cmd.id)? {
                    Some(applied) if applied.outcome == StoredOutcome::InProgress => {
                        self.still_in_progress(cmd, sends)?;
                        None
                    }
                    Some(applied) => Some(stored_answer(&applied, &cmd.fingerprint)),
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
        Ok(answers)
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
                    outcome: stored_answer(&applied, ""),
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
        let mut records = Vec::with_capacity(sends.len());
        for cmd in sends {
            records.push((cmd.target.key().into_bytes(), cmd.to_record(&self.shared.source, None)?));
        }
        append_by_key(log_of(self), Topic::Commands, records).await
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

/// The stored answer to a command that was already decided: its recorded outcome, unless
/// the same id now comes with another request (an idempotency key reused).
fn stored_answer(applied: &AppliedCommand, fingerprint: &str) -> Outcome {
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

/// Whether `cmd` is the product step of a GTIN claim (it carries the claim's id).
fn is_claim_step(cmd: &CommandRecord) -> bool {
    matches!(cmd.notify, Some(Notify::GtinClaim { .. }))
}

/// What the client of `cmd` is told, if anyone is.
fn outcome_record(cmd: CommandRecord, outcome: Outcome) -> Option<OutcomeRecord> {
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
}
