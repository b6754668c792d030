//! What a write handler receives besides its body, as one extractor: the API to
//! send through, the aggregate the path names, the request's keys
//! ([`WriteRequest`]) and, on a product, its `If-Match`. Handlers keep only what is
//! theirs: the body's validation and the command it becomes.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use stockroom_domain::order::OrderCommand;
use stockroom_domain::product::ProductCommand;
use stockroom_domain::{OrderId, ReservationId, Sku};
use stockroom_http::Problem;

use super::extract::{IfMatch, WriteRequest};
use super::send::{CommandApi, Success};
use crate::protocol::Target;

/// A write, with what its route's path names (`P`).
pub struct Write<P> {
    api: CommandApi,
    pub path: P,
    request: WriteRequest,
    /// The version `If-Match` expects, on routes that take it.
    expected: Option<u64>,
}

/// A write that creates its aggregate (`POST /products`, `POST /orders`): its id is
/// in the body.
pub type NewWrite = Write<()>;
/// A write on an existing product: `/products/{sku}/...`.
pub type ProductWrite = Write<ProductPath>;
/// A step of an existing order: `/orders/{id}/...`.
pub type OrderWrite = Write<OrderId>;

/// What a kind of write takes from its route's path parameters.
pub trait WritePath: Sized + Send {
    /// Whether the write takes `If-Match` (only a product has a version to expect).
    const IF_MATCH: bool = false;
    fn parse(params: BTreeMap<String, String>) -> Result<Self, Problem>;
}

impl WritePath for () {
    fn parse(_: BTreeMap<String, String>) -> Result<(), Problem> {
        Ok(())
    }
}

/// `/products/{sku}` and `/products/{sku}/reservations/{id}/...`.
pub struct ProductPath {
    pub sku: Sku,
    /// The reservation's `{id}`, not yet parsed.
    reservation: Option<String>,
}

impl WritePath for ProductPath {
    const IF_MATCH: bool = true;
    fn parse(mut params: BTreeMap<String, String>) -> Result<ProductPath, Problem> {
        Ok(ProductPath { sku: Sku::parse(params.remove("sku").unwrap_or_default())?, reservation: params.remove("id") })
    }
}

impl WritePath for OrderId {
    fn parse(mut params: BTreeMap<String, String>) -> Result<OrderId, Problem> {
        Ok(OrderId::parse(params.remove("id").unwrap_or_default())?)
    }
}

impl<P: WritePath> FromRequestParts<CommandApi> for Write<P> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &CommandApi) -> Result<Self, Problem> {
        let Path(params) = Path::<BTreeMap<String, String>>::from_request_parts(parts, api)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed-request", e.body_text()))?;
        let path = P::parse(params)?;
        let request = WriteRequest::from_request_parts(parts, api).await?;
        let expected = if P::IF_MATCH { IfMatch::from_request_parts(parts, api).await?.0 } else { None };
        Ok(Write { api: api.clone(), path, request, expected })
    }
}

impl NewWrite {
    /// Sends the command of `target`; a success answers `success`.
    pub async fn send(self, target: Target, success: Success) -> Result<Response, Problem> {
        self.api.send(target, self.request, None, success).await
    }
}

impl ProductWrite {
    pub fn sku(&self) -> &Sku {
        &self.path.sku
    }

    /// Sends `command`; a success answers 200 with the product's `sku`.
    pub async fn send(self, command: ProductCommand) -> Result<Response, Problem> {
        self.answering(Success::ok(), command).await
    }

    /// Sends `command`; a success answers `success`, with the product's `sku` added.
    pub async fn answering(self, success: Success, command: ProductCommand) -> Result<Response, Problem> {
        let sku = self.path.sku;
        let success = success.with("sku", sku.as_str());
        self.api.send(Target::Product { sku, command }, self.request, self.expected, success).await
    }

    /// Sends the command `step` makes of the reservation the path names (a confirm
    /// or a release); a success answers 200 with the `sku` and the `reservation_id`.
    pub async fn reservation(self, step: fn(ReservationId) -> ProductCommand) -> Result<Response, Problem> {
        let id = ReservationId::parse(self.path.reservation.clone().unwrap_or_default())?;
        let success = Success::ok().with("reservation_id", id.as_str());
        self.answering(success, step(id)).await
    }
}

impl OrderWrite {
    /// Sends `command`; a success answers 200 with the `order_id` and `state`, the
    /// order's state once the step is done.
    pub async fn send(self, command: OrderCommand, state: &str) -> Result<Response, Problem> {
        let order_id = self.path;
        let success = Success::ok().with("order_id", order_id.as_str()).with("state", state);
        self.api.send(Target::Order { order_id, command }, self.request, None, success).await
    }
}
