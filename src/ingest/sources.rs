//! Source definitions (API.md, "A source definition"), kept on the `sources` topic
//! under the key `definition/{name}`: the last record of a name wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stockroom_domain::Currency;
use stockroom_domain::ingest::PriceUnit;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    #[serde(default)]
    pub priority: i64,
    /// Product field → dot path (JSON) or column (CSV). `source_id`, `name` and `price` are required.
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(value_type = String)]
    pub price_unit: PriceUnit,
    #[serde(default = "usd")]
    #[schema(value_type = String)]
    pub currency: Currency,
    #[serde(default)]
    pub category_map: BTreeMap<String, String>,
}

fn usd() -> Currency {
    Currency::default()
}

const FIELDS: [&str; 10] =
    ["source_id", "sku", "name", "description", "brand", "category", "gtin", "price", "currency", "stock"];

impl SourceDef {
    /// The first broken rule: `(field, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for required in ["source_id", "name", "price"] {
            if !self.fields.contains_key(required) {
                return Err((format!("fields.{required}"), "is required".into()));
            }
        }
        if let Some(unknown) = self.fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err((
                format!("fields.{unknown}"),
                format!("is not a product field (one of {})", FIELDS.join(", ")),
            ));
        }
        if let Some((k, _)) = self.fields.iter().chain(&self.attributes).find(|(_, v)| v.trim().is_empty()) {
            return Err((format!("fields.{k}"), "must name a path or column".into()));
        }
        Ok(())
    }
}

/// A source name: 1–64 of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
