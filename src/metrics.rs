//! `GET /metrics`: Prometheus text format, written by hand (a handful of series).
//!
//! - `stockroom_http_requests_total{route,method,status}` and
//!   `stockroom_http_request_duration_seconds{route}` (histogram), by a middleware;
//! - command nodes: `stockroom_commands_total{outcome}` and
//!   `stockroom_commands_lag{partition}` (records of `commands` not yet read);
//! - query nodes: `stockroom_catalog_lag{partition}` (events not yet applied),
//!   `stockroom_catalog_staleness_seconds` (0 when caught up, else the time since it
//!   last was), and the projector's event counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stockroom_command::ProcessorHealth;
use stockroom_query::ProjectorStats;
use stockroom_topics::{EventLog, Partition, Position, Topic};
use tokio::sync::watch;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl HttpMetrics {
    fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route.to_owned(), method.to_owned(), status)).or_default() += 1;
        let mut latency = lock(&self.latency);
        let h = latency.entry(route.to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The middleware that times every request by its route pattern (not its path, so
/// SKUs do not become label values).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.http.record(&route, &method, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// What a node exposes.
pub struct Metrics {
    pub log: EventLog,
    pub http: HttpMetrics,
    pub processor: Option<Arc<ProcessorHealth>>,
    pub projector: Option<(Arc<ProjectorStats>, watch::Receiver<Position>)>,
    /// The catalog's rebuilds on request.
    pub rebuilds: Option<Arc<stockroom_query::RebuildStatus>>,
    pub scrapes: AtomicU64,
}

pub async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    metrics.scrapes.fetch_add(1, Ordering::Relaxed);
    let mut out = String::new();
    let m = &*metrics;
    {
        let requests = lock(&m.http.requests);
        out.push_str("# TYPE stockroom_http_requests_total counter\n");
        for ((route, method, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "stockroom_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let latency = lock(&m.http.latency);
        out.push_str("# TYPE stockroom_http_request_duration_seconds histogram\n");
        for (route, h) in latency.iter() {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "stockroom_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "stockroom_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "stockroom_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "stockroom_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
    }
    if let Some(p) = &m.processor {
        out.push_str("# TYPE stockroom_commands_total counter\n");
        for (outcome, counter) in
            [("accepted", &p.accepted), ("rejected", &p.rejected), ("unavailable", &p.unavailable)]
        {
            let _ =
                writeln!(out, "stockroom_commands_total{{outcome=\"{outcome}\"}} {}", counter.load(Ordering::Relaxed));
        }
        out.push_str("# TYPE stockroom_commands_lag gauge\n");
        for (partition, next) in p.commands_next() {
            if let Ok(end) = m.log.end_offset(Topic::Commands, partition).await {
                let _ = writeln!(
                    out,
                    "stockroom_commands_lag{{partition=\"{}\"}} {}",
                    partition.0,
                    end.0.saturating_sub(next)
                );
            }
        }
        out.push_str("# TYPE stockroom_partitions_owned gauge\n");
        let _ = writeln!(out, "stockroom_partitions_owned {}", p.snapshot().len());
    }
    if let Some((stats, applied)) = &m.projector {
        let position = applied.borrow().clone();
        let mut total_lag = 0u64;
        out.push_str("# TYPE stockroom_catalog_lag gauge\n");
        for p in 0..m.log.partitions(Topic::Events) {
            let p = Partition(p);
            if let Ok(end) = m.log.end_offset(Topic::Events, p).await {
                let lag = end.0.saturating_sub(position.get(p).0);
                total_lag += lag;
                let _ = writeln!(out, "stockroom_catalog_lag{{partition=\"{}\"}} {lag}", p.0);
            }
        }
        let staleness = if total_lag == 0 {
            0.0
        } else {
            let idle = stats.last_idle_ms.load(Ordering::Relaxed);
            (stockroom_topics::time::now_ms() - idle).max(0) as f64 / 1000.0
        };
        out.push_str("# TYPE stockroom_catalog_staleness_seconds gauge\n");
        let _ = writeln!(out, "stockroom_catalog_staleness_seconds {staleness}");
        out.push_str("# TYPE stockroom_catalog_events_total counter\n");
        for (what, counter) in [
            ("applied", &stats.events_applied),
            ("skipped", &stats.events_skipped),
            ("gap", &stats.gaps),
            ("unreadable", &stats.unreadable),
        ] {
            let _ = writeln!(
                out,
                "stockroom_catalog_events_total{{result=\"{what}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE stockroom_catalog_commits_total counter\nstockroom_catalog_commits_total {}",
            stats.commits.load(Ordering::Relaxed)
        );
    }
    if let Some(rebuilds) = &m.rebuilds {
        let latest = rebuilds.latest();
        let (read, total, running) = latest.as_ref().map_or((0, 0, false), |r| {
            (r.read, r.total, r.state == stockroom_topics::replay::RebuildState::Rebuilding)
        });
        let _ = writeln!(
            out,
            "# TYPE stockroom_catalog_rebuild_running gauge\nstockroom_catalog_rebuild_running {}\n\
             # TYPE stockroom_catalog_rebuild_events_read gauge\nstockroom_catalog_rebuild_events_read {read}\n\
             # TYPE stockroom_catalog_rebuild_events_total gauge\nstockroom_catalog_rebuild_events_total {total}\n\
             # TYPE stockroom_catalog_rebuilds_completed_total counter\nstockroom_catalog_rebuilds_completed_total {}",
            u8::from(running),
            rebuilds.completed.load(Ordering::Relaxed)
        );
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
