//! Merging a feed row into a product (API.md, "Merge"): each field comes from the
//! highest-priority source that gives it, and a field last changed through the
//! command API (a manual amendment) is never overwritten by a feed.
//!
//! Ownership is part of the product's state, folded from its events: an event
//! written by ingestion carries its [`FeedOrigin`], one written by the API carries
//! none, so its changed fields become manual.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::product::{DetailField, DetailsPatch, Patch, Product, ProductDetails};

/// The feed row an ingestion command comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeedOrigin {
    pub source: String,
    pub source_id: String,
}

/// Who set a detail field last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum FieldOwner {
    Source { source: String },
    Manual,
}

/// The patch that merges `row` (from `origin`, of `priority`) into `product`; empty
/// when the row changes nothing. `priority_of` gives another source's current
/// priority.
///
/// Two rows of one source can describe one product (the same GTIN, or brand and
/// name, under two source ids). Then the row with the smallest source id leads and
/// the others only fill fields nobody gave, so that ingesting the feed again
/// changes nothing instead of flipping the product between its rows.
pub fn merge_patch(
    product: &Product,
    row: &ProductDetails,
    origin: &FeedOrigin,
    priority: i64,
    priority_of: impl Fn(&str) -> i64,
) -> DetailsPatch {
    let source = origin.source.as_str();
    let follower = product.sources.iter().any(|o| o.source == source && o.source_id < origin.source_id);
    let may_set = |field: DetailField| match product.owners.get(&field) {
        None => true,
        Some(_) if follower => false,
        Some(FieldOwner::Manual) => false,
        Some(FieldOwner::Source { source: owner }) => owner == source || priority_of(owner) <= priority,
    };
    let current = &product.details;
    let mut patch = DetailsPatch::default();
    if may_set(DetailField::Name) && row.name != current.name {
        patch.name = Some(row.name.clone());
    }
    set_optional(&mut patch.description, &row.description, &current.description, may_set(DetailField::Description));
    set_optional(&mut patch.brand, &row.brand, &current.brand, may_set(DetailField::Brand));
    set_optional(&mut patch.category, &row.category, &current.category, may_set(DetailField::Category));
    set_optional(&mut patch.gtin, &row.gtin, &current.gtin, may_set(DetailField::Gtin));
    if may_set(DetailField::Price) && row.price != current.price {
        patch.price_cents = Some(row.price.cents);
        patch.currency = Some(row.price.currency.clone());
    }
    if may_set(DetailField::Attributes) && !row.attributes.is_empty() && row.attributes != current.attributes {
        patch.attributes = Some(row.attributes.clone());
    }
    patch
}

/// A feed never clears a field: a row that does not give it leaves it as it is.
fn set_optional<T: Clone + PartialEq>(patch: &mut Patch<T>, row: &Option<T>, current: &Option<T>, allowed: bool) {
    if let Some(v) = row
        && allowed
        && Some(v) != current.as_ref()
    {
        *patch = Patch::Set(v.clone());
    }
}

/// Whether the patch changes no field.
pub fn is_empty(patch: &DetailsPatch) -> bool {
    patch.name.is_none()
        && patch.description.is_keep()
        && patch.brand.is_keep()
        && patch.category.is_keep()
        && patch.gtin.is_keep()
        && patch.price_cents.is_none()
        && patch.currency.is_none()
        && patch.attributes.is_none()
}

/// The owners after an event changed `changed` fields, from `origin` (None: the API).
pub fn record_owners(
    owners: &mut BTreeMap<DetailField, FieldOwner>,
    changed: &[DetailField],
    origin: Option<&FeedOrigin>,
) {
    for field in changed {
        let owner = match origin {
            Some(o) => FieldOwner::Source { source: o.source.clone() },
            None => FieldOwner::Manual,
        };
        owners.insert(*field, owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CommandId, Sku, Timestamp};
    use crate::product::{ProductEvent, ProductEventBody, ProductStatus, Stock, evolve};
    use crate::{Currency, product::Money};

    fn details(name: &str, cents: i64) -> ProductDetails {
        ProductDetails {
            name: name.into(),
            description: None,
            brand: None,
            category: None,
            gtin: None,
            price: Money { cents, currency: Currency::default() },
            attributes: Default::default(),
        }
    }

    fn origin(source: &str, id: &str) -> FeedOrigin {
        FeedOrigin { source: source.into(), source_id: id.into() }
    }

    fn product(events: Vec<ProductEventBody>) -> Product {
        let mut state: Option<Product> = None;
        for (i, body) in events.into_iter().enumerate() {
            let event = ProductEvent {
                sku: Sku::parse("P-1").unwrap(),
                version: i as u64 + 1,
                command_id: CommandId::parse("c-1").unwrap(),
                at: Timestamp(0),
                body,
            };
            state = evolve(state, &event);
        }
        state.unwrap()
    }

    #[test]
    fn higher_priority_wins_and_manual_amendments_stay() {
        let p = product(vec![
            ProductEventBody::ProductRegistered {
                details: details("A", 100),
                initial_stock: 0,
                origin: Some(origin("low", "1")),
            },
            ProductEventBody::DetailsUpdated {
                details: details("Manual", 100),
                changed: vec![DetailField::Name],
                origin: None,
            },
        ]);
        assert_eq!(p.status, ProductStatus::Active);
        assert_eq!(p.stock, Stock::default());
        let prio = |s: &str| if s == "low" { 1 } else { 10 };
        let patch = merge_patch(&p, &details("B", 200), &origin("high", "9"), 10, prio);
        assert_eq!(patch.name, None, "manual name stays");
        assert_eq!(patch.price_cents, Some(200), "higher priority takes the price");
        let patch = merge_patch(&p, &details("B", 200), &origin("lowest", "9"), 0, prio);
        assert!(is_empty(&patch), "a lower priority changes nothing");
    }

    #[test]
    fn origins_round_trip_and_old_events_read_without_one() {
        let body = ProductEventBody::DetailsUpdated {
            details: details("A", 1),
            changed: vec![DetailField::Name],
            origin: Some(origin("s", "1")),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["data"]["origin"], serde_json::json!({"source": "s", "source_id": "1"}));
        assert_eq!(serde_json::from_value::<ProductEventBody>(json).unwrap(), body);
        let old =
            serde_json::json!({"type": "DetailsUpdated", "data": {"details": details("A", 1), "changed": ["name"]}});
        let ProductEventBody::DetailsUpdated { origin, .. } = serde_json::from_value(old).unwrap() else { panic!() };
        assert_eq!(origin, None);
        let api = ProductEventBody::DetailsUpdated { details: details("A", 1), changed: vec![], origin: None };
        assert!(serde_json::to_value(&api).unwrap()["data"].get("origin").is_none(), "no origin, no member");
    }

    #[test]
    fn a_second_row_of_one_source_only_fills_gaps() {
        let p = product(vec![ProductEventBody::ProductRegistered {
            details: details("A", 100),
            initial_stock: 0,
            origin: Some(origin("s", "1")),
        }]);
        let mut other = details("B", 200);
        other.brand = Some("Brand".into());
        let patch = merge_patch(&p, &other, &origin("s", "2"), 0, |_| 0);
        assert_eq!((patch.name, patch.price_cents), (None, None));
        assert_eq!(patch.brand, Patch::Set("Brand".into()));
        assert!(is_empty(&merge_patch(&p, &details("A", 100), &origin("s", "1"), 0, |_| 0)));
    }
}
