//! The order API (API.md, "Writes"): an order reserves stock on several products at
//! once, as a saga (`stockroom_domain::order`). A write answers when its phase has
//! ended: `POST /orders` when every line is reserved (201) or the order was rejected
//! and its reserved lines released (409); confirm and cancel when every line has
//! shipped or been released. `GET /orders/{id}` is a read, served by the orders view
//! of the query side.

use axum::response::Response;
use serde::Deserialize;
use stockroom_domain::order::{MAX_LINES, OrderCommand, OrderLine};
use stockroom_domain::{OrderId, Quantity, Sku, ValidationError};
use stockroom_http::Problem;

use super::extract::JsonBody;
use super::products::expiry;
use super::send::Success;
use super::write::{NewWrite, OrderWrite};
use crate::protocol::Target;

/// `POST /orders`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    /// 1–64 of `[A-Za-z0-9._-]`, chosen by the client (so a retry is the same order)
    pub order_id: String,
    /// 1 to 100 lines; a SKU may appear on several lines
    pub lines: Vec<OrderLineBody>,
    /// the reservations lapse (and are released by the platform) after this many seconds
    pub expires_in_secs: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineBody {
    pub sku: String,
    /// more than 0
    pub quantity: u64,
}

#[utoipa::path(post, path = "/orders", tag = "orders", request_body = OrderBody,
    responses((status = 201, description = "every line is reserved; body has `state: reserved`", body = super::send::Accepted),
        (status = 409, description = "order-rejected (with `line`, `sku` and `reason`; nothing stays reserved) or order-exists", body = Problem)))]
pub async fn place(write: NewWrite, JsonBody(body): JsonBody<OrderBody>) -> Result<Response, Problem> {
    let order_id = OrderId::parse(body.order_id)?;
    if body.lines.is_empty() || body.lines.len() > MAX_LINES {
        return Err(Problem::validation("lines", &format!("must have 1 to {MAX_LINES} lines")));
    }
    let lines = body
        .lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let at = |e: ValidationError| Problem::validation(&format!("lines[{i}].{}", e.field), &e.message);
            Ok(OrderLine { sku: Sku::parse(l.sku).map_err(at)?, quantity: Quantity::new(l.quantity).map_err(at)? })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let command = OrderCommand::Place { lines, expires_at: expiry(body.expires_in_secs)? };
    let success =
        Success::created(format!("/orders/{order_id}")).with("order_id", order_id.as_str()).with("state", "reserved");
    write.send(Target::Order { order_id, command }, success).await
}

#[utoipa::path(post, path = "/orders/{id}/confirm", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, description = "every line shipped; body has `state: confirmed`", body = super::send::Accepted), (status = 409, description = "order-state: not reserved", body = Problem)))]
pub async fn confirm(write: OrderWrite) -> Result<Response, Problem> {
    write.send(OrderCommand::Confirm, "confirmed").await
}

#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, description = "every line released; body has `state: cancelled`", body = super::send::Accepted), (status = 409, description = "order-state: not reserved", body = Problem)))]
pub async fn cancel(write: OrderWrite) -> Result<Response, Problem> {
    write.send(OrderCommand::Cancel, "cancelled").await
}
