mod product_model;
mod product_scenarios;
mod serde_roundtrip;
