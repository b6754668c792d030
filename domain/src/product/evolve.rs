use crate::aggregate::{VersionCheck, check_version};

use super::event::{DetailField, ProductEvent, ProductEventBody};
use super::state::ProductDetails;
use super::state::{Product, ProductStatus, Reservation, Stock};
use crate::ingest::merge::record_owners;

/// Folds one event into the product. Callers check the version first
/// ([`check_version`]); `evolve` trusts that the event is the next one.
pub fn evolve(state: Option<Product>, event: &ProductEvent) -> Option<Product> {
    debug_assert_eq!(check_version(state.as_ref(), event), VersionCheck::Next);
    let mut product = match (&event.body, state) {
        (ProductEventBody::ProductRegistered { details, initial_stock, origin }, _) => {
            let mut owners = Default::default();
            let mut sources = std::collections::BTreeSet::new();
            if let Some(o) = origin {
                record_owners(&mut owners, &set_fields(details), Some(o));
                sources.insert(o.clone());
            }
            return Some(Product {
                sources,
                owners,
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
        ProductEventBody::DetailsUpdated { details, changed, origin } => {
            product.details = details.clone();
            record_owners(&mut product.owners, changed, origin.as_ref());
            if let Some(o) = origin {
                product.sources.insert(o.clone());
            }
        }
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

/// The detail fields a registration gives a value.
fn set_fields(details: &ProductDetails) -> Vec<DetailField> {
    let mut fields = vec![DetailField::Name, DetailField::Price];
    let optional = [
        (details.description.is_some(), DetailField::Description),
        (details.brand.is_some(), DetailField::Brand),
        (details.category.is_some(), DetailField::Category),
        (details.gtin.is_some(), DetailField::Gtin),
        (!details.attributes.is_empty(), DetailField::Attributes),
    ];
    fields.extend(optional.into_iter().filter(|(set, _)| *set).map(|(_, f)| f));
    fields
}
