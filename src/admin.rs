//! `GET /admin/views`: each view this node serves, where it is in the log, how far
//! behind, and how its latest rebuild is going; `POST /admin/replay`: ask every
//! query node to rebuild a view (a request on the `replay` topic; see
//! `stockroom_query::rebuild`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use stockroom_command::http::JsonBody;
use stockroom_http::Problem;
use stockroom_query::RebuildReport;
use stockroom_topics::replay::{RebuildRequested, RebuildState, ReplayMessage, VIEWS};
use stockroom_topics::{EventLog, Partition, Topic};

use crate::views::{Standing, Views};

/// The latest rebuild of a view on this node.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RebuildView {
    /// The request's offset in the `replay` topic...
    pub request: u64,
    /// ...and the latest request this rebuild answers (requests made during a
    /// rebuild are answered by it).
    pub answers: u64,
    /// `rebuilding`, `done` or `failed`.
    pub state: &'static str,
    /// Events read into the new view, of `total` in the log.
    pub read: u64,
    pub total: u64,
    /// Percent done, 0–100.
    pub percent: f64,
    /// Events per second.
    pub rate: u64,
    /// Events the rebuild found in its index when it (re)started: more than 0 when it
    /// resumed one cut short by a crash.
    pub resumed_from: u64,
}

impl RebuildView {
    fn of(r: &RebuildReport, resumed_from: u64) -> RebuildView {
        RebuildView {
            request: r.request,
            answers: r.answers,
            state: state_name(r.state),
            read: r.read,
            total: r.total,
            percent: if r.total == 0 { 100.0 } else { (r.read as f64 * 100.0 / r.total as f64).min(100.0) },
            rate: r.rate,
            resumed_from,
        }
    }
}

pub fn state_name(state: RebuildState) -> &'static str {
    match state {
        RebuildState::Rebuilding => "rebuilding",
        RebuildState::Done => "done",
        RebuildState::Failed => "failed",
    }
}

#[serde_with::skip_serializing_none]
#[derive(Serialize, utoipa::ToSchema)]
pub struct ViewReport {
    pub name: &'static str,
    /// `rebuilding` (a fresh copy is being built; this one serves meanwhile),
    /// `serving` (caught up with the log's head) or `catching-up`.
    pub state: &'static str,
    /// The position token the view has applied.
    pub position: String,
    /// Events in the log the view has not read yet.
    pub lag: u64,
    pub events_applied: u64,
    /// The latest rebuild on this node since it started (or the one it resumed).
    pub rebuild: Option<RebuildView>,
    /// Rebuild requests below this offset of the `replay` topic are answered by the
    /// view this node serves (for views that can be rebuilt on request).
    pub replay_answered: Option<u64>,
}

#[serde_with::skip_serializing_none]
#[derive(Serialize, utoipa::ToSchema)]
pub struct ViewsReport {
    pub views: Vec<ViewReport>,
    /// The PostgreSQL outbox connector, on a node started with `--outbox`.
    pub outbox: Option<OutboxReport>,
}

/// Where the outbox connector is (API.md, "Databases").
#[serde_with::skip_serializing_none]
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxReport {
    pub table: String,
    /// `replication` (a logical slot) or `poll` (`--outbox-mode`).
    pub mode: &'static str,
    /// `following` (caught up with the slot or the table), `catching-up` or `disconnected`.
    pub state: &'static str,
    /// Why the connector is disconnected, while it is.
    pub error: Option<String>,
    /// The LSN the replication slot has confirmed (`16/B374D848`; `0/0` when polling).
    pub confirmed_lsn: String,
    /// Polling: every transaction up to this id has been read and sent.
    pub confirmed_xid: Option<u64>,
    /// WAL bytes between the server's current position and the slot's confirmed one.
    pub lag_bytes: u64,
    /// Milliseconds from the commit of the last confirmed transaction to its confirmation.
    pub last_delay_ms: i64,
    pub rows_applied: u64,
    pub rows_rejected: u64,
    pub dead_letters: u64,
    pub transactions: u64,
}

impl OutboxReport {
    pub fn of(table: &str, s: &stockroom_command::outbox::OutboxStats) -> OutboxReport {
        let connected = s.connected.load(Ordering::Relaxed);
        let poll = s.mode == stockroom_command::outbox::OutboxMode::Poll;
        OutboxReport {
            table: table.to_owned(),
            mode: s.mode.name(),
            error: if connected { None } else { s.last_error.lock().ok().and_then(|e| e.clone()) },
            confirmed_xid: poll.then(|| s.confirmed_xid.load(Ordering::Relaxed)),
            state: match (connected, s.caught_up.load(Ordering::Relaxed)) {
                (false, _) => "disconnected",
                (true, true) => "following",
                (true, false) => "catching-up",
            },
            confirmed_lsn: stockroom_command::outbox::pgoutput::Lsn(s.confirmed_lsn.load(Ordering::Relaxed))
                .to_string(),
            lag_bytes: s.lag_bytes.load(Ordering::Relaxed),
            last_delay_ms: s.last_delay_ms.load(Ordering::Relaxed),
            rows_applied: s.applied.load(Ordering::Relaxed),
            rows_rejected: s.rejected.load(Ordering::Relaxed),
            dead_letters: s.dead_letters.load(Ordering::Relaxed),
            transactions: s.transactions.load(Ordering::Relaxed),
        }
    }
}

#[utoipa::path(get, path = "/admin/views", tag = "admin",
    responses((status = 200, description = "every view of this node", body = ViewsReport)))]
pub async fn views(State(views): State<Arc<Views>>) -> Json<ViewsReport> {
    let reports = views.standings().await.into_iter().map(|s| ViewReport::of(&s)).collect();
    let outbox = views.outbox.as_ref().map(|(table, stats)| OutboxReport::of(table, stats));
    Json(ViewsReport { views: reports, outbox })
}

impl ViewReport {
    fn of(s: &Standing<'_>) -> ViewReport {
        let rebuilds = s.view.rebuilds.as_ref();
        let lag = s.total_lag();
        ViewReport {
            name: s.view.name,
            state: if s.rebuilding() {
                "rebuilding"
            } else if lag == 0 {
                "serving"
            } else {
                "catching-up"
            },
            position: s.position.to_string(),
            lag,
            events_applied: s.view.stats.events_applied.load(Ordering::Relaxed),
            rebuild: s
                .latest_rebuild
                .as_ref()
                .map(|r| RebuildView::of(r, rebuilds.map_or(0, |status| status.resumed_from.load(Ordering::Relaxed)))),
            replay_answered: rebuilds.map(|r| r.answered.load(Ordering::Relaxed)),
        }
    }
}

/// What `POST /admin/replay` takes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The view to rebuild: `catalog`, or `sql` (on nodes started with `--sql-model`).
    pub view: String,
}

/// What `POST /admin/replay` answers.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayAccepted {
    pub view: String,
    /// The request's offset in the `replay` topic; nodes report on it in `/admin/views`.
    pub request: u64,
}

/// Anyone who may publish rebuild requests: the log, and the node's name.
pub struct Replay {
    pub log: EventLog,
    pub node: String,
}

/// Publishes a rebuild request; `by` says who asked.
pub async fn publish_rebuild(log: &EventLog, view: &str, by: &str) -> Result<u64, stockroom_topics::LogError> {
    let request = ReplayMessage::Requested(RebuildRequested {
        view: view.to_owned(),
        by: by.to_owned(),
        at_ms: stockroom_topics::time::now_ms(),
    });
    let offsets = log.append(Topic::Replay, Partition(0), vec![request.encode(&format!("/stockroom/{by}"))]).await?;
    Ok(offsets.first().map_or(0, |o| o.0))
}

#[utoipa::path(post, path = "/admin/replay", tag = "admin", request_body = ReplayBody,
    responses(
        (status = 202, description = "the request is published; every query node serving the view rebuilds it \
            in the background and swaps it in when caught up (see /admin/views)", body = ReplayAccepted),
        (status = 400, description = "malformed-json: the body is not JSON", body = Problem),
        (status = 415, description = "the body is not application/json", body = Problem),
        (status = 422, description = "validation: not `{\"view\": ...}`, or an unknown view", body = Problem),
        (status = 503, description = "the log cannot be written now; retry", body = Problem)))]
pub async fn replay(
    State(replay): State<Arc<Replay>>,
    JsonBody(body): JsonBody<ReplayBody>,
) -> Result<impl IntoResponse, Problem> {
    if !VIEWS.contains(&body.view.as_str()) {
        let detail = format!("unknown view {:?}; views that can be rebuilt: {}", body.view, VIEWS.join(", "));
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail).with("field", "view"));
    }
    let request = publish_rebuild(&replay.log, &body.view, &replay.node).await.map_err(|e| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "log-unavailable", format!("cannot publish: {e}")).retry_after(1)
    })?;
    let accepted = Json(ReplayAccepted { view: body.view, request });
    Ok((StatusCode::ACCEPTED, [(axum::http::header::LOCATION, "/admin/views")], accepted))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(views, replay), components(schemas(ViewsReport, ViewReport, OutboxReport, RebuildView, ReplayBody, ReplayAccepted)),
    tags((name = "admin", description = "operating the node (needs the admin role when tokens are configured)")))]
pub struct AdminApiDoc;
