//! The SQL read model's tables (API.md, "Databases") and the statements that write
//! one batch of them.

use stockroom_domain::product::{ProductEvent, ProductEventBody};
use tokio_postgres::Transaction;

use crate::view::{ProductView, StockView, ViewStatus};

/// The schema analysts read.
pub const LIVE: &str = "stockroom";
/// Where a rebuild writes before the swap.
pub const REBUILD: &str = "stockroom_rebuild";

/// The tables of a schema, made if missing.
pub fn ddl(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.products (
             sku text PRIMARY KEY, name text NOT NULL, description text, brand text, category text, gtin text,
             price_cents bigint NOT NULL, currency text NOT NULL, status text NOT NULL, version bigint NOT NULL,
             attributes jsonb NOT NULL DEFAULT '{{}}');
         CREATE TABLE IF NOT EXISTS {schema}.stock (
             sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL, available bigint NOT NULL,
             version bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.stock_movements (
             sku text NOT NULL, version bigint NOT NULL, type text NOT NULL, quantity bigint NOT NULL,
             at timestamptz NOT NULL, PRIMARY KEY (sku, version));
         CREATE TABLE IF NOT EXISTS {schema}.positions (
             partition integer PRIMARY KEY, next_offset bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.checkpoint (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), fences jsonb NOT NULL,
             replay_answered bigint NOT NULL DEFAULT 0);"
    )
}

/// A product row and its stock row, as stored.
pub async fn upsert(tx: &Transaction<'_>, schema: &str, view: &ProductView) -> Result<(), tokio_postgres::Error> {
    let attributes = serde_json::to_value(&view.attributes).unwrap_or_default();
    let version = view.version as i64;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.products (sku, name, description, brand, category, gtin, price_cents, currency, \
             status, version, attributes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (sku) DO UPDATE SET name = $2, description = $3, brand = $4, category = $5, gtin = $6,
             price_cents = $7, currency = $8, status = $9, version = $10, attributes = $11"
        ),
        &[
            &view.sku,
            &view.name,
            &view.description,
            &view.brand,
            &view.category,
            &view.gtin,
            &view.price_cents,
            &view.currency,
            &view.status.as_str(),
            &version,
            &attributes,
        ],
    )
    .await?;
    let s = &view.stock;
    let (on_hand, reserved, available) = (s.on_hand as i64, s.reserved as i64, s.available as i64);
    tx.execute(
        &format!(
            "INSERT INTO {schema}.stock (sku, on_hand, reserved, available, version) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (sku) DO UPDATE SET on_hand = $2, reserved = $3, available = $4, version = $5"
        ),
        &[&view.sku, &on_hand, &reserved, &available, &version],
    )
    .await?;
    Ok(())
}

/// The stock movement an event is, if it moves stock: its type and the signed change
/// (of on hand for receipts, adjustments and shipments; of reserved for reservations
/// and releases).
pub fn movement(event: &ProductEvent) -> Option<(&'static str, i64)> {
    let q = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    match &event.body {
        ProductEventBody::ProductRegistered { initial_stock, .. } if *initial_stock > 0 => {
            Some(("initial", q(*initial_stock)))
        }
        ProductEventBody::StockReceived { quantity, .. } => Some(("received", q(*quantity))),
        ProductEventBody::StockAdjusted { delta, .. } => Some(("adjusted", *delta)),
        ProductEventBody::StockReserved { quantity, .. } => Some(("reserved", q(*quantity))),
        ProductEventBody::ReservationConfirmed { quantity, .. } => Some(("shipped", -q(*quantity))),
        ProductEventBody::ReservationReleased { quantity, .. } => Some(("released", -q(*quantity))),
        _ => None,
    }
}

pub async fn insert_movement(
    tx: &Transaction<'_>,
    schema: &str,
    event: &ProductEvent,
    kind: &str,
    quantity: i64,
) -> Result<(), tokio_postgres::Error> {
    let version = event.version as i64;
    let at = event.at.0 as f64 / 1000.0;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.stock_movements (sku, version, type, quantity, at)
             VALUES ($1, $2, $3, $4, to_timestamp($5)) ON CONFLICT (sku, version) DO NOTHING"
        ),
        &[&event.sku.as_str(), &version, &kind, &quantity, &at],
    )
    .await?;
    Ok(())
}

/// Every product of a schema, as views (what the fold starts from).
pub async fn load(client: &tokio_postgres::Client, schema: &str) -> Result<Vec<ProductView>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT p.sku, p.name, p.description, p.brand, p.category, p.gtin, p.price_cents, p.currency, \
                 p.status, p.version, p.attributes, s.on_hand, s.reserved, s.available
                 FROM {schema}.products p JOIN {schema}.stock s USING (sku)"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ProductView {
            sku: r.get(0),
            name: r.get(1),
            description: r.get(2),
            brand: r.get(3),
            category: r.get(4),
            gtin: r.get(5),
            price_cents: r.get(6),
            currency: r.get(7),
            status: if r.get::<_, &str>(8) == "discontinued" { ViewStatus::Discontinued } else { ViewStatus::Active },
            version: r.get::<_, i64>(9) as u64,
            attributes: serde_json::from_value(r.get(10)).unwrap_or_default(),
            stock: StockView {
                on_hand: r.get::<_, i64>(11) as u64,
                reserved: r.get::<_, i64>(12) as u64,
                available: r.get::<_, i64>(13) as u64,
            },
            // The SQL tables keep no provenance; the fold adds sources, nothing here reads them.
            sources: Vec::new(),
        })
        .collect())
}
