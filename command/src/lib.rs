//! Stockroom's write side: the command HTTP API and the partitioned command processor.
//!
//! Architecture invariant: this crate never calls `query`; it meets the read side only
//! in the log. It sees one `EventLog` and does not know whether it is embedded or Kafka.

pub mod client;
pub mod http;
pub mod outbox;
pub mod processor;
pub mod protocol;
pub mod store;

pub use client::CommandClient;
pub use http::{CommandApi, CommandApiDoc, router};
pub use processor::{Processor, ProcessorConfig, ProcessorHealth};
pub use store::StateStore;
