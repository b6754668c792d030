//! RFC 9457 problem details: every error of the command API is one of these, with a
//! stable `type` per kind of error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stockroom_domain::Rejection;

/// Problem `type` URIs are this base plus the kind: `.../errors/sku-taken`.
pub const PROBLEM_TYPE_BASE: &str = "https://stockroom.dev/errors/";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable details of some kinds (e.g. `field` for validation errors).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    retry_after: Option<u32>,
    /// Answer with `Connection: close` (the request's body was not read whole).
    #[serde(skip)]
    close: bool,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extra: Default::default(),
            retry_after: None,
            close: false,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Problem {
        self.retry_after = Some(secs);
        self
    }

    /// Tells the client the connection ends with this answer: the server did not
    /// read the whole body, so the connection cannot carry another request.
    pub fn closing(mut self) -> Problem {
        self.close = true;
        self
    }

    pub fn validation(field: &str, message: &str) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", format!("{field} {message}")).with("field", field)
    }

    pub fn bad_header(name: &str, message: &str) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-header", format!("header {name} {message}")).with("header", name)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(1)
    }

    /// The one mapping from a domain rejection to HTTP.
    pub fn from_rejection(rejection: &Rejection) -> Problem {
        let status = match rejection {
            Rejection::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::ProductNotFound { .. }
            | Rejection::ReservationNotFound { .. }
            | Rejection::OrderNotFound { .. } => StatusCode::NOT_FOUND,
            Rejection::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            Rejection::SkuTaken { .. }
            | Rejection::GtinTaken { .. }
            | Rejection::ProductDiscontinued { .. }
            | Rejection::InsufficientStock { .. }
            | Rejection::StockOverflow
            | Rejection::ReservationExists { .. }
            | Rejection::OrderExists { .. }
            | Rejection::OrderRejected { .. }
            | Rejection::OrderState { .. } => StatusCode::CONFLICT,
        };
        let problem = Problem::new(status, rejection.kind(), rejection.to_string());
        // The rejection's fields (sku, available, expected...) as extension members.
        match serde_json::to_value(rejection) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().filter(|(k, _)| k != "kind").fold(problem, |p, (k, v)| p.with(&k, v))
            }
            _ => problem,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
