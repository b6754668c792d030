//! From a parsed request to an HTTP answer: build the command, send it, map the outcome.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stockroom_domain::{CommandId, Timestamp};
use stockroom_http::Problem;
use stockroom_topics::{POSITION_HEADER, time};
use tracing::{error, warn};

use super::extract::WriteRequest;
use crate::client::{CommandClient, SubmitError, Submitted};
use crate::protocol::{CommandRecord, Outcome, Target, digest};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct CommandApi {
    pub client: CommandClient,
    /// How long a write waits for its outcome before answering 202.
    pub write_timeout: Duration,
}

/// How a success is answered.
pub struct Success {
    pub status: StatusCode,
    pub location: Option<String>,
    /// Extra members of the success body (e.g. `reservation_id`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Success {
    pub fn ok() -> Success {
        Success { status: StatusCode::OK, location: None, extra: Default::default() }
    }

    pub fn created(location: String) -> Success {
        Success { status: StatusCode::CREATED, location: Some(location), extra: Default::default() }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Success {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

/// The body of an accepted write.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub command_id: String,
    /// The product's version after the write (also the `ETag`).
    pub version: u64,
    /// Read-your-writes token (also the `Stockroom-Position` header): pass it to a
    /// read as `Stockroom-Min-Position`.
    pub position: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The body of a write answered before its outcome was known.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PendingCommand {
    pub command_id: String,
    /// Always `pending`.
    pub status: &'static str,
}

impl CommandApi {
    /// Sends the command of a write and answers with its outcome, or 202 when the
    /// outcome takes longer than `write_timeout`.
    pub async fn send(
        &self,
        target: Target,
        request: WriteRequest,
        expected_version: Option<u64>,
        success: Success,
    ) -> Result<Response, Problem> {
        let id = command_id(&target, request.idempotency_key.as_deref())?;
        let fingerprint = fingerprint(&request.route, &target, expected_version);
        let correlation_id = request.request_id.or_else(|| Some(id.to_string()));
        let cmd = CommandRecord {
            id: id.clone(),
            at: Timestamp(time::now_ms()),
            expected_version,
            fingerprint,
            reply_to: Some(self.client.reply_to().to_owned()),
            target: target.routed(expected_version),
            notify: None,
        };
        match self.client.submit(cmd, correlation_id, self.write_timeout).await {
            Ok(Submitted::Done(outcome)) => respond(&id, outcome, success),
            Ok(Submitted::Pending) => Ok(pending(&id)),
            Err(SubmitError::Log(e)) if !e.is_retryable() => {
                // Retrying will not help (refused authorisation, a record too large):
                // say so, rather than inviting the client to retry for ever.
                error!(error = %e, command_id = %id, "the event log refused the command");
                Err(Problem::internal(format!("the event log refused the command: {e}")))
            }
            Err(e) => {
                warn!(error = %e, command_id = %id, "could not send command");
                Err(Problem::unavailable("the event log is not reachable; retry with the same Idempotency-Key"))
            }
        }
    }
}

/// A command's id: from the idempotency key when there is one (scoped to the
/// aggregate the request writes, so a key is a promise about one product), random
/// otherwise.
fn command_id(target: &Target, key: Option<&str>) -> Result<CommandId, Problem> {
    let raw = match key {
        Some(key) => format!("k-{}", digest(&[target.idempotency_scope().as_bytes(), key.as_bytes()])),
        None => format!("c-{}", uuid::Uuid::new_v4().simple()),
    };
    CommandId::parse(raw).map_err(Problem::internal)
}

/// What makes two requests "the same request" for an idempotency key.
fn fingerprint(route: &str, target: &Target, expected_version: Option<u64>) -> String {
    let body = serde_json::to_vec(target).unwrap_or_default();
    let version = expected_version.map(|v| v.to_string()).unwrap_or_default();
    digest(&[route.as_bytes(), &body, version.as_bytes()])
}

/// Maps an outcome to the HTTP answer.
pub fn respond(id: &CommandId, outcome: Outcome, success: Success) -> Result<Response, Problem> {
    match outcome {
        Outcome::Accepted { version, position } => {
            let body =
                Accepted { command_id: id.to_string(), version, position: position.clone(), extra: success.extra };
            let mut response = (success.status, Json(body)).into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
                headers.insert(header::ETAG, v);
            }
            if let Ok(v) = HeaderValue::from_str(&position) {
                headers.insert(POSITION_HEADER, v);
            }
            if let Some(loc) = success.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                headers.insert(header::LOCATION, loc);
            }
            Ok(response)
        }
        Outcome::Rejected { rejection } => Err(Problem::from_rejection(&rejection)),
        Outcome::IdempotencyConflict => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "this Idempotency-Key was used before with a different request",
        )),
        Outcome::Failed { reason } => Err(Problem::internal(reason)),
        Outcome::Unavailable { reason } => Err(Problem::unavailable(reason)),
    }
}

fn pending(id: &CommandId) -> Response {
    let mut response =
        (StatusCode::ACCEPTED, Json(PendingCommand { command_id: id.to_string(), status: "pending" })).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/commands/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
