//! What a decision needs besides the state and the command.

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, Timestamp};

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The command being decided; every event it causes carries this id.
    pub command_id: CommandId,
    /// When the command was received. The only clock the domain knows.
    pub now: Timestamp,
    /// Optimistic concurrency: the version the client expects (HTTP `If-Match`).
    pub expected_version: Option<u64>,
}

impl Context {
    pub fn new(command_id: CommandId, now: Timestamp) -> Self {
        Self { command_id, now, expected_version: None }
    }

    pub fn expecting(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }
}
