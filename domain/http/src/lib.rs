//! What both HTTP APIs share: RFC 9457 problem details.
//!
//! Every error any Stockroom node answers — the command API, the query API, the
//! admin and operational routes, access control and overload — is one [`Problem`],
//! served as `application/problem+json` with a stable `type` URI per kind of error
//! (`https://stockroom.dev/errors/sku-taken`). The kind names are part of the HTTP
//! contract (API.md): they do not change.
//!
//! The input a problem is about — a body field (`lines[2].sku`), a query parameter
//! (`limit`) or a header (`If-Match`) — is always named by the one member `field`.
//! Kinds may add extension members (a rejection's `sku`, `available`, ...).
//!
//! Architecture invariant: this crate knows HTTP and the domain's rejections, nothing
//! else; `command` and `query` both use it, and neither needs the other for it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use stockroom_domain::{Rejection, ValidationError};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// Problem `type` URIs are this base plus the kind: `.../errors/sku-taken`.
pub const PROBLEM_TYPE_BASE: &str = "https://stockroom.dev/errors/";

/// An RFC 9457 problem: the body of every error answer. Boxed, so that a
/// `Result<_, Problem>` stays small on the happy path.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<Body>);

#[derive(Debug, Clone, Serialize)]
struct Body {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// The offending input: a body field, a query parameter or a header name.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// Extension members of some kinds (e.g. a rejection's `sku` or `available`).
    #[serde(flatten)]
    extra: Map<String, Value>,
    #[serde(skip)]
    retry_after: Option<u32>,
    /// Answer with `Connection: close` (the request's body was not read whole).
    #[serde(skip)]
    close: bool,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem(Box::new(Body {
            type_uri: format!("{PROBLEM_TYPE_BASE}{kind}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            extra: Map::new(),
            retry_after: None,
            close: false,
        }))
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The offending input, if the problem names one.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// Adds an extension member. `field` (a string) names the offending input: it is
    /// the typed member, so the body never carries it twice.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        match (key, value.into()) {
            ("field", Value::String(name)) => self.0.field = Some(name),
            (key, value) => {
                self.0.extra.insert(key.to_owned(), value);
            }
        }
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Problem {
        self.0.retry_after = Some(secs);
        self
    }

    /// Tells the client the connection ends with this answer: the server did not
    /// read the whole body, so the connection cannot carry another request.
    pub fn closing(mut self) -> Problem {
        self.0.close = true;
        self
    }

    /// 422 `validation`: a body field broke a rule.
    pub fn validation(field: &str, message: &str) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", format!("{field} {message}")).with("field", field)
    }

    /// 400 `invalid-parameter`: a query parameter that cannot be used.
    pub fn bad_parameter(name: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail).with("field", name)
    }

    /// 400 `invalid-header`: a header that cannot be used.
    pub fn bad_header(name: &str, message: &str) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-header", format!("header {name} {message}")).with("field", name)
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 500 `internal`: what the server could not do, not the client's fault.
    pub fn internal(detail: impl ToString) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail.to_string())
    }

    /// 503 `unavailable`, with `Retry-After: 1`.
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
            Ok(Value::Object(map)) => {
                map.into_iter().filter(|(k, _)| k != "kind").fold(problem, |p, (k, v)| p.with(&k, v))
            }
            _ => problem,
        }
    }
}

/// A value the client sent broke a rule: 422 `validation` naming the field, so that
/// handlers parse ids and values with `?`.
impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Problem {
        Problem::validation(&e.field, &e.message)
    }
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Problem {
        Problem::from_rejection(&rejection)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.0.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Written by hand rather than derived: the flattened extension members are
/// `additionalProperties`, which the derive does not say.
impl utoipa::PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
        ObjectBuilder::new()
            .description(Some(
                "RFC 9457 problem details (application/problem+json). Kinds may add extension members, \
                 e.g. a rejection's `sku` or `available`.",
            ))
            .property(
                "type",
                text("the kind of error: https://stockroom.dev/errors/ and its name, e.g. .../errors/sku-taken")
                    .format(Some(SchemaFormat::Custom("uri".to_owned()))),
            )
            .property("title", text("the status's reason phrase"))
            .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(400)).maximum(Some(599)))
            .property("detail", text("what went wrong, for a person"))
            .property(
                "field",
                text("the offending input: a body field (`lines[2].sku`), a query parameter or a header name"),
            )
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offending_input_is_one_member_named_field() {
        let body = |p: Problem| serde_json::to_value(p).unwrap();
        assert_eq!(body(Problem::validation("name", "must not be empty"))["field"], "name");
        assert_eq!(body(Problem::bad_parameter("limit", "limit must be 1 to 100"))["field"], "limit");
        assert_eq!(body(Problem::bad_header("If-Match", "is not a version"))["field"], "If-Match");
        let rejected = body(Problem::from_rejection(&Rejection::Validation(ValidationError::new("sku", "is bad"))));
        assert_eq!(rejected["field"], "sku");
        assert_eq!(rejected["type"], "https://stockroom.dev/errors/validation");
        let text = serde_json::to_string(&Problem::validation("sku", "x").with("field", "gtin")).unwrap();
        assert_eq!(text.matches("\"field\"").count(), 1, "{text}");
        assert!(body(Problem::not_found("no such route")).get("field").is_none());
    }

    #[test]
    fn rejections_keep_their_members_and_status() {
        let p = Problem::from_rejection(&Rejection::InsufficientStock { requested: 3, available: 1 });
        assert_eq!(p.status(), StatusCode::CONFLICT);
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["available"], 1);
        assert_eq!(body["type"], "https://stockroom.dev/errors/insufficient-stock");
        assert!(body.get("kind").is_none());
    }

    #[test]
    fn the_schema_documents_field_and_allows_extensions() {
        let schema = serde_json::to_value(<Problem as utoipa::PartialSchema>::schema()).unwrap();
        assert!(schema["properties"]["field"].is_object(), "{schema}");
        assert!(schema["properties"].get("parameter").is_none());
        assert_eq!(schema["additionalProperties"], true);
        assert_eq!(schema["required"], serde_json::json!(["type", "title", "status", "detail"]));
    }
}
