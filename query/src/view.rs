//! A product as the catalog shows it, and how one event changes it.
//!
//! The view is a pure fold of the product's events. It is idempotent by version: an
//! event at or below the view's version was applied already (redelivery, or a read
//! again after a crash) and changes nothing; one more than a version ahead is a gap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stockroom_domain::product::{ProductDetails, ProductEvent, ProductEventBody};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewStatus {
    Active,
    Discontinued,
}

impl ViewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewStatus::Active => "active",
            ViewStatus::Discontinued => "discontinued",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockView {
    pub on_hand: u64,
    pub reserved: u64,
    /// `on_hand - reserved`: what can still be reserved.
    pub available: u64,
}

impl StockView {
    fn new(on_hand: u64, reserved: u64) -> StockView {
        StockView { on_hand, reserved, available: on_hand.saturating_sub(reserved) }
    }
}

/// `GET /products/{sku}` (API.md) and one search hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub gtin: Option<String>,
    /// Minor units of `currency`.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub attributes: BTreeMap<String, String>,
    pub status: ViewStatus,
    /// The product's version: the `ETag` a conditional write sends as `If-Match`.
    pub version: u64,
    pub stock: StockView,
    /// Every feed row merged into the product (catalog ingestion), in order.
    #[serde(default)]
    pub sources: Vec<SourceRef>,
}

/// One feed row behind a product: `{source, source_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceRef {
    pub source: String,
    pub source_id: String,
}

/// What [`ProductView::apply`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewUpdate {
    /// The event was the next one: here is the new view.
    Applied(Box<ProductView>),
    /// The view is at or beyond this event's version already.
    AlreadyApplied,
    /// The event skips versions the view has not seen.
    Gap { have: u64, got: u64 },
    /// An event for a product whose registration the view has not seen.
    NotRegistered,
}

impl ProductView {
    fn add_source(&mut self, origin: Option<&stockroom_domain::ingest::FeedOrigin>) {
        if let Some(o) = origin
            && !self.sources.iter().any(|s| s.source == o.source && s.source_id == o.source_id)
        {
            self.sources.push(SourceRef { source: o.source.clone(), source_id: o.source_id.clone() });
        }
    }

    /// Folds one event into the current view (`None`: no view of this SKU yet).
    pub fn apply(current: Option<&ProductView>, event: &ProductEvent) -> ViewUpdate {
        let Some(view) = current else {
            return match &event.body {
                ProductEventBody::ProductRegistered { details, initial_stock, origin } if event.version == 1 => {
                    let mut view = ProductView {
                        sku: event.sku.as_str().to_owned(),
                        name: String::new(),
                        description: None,
                        brand: None,
                        category: None,
                        gtin: None,
                        price_cents: 0,
                        currency: String::new(),
                        attributes: BTreeMap::new(),
                        status: ViewStatus::Active,
                        version: 1,
                        stock: StockView::new(*initial_stock, 0),
                        sources: Vec::new(),
                    };
                    view.add_source(origin.as_ref());
                    view.set_details(details);
                    ViewUpdate::Applied(Box::new(view))
                }
                ProductEventBody::ProductRegistered { .. } => ViewUpdate::Gap { have: 0, got: event.version },
                _ => ViewUpdate::NotRegistered,
            };
        };
        if event.version <= view.version {
            return ViewUpdate::AlreadyApplied;
        }
        if event.version != view.version + 1 {
            return ViewUpdate::Gap { have: view.version, got: event.version };
        }
        let mut next = view.clone();
        next.version = event.version;
        let (mut on_hand, mut reserved) = (view.stock.on_hand, view.stock.reserved);
        match &event.body {
            // A second registration cannot be version + 1 of a registered product
            // unless the log is corrupt; keep the view as it is, at the new version.
            ProductEventBody::ProductRegistered { .. } => {}
            ProductEventBody::DetailsUpdated { details, origin, .. } => {
                next.set_details(details);
                next.add_source(origin.as_ref());
            }
            ProductEventBody::ProductDiscontinued => next.status = ViewStatus::Discontinued,
            ProductEventBody::StockReceived { quantity, .. } => on_hand = on_hand.saturating_add(*quantity),
            ProductEventBody::StockAdjusted { delta, .. } => on_hand = on_hand.saturating_add_signed(*delta),
            ProductEventBody::StockReserved { quantity, .. } => reserved = reserved.saturating_add(*quantity),
            ProductEventBody::ReservationConfirmed { quantity, .. } => {
                on_hand = on_hand.saturating_sub(*quantity);
                reserved = reserved.saturating_sub(*quantity);
            }
            ProductEventBody::ReservationReleased { quantity, .. } => reserved = reserved.saturating_sub(*quantity),
        }
        next.stock = StockView::new(on_hand, reserved);
        ViewUpdate::Applied(Box::new(next))
    }

    fn set_details(&mut self, details: &ProductDetails) {
        self.name = details.name.clone();
        self.description = details.description.clone();
        self.brand = details.brand.clone();
        self.category = details.category.clone();
        self.gtin = details.gtin.as_ref().map(|g| g.as_str().to_owned());
        self.price_cents = details.price.cents;
        self.currency = details.price.currency.as_str().to_owned();
        self.attributes = details.attributes.clone();
    }
}

#[cfg(test)]
mod tests {
    use stockroom_domain::product::{Money, ReleaseReason};
    use stockroom_domain::{CommandId, Currency, ReservationId, Sku, Timestamp};

    use super::*;

    fn event(version: u64, body: ProductEventBody) -> ProductEvent {
        ProductEvent {
            sku: Sku::parse("SKU-1").unwrap(),
            version,
            command_id: CommandId::parse(format!("c-{version}")).unwrap(),
            at: Timestamp(1_000),
            body,
        }
    }

    fn details(name: &str, cents: i64) -> ProductDetails {
        ProductDetails {
            name: name.into(),
            description: Some("a kettle".into()),
            brand: Some("Acme".into()),
            category: Some("kitchen".into()),
            gtin: None,
            price: Money { cents, currency: Currency::parse("EUR").unwrap() },
            attributes: BTreeMap::new(),
        }
    }

    fn applied(update: ViewUpdate) -> ProductView {
        match update {
            ViewUpdate::Applied(v) => *v,
            other => panic!("expected Applied, got {other:?}"),
        }
    }

    fn registered() -> ProductView {
        applied(ProductView::apply(
            None,
            &event(
                1,
                ProductEventBody::ProductRegistered {
                    details: details("Kettle", 2_999),
                    initial_stock: 5,
                    origin: None,
                },
            ),
        ))
    }

    #[test]
    fn registration_creates_the_view() {
        let v = registered();
        assert_eq!(
            (v.sku.as_str(), v.name.as_str(), v.price_cents, v.currency.as_str()),
            ("SKU-1", "Kettle", 2_999, "EUR")
        );
        assert_eq!(v.stock, StockView { on_hand: 5, reserved: 0, available: 5 });
        assert_eq!((v.version, v.status), (1, ViewStatus::Active));
    }

    #[test]
    fn stock_events_move_on_hand_and_reserved() {
        let rid = || ReservationId::parse("r-1").unwrap();
        let mut v = registered();
        let bodies = [
            ProductEventBody::StockReceived { quantity: 10, reference: None },
            ProductEventBody::StockReserved { reservation_id: rid(), quantity: 4, expires_at: None, order_id: None },
            ProductEventBody::ReservationConfirmed { reservation_id: rid(), quantity: 3 },
            ProductEventBody::ReservationReleased {
                reservation_id: rid(),
                quantity: 1,
                reason: ReleaseReason::Released,
            },
            ProductEventBody::StockAdjusted { delta: -2, reason: "broken".into() },
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            v = applied(ProductView::apply(Some(&v), &event(i as u64 + 2, body)));
        }
        assert_eq!(v.stock, StockView { on_hand: 10, reserved: 0, available: 10 });
        assert_eq!(v.version, 6);
    }

    #[test]
    fn details_and_discontinuation() {
        let v = registered();
        let v = applied(ProductView::apply(
            Some(&v),
            &event(
                2,
                ProductEventBody::DetailsUpdated {
                    details: details("Steel kettle", 3_499),
                    changed: vec![],
                    origin: None,
                },
            ),
        ));
        assert_eq!((v.name.as_str(), v.price_cents), ("Steel kettle", 3_499));
        let v = applied(ProductView::apply(Some(&v), &event(3, ProductEventBody::ProductDiscontinued)));
        assert_eq!(v.status, ViewStatus::Discontinued);
    }

    #[test]
    fn redelivery_is_idempotent_and_gaps_are_reported() {
        let v = registered();
        let received = |version| event(version, ProductEventBody::StockReceived { quantity: 1, reference: None });
        assert_eq!(ProductView::apply(Some(&v), &received(1)), ViewUpdate::AlreadyApplied);
        assert_eq!(ProductView::apply(Some(&v), &received(3)), ViewUpdate::Gap { have: 1, got: 3 });
        assert_eq!(ProductView::apply(None, &received(2)), ViewUpdate::NotRegistered);
    }
}
