//! Request parsing that answers every mistake with a problem: malformed JSON is a
//! 400, JSON of the wrong shape a 422 naming the field, a body over the limit a 413,
//! a non-JSON content type a 415.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use stockroom_http::Problem;

/// The largest request body accepted (API.md: bodies over 1 MiB → 413).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON body, parsed with problem+json errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(body_problem)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body: syntax errors are 400, shape errors 422 with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.is_empty() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "the request needs a JSON body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // serde_json guards recursion depth itself (128 levels): deeply nested input is
    // an error, not a stack overflow.
    let value = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", e.to_string()).with("line", e.line())
            }
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::new(StatusCode::BAD_REQUEST, "malformed-json", format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(()); // lenient: a body without a content type is read as JSON
    };
    let ok = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "request bodies must be application/json",
        ))
    }
}

fn body_problem(rejection: BytesRejection) -> Problem {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "payload-too-large", format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
            .closing()
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-request", rejection.body_text())
    }
}

/// The optional `Idempotency-Key` header: 1–255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
            .ok_or_else(|| Problem::bad_header("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// The optional `If-Match` header as an expected version: `"3"`, `W/"3"` or `3`;
/// `*` means no expectation.
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or("").trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let tag = text.strip_prefix("W/").unwrap_or(text);
        let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag);
        tag.parse::<u64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| Problem::bad_header("If-Match", "must be a product version as an entity tag, e.g. \"3\""))
    }
}
