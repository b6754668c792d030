//! Round-trip law for everything the log stores: encode then decode gives the same value.

use proptest::prelude::*;

use crate::ids::{CommandId, OrderId, ReservationId, Sku, Timestamp};
use crate::product::{DetailField, Money, ProductDetails, ProductEvent, ProductEventBody, ReleaseReason};
use crate::{Currency, Gtin};

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn details() -> impl Strategy<Value = ProductDetails> {
    (
        text(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(Just(Gtin::parse("4006381333931").unwrap())),
        0i64..1_000_000,
        proptest::collection::btree_map("[a-z]{1,8}", text(), 0..4),
    )
        .prop_map(|(name, description, brand, category, gtin, cents, attributes)| ProductDetails {
            name,
            description,
            brand,
            category,
            gtin,
            price: Money { cents, currency: Currency::parse("EUR").unwrap() },
            attributes,
        })
}

fn body() -> impl Strategy<Value = ProductEventBody> {
    let rid = "[a-z0-9]{1,10}".prop_map(|s| ReservationId::parse(s).unwrap());
    prop_oneof![
        (details(), any::<u32>()).prop_map(|(details, s)| ProductEventBody::ProductRegistered {
            details,
            initial_stock: s as u64,
            origin: None
        }),
        details().prop_map(|details| ProductEventBody::DetailsUpdated {
            details,
            changed: vec![DetailField::Name, DetailField::Gtin],
            origin: None,
        }),
        Just(ProductEventBody::ProductDiscontinued),
        (1u64..1000, proptest::option::of(text()))
            .prop_map(|(quantity, reference)| ProductEventBody::StockReceived { quantity, reference }),
        (any::<i32>(), text()).prop_map(|(d, reason)| ProductEventBody::StockAdjusted { delta: d as i64, reason }),
        (rid.clone(), 1u64..100, proptest::option::of(any::<i64>()), proptest::option::of("[a-z]{1,5}")).prop_map(
            |(reservation_id, quantity, at, order)| ProductEventBody::StockReserved {
                reservation_id,
                quantity,
                expires_at: at.map(Timestamp),
                order_id: order.map(|o| OrderId::parse(o).unwrap()),
            }
        ),
        (rid.clone(), 1u64..100)
            .prop_map(|(reservation_id, quantity)| ProductEventBody::ReservationConfirmed { reservation_id, quantity }),
        (rid, 1u64..100).prop_map(|(reservation_id, quantity)| ProductEventBody::ReservationReleased {
            reservation_id,
            quantity,
            reason: ReleaseReason::Expired,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn product_events_round_trip(body in body(), version in 1u64..1000, at in any::<i64>()) {
        let event = ProductEvent {
            sku: Sku::parse("A-1").unwrap(),
            version,
            command_id: CommandId::parse("cmd-1").unwrap(),
            at: Timestamp(at),
            body,
        };
        let json = serde_json::to_vec(&event).unwrap();
        let back: ProductEvent = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(back, event);
    }
}

#[test]
fn event_json_shape_is_stable() {
    let event = ProductEvent {
        sku: Sku::parse("A-1").unwrap(),
        version: 2,
        command_id: CommandId::parse("cmd-1").unwrap(),
        at: Timestamp(5),
        body: ProductEventBody::StockReceived { quantity: 3, reference: None },
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"sku": "A-1", "version": 2, "command_id": "cmd-1", "at": 5, "type": "StockReceived", "data": {"quantity": 3}})
    );
}
