//! The product aggregate: catalog details and stock, one per SKU.
//!
//! `decide(state, command, ctx)` validates a command against the current state and
//! returns the events it causes (or a [`Rejection`](crate::Rejection)); `evolve(state,
//! event)` folds one event into the state. Both are pure: no I/O, no clock.

mod command;
mod decide;
mod event;
mod evolve;
mod state;

use crate::ids::Sku;

pub use crate::aggregate::{VersionCheck, check_version};
pub use command::{DetailsPatch, NewProduct, Patch, ProductCommand};
pub use decide::decide;
pub use event::{DetailField, ProductEvent, ProductEventBody, ReleaseReason};
pub use evolve::evolve;
pub use state::{Money, Product, ProductDetails, ProductStatus, Reservation, Stock};

crate::aggregate::aggregate! {
    Product { id: Sku, command: ProductCommand, event: ProductEvent, types: "stockroom.product.", collection: "products" }
    key: |sku| sku.as_str().into(), event_id: |event| &event.sku,
    evolve: |state, event| evolve(state, event),
}
