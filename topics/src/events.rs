//! The codec of the `events` topic: domain events and fence records to and from
//! log records. The payload is the domain event as JSON; the CloudEvents envelope
//! and the writer's identity travel in headers, so any Kafka tool can read them.

use stockroom_domain::gtin::GtinEvent;
use stockroom_domain::order::OrderEvent;
use stockroom_domain::product::ProductEvent;
use stockroom_domain::{CommandId, EVENT_SCHEMA_VERSION, Timestamp};

use crate::envelope::{Envelope, EnvelopeError};
use crate::fence::{FENCE_EVENT_TYPE, Writer};
use crate::ids::Offset;
use crate::record::{Record, StoredRecord};

/// Header: digest of the request that caused the event (idempotency-key checks
/// survive a rebuild of the state store because the log keeps it).
pub const FINGERPRINT_HEADER: &str = "stockroom-fingerprint";
/// Header: offset in `commands` of the command that caused the event.
pub const COMMAND_OFFSET_HEADER: &str = "stockroom-command-offset";

/// What a record of the `events` topic is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// A processor claimed the partition (see [`crate::fence`]).
    Fence(Writer),
    Product(Box<ProductEvent>),
    /// A GTIN claim changed (see `stockroom_domain::gtin`); keyed by the canonical GTIN.
    Gtin(Box<GtinEvent>),
    /// An order saga moved (see `stockroom_domain::order`); keyed by order id.
    Order(Box<OrderEvent>),
}

/// Where an event came from, beside the event itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    pub fingerprint: Option<String>,
    pub command_offset: Option<Offset>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("bad envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unsupported schema version {version} for {event_type}")]
    SchemaVersion { event_type: String, version: u32 },
    #[error("bad payload: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("payload does not match its envelope: {0}")]
    Mismatch(String),
}

/// Encodes one product event written by `writer`.
pub fn encode_product_event(
    event: &ProductEvent,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    let meta = Meta {
        event_type: event.event_type(),
        subject: format!("products/{}", event.sku),
        key: event.sku.as_str().as_bytes().to_vec(),
        command_id: &event.command_id,
        at: event.at,
    };
    encode(&meta, serde_json::to_vec(event)?, index, writer, source, provenance)
}

/// Encodes one GTIN claim event; its key is the canonical (14-digit) GTIN.
pub fn encode_gtin_event(
    event: &GtinEvent,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    let canonical = event.gtin.canonical();
    let meta = Meta {
        event_type: event.event_type(),
        subject: format!("gtins/{canonical}"),
        key: canonical.into_bytes(),
        command_id: &event.command_id,
        at: event.at,
    };
    encode(&meta, serde_json::to_vec(event)?, index, writer, source, provenance)
}

/// Encodes one order event; its key is the order id.
pub fn encode_order_event(
    event: &OrderEvent,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    let meta = Meta {
        event_type: event.event_type(),
        subject: format!("orders/{}", event.order_id),
        key: event.order_id.as_str().as_bytes().to_vec(),
        command_id: &event.command_id,
        at: event.at,
    };
    encode(&meta, serde_json::to_vec(event)?, index, writer, source, provenance)
}

struct Meta<'a> {
    event_type: &'static str,
    subject: String,
    key: Vec<u8>,
    command_id: &'a CommandId,
    at: Timestamp,
}

fn encode(
    meta: &Meta<'_>,
    payload: Vec<u8>,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    let env = Envelope {
        id: meta.command_id.event_id(index),
        source: source.to_owned(),
        event_type: meta.event_type.to_owned(),
        time_ms: meta.at.millis(),
        subject: Some(meta.subject.clone()),
        schema_version: EVENT_SCHEMA_VERSION,
        correlation_id: provenance.correlation_id.clone(),
        causation_id: Some(meta.command_id.to_string()),
        writer: Some(writer.clone()),
    };
    let mut headers = env.to_headers();
    if let Some(f) = &provenance.fingerprint {
        headers.push(FINGERPRINT_HEADER, f.as_bytes().to_vec());
    }
    if let Some(o) = provenance.command_offset {
        headers.push(COMMAND_OFFSET_HEADER, o.0.to_string().into_bytes());
    }
    Ok(Record { key: Some(meta.key.clone()), headers, payload, timestamp_ms: meta.at.millis() })
}

/// Decodes the envelope of a record (cheap: headers only).
pub fn envelope_of(record: &StoredRecord) -> Result<Envelope, CodecError> {
    Ok(Envelope::from_headers(&record.record.headers)?)
}

/// Decodes a record whose envelope is already known.
pub fn decode_entry(env: &Envelope, record: &StoredRecord) -> Result<LogEntry, CodecError> {
    if env.event_type == FENCE_EVENT_TYPE {
        let writer = env.writer.clone().ok_or_else(|| CodecError::Mismatch("fence without writer".into()))?;
        return Ok(LogEntry::Fence(writer));
    }
    if env.event_type.starts_with("stockroom.product.") {
        let event: ProductEvent = payload(env, record, ProductEvent::event_type)?;
        return Ok(LogEntry::Product(Box::new(event)));
    }
    if env.event_type.starts_with("stockroom.gtin.") {
        let event: GtinEvent = payload(env, record, GtinEvent::event_type)?;
        return Ok(LogEntry::Gtin(Box::new(event)));
    }
    if env.event_type.starts_with("stockroom.order.") {
        let event: OrderEvent = payload(env, record, OrderEvent::event_type)?;
        return Ok(LogEntry::Order(Box::new(event)));
    }
    Err(CodecError::UnknownType(env.event_type.clone()))
}

/// The payload of an event record, upcast to the current schema and checked against
/// its envelope.
fn payload<T: serde::de::DeserializeOwned>(
    env: &Envelope,
    record: &StoredRecord,
    type_of: fn(&T) -> &'static str,
) -> Result<T, CodecError> {
    let event: T = crate::upcast::decode(&env.event_type, env.schema_version, &record.record.payload)?;
    if type_of(&event) != env.event_type {
        return Err(CodecError::Mismatch(format!(
            "envelope type {} but payload is {}",
            env.event_type,
            type_of(&event)
        )));
    }
    Ok(event)
}

/// The provenance headers of a record.
pub fn provenance_of(env: &Envelope, record: &StoredRecord) -> Provenance {
    let headers = &record.record.headers;
    Provenance {
        fingerprint: headers.get_str(FINGERPRINT_HEADER).map(str::to_owned),
        command_offset: headers.get_str(COMMAND_OFFSET_HEADER).and_then(|s| s.parse().ok()).map(Offset),
        correlation_id: env.correlation_id.clone(),
    }
}
