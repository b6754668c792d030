//! The order aggregate: a saga that reserves stock on several products.
//!
//! The lines of an order live on different products, so on different partitions; no
//! single decision can reserve them all. The order is therefore a process of its
//! own, keyed by order id, whose every step is an event:
//!
//! ```text
//! Place ─► reserving ──all lines reserved──► reserved ──Confirm──► confirming ─► confirmed
//!              │                                │
//!              └─a line failed─► rejecting      └──Cancel──► cancelling ─► cancelled
//!                    (release the reserved lines) ─► rejected
//! ```
//!
//! In each phase the order asks each of its lines' products for one step (reserve,
//! release or confirm the line's reservation) and folds the answers (`LineResult`).
//! The steps to ask for are a function of the state ([`Order::outstanding`]), with
//! deterministic command ids, so whoever drives the saga can ask again after a crash:
//! the products answer a repeated command id with the original outcome, never applying
//! it twice. A saga therefore always finishes; no stock stays reserved by a dead order.

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::ids::{CommandId, OrderId, ReservationId, Sku, Timestamp};
use crate::rejection::Rejection;
use crate::validation::{Quantity, ValidationError};

/// The most lines an order may have.
pub const MAX_LINES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStep {
    Reserve,
    Release,
    Confirm,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(prefix = "order_", serialize_all = "snake_case")]
pub enum OrderCommand {
    Place {
        lines: Vec<OrderLine>,
        expires_at: Option<Timestamp>,
    },
    Confirm,
    Cancel,
    /// A product's answer to a step of line `line`; `rejection` is `None` on success.
    LineResult {
        line: usize,
        step: LineStep,
        rejection: Option<Rejection>,
    },
}

impl OrderCommand {
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Reserving,
    Reserved,
    Rejecting,
    Rejected,
    Confirming,
    Confirmed,
    Cancelling,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserving => "reserving",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Rejecting => "rejecting",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Confirming => "confirming",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelling => "cancelling",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the saga is between phases (nothing more to ask of the products).
    pub fn is_settled(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Rejected | OrderStatus::Confirmed | OrderStatus::Cancelled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Reserving,
    Reserved,
    /// The product refused the reservation.
    Failed,
    Releasing,
    Released,
    Confirming,
    Confirmed,
    /// The reservation was gone at confirmation (it expired first).
    ConfirmFailed,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineState {
    pub sku: Sku,
    pub quantity: Quantity,
    pub status: LineStatus,
    pub rejection: Option<Rejection>,
}

/// Why an order was rejected: the first line that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFailure {
    pub line: usize,
    pub sku: Sku,
    pub rejection: Rejection,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub lines: Vec<LineState>,
    pub expires_at: Option<Timestamp>,
    pub failure: Option<LineFailure>,
    /// The client command that started the current phase: its answer is the phase's end.
    pub phase_command: CommandId,
    pub version: u64,
}

/// A step the saga needs from a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRequest {
    pub line: usize,
    pub sku: Sku,
    pub step: LineStep,
    /// Deterministic, so asking again is answered, not applied twice.
    pub command_id: CommandId,
    pub reservation_id: ReservationId,
    pub quantity: Quantity,
    pub expires_at: Option<Timestamp>,
}

impl Order {
    /// The reservation id of line `line` on its product.
    pub fn reservation_id(order_id: &OrderId, line: usize) -> ReservationId {
        ReservationId::parse(format!("order-{:016x}-{line}", fnv1a(order_id.as_str().as_bytes())))
            .expect("the alphabet and length of this id are valid")
    }

    /// The steps the current phase still waits for.
    pub fn outstanding(&self) -> Vec<LineRequest> {
        let digest = fnv1a(self.order_id.as_str().as_bytes());
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let step = match l.status {
                    LineStatus::Reserving => LineStep::Reserve,
                    LineStatus::Releasing => LineStep::Release,
                    LineStatus::Confirming => LineStep::Confirm,
                    _ => return None,
                };
                let step_name = match step {
                    LineStep::Reserve => "reserve",
                    LineStep::Release => "release",
                    LineStep::Confirm => "confirm",
                };
                Some(LineRequest {
                    line: i,
                    sku: l.sku.clone(),
                    step,
                    command_id: CommandId::parse(format!("order-{digest:016x}-{i}-{step_name}"))
                        .expect("the alphabet and length of this id are valid"),
                    reservation_id: Order::reservation_id(&self.order_id, i),
                    quantity: l.quantity,
                    expires_at: self.expires_at,
                })
            })
            .collect()
    }
}

/// 64-bit FNV-1a: a short, stable name for an order id inside other ids.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub order_id: OrderId,
    pub version: u64,
    pub command_id: CommandId,
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: OrderEventBody,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", content = "data")]
#[strum(prefix = "stockroom.order.")]
pub enum OrderEventBody {
    OrderPlaced {
        lines: Vec<OrderLine>,
        expires_at: Option<Timestamp>,
    },
    LineReserved {
        line: usize,
    },
    LineFailed {
        line: usize,
        rejection: Rejection,
    },
    LineReleased {
        line: usize,
    },
    LineConfirmed {
        line: usize,
    },
    LineConfirmFailed {
        line: usize,
        rejection: Rejection,
    },
    OrderReserved,
    /// A line failed: the reserved ones are being released.
    OrderRejecting {
        failure: LineFailure,
    },
    OrderRejected,
    OrderConfirming,
    OrderConfirmed,
    OrderCancelling,
    OrderCancelled,
}

impl OrderEvent {
    pub fn event_type(&self) -> &'static str {
        (&self.body).into()
    }

    /// Whether this event ends a phase (the phase command's answer is now known).
    pub fn ends_phase(&self) -> bool {
        matches!(
            self.body,
            OrderEventBody::OrderReserved
                | OrderEventBody::OrderRejected
                | OrderEventBody::OrderConfirmed
                | OrderEventBody::OrderCancelled
        )
    }
}

/// Decides an order command.
pub fn decide(
    state: Option<&Order>,
    order_id: &OrderId,
    command: &OrderCommand,
    ctx: &Context,
) -> Result<Vec<OrderEvent>, Rejection> {
    let bodies = match (command, state) {
        (OrderCommand::Place { .. }, Some(_)) => {
            return Err(Rejection::OrderExists { order_id: order_id.clone() });
        }
        (OrderCommand::Place { lines, expires_at }, None) => {
            if lines.is_empty() || lines.len() > MAX_LINES {
                return Err(ValidationError::new("lines", format!("must have 1 to {MAX_LINES} lines")).into());
            }
            if let Some(at) = expires_at
                && *at <= ctx.now
            {
                return Err(ValidationError::new("expires_in_secs", "must be in the future").into());
            }
            vec![OrderEventBody::OrderPlaced { lines: lines.clone(), expires_at: *expires_at }]
        }
        (_, None) => return Err(Rejection::OrderNotFound { order_id: order_id.clone() }),
        (OrderCommand::Confirm, Some(o)) => match o.status {
            OrderStatus::Reserved => vec![OrderEventBody::OrderConfirming],
            OrderStatus::Confirming | OrderStatus::Confirmed => Vec::new(),
            other => return Err(state_error(order_id, other, "confirmed")),
        },
        (OrderCommand::Cancel, Some(o)) => match o.status {
            OrderStatus::Reserved => vec![OrderEventBody::OrderCancelling],
            OrderStatus::Cancelling | OrderStatus::Cancelled => Vec::new(),
            other => return Err(state_error(order_id, other, "cancelled")),
        },
        (OrderCommand::LineResult { line, step, rejection }, Some(o)) => line_result(o, *line, *step, rejection),
    };
    // Fold as we go so that a line result can end the phase in the same decision.
    let mut current = state.cloned();
    let mut events = Vec::with_capacity(bodies.len() + 1);
    let base = state.map_or(0, |o| o.version);
    let mut push = |body: OrderEventBody, current: &mut Option<Order>| {
        let event = OrderEvent {
            order_id: order_id.clone(),
            version: base + 1 + events.len() as u64,
            command_id: ctx.command_id.clone(),
            at: ctx.now,
            body,
        };
        *current = Some(evolve(current.take(), &event));
        events.push(event);
    };
    for body in bodies {
        push(body, &mut current);
    }
    if let Some(next) = current.as_ref().and_then(phase_end) {
        push(next, &mut current);
        // Rejecting with nothing reserved to release is already rejected.
        if let Some(next) = current.as_ref().and_then(phase_end) {
            push(next, &mut current);
        }
    }
    Ok(events)
}

fn state_error(order_id: &OrderId, status: OrderStatus, action: &str) -> Rejection {
    Rejection::OrderState { order_id: order_id.clone(), state: status.as_str().to_owned(), action: action.to_owned() }
}

fn line_result(o: &Order, line: usize, step: LineStep, rejection: &Option<Rejection>) -> Vec<OrderEventBody> {
    let Some(l) = o.lines.get(line) else {
        return Vec::new();
    };
    match (l.status, step) {
        (LineStatus::Reserving, LineStep::Reserve) => match rejection {
            None => vec![OrderEventBody::LineReserved { line }],
            Some(r) => vec![OrderEventBody::LineFailed { line, rejection: r.clone() }],
        },
        // A release that finds no reservation (it expired) has nothing left to release.
        (LineStatus::Releasing, LineStep::Release) => vec![OrderEventBody::LineReleased { line }],
        (LineStatus::Confirming, LineStep::Confirm) => match rejection {
            None => vec![OrderEventBody::LineConfirmed { line }],
            Some(r) => vec![OrderEventBody::LineConfirmFailed { line, rejection: r.clone() }],
        },
        // A repeated or late answer.
        _ => Vec::new(),
    }
}

/// The event that ends the current phase, if every line has answered.
fn phase_end(o: &Order) -> Option<OrderEventBody> {
    let waiting = |s: LineStatus| o.lines.iter().any(|l| l.status == s);
    match o.status {
        OrderStatus::Reserving if !waiting(LineStatus::Reserving) => {
            match o.lines.iter().enumerate().find(|(_, l)| l.status == LineStatus::Failed) {
                None => Some(OrderEventBody::OrderReserved),
                Some((line, l)) => Some(OrderEventBody::OrderRejecting {
                    failure: LineFailure {
                        line,
                        sku: l.sku.clone(),
                        rejection: l
                            .rejection
                            .clone()
                            .unwrap_or(Rejection::OrderNotFound { order_id: o.order_id.clone() }),
                    },
                }),
            }
        }
        OrderStatus::Rejecting if !waiting(LineStatus::Releasing) => Some(OrderEventBody::OrderRejected),
        OrderStatus::Confirming if !waiting(LineStatus::Confirming) => Some(OrderEventBody::OrderConfirmed),
        OrderStatus::Cancelling if !waiting(LineStatus::Releasing) => Some(OrderEventBody::OrderCancelled),
        _ => None,
    }
}

/// Folds one event (the caller checked its version).
pub fn evolve(state: Option<Order>, event: &OrderEvent) -> Order {
    let mut o = match (state, &event.body) {
        (_, OrderEventBody::OrderPlaced { lines, expires_at }) => Order {
            order_id: event.order_id.clone(),
            status: OrderStatus::Reserving,
            lines: lines
                .iter()
                .map(|l| LineState {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    status: LineStatus::Reserving,
                    rejection: None,
                })
                .collect(),
            expires_at: *expires_at,
            failure: None,
            phase_command: event.command_id.clone(),
            version: 0,
        },
        (Some(o), _) => o,
        // Unreachable for a well-formed log (the version check comes first); keep the
        // fold total anyway.
        (None, _) => Order {
            order_id: event.order_id.clone(),
            status: OrderStatus::Rejected,
            lines: Vec::new(),
            expires_at: None,
            failure: None,
            phase_command: event.command_id.clone(),
            version: 0,
        },
    };
    o.version = event.version;
    let set = |o: &mut Order, line: usize, status: LineStatus, rejection: Option<&Rejection>| {
        if let Some(l) = o.lines.get_mut(line) {
            l.status = status;
            if let Some(r) = rejection {
                l.rejection = Some(r.clone());
            }
        }
    };
    let all = |o: &mut Order, from: LineStatus, to: LineStatus| {
        o.lines.iter_mut().filter(|l| l.status == from).for_each(|l| l.status = to);
    };
    match &event.body {
        OrderEventBody::OrderPlaced { .. } => {}
        OrderEventBody::LineReserved { line } => set(&mut o, *line, LineStatus::Reserved, None),
        OrderEventBody::LineFailed { line, rejection } => set(&mut o, *line, LineStatus::Failed, Some(rejection)),
        OrderEventBody::LineReleased { line } => set(&mut o, *line, LineStatus::Released, None),
        OrderEventBody::LineConfirmed { line } => set(&mut o, *line, LineStatus::Confirmed, None),
        OrderEventBody::LineConfirmFailed { line, rejection } => {
            set(&mut o, *line, LineStatus::ConfirmFailed, Some(rejection))
        }
        OrderEventBody::OrderReserved => o.status = OrderStatus::Reserved,
        OrderEventBody::OrderRejecting { failure } => {
            o.status = OrderStatus::Rejecting;
            o.failure = Some(failure.clone());
            all(&mut o, LineStatus::Reserved, LineStatus::Releasing);
        }
        OrderEventBody::OrderRejected => o.status = OrderStatus::Rejected,
        OrderEventBody::OrderConfirming => {
            o.status = OrderStatus::Confirming;
            o.phase_command = event.command_id.clone();
            all(&mut o, LineStatus::Reserved, LineStatus::Confirming);
        }
        OrderEventBody::OrderConfirmed => o.status = OrderStatus::Confirmed,
        OrderEventBody::OrderCancelling => {
            o.status = OrderStatus::Cancelling;
            o.phase_command = event.command_id.clone();
            all(&mut o, LineStatus::Reserved, LineStatus::Releasing);
        }
        OrderEventBody::OrderCancelled => o.status = OrderStatus::Cancelled,
    }
    o
}

crate::aggregate::aggregate! {
    Order { id: OrderId, command: OrderCommand, event: OrderEvent, types: "stockroom.order.", collection: "orders" }
    key: |order_id| order_id.as_str().into(), event_id: |event| &event.order_id,
    evolve: |state, event| Some(evolve(state, event)),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event types are stored in the log: they must not follow a renamed variant.
    #[test]
    fn event_types_and_kinds_are_stable() {
        let body = OrderEventBody::LineConfirmFailed { line: 0, rejection: Rejection::StockOverflow };
        assert_eq!(<&str>::from(&body), "stockroom.order.LineConfirmFailed");
        assert_eq!(OrderCommand::Confirm.kind(), "order_confirm");
    }

    fn oid() -> OrderId {
        OrderId::parse("o-1").unwrap()
    }

    fn line(sku: &str, q: u64) -> OrderLine {
        OrderLine { sku: Sku::parse(sku).unwrap(), quantity: Quantity::new(q).unwrap() }
    }

    fn run(state: Option<Order>, cmd: OrderCommand, id: &str) -> Result<(Option<Order>, Vec<OrderEvent>), Rejection> {
        let ctx = Context::new(CommandId::parse(id).unwrap(), Timestamp(10));
        crate::testsuite::run(state, &oid(), &cmd, &ctx)
    }

    fn result(line: usize, step: LineStep, rejection: Option<Rejection>) -> OrderCommand {
        OrderCommand::LineResult { line, step, rejection }
    }

    fn place() -> Option<Order> {
        run(None, OrderCommand::Place { lines: vec![line("A", 1), line("B", 2)], expires_at: None }, "p").unwrap().0
    }

    #[test]
    fn all_lines_reserved_reserves_the_order() {
        let o = place();
        assert_eq!(o.as_ref().unwrap().outstanding().len(), 2);
        let (o, _) = run(o, result(1, LineStep::Reserve, None), "r1").unwrap();
        assert_eq!(o.as_ref().unwrap().status, OrderStatus::Reserving);
        let (o, events) = run(o, result(0, LineStep::Reserve, None), "r0").unwrap();
        let o = o.unwrap();
        assert_eq!(o.status, OrderStatus::Reserved);
        assert!(events.last().unwrap().ends_phase());
        assert!(o.outstanding().is_empty());
        // A late duplicate changes nothing.
        assert!(run(Some(o), result(0, LineStep::Reserve, None), "r0b").unwrap().1.is_empty());
    }

    #[test]
    fn a_failed_line_releases_the_others_then_rejects() {
        let short = Rejection::InsufficientStock { requested: 2, available: 0 };
        let (o, _) = run(place(), result(0, LineStep::Reserve, None), "r0").unwrap();
        let (o, _) = run(o, result(1, LineStep::Reserve, Some(short.clone())), "r1").unwrap();
        let order = o.clone().unwrap();
        assert_eq!(order.status, OrderStatus::Rejecting);
        assert_eq!(order.failure.as_ref().map(|f| f.line), Some(1));
        let asks = order.outstanding();
        assert_eq!(asks.len(), 1);
        assert_eq!((asks[0].line, asks[0].step), (0, LineStep::Release));
        let (o, events) = run(o, result(0, LineStep::Release, None), "x0").unwrap();
        assert_eq!(o.unwrap().status, OrderStatus::Rejected);
        assert!(events.last().unwrap().ends_phase());
    }

    #[test]
    fn every_line_failing_rejects_at_once() {
        let short = Rejection::InsufficientStock { requested: 1, available: 0 };
        let (o, _) = run(place(), result(0, LineStep::Reserve, Some(short.clone())), "r0").unwrap();
        let (o, events) = run(o, result(1, LineStep::Reserve, Some(short)), "r1").unwrap();
        assert_eq!(o.unwrap().status, OrderStatus::Rejected);
        assert!(events.last().unwrap().ends_phase());
    }

    #[test]
    fn confirm_and_cancel_follow_the_state_machine() {
        let (o, _) = run(place(), result(0, LineStep::Reserve, None), "r0").unwrap();
        assert_eq!(run(o.clone(), OrderCommand::Confirm, "c").unwrap_err().kind(), "order-state");
        let (o, _) = run(o, result(1, LineStep::Reserve, None), "r1").unwrap();
        let (o, _) = run(o, OrderCommand::Confirm, "c").unwrap();
        let order = o.clone().unwrap();
        assert_eq!(order.status, OrderStatus::Confirming);
        assert_eq!(order.phase_command.as_str(), "c");
        assert_eq!(run(o.clone(), OrderCommand::Cancel, "x").unwrap_err().kind(), "order-state");
        let (o, _) = run(o, result(0, LineStep::Confirm, None), "c0").unwrap();
        let (o, _) = run(o, result(1, LineStep::Confirm, None), "c1").unwrap();
        assert_eq!(o.unwrap().status, OrderStatus::Confirmed);
    }

    #[test]
    fn ids_are_deterministic_and_valid() {
        let order = place().unwrap();
        let a = order.outstanding();
        let b = order.outstanding();
        assert_eq!(a, b);
        let long = OrderId::parse("x".repeat(64)).unwrap();
        assert!(Order::reservation_id(&long, 99).as_str().len() <= 64);
    }
}
