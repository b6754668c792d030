use crate::aggregate::{VersionCheck, check_version};

use super::event::{ProductEvent, ProductEventBody};
use super::state::{Product, ProductStatus, Reservation, Stock};

/// Folds one event into the product. Callers check the version first
/// ([`check_version`]); `evolve` trusts that the event is the next one.
pub fn evolve(state: Option<Product>, event: &ProductEvent) -> Option<Product> {
    debug_assert_eq!(check_version(state.as_ref(), event), VersionCheck::Next);
    let mut product = match (&event.body, state) {
        (ProductEventBody::ProductRegistered { details, initial_stock }, _) => {
            return Some(Product {
                sku: event.sku.clone(),
                details: details.clone(),
                status: ProductStatus::Active,
                stock: Stock { on_hand: *initial_stock, reserved: 0 },
                reservations: Default::default(),
                version: event.version,
            });
        }
        // An event for a product that was never registered cannot be folded; the
        // version check makes this unreachable for well-formed logs.
        (_, None) => return None,
        (_, Some(p)) => p,
    };
    match &event.body {
        ProductEventBody::ProductRegistered { .. } => {}
        ProductEventBody::DetailsUpdated { details, .. } => product.details = details.clone(),
        ProductEventBody::ProductDiscontinued => product.status = ProductStatus::Discontinued,
        ProductEventBody::StockReceived { quantity, .. } => {
            product.stock.on_hand = product.stock.on_hand.saturating_add(*quantity);
        }
        ProductEventBody::StockAdjusted { delta, .. } => {
            product.stock.on_hand = product.stock.on_hand.saturating_add_signed(*delta);
        }
        ProductEventBody::StockReserved { reservation_id, quantity, expires_at, order_id } => {
            product.stock.reserved = product.stock.reserved.saturating_add(*quantity);
            product.reservations.insert(
                reservation_id.clone(),
                Reservation { quantity: *quantity, expires_at: *expires_at, order_id: order_id.clone() },
            );
        }
        ProductEventBody::ReservationConfirmed { reservation_id, quantity } => {
            product.reservations.remove(reservation_id);
            product.stock.reserved = product.stock.reserved.saturating_sub(*quantity);
            product.stock.on_hand = product.stock.on_hand.saturating_sub(*quantity);
        }
        ProductEventBody::ReservationReleased { reservation_id, quantity, .. } => {
            product.reservations.remove(reservation_id);
            product.stock.reserved = product.stock.reserved.saturating_sub(*quantity);
        }
    }
    product.version = event.version;
    Some(product)
}
