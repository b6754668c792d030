//! The topics of DESIGN.md and their names.

/// Every topic Stockroom uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Commands, keyed by the aggregate they address; co-partitioned with `Events`.
    Commands,
    /// The source of truth; never deleted.
    Events,
    /// Command outcomes, keyed by command id, for the API node that waits.
    Results,
    /// Requests to rebuild a view.
    Replay,
    /// Records that could not be decoded or processed, with the reason.
    Dlq,
    /// Catalog ingestion: source definitions and the raw feed rows as received,
    /// keyed by source and source id; kept, so the pipeline can be re-run.
    Sources,
}

impl Topic {
    pub const ALL: [Topic; 6] =
        [Topic::Commands, Topic::Events, Topic::Results, Topic::Replay, Topic::Dlq, Topic::Sources];

    pub fn suffix(self) -> &'static str {
        match self {
            Topic::Commands => "commands",
            Topic::Events => "events",
            Topic::Results => "results",
            Topic::Replay => "replay",
            Topic::Dlq => "dlq",
            Topic::Sources => "sources",
        }
    }

    /// Whether the embedded backend keeps this topic on disk. Commands and results
    /// are not the source of truth (a command counts once its events are durable), so
    /// the embedded shape keeps them in memory.
    pub fn is_durable_embedded(self) -> bool {
        matches!(self, Topic::Events | Topic::Replay | Topic::Dlq | Topic::Sources)
    }
}

/// Topic names: `<prefix>.<suffix>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl TopicNames {
    pub fn new(prefix: impl Into<String>) -> TopicNames {
        TopicNames { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn name(&self, topic: Topic) -> String {
        format!("{}.{}", self.prefix, topic.suffix())
    }
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames::new("stockroom")
    }
}

/// Names and partition counts of a deployment's topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLayout {
    pub names: TopicNames,
    /// Partitions of `commands`, `events`, `results` and `dlq` (co-partitioned).
    pub partitions: u32,
}

impl TopicLayout {
    pub fn partitions(&self, topic: Topic) -> u32 {
        match topic {
            // One partition keeps rebuild requests in one order for every node.
            Topic::Replay => 1,
            _ => self.partitions,
        }
    }
}
