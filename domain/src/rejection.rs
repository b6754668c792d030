//! Why a command was refused. Each variant maps to one stable problem `type` at the
//! HTTP edge (see `command::http::problem`).

use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, ReservationId, Sku};
use crate::validation::ValidationError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, strum::IntoStaticStr)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum(serialize_all = "kebab-case")]
pub enum Rejection {
    #[error("invalid input: {0}")]
    Validation(ValidationError),
    #[error("product {sku} is already registered")]
    SkuTaken { sku: Sku },
    #[error("GTIN {gtin} already belongs to product {holder}")]
    GtinTaken { gtin: String, holder: Sku },
    #[strum(serialize = "not-found")]
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
    #[strum(serialize = "not-found")]
    #[error("reservation {reservation_id} does not exist")]
    ReservationNotFound { reservation_id: ReservationId },
    #[error("order {order_id} already exists")]
    OrderExists { order_id: OrderId },
    #[strum(serialize = "not-found")]
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
        self.into()
    }
}

impl From<ValidationError> for Rejection {
    fn from(e: ValidationError) -> Self {
        Rejection::Validation(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds are the problem `type`s clients match on: a renamed variant must
    /// not rename its kind.
    #[test]
    fn kinds_are_the_problem_types() {
        let sku = Sku::parse("A-1").unwrap();
        let order_id = OrderId::parse("o-1").unwrap();
        let reservation_id = ReservationId::parse("r-1").unwrap();
        let kinds = [
            (Rejection::SkuTaken { sku: sku.clone() }, "sku-taken"),
            (Rejection::ProductNotFound { sku: sku.clone() }, "not-found"),
            (Rejection::ReservationNotFound { reservation_id: reservation_id.clone() }, "not-found"),
            (Rejection::OrderNotFound { order_id: order_id.clone() }, "not-found"),
            (Rejection::ReservationExists { reservation_id }, "reservation-exists"),
            (Rejection::InsufficientStock { requested: 2, available: 1 }, "insufficient-stock"),
            (Rejection::OrderState { order_id, state: "confirmed".into(), action: "cancelled".into() }, "order-state"),
            (Rejection::StockOverflow, "stock-overflow"),
        ];
        for (rejection, kind) in kinds {
            assert_eq!(rejection.kind(), kind, "{rejection:?}");
        }
    }
}
