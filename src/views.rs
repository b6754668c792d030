//! The registry of views: every view a query node serves (the catalog, the stock
//! view, and what comes next) is registered here once, with its name, its position
//! in the log, its counters and, if it can be rebuilt on request, its rebuilds.
//! `/admin/views`, `/health/readyz` and `/metrics` are all built from this list, so
//! a view cannot be served and yet be missing from readiness or metrics.
//!
//! The orders view is folded by the catalog's projector, at the catalog's position:
//! it is part of the `catalog` entry.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use stockroom_query::{ProjectorStats, RebuildReport, RebuildStatus};
use stockroom_topics::replay::RebuildState;
use stockroom_topics::{EventLog, Partition, Position, Topic};
use tokio::sync::watch;

use crate::ops::Check;

/// One view, as its projector hands it to the node.
pub struct View {
    pub name: &'static str,
    /// The position the view has applied (a committed batch moves it).
    pub applied: watch::Receiver<Position>,
    pub stats: Arc<ProjectorStats>,
    /// The view's rebuilds, if it can be rebuilt on request.
    pub rebuilds: Option<Arc<RebuildStatus>>,
}

/// Where a view stands now: its position and, per partition, the events of the log
/// it has not applied yet.
pub struct Standing<'a> {
    pub view: &'a View,
    pub position: Position,
    pub lag: Vec<(Partition, u64)>,
    pub latest_rebuild: Option<RebuildReport>,
}

impl Standing<'_> {
    pub fn total_lag(&self) -> u64 {
        self.lag.iter().map(|(_, n)| n).sum()
    }

    pub fn rebuilding(&self) -> bool {
        self.latest_rebuild.as_ref().is_some_and(|r| r.state == RebuildState::Rebuilding)
    }

    /// Seconds since the view was last at the log's head: 0 while it is there, and
    /// counted from the node's start when it has not been there yet.
    pub fn staleness_seconds(&self, started_ms: i64) -> f64 {
        if self.total_lag() == 0 {
            return 0.0;
        }
        let idle = self.view.stats.last_idle_ms.load(Ordering::Relaxed).max(started_ms);
        (stockroom_topics::time::now_ms() - idle).max(0) as f64 / 1000.0
    }
}

pub struct Views {
    log: EventLog,
    views: Vec<View>,
    /// The outbox connector of this node, if it runs one (its table and counters):
    /// not a view, but `/admin/views` shows its lag beside theirs.
    pub outbox: Option<(String, Arc<stockroom_command::outbox::OutboxStats>)>,
    /// The catalog this node serves (for its search counters on `/metrics`).
    pub catalog: Option<Arc<stockroom_query::CatalogSlot>>,
    /// When this node started (ms since the epoch).
    pub started_ms: i64,
}

impl Views {
    pub fn new(log: EventLog) -> Views {
        Views { log, views: Vec::new(), outbox: None, catalog: None, started_ms: stockroom_topics::time::now_ms() }
    }

    pub fn register(&mut self, view: View) {
        self.views.push(view);
    }

    /// One readiness check a view: ready once it has caught up with the log.
    pub fn checks(&self) -> Vec<Check> {
        self.views
            .iter()
            .map(|v| {
                let stats = v.stats.clone();
                let check: Check = (v.name, Arc::new(move || stats.caught_up.load(Ordering::Relaxed)));
                check
            })
            .collect()
    }

    /// Every view's standing against the log's ends as they are now.
    pub async fn standings(&self) -> Vec<Standing<'_>> {
        let mut ends = Vec::new();
        for p in 0..self.log.partitions(Topic::Events) {
            let p = Partition(p);
            if let Ok(end) = self.log.end_offset(Topic::Events, p).await {
                ends.push((p, end));
            }
        }
        self.views
            .iter()
            .map(|view| {
                let position = view.applied.borrow().clone();
                let lag = ends.iter().map(|(p, end)| (*p, end.0.saturating_sub(position.get(*p).0))).collect();
                let latest_rebuild = view.rebuilds.as_ref().and_then(|r| r.latest());
                Standing { view, position, lag, latest_rebuild }
            })
            .collect()
    }
}
