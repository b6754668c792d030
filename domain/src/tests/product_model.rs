//! Model-based property test: random command sequences over a few SKUs, run through
//! `decide`/`evolve` and through a deliberately simple reference model. They must
//! agree on every accept/reject, and the invariants must hold after every step:
//! on hand ≥ reserved ≥ 0, reserved = sum of open reservations, versions contiguous.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use crate::Quantity;
use crate::context::Context;
use crate::ids::{CommandId, ReservationId, Sku, Timestamp};
use crate::product::{Product, ProductCommand, VersionCheck, check_version, decide, evolve};
use crate::testsuite::{details, register};

#[derive(Clone, Debug)]
enum Op {
    Register { sku: u8, stock: u64 },
    Receive { sku: u8, q: u64 },
    Adjust { sku: u8, delta: i64 },
    Reserve { sku: u8, id: u8, q: u64, ttl: Option<i64> },
    Confirm { sku: u8, id: u8 },
    Release { sku: u8, id: u8 },
    Expire { sku: u8 },
    Discontinue { sku: u8 },
    Tick { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let sku = 0u8..3;
    let id = 0u8..4;
    prop_oneof![
        (sku.clone(), 0u64..20).prop_map(|(sku, stock)| Op::Register { sku, stock }),
        (sku.clone(), 1u64..10).prop_map(|(sku, q)| Op::Receive { sku, q }),
        (sku.clone(), -10i64..10)
            .prop_filter("nonzero", |(_, d)| *d != 0)
            .prop_map(|(sku, delta)| Op::Adjust { sku, delta }),
        (sku.clone(), id.clone(), 1u64..8, proptest::option::of(1i64..3_000))
            .prop_map(|(sku, id, q, ttl)| Op::Reserve { sku, id, q, ttl }),
        (sku.clone(), id.clone()).prop_map(|(sku, id)| Op::Confirm { sku, id }),
        (sku.clone(), id).prop_map(|(sku, id)| Op::Release { sku, id }),
        sku.clone().prop_map(|sku| Op::Expire { sku }),
        sku.prop_map(|sku| Op::Discontinue { sku }),
        (1i64..2_000).prop_map(|ms| Op::Tick { ms }),
    ]
}

/// The reference: as plain as possible.
#[derive(Clone, Debug, Default)]
struct ModelProduct {
    discontinued: bool,
    on_hand: i128,
    reservations: BTreeMap<u8, (u64, Option<i64>)>,
    version: u64,
}

impl ModelProduct {
    fn reserved(&self) -> i128 {
        self.reservations.values().map(|(q, _)| *q as i128).sum()
    }
}

fn sku(i: u8) -> Sku {
    Sku::parse(format!("SKU-{i}")).unwrap()
}

fn rid(i: u8) -> ReservationId {
    ReservationId::parse(format!("r{i}")).unwrap()
}

/// What the model expects: `Ok(number of events)` or `Err(rejection kind)`.
fn model_step(model: &mut HashMap<u8, ModelProduct>, op: &Op, now: i64) -> Result<u64, &'static str> {
    let s = match op {
        Op::Register { sku, stock } => {
            if model.contains_key(sku) {
                return Err("sku-taken");
            }
            model.insert(*sku, ModelProduct { on_hand: *stock as i128, version: 1, ..Default::default() });
            return Ok(1);
        }
        Op::Tick { .. } => return Ok(0),
        Op::Receive { sku, .. }
        | Op::Adjust { sku, .. }
        | Op::Reserve { sku, .. }
        | Op::Confirm { sku, .. }
        | Op::Release { sku, .. }
        | Op::Expire { sku }
        | Op::Discontinue { sku } => sku,
    };
    let p = model.get_mut(s).ok_or("not-found")?;
    let n = match op {
        Op::Receive { q, .. } => {
            if p.discontinued {
                return Err("product-discontinued");
            }
            p.on_hand += *q as i128;
            1
        }
        Op::Adjust { delta, .. } => {
            if p.on_hand + (*delta as i128) < p.reserved() {
                return Err("insufficient-stock");
            }
            p.on_hand += *delta as i128;
            1
        }
        Op::Reserve { id, q, ttl, .. } => {
            if p.discontinued {
                return Err("product-discontinued");
            }
            if p.reservations.contains_key(id) {
                return Err("reservation-exists");
            }
            if (*q as i128) > p.on_hand - p.reserved() {
                return Err("insufficient-stock");
            }
            p.reservations.insert(*id, (*q, ttl.map(|t| now + t)));
            1
        }
        Op::Confirm { id, .. } => {
            let (q, _) = p.reservations.remove(id).ok_or("not-found")?;
            p.on_hand -= q as i128;
            1
        }
        Op::Release { id, .. } => {
            p.reservations.remove(id).ok_or("not-found")?;
            1
        }
        Op::Expire { .. } => {
            let due: Vec<u8> = p
                .reservations
                .iter()
                .filter(|(_, (_, at))| at.is_some_and(|at| at <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in &due {
                p.reservations.remove(id);
            }
            due.len() as u64
        }
        Op::Discontinue { .. } => {
            if p.discontinued {
                return Err("product-discontinued");
            }
            p.discontinued = true;
            1
        }
        Op::Register { .. } | Op::Tick { .. } => unreachable!("handled above"),
    };
    p.version += n;
    Ok(n)
}

fn command_of(op: &Op, now: i64) -> Option<(u8, ProductCommand)> {
    Some(match op {
        Op::Register { sku, stock } => (*sku, register(&format!("Product {sku}"), *stock)),
        Op::Receive { sku, q } => {
            (*sku, ProductCommand::ReceiveStock { quantity: Quantity::new(*q).unwrap(), reference: None })
        }
        Op::Adjust { sku, delta } => (*sku, ProductCommand::AdjustStock { delta: *delta, reason: "count".into() }),
        Op::Reserve { sku, id, q, ttl } => (
            *sku,
            ProductCommand::Reserve {
                reservation_id: rid(*id),
                quantity: Quantity::new(*q).unwrap(),
                expires_at: ttl.map(|t| Timestamp(now + t)),
                order_id: None,
            },
        ),
        Op::Confirm { sku, id } => (*sku, ProductCommand::ConfirmReservation { reservation_id: rid(*id) }),
        Op::Release { sku, id } => (*sku, ProductCommand::ReleaseReservation { reservation_id: rid(*id) }),
        Op::Expire { sku } => (*sku, ProductCommand::ExpireReservations),
        Op::Discontinue { sku } => (*sku, ProductCommand::Discontinue),
        Op::Tick { .. } => return None,
    })
}

fn check_invariants(p: &Product) {
    let sum: u64 = p.reservations.values().map(|r| r.quantity).sum();
    assert_eq!(p.stock.reserved, sum, "reserved must be the sum of open reservations");
    assert!(p.stock.reserved <= p.stock.on_hand, "reserved {} > on hand {}", p.stock.reserved, p.stock.on_hand);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decide_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut now = 1_000_000i64;
        let mut real: HashMap<u8, Option<Product>> = HashMap::new();
        let mut model: HashMap<u8, ModelProduct> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Op::Tick { ms } = op {
                now += ms;
                continue;
            }
            let expected = model_step(&mut model, op, now);
            let (s, command) = command_of(op, now).unwrap();
            let ctx = Context::new(CommandId::parse(format!("c{i}")).unwrap(), Timestamp(now));
            let state = real.entry(s).or_default();
            let outcome = decide(state.as_ref(), &sku(s), &command, &ctx);
            match (&expected, &outcome) {
                (Ok(n), Ok(events)) => prop_assert_eq!(*n, events.len() as u64, "event count for {:?}", op),
                (Err(kind), Err(rejection)) => prop_assert_eq!(*kind, rejection.kind(), "rejection for {:?}", op),
                _ => prop_assert!(false, "model {:?} vs decide {:?} for {:?}", expected, outcome, op),
            }
            for event in outcome.unwrap_or_default() {
                prop_assert_eq!(check_version(state.as_ref(), &event), VersionCheck::Next);
                *state = evolve(state.take(), &event);
                prop_assert_eq!(state.as_ref().map(|p| p.version), Some(event.version));
            }
            if let Some(p) = state.as_ref() {
                check_invariants(p);
                let m = &model[&s];
                prop_assert_eq!(p.stock.on_hand as i128, m.on_hand);
                prop_assert_eq!(p.stock.reserved as i128, m.reserved());
                prop_assert_eq!(p.version, m.version);
            }
        }
    }
}

#[test]
fn replaying_an_old_event_is_detected() {
    let ctx = Context::new(CommandId::parse("c").unwrap(), Timestamp(0));
    let events = decide(None, &sku(0), &register("A", 1), &ctx).unwrap();
    let state = evolve(None, &events[0]);
    assert_eq!(check_version(state.as_ref(), &events[0]), VersionCheck::AlreadyApplied);
    let mut far = events[0].clone();
    far.version = 3;
    assert_eq!(check_version(state.as_ref(), &far), VersionCheck::Gap);
    let _ = details("unused");
}
