//! The codec of the `events` topic: domain events and fence records to and from
//! log records. The payload is the domain event as JSON; the CloudEvents envelope
//! and the writer's identity travel in headers, so any Kafka tool can read them.

use serde::de::DeserializeOwned;
use stockroom_domain::gtin::GtinClaim;
use stockroom_domain::order::Order;
use stockroom_domain::product::{Product, ProductEvent};
use stockroom_domain::{Aggregate, DomainEvent, EVENT_SCHEMA_VERSION};

use crate::envelope::{Envelope, EnvelopeError};
use crate::fence::{FENCE_EVENT_TYPE, Writer};
use crate::ids::Offset;
use crate::record::{Record, StoredRecord};

/// Header: digest of the request that caused the event (idempotency-key checks
/// survive a rebuild of the state store because the log keeps it).
pub const FINGERPRINT_HEADER: &str = "stockroom-fingerprint";
/// Header: offset in `commands` of the command that caused the event.
pub const COMMAND_OFFSET_HEADER: &str = "stockroom-command-offset";

/// The aggregates whose events the `events` topic carries: the one list to extend
/// when an aggregate is added. Each line makes a [`LogEntry`] variant holding the
/// aggregate's event, and [`decode_entry`] reads the event types under the
/// aggregate's [`Aggregate::EVENT_TYPE_PREFIX`] into it.
macro_rules! aggregates {
    ($($(#[$doc:meta])* $variant:ident($aggregate:ty),)*) => {
        /// What a record of the `events` topic is.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum LogEntry {
            /// A processor claimed the partition (see [`crate::fence`]).
            Fence(Writer),
            $($(#[$doc])* $variant(Box<<$aggregate as Aggregate>::Event>),)*
        }

        /// Decodes a record whose envelope is already known.
        pub fn decode_entry(env: &Envelope, record: &StoredRecord) -> Result<LogEntry, CodecError> {
            if env.event_type == FENCE_EVENT_TYPE {
                let writer = env.writer.clone().ok_or_else(|| CodecError::Mismatch("fence without writer".into()))?;
                return Ok(LogEntry::Fence(writer));
            }
            $(if env.event_type.starts_with(<$aggregate as Aggregate>::EVENT_TYPE_PREFIX) {
                return Ok(LogEntry::$variant(Box::new(payload::<<$aggregate as Aggregate>::Event>(env, record)?)));
            })*
            Err(CodecError::UnknownType(env.event_type.clone()))
        }
    };
}

aggregates! {
    Product(Product),
    /// A GTIN claim changed (see `stockroom_domain::gtin`); keyed by the canonical GTIN.
    Gtin(GtinClaim),
    /// An order saga moved (see `stockroom_domain::order`); keyed by order id.
    Order(Order),
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

/// Encodes one event of aggregate `A` written by `writer`: the event as JSON, keyed
/// by its instance's key (for a GTIN claim, the canonical 14-digit GTIN), with the
/// subject `{collection}/{key}`. `index` is its place among its command's events.
pub fn encode_event<A: Aggregate>(
    event: &A::Event,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    let key = event.key();
    let command_id = event.command_id();
    let at = event.at().millis();
    let env = Envelope {
        id: command_id.event_id(index),
        source: source.to_owned(),
        event_type: event.event_type().to_owned(),
        time_ms: at,
        subject: Some(format!("{}/{key}", A::COLLECTION)),
        schema_version: EVENT_SCHEMA_VERSION,
        correlation_id: provenance.correlation_id.clone(),
        causation_id: Some(command_id.to_string()),
        writer: Some(writer.clone()),
    };
    let mut headers = env.to_headers();
    if let Some(f) = &provenance.fingerprint {
        headers.push(FINGERPRINT_HEADER, f.as_bytes().to_vec());
    }
    if let Some(o) = provenance.command_offset {
        headers.push(COMMAND_OFFSET_HEADER, o.0.to_string().into_bytes());
    }
    let payload = serde_json::to_vec(event)?;
    Ok(Record { key: Some(key.as_bytes().to_vec()), headers, payload, timestamp_ms: at })
}

/// Encodes one product event written by `writer` (see [`encode_event`]).
pub fn encode_product_event(
    event: &ProductEvent,
    index: usize,
    writer: &Writer,
    source: &str,
    provenance: &Provenance,
) -> Result<Record, CodecError> {
    encode_event::<Product>(event, index, writer, source, provenance)
}

/// Decodes the envelope of a record (cheap: headers only).
pub fn envelope_of(record: &StoredRecord) -> Result<Envelope, CodecError> {
    Ok(Envelope::from_headers(&record.record.headers)?)
}

/// The payload of an event record, upcast to the current schema and checked against
/// its envelope.
fn payload<E: DomainEvent + DeserializeOwned>(env: &Envelope, record: &StoredRecord) -> Result<E, CodecError> {
    let event: E = crate::upcast::decode(&env.event_type, env.schema_version, &record.record.payload)?;
    if event.event_type() != env.event_type {
        return Err(CodecError::Mismatch(format!(
            "envelope type {} but payload is {}",
            env.event_type,
            event.event_type()
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

#[cfg(test)]
mod tests {
    use stockroom_domain::gtin::{GtinEvent, GtinEventBody};
    use stockroom_domain::order::{OrderEvent, OrderEventBody};
    use stockroom_domain::product::ProductEventBody;
    use stockroom_domain::{CommandId, Gtin, OrderId, Sku, Timestamp};

    use super::*;
    use crate::ids::Partition;

    fn writer() -> Writer {
        Writer { epoch: 3, owner: "node-a".to_owned() }
    }

    fn provenance() -> Provenance {
        Provenance {
            fingerprint: Some("fp".to_owned()),
            command_offset: Some(Offset(7)),
            correlation_id: Some("corr".to_owned()),
        }
    }

    fn stored(record: Record) -> StoredRecord {
        StoredRecord { partition: Partition(0), offset: Offset(42), record }
    }

    /// Encodes, checks what any Kafka tool sees (key, subject, type, headers), and
    /// decodes back to the same entry.
    fn round_trip(record: Record, key: &str, subject: &str, event_type: &str, entry: LogEntry) {
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(record.timestamp_ms, 1_795_000_000_123);
        let stored = stored(record);
        let env = envelope_of(&stored).unwrap();
        assert_eq!(env.subject.as_deref(), Some(subject));
        assert_eq!(env.event_type, event_type);
        assert_eq!(env.id, "c-1/1");
        assert_eq!(env.causation_id.as_deref(), Some("c-1"));
        assert_eq!(env.schema_version, EVENT_SCHEMA_VERSION);
        assert_eq!(env.writer, Some(writer()));
        assert_eq!(provenance_of(&env, &stored), provenance());
        assert_eq!(stored.record.headers.get_str("ce_time"), Some("2026-11-18T11:06:40.123Z"));
        assert_eq!(decode_entry(&env, &stored).unwrap(), entry);
    }

    fn command_id() -> CommandId {
        CommandId::parse("c-1").unwrap()
    }

    const AT: Timestamp = Timestamp(1_795_000_000_123);

    /// An event of command `c-1` at [`AT`]: `event!(Type { key_field: key }, version, body)`.
    macro_rules! event {
        ($type:ident { $key:ident: $id:expr }, $version:expr, $body:expr) => {
            $type { $key: $id, version: $version, command_id: command_id(), at: AT, body: $body }
        };
    }

    #[test]
    fn every_aggregate_round_trips_with_its_key_and_subject() {
        let body = ProductEventBody::StockReceived { quantity: 3, reference: None };
        let product = event!(ProductEvent { sku: Sku::parse("KET-1").unwrap() }, 2, body);
        let record = encode_event::<Product>(&product, 1, &writer(), "/src", &provenance()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&record.payload),
            r#"{"sku":"KET-1","version":2,"command_id":"c-1","at":1795000000123,"type":"StockReceived","data":{"quantity":3}}"#
        );
        let entry = LogEntry::Product(Box::new(product));
        round_trip(record, "KET-1", "products/KET-1", "stockroom.product.stock-received", entry);

        // A GTIN claim is keyed by the canonical (14-digit) form of the GTIN.
        let body = GtinEventBody::GtinClaimConfirmed { claim: command_id() };
        let gtin = event!(GtinEvent { gtin: Gtin::parse("4006381333931").unwrap() }, 1, body);
        let record = encode_event::<GtinClaim>(&gtin, 1, &writer(), "/src", &provenance()).unwrap();
        let entry = LogEntry::Gtin(Box::new(gtin));
        round_trip(record, "04006381333931", "gtins/04006381333931", "stockroom.gtin.GtinClaimConfirmed", entry);

        let order = event!(OrderEvent { order_id: OrderId::parse("o-1").unwrap() }, 5, OrderEventBody::OrderReserved);
        let record = encode_event::<Order>(&order, 1, &writer(), "/src", &provenance()).unwrap();
        let entry = LogEntry::Order(Box::new(order));
        round_trip(record, "o-1", "orders/o-1", "stockroom.order.OrderReserved", entry);
    }

    #[test]
    fn a_payload_that_disagrees_with_its_envelope_is_refused() {
        let order = event!(OrderEvent { order_id: OrderId::parse("o-1").unwrap() }, 1, OrderEventBody::OrderReserved);
        let record = encode_event::<Order>(&order, 0, &writer(), "/src", &Provenance::default()).unwrap();
        let stored = stored(record);
        let mut env = envelope_of(&stored).unwrap();
        env.event_type = "stockroom.order.OrderCancelled".to_owned();
        assert!(matches!(decode_entry(&env, &stored), Err(CodecError::Mismatch(_))));
        env.event_type = "stockroom.shelf.Moved".to_owned();
        assert!(matches!(decode_entry(&env, &stored), Err(CodecError::UnknownType(_))));
    }
}
