//! `GET /admin/views`: each view this node serves, where it is in the log and how far
//! behind. (Rebuilding a view on request — the replay topic — is not built yet.)

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stockroom_topics::{EventLog, Partition, Position, Topic};
use tokio::sync::watch;

/// One view: its name, its applied position, and how many events it has applied.
pub struct View {
    pub name: &'static str,
    pub applied: watch::Receiver<Position>,
    pub events_applied: Arc<dyn Fn() -> u64 + Send + Sync>,
}

pub struct Views {
    pub log: EventLog,
    pub views: Vec<View>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ViewReport {
    pub name: &'static str,
    /// `serving` (caught up with the log's head) or `catching-up`.
    pub state: &'static str,
    /// The position token the view has applied.
    pub position: String,
    /// Events in the log the view has not read yet.
    pub lag: u64,
    pub events_applied: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ViewsReport {
    pub views: Vec<ViewReport>,
}

#[utoipa::path(get, path = "/admin/views", tag = "admin",
    responses((status = 200, description = "every view of this node", body = ViewsReport)))]
pub async fn views(State(views): State<Arc<Views>>) -> Response {
    let mut ends = Vec::new();
    for p in 0..views.log.partitions(Topic::Events) {
        ends.push((Partition(p), views.log.end_offset(Topic::Events, Partition(p)).await.ok()));
    }
    let status = views
        .views
        .iter()
        .map(|v| {
            let position = v.applied.borrow().clone();
            let lag = ends.iter().filter_map(|(p, end)| end.map(|e| e.0.saturating_sub(position.get(*p).0))).sum();
            ViewReport {
                name: v.name,
                state: if lag == 0 { "serving" } else { "catching-up" },
                position: position.to_string(),
                lag,
                events_applied: (v.events_applied)(),
            }
        })
        .collect();
    Json(ViewsReport { views: status }).into_response()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(views), components(schemas(ViewsReport, ViewReport)),
    tags((name = "admin", description = "operating the node (needs the admin role when tokens are configured)")))]
pub struct AdminApiDoc;
