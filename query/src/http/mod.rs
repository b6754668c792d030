//! The read API (API.md, "Reads"): products by SKU and search, with read-your-writes.
//!
//! A read may carry `Stockroom-Min-Position` (the token a write returned); the node
//! then waits — bounded — until its view has applied that position, else answers 503
//! with `Retry-After`. Every read answers with the view's own `Stockroom-Position`.

pub use stockroom_http::Problem;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stockroom_topics::{MIN_POSITION_HEADER, POSITION_HEADER, Position};
use tokio::sync::watch;
use utoipa::OpenApi;

use crate::catalog::{SearchError, SearchRequest, SearchResponse, Sort};
use crate::orders::{LineFailureView, OrderBook, OrderLineView, OrderView};
use crate::rebuild::CatalogSlot;
use crate::view::ProductView;

#[derive(Clone)]
pub struct QueryApi {
    /// The catalog served (replaced at once when a rebuild is swapped in).
    pub catalog: Arc<CatalogSlot>,
    pub orders: Arc<OrderBook>,
    pub applied: watch::Receiver<Position>,
    /// How long a read waits for `Stockroom-Min-Position`.
    pub read_timeout: Duration,
}

pub fn router(api: QueryApi) -> Router {
    Router::new()
        .route("/products/{sku}", get(get_product))
        .route("/search", get(search))
        .route("/orders/{id}", get(get_order))
        .with_state(api)
}

impl QueryApi {
    /// Waits until the view covers the position the request asks for; returns the
    /// view's position to report.
    async fn wait_for(&self, headers: &HeaderMap) -> Result<Position, Problem> {
        wait_for_position(&self.applied, headers, self.read_timeout).await
    }
}

/// Read-your-writes for any view: waits (at most `timeout`) until the view's applied
/// position covers the request's `Stockroom-Min-Position`; returns the position to report.
pub(crate) async fn wait_for_position(
    applied: &watch::Receiver<Position>,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<Position, Problem> {
    // No header, or an empty token (the position of an empty log): nothing to wait for.
    let Some(raw) = headers.get(MIN_POSITION_HEADER).filter(|v| !v.as_bytes().trim_ascii().is_empty()) else {
        return Ok(applied.borrow().clone());
    };
    let wanted: Position = raw
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Problem::bad_header("Stockroom-Min-Position", "is not a position token"))?;
    let mut rx = applied.clone();
    let waited = tokio::time::timeout(timeout, rx.wait_for(|p| p.covers(&wanted))).await;
    match waited {
        Ok(Ok(p)) => Ok(p.clone()),
        _ => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-caught-up",
            format!("this node's view has not applied position {wanted} yet; retry"),
        )
        .retry_after(1)),
    }
}

/// The answer to a read of one thing: 200 with its JSON (and its version as `ETag`),
/// or a 404 or 500 problem.
pub(crate) fn one<T: serde::Serialize, E: std::fmt::Display>(
    found: Result<Result<Option<T>, E>, tokio::task::JoinError>,
    version: impl Fn(&T) -> Option<u64>,
    what: &str,
) -> Response {
    match found {
        Ok(Ok(Some(value))) => {
            let etag = version(&value).and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok());
            let mut r = axum::Json(value).into_response();
            if let Some(etag) = etag {
                r.headers_mut().insert(header::ETAG, etag);
            }
            r
        }
        Ok(Ok(None)) => Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no such {what}")).into_response(),
        Ok(Err(e)) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
        Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
    }
}

pub(crate) fn with_position(mut response: Response, position: &Position) -> Response {
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        response.headers_mut().insert(POSITION_HEADER, v);
    }
    response
}

#[utoipa::path(get, path = "/products/{sku}", tag = "catalog",
    params(("sku" = String, Path), ("Stockroom-Min-Position" = Option<String>, Header, description = "wait until the view has applied this token")),
    responses((status = 200, body = ProductView), (status = 404, body = Problem), (status = 503, description = "view not caught up", body = Problem)))]
async fn get_product(State(api): State<QueryApi>, Path(sku): Path<String>, headers: HeaderMap) -> Response {
    let position = match api.wait_for(&headers).await {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let catalog = api.catalog.current();
    let found = tokio::task::spawn_blocking(move || catalog.get(&sku)).await;
    with_position(one(found, |v| Some(v.version), "product"), &position)
}

#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path), ("Stockroom-Min-Position" = Option<String>, Header, description = "wait until the view has applied this token")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 503, description = "view not caught up", body = Problem)))]
async fn get_order(State(api): State<QueryApi>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let position = match api.wait_for(&headers).await {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let orders = api.orders.clone();
    let found = tokio::task::spawn_blocking(move || orders.get(&id)).await;
    let found = found.map(|r| r.map(|o| o.as_ref().map(OrderView::from)));
    with_position(one(found, |v| Some(v.version), "order"), &position)
}

#[utoipa::path(get, path = "/search", tag = "catalog",
    params(
        ("q" = Option<String>, Query, description = "words (all must match), \"quoted phrases\", -excluded words"),
        ("category" = Option<String>, Query), ("brand" = Option<String>, Query),
        ("min_price" = Option<i64>, Query, description = "cents, inclusive"), ("max_price" = Option<i64>, Query, description = "cents, inclusive"),
        ("in_stock" = Option<bool>, Query), ("include_discontinued" = Option<bool>, Query),
        ("sort" = Option<String>, Query, description = "relevance (default), price_asc, price_desc, name"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("Stockroom-Min-Position" = Option<String>, Header)),
    responses((status = 200, body = SearchResponse), (status = 400, description = "bad query or parameter", body = Problem), (status = 503, body = Problem)))]
async fn search(
    State(api): State<QueryApi>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = match search_request(&params) {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    let position = match api.wait_for(&headers).await {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let catalog = api.catalog.current();
    let response = match tokio::task::spawn_blocking(move || catalog.search(&request)).await {
        Ok(Ok(found)) => axum::Json(found).into_response(),
        Ok(Err(e)) => search_problem(e).into_response(),
        Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
    };
    with_position(response, &position)
}

const SEARCH_PARAMS: [&str; 10] =
    ["q", "category", "brand", "min_price", "max_price", "in_stock", "include_discontinued", "sort", "limit", "cursor"];

fn search_request(params: &HashMap<String, String>) -> Result<SearchRequest, Problem> {
    if let Some(unknown) = params.keys().find(|k| !SEARCH_PARAMS.contains(&k.as_str())) {
        return Err(Problem::bad_parameter(unknown, format!("unknown parameter {unknown:?}")));
    }
    fn parsed<T: std::str::FromStr>(
        params: &HashMap<String, String>,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, Problem> {
        params
            .get(name)
            .map(|v| v.parse::<T>().map_err(|_| Problem::bad_parameter(name, format!("{name} must be {what}"))))
            .transpose()
    }
    let sort = match params.get("sort").map(String::as_str) {
        None | Some("relevance") => Sort::Relevance,
        Some("price_asc") => Sort::PriceAsc,
        Some("price_desc") => Sort::PriceDesc,
        Some("name") => Sort::Name,
        Some(_) => return Err(Problem::bad_parameter("sort", "sort must be relevance, price_asc, price_desc or name")),
    };
    Ok(SearchRequest {
        q: params.get("q").cloned(),
        category: params.get("category").cloned(),
        brand: params.get("brand").cloned(),
        min_price: parsed(params, "min_price", "an integer number of cents")?,
        max_price: parsed(params, "max_price", "an integer number of cents")?,
        in_stock: parsed(params, "in_stock", "true or false")?,
        include_discontinued: parsed(params, "include_discontinued", "true or false")?.unwrap_or(false),
        sort,
        limit: parsed(params, "limit", "a number from 1 to 100")?.unwrap_or(20),
        cursor: params.get("cursor").cloned(),
    })
}

fn search_problem(e: SearchError) -> Problem {
    match e {
        SearchError::BadQuery(m) => Problem::bad_parameter("q", m),
        SearchError::BadCursor => Problem::bad_parameter("cursor", "cursor is not a next_cursor of this search"),
        SearchError::BadParameter { name, message } => Problem::bad_parameter(&name, message),
        other => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string()),
    }
}

#[derive(OpenApi)]
#[openapi(paths(get_product, search, get_order),
    components(schemas(Problem, ProductView, SearchResponse, OrderView, OrderLineView, LineFailureView)),
    tags((name = "catalog", description = "the searchable product catalog, built from the event log"),
        (name = "orders", description = "orders as the log has them (the orders view)")))]
pub struct QueryApiDoc;
