//! Catalog ingestion rules, pure: how a feed row is cleaned (`clean`), which key
//! finds the product it describes (`key`), and which source owns each field
//! (`merge`). The pipeline that reads feeds, keeps raw rows in the log and sends
//! commands lives in the root package (`src/ingest/`); everything it decides about
//! a row's content is here, so it can be tested in microseconds.

pub mod clean;
pub mod key;
pub mod merge;

pub use clean::{CleanRow, Cleaned, FeedRow, PriceUnit, Rejected, clean_row};
pub use key::match_key;
pub use merge::{FeedOrigin, merge_patch};
