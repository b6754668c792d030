//! Given/when/then scenarios: one per rule of the product aggregate.

use crate::ids::{ReservationId, Timestamp};
use crate::product::{
    DetailField, DetailsPatch, Patch, ProductCommand, ProductEventBody, ProductStatus, ReleaseReason,
};
use crate::testsuite::*;
use crate::{Gtin, Quantity};

fn rid(s: &str) -> ReservationId {
    ReservationId::parse(s).unwrap()
}

#[test]
fn register_a_new_product() {
    let product = given(vec![]).when(register("Hammer", 5)).then_expect(vec![registered("Hammer", 5)]).unwrap();
    assert_eq!(product.version, 1);
    assert_eq!(product.stock.on_hand, 5);
    assert_eq!(product.status, ProductStatus::Active);
}

#[test]
fn registering_twice_is_sku_taken() {
    given(vec![registered("Hammer", 0)]).when(register("Other", 0)).then_reject("sku-taken");
}

#[test]
fn registration_validates_details() {
    given(vec![]).when(register("", 0)).then_reject("validation");
    given(vec![]).when(register(&"x".repeat(201), 0)).then_reject("validation");
    let mut new = match register("Hammer", 0) {
        ProductCommand::Register(n) => n,
        _ => unreachable!(),
    };
    new.details.price.cents = -1;
    given(vec![]).when(ProductCommand::Register(new.clone())).then_reject("validation");
    new.details.price.cents = 0;
    new.details.description = Some("d".repeat(5001));
    given(vec![]).when(ProductCommand::Register(new)).then_reject("validation");
}

#[test]
fn commands_on_unknown_product_are_not_found() {
    given(vec![]).when(receive(1)).then_reject("not-found");
    given(vec![]).when(reserve("r", 1)).then_reject("not-found");
    given(vec![]).when(ProductCommand::Discontinue).then_reject("not-found");
}

#[test]
fn receive_adds_to_on_hand() {
    let p = given(vec![registered("Hammer", 2)])
        .when(receive(3))
        .then_expect(vec![ProductEventBody::StockReceived { quantity: 3, reference: None }])
        .unwrap();
    assert_eq!(p.stock.on_hand, 5);
    assert_eq!(p.version, 2);
}

#[test]
fn adjust_cannot_go_below_reserved() {
    let adjust = |delta| ProductCommand::AdjustStock { delta, reason: "count".into() };
    given(vec![registered("Hammer", 5), reserved("r1", 3)]).when(adjust(-3)).then_reject("insufficient-stock");
    let p = given(vec![registered("Hammer", 5), reserved("r1", 3)])
        .when(adjust(-2))
        .then_expect(vec![ProductEventBody::StockAdjusted { delta: -2, reason: "count".into() }])
        .unwrap();
    assert_eq!((p.stock.on_hand, p.stock.reserved, p.stock.available()), (3, 3, 0));
    given(vec![registered("Hammer", 5)]).when(adjust(0)).then_reject("validation");
    given(vec![registered("Hammer", 5)])
        .when(ProductCommand::AdjustStock { delta: 1, reason: " ".into() })
        .then_reject("validation");
}

#[test]
fn reserve_needs_available_stock() {
    given(vec![registered("Hammer", 5), reserved("a", 4)]).when(reserve("b", 2)).then_reject("insufficient-stock");
    let p = given(vec![registered("Hammer", 5), reserved("a", 4)])
        .when(reserve("b", 1))
        .then_expect(vec![reserved("b", 1)])
        .unwrap();
    assert_eq!(p.stock.available(), 0);
}

#[test]
fn reservation_ids_are_unique_while_open() {
    given(vec![registered("Hammer", 5), reserved("a", 1)]).when(reserve("a", 1)).then_reject("reservation-exists");
    // Once released, the id may be used again.
    given(vec![
        registered("Hammer", 5),
        reserved("a", 1),
        ProductEventBody::ReservationReleased {
            reservation_id: rid("a"),
            quantity: 1,
            reason: ReleaseReason::Released,
        },
    ])
    .when(reserve("a", 1))
    .then_expect(vec![reserved("a", 1)]);
}

#[test]
fn confirm_ships_and_release_returns() {
    let p = given(vec![registered("Hammer", 5), reserved("a", 2)])
        .when(ProductCommand::ConfirmReservation { reservation_id: rid("a") })
        .then_expect(vec![ProductEventBody::ReservationConfirmed { reservation_id: rid("a"), quantity: 2 }])
        .unwrap();
    assert_eq!((p.stock.on_hand, p.stock.reserved), (3, 0));
    let p = given(vec![registered("Hammer", 5), reserved("a", 2)])
        .when(ProductCommand::ReleaseReservation { reservation_id: rid("a") })
        .then_expect(vec![ProductEventBody::ReservationReleased {
            reservation_id: rid("a"),
            quantity: 2,
            reason: ReleaseReason::Released,
        }])
        .unwrap();
    assert_eq!((p.stock.on_hand, p.stock.reserved), (5, 0));
    given(vec![registered("Hammer", 5)])
        .when(ProductCommand::ConfirmReservation { reservation_id: rid("zz") })
        .then_reject("not-found");
}

#[test]
fn expiry_releases_only_due_reservations() {
    let with_deadline = |id: &str, q, at| ProductEventBody::StockReserved {
        reservation_id: rid(id),
        quantity: q,
        expires_at: Some(Timestamp(at)),
        order_id: None,
    };
    let p = given(vec![
        registered("Hammer", 9),
        with_deadline("late", 1, 5_000),
        with_deadline("early", 2, 1_000),
        reserved("open", 3),
    ])
    .at(Timestamp(2_000))
    .when(ProductCommand::ExpireReservations)
    .then_expect(vec![ProductEventBody::ReservationReleased {
        reservation_id: rid("early"),
        quantity: 2,
        reason: ReleaseReason::Expired,
    }])
    .unwrap();
    assert_eq!(p.stock.reserved, 4);
    assert_eq!(p.next_expiry(), Some(Timestamp(5_000)));
    // Nothing due: accepted, no events.
    given(vec![registered("Hammer", 9), with_deadline("late", 1, 5_000)])
        .at(Timestamp(2_000))
        .when(ProductCommand::ExpireReservations)
        .then_expect(vec![]);
}

#[test]
fn reservation_deadline_must_be_in_the_future() {
    given(vec![registered("Hammer", 9)])
        .at(Timestamp(2_000))
        .when(ProductCommand::Reserve {
            reservation_id: rid("a"),
            quantity: Quantity::new(1).unwrap(),
            expires_at: Some(Timestamp(2_000)),
            order_id: None,
        })
        .then_reject("validation");
}

#[test]
fn optimistic_concurrency() {
    given(vec![registered("Hammer", 9), reserved("a", 1)])
        .expecting_version(1)
        .when(receive(1))
        .then_reject("version-mismatch");
    given(vec![registered("Hammer", 9), reserved("a", 1)])
        .expecting_version(2)
        .when(receive(1))
        .then_expect(vec![ProductEventBody::StockReceived { quantity: 1, reference: None }]);
}

#[test]
fn update_records_what_changed_and_skips_no_ops() {
    let patch = DetailsPatch {
        name: Some("Claw hammer".into()),
        brand: Patch::Set("Acme".into()),
        gtin: Patch::Set(Gtin::parse("4006381333931").unwrap()),
        ..Default::default()
    };
    let p = given(vec![registered("Hammer", 0)])
        .when(ProductCommand::UpdateDetails(patch.clone()))
        .then_expect(vec![ProductEventBody::DetailsUpdated {
            details: patch.apply(&details("Hammer")),
            changed: vec![DetailField::Name, DetailField::Brand, DetailField::Gtin],
            origin: None,
        }])
        .unwrap();
    assert_eq!(p.details.brand.as_deref(), Some("Acme"));
    given(vec![registered("Hammer", 0)])
        .when(ProductCommand::UpdateDetails(DetailsPatch { name: Some("Hammer".into()), ..Default::default() }))
        .then_expect(vec![]);
    given(vec![registered("Hammer", 0)])
        .when(ProductCommand::UpdateDetails(DetailsPatch { name: Some("".into()), ..Default::default() }))
        .then_reject("validation");
}

#[test]
fn discontinued_products_refuse_new_business_but_finish_old() {
    let history = vec![registered("Hammer", 5), reserved("a", 2), ProductEventBody::ProductDiscontinued];
    given(history.clone()).when(receive(1)).then_reject("product-discontinued");
    given(history.clone()).when(reserve("b", 1)).then_reject("product-discontinued");
    given(history.clone()).when(ProductCommand::Discontinue).then_reject("product-discontinued");
    given(history.clone())
        .when(ProductCommand::UpdateDetails(DetailsPatch { name: Some("X".into()), ..Default::default() }))
        .then_reject("product-discontinued");
    given(history)
        .when(ProductCommand::ConfirmReservation { reservation_id: rid("a") })
        .then_expect(vec![ProductEventBody::ReservationConfirmed { reservation_id: rid("a"), quantity: 2 }]);
}

#[test]
fn stock_cannot_overflow() {
    let big = crate::validation::QUANTITY_MAX;
    let mut history = vec![registered("Hammer", crate::validation::ON_HAND_MAX - 1)];
    history.push(ProductEventBody::StockReceived { quantity: 1, reference: None });
    given(history).when(receive(big)).then_reject("stock-overflow");
}
