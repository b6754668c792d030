use crate::context::Context;
use crate::ids::{OrderId, ReservationId, Sku, Timestamp};
use crate::rejection::Rejection;
use crate::validation::{
    ON_HAND_MAX, QUANTITY_MAX, Quantity, REASON_MAX_CHARS, ValidationError, bounded_text, required_text,
};

use super::command::{DetailsPatch, ProductCommand};
use super::event::{DetailField, ProductEvent, ProductEventBody, ReleaseReason};
use super::state::{Product, ProductStatus};

/// Decides what `command` does to the product `sku` in `state`.
///
/// Returns the events to append, in order, versioned from `state`'s version + 1, or
/// why the command is refused. An empty list means "accepted, nothing changed" (an
/// update that sets the values already there, or no reservation due to expire).
pub fn decide(
    state: Option<&Product>,
    sku: &Sku,
    command: &ProductCommand,
    ctx: &Context,
) -> Result<Vec<ProductEvent>, Rejection> {
    if let (Some(expected), Some(p)) = (ctx.expected_version, state)
        && expected != p.version
    {
        return Err(Rejection::VersionMismatch { expected, actual: p.version });
    }
    let bodies = match command {
        ProductCommand::Register(new) => {
            if state.is_some() {
                return Err(Rejection::SkuTaken { sku: sku.clone() });
            }
            if let Some(expected) = ctx.expected_version {
                // A registration can only expect "no product yet".
                if expected != 0 {
                    return Err(Rejection::ProductNotFound { sku: sku.clone() });
                }
            }
            new.details.validate()?;
            if new.initial_stock > ON_HAND_MAX {
                return Err(ValidationError::new("initial_stock", format!("must be at most {ON_HAND_MAX}")).into());
            }
            vec![ProductEventBody::ProductRegistered {
                details: new.details.clone(),
                initial_stock: new.initial_stock,
                origin: new.origin.as_deref().cloned(),
            }]
        }
        _ => {
            let product = state.ok_or_else(|| Rejection::ProductNotFound { sku: sku.clone() })?;
            decide_existing(product, command, ctx)?
        }
    };
    let base = state.map_or(0, |p| p.version);
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| ProductEvent {
            sku: sku.clone(),
            version: base + 1 + i as u64,
            command_id: ctx.command_id.clone(),
            at: ctx.now,
            body,
        })
        .collect())
}

fn decide_existing(
    product: &Product,
    command: &ProductCommand,
    ctx: &Context,
) -> Result<Vec<ProductEventBody>, Rejection> {
    match command {
        ProductCommand::Register(_) => unreachable_register(product),
        // Catalog commands: only while the product is active.
        ProductCommand::UpdateDetails(patch) => {
            ensure_active(product)?;
            update_details(product, patch)
        }
        ProductCommand::Discontinue => {
            ensure_active(product)?;
            Ok(vec![ProductEventBody::ProductDiscontinued])
        }
        // Stock levels.
        ProductCommand::ReceiveStock { quantity, reference } => receive_stock(product, *quantity, reference),
        ProductCommand::AdjustStock { delta, reason } => adjust_stock(product, *delta, reason),
        // Reservations.
        ProductCommand::Reserve { reservation_id, quantity, expires_at, order_id } => {
            reserve(product, reservation_id, *quantity, *expires_at, order_id, ctx)
        }
        ProductCommand::ConfirmReservation { reservation_id } => {
            let quantity = reserved_quantity(product, reservation_id)?;
            Ok(vec![ProductEventBody::ReservationConfirmed { reservation_id: reservation_id.clone(), quantity }])
        }
        ProductCommand::ReleaseReservation { reservation_id } => {
            let quantity = reserved_quantity(product, reservation_id)?;
            Ok(vec![ProductEventBody::ReservationReleased {
                reservation_id: reservation_id.clone(),
                quantity,
                reason: ReleaseReason::Released,
            }])
        }
        ProductCommand::ExpireReservations => Ok(product
            .expired_reservations(ctx.now)
            .into_iter()
            .map(|(id, r)| ProductEventBody::ReservationReleased {
                reservation_id: id.clone(),
                quantity: r.quantity,
                reason: ReleaseReason::Expired,
            })
            .collect()),
    }
}

/// Refuses commands that need an active (not discontinued) product.
fn ensure_active(product: &Product) -> Result<(), Rejection> {
    if product.status == ProductStatus::Discontinued {
        Err(Rejection::ProductDiscontinued { sku: product.sku.clone() })
    } else {
        Ok(())
    }
}

fn receive_stock(
    product: &Product,
    quantity: Quantity,
    reference: &Option<String>,
) -> Result<Vec<ProductEventBody>, Rejection> {
    ensure_active(product)?;
    if let Some(r) = reference {
        bounded_text("reference", r, REASON_MAX_CHARS)?;
    }
    if product.stock.on_hand.saturating_add(quantity.get()) > ON_HAND_MAX {
        return Err(Rejection::StockOverflow);
    }
    Ok(vec![ProductEventBody::StockReceived { quantity: quantity.get(), reference: reference.clone() }])
}

/// Allowed on discontinued products: write-offs and counts still happen.
fn adjust_stock(product: &Product, delta: i64, reason: &str) -> Result<Vec<ProductEventBody>, Rejection> {
    if delta == 0 {
        return Err(ValidationError::new("delta", "must not be 0").into());
    }
    if delta.unsigned_abs() > QUANTITY_MAX {
        return Err(ValidationError::new("delta", format!("must be between -{QUANTITY_MAX} and {QUANTITY_MAX}")).into());
    }
    required_text("reason", reason, REASON_MAX_CHARS)?;
    let on_hand = product.stock.on_hand as i128 + delta as i128;
    if on_hand < product.stock.reserved as i128 {
        return Err(Rejection::InsufficientStock {
            requested: delta.unsigned_abs(),
            available: product.stock.available(),
        });
    }
    if on_hand > ON_HAND_MAX as i128 {
        return Err(Rejection::StockOverflow);
    }
    Ok(vec![ProductEventBody::StockAdjusted { delta, reason: reason.to_owned() }])
}

fn reserve(
    product: &Product,
    reservation_id: &ReservationId,
    quantity: Quantity,
    expires_at: Option<Timestamp>,
    order_id: &Option<OrderId>,
    ctx: &Context,
) -> Result<Vec<ProductEventBody>, Rejection> {
    ensure_active(product)?;
    if product.reservations.contains_key(reservation_id) {
        return Err(Rejection::ReservationExists { reservation_id: reservation_id.clone() });
    }
    if let Some(at) = expires_at
        && at <= ctx.now
    {
        return Err(ValidationError::new("expires_in_secs", "must be in the future").into());
    }
    let available = product.stock.available();
    if quantity.get() > available {
        return Err(Rejection::InsufficientStock { requested: quantity.get(), available });
    }
    Ok(vec![ProductEventBody::StockReserved {
        reservation_id: reservation_id.clone(),
        quantity: quantity.get(),
        expires_at,
        order_id: order_id.clone(),
    }])
}

fn unreachable_register(product: &Product) -> Result<Vec<ProductEventBody>, Rejection> {
    // `decide` handles registration before looking at existing products.
    Err(Rejection::SkuTaken { sku: product.sku.clone() })
}

fn reserved_quantity(product: &Product, id: &ReservationId) -> Result<u64, Rejection> {
    product
        .reservations
        .get(id)
        .map(|r| r.quantity)
        .ok_or_else(|| Rejection::ReservationNotFound { reservation_id: id.clone() })
}

fn update_details(product: &Product, patch: &DetailsPatch) -> Result<Vec<ProductEventBody>, Rejection> {
    let current = &product.details;
    let next = patch.apply(current);
    next.validate()?;
    let mut changed = Vec::new();
    let mut note = |differs: bool, field| {
        if differs {
            changed.push(field);
        }
    };
    note(next.name != current.name, DetailField::Name);
    note(next.description != current.description, DetailField::Description);
    note(next.brand != current.brand, DetailField::Brand);
    note(next.category != current.category, DetailField::Category);
    note(next.gtin != current.gtin, DetailField::Gtin);
    note(next.price != current.price, DetailField::Price);
    note(next.attributes != current.attributes, DetailField::Attributes);
    // A feed row seen for the first time is recorded even when it changes nothing
    // (the product gains it in `sources`); anything else that changes nothing is
    // accepted without an event.
    let new_origin = patch.origin.as_deref().is_some_and(|o| !product.sources.contains(o));
    if changed.is_empty() && !new_origin {
        return Ok(Vec::new());
    }
    Ok(vec![ProductEventBody::DetailsUpdated { details: next, changed, origin: patch.origin.as_deref().cloned() }])
}
