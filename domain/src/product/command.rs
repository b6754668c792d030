use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{Gtin, OrderId, ReservationId, Timestamp};
use crate::validation::{Currency, Quantity};

use super::state::ProductDetails;
use crate::ingest::FeedOrigin;

/// What a client may ask of one product. The SKU travels beside the command.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProductCommand {
    Register(NewProduct),
    UpdateDetails(DetailsPatch),
    Discontinue,
    ReceiveStock {
        quantity: Quantity,
        reference: Option<String>,
    },
    AdjustStock {
        delta: i64,
        reason: String,
    },
    Reserve {
        reservation_id: ReservationId,
        quantity: Quantity,
        expires_at: Option<Timestamp>,
        order_id: Option<OrderId>,
    },
    ConfirmReservation {
        reservation_id: ReservationId,
    },
    ReleaseReservation {
        reservation_id: ReservationId,
    },
    /// Releases every reservation whose deadline is at or before the command's time.
    /// The platform issues it; time flows in with the command.
    ExpireReservations,
}

impl ProductCommand {
    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.into()
    }

    /// The GTIN this command would give the product, if it sets one.
    pub fn gtin_to_claim(&self) -> Option<&Gtin> {
        match self {
            ProductCommand::Register(new) => new.details.gtin.as_ref(),
            ProductCommand::UpdateDetails(patch) => match &patch.gtin {
                Patch::Set(g) => Some(g),
                _ => None,
            },
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProduct {
    pub details: ProductDetails,
    #[serde(default)]
    pub initial_stock: u64,
    /// Set by ingestion only: the feed row the product comes from. Boxed: commands
    /// travel inside GTIN claims, whose size it would otherwise swell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<FeedOrigin>>,
}

/// A JSON merge-patch field (RFC 7396): absent keeps the value, `null` clears it,
/// a value sets it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }

    /// The field's value after the patch.
    pub fn apply(&self, current: Option<T>) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v.clone()),
        }
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // `Keep` is skipped by `skip_serializing_if`; should it be written anyway,
            // `null` would clear, so refuse rather than change meaning.
            Patch::Keep => Err(serde::ser::Error::custom("Patch::Keep must be skipped")),
            Patch::Clear => s.serialize_none(),
            Patch::Set(v) => s.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Clear,
            Some(v) => Patch::Set(v),
        })
    }
}

/// The detail fields an update may change; `name`, `price_cents`, `currency` and
/// `attributes` can be replaced but not cleared.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailsPatch {
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_keep")]
    pub description: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_keep")]
    pub brand: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_keep")]
    pub category: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_keep")]
    pub gtin: Patch<Gtin>,
    pub price_cents: Option<i64>,
    pub currency: Option<Currency>,
    pub attributes: Option<BTreeMap<String, String>>,
    /// Set by ingestion only (the HTTP body has no such member): the feed row the
    /// patch comes from. Without it, the changed fields become manual amendments.
    pub origin: Option<Box<FeedOrigin>>,
}

impl DetailsPatch {
    /// The details after applying this patch to `current`.
    pub fn apply(&self, current: &ProductDetails) -> ProductDetails {
        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        next.description = self.description.apply(next.description);
        next.brand = self.brand.apply(next.brand);
        next.category = self.category.apply(next.category);
        next.gtin = self.gtin.apply(next.gtin);
        if let Some(cents) = self.price_cents {
            next.price.cents = cents;
        }
        if let Some(currency) = &self.currency {
            next.price.currency = currency.clone();
        }
        if let Some(attributes) = &self.attributes {
            next.attributes = attributes.clone();
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_follows_merge_patch() {
        let p: DetailsPatch = serde_json::from_str(r#"{"brand": null, "category": "tools"}"#).unwrap();
        assert_eq!(p.brand, Patch::Clear);
        assert_eq!(p.category, Patch::Set("tools".to_owned()));
        assert_eq!(p.description, Patch::Keep);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back, serde_json::json!({"brand": null, "category": "tools"}));
    }
}
