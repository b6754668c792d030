//! The write half of the product API (API.md, "Writes").

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use stockroom_domain::product::{DetailsPatch, Money, NewProduct, Patch, ProductCommand, ProductDetails};
use stockroom_domain::{Currency, Gtin, Quantity, ReservationId, Sku, Timestamp, ValidationError};
use stockroom_topics::time;

use super::extract::{IdempotencyKey, IfMatch, JsonBody};
use super::send::{CommandApi, Request, Success};
use crate::protocol::Target;
use stockroom_http::Problem;

fn invalid(e: ValidationError) -> Problem {
    Problem::validation(&e.field, &e.message)
}

fn sku_of(raw: String) -> Result<Sku, Problem> {
    Sku::parse(raw).map_err(invalid)
}

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
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key get the original answer")),
    responses(
        (status = 201, description = "registered", body = super::send::Accepted),
        (status = 202, description = "outcome not known yet; see Location", body = super::send::PendingCommand),
        (status = 409, description = "sku-taken or gtin-taken", body = Problem),
        (status = 422, description = "validation", body = Problem),
    ))]
pub async fn register(
    State(api): State<CommandApi>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Response {
    let parsed = (|| {
        let sku = sku_of(body.sku)?;
        let details = ProductDetails {
            name: body.name,
            description: body.description,
            brand: body.brand,
            category: body.category,
            gtin: body.gtin.map(Gtin::parse).transpose().map_err(invalid)?,
            price: Money {
                cents: body.price_cents,
                currency: body.currency.map(Currency::parse).transpose().map_err(invalid)?.unwrap_or_default(),
            },
            attributes: body.attributes.unwrap_or_default(),
        };
        details.validate().map_err(invalid)?;
        Ok::<_, Problem>((sku, NewProduct { details, initial_stock: body.initial_stock.unwrap_or(0) }))
    })();
    let (sku, new) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let location = format!("/products/{sku}");
    let success = Success::created(location).with("sku", sku.as_str());
    let request = Request { route: "POST /products", idempotency_key: key, expected_version: None, headers: &headers };
    api.send(Target::Product { sku, command: ProductCommand::Register(new) }, request, success).await
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
    params(("sku" = String, Path), ("If-Match" = Option<String>, Header, description = "expected version, e.g. \"3\"")),
    responses(
        (status = 200, description = "updated", body = super::send::Accepted),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem),
    ))]
pub async fn update(
    State(api): State<CommandApi>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<PatchBody>,
) -> Response {
    let parsed = (|| {
        let sku = sku_of(sku)?;
        let gtin = match body.gtin {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(g) => Patch::Set(Gtin::parse(g).map_err(invalid)?),
        };
        let patch = DetailsPatch {
            name: body.name,
            description: body.description,
            brand: body.brand,
            category: body.category,
            gtin,
            price_cents: body.price_cents,
            currency: body.currency.map(Currency::parse).transpose().map_err(invalid)?,
            attributes: body.attributes,
        };
        Ok::<_, Problem>((sku, patch))
    })();
    let (sku, patch) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let request =
        Request { route: "PATCH /products/{sku}", idempotency_key: key, expected_version: expected, headers: &headers };
    let success = Success::ok().with("sku", sku.as_str());
    api.send(Target::Product { sku, command: ProductCommand::UpdateDetails(patch) }, request, success).await
}

#[utoipa::path(delete, path = "/products/{sku}", tag = "products",
    params(("sku" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, description = "discontinued; its history stays in the log", body = super::send::Accepted),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn discontinue(
    State(api): State<CommandApi>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
) -> Response {
    let sku = match sku_of(sku) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let request = Request {
        route: "DELETE /products/{sku}",
        idempotency_key: key,
        expected_version: expected,
        headers: &headers,
    };
    let success = Success::ok().with("sku", sku.as_str());
    api.send(Target::Product { sku, command: ProductCommand::Discontinue }, request, success).await
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
    responses((status = 200, body = super::send::Accepted), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn receive(
    State(api): State<CommandApi>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<ReceiptBody>,
) -> Response {
    let parsed = (|| Ok::<_, Problem>((sku_of(sku)?, Quantity::new(body.quantity).map_err(invalid)?)))();
    let (sku, quantity) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let request = Request {
        route: "POST /products/{sku}/stock/receipts",
        idempotency_key: key,
        expected_version: expected,
        headers: &headers,
    };
    let command = ProductCommand::ReceiveStock { quantity, reference: body.reference };
    api.send(Target::Product { sku: sku.clone(), command }, request, Success::ok().with("sku", sku.as_str())).await
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
    responses((status = 200, body = super::send::Accepted), (status = 404, body = Problem),
        (status = 409, description = "insufficient-stock", body = Problem), (status = 422, body = Problem)))]
pub async fn adjust(
    State(api): State<CommandApi>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<AdjustmentBody>,
) -> Response {
    let sku = match sku_of(sku) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let request = Request {
        route: "POST /products/{sku}/stock/adjustments",
        idempotency_key: key,
        expected_version: expected,
        headers: &headers,
    };
    let command = ProductCommand::AdjustStock { delta: body.delta, reason: body.reason };
    api.send(Target::Product { sku: sku.clone(), command }, request, Success::ok().with("sku", sku.as_str())).await
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
    responses((status = 201, body = super::send::Accepted), (status = 404, body = Problem),
        (status = 409, description = "insufficient-stock or reservation-exists", body = Problem), (status = 422, body = Problem)))]
pub async fn reserve(
    State(api): State<CommandApi>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<ReservationBody>,
) -> Response {
    let parsed = (|| {
        let sku = sku_of(sku)?;
        let reservation_id = ReservationId::parse(body.reservation_id).map_err(invalid)?;
        let quantity = Quantity::new(body.quantity).map_err(invalid)?;
        let expires_at = match body.expires_in_secs {
            Some(0) => return Err(Problem::validation("expires_in_secs", "must be greater than 0")),
            Some(secs) => Some(Timestamp(time::now_ms()).plus_secs(secs)),
            None => None,
        };
        Ok((sku, reservation_id, quantity, expires_at))
    })();
    let (sku, reservation_id, quantity, expires_at) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let request = Request {
        route: "POST /products/{sku}/reservations",
        idempotency_key: key,
        expected_version: expected,
        headers: &headers,
    };
    let success = Success::created(format!("/products/{sku}/reservations/{reservation_id}"))
        .with("sku", sku.as_str())
        .with("reservation_id", reservation_id.as_str());
    let command = ProductCommand::Reserve { reservation_id, quantity, expires_at, order_id: None };
    api.send(Target::Product { sku, command }, request, success).await
}

#[utoipa::path(post, path = "/products/{sku}/reservations/{id}/confirm", tag = "stock",
    params(("sku" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "shipped: on hand and reserved both drop", body = super::send::Accepted),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn confirm(
    State(api): State<CommandApi>,
    Path((sku, id)): Path<(String, String)>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
) -> Response {
    reservation_step(api, sku, id, headers, key, expected, true).await
}

#[utoipa::path(post, path = "/products/{sku}/reservations/{id}/release", tag = "stock",
    params(("sku" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = super::send::Accepted), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn release(
    State(api): State<CommandApi>,
    Path((sku, id)): Path<(String, String)>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected): IfMatch,
) -> Response {
    reservation_step(api, sku, id, headers, key, expected, false).await
}

async fn reservation_step(
    api: CommandApi,
    sku: String,
    id: String,
    headers: HeaderMap,
    key: Option<String>,
    expected: Option<u64>,
    confirm: bool,
) -> Response {
    let parsed = (|| Ok::<_, Problem>((sku_of(sku)?, ReservationId::parse(id).map_err(invalid)?)))();
    let (sku, reservation_id) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let (route, command) = if confirm {
        (
            "POST /products/{sku}/reservations/{id}/confirm",
            ProductCommand::ConfirmReservation { reservation_id: reservation_id.clone() },
        )
    } else {
        (
            "POST /products/{sku}/reservations/{id}/release",
            ProductCommand::ReleaseReservation { reservation_id: reservation_id.clone() },
        )
    };
    let request = Request { route, idempotency_key: key, expected_version: expected, headers: &headers };
    let success = Success::ok().with("sku", sku.as_str()).with("reservation_id", reservation_id.as_str());
    api.send(Target::Product { sku, command }, request, success).await
}
