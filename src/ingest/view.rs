//! The match tables: every product as the domain folds it (with its feed origins
//! and field owners), indexed by `(source, source_id)`, canonical GTIN and the
//! brand-and-name key. Rebuilt from the `events` topic at start; follows it after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stockroom_domain::ingest::match_key;
use stockroom_domain::product::{Product, ProductStatus, evolve};
use stockroom_domain::{Sku, VersionCheck, check_version};
use stockroom_topics::events::{LogEntry, decode_entry, envelope_of};
use stockroom_topics::{Admission, EventLog, FenceTracker, LogResult, Offset, Partition, Topic};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

#[derive(Default)]
pub struct MatchView {
    pub products: HashMap<Sku, Product>,
    by_source: HashMap<(String, String), Sku>,
    by_gtin: HashMap<String, Sku>,
    by_key: HashMap<String, Sku>,
    fences: FenceTracker,
}

impl MatchView {
    pub fn by_source(&self, source: &str, source_id: &str) -> Option<&Product> {
        self.by_source.get(&(source.to_owned(), source_id.to_owned())).and_then(|s| self.products.get(s))
    }

    pub fn by_gtin(&self, canonical: &str) -> Option<&Product> {
        self.by_gtin.get(canonical).and_then(|s| self.products.get(s))
    }

    pub fn by_key(&self, key: &str) -> Option<&Product> {
        self.by_key.get(key).and_then(|s| self.products.get(s))
    }

    /// Products only `source` lists (every origin is this source), still active.
    pub fn listed_only_by(&self, source: &str) -> Vec<&Product> {
        self.products
            .values()
            .filter(|p| p.status == ProductStatus::Active)
            .filter(|p| !p.sources.is_empty() && p.sources.iter().all(|o| o.source == source))
            .collect()
    }

    fn apply(&mut self, event: &stockroom_domain::product::ProductEvent) {
        let current = self.products.get(&event.sku);
        if check_version(current, event) != VersionCheck::Next {
            return;
        }
        let Some(next) = evolve(current.cloned(), event) else { return };
        for o in &next.sources {
            self.by_source.insert((o.source.clone(), o.source_id.clone()), next.sku.clone());
        }
        if let Some(g) = &next.details.gtin {
            self.by_gtin.insert(g.canonical(), next.sku.clone());
        }
        if let Some(k) = match_key(next.details.brand.as_deref(), &next.details.name) {
            self.by_key.entry(k).or_insert_with(|| next.sku.clone());
        }
        self.products.insert(next.sku.clone(), next);
    }
}

/// Follows `events` from the start, folding products into `view`; bumps `folded`
/// after each batch so a run can wait for its own writes.
pub async fn follow(
    log: EventLog,
    view: Arc<std::sync::Mutex<MatchView>>,
    folded: watch::Sender<u64>,
    cancel: CancellationToken,
) -> LogResult<()> {
    let from: Vec<(Partition, Offset)> =
        (0..log.partitions(Topic::Events)).map(|p| (Partition(p), Offset(0))).collect();
    let mut reader = log.reader(Topic::Events, &from)?;
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            b = reader.poll(4096, Duration::from_millis(200)) => b,
        };
        let records = match batch {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "ingestion match tables: reading events failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        {
            let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
            for record in &records {
                let Ok(env) = envelope_of(record) else { continue };
                if v.fences.admit(record.partition, &env) != Admission::Current {
                    continue;
                }
                if let Ok(LogEntry::Product(event)) = decode_entry(&env, record) {
                    v.apply(&event);
                }
            }
        }
        folded.send_modify(|n| *n += 1);
    }
}
