use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{Gtin, OrderId, ReservationId, Sku, Timestamp};
use crate::ingest::FeedOrigin;
use crate::ingest::merge::FieldOwner;

use super::event::DetailField;
use crate::validation::{
    ATTRIBUTE_KEY_MAX_CHARS, ATTRIBUTE_VALUE_MAX_CHARS, ATTRIBUTES_MAX, Currency, DESCRIPTION_MAX_CHARS,
    LABEL_MAX_CHARS, NAME_MAX_CHARS, ValidationError, bounded_text, required_text,
};

/// A price in minor units of its currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: Currency,
}

/// What the catalog says about a product.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub name: String,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub gtin: Option<Gtin>,
    pub price: Money,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl ProductDetails {
    /// Checks every field rule; the first broken rule is reported.
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("name", &self.name, NAME_MAX_CHARS)?;
        if let Some(d) = &self.description {
            bounded_text("description", d, DESCRIPTION_MAX_CHARS)?;
        }
        if let Some(b) = &self.brand {
            required_text("brand", b, LABEL_MAX_CHARS)?;
        }
        if let Some(c) = &self.category {
            required_text("category", c, LABEL_MAX_CHARS)?;
        }
        if self.price.cents < 0 {
            return Err(ValidationError::new("price_cents", "must be 0 or more"));
        }
        if self.attributes.len() > ATTRIBUTES_MAX {
            return Err(ValidationError::new("attributes", format!("must have at most {ATTRIBUTES_MAX} entries")));
        }
        for (k, v) in &self.attributes {
            required_text("attributes", k, ATTRIBUTE_KEY_MAX_CHARS)?;
            bounded_text("attributes", v, ATTRIBUTE_VALUE_MAX_CHARS)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    Discontinued,
}

/// Units held for a customer until confirmed (shipped), released, or expired.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quantity: u64,
    pub expires_at: Option<Timestamp>,
    pub order_id: Option<OrderId>,
}

/// Stock levels. Invariants (kept by `decide`, checked by the tests):
/// `reserved <= on_hand`, and `reserved` is the sum of the open reservations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub on_hand: u64,
    pub reserved: u64,
}

impl Stock {
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// A registered product. An unregistered SKU has no state (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub details: ProductDetails,
    pub status: ProductStatus,
    pub stock: Stock,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reservations: BTreeMap<ReservationId, Reservation>,
    /// The version after the last applied event: 1 after registration, then +1 per event.
    pub version: u64,
    /// Every feed row merged into the product (`sources` on `GET /products/{sku}`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sources: BTreeSet<FeedOrigin>,
    /// Who set each detail field last: a source, or the API (a manual amendment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<DetailField, FieldOwner>,
}

impl Product {
    /// The reservations due at `now`, oldest deadline first.
    pub fn expired_reservations(&self, now: Timestamp) -> Vec<(&ReservationId, &Reservation)> {
        let mut due: Vec<_> =
            self.reservations.iter().filter(|(_, r)| r.expires_at.is_some_and(|at| at <= now)).collect();
        due.sort_by_key(|(id, r)| (r.expires_at, (*id).clone()));
        due
    }

    /// The earliest reservation deadline, if any reservation can expire.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.reservations.values().filter_map(|r| r.expires_at).min()
    }
}
