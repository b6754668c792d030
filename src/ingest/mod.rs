//! Catalog ingestion: feeds from many sources become ordinary commands.
//!
//! A run goes row by row, in the order of the feed:
//! 1. **Keep the raw row.** Each mapped row is appended to the `sources` topic, keyed
//!    `{source}/{source_id}`, before anything is decided about it: the raw truth, so
//!    the rules below can be re-run over everything ever received.
//! 2. **Clean** it (`stockroom_domain::ingest::clean`): a row without a usable name or
//!    price is rejected with a reason naming the field.
//! 3. **Match** it against the match tables ([`view::MatchView`]): this source's id,
//!    then the canonical GTIN, then the brand-and-name key.
//! 4. **Merge** by source priority, leaving manual amendments alone
//!    (`stockroom_domain::ingest::merge`); a row that changes nothing sends nothing.
//! 5. **Write** a register or patch command through the normal command path, carrying
//!    the row's [`FeedOrigin`] and the product version it was merged against
//!    (`If-Match`). Its command id is a digest of the content and that version, so a
//!    run re-sent after a crash sends the very same commands, which the processor
//!    answers from its applied-command table instead of applying twice.
//!
//! The match tables are a view of the `events` topic, folded with the domain's own
//! `evolve` (the product state carries its feed origins and field owners), so they
//! are rebuilt from the log at start like every other view. After each accepted
//! write the run waits until the view has folded that version, so the next row sees
//! it; a version mismatch (a PATCH landed between merge and write) re-merges.
//!
//! Runs are kept in memory on the node that ran them. A run cut short by a crash is
//! finished by sending the feed again: already-applied rows are unchanged.

pub mod feed;
pub mod http;
pub mod run;
pub mod sources;
pub mod view;

pub use http::{IngestApiDoc, router};
pub use run::Ingest;
