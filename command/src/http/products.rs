//! The write half of the product API (API.md, "Writes").

use std::collections::BTreeMap;

use axum::response::Response;
use serde::Deserialize;
use stockroom_domain::product::{DetailsPatch, Money, NewProduct, Patch, ProductCommand, ProductDetails};
use stockroom_domain::{Currency, Gtin, Quantity, ReservationId, Sku, Timestamp};
use stockroom_topics::time;

use stockroom_http::Problem;

use super::extract::JsonBody;
use super::send::Success;
use super::write::{NewWrite, ProductWrite};
use crate::protocol::Target;

/// `POST /products`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 1–64 of `[A-Za-z0-9._-]`
    pub sku: String,
    /// 1–200 characters
    pub name: String,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    /// 8, 12, 13 or 14 digits with a valid check digit
    pub gtin: Option<String>,
    /// 0 or more
    pub price_cents: i64,
    /// ISO 4217 code, default USD
    pub currency: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub initial_stock: Option<u64>,
}

#[utoipa::path(post, path = "/products", tag = "products", request_body = RegisterBody,
    responses((status = 201, description = "registered", body = super::send::Accepted),
        (status = 409, description = "sku-taken or gtin-taken", body = Problem)))]
pub async fn register(write: NewWrite, JsonBody(body): JsonBody<RegisterBody>) -> Result<Response, Problem> {
    let sku = Sku::parse(body.sku)?;
    let details = ProductDetails {
        name: body.name,
        description: body.description,
        brand: body.brand,
        category: body.category,
        gtin: body.gtin.map(Gtin::parse).transpose()?,
        price: Money {
            cents: body.price_cents,
            currency: body.currency.map(Currency::parse).transpose()?.unwrap_or_default(),
        },
        attributes: body.attributes.unwrap_or_default(),
    };
    details.validate()?;
    let new = NewProduct { details, initial_stock: body.initial_stock.unwrap_or(0), origin: None };
    let success = Success::created(format!("/products/{sku}")).with("sku", sku.as_str());
    write.send(Target::Product { sku, command: ProductCommand::Register(new) }, success).await
}

/// `PATCH /products/{sku}`: JSON merge patch of the detail fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub brand: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub category: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub gtin: Patch<String>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
}

#[utoipa::path(patch, path = "/products/{sku}", tag = "products", request_body = PatchBody,
    params(("sku" = String, Path)),
    responses((status = 200, description = "updated", body = super::send::Accepted)))]
pub async fn update(write: ProductWrite, JsonBody(body): JsonBody<PatchBody>) -> Result<Response, Problem> {
    let gtin = match body.gtin {
        Patch::Keep => Patch::Keep,
        Patch::Clear => Patch::Clear,
        Patch::Set(g) => Patch::Set(Gtin::parse(g)?),
    };
    let patch = DetailsPatch {
        name: body.name,
        description: body.description,
        brand: body.brand,
        category: body.category,
        gtin,
        price_cents: body.price_cents,
        currency: body.currency.map(Currency::parse).transpose()?,
        attributes: body.attributes,
        origin: None,
    };
    write.send(ProductCommand::UpdateDetails(patch)).await
}

#[utoipa::path(delete, path = "/products/{sku}", tag = "products",
    params(("sku" = String, Path)),
    responses((status = 200, description = "discontinued; its history stays in the log", body = super::send::Accepted)))]
pub async fn discontinue(write: ProductWrite) -> Result<Response, Problem> {
    write.send(ProductCommand::Discontinue).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// more than 0
    pub quantity: u64,
    pub reference: Option<String>,
}

#[utoipa::path(post, path = "/products/{sku}/stock/receipts", tag = "stock", request_body = ReceiptBody,
    params(("sku" = String, Path)),
    responses((status = 200, body = super::send::Accepted)))]
pub async fn receive(write: ProductWrite, JsonBody(body): JsonBody<ReceiptBody>) -> Result<Response, Problem> {
    let quantity = Quantity::new(body.quantity)?;
    write.send(ProductCommand::ReceiveStock { quantity, reference: body.reference }).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    /// non-zero; negative removes stock
    pub delta: i64,
    pub reason: String,
}

#[utoipa::path(post, path = "/products/{sku}/stock/adjustments", tag = "stock", request_body = AdjustmentBody,
    params(("sku" = String, Path)),
    responses((status = 200, body = super::send::Accepted),
        (status = 409, description = "insufficient-stock", body = Problem)))]
pub async fn adjust(write: ProductWrite, JsonBody(body): JsonBody<AdjustmentBody>) -> Result<Response, Problem> {
    write.send(ProductCommand::AdjustStock { delta: body.delta, reason: body.reason }).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationBody {
    pub reservation_id: String,
    /// more than 0
    pub quantity: u64,
    /// released by the platform when this many seconds have passed
    pub expires_in_secs: Option<u64>,
}

#[utoipa::path(post, path = "/products/{sku}/reservations", tag = "stock", request_body = ReservationBody,
    params(("sku" = String, Path)),
    responses((status = 201, body = super::send::Accepted),
        (status = 409, description = "insufficient-stock or reservation-exists", body = Problem)))]
pub async fn reserve(write: ProductWrite, JsonBody(body): JsonBody<ReservationBody>) -> Result<Response, Problem> {
    let reservation_id = ReservationId::parse(body.reservation_id)?;
    let quantity = Quantity::new(body.quantity)?;
    let expires_at = expiry(body.expires_in_secs)?;
    let success = Success::created(format!("/products/{}/reservations/{reservation_id}", write.sku()))
        .with("reservation_id", reservation_id.as_str());
    write.answering(success, ProductCommand::Reserve { reservation_id, quantity, expires_at, order_id: None }).await
}

/// When reservations made now lapse, for a request's `expires_in_secs` (none: never).
pub(super) fn expiry(expires_in_secs: Option<u64>) -> Result<Option<Timestamp>, Problem> {
    match expires_in_secs {
        Some(0) => Err(Problem::validation("expires_in_secs", "must be greater than 0")),
        Some(secs) => Ok(Some(Timestamp(time::now_ms()).plus_secs(secs))),
        None => Ok(None),
    }
}

#[utoipa::path(post, path = "/products/{sku}/reservations/{id}/confirm", tag = "stock",
    params(("sku" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "shipped: on hand and reserved both drop", body = super::send::Accepted)))]
pub async fn confirm(write: ProductWrite) -> Result<Response, Problem> {
    write.reservation(|reservation_id| ProductCommand::ConfirmReservation { reservation_id }).await
}

#[utoipa::path(post, path = "/products/{sku}/reservations/{id}/release", tag = "stock",
    params(("sku" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = super::send::Accepted)))]
pub async fn release(write: ProductWrite) -> Result<Response, Problem> {
    write.reservation(|reservation_id| ProductCommand::ReleaseReservation { reservation_id }).await
}
