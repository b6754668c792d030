//! Stockroom's domain: its aggregates — products with their stock (`product`), GTIN
//! claims (`gtin`) and orders (`order`) — each a pure `decide` and `evolve` behind one
//! shape, [`Aggregate`].
//!
//! Architecture invariant: this crate knows nothing of Kafka, sled, tantivy, HTTP or
//! tokio. It has no I/O, no async and no clock; time and ids come in as arguments.
//! Its tests run in microseconds.

pub mod aggregate;
pub mod context;
pub mod gtin;
pub mod ids;
pub mod ingest;
pub mod order;
pub mod product;
pub mod rejection;
pub mod validation;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

#[cfg(test)]
mod tests;

pub use aggregate::{Aggregate, DomainEvent, VersionCheck, check_version};
pub use context::Context;
pub use ids::{CommandId, Gtin, OrderId, ReservationId, Sku, Timestamp};
pub use rejection::Rejection;
pub use validation::{Currency, Quantity, ValidationError};

/// The schema version of the events this code writes. Readers upcast older ones.
pub const EVENT_SCHEMA_VERSION: u32 = 2;
