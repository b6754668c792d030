//! Request parsing that answers every mistake with a problem: malformed JSON is a
//! 400, JSON of the wrong shape a 422 naming the field, a body over the limit a 413,
//! a non-JSON content type a 415.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
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
    // The path of a value of the wrong shape (`lines[2].quantity`) is its `field`.
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| (e.path().to_string(), e.into_inner()));
    let value = value.and_then(|v| de.end().map(|()| v).map_err(|e| (String::new(), e)));
    value.map_err(|(path, e)| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let field = offending_field(&path, &e.to_string());
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", e.to_string())
                    .with("field", field)
                    .with("line", e.line())
            }
            Category::Syntax | Category::Eof | Category::Io => {
                Problem::new(StatusCode::BAD_REQUEST, "malformed-json", format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

/// The field a shape error is about: the path of the value, or for a missing member
/// (whose path is the object that lacks it) that member, which serde names in
/// backticks.
fn offending_field(path: &str, message: &str) -> String {
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    }
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

/// What every write carries besides its body: the route it came by, its
/// `Idempotency-Key` and its `X-Request-Id`.
pub struct WriteRequest {
    /// Method and route template, e.g. `POST /products/{sku}/reservations`: part of
    /// the idempotency fingerprint. Taken from the route the request matched, so no
    /// handler can name another; the strings are those handlers used to type by hand.
    pub route: String,
    /// The optional `Idempotency-Key` header: 1–255 visible ASCII characters.
    pub idempotency_key: Option<String>,
    /// The optional `X-Request-Id` header (up to 128 characters): the command's
    /// correlation id.
    pub request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for WriteRequest {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let matched = MatchedPath::from_request_parts(parts, state).await.map_err(Problem::internal)?;
        let route = format!("{} {}", parts.method, matched.as_str());
        let idempotency_key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                    .ok_or_else(|| Problem::bad_header("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))?
                    .to_owned(),
            ),
        };
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128)
            .map(str::to_owned);
        Ok(WriteRequest { route, idempotency_key, request_id })
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

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{patch, post};
    use tower::ServiceExt;

    use super::*;

    async fn route_of(router: Router, method: &str, uri: &str) -> String {
        let request = axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The fingerprints stored with idempotency records hash these strings: they must
    /// stay what the handlers typed by hand before they came from the matched route.
    #[tokio::test]
    async fn the_route_is_the_method_and_the_template_as_handlers_typed_it() {
        let route = |w: WriteRequest| async move { w.route };
        let router = Router::new()
            .route("/products/{sku}", patch(route).delete(route))
            .route("/products/{sku}/reservations/{id}/confirm", post(route))
            .route("/orders", post(route));
        assert_eq!(route_of(router.clone(), "PATCH", "/products/A-1").await, "PATCH /products/{sku}");
        assert_eq!(route_of(router.clone(), "DELETE", "/products/A-1").await, "DELETE /products/{sku}");
        assert_eq!(
            route_of(router.clone(), "POST", "/products/A-1/reservations/r-1/confirm").await,
            "POST /products/{sku}/reservations/{id}/confirm"
        );
        assert_eq!(route_of(router, "POST", "/orders").await, "POST /orders");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        sku: String,
        quantity: u64,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        lines: Vec<Line>,
    }

    #[test]
    fn a_body_of_the_wrong_shape_names_its_field() {
        let field = |json: &str| parse_json::<Order>(json.as_bytes()).unwrap_err().field().map(str::to_owned);
        let wrong_type = r#"{"lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": -1}]}"#;
        assert_eq!(field(wrong_type).as_deref(), Some("lines[1].quantity"));
        assert_eq!(field(r#"{"lines": [{"sku": "a"}]}"#).as_deref(), Some("lines[0].quantity"));
        assert_eq!(field(r#"{"lines": [], "extra": 1}"#).as_deref(), Some("extra"));
        assert_eq!(field("{}").as_deref(), Some("lines"));
        assert_eq!(field("{").as_deref(), None, "a syntax error is about the body, not a field");
    }
}
