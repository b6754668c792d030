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

/// The patch that merges `row` (from `source`, of `priority`) into `product`, or
/// `None` when the row changes nothing. `priority_of` gives another source's
/// current priority.
pub fn merge_patch(
    product: &Product,
    row: &ProductDetails,
    source: &str,
    priority: i64,
    priority_of: impl Fn(&str) -> i64,
) -> DetailsPatch {
    let may_set = |field: DetailField| match product.owners.get(&field) {
        None => true,
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
