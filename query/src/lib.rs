//! Stockroom's read side: views built from the event log, and the read API.
//!
//! Architecture invariant: a view is a pure function of the event log. Nothing here
//! reads the command side's state or writes events; the only records the read side
//! writes are rebuild progress on the `replay` topic and unreadable records to the
//! dead-letter topic. Every view can be deleted and rebuilt from the events, and each
//! view's position in the log is committed atomically with its data.

pub mod catalog;
pub mod console;
pub mod http;
pub mod orders;
pub mod projector;
pub mod rebuild;
pub mod sql;
pub mod stock;
pub mod view;

pub use catalog::{Catalog, CatalogError, SearchRequest, SearchResponse};
pub use http::{QueryApi, QueryApiDoc, router};
pub use orders::{OrderBook, OrderBookError, OrderView};
pub use projector::{CatalogCheckpoint, CatalogProjector, ProjectorError, ProjectorStats, Swap};
pub use rebuild::{CatalogSlot, RebuildReport, RebuildStatus, Rebuilder};
pub use view::{ProductView, ViewUpdate};
