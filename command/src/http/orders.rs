//! The order API (API.md, "Writes"): an order reserves stock on several products at
//! once, as a saga (`stockroom_domain::order`). A write answers when its phase has
//! ended: `POST /orders` when every line is reserved (201) or the order was rejected
//! and its reserved lines released (409); confirm and cancel when every line has
//! shipped or been released. `GET /orders/{id}` is a read, served by the orders view
//! of the query side.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use stockroom_domain::order::{MAX_LINES, OrderCommand, OrderLine};
use stockroom_domain::{OrderId, Quantity, Sku, Timestamp, ValidationError};
use stockroom_topics::time;

use super::extract::{IdempotencyKey, JsonBody};
use super::send::{CommandApi, Request, Success};
use crate::protocol::Target;
use stockroom_http::Problem;

fn invalid(e: ValidationError) -> Problem {
    Problem::validation(&e.field, &e.message)
}

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
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key get the original answer")),
    responses(
        (status = 201, description = "every line is reserved; body has `state: reserved`", body = super::send::Accepted),
        (status = 202, description = "outcome not known yet; see Location", body = super::send::PendingCommand),
        (status = 409, description = "order-rejected (with `line`, `sku` and `reason`; nothing stays reserved) or order-exists", body = Problem),
        (status = 422, description = "validation", body = Problem),
    ))]
pub async fn place(
    State(api): State<CommandApi>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<OrderBody>,
) -> Response {
    let parsed = (|| {
        let order_id = OrderId::parse(body.order_id).map_err(invalid)?;
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
        let expires_at = match body.expires_in_secs {
            Some(0) => return Err(Problem::validation("expires_in_secs", "must be greater than 0")),
            Some(secs) => Some(Timestamp(time::now_ms()).plus_secs(secs)),
            None => None,
        };
        Ok((order_id, OrderCommand::Place { lines, expires_at }))
    })();
    let (order_id, command) = match parsed {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let request = Request { route: "POST /orders", idempotency_key: key, expected_version: None, headers: &headers };
    let success =
        Success::created(format!("/orders/{order_id}")).with("order_id", order_id.as_str()).with("state", "reserved");
    api.send(Target::Order { order_id, command }, request, success).await
}

#[utoipa::path(post, path = "/orders/{id}/confirm", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, description = "every line shipped; body has `state: confirmed`", body = super::send::Accepted),
        (status = 404, body = Problem), (status = 409, description = "order-state: not reserved", body = Problem)))]
pub async fn confirm(
    State(api): State<CommandApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
) -> Response {
    step(api, id, headers, key, OrderCommand::Confirm).await
}

#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, description = "every line released; body has `state: cancelled`", body = super::send::Accepted),
        (status = 404, body = Problem), (status = 409, description = "order-state: not reserved", body = Problem)))]
pub async fn cancel(
    State(api): State<CommandApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
) -> Response {
    step(api, id, headers, key, OrderCommand::Cancel).await
}

async fn step(api: CommandApi, id: String, headers: HeaderMap, key: Option<String>, command: OrderCommand) -> Response {
    let order_id = match OrderId::parse(id) {
        Ok(id) => id,
        Err(e) => return invalid(e).into_response(),
    };
    let (route, state) = match command {
        OrderCommand::Confirm => ("POST /orders/{id}/confirm", "confirmed"),
        _ => ("POST /orders/{id}/cancel", "cancelled"),
    };
    let request = Request { route, idempotency_key: key, expected_version: None, headers: &headers };
    let success = Success::ok().with("order_id", order_id.as_str()).with("state", state);
    api.send(Target::Order { order_id, command }, request, success).await
}
