//! The ingestion routes (API.md, "Catalog ingestion").

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use stockroom_http::Problem;
use tokio_util::task::TaskTracker;

use super::feed::{self, Format};
use super::run::{Ingest, Mode, RunReport};
use super::sources::{SourceDef, valid_name};

/// The largest feed one request may carry.
pub const MAX_FEED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct IngestApi {
    pub ingest: Ingest,
    pub tracker: TaskTracker,
    /// Feeds over this many bytes are refused (413).
    pub max_feed_bytes: usize,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(put_source, list_sources, post_feed, rerun, get_run), components(schemas(SourceDef, RunReport)))]
pub struct IngestApiDoc;

pub fn router(api: IngestApi) -> Router {
    Router::new()
        .route("/ingest/sources", get(list_sources))
        .route("/ingest/sources/{source}", put(put_source))
        .route("/ingest/runs/{run_id}", get(get_run))
        .route("/ingest/{source}", post(post_feed).layer(DefaultBodyLimit::max(api.max_feed_bytes)))
        .route("/ingest/{source}/rerun", post(rerun))
        .with_state(api)
}

#[utoipa::path(put, path = "/ingest/sources/{source}", tag = "ingestion", request_body = SourceDef,
    params(("source" = String, Path)),
    responses((status = 201, description = "new"), (status = 200, description = "replaced"),
        (status = 422, description = "validation", body = Problem)))]
async fn put_source(
    State(api): State<IngestApi>,
    Path(source): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    if !valid_name(&source) {
        return Err(Problem::validation("source", "must be 1-64 of [A-Za-z0-9._-]"));
    }
    let def: SourceDef =
        serde_json::from_slice(&body).map_err(|e| Problem::validation("definition", &e.to_string()))?;
    def.validate().map_err(|(field, message)| Problem::validation(&field, &message))?;
    let new = api.ingest.define(&source, def.clone()).await.map_err(|e| Problem::unavailable(e.to_string()))?;
    let mut body = serde_json::to_value(&def).map_err(Problem::internal)?;
    body["name"] = source.into();
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(body)).into_response())
}

#[utoipa::path(get, path = "/ingest/sources", tag = "ingestion", responses((status = 200)))]
async fn list_sources(State(api): State<IngestApi>) -> Json<serde_json::Value> {
    let sources: Vec<serde_json::Value> = api
        .ingest
        .sources()
        .into_iter()
        .map(|(name, def)| {
            let mut v = serde_json::to_value(def).unwrap_or_default();
            v["name"] = name.into();
            v
        })
        .collect();
    Json(serde_json::json!({ "sources": sources }))
}

#[derive(Deserialize)]
struct FeedParams {
    mode: Option<String>,
}

#[utoipa::path(post, path = "/ingest/{source}", tag = "ingestion",
    params(("source" = String, Path), ("mode" = Option<String>, Query, description = "delta (default) or snapshot")),
    request_body(content = String, content_type = "text/csv", description = "a JSON array, JSON lines or CSV"),
    responses((status = 202, description = "the run started; see Location"),
        (status = 404, body = Problem), (status = 415, body = Problem), (status = 413, body = Problem),
        (status = 400, description = "unreadable feed", body = Problem)))]
async fn post_feed(
    State(api): State<IngestApi>,
    Path(source): Path<String>,
    Query(params): Query<FeedParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let def = api.ingest.source(&source).ok_or_else(|| Problem::not_found(format!("no source named {source:?}")))?;
    let mode = match params.mode.as_deref() {
        None | Some("delta") => Mode::Delta,
        Some("snapshot") => Mode::Snapshot,
        Some(_) => return Err(Problem::bad_parameter("mode", "must be delta or snapshot")),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = Format::of_content_type(content_type).ok_or_else(|| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "a feed is application/json, application/x-ndjson or text/csv",
        )
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("feeds are limited to {} bytes; split the feed", api.max_feed_bytes),
            )
            .closing()
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "unreadable-feed", format!("the feed could not be read: {e}"))
        }
    })?;
    let rows = feed::read(&body, format, &def)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "unreadable-feed", e.to_string()))?;
    drop(body);
    let run_id = api.ingest.submit(source, def, mode, rows, &api.tracker);
    Ok(accepted(run_id))
}

/// A run over the raw rows the log keeps for the source (the last one of each source
/// id), by the source's current definition: what a feed sent again would do, without
/// sending it. Rows equal to products as they are count as unchanged.
#[utoipa::path(post, path = "/ingest/{source}/rerun", tag = "ingestion", params(("source" = String, Path)),
    responses((status = 202, description = "the run started; see Location"), (status = 404, body = Problem)))]
async fn rerun(State(api): State<IngestApi>, Path(source): Path<String>) -> Result<Response, Problem> {
    let def = api.ingest.source(&source).ok_or_else(|| Problem::not_found(format!("no source named {source:?}")))?;
    let rows = api.ingest.kept_rows(&source).await.map_err(Problem::internal)?;
    let run_id = api.ingest.submit(source, def, Mode::Delta, rows, &api.tracker);
    Ok(accepted(run_id))
}

/// 202 with the run's id and its `Location`.
fn accepted(run_id: String) -> Response {
    let location = format!("/ingest/runs/{run_id}");
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(serde_json::json!({ "run_id": run_id })))
        .into_response()
}

#[utoipa::path(get, path = "/ingest/runs/{run_id}", tag = "ingestion", params(("run_id" = String, Path)),
    responses((status = 200, body = RunReport), (status = 404, body = Problem)))]
async fn get_run(State(api): State<IngestApi>, Path(run_id): Path<String>) -> Result<Json<RunReport>, Problem> {
    api.ingest.run(&run_id).map(Json).ok_or_else(|| Problem::not_found(format!("no run {run_id}")))
}
