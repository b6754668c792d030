//! The record envelope: CloudEvents attributes in Kafka headers (binary content
//! mode: `ce_id`, `ce_source`, `ce_type`, `ce_specversion`, `ce_time`,
//! `ce_subject`), plus `schema-version`, `correlation-id`, `causation-id` and the
//! writer's fence identity. The payload is the event's data, as JSON.

use crate::fence::Writer;
use crate::record::{Headers, Record};
use crate::time::{parse_rfc3339, rfc3339_millis};

pub const SPEC_VERSION: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/json";

pub const H_ID: &str = "ce_id";
pub const H_SOURCE: &str = "ce_source";
pub const H_TYPE: &str = "ce_type";
pub const H_SPECVERSION: &str = "ce_specversion";
pub const H_TIME: &str = "ce_time";
pub const H_SUBJECT: &str = "ce_subject";
pub const H_CONTENT_TYPE: &str = "content-type";
pub const H_SCHEMA_VERSION: &str = "schema-version";
pub const H_CORRELATION_ID: &str = "correlation-id";
pub const H_CAUSATION_ID: &str = "causation-id";
pub const H_EPOCH: &str = "stockroom-epoch";
pub const H_WRITER: &str = "stockroom-writer";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub time_ms: i64,
    pub subject: Option<String>,
    pub schema_version: u32,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub writer: Option<Writer>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("header {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("header {0} is not a number")]
    BadNumber(&'static str),
    #[error("header ce_time is not an RFC 3339 time")]
    BadTime,
}

impl Envelope {
    pub fn to_headers(&self) -> Headers {
        let mut h = Headers::new();
        h.push(H_SPECVERSION, SPEC_VERSION);
        h.push(H_ID, self.id.as_bytes());
        h.push(H_SOURCE, self.source.as_bytes());
        h.push(H_TYPE, self.event_type.as_bytes());
        h.push(H_TIME, rfc3339_millis(self.time_ms));
        if let Some(s) = &self.subject {
            h.push(H_SUBJECT, s.as_bytes());
        }
        h.push(H_CONTENT_TYPE, CONTENT_TYPE);
        h.push(H_SCHEMA_VERSION, self.schema_version.to_string());
        if let Some(c) = &self.correlation_id {
            h.push(H_CORRELATION_ID, c.as_bytes());
        }
        if let Some(c) = &self.causation_id {
            h.push(H_CAUSATION_ID, c.as_bytes());
        }
        if let Some(w) = &self.writer {
            h.push(H_EPOCH, w.epoch.to_string());
            h.push(H_WRITER, w.owner.as_bytes());
        }
        h
    }

    pub fn from_headers(h: &Headers) -> Result<Envelope, EnvelopeError> {
        fn text<'a>(h: &'a Headers, name: &'static str) -> Result<Option<&'a str>, EnvelopeError> {
            h.get(name).map(|v| std::str::from_utf8(v).map_err(|_| EnvelopeError::NotUtf8(name))).transpose()
        }
        fn required<'a>(h: &'a Headers, name: &'static str) -> Result<&'a str, EnvelopeError> {
            text(h, name)?.ok_or(EnvelopeError::Missing(name))
        }
        let time_ms = parse_rfc3339(required(h, H_TIME)?).ok_or(EnvelopeError::BadTime)?;
        let schema_version =
            required(h, H_SCHEMA_VERSION)?.parse().map_err(|_| EnvelopeError::BadNumber(H_SCHEMA_VERSION))?;
        let writer = match (text(h, H_EPOCH)?, text(h, H_WRITER)?) {
            (Some(epoch), Some(owner)) => Some(Writer {
                epoch: epoch.parse().map_err(|_| EnvelopeError::BadNumber(H_EPOCH))?,
                owner: owner.to_owned(),
            }),
            _ => None,
        };
        Ok(Envelope {
            id: required(h, H_ID)?.to_owned(),
            source: required(h, H_SOURCE)?.to_owned(),
            event_type: required(h, H_TYPE)?.to_owned(),
            time_ms,
            subject: text(h, H_SUBJECT)?.map(str::to_owned),
            schema_version,
            correlation_id: text(h, H_CORRELATION_ID)?.map(str::to_owned),
            causation_id: text(h, H_CAUSATION_ID)?.map(str::to_owned),
            writer,
        })
    }
}

/// A record with this envelope; its timestamp is the envelope's time.
pub fn into_record(env: &Envelope, key: Option<Vec<u8>>, payload: Vec<u8>) -> Record {
    Record { key, headers: env.to_headers(), payload, timestamp_ms: env.time_ms }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("\\PC{0,20}")
    }

    proptest! {
        #[test]
        fn headers_round_trip(
            id in "\\PC{0,30}", source in "\\PC{0,30}", event_type in "\\PC{0,30}",
            time_ms in -62_135_596_800_000i64..253_402_300_799_999,
            subject in opt_text(), schema_version in any::<u32>(),
            correlation_id in opt_text(), causation_id in opt_text(),
            writer in proptest::option::of((any::<u64>(), "\\PC{0,20}")),
        ) {
            let env = Envelope {
                id, source, event_type, time_ms, subject, schema_version, correlation_id, causation_id,
                writer: writer.map(|(epoch, owner)| Writer { epoch, owner }),
            };
            prop_assert_eq!(Envelope::from_headers(&env.to_headers()).unwrap(), env);
        }
    }

    #[test]
    fn missing_and_bad_headers_are_errors() {
        let env = Envelope {
            id: "1".into(),
            source: "s".into(),
            event_type: "t".into(),
            time_ms: 0,
            subject: None,
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            writer: None,
        };
        let good = env.to_headers();
        let without = |name: &str| {
            good.iter().filter(|(n, _)| *n != name).map(|(n, v)| (n.to_owned(), v.to_vec())).collect::<Headers>()
        };
        assert_eq!(Envelope::from_headers(&without(H_ID)), Err(EnvelopeError::Missing(H_ID)));
        let mut bad_time = without(H_TIME);
        bad_time.push(H_TIME, "yesterday");
        assert_eq!(Envelope::from_headers(&bad_time), Err(EnvelopeError::BadTime));
        let mut bad_utf8 = without(H_TYPE);
        bad_utf8.push(H_TYPE, vec![0xff, 0xfe]);
        assert_eq!(Envelope::from_headers(&bad_utf8), Err(EnvelopeError::NotUtf8(H_TYPE)));
    }
}
