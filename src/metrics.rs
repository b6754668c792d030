//! `GET /metrics` in the OpenMetrics text format, encoded by `prometheus-client`.
//!
//! - `stockroom_http_requests_total{route,method,status}` and
//!   `stockroom_http_request_duration_seconds{route}` (histogram), by a middleware
//!   that labels by route pattern (not path, so SKUs do not become label values);
//! - every node: `stockroom_dlq_records` (records in the dead-letter topic);
//! - command nodes: `stockroom_commands_total{outcome}`,
//!   `stockroom_commands_lag{partition}` (records of `commands` not yet read) and
//!   `stockroom_partitions_owned`;
//! - query nodes, for every view `V` of the registry (`catalog`, `stock`):
//!   `stockroom_V_lag{partition}` (events not yet applied),
//!   `stockroom_V_staleness_seconds` (0 when caught up, else the time since it last
//!   was), `stockroom_V_events_total{result}`, `stockroom_V_commits_total`, and for
//!   views rebuilt on request `stockroom_V_rebuild_*`; and
//!   `stockroom_search_cache_{hits,misses}_total` (searches answered again from the
//!   answers of the catalog's current generation, and searches computed).
//!
//! - command nodes: `stockroom_ingest_rows_total{outcome}` (`read`, `created`,
//!   `updated`, `unchanged`, `rejected`, `warnings`, over the runs since start) and
//!   `stockroom_ingest_runs_running`.
//!
//! Counters that live in the processor and projectors (atomics) and lags that need
//! the log's ends are read at each scrape into a registry made for that scrape; the
//! HTTP series live across scrapes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use stockroom_command::ProcessorHealth;
use stockroom_topics::{EventLog, Partition, Topic};

use crate::views::{Standing, Views};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The HTTP series, kept across scrapes.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
}

impl Default for HttpMetrics {
    fn default() -> HttpMetrics {
        HttpMetrics { requests: Family::default(), latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)) }
    }
}

/// What a node exposes.
pub struct Metrics {
    pub log: EventLog,
    pub http: HttpMetrics,
    pub processor: Option<Arc<ProcessorHealth>>,
    pub views: Option<Arc<Views>>,
    /// Catalog ingestion, on nodes with the write side.
    pub ingest: Option<crate::ingest::Ingest>,
    /// The outbox connector, on a node that runs one.
    pub outbox: Option<Arc<stockroom_command::outbox::OutboxStats>>,
}

/// The middleware that times every request by its route pattern.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics.http.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
    metrics.http.latency.get_or_create(&RouteLabels { route }).observe(start.elapsed().as_secs_f64());
    response
}

pub async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    let mut registry = Registry::default();
    registry.register("stockroom_http_requests", "HTTP requests answered", metrics.http.requests.clone());
    registry.register("stockroom_http_request_duration_seconds", "HTTP request latency", metrics.http.latency.clone());
    // Left out while the log cannot say (a 0 would read as "nothing dead-lettered").
    let mut dead = Some(0);
    for p in 0..metrics.log.partitions(Topic::Dlq) {
        let end = metrics.log.end_offset(Topic::Dlq, Partition(p)).await.ok();
        dead = dead.zip(end).map(|(sum, end)| sum + end.0);
    }
    if let Some(dead) = dead {
        let help = "records written to the dead-letter topic (its end offsets)";
        registry.register("stockroom_dlq_records", help, gauge(dead));
    }
    if let Some(health) = &metrics.processor {
        register_processor(&mut registry, &metrics.log, health).await;
    }
    if let Some(outbox) = &metrics.outbox {
        register_outbox(&mut registry, outbox);
    }
    if let Some(views) = &metrics.views {
        for standing in views.standings().await {
            register_view(&mut registry, &standing, views.started_ms);
        }
        if let Some(slot) = &views.catalog {
            // Of the catalog served now (a rebuild's swap starts them again).
            let (hits, misses) = slot.current().answer_cache_counts();
            registry.register(
                "stockroom_search_cache_hits",
                "searches answered from the current generation's answers",
                counter(hits),
            );
            registry.register("stockroom_search_cache_misses", "searches computed on the index", counter(misses));
        }
    }
    if let Some(ingest) = &metrics.ingest {
        let (rows, running) = ingest.totals();
        let family = Family::<OutcomeLabels, Counter>::default();
        for (outcome, n) in rows {
            family.get_or_create(&OutcomeLabels { outcome }).inc_by(n);
        }
        registry.register("stockroom_ingest_rows", "feed rows by what became of them (runs since start)", family);
        registry.register("stockroom_ingest_runs_running", "ingestion runs in progress", gauge(running));
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
        .into_response()
}

/// `stockroom_outbox_rows_total{outcome}`, `stockroom_outbox_transactions_total`,
/// `stockroom_outbox_lag_bytes` and `stockroom_outbox_delay_seconds`.
fn register_outbox(registry: &mut Registry, s: &stockroom_command::outbox::OutboxStats) {
    let rows = Family::<OutcomeLabels, Counter>::default();
    rows.get_or_create(&OutcomeLabels { outcome: "applied" }).inc_by(s.applied.load(Ordering::Relaxed));
    rows.get_or_create(&OutcomeLabels { outcome: "rejected" }).inc_by(s.rejected.load(Ordering::Relaxed));
    rows.get_or_create(&OutcomeLabels { outcome: "dead_letter" }).inc_by(s.dead_letters.load(Ordering::Relaxed));
    registry.register("stockroom_outbox_rows", "outbox rows by what became of them", rows);
    let transactions = counter(s.transactions.load(Ordering::Relaxed));
    registry.register("stockroom_outbox_transactions", "outbox transactions confirmed on the slot", transactions);
    let lag = gauge(s.lag_bytes.load(Ordering::Relaxed));
    registry.register("stockroom_outbox_lag_bytes", "WAL bytes the outbox slot has not confirmed", lag);
    let delay = Gauge::<f64, AtomicU64>::default();
    delay.set(s.last_delay_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    registry.register(
        "stockroom_outbox_delay_seconds",
        "from the commit of the last confirmed outbox transaction to its confirmation",
        delay,
    );
}

/// A counter (fresh for this scrape) holding `value`.
fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

async fn register_processor(registry: &mut Registry, log: &EventLog, health: &ProcessorHealth) {
    let outcomes = Family::<OutcomeLabels, Counter>::default();
    for (outcome, n) in
        [("accepted", &health.accepted), ("rejected", &health.rejected), ("unavailable", &health.unavailable)]
    {
        outcomes.get_or_create(&OutcomeLabels { outcome }).inc_by(n.load(Ordering::Relaxed));
    }
    registry.register("stockroom_commands", "commands decided, by outcome", outcomes);
    let lag = Family::<PartitionLabels, Gauge>::default();
    for (partition, next) in health.commands_next() {
        if let Ok(end) = log.end_offset(Topic::Commands, partition).await {
            let labels = PartitionLabels { partition: partition.0.to_string() };
            lag.get_or_create(&labels).set(i64::try_from(end.0.saturating_sub(next)).unwrap_or(i64::MAX));
        }
    }
    registry.register("stockroom_commands_lag", "records of `commands` not yet read", lag);
    let owned = health.snapshot().len() as u64;
    registry.register("stockroom_partitions_owned", "partitions this node's processor owns", gauge(owned));
}

fn register_view(registry: &mut Registry, s: &Standing<'_>, started_ms: i64) {
    let name = s.view.name;
    let stats = &s.view.stats;
    let lag = Family::<PartitionLabels, Gauge>::default();
    for (p, n) in &s.lag {
        lag.get_or_create(&PartitionLabels { partition: p.0.to_string() }).set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(format!("stockroom_{name}_lag"), "events of the log not yet applied", lag);
    let staleness = Gauge::<f64, AtomicU64>::default();
    staleness.set(s.staleness_seconds(started_ms));
    registry.register(format!("stockroom_{name}_staleness_seconds"), "0 when caught up, else since when", staleness);
    let events = Family::<ResultLabels, Counter>::default();
    for (result, n) in [
        ("applied", &stats.events_applied),
        ("skipped", &stats.events_skipped),
        ("gap", &stats.gaps),
        ("unreadable", &stats.unreadable),
    ] {
        events.get_or_create(&ResultLabels { result }).inc_by(n.load(Ordering::Relaxed));
    }
    registry.register(format!("stockroom_{name}_events"), "events read, by what became of them", events);
    let commits = counter(stats.commits.load(Ordering::Relaxed));
    registry.register(format!("stockroom_{name}_commits"), "batches committed to the view", commits);
    if let Some(rebuilds) = &s.view.rebuilds {
        let (read, total) = s.latest_rebuild.as_ref().map_or((0, 0), |r| (r.read, r.total));
        let running = gauge(u64::from(s.rebuilding()));
        registry.register(format!("stockroom_{name}_rebuild_running"), "1 while a rebuild runs", running);
        registry.register(format!("stockroom_{name}_rebuild_events_read"), "events the rebuild has read", gauge(read));
        registry.register(format!("stockroom_{name}_rebuild_events"), "events the rebuild will read", gauge(total));
        let completed = counter(rebuilds.completed.load(Ordering::Relaxed));
        registry.register(format!("stockroom_{name}_rebuilds_completed"), "rebuilds swapped in", completed);
    }
}
