//! A record, as Kafka has them: key, headers, payload, timestamp.

use crate::ids::{Offset, Partition};

/// Ordered headers; a name may repeat (as in Kafka), `get` returns the last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Vec<u8>)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        Headers(iter.into_iter().collect())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub headers: Headers,
    pub payload: Vec<u8>,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// A record read back from the log, with its coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub partition: Partition,
    pub offset: Offset,
    pub record: Record,
}

/// A record as one line of JSON, the format of `stockroom log dump` (and of the
/// recorded old-version events the upcaster is tested with). Header values and the
/// payload are text; bytes that are not UTF-8 are replaced (a dump is for reading,
/// and the log's own records are UTF-8).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DumpedRecord {
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, String)>,
    pub payload: String,
}

impl DumpedRecord {
    pub fn of(stored: &StoredRecord) -> DumpedRecord {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        DumpedRecord {
            partition: stored.partition.0,
            offset: stored.offset.0,
            key: stored.record.key.as_deref().map(text),
            timestamp_ms: stored.record.timestamp_ms,
            headers: stored.record.headers.iter().map(|(n, v)| (n.to_owned(), text(v))).collect(),
            payload: text(&stored.record.payload),
        }
    }

    /// The record, to append again.
    pub fn record(&self) -> Record {
        Record {
            key: self.key.as_ref().map(|k| k.clone().into_bytes()),
            headers: self.headers.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect(),
            payload: self.payload.clone().into_bytes(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}
