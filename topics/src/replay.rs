//! The `replay` topic: requests to rebuild a view, and the rebuilding nodes' reports.
//!
//! One partition, keyed by view name, JSON payloads with the CloudEvents envelope in
//! headers like every other record. A request is published by `stockroom replay` or
//! `POST /admin/replay`; every query node that serves the view rebuilds it and
//! reports its progress on the same topic, so whoever asked can follow every node
//! (the CLI's progress bar) without knowing in advance which nodes exist.

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::record::{Record, StoredRecord};

pub const REQUESTED_TYPE: &str = "stockroom.replay.requested";
pub const PROGRESS_TYPE: &str = "stockroom.replay.progress";

/// The views a rebuild can be asked for.
pub const VIEWS: &[&str] = &["catalog", "sql"];

/// "Rebuild `view` from offset 0." Its id is the request's offset in `replay`
/// (assigned by the log), so the request itself needs none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequested {
    pub view: String,
    /// Who asked (`cli`, `http`, a node id).
    pub by: String,
    pub at_ms: i64,
}

/// Where a rebuild stands on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebuildState {
    /// Reading the log into a fresh copy of the view; the old one serves.
    Rebuilding,
    /// Swapped in: the rebuilt view serves and the old one is deleted.
    Done,
    /// Gave up (the reason is logged on the node); the old view keeps serving.
    Failed,
}

/// A node's report on a request (the request's offset in `replay`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildProgress {
    /// The request the rebuild started for (its offset in `replay`)...
    pub request: u64,
    /// ...and the latest request it answers: requests that arrive during a rebuild
    /// are answered by it.
    pub answers: u64,
    pub view: String,
    pub node: String,
    pub state: RebuildState,
    /// Events read so far and the log's size when the rebuild started.
    pub read: u64,
    pub total: u64,
    pub at_ms: i64,
}

/// A record of the replay topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayMessage {
    Requested(RebuildRequested),
    Progress(RebuildProgress),
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayCodecError {
    #[error("bad envelope: {0}")]
    Envelope(#[from] crate::envelope::EnvelopeError),
    #[error("unknown replay record type {0:?}")]
    UnknownType(String),
    #[error("bad payload: {0}")]
    Payload(#[from] serde_json::Error),
}

impl ReplayMessage {
    pub fn encode(&self, source: &str) -> Record {
        let (event_type, view, payload, at_ms, id) = match self {
            ReplayMessage::Requested(r) => {
                (REQUESTED_TYPE, &r.view, serde_json::to_vec(r), r.at_ms, format!("replay-{}-{}", r.view, r.at_ms))
            }
            ReplayMessage::Progress(p) => (
                PROGRESS_TYPE,
                &p.view,
                serde_json::to_vec(p),
                p.at_ms,
                format!("replay-{}-{}-{}-{}", p.request, p.node, p.read, p.at_ms),
            ),
        };
        let env = Envelope {
            id,
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            time_ms: at_ms,
            subject: Some(format!("views/{view}")),
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            writer: None,
        };
        Record {
            key: Some(view.as_bytes().to_vec()),
            headers: env.to_headers(),
            payload: payload.unwrap_or_default(),
            timestamp_ms: at_ms,
        }
    }

    pub fn decode(record: &StoredRecord) -> Result<ReplayMessage, ReplayCodecError> {
        let env = Envelope::from_headers(&record.record.headers)?;
        match env.event_type.as_str() {
            REQUESTED_TYPE => Ok(ReplayMessage::Requested(serde_json::from_slice(&record.record.payload)?)),
            PROGRESS_TYPE => Ok(ReplayMessage::Progress(serde_json::from_slice(&record.record.payload)?)),
            other => Err(ReplayCodecError::UnknownType(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Offset, Partition};

    fn stored(record: Record) -> StoredRecord {
        StoredRecord { partition: Partition(0), offset: Offset(3), record }
    }

    #[test]
    fn requests_and_reports_round_trip() {
        let request = ReplayMessage::Requested(RebuildRequested { view: "catalog".into(), by: "cli".into(), at_ms: 5 });
        let progress = ReplayMessage::Progress(RebuildProgress {
            request: 3,
            answers: 4,
            view: "catalog".into(),
            node: "q1".into(),
            state: RebuildState::Rebuilding,
            read: 10,
            total: 20,
            at_ms: 6,
        });
        for m in [request, progress] {
            let record = m.encode("/stockroom/test");
            assert_eq!(record.key.as_deref(), Some(&b"catalog"[..]));
            assert_eq!(ReplayMessage::decode(&stored(record)).unwrap(), m);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut record =
            ReplayMessage::Requested(RebuildRequested { view: "x".into(), by: "y".into(), at_ms: 1 }).encode("/s");
        record.payload = b"{".to_vec();
        assert!(ReplayMessage::decode(&stored(record.clone())).is_err());
        record.headers = Default::default();
        assert!(ReplayMessage::decode(&stored(record)).is_err());
    }
}
