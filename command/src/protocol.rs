//! The records the command side exchanges through the log: commands (on the
//! `commands` topic, keyed by the product's SKU) and their outcomes (on the `results`
//! topic, keyed by command id). Both are JSON payloads behind a CloudEvents envelope
//! in the headers, like every record of Stockroom.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stockroom_domain::gtin::{GtinClaim, GtinCommand};
use stockroom_domain::order::{LineStep, Order, OrderCommand};
use stockroom_domain::product::{Product, ProductCommand};
use stockroom_domain::{Aggregate, CommandId, Gtin, OrderId, Rejection, Sku, Timestamp};
use stockroom_topics::{Envelope, Record, StoredRecord, envelope};

/// Schema version of the command and outcome payloads below.
pub const PROTOCOL_SCHEMA_VERSION: u32 = 1;

/// A command on its way to the processor that owns its partition.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: CommandId,
    /// When the API node received the request: the time the domain decides with.
    pub at: Timestamp,
    /// `If-Match`: the version the client expects the product to be at.
    pub expected_version: Option<u64>,
    /// A digest of the request; the same idempotency key with another digest is a conflict.
    pub fingerprint: String,
    /// The API node waiting for the outcome, if any.
    pub reply_to: Option<String>,
    pub target: Target,
    /// Who is told the outcome besides the client: the step of a saga that sent it.
    pub notify: Option<Notify>,
}

/// A saga waiting for this command's outcome (see `processor::effects`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "saga", rename_all = "snake_case")]
pub enum Notify {
    /// The GTIN claim named by this command's id: settle it.
    GtinClaim { gtin: Gtin },
    /// A line of an order: report the step's result.
    OrderLine { order_id: OrderId, line: usize, step: LineStep },
    /// Once this command is applied, answer the client (`reply_to`) of `command_id`
    /// with `rejection`: a claim's product step that failed is answered only after the
    /// claim is given up, so that the client who hears "rejected" finds the GTIN free.
    Answer { command_id: CommandId, rejection: Rejection },
}

/// What the command is about, which decides its partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum Target {
    Product {
        sku: Sku,
        command: ProductCommand,
    },
    /// Keyed by the canonical (14-digit) GTIN, so every form of one GTIN meets in one place.
    Gtin {
        gtin: Gtin,
        command: GtinCommand,
    },
    Order {
        order_id: OrderId,
        command: OrderCommand,
    },
}

impl Target {
    /// The partitioning key.
    pub fn key(&self) -> String {
        match self {
            Target::Product { sku, .. } => Product::key(sku).into_owned(),
            Target::Gtin { gtin, .. } => GtinClaim::key(gtin).into_owned(),
            Target::Order { order_id, .. } => Order::key(order_id).into_owned(),
        }
    }

    /// What an idempotency key is scoped to: the product a claim is for, else the key.
    pub fn idempotency_scope(&self) -> String {
        match self {
            Target::Gtin { command: GtinCommand::Claim { sku, .. }, .. } => sku.as_str().to_owned(),
            other => other.key(),
        }
    }

    pub fn subject(&self) -> String {
        let collection = match self {
            Target::Product { .. } => Product::COLLECTION,
            Target::Gtin { .. } => GtinClaim::COLLECTION,
            Target::Order { .. } => Order::COLLECTION,
        };
        format!("{collection}/{}", self.key())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Product { command, .. } => command.kind(),
            Target::Gtin { command, .. } => command.kind(),
            Target::Order { command, .. } => command.kind(),
        }
    }

    /// Where a product command must go first: a command that gives a product a GTIN
    /// is decided by the GTIN's claim before the product (DESIGN.md, "Uniqueness").
    pub fn routed(self, expected_version: Option<u64>) -> Target {
        match self {
            Target::Product { sku, command } => match command.gtin_to_claim().cloned() {
                Some(gtin) => Target::Gtin { gtin, command: GtinCommand::Claim { sku, command, expected_version } },
                None => Target::Product { sku, command },
            },
            other => other,
        }
    }
}

/// How a command ended, as told to the API node that waits for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Applied (or found already applied). `position` is the read-your-writes token
    /// (next offsets per partition). Everything here can be given again to a retry,
    /// so a retried request gets the very same answer.
    Accepted {
        version: u64,
        position: String,
    },
    Rejected {
        rejection: Rejection,
    },
    /// The idempotency key was used before with a different request.
    IdempotencyConflict,
    /// The command could not be processed for a reason that is not a business rule
    /// (e.g. an undecodable record); it went to the dead-letter topic.
    Failed {
        reason: String,
    },
    /// The log did not take the write (or its fate is unknown and it is not there);
    /// the client may retry, with the same idempotency key.
    Unavailable {
        reason: String,
    },
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub command_id: CommandId,
    pub reply_to: Option<String>,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("bad envelope: {0}")]
    Envelope(#[from] envelope::EnvelopeError),
    #[error("unsupported schema version {0}")]
    SchemaVersion(u32),
    #[error("bad payload: {0}")]
    Payload(#[from] serde_json::Error),
}

impl CommandRecord {
    pub fn to_record(&self, source: &str, correlation_id: Option<String>) -> Result<Record, ProtocolError> {
        let env = Envelope {
            id: self.id.to_string(),
            source: source.to_owned(),
            event_type: format!("stockroom.command.{}", self.target.kind()),
            time_ms: self.at.millis(),
            subject: Some(self.target.subject()),
            schema_version: PROTOCOL_SCHEMA_VERSION,
            correlation_id,
            causation_id: None,
            writer: None,
        };
        Ok(envelope::into_record(&env, Some(self.target.key().as_bytes().to_vec()), serde_json::to_vec(self)?))
    }

    pub fn from_record(record: &StoredRecord) -> Result<(Envelope, CommandRecord), ProtocolError> {
        decode(record)
    }
}

impl OutcomeRecord {
    pub fn to_record(&self, source: &str, time_ms: i64) -> Result<Record, ProtocolError> {
        let env = Envelope {
            id: format!("{}/outcome", self.command_id),
            source: source.to_owned(),
            event_type: "stockroom.command.outcome".to_owned(),
            time_ms,
            subject: None,
            schema_version: PROTOCOL_SCHEMA_VERSION,
            correlation_id: None,
            causation_id: Some(self.command_id.to_string()),
            writer: None,
        };
        Ok(envelope::into_record(&env, Some(self.command_id.as_str().as_bytes().to_vec()), serde_json::to_vec(self)?))
    }

    pub fn from_record(record: &StoredRecord) -> Result<OutcomeRecord, ProtocolError> {
        decode(record).map(|(_, r)| r)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(record: &StoredRecord) -> Result<(Envelope, T), ProtocolError> {
    let env = Envelope::from_headers(&record.record.headers)?;
    if env.schema_version != PROTOCOL_SCHEMA_VERSION {
        return Err(ProtocolError::SchemaVersion(env.schema_version));
    }
    let value = serde_json::from_slice(&record.record.payload)?;
    Ok((env, value))
}

/// 128 bits of SHA-256 over the parts (separated so that parts cannot run into each
/// other), in hex: what command ids and idempotency fingerprints derived from content
/// are made of (the write API's keys, catalog ingestion's rows).
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}
