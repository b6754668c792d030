//! Schema evolution of events: an upcaster turns an event written under an older
//! schema version into the current one as it is read, so every reader (processors,
//! projectors, rebuilds, `log export`'s consumers) sees one shape, and the log itself
//! is never rewritten.
//!
//! The domain's types are the current schema ([`EVENT_SCHEMA_VERSION`]); each older
//! version has one step here that turns its JSON into the next version's. A record of
//! the current version is deserialized directly (no step, no intermediate value);
//! an older one goes through its steps on a `serde_json::Value`; a newer one (written
//! by a newer build) cannot be read and goes to the dead-letter topic with its reason.
//!
//! This lives beside the codec, not in the domain: it rewrites the wire format, which
//! is this crate's business, and keeps the domain free of JSON.
//!
//! # Versions
//!
//! - **1** — the first schema.
//! - **2** — `stockroom.product.registered` names the registration's units
//!   `initial_on_hand` (version 1: `initial_stock`).
//!
//! Recorded version-1 events are kept as fixtures
//! (`tests/fixtures/schema-v1/`) and folded into today's views by a test.

use serde::de::DeserializeOwned;
use serde_json::Value;
use stockroom_domain::EVENT_SCHEMA_VERSION;

use crate::events::CodecError;

/// The oldest schema version this build reads.
pub const OLDEST_READABLE: u32 = 1;

/// Deserializes an event payload of `version` into the current schema's type.
pub fn decode<T: DeserializeOwned>(event_type: &str, version: u32, payload: &[u8]) -> Result<T, CodecError> {
    if version == EVENT_SCHEMA_VERSION {
        return Ok(serde_json::from_slice(payload)?);
    }
    if !(OLDEST_READABLE..EVENT_SCHEMA_VERSION).contains(&version) {
        return Err(CodecError::SchemaVersion { event_type: event_type.to_owned(), version });
    }
    let mut value: Value = serde_json::from_slice(payload)?;
    for from in version..EVENT_SCHEMA_VERSION {
        step(from, event_type, &mut value)?;
    }
    Ok(serde_json::from_value(value)?)
}

/// Turns an event of schema version `from` into version `from + 1`.
fn step(from: u32, event_type: &str, value: &mut Value) -> Result<(), CodecError> {
    match from {
        1 => {
            if event_type == "stockroom.product.registered" {
                rename(data_of(value)?, "initial_stock", "initial_on_hand");
            }
            Ok(())
        }
        _ => Err(CodecError::SchemaVersion { event_type: event_type.to_owned(), version: from }),
    }
}

/// The `data` object of an event body.
fn data_of(value: &mut Value) -> Result<&mut serde_json::Map<String, Value>, CodecError> {
    value
        .get_mut("data")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| CodecError::Mismatch("event body without a data object".into()))
}

fn rename(object: &mut serde_json::Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = object.remove(from) {
        object.insert(to.to_owned(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stockroom_domain::product::{ProductEvent, ProductEventBody};

    const V1_REGISTERED: &str = r#"{"at":1796049101723,"command_id":"c-1","data":{"details":{"name":"Kettle",
        "price":{"cents":2499,"currency":"EUR"}},"initial_stock":10},"sku":"KET-1","type":"ProductRegistered","version":1}"#;

    #[test]
    fn a_version_1_registration_is_read_as_the_current_schema() {
        let event: ProductEvent = decode("stockroom.product.registered", 1, V1_REGISTERED.as_bytes()).unwrap();
        let ProductEventBody::ProductRegistered { initial_stock, details, .. } = &event.body else {
            panic!("{event:?}")
        };
        assert_eq!(*initial_stock, 10);
        assert_eq!(details.name, "Kettle");
        // Written again, it is a version-2 body, and reads back without a step.
        let json = serde_json::to_vec(&event).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"initial_on_hand\":10"));
        let again: ProductEvent = decode("stockroom.product.registered", EVENT_SCHEMA_VERSION, &json).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn a_version_1_body_is_not_readable_as_version_2() {
        // The step is what makes it readable: without it the field is missing.
        let err = decode::<ProductEvent>("stockroom.product.registered", 2, V1_REGISTERED.as_bytes()).unwrap_err();
        assert!(matches!(err, CodecError::Payload(_)), "{err}");
    }

    #[test]
    fn versions_newer_than_this_build_or_older_than_it_reads_are_refused() {
        for v in [0, EVENT_SCHEMA_VERSION + 1, u32::MAX] {
            let err = decode::<ProductEvent>("stockroom.product.registered", v, V1_REGISTERED.as_bytes()).unwrap_err();
            assert!(matches!(err, CodecError::SchemaVersion { version, .. } if version == v), "{err}");
        }
    }

    #[test]
    fn other_event_types_pass_version_1_unchanged() {
        let v1 =
            r#"{"at":1,"command_id":"c-2","data":{"quantity":3},"sku":"KET-1","type":"StockReceived","version":2}"#;
        let event: ProductEvent = decode("stockroom.product.stock-received", 1, v1.as_bytes()).unwrap();
        assert_eq!(event.body, ProductEventBody::StockReceived { quantity: 3, reference: None });
    }
}
