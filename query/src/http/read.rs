//! Read-your-writes, once for every view: a read's [`ReadAt`] waits until the view
//! has applied the request's `Stockroom-Min-Position` and answers with the view's
//! own `Stockroom-Position`; [`EveryRead`] documents both on every read.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stockroom_http::Problem;
use stockroom_topics::{MIN_POSITION_HEADER, POSITION_HEADER, Position};
use tokio::sync::watch;

/// A view reads are served from: what read-your-writes needs of it.
pub trait ReadView: Send + Sync {
    /// The position the view has applied.
    fn applied(&self) -> &watch::Receiver<Position>;
    /// How long a read waits for its `Stockroom-Min-Position`.
    fn read_timeout(&self) -> Duration;
}

/// The view's position a read answers at. Extracting it waits (at most the view's
/// read timeout) until the view has applied the request's `Stockroom-Min-Position`,
/// else it is a 503 with `Retry-After`.
pub struct ReadAt(pub Position);

impl<S: ReadView> FromRequestParts<S> for ReadAt {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, view: &S) -> Result<ReadAt, Problem> {
        // No header, or an empty token (the position of an empty log): nothing to wait for.
        let Some(raw) = parts.headers.get(MIN_POSITION_HEADER).filter(|v| !v.as_bytes().trim_ascii().is_empty()) else {
            return Ok(ReadAt(view.applied().borrow().clone()));
        };
        let wanted: Position = raw
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Problem::bad_header("Stockroom-Min-Position", "is not a position token"))?;
        let mut rx = view.applied().clone();
        match tokio::time::timeout(view.read_timeout(), rx.wait_for(|p| p.covers(&wanted))).await {
            Ok(Ok(p)) => Ok(ReadAt(p.clone())),
            _ => Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-caught-up",
                format!("this node's view has not applied position {wanted} yet; retry"),
            )
            .retry_after(1)),
        }
    }
}

impl ReadAt {
    /// `response`, with the position read at as `Stockroom-Position`.
    pub fn answer(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if let Ok(v) = HeaderValue::from_str(&self.0.to_string()) {
            response.headers_mut().insert(POSITION_HEADER, v);
        }
        response
    }
}

/// Documents what every read shares once, rather than on each handler: the
/// `Stockroom-Min-Position` header and the 503 of a view that has not applied it.
pub struct EveryRead;

impl utoipa::Modify for EveryRead {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, ResponseBuilder, Type};

        let min_position = ParameterBuilder::new()
            .name("Stockroom-Min-Position")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("wait (bounded) until the view has applied this token, the `position` of a write"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let not_caught_up =
            ResponseBuilder::new().description("the view has not applied the position yet; retry").build();
        for op in openapi.paths.paths.values_mut().filter_map(|item| item.get.as_mut()) {
            op.parameters.get_or_insert_with(Vec::new).push(min_position.clone());
            op.responses.responses.entry("503".to_owned()).or_insert_with(|| not_caught_up.clone().into());
        }
    }
}
