//! Why a command was refused. Each variant maps to one stable problem `type` at the
//! HTTP edge (see `command::http::problem`).

use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, ReservationId, Sku};
use crate::validation::ValidationError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rejection {
    #[error("invalid input: {0}")]
    Validation(ValidationError),
    #[error("product {sku} is already registered")]
    SkuTaken { sku: Sku },
    #[error("GTIN {gtin} already belongs to product {holder}")]
    GtinTaken { gtin: String, holder: Sku },
    #[error("product {sku} does not exist")]
    ProductNotFound { sku: Sku },
    #[error("product {sku} is discontinued")]
    ProductDiscontinued { sku: Sku },
    #[error("expected version {expected} but product is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("insufficient stock: requested {requested}, available {available}")]
    InsufficientStock { requested: u64, available: u64 },
    #[error("stock would exceed the largest allowed quantity")]
    StockOverflow,
    #[error("reservation {reservation_id} already exists")]
    ReservationExists { reservation_id: ReservationId },
    #[error("reservation {reservation_id} does not exist")]
    ReservationNotFound { reservation_id: ReservationId },
    #[error("order {order_id} already exists")]
    OrderExists { order_id: OrderId },
    #[error("order {order_id} does not exist")]
    OrderNotFound { order_id: OrderId },
    #[error("order {order_id} was rejected: line {line} ({sku}): {reason}")]
    OrderRejected { order_id: OrderId, line: usize, sku: Sku, reason: Box<Rejection> },
    #[error("order {order_id} is {state} and cannot be {action}")]
    OrderState { order_id: OrderId, state: String, action: String },
}

impl Rejection {
    /// The stable kind name, used as the last segment of the problem `type` URI.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Validation(_) => "validation",
            Rejection::SkuTaken { .. } => "sku-taken",
            Rejection::GtinTaken { .. } => "gtin-taken",
            Rejection::ProductNotFound { .. } => "not-found",
            Rejection::ProductDiscontinued { .. } => "product-discontinued",
            Rejection::VersionMismatch { .. } => "version-mismatch",
            Rejection::InsufficientStock { .. } => "insufficient-stock",
            Rejection::StockOverflow => "stock-overflow",
            Rejection::ReservationExists { .. } => "reservation-exists",
            Rejection::ReservationNotFound { .. } => "not-found",
            Rejection::OrderExists { .. } => "order-exists",
            Rejection::OrderNotFound { .. } => "not-found",
            Rejection::OrderRejected { .. } => "order-rejected",
            Rejection::OrderState { .. } => "order-state",
        }
    }
}

impl From<ValidationError> for Rejection {
    fn from(e: ValidationError) -> Self {
        Rejection::Validation(e)
    }
}
