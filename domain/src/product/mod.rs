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

pub use command::{DetailsPatch, NewProduct, Patch, ProductCommand};
pub use decide::decide;
pub use event::{DetailField, ProductEvent, ProductEventBody, ReleaseReason};
pub use evolve::{VersionCheck, check_version, evolve};
pub use state::{Money, Product, ProductDetails, ProductStatus, Reservation, Stock};
